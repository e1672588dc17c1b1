"""Real parts for the integration tests: a gunicorn monitor, a broker socket, WebSocket clients.

The monitor is started exactly as the README starts it (``gunicorn -c
gunicorn.conf.py wsgi:app`` from the repository root, config in
``MONITOR_CONFIG``) on free ports, in its own process group so that stopping it
by pid also reaps its worker, whatever the test did.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, ClassVar

import websocket
import yaml
import zmq

ROOT = Path(__file__).resolve().parent.parent
MONITOR_IDENTITY = b"recodex-monitor"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.02, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def write_config(directory: Path, extra: dict | None = None) -> tuple[Path, dict]:
    """A config file on free ports, logging to a file in ``directory``; returns path and content."""
    content: dict[str, Any] = {
        "websocket_uri": ["127.0.0.1", free_port()],
        "zeromq_uri": ["127.0.0.1", free_port()],
        "logger": {"file": str(directory / "monitor.log"), "level": "debug"},
    }
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(content.get(key), dict):
            content[key] = {**content[key], **value}
        else:
            content[key] = value
    path = directory / "config.yml"
    path.write_text(yaml.safe_dump(content), encoding="utf-8")
    return path, content


class MonitorProcess:
    """A running monitor (gunicorn master + worker) started from the repository root."""

    def __init__(self, directory: Path, extra: dict | None = None, command: list[str] | None = None) -> None:
        self.directory = directory
        self.config_path, self.config = write_config(directory, extra)
        self.http_port = self.config["websocket_uri"][1]
        self.zmq_port = self.config["zeromq_uri"][1]
        self.log_path = Path(self.config["logger"]["file"])
        self.stderr_path = directory / "stderr.log"
        self.command = command or [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
        self.process: subprocess.Popen | None = None

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.http_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def zmq_address(self) -> str:
        return f"tcp://127.0.0.1:{self.zmq_port}"

    def start(self, wait: bool = True) -> MonitorProcess:
        env = {**os.environ, "MONITOR_CONFIG": str(self.config_path)}
        with open(self.stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(
                self.command, cwd=ROOT, env=env, stdout=stderr, stderr=stderr, start_new_session=True
            )
        if wait:
            wait_for(self._ready, timeout=20, what=f"monitor on port {self.http_port} ({self.stderr()})")
        return self

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"monitor exited with {self.process.returncode}: {self.stderr()}")
        try:
            with urllib.request.urlopen(self.http_url + "/", timeout=1):
                pass
        except (urllib.error.URLError, OSError):
            return False
        return "listening for the broker" in self.log()

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def worker_pids(self) -> list[int]:
        """The master's children, read from /proc (the worker is one)."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            return [int(pid) for pid in children.read_text().split()]
        except OSError:
            return []

    def wait_log(self, text: str, timeout: float = 5.0) -> str:
        return wait_for(lambda: text in self.log() and self.log(), timeout=timeout, what=f"log line {text!r}")

    def stop(self) -> None:
        """Stop master and worker by pid, politely first; never leaves a process behind."""
        if self.process is not None:
            stop_process_group(self.process)


def stop_process_group(process: subprocess.Popen) -> None:
    """SIGTERM to a group's leader (the gunicorn master), then SIGKILL to the whole group."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


def rss_kib(pid: int) -> int:
    """VmRSS of a process in KiB, from /proc/<pid>/status."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


class Broker:
    """Plays the ReCodEx broker: a ROUTER that connects and addresses ``recodex-monitor``.

    Every broker still open when a test ends (it failed before ``close``) is closed by
    conftest: left to the garbage collector, a context whose socket is still open blocks
    for ever in its finalizer.
    """

    open_brokers: ClassVar[set[Broker]] = set()

    def __init__(self, address: str) -> None:
        Broker.open_brokers.add(self)
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.socket.setsockopt(zmq.LINGER, 2000)
        self.socket.connect(address)

    def send_frames(self, frames: list[bytes], timeout: float = 10.0) -> None:
        """Send raw frames after the identity, waiting until the monitor is connected."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.socket.send_multipart([MONITOR_IDENTITY, *frames])
                return
            except zmq.ZMQError as exc:
                if exc.errno != zmq.EHOSTUNREACH or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def send(self, channel: str, command: str, *task: str) -> None:
        self.send_frames([part.encode("utf-8") for part in (channel, command, *task)])

    def close(self) -> None:
        Broker.open_brokers.discard(self)
        self.socket.close(linger=0)
        self.context.term()


def connect(
    url: str, channel: str | None = None, timeout: float = 5.0, **options: Any
) -> websocket.WebSocket:
    """A WebSocket client; sends ``channel`` as the first message when given."""
    ws = websocket.create_connection(url, timeout=timeout, **options)
    if channel is not None:
        ws.send(channel)
    return ws


def receive_json(ws: websocket.WebSocket) -> dict:
    opcode, data = ws.recv_data()
    assert opcode == websocket.ABNF.OPCODE_TEXT, f"expected a text frame, got opcode {opcode}: {data!r}"
    return json.loads(data.decode("utf-8"))


def receive_close(ws: websocket.WebSocket) -> tuple[int, str]:
    """Read until the server's close frame; returns its code and reason."""
    while True:
        frame = ws.recv_frame()
        if frame.opcode == websocket.ABNF.OPCODE_CLOSE:
            data = frame.data
            code = int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005
            return code, data[2:].decode("utf-8")
        if frame.opcode == websocket.ABNF.OPCODE_PING:
            continue
        raise AssertionError(f"expected a close frame, got opcode {frame.opcode}: {frame.data!r}")


def subscribe_and_sync(monitor: MonitorProcess, broker: Broker, ws_channel: str, **options: Any) -> Any:
    """Connect and make sure the subscription is registered before the test sends live messages.

    A marker message on the channel comes back once the monitor has the
    subscriber; it is part of the channel's history from then on.
    """
    ws = connect(monitor.ws_url, ws_channel, **options)
    broker.send(ws_channel, "DOWNLOADED")
    assert receive_json(ws) == {"command": "DOWNLOADED"}
    return ws


def raw_websocket(
    port: int, path: str = "/", headers: dict[str, str] | None = None, rcvbuf: int | None = None
) -> tuple[socket.socket, bytes]:
    """A bare TCP socket that did the opening handshake and nothing else: a client we fully control.

    Returns the socket and the HTTP response head (so refusals can be checked too).
    """
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    raw.settimeout(5)
    raw.connect(("127.0.0.1", port))
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    raw.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = raw.recv(1)
        if not chunk:
            break
        head += chunk
    return raw, head


def masked_text_frame(text: str) -> bytes:
    """A client text frame (clients must mask; a zero mask keeps the payload readable)."""
    payload = text.encode("utf-8")
    assert len(payload) < 126
    return bytes([0x81, 0x80 | len(payload)]) + b"\x00\x00\x00\x00" + payload


def read_frame(raw: socket.socket) -> tuple[int, bytes]:
    """One server frame from a raw socket: opcode and payload."""

    def exactly(size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = raw.recv(size - len(data))
            if not chunk:
                raise ConnectionError("connection closed inside a frame")
            data += chunk
        return data

    first, second = exactly(2)
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(exactly(2), "big")
    elif length == 127:
        length = int.from_bytes(exactly(8), "big")
    return first & 0x0F, exactly(length)


def occupy_port(port: int) -> socket.socket:
    """A listening socket on ``port``, so that a monitor configured for it cannot bind it."""
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", port))
    blocker.listen()
    return blocker
