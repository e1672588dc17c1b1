"""What an operator sees: /healthz, /metrics, /status.json and the log lines."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
import websocket
from prometheus_client.parser import text_string_to_metric_families

from monitor import __version__

from .harness import (
    Broker,
    MonitorProcess,
    connect,
    free_port,
    occupy_port,
    receive_close,
    receive_json,
    subscribe_and_sync,
    wait_for,
)


def _get(url: str) -> tuple[int, bytes, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers)


def _metrics(monitor: MonitorProcess) -> dict[tuple[str, tuple], float]:
    status, body, headers = _get(monitor.http_url + "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_healthz_ok_with_its_fields(monitor: MonitorProcess, broker: Broker, channel: str) -> None:
    broker.send(channel, "STARTED")
    wait_for(
        lambda: (
            json.loads(_get(monitor.http_url + "/healthz")[1])["seconds_since_last_broker_message"]
            is not None
        )
    )
    status, body, headers = _get(monitor.http_url + "/healthz")
    document = json.loads(body)
    assert status == 200
    assert headers["Cache-Control"] == "no-store"
    assert document["status"] == "ok"
    assert document["version"] == __version__
    assert document["broker_listener"] == {"alive": True, "bound": True, "failures": 0}
    assert 0 <= document["seconds_since_last_broker_message"] < 60
    assert document["uptime_seconds"] > 0
    assert isinstance(document["websockets_open"], int)
    assert document["channels"] >= 1


def test_healthz_is_503_while_the_broker_socket_cannot_bind(start_monitor, channel: str) -> None:
    port = free_port()
    blocker = occupy_port(port)
    monitor = start_monitor({"zeromq_uri": ["127.0.0.1", port]}, wait=False)
    monitor.wait_log("Address already in use", timeout=20)
    status, body, _ = wait_for(
        lambda: _try_get(monitor.http_url + "/healthz"), timeout=10, what="/healthz while unbound"
    )
    document = json.loads(body)
    assert status == 503
    assert document["status"] == "degraded"
    assert document["broker_listener"]["bound"] is False
    assert document["broker_listener"]["failures"] >= 1
    assert _value(_metrics(monitor), "recodex_monitor_broker_listener_up") == 0
    blocker.close()
    wait_for(lambda: _get(monitor.http_url + "/healthz")[0] == 200, timeout=15, what="/healthz back to 200")
    assert _value(_metrics(monitor), "recodex_monitor_broker_listener_up") == 1


def _try_get(url: str) -> tuple[int, bytes, dict] | None:
    try:
        return _get(url)
    except OSError:
        return None


def test_metrics_move_by_exactly_what_a_session_causes(start_monitor, channel: str) -> None:
    monitor = start_monitor()
    broker = Broker(monitor.zmq_address)
    a, b = f"{channel}-a", f"{channel}-b"
    watchers_a = [connect(monitor.ws_url, a) for _ in range(2)]
    watcher_b = connect(monitor.ws_url, b)
    wait_for(lambda: monitor.log().count("subscribed to") == 3, what="three subscriptions")
    before = _metrics(monitor)
    assert _value(before, "recodex_monitor_websockets_open") == 3

    broker.send(a, "STARTED")
    broker.send(a, "TASK", "t1", "COMPLETED")
    broker.send_frames([b"only-a-channel"])
    broker.send(b, "STARTED")
    broker.send(a, "FINISHED")
    for ws in watchers_a:
        assert [receive_json(ws)["command"] for _ in range(3)] == ["STARTED", "TASK", "FINISHED"]
        assert receive_close(ws)[0] == 1000
    assert receive_json(watcher_b) == {"command": "STARTED"}
    late = connect(monitor.ws_url, a)
    assert [receive_json(late)["command"] for _ in range(3)] == ["STARTED", "TASK", "FINISHED"]
    assert receive_close(late)[0] == 1000
    watcher_b.close()
    wait_for(
        lambda: _value(_metrics(monitor), "recodex_monitor_websockets_open") == 0, what="all sockets closed"
    )
    after = _metrics(monitor)

    def delta(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    received = "recodex_monitor_broker_messages_received_total"
    assert delta(received, command="STARTED") == 2
    assert delta(received, command="TASK") == 1
    assert delta(received, command="FINISHED") == 1
    assert delta("recodex_monitor_broker_messages_malformed_total") == 1
    assert delta("recodex_monitor_messages_delivered_total") == 3 * 2 + 1 + 3
    assert delta("recodex_monitor_messages_replayed_total") == 3
    assert delta("recodex_monitor_connections_opened_total") == 1
    closed = "recodex_monitor_connections_closed_total"
    assert delta(closed, reason="finished") == 3
    assert delta(closed, reason="client_gone") == 1
    assert delta(closed, reason="slow") == 0
    assert _value(after, "recodex_monitor_channels", state="finished") == 1
    assert _value(after, "recodex_monitor_channels", state="unwatched") == 1
    assert _value(after, "recodex_monitor_channels", state="watched") == 0
    writes = delta("recodex_monitor_delivery_latency_seconds_count")
    assert 1 <= writes <= 3 * 2 + 1
    assert _value(after, "process_resident_memory_bytes") > 0
    broker.close()


def test_refusals_are_counted_by_reason(start_monitor) -> None:
    monitor = start_monitor({"websocket": {"allowed_origins": ["https://recodex.example.org"]}})
    with pytest.raises(websocket.WebSocketBadStatusException, match="403"):
        connect(monitor.ws_url, header=["Origin: https://evil.example"])
    assert _value(_metrics(monitor), "recodex_monitor_connections_closed_total", reason="origin") == 1


def test_metrics_and_status_page_can_be_switched_off(start_monitor) -> None:
    monitor = start_monitor({"http": {"metrics_enabled": False, "status_page_enabled": False}})
    assert _get(monitor.http_url + "/metrics")[0] == 426  # just another socket path now
    status, body, _ = _get(monitor.http_url + "/")
    assert (status, body.decode()) == (200, f"recodex-monitor {__version__}\n")
    assert _get(monitor.http_url + "/healthz")[0] == 200


def test_status_json_has_counts_and_never_channel_ids(
    monitor: MonitorProcess, broker: Broker, channel: str
) -> None:
    ws = subscribe_and_sync(monitor, broker, channel)
    status, body, _ = _get(monitor.http_url + "/status.json")
    assert status == 200
    document = json.loads(body)
    assert channel not in body.decode()
    assert document["version"] == __version__
    assert document["websockets_open"] >= 1
    assert document["channels"]["total"] >= 1 and document["channels"]["watched"] >= 1
    assert document["messages"]["received"] >= 1 and document["messages"]["delivered"] >= 1
    ws.close()


def test_status_page_names_version_for_plain_clients(monitor: MonitorProcess) -> None:
    status, body, headers = _get(monitor.http_url + "/")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert f"recodex-monitor {__version__}" in body.decode()


def test_session_log_line_and_forwarded_for_from_trusted_proxy_only(start_monitor, channel: str) -> None:
    trusting = start_monitor({"websocket": {"trusted_proxies": ["127.0.0.0/8"]}, "logger": {"level": "info"}})
    untrusting = start_monitor({"logger": {"level": "info"}})
    for monitor, expected in ((trusting, "198.51.100.7"), (untrusting, "127.0.0.1")):
        broker = Broker(monitor.zmq_address)
        ws = connect(monitor.ws_url + "/ws", channel, header=["X-Forwarded-For: 198.51.100.7, 127.0.0.1"])
        for number in range(50):
            broker.send(channel, "TASK", f"t{number}", "COMPLETED")
        broker.send(channel, "FINISHED")
        for _ in range(51):
            receive_json(ws)
        receive_close(ws)
        log = monitor.wait_log(f"channel={channel!r}")
        line = next(entry for entry in log.splitlines() if f"channel={channel!r}" in entry)
        assert (
            f"] [INFO] monitor.service: websocket {expected} channel={channel!r} path=/ws duration=" in line
        )
        assert "sent=51 close=1000 reason='job finished'" in line
        # Nothing per message above debug: the three start-up lines and this one.
        assert len(log.splitlines()) == 4, log
        broker.close()


def test_startup_lines_state_endpoints_and_limits(monitor: MonitorProcess) -> None:
    log = monitor.log()
    http, zmq = monitor.config["websocket_uri"][1], monitor.config["zeromq_uri"][1]
    assert f"WebSockets at 127.0.0.1:{http}, broker at tcp://127.0.0.1:{zmq}" in log
    assert "max 10000 connections" in log
    assert "ping every 25 s, silence allowed 20 s more; send timeout 10 s; max 20000 pending messages" in log
    assert "origins *; exit command allowed" in log
    assert (
        f"listening for the broker at tcp://127.0.0.1:{zmq} (ZeroMQ ROUTER, identity recodex-monitor)" in log
    )
