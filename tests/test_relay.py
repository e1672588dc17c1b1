"""Broker in, browsers out: delivery, replay, fan-out, isolation and closing, against a real gunicorn."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
import websocket

from monitor import __version__

from .harness import (
    Broker,
    MonitorProcess,
    connect,
    receive_close,
    receive_json,
    subscribe_and_sync,
)


def test_task_message_arrives_as_exact_json_text(
    monitor: MonitorProcess, broker: Broker, channel: str
) -> None:
    ws = subscribe_and_sync(monitor, broker, channel)
    broker.send(channel, "TASK", "t01", "COMPLETED")
    opcode, data = ws.recv_data()
    assert opcode == websocket.ABNF.OPCODE_TEXT
    assert data.decode() == '{"command": "TASK", "task_id": "t01", "task_state": "COMPLETED"}'
    ws.close()


@pytest.mark.parametrize("command", ["DOWNLOADED", "STARTED", "ENDED", "UPLOADED", "FAILED", "ABORTED"])
def test_commands_without_task_frames(
    monitor: MonitorProcess, broker: Broker, channel: str, command: str
) -> None:
    ws = subscribe_and_sync(monitor, broker, channel)
    broker.send(channel, command)
    assert ws.recv() == json.dumps({"command": command})
    ws.close()


def test_late_joiner_gets_whole_history_in_order_then_live(
    monitor: MonitorProcess, broker: Broker, channel: str
) -> None:
    sent = [{"command": "STARTED"}]
    broker.send(channel, "STARTED")
    for number in range(250):
        state = ("COMPLETED", "FAILED", "SKIPPED")[number % 3]
        broker.send(channel, "TASK", f"t{number:03}", state)
        sent.append({"command": "TASK", "task_id": f"t{number:03}", "task_state": state})
    # The channel exists before the join: the history must come from the monitor's memory.
    first = subscribe_and_sync(monitor, broker, f"{channel}-other")
    first.close()
    ws = connect(monitor.ws_url, channel)
    assert [receive_json(ws) for _ in sent] == sent
    broker.send(channel, "ENDED")
    assert receive_json(ws) == {"command": "ENDED"}
    ws.close()


def test_two_subscribers_of_one_channel_both_get_everything(
    monitor: MonitorProcess, broker: Broker, channel: str
) -> None:
    first = subscribe_and_sync(monitor, broker, channel)
    second = connect(monitor.ws_url, channel)
    assert receive_json(second) == {"command": "DOWNLOADED"}
    for number in range(5):
        broker.send(channel, "TASK", f"t{number}", "COMPLETED")
    for ws in (first, second):
        assert [receive_json(ws)["task_id"] for _ in range(5)] == [f"t{n}" for n in range(5)]
        ws.close()


def test_channels_are_isolated(monitor: MonitorProcess, broker: Broker, channel: str) -> None:
    mine = subscribe_and_sync(monitor, broker, channel)
    other = subscribe_and_sync(monitor, broker, f"{channel}-b")
    broker.send(f"{channel}-b", "STARTED")
    broker.send(channel, "ENDED")
    assert receive_json(mine) == {"command": "ENDED"}
    assert receive_json(other) == {"command": "STARTED"}
    mine.settimeout(0.3)
    with pytest.raises(websocket.WebSocketTimeoutException):
        mine.recv()
    mine.close()
    other.close()


def test_finished_is_delivered_then_socket_closed_normally(
    monitor: MonitorProcess, broker: Broker, channel: str
) -> None:
    ws = subscribe_and_sync(monitor, broker, channel)
    broker.send(channel, "FINISHED")
    assert receive_json(ws) == {"command": "FINISHED"}
    assert receive_close(ws) == (1000, "job finished")


def test_subscribing_before_the_first_message(monitor: MonitorProcess, broker: Broker, channel: str) -> None:
    ws = connect(monitor.ws_url, channel)
    monitor.wait_log(f"subscribed to {channel!r} with a replay of 0 message(s)")
    broker.send(channel, "STARTED")
    assert receive_json(ws) == {"command": "STARTED"}
    ws.close()


def test_joining_finished_channel_within_retention_replays_and_closes(
    monitor: MonitorProcess, broker: Broker, channel: str
) -> None:
    ws = subscribe_and_sync(monitor, broker, channel)
    broker.send(channel, "FINISHED")
    assert receive_json(ws) == {"command": "FINISHED"}
    receive_close(ws)
    late = connect(monitor.ws_url, channel)
    assert [receive_json(late) for _ in range(2)] == [{"command": "DOWNLOADED"}, {"command": "FINISHED"}]
    assert receive_close(late) == (1000, "job finished")


def test_joining_finished_channel_after_retention_gets_nothing(
    monitor: MonitorProcess, broker: Broker, channel: str
) -> None:
    """The shared monitor keeps finished channels for 2 s (conftest.SHARED_CONFIG)."""
    ws = subscribe_and_sync(monitor, broker, channel)
    broker.send(channel, "FINISHED")
    receive_json(ws)
    receive_close(ws)
    time.sleep(3.5)
    late = connect(monitor.ws_url, channel)
    late.settimeout(0.5)
    with pytest.raises(websocket.WebSocketTimeoutException):
        late.recv()
    broker.send(channel, "STARTED")
    assert receive_json(late) == {"command": "STARTED"}
    late.close()


@pytest.mark.parametrize("path", ["/", "/ws", "/ws/anything", "/deep/er/path?x=1"])
def test_upgrade_accepted_on_any_path(
    monitor: MonitorProcess, broker: Broker, channel: str, path: str
) -> None:
    ws = connect(monitor.ws_url + path, channel)
    broker.send(channel, "STARTED")
    assert receive_json(ws) == {"command": "STARTED"}
    ws.close()


def test_non_ascii_ids(monitor: MonitorProcess, broker: Broker, channel: str) -> None:
    job = f"{channel}-úloha č. 1 ✓ 提交"
    ws = subscribe_and_sync(monitor, broker, job)
    broker.send(job, "TASK", "test-ž 1", "COMPLETED")
    assert receive_json(ws) == {"command": "TASK", "task_id": "test-ž 1", "task_state": "COMPLETED"}
    ws.close()


def test_plain_http_root_names_service_and_version(monitor: MonitorProcess) -> None:
    with urllib.request.urlopen(monitor.http_url + "/", timeout=5) as response:
        assert response.status == 200
        assert f"recodex-monitor {__version__}" in response.read().decode()


def test_plain_http_on_socket_path_says_upgrade_required(monitor: MonitorProcess) -> None:
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(monitor.http_url + "/ws", timeout=5)
    assert error.value.code == 426
