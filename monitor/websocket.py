"""A gevent-websocket ``WebSocket`` with the gaps of its last release (0.10.1) closed.

It sends close frames as RFC 6455 defines them (code, then reason), caps the
size of what a client may send, answers pings and remembers when the client was
last heard (pongs included), and serializes writes: the reader greenlet
(pongs, close replies) and the writer greenlet (messages) share one socket.
"""

from __future__ import annotations

import contextlib
import struct
import time

import gevent
from gevent.lock import Semaphore
from geventwebsocket.exceptions import FrameTooLargeException, ProtocolError, WebSocketError
from geventwebsocket.websocket import Header, WebSocket

from .frames import close_frame, pong_frame

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


class SendTimeout(Exception):
    """A write did not complete within ``send_timeout``: the client stopped reading."""


class MonitorWebSocket(WebSocket):
    """One client connection's frame layer; see the module docstring for what it adds."""

    __slots__ = (
        "_message_size",
        "_socket",
        "_write_lock",
        "close_code",
        "close_reason",
        "last_seen",
        "max_message_size",
    )

    def __init__(self, environ: dict, stream: object, handler: object, max_message_size: int) -> None:
        super().__init__(environ, stream, handler)
        self.max_message_size = max_message_size
        self.last_seen = time.monotonic()
        self.close_code: int | None = None
        self.close_reason = ""
        self._write_lock = Semaphore()
        self._message_size = 0
        self._socket = handler.socket

    @property
    def writing(self) -> bool:
        """Whether a write is under way (and possibly blocked on a client that stopped reading)."""
        return self._write_lock.locked()

    def write(self, data: bytes, timeout: float | None = None) -> None:
        """Write raw frame bytes; raises :class:`SendTimeout` or ``OSError``."""
        with self._write_lock:
            if self.closed:
                raise WebSocketError("Connection is already closed")
            with gevent.Timeout(timeout, SendTimeout):
                self._socket.sendall(data)

    def read_frame(self) -> tuple[Header, bytes]:
        header = Header.decode_header(self.stream)
        self.last_seen = time.monotonic()
        if header.flags:
            raise ProtocolError("reserved bits set")
        if not header.mask:
            raise ProtocolError("client frames must be masked")
        if header.opcode in (self.OPCODE_TEXT, self.OPCODE_BINARY):
            self._message_size = 0
        if header.opcode <= self.OPCODE_BINARY:
            self._message_size += header.length
            if self._message_size > self.max_message_size:
                raise FrameTooLargeException(
                    f"message of {self._message_size}+ bytes, at most {self.max_message_size}"
                )
        payload = self.raw_read(header.length) if header.length else b""
        if len(payload) != header.length:
            raise WebSocketError("unexpected end of stream in a frame")
        return header, bytes(header.unmask_payload(payload)) if payload else b""

    def receive(self) -> str | bytearray | None:
        """The next message; ``None`` once the connection is over (closed with a fitting code)."""
        if self.closed:
            return None
        try:
            return self.read_message()
        except FrameTooLargeException as exc:
            self.close(CLOSE_TOO_BIG, "message too big")
            self.close_reason = f"client sent a too big message: {exc}"
        except UnicodeError:
            self.close(CLOSE_INVALID_DATA, "invalid UTF-8 text")
            self.close_reason = "client sent invalid UTF-8"
        except ProtocolError as exc:
            self.close(CLOSE_PROTOCOL_ERROR, "protocol error")
            self.close_reason = f"client broke the protocol: {exc}"
        except (OSError, WebSocketError, ValueError):
            self.closed = True
            self.close_reason = "client gone"
        return None

    def handle_close(self, header: Header, payload: bytes) -> None:
        """The client closes: answer with its own code, as RFC 6455 section 5.5.1 asks."""
        code = CLOSE_NORMAL
        if len(payload) >= 2:
            (code,) = struct.unpack("!H", payload[:2])
            if not self._is_valid_close_code(code):
                raise ProtocolError(f"invalid close code {code}")
        elif payload:
            raise ProtocolError("close frame with a 1-byte payload")
        self.close(code)
        self.close_code = code
        self.close_reason = "client closed"

    def handle_ping(self, header: Header, payload: bytes) -> None:
        try:
            self.write(pong_frame(payload), CLOSE_WRITE_TIMEOUT)
        except (SendTimeout, OSError):
            self.closed = True

    def handle_pong(self, header: Header, payload: bytes) -> None:
        """Nothing to do: ``read_frame`` already noted that the client is alive."""

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
        with contextlib.suppress(OSError):
            self._socket.shutdown(2)
