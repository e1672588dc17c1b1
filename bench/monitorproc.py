"""The monitor under test, started exactly as the README starts it, and what /proc says about it.

``python -m gunicorn -c gunicorn.conf.py wsgi:app`` from the repository root, with
``MONITOR_CONFIG`` naming a config file on free ports, in its own process group;
:meth:`MonitorServer.stop` stops it by pid (SIGTERM, then SIGKILL to the group),
whatever happened before.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.harness import free_port, rss_kib, stop_process_group  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/<pid>/stat."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM it if the benchmark itself is killed (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class MonitorServer:
    """A gunicorn master and its worker, on free ports, logging warnings to a file."""

    def __init__(self, directory: Path, root: Path = ROOT, extra: dict | None = None) -> None:
        self.directory = directory
        self.root = root
        self.http_port = free_port()
        self.zmq_port = free_port()
        self.log_path = directory / "monitor.log"
        self.stderr_path = directory / "stderr.log"
        config = {
            "websocket_uri": ["127.0.0.1", self.http_port],
            "zeromq_uri": ["127.0.0.1", self.zmq_port],
            "logger": {"file": str(self.log_path), "level": "warning"},
            "websocket": {"max_connections": 12000},
        }
        for key, value in (extra or {}).items():
            config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
        self.config_path = directory / "config.yml"
        self.config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
        self.process: subprocess.Popen | None = None
        self.worker_pid = 0

    @property
    def zmq_address(self) -> str:
        return f"tcp://127.0.0.1:{self.zmq_port}"

    def start(self, timeout: float = 30.0) -> MonitorServer:
        env = {**os.environ, "MONITOR_CONFIG": str(self.config_path)}
        with open(self.stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
                cwd=self.root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + timeout
        while not self._healthy():
            if self.process.poll() is not None:
                raise RuntimeError(f"monitor exited with {self.process.returncode}: {self.stderr()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"monitor not healthy after {timeout} s: {self.stderr()[-2000:]}")
            time.sleep(0.05)
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        if len(children) != 1:
            raise RuntimeError(f"expected one gunicorn worker, found {children}")
        self.worker_pid = int(children[0])
        return self

    def _healthy(self) -> bool:
        """``/healthz`` answers 200 once the worker runs and its broker socket is bound."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/healthz", timeout=1) as answer:
                return answer.status == 200 and json.load(answer)["status"] == "ok"
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def status(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/status.json", timeout=5) as answer:
            return json.load(answer)

    def socket_writes(self) -> int:
        """Writes that carried messages so far: the count of the delivery latency histogram."""
        url = f"http://127.0.0.1:{self.http_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as answer:
            for line in answer.read().decode().splitlines():
                if line.startswith("recodex_monitor_delivery_latency_seconds_count"):
                    return int(float(line.split()[-1]))
        return -1

    def alive(self) -> bool:
        return (
            self.process is not None
            and self.process.poll() is None
            and Path(f"/proc/{self.worker_pid}").exists()
        )

    def cpu(self) -> tuple[float, float]:
        """CPU seconds of (master + worker, worker)."""
        worker = cpu_seconds(self.worker_pid)
        return cpu_seconds(self.process.pid) + worker, worker

    def rss_kib(self) -> int:
        return rss_kib(self.worker_pid)

    def stderr(self) -> str:
        with contextlib.suppress(OSError):
            return self.stderr_path.read_text(encoding="utf-8", errors="replace")
        return ""

    def problems(self) -> list[str]:
        """Lines of the monitor's log and stderr that report errors (none expected in a benchmark)."""
        lines = []
        for path in (self.log_path, self.stderr_path):
            with contextlib.suppress(OSError):
                text = path.read_text(encoding="utf-8", errors="replace")
                lines += [line for line in text.splitlines() if "ERROR" in line or "Traceback" in line]
        return lines

    def stop(self) -> None:
        """SIGTERM to the master, then SIGKILL to its process group: never leaves a process behind."""
        if self.process is not None:
            stop_process_group(self.process)
