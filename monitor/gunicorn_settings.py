"""The gunicorn settings derived from the monitor's config, shared by both ways to start it.

``gunicorn -c gunicorn.conf.py wsgi:app`` and ``recodex-monitor -c FILE`` must run
the very same server, so both take their settings from :func:`gunicorn_settings`.
"""

from __future__ import annotations

import sys
from typing import Any

from .config import Config

WORKER_CLASS = "monitor.worker.MonitorWorker"


def refuse_several_workers(server: Any) -> None:
    """gunicorn ``on_starting`` hook: each worker would bind the same ZeroMQ endpoint."""
    if server.cfg.workers != 1:
        print(
            f"recodex-monitor: workers: must be 1, got {server.cfg.workers} "
            "(every worker would bind the same ZeroMQ endpoint)",
            file=sys.stderr,
        )
        sys.exit(2)
    if server.cfg.worker_class_str != WORKER_CLASS:
        print(
            f"recodex-monitor: worker_class: must be {WORKER_CLASS}, got {server.cfg.worker_class_str}",
            file=sys.stderr,
        )
        sys.exit(2)


def gunicorn_settings(config: Config) -> dict[str, Any]:
    return {
        "bind": [config.websocket_uri.bind_address()],
        "workers": 1,
        "worker_class": WORKER_CLASS,
        "worker_connections": config.worker_connections,
        "preload_app": False,
        "graceful_timeout": int(config.server.shutdown_timeout) + 3,
        "timeout": 30,
        "keepalive": 5,
        "proc_name": "recodex-monitor",
        "control_socket_disable": True,
        "on_starting": refuse_several_workers,
    }
