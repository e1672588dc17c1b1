"""Server-to-client WebSocket frames, encoded once and written as plain bytes.

gevent-websocket re-encodes a frame for every ``send``; a broker message goes to
many sockets, so its frame is built here once and the same bytes are written to
every subscriber.  Server frames are never masked (RFC 6455, section 5.1).
"""

from __future__ import annotations

import struct

OPCODE_CONTINUATION = 0x0
OPCODE_TEXT = 0x1
OPCODE_BINARY = 0x2
OPCODE_CLOSE = 0x8
OPCODE_PING = 0x9
OPCODE_PONG = 0xA
_FIN = 0x80
# A close frame's payload is at most 125 bytes: the 2-byte code and the reason.
_MAX_CLOSE_REASON = 123


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One final (unfragmented) frame carrying ``payload``."""
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", _FIN | opcode, length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", _FIN | opcode, 126, length)
    else:
        header = struct.pack("!BBQ", _FIN | opcode, 127, length)
    return header + payload


def frame_size(buffer: bytes | bytearray, offset: int) -> int:
    """The size of the (unmasked) frame that starts at ``offset``, header included."""
    length = buffer[offset + 1] & 0x7F
    if length == 126:
        return 4 + int.from_bytes(buffer[offset + 2 : offset + 4], "big")
    if length == 127:
        return 10 + int.from_bytes(buffer[offset + 2 : offset + 10], "big")
    return 2 + length


def text_frame(text: str) -> bytes:
    return encode_frame(OPCODE_TEXT, text.encode("utf-8"))


def close_frame(code: int, reason: str = "") -> bytes:
    """A close frame as browsers expect it: big-endian code, then the UTF-8 reason.

    The reason is cut at a character boundary to fit the 125-byte control frame limit.
    """
    encoded = reason.encode("utf-8")[:_MAX_CLOSE_REASON].decode("utf-8", "ignore").encode("utf-8")
    return encode_frame(OPCODE_CLOSE, struct.pack("!H", code) + encoded)


def ping_frame(payload: bytes = b"") -> bytes:
    return encode_frame(OPCODE_PING, payload)


def pong_frame(payload: bytes) -> bytes:
    return encode_frame(OPCODE_PONG, payload)
