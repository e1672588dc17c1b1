"""Unit tests for monitor.messages: decoding broker frames into the JSON text and frame browsers get."""

from __future__ import annotations

import json
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.messages import MalformedMessage, Message, decode

WIRE_ORDER = ["command", "task_id", "task_state"]


def parse_text_frame(frame: bytes) -> bytes:
    """Check the header of one unmasked final text frame and return its payload."""
    assert frame[0] == 0x81, f"first byte {frame[0]:#x}, expected FIN + text opcode"
    length = frame[1]
    assert not length & 0x80, "server frames must not be masked"
    offset = 2
    if length == 126:
        (length,) = struct.unpack("!H", frame[2:4])
        assert length >= 126, "2-byte length used for a length that fits in 7 bits"
        offset = 4
    elif length == 127:
        (length,) = struct.unpack("!Q", frame[2:10])
        assert length >= 1 << 16, "8-byte length used for a length that fits in 2 bytes"
        offset = 10
    payload = frame[offset:]
    assert len(payload) == length, f"header says {length} bytes, frame carries {len(payload)}"
    return payload


# --- every command of PROTOCOL.md -------------------------------------------------------------

SIMPLE_COMMANDS = ["DOWNLOADED", "STARTED", "ENDED", "UPLOADED", "FINISHED", "FAILED", "ABORTED"]


@pytest.mark.parametrize("command", SIMPLE_COMMANDS)
def test_decode_simple_command(command: str) -> None:
    message = decode([b"job-42", command.encode()])
    assert isinstance(message, Message)
    assert message.channel == "job-42"
    assert message.command == command
    assert message.text == '{"command": "' + command + '"}'
    assert message.is_finished is (command == "FINISHED")
    assert message.is_exit is False


@pytest.mark.parametrize("state", ["COMPLETED", "FAILED", "SKIPPED"])
def test_decode_task_command(state: str) -> None:
    message = decode([b"job-42", b"TASK", b"t01", state.encode()])
    assert message.channel == "job-42"
    assert message.command == "TASK"
    assert message.text == '{"command": "TASK", "task_id": "t01", "task_state": "' + state + '"}'
    assert message.is_finished is False
    assert message.is_exit is False


def test_exact_text_of_protocol_example() -> None:
    message = decode([b"1", b"TASK", b"t01", b"COMPLETED"])
    assert message.text == '{"command": "TASK", "task_id": "t01", "task_state": "COMPLETED"}'
    assert decode([b"1", b"FINISHED"]).text == '{"command": "FINISHED"}'


def test_keys_are_sorted_in_text() -> None:
    # Sorting is by key name, so a task id that sorts first alphabetically changes nothing.
    message = decode([b"c", b"zzz", b"aaa", b"mmm"])
    assert message.text == '{"command": "zzz", "task_id": "aaa", "task_state": "mmm"}'


def test_three_frames_give_command_and_task_id_only() -> None:
    message = decode([b"c", b"TASK", b"t02"])
    assert message.text == '{"command": "TASK", "task_id": "t02"}'
    assert json.loads(message.text) == {"command": "TASK", "task_id": "t02"}


def test_empty_task_fields_are_kept() -> None:
    message = decode([b"c", b"TASK", b"", b""])
    assert message.text == '{"command": "TASK", "task_id": "", "task_state": ""}'


def test_received_at_is_stored() -> None:
    assert decode([b"c", b"STARTED"], received_at=12.5).received_at == 12.5
    assert decode([b"c", b"STARTED"]).received_at == 0.0


def test_frame_is_exact_text_frame() -> None:
    text = '{"command": "TASK", "task_id": "t01", "task_state": "COMPLETED"}'
    message = decode([b"1", b"TASK", b"t01", b"COMPLETED"])
    assert message.frame == bytes([0x81, len(text)]) + text.encode()


def test_frame_of_long_text_uses_extended_length() -> None:
    task_id = "t" * 300
    message = decode([b"c", b"TASK", task_id.encode(), b"COMPLETED"])
    expected_text = '{"command": "TASK", "task_id": "' + task_id + '", "task_state": "COMPLETED"}'
    assert message.text == expected_text
    payload = expected_text.encode()
    assert message.frame == b"\x81\x7e" + struct.pack("!H", len(payload)) + payload


def test_repr_names_channel_and_text() -> None:
    assert repr(decode([b"j", b"STARTED"])) == 'Message(\'j\', {"command": "STARTED"})'


# --- exit and finished ------------------------------------------------------------------------


def test_exit_message() -> None:
    message = decode([b"0", b"exit"])
    assert message.is_exit is True
    assert message.is_finished is False
    assert message.text == '{"command": "exit"}'


@pytest.mark.parametrize(
    "frames",
    [
        [b"0", b"EXIT"],
        [b"0", b"Exit"],
        [b"1", b"exit"],
        [b"00", b"exit"],
        [b"0 ", b"exit"],
        [b"0", b"exit "],
        [b"0", b"FINISHED"],
    ],
)
def test_not_exit(frames: list[bytes]) -> None:
    assert decode(frames).is_exit is False


