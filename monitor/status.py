"""The JSON documents behind ``/healthz`` and the status page: counts, never channel ids."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from . import __version__

if TYPE_CHECKING:
    from .service import Monitor


def health(monitor: Monitor) -> tuple[dict[str, Any], int]:
    """Cheap enough to poll every second: reads a few attributes, scans nothing.

    ``ok`` (200) needs the broker listener alive and bound; otherwise the monitor
    still serves its sockets but hears nothing from the broker: ``degraded`` (503).
    """
    listener = monitor.listener
    ok = listener.up
    last = listener.last_message_at
    document = {
        "status": "ok" if ok else "degraded",
        "version": __version__,
        "broker_listener": {"alive": listener.alive, "bound": listener.bound, "failures": listener.failures},
        "seconds_since_last_broker_message": None if last is None else round(time.monotonic() - last, 3),
        "uptime_seconds": round(time.time() - monitor.started_at, 3),
        "websockets_open": monitor.open_sockets,
        "channels": len(monitor.registry),
    }
    return document, 200 if ok else 503


def status(monitor: Monitor) -> dict[str, Any]:
    """What the status page shows; totals only, the page derives rates from two readings."""
    document, _ = health(monitor)
    registry = monitor.registry
    stats = monitor.stats
    document["channels"] = {"total": len(registry), **registry.counts_by_state()}
    document["messages"] = {
        "received": sum(stats.received.values()),
        "malformed": stats.malformed,
        "delivered": stats.delivered,
        "replayed": stats.replayed,
    }
    document["connections"] = {"opened": stats.opened, "closed": sum(stats.closed.values())}
    return document
