"""Prometheus metrics: a collector that reads the monitor's counters at scrape time.

The monitor counts with plain integers (:mod:`monitor.stats`); this collector
turns them into metric families only when Prometheus scrapes, so a delivery
costs no metric-library call.  The process collector adds the standard
``process_*`` series (RSS, CPU seconds, open file descriptors).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
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
        yield GaugeMetricFamily(
            PREFIX + "broker_listener_up",
            "1 while the ZeroMQ listener is running and bound, else 0.",
            value=int(monitor.listener.up),
        )
        channels = registry.counts_by_state()
        yield _labelled(GaugeMetricFamily, "channels", "Channels (jobs) held, by state.", "state", channels)
        yield _labelled(
            CounterMetricFamily,
            "broker_messages_received",
            "Broker messages received, by command.",
            "command",
            stats.received,
        )
        yield _labelled(
            CounterMetricFamily,
            "connections_closed",
            "WebSocket connections ended or refused, by reason.",
            "reason",
            stats.closed,
        )
        for name, documentation, value in (
            ("broker_messages_malformed", "Broker messages dropped as malformed.", stats.malformed),
            (
                "broker_socket_failures",
                "ZeroMQ socket failures (each followed by a new bind).",
                monitor.listener.failures,
            ),
            ("messages_delivered", "Messages written to WebSockets (replays included).", stats.delivered),
            ("messages_replayed", "Messages queued as replays for late subscribers.", stats.replayed),
            ("connections_opened", "WebSocket connections accepted.", stats.opened),
            ("channels_expired", "Channels dropped after retention or idle timeout.", registry.expired),
            ("channels_evicted", "Channels evicted to stay within max_channels.", registry.evicted),
        ):
            yield CounterMetricFamily(PREFIX + name, documentation, value=value)


def _labelled(
    family: type[Metric], name: str, documentation: str, label: str, values: Mapping[str, int]
) -> Metric:
    """One metric family with a sample per label value, in a stable order."""
    metric = family(PREFIX + name, documentation, labels=[label])
    for key, value in sorted(values.items()):
        metric.add_metric([key], value)
    return metric


def install(monitor: Monitor) -> None:
    """Register the monitor's collectors in its stats registry (which holds the latency histogram)."""
    monitor.stats.registry.register(MonitorCollector(monitor))
    ProcessCollector(registry=monitor.stats.registry)


def exposition(monitor: Monitor) -> tuple[bytes, str]:
    """The text exposition format and its content type."""
    return generate_latest(monitor.stats.registry), CONTENT_TYPE_LATEST
