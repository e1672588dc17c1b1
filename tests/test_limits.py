"""Limits that keep a long-running, public monitor healthy, each set small and hit for real."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time

import pytest
import websocket

from .harness import (
    Broker,
    connect,
    free_port,
    masked_text_frame,
    occupy_port,
    raw_websocket,
    read_frame,
    receive_json,
    subscribe_and_sync,
    wait_for,
)


def _no_replay(url: str, channel: str) -> bool:
    ws = connect(url, channel)
    ws.settimeout(0.5)
    try:
        ws.recv()
    except websocket.WebSocketTimeoutException:
        return True
    finally:
        ws.close()
    return False


def test_history_keeps_the_newest_messages_and_warns_once(start_monitor, channel: str) -> None:
    monitor = start_monitor({"channels": {"max_history": 10}})
    broker = Broker(monitor.zmq_address)
    for number in range(30):
        broker.send(channel, "TASK", f"t{number:02}", "COMPLETED")
    probe = subscribe_and_sync(monitor, broker, f"{channel}-probe")  # all 30 are in by now
    probe.close()
    ws = connect(monitor.ws_url, channel)
    assert [receive_json(ws)["task_id"] for _ in range(10)] == [f"t{n:02}" for n in range(20, 30)]
    assert monitor.log().count(f"channel {channel!r} exceeded 10 messages") == 1
    broker.close()


def test_idle_channel_is_dropped_but_a_watched_one_is_kept(start_monitor, channel: str) -> None:
    monitor = start_monitor({"channels": {"idle_timeout": 1}})
    broker = Broker(monitor.zmq_address)
    broker.send(f"{channel}-lost", "STARTED")
    watched = subscribe_and_sync(monitor, broker, f"{channel}-watched")
    monitor.wait_log(f"channel '{channel}-lost' dropped: no subscriber and no message for 1 s")
    time.sleep(1.5)
    broker.send(f"{channel}-watched", "ENDED")
    assert receive_json(watched) == {"command": "ENDED"}
    late = connect(monitor.ws_url, f"{channel}-watched")
    assert [receive_json(late) for _ in range(2)] == [{"command": "DOWNLOADED"}, {"command": "ENDED"}]
    assert f"'{channel}-watched' dropped" not in monitor.log()
    assert _no_replay(monitor.ws_url, f"{channel}-lost")
    broker.close()


def test_max_channels_evicts_finished_first_then_longest_idle(start_monitor, channel: str) -> None:
    monitor = start_monitor({"channels": {"max_channels": 3, "retention_after_finish": 600}})
    broker = Broker(monitor.zmq_address)
    done, idle, watched = f"{channel}-done", f"{channel}-idle", f"{channel}-watched"
    broker.send(done, "FINISHED")
    broker.send(idle, "STARTED")
    ws = subscribe_and_sync(monitor, broker, watched)
    for name in ("d", "e", "f"):
        broker.send(f"{channel}-{name}", "STARTED")
    monitor.wait_log(f"evicting idle channel '{channel}-d'")
    log = monitor.log()
    order = [log.index(f"evicting finished channel {done!r}"), log.index(f"evicting idle channel {idle!r}")]
    assert order == sorted(order)
    assert f"evicting idle channel {watched!r}" not in log
    broker.send(watched, "ENDED")
    assert receive_json(ws) == {"command": "ENDED"}
    for evicted in (done, idle):
        assert _no_replay(monitor.ws_url, evicted)
    broker.close()


def _stalled_client(monitor, channel: str) -> socket.socket:
    """A raw client that subscribes and then never reads, with a small receive buffer."""
    stalled, head = raw_websocket(monitor.http_port, rcvbuf=4096)
    assert head.startswith(b"HTTP/1.1 101")
    stalled.sendall(masked_text_frame(channel))
    monitor.wait_log(f"subscribed to {channel!r}")
    return stalled


def _session_line(monitor, channel: str, timeout: float) -> str:
    log = monitor.wait_log(f"channel={channel!r} path=/ duration=", timeout=timeout)
    return next(entry for entry in log.splitlines() if f"channel={channel!r} path=/" in entry)


def test_a_reader_that_stalls_is_closed_while_others_get_everything(start_monitor, channel: str) -> None:
    """Same channel: a raw client that never reads, and a normal one that must not wait for it."""
    monitor = start_monitor({"websocket": {"send_timeout": 3}})
    broker = Broker(monitor.zmq_address)
    stalled = _stalled_client(monitor, channel)
    normal = subscribe_and_sync(monitor, broker, channel)
    count = 6000
    padding = "x" * 1000
    received: list[str] = []
    finished_at: list[float] = []

    def read_all() -> None:
        normal.settimeout(20)
        for _ in range(count):
            received.append(receive_json(normal)["task_id"])
        finished_at.append(time.monotonic())

    reader = threading.Thread(target=read_all)
    reader.start()
    for number in range(count):
        broker.send(channel, "TASK", f"{number:05}{padding}", "COMPLETED")
    reader.join(timeout=30)
    assert received == [f"{number:05}{padding}" for number in range(count)]
    line = _session_line(monitor, channel, timeout=15)
    assert finished_at and finished_at[0] < time.monotonic()
    assert "reason='send blocked for over 3 s'" in line
    assert "sent=" in line
    stalled.close()
    normal.close()
    broker.close()


def test_a_reader_past_max_pending_is_dropped_at_once(start_monitor, channel: str) -> None:
    """With a long send_timeout, it is the pending count that ends a stalled reader."""
    monitor = start_monitor({"websocket": {"max_pending": 500, "send_timeout": 60}})
    broker = Broker(monitor.zmq_address)
    stalled = _stalled_client(monitor, channel)
    for number in range(6000):
        broker.send(channel, "TASK", f"{number:05}" + "x" * 1000, "COMPLETED")
    line = _session_line(monitor, channel, timeout=15)
    assert "reason='too slow: over 500 messages pending'" in line
    stalled.settimeout(5)
    with contextlib.suppress(ConnectionError):
        while stalled.recv(65536):
            pass  # the server has dropped it: reading ends in EOF or a reset, not a hang
    stalled.close()
    broker.close()


def test_half_open_client_is_closed_after_ping_timeout(start_monitor, channel: str) -> None:
    monitor = start_monitor({"websocket": {"ping_interval": 0.3, "ping_timeout": 0.4}})
    broker = Broker(monitor.zmq_address)
    silent, _ = raw_websocket(monitor.http_port)
    silent.sendall(masked_text_frame(channel))
    alive = subscribe_and_sync(monitor, broker, channel)
    alive_messages: list[str] = []

    def answer_pings_until_ended() -> None:
        """websocket-client answers pings inside recv(), as a browser does on its own."""
        alive.settimeout(5)
        alive_messages.append(alive.recv())

    keeper = threading.Thread(target=answer_pings_until_ended)
    keeper.start()
    started = time.monotonic()
    pings = 0
    while True:
        opcode, payload = read_frame(silent)
        if opcode == 0x9:
            pings += 1
        if opcode == 0x8:
            break
    silenced_after = time.monotonic() - started
    assert pings >= 1
    assert struct.unpack("!H", payload[:2])[0] == 1011
    assert payload[2:] == b"keepalive ping timeout"
    assert 0.3 < silenced_after < 3
    time.sleep(1.0)  # several more ping intervals: the answering client stays
    broker.send(channel, "ENDED")
    keeper.join(timeout=5)
    assert alive_messages == ['{"command": "ENDED"}']
    silent.close()
    broker.close()


def test_connections_past_the_limit_get_503_until_one_closes(start_monitor, channel: str) -> None:
    monitor = start_monitor({"websocket": {"max_connections": 2}})
    broker = Broker(monitor.zmq_address)
    first = subscribe_and_sync(monitor, broker, channel)
    second = subscribe_and_sync(monitor, broker, f"{channel}-2")
    refused, head = raw_websocket(monitor.http_port)
    assert head.startswith(b"HTTP/1.1 503")
    assert b"\r\nRetry-After: 5\r\n" in head
    refused.close()
    first.close()
    monitor.wait_log(f"channel={channel!r} path=/ duration=")
    third = subscribe_and_sync(monitor, broker, f"{channel}-3")
    for ws in (second, third):
        ws.close()
    broker.close()


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Origin": "https://recodex.example.org"}, b"101"),
        ({"Origin": "https://evil.example"}, b"403"),
        ({"Origin": "null"}, b"403"),
        ({}, b"403"),
    ],
    ids=["allowed", "foreign", "null", "none-but-required"],
)
def test_origins(start_monitor, headers: dict, status: bytes) -> None:
    monitor = start_monitor(
        {"websocket": {"allowed_origins": ["https://recodex.example.org"], "require_origin": True}}
    )
    raw, head = raw_websocket(monitor.http_port, headers=headers)
    assert head.startswith(b"HTTP/1.1 " + status), head
    raw.close()


def test_any_origin_and_no_origin_allowed_by_default(monitor) -> None:
    for headers in ({"Origin": "https://anywhere.example"}, {}):
        raw, head = raw_websocket(monitor.http_port, headers=headers)
        assert head.startswith(b"HTTP/1.1 101")
        raw.close()


def test_broker_socket_recovers_from_a_failed_bind(start_monitor, channel: str) -> None:
    """The ZeroMQ port is taken at start: WebSockets are served anyway, and the broker is bound later."""
    port = free_port()
    blocker = occupy_port(port)
    monitor = start_monitor({"zeromq_uri": ["127.0.0.1", port]}, wait=False)
    monitor.wait_log("Address already in use", timeout=20)
    assert "binding a new one in 0.2 s" in monitor.log()
    ws = wait_for(lambda: _try_connect(monitor.ws_url, channel), timeout=10, what="WebSocket while unbound")
    monitor.wait_log(f"subscribed to {channel!r}")
    blocker.close()
    monitor.wait_log("listening for the broker", timeout=15)
    broker = Broker(monitor.zmq_address)
    broker.send(channel, "STARTED")
    assert receive_json(ws) == {"command": "STARTED"}
    ws.close()
    broker.close()


def _try_connect(url: str, channel: str) -> websocket.WebSocket | None:
    try:
        return connect(url, channel)
    except OSError:
        return None


def test_broker_restart_just_works(monitor, broker: Broker, channel: str) -> None:
    ws = subscribe_and_sync(monitor, broker, channel)
    restarted = Broker(monitor.zmq_address)  # a new broker process: new socket, new identity
    restarted.send(channel, "STARTED")
    assert receive_json(ws) == {"command": "STARTED"}
    restarted.close()
    ws.close()


def test_finished_socket_close_does_not_wait_on_stalled_peer(start_monitor, channel: str) -> None:
    """Shutdown with a stalled client still ends within its deadline: the close frame write is bounded."""
    monitor = start_monitor({"websocket": {"send_timeout": 30}})
    broker = Broker(monitor.zmq_address)
    stalled, _ = raw_websocket(monitor.http_port, rcvbuf=4096)
    stalled.sendall(masked_text_frame(channel))
    subscribe_and_sync(monitor, broker, f"{channel}-sync").close()
    for number in range(3000):
        broker.send(channel, "TASK", f"{number:05}" + "y" * 1000, "COMPLETED")
    probe = subscribe_and_sync(monitor, broker, f"{channel}-probe")
    probe.close()
    started = time.monotonic()
    monitor.process.terminate()
    assert monitor.process.wait(timeout=10) == 0
    assert time.monotonic() - started < 4
    stalled.close()
    broker.close()
