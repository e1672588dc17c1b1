"""A gevent-websocket ``WebSocket`` with the gaps of its last release (0.10.1) closed.

It sends close frames as RFC 6455 defines them (code, then reason), caps the
size of what a client may send before reading it, answers pings and remembers
when the client was last heard (pongs included).

It is also built for many idle sockets and fast fan-out:

- Reading needs no greenlet.  An event-loop watcher on the socket calls
  :meth:`MonitorWebSocket._readable` when bytes arrive; they are parsed
  incrementally, without ever blocking, and each complete message or the end of
  the connection is handed to the session's callbacks.  A client that leaves is
  still noticed at once.
- The HTTP layer's 8 KiB buffered reader is released right after the upgrade
  (whatever it had already read past the request is kept and parsed first).
- Writing is done by one greenlet only (the session's writer), so it needs no
  lock; each write first tries a plain non-blocking ``send`` and only a client
  whose buffer is full gets the timed, cooperative ``sendall`` for the rest.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from typing import Protocol

import gevent
from gevent.hub import get_hub
from geventwebsocket.exceptions import WebSocketError
from geventwebsocket.websocket import WebSocket

from .frames import (
    OPCODE_BINARY,
    OPCODE_CLOSE,
    OPCODE_CONTINUATION,
    OPCODE_PING,
    OPCODE_PONG,
    OPCODE_TEXT,
    close_frame,
    pong_frame,
)

log = logging.getLogger(__name__)

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_INVALID_DATA = 1007
CLOSE_POLICY_VIOLATION = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN_LATER = 1013
# How long a close frame may take to write: the peer may have stopped reading.
CLOSE_WRITE_TIMEOUT = 1.0
# Clients send little (a job id, pongs, a close frame): small reads are enough.
READ_SIZE = 4096
_READ = 1  # libev's EV_READ


class ReadListener(Protocol):
    """What :meth:`MonitorWebSocket.start_reading` reports to (a session)."""

    def message_received(self, message: str | bytes) -> None:
        """A complete text (str) or binary (bytes) message."""

    def reading_ended(self, reply_code: int | None, reply_reason: str, why: str) -> None:
        """Reading is over.  ``reply_code``: the close frame to send back (None: send
        nothing); ``why`` says what happened, for the log."""

    def control_reply(self, frame: bytes) -> None:
        """A control frame to send back (a pong), in order with the data."""


class SendTimeout(Exception):
    """A write did not complete within ``send_timeout``: the client stopped reading."""


class _Refuse(Exception):
    """What the client sent ends the connection: the close frame to answer with, and why."""

    def __init__(self, code: int, reply: str, why: str) -> None:
        super().__init__(why)
        self.code = code
        self.reply = reply
        self.why = why


def _protocol_error(detail: str) -> _Refuse:
    return _Refuse(CLOSE_PROTOCOL_ERROR, "protocol error", f"client broke the protocol: {detail}")


def unmask(payload: bytes, mask: bytes) -> bytes:
    """XOR ``payload`` with the repeated 4-byte ``mask``, as one big-integer operation."""
    size = len(payload)
    if not size:
        return b""
    key = (mask * (size // 4 + 1))[:size]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(size, "little")


class MonitorWebSocket(WebSocket):
    """One client connection's frame layer; see the module docstring for what it adds."""

    __slots__ = (
        "_buffer",
        "_fragments",
        "_listener",
        "_message_opcode",
        "_message_size",
        "_socket",
        "_watcher",
        "close_code",
        "close_reason",
        "last_seen",
        "max_message_size",
        "writing",
    )

    def __init__(self, environ: dict, stream: object, handler: object, max_message_size: int) -> None:
        # gevent-websocket's own __init__ would also build a UTF-8 validator per socket,
        # which this class never uses: set its attributes directly.
        self.environ = environ
        self.closed = False
        self.stream = stream
        self.raw_write = None
        self.raw_read = None
        self.utf8validator = None
        self.handler = handler
        self.max_message_size = max_message_size
        self.last_seen = time.monotonic()
        self.close_code: int | None = None
        self.close_reason = ""
        self.writing = False
        self._socket = handler.socket
        self._buffer = _take_read_ahead(handler)
        self._fragments: list[bytes] = []
        self._message_opcode = 0
        self._message_size = 0
        self._watcher = None
        self._listener: ReadListener | None = None

    # -- writing (one greenlet only: the session's writer) --------------------------------------

    def write(self, data: bytes, timeout: float | None = None) -> None:
        """Write raw frame bytes; raises :class:`SendTimeout` or ``OSError``."""
        if self.closed:
            raise WebSocketError("Connection is already closed")
        try:
            sent = os.write(self._socket.fileno(), data)
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            self.writing = True
            try:
                with gevent.Timeout(timeout, SendTimeout):
                    self._socket.sendall(memoryview(data)[sent:])
            finally:
                self.writing = False

    def close(self, code: int = CLOSE_NORMAL, message: str | bytes = "") -> None:
        """Send a well-formed close frame once; the handler closes TCP when the view returns."""
        if self.closed:
            return
        reason = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
        with contextlib.suppress(SendTimeout, OSError):
            self.write(close_frame(code, reason), CLOSE_WRITE_TIMEOUT)
        self.closed = True
        self.close_code = code
        self.close_reason = reason

    def abort(self) -> None:
        """Drop the TCP connection without a close frame, for a peer that stopped reading."""
        self.closed = True
        self.stop_reading()
        with contextlib.suppress(OSError):
            self._socket.shutdown(2)

    # -- reading (event-loop callbacks, never blocking) -----------------------------------------

    def start_reading(self, listener: ReadListener) -> None:
        """Watch the socket and report what the client sends to ``listener`` (its end, once).

        Called once the 101 response is out, it also releases what the HTTP layer keeps
        of the request for the life of the socket but never uses again.
        """
        _release_request_state(self.handler)
        self._listener = listener
        watcher = get_hub().loop.io(self._socket.fileno(), _READ)
        self._watcher = watcher
        watcher.start(self._readable)
        if self._buffer:
            self._parse(b"")

    def stop_reading(self) -> None:
        """Stop the watcher (before the handler closes the socket); idempotent."""
        watcher = self._watcher
        if watcher is not None:
            self._watcher = None
            watcher.stop()
            watcher.close()

    def _readable(self) -> None:
        try:
            data = os.read(self._socket.fileno(), READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            self._end(None, "", "client gone")
            return
        if not data:
            self._end(None, "", "client gone")
            return
        self.last_seen = time.monotonic()
        self._parse(data)

    def _end(self, code: int | None, reply: str, why: str) -> None:
        self.stop_reading()
        self._buffer = b""
        self._fragments = []
        listener = self._listener
        if listener is not None:
            self._listener = None
            listener.reading_ended(code, reply, why)

    def _parse(self, data: bytes) -> None:
        """Handle every complete frame in what was received so far; keep the rest."""
        buffer = self._buffer + data if self._buffer else data
        try:
            while self._watcher is not None:
                used = self._frame(buffer)
                if not used:
                    break
                buffer = buffer[used:]
        except _Refuse as refusal:
            self._end(refusal.code, refusal.reply, refusal.why)
            return
        except Exception:
            log.exception("failed to handle what a client sent")
            self._end(CLOSE_INTERNAL_ERROR, "internal error", "internal error")
            return
        if self._watcher is not None:
            self._buffer = buffer

    def _frame(self, buffer: bytes) -> int:
        """Handle the frame at the start of ``buffer``; its size, or 0 if it is still incomplete.

        Its header is checked as soon as it is complete, so that a frame announcing
        more than ``max_message_size`` is refused before its payload is waited for.
        """
        available = len(buffer)
        if available < 2:
            return 0
        first, second = buffer[0], buffer[1]
        if first & 0x70:
            raise _protocol_error("reserved bits set")
        if not second & 0x80:
            raise _protocol_error("client frames must be masked")
        opcode = first & 0x0F
        length = second & 0x7F
        if opcode > 0x7:
            if not first & 0x80:
                raise _protocol_error("fragmented control frame")
            if length > 125:
                raise _Refuse(
                    CLOSE_TOO_BIG,
                    "message too big",
                    "client sent a too big message: control frame over 125 bytes",
                )
        start = 2
        if length == 126:
            start = 4
        elif length == 127:
            start = 10
        if available < start:
            return 0
        if start > 2:
            length = int.from_bytes(buffer[2:start], "big")
        if opcode <= OPCODE_BINARY and self._message_size + length > self.max_message_size:
            raise _Refuse(
                CLOSE_TOO_BIG,
                "message too big",
                f"client sent a too big message: {self._message_size + length}+ bytes, "
                f"at most {self.max_message_size}",
            )
        end = start + 4 + length
        if available < end:
            return 0
        payload = unmask(buffer[start + 4 : end], buffer[start : start + 4])
        self._handle(opcode, bool(first & 0x80), payload)
        return end

    def _handle(self, opcode: int, final: bool, payload: bytes) -> None:
        if opcode in (OPCODE_TEXT, OPCODE_BINARY):
            if self._message_opcode:
                raise _protocol_error("new message inside a fragmented one")
            self._message_opcode = opcode
        elif opcode == OPCODE_CONTINUATION:
            if not self._message_opcode:
                raise _protocol_error("unexpected continuation")
        elif opcode == OPCODE_PING:
            if not self.closed:
                self._listener.control_reply(pong_frame(payload))
            return
        elif opcode == OPCODE_PONG:
            return  # _readable already noted that the client is alive
        elif opcode == OPCODE_CLOSE:
            self._client_closed(payload)
            return
        else:
            raise _protocol_error(f"opcode {opcode}")
        self._message_size += len(payload)
        self._fragments.append(payload)
        if not final:
            return
        message = self._fragments[0] if len(self._fragments) == 1 else b"".join(self._fragments)
        opcode = self._message_opcode
        self._fragments = []
        self._message_opcode = 0
        self._message_size = 0
        if opcode == OPCODE_TEXT:
            try:
                text = message.decode("utf-8")
            except UnicodeDecodeError:
                raise _Refuse(CLOSE_INVALID_DATA, "invalid UTF-8 text", "client sent invalid UTF-8") from None
            self._listener.message_received(text)
        else:
            self._listener.message_received(message)

    def _client_closed(self, payload: bytes) -> None:
        """The client closes: answer with its own code, as RFC 6455 section 5.5.1 asks."""
        code = CLOSE_NORMAL
        if len(payload) >= 2:
            code = int.from_bytes(payload[:2], "big")
            if not self._is_valid_close_code(code):  # gevent-websocket's own rule
                raise _protocol_error(f"close code {code}")
        elif payload:
            raise _protocol_error("1-byte close frame")
        if self.closed:  # the reply to our own close frame
            self._end(None, "", self.close_reason or "client closed")
            return
        self._end(code, "", "client closed")


def _release_request_state(handler: object) -> None:
    """Empty the handler's parsed request headers and response header list, in place.

    Both served the upgrade and are only read again to write a response head, which
    a WebSocket connection never does (the 101 is out).  A browser's headers (cookies,
    user agent, languages) are the largest part of what an idle socket holds.
    """
    headers = getattr(handler, "headers", None)
    if headers is not None and hasattr(headers, "keys"):
        for name in set(headers.keys()):
            del headers[name]
    response_headers = getattr(handler, "response_headers", None)
    if isinstance(response_headers, list):
        response_headers.clear()


def _take_read_ahead(handler: object) -> bytes:
    """What the HTTP layer read past the request, then release its 8 KiB read buffer.

    A client may send its first frame right behind the upgrade request; those bytes
    sit in the handler's buffered reader.  Peeking with a zero socket timeout returns
    them without ever blocking.  Closing the reader frees its buffer; the handler then
    ends the connection when the view returns, as it must anyway.
    """
    rfile = getattr(handler, "rfile", None)
    if rfile is None or rfile.closed:
        return b""
    sock = handler.socket
    timeout = sock.gettimeout()
    sock.settimeout(0.0)
    try:
        data = bytes(rfile.peek())
    except (OSError, ValueError):
        data = b""
    finally:
        sock.settimeout(timeout)
    rfile.close()
    return data
