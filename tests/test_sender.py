"""``recodex-monitor-send`` run as a subprocess against a real monitor and real WebSocket clients."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import websocket
import yaml

from monitor.send import demo_run, zmq_address_from_config

from .harness import ROOT, MonitorProcess, connect, free_port, receive_close, receive_json, wait_for

NO_MONITOR = "is it running, and is zeromq_uri right?"


def send(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "monitor.send", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def receive_text(ws: websocket.WebSocket) -> str:
    opcode, data = ws.recv_data()
    assert opcode == websocket.ABNF.OPCODE_TEXT
    return data.decode("utf-8")


def test_single_message_arrives_as_the_protocols_json(monitor: MonitorProcess, channel: str) -> None:
    ws = connect(monitor.ws_url, channel)
    try:
        result = send(channel, "STARTED", "--zmq", monitor.zmq_address)
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"sent {channel} STARTED\n"
        assert receive_text(ws) == '{"command": "STARTED"}'
    finally:
        ws.close()


def test_task_message_carries_task_id_and_state(monitor: MonitorProcess, channel: str) -> None:
    ws = connect(monitor.ws_url, channel)
    try:
        # Lower case is accepted for the words of the protocol, as a person types them.
        result = send(channel, "task", "t01", "completed", "--zmq", monitor.zmq_address, "--quiet")
        assert result.returncode == 0, result.stderr
        assert result.stdout == ""
        assert receive_text(ws) == '{"command": "TASK", "task_id": "t01", "task_state": "COMPLETED"}'
    finally:
        ws.close()


def test_demo_sends_a_whole_run_in_order_and_the_monitor_closes_after_finished(
    monitor: MonitorProcess, channel: str
) -> None:
    ws = connect(monitor.ws_url, channel)
    try:
        result = send("--demo", channel, "--interval", "0.01", "--zmq", monitor.zmq_address)
        assert result.returncode == 0, result.stderr
        received = [receive_json(ws) for _ in demo_run()]
        assert receive_close(ws) == (1000, "job finished")
    finally:
        ws.close()
    expected = []
    for frames in demo_run():
        message = {"command": frames[0]}
        if frames[0] == "TASK":
            message.update(task_id=frames[1], task_state=frames[2])
        expected.append(message)
    assert received == expected
    commands = [message["command"] for message in received]
    assert commands[:2] == ["DOWNLOADED", "STARTED"]
    assert commands[-3:] == ["ENDED", "UPLOADED", "FINISHED"]
    states = [message["task_state"] for message in received if message["command"] == "TASK"]
    assert len(states) == 12
    assert {state: states.count(state) for state in set(states)} == {
        "COMPLETED": 10,
        "FAILED": 1,
        "SKIPPED": 1,
    }
    assert len(result.stdout.splitlines()) == len(expected)


def test_demo_goes_at_a_human_pace(monitor: MonitorProcess, channel: str) -> None:
    started = time.monotonic()
    result = send("--demo", channel, "--interval", "0.05", "--zmq", monitor.zmq_address, "-q")
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started >= 0.05 * (len(demo_run()) - 1)


def test_config_file_gives_the_endpoint(monitor: MonitorProcess, channel: str) -> None:
    ws = connect(monitor.ws_url, channel)
    try:
        result = send(channel, "FINISHED", "-c", str(monitor.config_path))
        assert result.returncode == 0, result.stderr
        assert receive_json(ws) == {"command": "FINISHED"}
    finally:
        ws.close()


@pytest.mark.parametrize(
    ("host", "connect_to"),
    [("0.0.0.0", "127.0.0.1"), ("*", "127.0.0.1"), ("::", "[::1]"), ("10.1.2.3", "10.1.2.3")],
)
def test_wildcard_bind_host_in_the_config_means_loopback(tmp_path: Path, host: str, connect_to: str) -> None:
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump({"zeromq_uri": [host, 7000]}), encoding="utf-8")
    assert zmq_address_from_config(str(path)) == f"tcp://{connect_to}:7000"


def test_sender_started_before_the_monitor_waits_for_it(
    start_monitor: Callable[..., MonitorProcess], channel: str
) -> None:
    monitor = start_monitor(wait=False)
    sender = subprocess.Popen(
        [sys.executable, "-m", "monitor.send", channel, "STARTED", "-c", str(monitor.config_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, stderr = sender.communicate(timeout=30)
    finally:
        if sender.poll() is None:
            sender.kill()
    assert sender.returncode == 0, stderr
    wait_for(monitor._ready, timeout=20, what="monitor ready")
    ws = connect(monitor.ws_url, channel)
    try:
        assert receive_json(ws) == {"command": "STARTED"}  # kept in the channel's history
    finally:
        ws.close()


def test_no_monitor_listening_exits_1_with_a_clear_message() -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = send("job-1", "STARTED", "--zmq", address, "--timeout", "1")
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert result.stdout == ""
    assert f"no monitor connected at {address}: {NO_MONITOR}" in result.stderr
    assert 1.0 <= elapsed < 4.0


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["job-1"],
        ["job-1", "BOGUS"],
        ["job-1", "exit"],
        ["job-1", "TASK"],
        ["job-1", "TASK", "t01"],
        ["job-1", "TASK", "t01", "DONE"],
        ["job-1", "TASK", "", "COMPLETED"],
        ["job-1", "STARTED", "t01"],
        ["job-1", "STARTED", "t01", "COMPLETED"],
        ["job-1", "TASK", "t01", "COMPLETED", "extra"],
        ["--demo", "job-1", "STARTED"],
        ["", "STARTED"],
        ["job-1", "STARTED", "--zmq", "127.0.0.1:7894"],
        ["job-1", "STARTED", "--zmq", "tcp://127.0.0.1:7894", "-c", "config.yml"],
        ["job-1", "STARTED", "-c", "/nonexistent/config.yml"],
        ["job-1", "STARTED", "--timeout", "0"],
        ["--demo", "job-1", "--interval", "-1"],
        ["--demo", "job-1", "--interval", "soon"],
    ],
)
def test_bad_arguments_exit_2_before_sending_anything(args: list[str]) -> None:
    # A short timeout: were a bad argument accepted, the test fails fast with exit 1.
    result = send(*args) if "--timeout" in args else send(*args, "--timeout", "1")
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "error:" in result.stderr
    assert result.stdout == ""
