"""Counters of what the monitor did, kept as plain integers.

The hot path (one broker message, many sockets) only adds to integers; turning
them into Prometheus metrics or a status document happens when someone asks.
"""

from __future__ import annotations

from collections import Counter


class Stats:
    """Totals since start-up; see :mod:`monitor.metrics` for how they are exported."""

    __slots__ = ("closed", "delivered", "malformed", "opened", "received", "replayed")

    def __init__(self) -> None:
        self.received: Counter[str] = Counter()
        self.malformed = 0
        self.delivered = 0
        self.replayed = 0
        self.opened = 0
        self.closed: Counter[str] = Counter()