def test_finished_is_case_sensitive() -> None:
    assert decode([b"c", b"FINISHED"]).is_finished is True
    assert decode([b"c", b"finished"]).is_finished is False
    assert decode([b"c", b"FINISHED "]).is_finished is False


# --- non-ASCII ---------------------------------------------------------------------------------


def test_non_ascii_channel_and_task_id() -> None:
    channel = "úloha-žluťoučký-💡"
    message = decode([channel.encode(), b"TASK", "krok-ž".encode(), b"FAILED"])
    assert message.channel == channel
    assert message.command == "TASK"
    # Default json.dumps escapes non-ASCII characters.
    assert message.text == '{"command": "TASK", "task_id": "krok-\\u017e", "task_state": "FAILED"}'
    assert json.loads(message.text) == {"command": "TASK", "task_id": "krok-ž", "task_state": "FAILED"}
    assert parse_text_frame(message.frame) == message.text.encode()


def test_non_ascii_command() -> None:
    message = decode([b"c", "STARTED-é".encode()])
    assert message.command == "STARTED-é"
    assert json.loads(message.text) == {"command": "STARTED-é"}


# --- malformed ---------------------------------------------------------------------------------


@pytest.mark.parametrize("frames", [[], [b"job"]])
def test_missing_command_frame(frames: list[bytes]) -> None:
    with pytest.raises(MalformedMessage) as info:
        decode(frames)
    assert str(info.value) == f"missing command frame ({len(frames)} frame(s) after the identity)"


@pytest.mark.parametrize("count", [5, 6, 10])
def test_too_many_frames(count: int) -> None:
    frames = [b"job", b"TASK", b"t01", b"COMPLETED", b"extra", b"x", b"y", b"z", b"w", b"v"][:count]
    with pytest.raises(MalformedMessage) as info:
        decode(frames)
    assert str(info.value) == f"too many frames ({count} after the identity, at most 4)"


@pytest.mark.parametrize("index", [0, 1, 2, 3])
def test_invalid_utf8_in_any_frame(index: int) -> None:
    frames = [b"job", b"TASK", b"t01", b"COMPLETED"]
    frames[index] = b"ab\xffcd"
    with pytest.raises(MalformedMessage) as info:
        decode(frames)
    assert str(info.value) == "frame is not valid UTF-8 (invalid start byte at byte 2)"


def test_truncated_utf8_sequence() -> None:
    with pytest.raises(MalformedMessage) as info:
        decode([b"job", "ž".encode()[:1]])
    assert str(info.value) == "frame is not valid UTF-8 (unexpected end of data at byte 0)"


def test_encoded_surrogate_is_invalid_utf8() -> None:
    with pytest.raises(MalformedMessage, match="not valid UTF-8"):
        decode([b"job", b"\xed\xa0\x80"])


def test_empty_channel_id() -> None:
    with pytest.raises(MalformedMessage) as info:
        decode([b"", b"STARTED"])
    assert str(info.value) == "empty channel id"


def test_empty_command() -> None:
    with pytest.raises(MalformedMessage) as info:
        decode([b"job-7", b""])
    assert str(info.value) == "empty command for channel 'job-7'"


def test_empty_command_with_task_frames() -> None:
    with pytest.raises(MalformedMessage, match=r"^empty command for channel 'j'$"):
        decode([b"j", b"", b"t01", b"COMPLETED"])


def test_malformed_message_is_value_error() -> None:
    assert issubclass(MalformedMessage, ValueError)


# --- properties --------------------------------------------------------------------------------


@given(st.lists(st.binary(max_size=64), max_size=8))
def test_decode_any_frames(frames: list[bytes]) -> None:
    try:
        message = decode(frames)
    except MalformedMessage as exc:
        assert str(exc)
        return
    # Only a valid message gets here: check what it must look like.
    assert 2 <= len(frames) <= 4
    texts = [frame.decode("utf-8") for frame in frames]
    assert texts[0] and texts[1]
    assert message.channel == texts[0]
    assert message.command == texts[1]
    parsed = json.loads(message.text)
    assert isinstance(parsed, dict)
    assert list(parsed) == WIRE_ORDER[: len(frames) - 1]
    assert parsed == dict(zip(WIRE_ORDER, texts[1:]))
    assert parse_text_frame(message.frame) == message.text.encode("utf-8")
    assert message.is_finished is (texts[1] == "FINISHED")
    assert message.is_exit is (texts[0] == "0" and texts[1] == "exit")


@given(
    st.text(min_size=1),
    st.text(min_size=1),
    st.lists(st.text(), max_size=2),
    st.floats(allow_nan=False),
)
def test_round_trip_valid_frames(channel: str, command: str, task: list[str], received_at: float) -> None:
    frames = [channel.encode("utf-8"), command.encode("utf-8")] + [value.encode("utf-8") for value in task]
    message = decode(frames, received_at)
    expected = dict(zip(WIRE_ORDER, [command, *task]))
    assert message.channel == channel
    assert message.command == command
    assert message.received_at == received_at
    assert message.text == json.dumps(expected, sort_keys=True)
    assert json.loads(message.text) == expected
    assert parse_text_frame(message.frame) == message.text.encode("utf-8")
