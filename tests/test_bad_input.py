"""Bad input from either side is logged, answered fittingly, and hurts no one else."""

from __future__ import annotations

import select
import socket
import struct
import time

import pytest
import websocket

from .harness import Broker, MonitorProcess, connect, receive_close, receive_json, subscribe_and_sync


@pytest.mark.parametrize(
    ("frames", "logged"),
    [
        ([b"job-only-channel"], "missing command frame"),
        ([], "missing command frame"),
        ([b"\xff\xfejob", b"STARTED"], "not valid UTF-8"),
        ([b"job", b"TASK", b"t1", b"\xc3"], "not valid UTF-8"),
        ([b"", b"STARTED"], "empty channel id"),
        ([b"job", b""], "empty command"),
        ([b"job", b"TASK", b"t1", b"COMPLETED", b"extra"], "too many frames"),
    ],
    ids=[
        "no-command",
        "identity-only",
        "bad-utf8-channel",
        "bad-utf8-state",
        "empty-channel",
        "empty-command",
        "5-frames",
    ],
)
def test_malformed_broker_message_is_dropped_and_service_goes_on(
    monitor: MonitorProcess, broker: Broker, channel: str, frames: list[bytes], logged: str
) -> None:
    ws = subscribe_and_sync(monitor, broker, channel)
    broker.send_frames(frames)
    broker.send(channel, "STARTED")
    assert receive_json(ws) == {"command": "STARTED"}
    assert "dropped a malformed broker message: " in monitor.wait_log(logged)
    ws.close()


def _assert_still_serving(monitor: MonitorProcess, broker: Broker, channel: str) -> None:
    ws = subscribe_and_sync(monitor, broker, f"{channel}-after")
    broker.send(f"{channel}-after", "FINISHED")
    assert receive_json(ws) == {"command": "FINISHED"}
    ws.close()


def test_binary_first_message_is_closed_with_1003(
    monitor: MonitorProcess, broker: Broker, channel: str
) -> None:
    bystander = subscribe_and_sync(monitor, broker, channel)
    ws = connect(monitor.ws_url)
    ws.send_binary(b"job-1")
    assert receive_close(ws) == (1003, "expected the job id as a text message")
    broker.send(channel, "STARTED")
    assert receive_json(bystander) == {"command": "STARTED"}
    _assert_still_serving(monitor, broker, channel)


def test_empty_first_message_is_closed_with_1008(
    monitor: MonitorProcess, broker: Broker, channel: str
) -> None:
    ws = connect(monitor.ws_url)
    ws.send("")
    assert receive_close(ws) == (1008, "empty job id")
    _assert_still_serving(monitor, broker, channel)


def test_too_long_job_id_is_closed_with_1009(monitor: MonitorProcess, broker: Broker, channel: str) -> None:
    ws = connect(monitor.ws_url)
    ws.send("x" * 1025)
    assert receive_close(ws) == (1009, "message too big")
    _assert_still_serving(monitor, broker, channel)


def test_huge_announced_frame_is_refused_before_it_is_read(
    monitor: MonitorProcess, broker: Broker, channel: str
) -> None:
    """A header announcing 1 GiB must be refused without waiting for (or buffering) the payload."""
    ws = connect(monitor.ws_url)
    header = struct.pack("!BBQ", 0x81, 0x80 | 127, 1 << 30) + b"\x00\x00\x00\x00"
    ws.sock.sendall(header)
    assert receive_close(ws) == (1009, "message too big")
    _assert_still_serving(monitor, broker, channel)


def test_invalid_utf8_text_is_closed_with_1007(monitor: MonitorProcess, broker: Broker, channel: str) -> None:
    ws = connect(monitor.ws_url)
    ws.send(b"\xff\xfe", opcode=websocket.ABNF.OPCODE_TEXT)
    assert receive_close(ws) == (1007, "invalid UTF-8 text")
    _assert_still_serving(monitor, broker, channel)


def test_unmasked_client_frame_is_a_protocol_error(
    monitor: MonitorProcess, broker: Broker, channel: str
) -> None:
    ws = connect(monitor.ws_url)
    ws.sock.sendall(b"\x81\x03abc")
    assert receive_close(ws) == (1002, "protocol error")
    _assert_still_serving(monitor, broker, channel)


def test_silent_client_is_closed_after_first_message_timeout(
    monitor: MonitorProcess, broker: Broker, channel: str
) -> None:
    """The shared monitor waits 1.5 s for the job id (conftest.SHARED_CONFIG)."""
    ws = connect(monitor.ws_url, timeout=5)
    started = time.monotonic()
    assert receive_close(ws) == (1008, "no job id within 1.5 s")
    assert 1.2 < time.monotonic() - started < 4
    _assert_still_serving(monitor, broker, channel)


def test_garbage_instead_of_a_handshake_gets_an_http_error(
    monitor: MonitorProcess, broker: Broker, channel: str
) -> None:
    with socket.create_connection(("127.0.0.1", monitor.http_port), timeout=5) as raw:
        raw.sendall(b"\x16\x03\x01\x02\x00garbage\r\n\r\n")
        assert raw.recv(100).startswith(b"HTTP/1.1 400")
    _assert_still_serving(monitor, broker, channel)


def test_client_that_vanishes_is_unsubscribed_at_once(
    monitor: MonitorProcess, broker: Broker, channel: str
) -> None:
    ws = subscribe_and_sync(monitor, broker, channel)
    ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ws.sock.close()  # TCP reset, no close frame: a killed browser
    monitor.wait_log(f"channel={channel!r} path=/ duration=", timeout=3)
    line = next(line for line in monitor.log().splitlines() if f"channel={channel!r} path=/" in line)
    assert "reason='client gone'" in line
    _assert_still_serving(monitor, broker, channel)


def test_client_close_frame_is_answered_with_its_code(
    monitor: MonitorProcess, broker: Broker, channel: str
) -> None:
    ws = subscribe_and_sync(monitor, broker, channel)
    ws.send_close(status=1001, reason=b"tab closed")
    assert receive_close(ws)[0] == 1001
    monitor.wait_log(f"channel={channel!r} path=/ duration=", timeout=3)


def test_idle_and_trickling_connections_are_dropped_without_hurting_others(
    start_monitor, channel: str
) -> None:
    """Connections that never finish their request must not hold a slot for ever (slowloris)."""
    monitor = start_monitor({"server": {"header_timeout": 1}})
    broker = Broker(monitor.zmq_address)
    idle = socket.create_connection(("127.0.0.1", monitor.http_port), timeout=5)
    trickling = socket.create_connection(("127.0.0.1", monitor.http_port), timeout=5)
    trickling.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()
    while not select.select([trickling], [], [], 0.25)[0] and time.monotonic() - started < 5:
        trickling.sendall(b"X-Slow: y\r\n")  # a header line every 0.25 s, never the blank line
    assert trickling.recv(100).startswith(b"HTTP/1.1 400")
    assert idle.recv(100) == b""  # closed without a word: it never said anything
    assert time.monotonic() - started < 4
    ws = subscribe_and_sync(monitor, broker, channel)
    ws.close()
    idle.close()
    trickling.close()
    broker.close()
