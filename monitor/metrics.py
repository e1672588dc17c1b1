"""Prometheus metrics: a collector that reads the monitor's counters at scrape time.

The monitor counts with plain integers (:mod:`monitor.stats`); this collector
turns them into metric families only when Prometheus scrapes, so a delivery
costs no metric-library call.  The process collector adds the standard
``process_*`` series (RSS, CPU seconds, open file descriptors).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from .service import Monitor

PREFIX = "recodex_monitor_"


class MonitorCollector(Collector):
    """Reads a :class:`monitor.service.Monitor`'s state into metric families."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    def collect(self) -> Iterator[Metric]:
        monitor = self.monitor
        stats = monitor.stats
        registry = monitor.registry

        yield GaugeMetricFamily(
            PREFIX + "websockets_open", "Open WebSocket connections.", value=monitor.open_sockets
        )
        channels = GaugeMetricFamily(PREFIX + "channels", "Channels (jobs) held, by state.", labels=["state"])
        finished = registry.finished_count
        unwatched = registry.unwatched_count
        channels.add_metric(["watched"], len(registry) - finished - unwatched)
        channels.add_metric(["unwatched"], unwatched)
        channels.add_metric(["finished"], finished)
        yield channels
        yield GaugeMetricFamily(
            PREFIX + "broker_listener_up",
            "1 while the ZeroMQ listener is running and bound, else 0.",
            value=int(monitor.listener.alive and monitor.listener.bound),
        )

        received = CounterMetricFamily(
            PREFIX + "broker_messages_received", "Broker messages received, by command.", labels=["command"]
        )
        for command, count in sorted(stats.received.items()):
            received.add_metric([command], count)
        yield received
        yield CounterMetricFamily(
            PREFIX + "broker_messages_malformed",
            "Broker messages dropped as malformed.",
            value=stats.malformed,
        )
        yield CounterMetricFamily(
            PREFIX + "broker_socket_failures",
            "ZeroMQ socket failures (each followed by a new bind).",
            value=monitor.listener.failures,
        )
        yield CounterMetricFamily(
            PREFIX + "messages_delivered",
            "Messages written to WebSockets (replays included).",
            value=stats.delivered,
        )
        yield CounterMetricFamily(
            PREFIX + "messages_replayed",
            "Messages queued as replays for late subscribers.",
            value=stats.replayed,
        )
        yield CounterMetricFamily(
            PREFIX + "connections_opened", "WebSocket connections accepted.", value=stats.opened
        )
        closed = CounterMetricFamily(
            PREFIX + "connections_closed",
            "WebSocket connections ended or refused, by reason.",
            labels=["reason"],
        )
        for reason, count in sorted(stats.closed.items()):
            closed.add_metric([reason], count)
        yield closed
        yield CounterMetricFamily(
            PREFIX + "channels_expired",
            "Channels dropped after retention or idle timeout.",
            value=registry.expired,
        )
        yield CounterMetricFamily(
            PREFIX + "channels_evicted",
            "Channels evicted to stay within max_channels.",
            value=registry.evicted,
        )


def install(monitor: Monitor) -> None:
    """Register the monitor's collectors in its stats registry (which holds the latency histogram)."""
    monitor.stats.registry.register(MonitorCollector(monitor))
    ProcessCollector(registry=monitor.stats.registry)


def exposition(monitor: Monitor) -> tuple[bytes, str]:
    """The text exposition format and its content type."""
    return generate_latest(monitor.stats.registry), CONTENT_TYPE_LATEST
