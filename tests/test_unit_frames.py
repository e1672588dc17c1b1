"""Unit tests for monitor.frames: server-to-client WebSocket frames (RFC 6455, section 5.2)."""

from __future__ import annotations

import pytest

from monitor.frames import (
    OPCODE_CLOSE,
    OPCODE_PING,
    OPCODE_PONG,
    OPCODE_TEXT,
    close_frame,
    encode_frame,
    frame_size,
    ping_frame,
    pong_frame,
    text_frame,
)


def test_opcodes() -> None:
    assert (OPCODE_TEXT, OPCODE_CLOSE, OPCODE_PING, OPCODE_PONG) == (0x1, 0x8, 0x9, 0xA)


@pytest.mark.parametrize(
    ("length", "header"),
    [
        (0, b"\x81\x00"),
        (1, b"\x81\x01"),
        (125, b"\x81\x7d"),
        (126, b"\x81\x7e\x00\x7e"),
        (127, b"\x81\x7e\x00\x7f"),
        (65535, b"\x81\x7e\xff\xff"),
        (65536, b"\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),
        (70000, b"\x81\x7f\x00\x00\x00\x00\x00\x01\x11\x70"),
    ],
)
def test_encode_frame_length_encoding(length: int, header: bytes) -> None:
    payload = bytes(i % 251 for i in range(length))
    frame = encode_frame(OPCODE_TEXT, payload)
    assert frame[: len(header)] == header
    assert frame[len(header) :] == payload
    assert len(frame) == len(header) + length


def test_encode_frame_is_never_masked() -> None:
    for length in (0, 125, 126, 65536):
        assert encode_frame(OPCODE_TEXT, b"x" * length)[1] & 0x80 == 0


def test_encode_frame_keeps_opcode() -> None:
    assert encode_frame(0x2, b"\x00\x01") == b"\x82\x02\x00\x01"
    assert encode_frame(OPCODE_CLOSE, b"") == b"\x88\x00"


def test_text_frame_utf8() -> None:
    assert text_frame("") == b"\x81\x00"
    assert text_frame("abc") == b"\x81\x03abc"
    # "ž" is two bytes in UTF-8: the length counts bytes, not characters.
    assert text_frame("ž") == b"\x81\x02\xc5\xbe"
    assert text_frame("ž" * 63) == b"\x81\x7e\x00\x7e" + "ž".encode() * 63


def test_close_frame_code_only() -> None:
    assert close_frame(1000) == b"\x88\x02\x03\xe8"


def test_close_frame_code_and_reason() -> None:
    assert close_frame(1008, "bad") == b"\x88\x05\x03\xf0bad"
    assert close_frame(4000, "ok") == b"\x88\x04\x0f\xa0ok"


def test_close_frame_reason_is_utf8() -> None:
    assert close_frame(1011, "chyba ž") == b"\x88\x0a\x03\xf3chyba \xc5\xbe"


def close_payload(frame: bytes) -> bytes:
    assert frame[0] == 0x88
    assert frame[1] <= 125, "a control frame's payload is at most 125 bytes"
    payload = frame[2:]
    assert len(payload) == frame[1]
    return payload


def test_close_frame_reason_of_123_bytes_is_kept() -> None:
    reason = "r" * 123
    payload = close_payload(close_frame(1000, reason))
    assert payload == b"\x03\xe8" + reason.encode()
    assert len(payload) == 125


def test_close_frame_long_ascii_reason_is_cut_to_123_bytes() -> None:
    payload = close_payload(close_frame(1001, "a" * 500))
    assert payload == b"\x03\xe9" + b"a" * 123


def test_close_frame_long_multibyte_reason_is_cut_at_char_boundary() -> None:
    # 200 bytes of two-byte characters: the 123rd byte is the first half of a character.
    payload = close_payload(close_frame(1000, "ž" * 100))
    assert len(payload) <= 125
    assert payload[:2] == b"\x03\xe8"
    assert payload[2:].decode("utf-8") == "ž" * 61
    assert len(payload) == 124


@pytest.mark.parametrize(
    ("reason", "kept"),
    [
        ("€" * 50, "€" * 41),  # three bytes each: 41 * 3 == 123, exact fit
        ("x" + "€" * 50, "x" + "€" * 40),  # 1 + 40 * 3 == 121, the 41st does not fit
        ("💡" * 40, "💡" * 30),  # four bytes each: 30 * 4 == 120
        ("ab" + "💡" * 40, "ab" + "💡" * 30),  # 2 + 120 == 122, the 31st does not fit
    ],
)
def test_close_frame_cut_for_wider_characters(reason: str, kept: str) -> None:
    payload = close_payload(close_frame(1000, reason))
    assert payload[2:].decode("utf-8") == kept


def test_ping_frame() -> None:
    assert ping_frame() == b"\x89\x00"
    assert ping_frame(b"hi") == b"\x89\x02hi"


def test_pong_frame() -> None:
    assert pong_frame(b"") == b"\x8a\x00"
    assert pong_frame(b"hi") == b"\x8a\x02hi"
    assert pong_frame(b"p" * 125) == b"\x8a\x7d" + b"p" * 125


@pytest.mark.parametrize("length", [0, 1, 125, 126, 65535, 65536])
def test_frame_size_reads_each_header_form(length: int) -> None:
    frame = encode_frame(OPCODE_TEXT, b"a" * length)
    buffer = b"\x81\x00" + frame + b"\x81\x01z"
    assert frame_size(buffer, 2) == len(frame)
    assert frame_size(buffer, 0) == 2
    assert frame_size(buffer, 2 + len(frame)) == 3
