"""Counters of what the monitor did, kept as plain integers.

The hot path (one broker message, many sockets) only adds to integers; turning
them into Prometheus metrics or a status document happens when someone asks
(:mod:`monitor.metrics`).  The one exception is the delivery latency histogram,
observed once per socket write, not once per message.
"""

from __future__ import annotations

from collections import Counter

from prometheus_client import CollectorRegistry, Histogram

# Commands a deployed broker sends; anything else is counted as "other" so that a
# misbehaving broker cannot create unbounded label values.
KNOWN_COMMANDS = frozenset(
    {"DOWNLOADED", "STARTED", "TASK", "ENDED", "UPLOADED", "FINISHED", "FAILED", "ABORTED", "exit"}
)
CLOSE_REASONS = (
    "finished",
    "client_gone",
    "slow",
    "timeout",
    "bad_input",
    "origin",
    "limit",
    "shutdown",
    "error",
)
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Stats:
    """Totals since start-up, and the registry that the latency histogram lives in."""

    __slots__ = (
        "closed",
        "delivered",
        "latency",
        "malformed",
        "opened",
        "received",
        "registry",
        "replayed",
    )

    def __init__(self) -> None:
        self.received: Counter[str] = Counter()
        self.malformed = 0
        self.delivered = 0
        self.replayed = 0
        self.opened = 0
        self.closed: Counter[str] = Counter(dict.fromkeys(CLOSE_REASONS, 0))
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "recodex_monitor_delivery_latency_seconds",
            "Time from a broker message's receipt to the socket write that carried it "
            "(observed once per write, for its oldest message).",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def count_received(self, command: str) -> None:
        self.received[command if command in KNOWN_COMMANDS else "other"] += 1
