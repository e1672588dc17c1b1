"""The client side of the benchmark: many WebSocket connections in one asyncio process.

A lean hand-written client rather than ``websockets``: one ``asyncio.Protocol`` per
connection, no task per connection, no per-frame object.  It still checks every
byte the server sends.

Two ways of checking what arrives:

- ``expect``: the messages of each channel are known in advance, so the exact byte
  stream the server must send (RFC 6455 text frames of the JSON text of
  PROTOCOL.md section 2) is built once per channel, and each chunk received is
  compared in place with ``bytes.startswith(chunk, position)``: one ``memcmp`` per
  ``recv``, whatever the number of frames in it.  Anything else (a ping, a close
  frame, a partial header) falls back to a frame-by-frame parser, so order,
  content, frame boundaries and "nothing extra" are all checked exactly.
- ``latency``: the task id of each message carries its sequence number and the
  broker's ``time.monotonic_ns()`` at send; frames are parsed one by one, the
  sequence must go up by one, and receive time minus send time is recorded
  (CLOCK_MONOTONIC is one clock for every process of the machine).

The process is driven by the benchmark's main process over a ``multiprocessing``
pipe, one command at a time (see :class:`Client`).
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import contextlib
import hashlib
import json
import os
import resource
import sys
import time
import traceback
from array import array
from typing import Any

OPEN, HANDSHAKE, CLOSED = 1, 0, 2
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# Task ids of the latency scenario: "<sequence>:<monotonic_ns at send>".
LATENCY_PREFIX = b'{"command": "TASK", "task_id": "'
LATENCY_SUFFIX = b'", "task_state": "COMPLETED"}'
monotonic_ns = time.monotonic_ns
USER_AGENT = f"Python/{sys.version_info.major}.{sys.version_info.minor} websockets/17.4"


def message_json(fields: tuple[str, ...]) -> bytes:
    """The text the monitor must send for broker frames (command[, task id, task state])."""
    names = ("command", "task_id", "task_state")
    return json.dumps(dict(zip(names, fields)), sort_keys=True).encode("utf-8")


def server_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """An unmasked final frame, as a server must send it (written here, not taken from the monitor)."""
    length = len(payload)
    if length < 126:
        return bytes((0x80 | opcode, length)) + payload
    if length < 1 << 16:
        return bytes((0x80 | opcode, 126)) + length.to_bytes(2, "big") + payload
    return bytes((0x80 | opcode, 127)) + length.to_bytes(8, "big") + payload


def client_frame(payload: bytes, opcode: int) -> bytes:
    """A masked final frame, as a client must send it."""
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[index & 3] for index, byte in enumerate(payload))
    length = len(payload)
    if length < 126:
        head = bytes((0x80 | opcode, 0x80 | length))
    else:
        head = bytes((0x80 | opcode, 0x80 | 126)) + length.to_bytes(2, "big")
    return head + mask + masked


class Stream:
    """The expected byte stream of one channel, shared by all its sockets in this process."""

    __slots__ = ("bounds", "data")

    def __init__(self, messages: list[tuple[str, ...]]) -> None:
        frames = [server_frame(message_json(tuple(message))) for message in messages]
        self.data = b"".join(frames)
        self.bounds = [0]
        for frame in frames:
            self.bounds.append(self.bounds[-1] + len(frame))


class Conn(asyncio.Protocol):
    """One WebSocket connection; see the module docstring for the two ways of checking."""

    __slots__ = (
        "channel",
        "client",
        "close_code",
        "count",
        "error",
        "head",
        "latency",
        "opened",
        "pending",
        "pings",
        "pos",
        "reached",
        "send_id_on_open",
        "state",
        "stream",
        "target",
        "transport",
    )

    def __init__(self, client: Client, channel: str, stream: Stream | None, send_id_on_open: bool) -> None:
        self.client = client
        self.channel = channel
        self.stream = stream
        self.latency = stream is None
        self.send_id_on_open = send_id_on_open
        self.state = HANDSHAKE
        self.head = b""
        self.pending = b""
        self.pos = 0  # expect mode: bytes of the stream received
        self.count = 0  # latency mode: messages received
        self.target = -1  # position (expect) or count (latency) to reach in the current phase
        self.reached = True
        self.error: str | None = None
        self.pings = 0
        self.close_code: int | None = None
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future = client.loop.create_future()

    # -- connection set-up -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        host, port, path = self.client.target
        # The headers the `websockets` client sends (so that the server holds what it held
        # when the original monitor was measured with it), the key aside: one per process.
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {self.client.key}\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
            f"User-Agent: {USER_AGENT}\r\n\r\n"
        )
        transport.write(request.encode("ascii"))  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.state == HANDSHAKE and not self.opened.done():
            self.opened.set_exception(ConnectionError(f"closed during the handshake: {exc}"))
        self.state = CLOSED

    def _handshake(self, data: bytes) -> None:
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end < 0:
            if len(self.head) > 4096:
                self._fail("no end of the HTTP response head")
            return
        head, rest = self.head[:end], self.head[end + 4 :]
        self.head = b""
        if not head.startswith(b"HTTP/1.1 101") or self.client.accept not in head:
            self._fail(f"upgrade refused: {head[:200]!r}")
            if not self.opened.done():
                self.opened.set_exception(ConnectionError(self.error))
            return
        self.state = OPEN
        if self.send_id_on_open:
            self.send_id()
        self.opened.set_result(None)
        if rest:
            self.data_received(rest)

    def send_id(self) -> None:
        self.transport.write(client_frame(self.channel.encode("utf-8"), 0x1))

    # -- receiving ------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self.state != OPEN:
            if self.state == HANDSHAKE:
                self._handshake(data)
            return
        if self.latency:
            self._parse(data)
            return
        if self.pending:
            self._slow(self.pending + data)
            return
        pos = self.pos
        if self.stream.data.startswith(data, pos):
            pos += len(data)
            self.pos = pos
            if pos >= self.target and not self.reached:
                self._reach()
            return
        self._slow(data)

    def _reach(self) -> None:
        self.reached = True
        self.client.reached_one()

    def _fail(self, problem: str) -> None:
        if self.error is None:
            self.error = problem
            self.client.failed_one(self, problem)

    def _slow(self, data: bytes) -> None:
        """Expect mode, frame by frame: control frames, partial headers, or a mismatch."""
        self.pending = b""
        stream = self.stream
        expected, bounds = stream.data, stream.bounds
        pos, index, size = self.pos, 0, len(data)
        at = bisect.bisect_left(bounds, pos)
        if at < len(bounds) and bounds[at] != pos:  # finish the frame under way
            take = min(bounds[at] - pos, size)
            if not expected.startswith(data[:take], pos):
                self._fail(f"wrong bytes at stream offset {pos}: {data[:take][:80]!r}")
                return
            pos += take
            index = take
        while index < size:
            header = self._header(data, index)
            if header is None:
                self.pending = data[index:]
                break
            opcode, header_size, length = header
            if opcode in (0x0, 0x1, 0x2):
                take = min(header_size + length, size - index)
                if not expected.startswith(data[index : index + take], pos):
                    message = bisect.bisect_right(bounds, pos)
                    self._fail(
                        f"message {message} differs from the expected one (or is extra): "
                        f"{data[index : index + take][:100]!r}"
                    )
                    return
                pos += take
                index += take
                continue
            end = index + header_size + length
            if end > size:
                self.pending = data[index:]
                break
            self._control(opcode, data[index + header_size : end])
            index = end
        self.pos = pos
        if pos >= self.target and not self.reached:
            self._reach()

    @staticmethod
    def _header(data: bytes, index: int) -> tuple[int, int, int] | None:
        """Opcode, header size and payload length of the frame at ``index``; None if incomplete."""
        if len(data) - index < 2:
            return None
        first, second = data[index], data[index + 1]
        if second & 0x80:
            raise ValueError("the server masked a frame")
        length, header_size = second & 0x7F, 2
        if length == 126:
            header_size = 4
        elif length == 127:
            header_size = 10
        if len(data) - index < header_size:
            return None
        if header_size > 2:
            length = int.from_bytes(data[index + 2 : index + header_size], "big")
        return first & 0x0F, header_size, length

    def _control(self, opcode: int, payload: bytes) -> None:
        if opcode == 0x9:
            self.pings += 1
            self.transport.write(client_frame(payload, 0xA))
        elif opcode == 0x8:
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            self.state = CLOSED
            if not self.client.closing:
                self._fail(f"server closed with {self.close_code} {payload[2:]!r}")
        elif opcode != 0xA:
            self._fail(f"unexpected opcode {opcode}")

    def _parse(self, data: bytes) -> None:
        """Latency mode: every frame parsed, its sequence checked, its latency recorded."""
        now = monotonic_ns()
        if self.pending:
            data = self.pending + data
            self.pending = b""
        index, size = 0, len(data)
        while index < size:
            header = self._header(data, index)
            if header is None:
                break
            opcode, header_size, length = header
            end = index + header_size + length
            if end > size:
                break
            payload = data[index + header_size : end]
            index = end
            if opcode != 0x1:
                self._control(opcode, payload)
                continue
            count = self.count
            if count == 0:
                if payload != self.client.marker:
                    self._fail(f"expected the marker first, got {payload[:100]!r}")
                    return
            else:
                if not (payload.startswith(LATENCY_PREFIX) and payload.endswith(LATENCY_SUFFIX)):
                    self._fail(f"unexpected message {payload[:100]!r}")
                    return
                sequence, _, sent = payload[len(LATENCY_PREFIX) : -len(LATENCY_SUFFIX)].partition(b":")
                if int(sequence) != count - 1:
                    self._fail(f"message {int(sequence)} arrived where {count - 1} was due")
                    return
                self.client.samples.append(now - int(sent))
            count += 1
            self.count = count
            if count >= self.target and not self.reached:
                self._reach()
        if index < size:
            self.pending = data[index:]

    @property
    def progress(self) -> int:
        return self.count if self.latency else self.pos

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class Client:
    """One client process: its connections, and the commands the main process sends."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.conns: list[Conn] = []
        self.streams: dict[str, Stream] = {}
        self.target: tuple[str, int, str] = ("127.0.0.1", 0, "/")
        raw_key = base64.b64encode(os.urandom(16))
        self.key = raw_key.decode("ascii")
        self.accept = base64.b64encode(hashlib.sha1(raw_key + GUID).digest())
        self.marker = message_json(("DOWNLOADED",))
        self.samples = array("q")
        self.remaining = 0
        self.last_reached = 0
        self.first_reached = 0
        self.done: asyncio.Event = asyncio.Event()
        self.errors: list[str] = []
        self.closing = False

    # -- callbacks from connections ------------------------------------------------------
    def reached_one(self) -> None:
        now = monotonic_ns()
        if not self.first_reached:
            self.first_reached = now
        self.last_reached = now
        self.remaining -= 1
        if self.remaining <= 0:
            self.done.set()

    def failed_one(self, conn: Conn, problem: str) -> None:
        self.errors.append(f"{conn.channel}: {problem}")
        self.done.set()

    # -- commands ------------------------------------------------------------------------
    async def cmd_open(
        self,
        host: str,
        port: int,
        sockets: list[str],
        messages: dict[str, list[tuple[str, ...]]] | None,
        send_id: bool,
        concurrency: int = 64,
        path: str = "/",
    ) -> dict[str, Any]:
        """Open one connection per entry of ``sockets`` (its channel); ``messages`` None: latency mode."""
        self.target = (host, port, path)
        for channel, channel_messages in (messages or {}).items():
            self.streams[channel] = Stream(channel_messages)
        limit = asyncio.Semaphore(concurrency)
        started = monotonic_ns()
        new: list[Conn] = []

        async def one(channel: str) -> None:
            async with limit:
                stream = self.streams[channel] if messages is not None else None
                conn = Conn(self, channel, stream, send_id)
                await self.loop.create_connection(lambda: conn, host, port)
                await conn.opened
                new.append(conn)

        results = await asyncio.gather(*(one(channel) for channel in sockets), return_exceptions=True)
        failures = [repr(result) for result in results if isinstance(result, BaseException)]
        self.conns.extend(new)
        ended = monotonic_ns()
        return {"started": started, "ended": ended, "opened": len(new), "failures": failures[:5]}

    async def cmd_send_ids(self) -> dict[str, Any]:
        started = monotonic_ns()
        for conn in self.conns:
            conn.send_id()
        return {"started": started, "ended": monotonic_ns()}

    async def cmd_arm(self, messages: int) -> dict[str, Any]:
        """Start a phase: every connection is to reach ``messages`` messages of its channel."""
        self.remaining = 0
        self.first_reached = self.last_reached = 0
        self.done.clear()
        for conn in self.conns:
            target = messages if conn.latency else conn.stream.bounds[messages]
            conn.target = target
            conn.reached = conn.progress >= target
            if not conn.reached:
                self.remaining += 1
        if self.remaining == 0:
            self.done.set()
        return {"armed": self.remaining}

    async def cmd_wait(self, timeout: float) -> dict[str, Any]:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.done.wait(), timeout)
        return {
            "remaining": self.remaining,
            "first": self.first_reached,
            "last": self.last_reached,
            "errors": self.errors[:5],
            "error_count": len(self.errors),
        }

    async def cmd_verify(self, messages: int, grace: float) -> dict[str, Any]:
        """After ``grace`` seconds of quiet: every connection has exactly ``messages`` messages."""
        await asyncio.sleep(grace)
        short = extra = 0
        for conn in self.conns:
            expected = messages if conn.latency else conn.stream.bounds[messages]
            if conn.progress < expected or conn.pending:
                short += 1
            elif conn.progress > expected:
                extra += 1
        return {
            "sockets": len(self.conns),
            "short": short,
            "extra": extra,
            "open": sum(1 for conn in self.conns if conn.state == OPEN),
            "pings": sum(conn.pings for conn in self.conns),
            "errors": self.errors[:5],
            "error_count": len(self.errors),
        }

    async def cmd_samples(self) -> dict[str, Any]:
        samples = self.samples
        self.samples = array("q")
        return {"samples": samples.tobytes()}

    async def cmd_close(self) -> dict[str, Any]:
        self.closing = True
        for conn in self.conns:
            conn.abort()
        count = len(self.conns)
        self.conns = []
        self.streams = {}
        self.errors = []
        await asyncio.sleep(0)
        self.closing = False
        return {"closed": count}


def _raise_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def _serve(pipe: Any) -> None:
    loop = asyncio.get_running_loop()
    client = Client(loop)
    commands: asyncio.Queue = asyncio.Queue()

    def readable() -> None:
        try:
            commands.put_nowait(pipe.recv())
        except (EOFError, OSError):  # the main process is gone: so is the reason to run
            loop.remove_reader(pipe.fileno())
            commands.put_nowait(("exit", {}))

    loop.add_reader(pipe.fileno(), readable)
    while True:
        name, arguments = await commands.get()
        if name == "exit":
            for conn in client.conns:
                conn.abort()
            with contextlib.suppress(OSError):
                pipe.send({"ok": True})
            return
        try:
            result = await getattr(client, f"cmd_{name}")(**arguments)
        except Exception:
            result = {"exception": traceback.format_exc()}
        try:
            pipe.send(result)
        except OSError:
            return


def main(pipe: Any) -> None:
    """Entry point of a client process (``multiprocessing``, spawn)."""
    _raise_file_limit()
    asyncio.run(_serve(pipe))
