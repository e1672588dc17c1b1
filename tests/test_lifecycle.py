"""Starting and stopping: exit command, signals, bad configuration, defaults, the CLI."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from monitor import __version__

from .harness import (
    ROOT,
    Broker,
    MonitorProcess,
    connect,
    receive_close,
    receive_json,
    subscribe_and_sync,
    wait_for,
)

GUNICORN = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
CLI = [sys.executable, "-m", "monitor.cli"]


def _run(command: list[str], config: Path | None, timeout: float = 20) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("MONITOR_CONFIG", None)
    if config is not None and command[:3] == GUNICORN[:3]:
        env["MONITOR_CONFIG"] = str(config)
    elif config is not None:
        command = [*command, "-c", str(config)]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_closes_sockets_with_1001_and_exits_within_2s(
    start_monitor, channel: str, signum: int
) -> None:
    monitor = start_monitor()
    broker = Broker(monitor.zmq_address)
    sockets = [subscribe_and_sync(monitor, broker, f"{channel}-{n}") for n in range(3)]
    idle = connect(monitor.ws_url)  # has not even sent its job id yet
    workers = monitor.worker_pids()
    started = time.monotonic()
    os.kill(monitor.process.pid, signum)
    for ws in [*sockets, idle]:
        assert receive_close(ws) == (1001, "monitor shutting down")
    assert monitor.process.wait(timeout=5) == 0
    assert time.monotonic() - started < 2.0
    assert workers and not any(Path(f"/proc/{pid}").exists() for pid in workers)
    broker.close()


def test_exit_command_stops_master_and_worker(start_monitor, channel: str) -> None:
    monitor = start_monitor()
    broker = Broker(monitor.zmq_address)
    ws = subscribe_and_sync(monitor, broker, channel)
    workers = monitor.worker_pids()
    broker.send("0", "exit")
    assert receive_close(ws) == (1001, "monitor shutting down")
    assert monitor.process.wait(timeout=5) == 0
    assert workers and not any(Path(f"/proc/{pid}").exists() for pid in workers)
    assert "broker sent the exit command: shutting down" in monitor.log()
    broker.close()


def test_exit_command_can_be_disabled(start_monitor, channel: str) -> None:
    monitor = start_monitor({"broker": {"allow_exit_command": False}})
    broker = Broker(monitor.zmq_address)
    ws = subscribe_and_sync(monitor, broker, channel)
    broker.send("0", "exit")
    monitor.wait_log("broker sent the exit command; ignored")
    broker.send(channel, "STARTED")
    assert receive_json(ws) == {"command": "STARTED"}
    assert monitor.process.poll() is None
    broker.close()


BAD_CONFIGS = [
    ("websocket_uri: [127.0.0.1, 4567", "not valid YAML at line"),
    ("websocket_uri: 4567\n", "websocket_uri: expected a list of host and port"),
    ("zeromq_uri: ['127.0.0.1', 70000]\n", "zeromq_uri: expected a port from 1 to 65535, got 70000"),
    (
        "logger:\n  level: loud\n",
        "logger.level: expected one of debug, info, warning, error, critical, got 'loud'",
    ),
    ("logger:\n  max-size: big\n", "logger.max-size: expected an integer"),
    (
        "logger:\n  file: /nonexistent-dir/monitor.log\n",
        "logger.file: cannot open '/nonexistent-dir/monitor.log'",
    ),
    ("websocket:\n  max_message_size: -1\n", "websocket.max_message_size: expected an integer from 16"),
    ("channels:\n  retention_after_finish: soon\n", "channels.retention_after_finish: expected a number"),
    ("channels: [1, 2]\n", "channels: expected a mapping of keys"),
    ("- just\n- a list\n", "top level: expected a mapping of keys"),
]


@pytest.mark.parametrize("command", [GUNICORN, CLI], ids=["gunicorn", "cli"])
@pytest.mark.parametrize(("content", "message"), BAD_CONFIGS, ids=[m.split(":")[0] for _, m in BAD_CONFIGS])
def test_bad_config_stops_startup_with_one_line_and_code_2(
    tmp_path: Path, command: list[str], content: str, message: str
) -> None:
    path = tmp_path / "config.yml"
    path.write_text(content)
    result = _run(command, path)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("recodex-monitor: ")]
    assert lines == [f"recodex-monitor: {path}: {message}" + lines[0].split(message, 1)[1]]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [GUNICORN, CLI], ids=["gunicorn", "cli"])
def test_missing_config_file_is_an_error(tmp_path: Path, command: list[str]) -> None:
    result = _run(command, tmp_path / "absent.yml")
    assert result.returncode == 2
    assert f"recodex-monitor: {tmp_path / 'absent.yml'}: cannot read the configuration file" in result.stderr


def test_unreadable_config_file_is_an_error(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        path = tmp_path  # a directory cannot be read as a file, even by root
    else:
        path = tmp_path / "config.yml"
        path.write_text("logger: {}\n")
        path.chmod(0)
    result = _run(CLI, path)
    assert result.returncode == 2
    assert f"recodex-monitor: {path}: cannot read the configuration file" in result.stderr


def test_unknown_keys_are_warned_about(start_monitor) -> None:
    monitor = start_monitor({"websocket_url": "typo", "logger": {"colour": "blue"}})
    monitor.wait_log("websocket_url: unknown key, ignored")
    monitor.wait_log("logger.colour: unknown key, ignored")


def test_several_workers_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text("logger: {}\n")
    result = _run([*GUNICORN, "--workers", "3"], path)
    assert result.returncode == 2
    assert "recodex-monitor: workers: must be 1, got 3" in result.stderr


@pytest.mark.parametrize("flag", ["--help", "--version", "--bogus"])
def test_cli_flags(flag: str) -> None:
    result = _run([*CLI, flag], None)
    if flag == "--help":
        assert result.returncode == 0
        assert "-c FILE, --config FILE" in result.stdout
    elif flag == "--version":
        assert result.returncode == 0
        assert result.stdout.strip() == f"recodex-monitor {__version__}"
    else:
        assert result.returncode == 2
        assert "unrecognized arguments: --bogus" in result.stderr


def test_cli_serves_the_same_application(start_monitor, channel: str, tmp_path: Path) -> None:
    directory = tmp_path / "cli"
    directory.mkdir()
    monitor = MonitorProcess(directory, command=CLI)
    monitor.command = [*CLI, "-c", str(monitor.config_path)]
    try:
        monitor.start()
        broker = Broker(monitor.zmq_address)
        ws = subscribe_and_sync(monitor, broker, channel)
        broker.send(channel, "FINISHED")
        assert receive_json(ws) == {"command": "FINISHED"}
        assert receive_close(ws) == (1000, "job finished")
        os.kill(monitor.process.pid, signal.SIGTERM)
        assert monitor.process.wait(timeout=5) == 0
        broker.close()
    finally:
        monitor.stop()


NO_CONFIG_SCRIPT = textwrap.dedent(
    """
    set -e
    ip link set lo up
    {python} -m gunicorn -c gunicorn.conf.py wsgi:app 2>"$LOG" &
    pid=$!
    trap 'kill -9 $pid 2>/dev/null || true' EXIT
    {python} - <<'EOF'
    import json, time, urllib.request, websocket, zmq
    deadline = time.monotonic() + 20
    while True:
        try:
            health = json.load(urllib.request.urlopen("http://127.0.0.1:4567/healthz", timeout=1))
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    broker = zmq.Context().socket(zmq.ROUTER)
    broker.setsockopt(zmq.ROUTER_MANDATORY, 1)
    broker.connect("tcp://127.0.0.1:7894")
    ws = websocket.create_connection("ws://127.0.0.1:4567/", timeout=5)
    ws.send("job")
    while True:
        try:
            broker.send_multipart([b"recodex-monitor", b"job", b"STARTED"])
            break
        except zmq.ZMQError:
            time.sleep(0.02)
    print(health["status"], health["version"], ws.recv())
    EOF
    kill -TERM $pid
    wait $pid
    """
)


def test_starts_on_builtin_defaults_without_config(tmp_path: Path) -> None:
    """The defaults are fixed ports, so this runs in a private network namespace (root, as in CI)."""
    missing = [tool for tool in ("unshare", "ip") if shutil.which(tool) is None]
    if missing or os.geteuid() != 0:
        reason = f"needs root and {', '.join(missing) or 'unshare, ip'} for a private network namespace"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}: .ci/run runs as root and installs util-linux and iproute2")
        pytest.skip(reason)
    env = {key: value for key, value in os.environ.items() if key != "MONITOR_CONFIG"}
    env["LOG"] = str(tmp_path / "stderr.log")
    script = NO_CONFIG_SCRIPT.format(python=sys.executable)
    result = subprocess.run(
        ["unshare", "--net", "--", "bash", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    log = (tmp_path / "stderr.log").read_text()
    assert result.returncode == 0, result.stderr + log
    assert result.stdout.strip() == f'ok {__version__} {{"command": "STARTED"}}'
    assert "WebSockets at 127.0.0.1:4567, broker at tcp://127.0.0.1:7894" in log
    assert "monitor.service:" in log  # logging went to stderr


def test_monitor_survives_many_connections_closing_at_once(start_monitor, channel: str) -> None:
    monitor = start_monitor()
    broker = Broker(monitor.zmq_address)
    sockets = [connect(monitor.ws_url, channel) for _ in range(50)]
    broker.send(channel, "FINISHED")
    for ws in sockets:
        assert receive_json(ws) == {"command": "FINISHED"}
        assert receive_close(ws)[0] == 1000
    wait_for(lambda: monitor.log().count(f"channel={channel!r}") == 50, what="50 session log lines")
    broker.close()
