"""Broker messages: decoding the ZeroMQ frames into the JSON text browsers receive."""

from __future__ import annotations

import json

from .frames import text_frame

FINISHED = "FINISHED"
EXIT_CHANNEL = "0"
EXIT_COMMAND = "exit"
# Frame names after the channel id, in wire order (PROTOCOL.md, section 1).
_FIELDS = ("command", "task_id", "task_state")
_MAX_FRAMES = 1 + len(_FIELDS)
# The JSON text of PROTOCOL.md section 2 (sorted keys, default separators, ASCII) for
# the first 1, 2 or 3 fields, filled in with the very function json.dumps uses for
# strings: ten times faster than the general encoder.  Wire order is also key order.
_quote = json.encoder.encode_basestring_ascii
_TEMPLATES = {
    count: "{" + ", ".join(f'"{name}": %s' for name in _FIELDS[:count]) + "}"
    for count in range(1, len(_FIELDS) + 1)
}


class MalformedMessage(ValueError):
    """A broker message that cannot be relayed; ``str()`` says why, for the log."""


class Message:
    """One broker message, serialized once: JSON text and its ready WebSocket frame."""

    __slots__ = ("channel", "command", "frame", "received_at", "text")

    def __init__(self, channel: str, values: list[str], received_at: float = 0.0) -> None:
        """``values``: the command, then the task id and task state when present."""
        self.channel = channel
        self.command = values[0]
        self.text = _TEMPLATES[len(values)] % tuple(map(_quote, values))
        self.frame = text_frame(self.text)
        self.received_at = received_at

    @property
    def is_finished(self) -> bool:
        return self.command == FINISHED

    @property
    def is_exit(self) -> bool:
        return self.channel == EXIT_CHANNEL and self.command == EXIT_COMMAND

    def __repr__(self) -> str:
        return f"Message({self.channel!r}, {self.text})"


def decode(frames: list[bytes], received_at: float = 0.0) -> Message:
    """Decode the frames after the broker's identity: channel, command[, task id, task state].

    Raises :class:`MalformedMessage` for anything a deployed broker never sends,
    so that the listener can log it and carry on.
    """
    if len(frames) < 2:
        raise MalformedMessage(f"missing command frame ({len(frames)} frame(s) after the identity)")
    if len(frames) > _MAX_FRAMES:
        raise MalformedMessage(f"too many frames ({len(frames)} after the identity, at most {_MAX_FRAMES})")
    try:
        texts = [frame.decode("utf-8") for frame in frames]
    except UnicodeDecodeError as exc:
        raise MalformedMessage(f"frame is not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    channel, values = texts[0], texts[1:]
    if not channel:
        raise MalformedMessage("empty channel id")
    if not values[0]:
        raise MalformedMessage(f"empty command for channel {channel!r}")
    return Message(channel, values, received_at)
