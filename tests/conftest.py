"""Fixtures: one shared monitor for most tests, and fresh ones for tests that need their own."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .harness import Broker, MonitorProcess

# Small timeouts keep the suite quick; tests that depend on them say so.
SHARED_CONFIG = {
    "websocket": {"first_message_timeout": 1.5},
    "channels": {"retention_after_finish": 2},
}

_started: list[MonitorProcess] = []


@pytest.fixture(scope="session")
def monitor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MonitorProcess]:
    process = MonitorProcess(tmp_path_factory.mktemp("shared-monitor"), SHARED_CONFIG)
    _started.append(process)
    try:
        yield process.start()
    finally:
        process.stop()


@pytest.fixture(scope="session")
def broker(monitor: MonitorProcess) -> Iterator[Broker]:
    socket = Broker(monitor.zmq_address)
    yield socket
    socket.close()


@pytest.fixture
def start_monitor(tmp_path: Path) -> Iterator[Callable[..., MonitorProcess]]:
    """Start a monitor of the test's own (config overrides, command, wait); stopped afterwards."""
    mine: list[MonitorProcess] = []

    def start(
        extra: dict | None = None, command: list[str] | None = None, wait: bool = True
    ) -> MonitorProcess:
        directory = tmp_path / f"monitor{len(mine)}"
        directory.mkdir()
        process = MonitorProcess(directory, extra, command)
        mine.append(process)
        _started.append(process)
        return process.start(wait=wait)

    try:
        yield start
    finally:
        for process in mine:
            process.stop()


@pytest.fixture(autouse=True)
def close_leftover_brokers() -> Iterator[None]:
    """Close the broker sockets of a test that failed before closing them (see harness.Broker)."""
    shared = set(Broker.open_brokers)
    yield
    for broker in Broker.open_brokers - shared:
        broker.close()


@pytest.fixture
def channel() -> str:
    """A job id no other test uses."""
    return f"job-{uuid.uuid4().hex[:12]}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Belt and braces: whatever happened, no monitor outlives the suite."""
    for process in _started:
        process.stop()
