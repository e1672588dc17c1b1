"""How long the monitor takes to stop with sockets open, and what they are told.

Starts the monitor as the README does, opens SOCKETS WebSockets on 50 channels,
sends SIGTERM to the gunicorn master and prints one JSON line: the close codes the
clients received, the master's exit code and the seconds until it exited
(issue target: every socket closed with 1001, exit 0, within 2 s).

    .venv/bin/python tools/shutdown_time.py --sockets 500
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.harness import Broker, MonitorProcess, connect, receive_close, receive_json


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="recodex-shutdown-") as directory:
        monitor = MonitorProcess(Path(directory), {"logger": {"level": "info"}})
        try:
            monitor.start()
            broker = Broker(monitor.zmq_address)
            sockets = [connect(monitor.ws_url, f"job-{number % 50}") for number in range(args.sockets)]
            for number in range(min(50, args.sockets)):
                broker.send(f"job-{number}", "STARTED")
            for ws in sockets:
                receive_json(ws)  # every socket is subscribed before the signal
            started = time.monotonic()
            os.kill(monitor.process.pid, signal.SIGTERM)
            codes = sorted({receive_close(ws)[0] for ws in sockets})
            exit_code = monitor.process.wait(timeout=10)
            seconds = time.monotonic() - started
            broker.close()
        finally:
            monitor.stop()
    result = {"sockets": args.sockets, "close_codes": codes, "exit_code": exit_code}
    result["seconds"] = round(seconds, 3)
    result["pass"] = codes == [1001] and exit_code == 0 and seconds < 2
    print(json.dumps(result))
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
