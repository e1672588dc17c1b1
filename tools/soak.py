"""Soak: many jobs that never finish must not keep the monitor's memory.

Starts the monitor as the README does (gunicorn, free ports, short idle timeout),
plays a broker that opens CHANNELS jobs and sends MESSAGES messages among them
without ever sending FINISHED, then waits for the idle expiry to drop them all.
Prints one JSON line with the worker's RSS at start, at the peak and after
expiry, and whether the final RSS is within 20 % of the start.  Exits 1 if not.

    .venv/bin/python tools/soak.py                  # 100 000 channels, 1 000 000 messages
    .venv/bin/python tools/soak.py --channels 1000 --messages 10000   # a quick look

Only loopback traffic; bounded by its arguments and a timeout.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.harness import Broker, MonitorProcess, rss_kib, wait_for  # noqa: E402


def health(monitor: MonitorProcess) -> dict:
    with urllib.request.urlopen(monitor.http_url + "/healthz", timeout=5) as response:
        return json.load(response)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--idle-timeout", type=float, default=5.0, help="the monitor's channels.idle_timeout")
    parser.add_argument("--timeout", type=float, default=600.0, help="give up after this many seconds")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="recodex-soak-") as directory:
        monitor = MonitorProcess(
            Path(directory),
            {
                "logger": {"level": "info"},
                "channels": {"idle_timeout": args.idle_timeout, "max_channels": args.channels * 2},
            },
        )
        try:
            monitor.start()
            (worker,) = monitor.worker_pids()
            time.sleep(1.0)
            start = rss_kib(worker)
            broker = Broker(monitor.zmq_address)
            sent_started = time.monotonic()
            per_channel = max(1, args.messages // args.channels)
            sent = 0
            for round_number in range(per_channel):
                for number in range(args.channels):
                    broker.send(f"soak-{number}", "TASK", f"t{round_number:04}", "COMPLETED")
                    sent += 1
            send_seconds = time.monotonic() - sent_started
            wait_for(
                lambda: (
                    health(monitor)["seconds_since_last_broker_message"] is not None
                    and health(monitor)["seconds_since_last_broker_message"] > 0.5
                ),
                timeout=args.timeout,
                what="the broker messages to be processed",
            )
            peak = rss_kib(worker)
            channels_at_peak = health(monitor)["channels"]
            wait_for(
                lambda: health(monitor)["channels"] == 0,
                timeout=args.timeout,
                interval=0.5,
                what="every channel to expire",
            )
            time.sleep(1.0)
            after = rss_kib(worker)
            broker.close()
        finally:
            monitor.stop()

    within = after <= start * 1.2
    print(
        json.dumps(
            {
                "scenario": "soak: never-finished channels expire",
                "channels": args.channels,
                "messages": sent,
                "send_seconds": round(send_seconds, 2),
                "channels_at_peak": channels_at_peak,
                "rss_start_kib": start,
                "rss_peak_kib": peak,
                "rss_after_expiry_kib": after,
                "after_vs_start": round(after / start, 3),
                "target": "after expiry within 20 % of start",
                "pass": within,
            }
        )
    )
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())
