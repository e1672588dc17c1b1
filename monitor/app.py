"""The Flask application factory: one WebSocket view on every path, and a plain page."""

from __future__ import annotations

from flask import Flask, Response, request

from . import __version__
from .config import Config
from .handler import EXTENSION_KEY
from .logs import configure_logging
from .service import Monitor


def create_app(config: Config, warnings: list[str] | None = None) -> Flask:
    """Build the app with its :class:`Monitor`; the worker starts the monitor after fork."""
    configure_logging(config.logger)
    app = Flask("monitor")
    monitor = Monitor(config)
    app.extensions[EXTENSION_KEY] = monitor
    for warning in warnings or ():
        app.logger.warning("configuration %s: %s", config.source, warning)

    def watch(path: str) -> Response:
        """Deployments put the socket on any path (``/``, ``/ws`` behind a proxy), so accept all."""
        monitor.serve(request.environ["wsgi.websocket"], request.environ)
        return Response(status=204)

    def about() -> Response:
        return Response(f"recodex-monitor {__version__}\n", mimetype="text/plain")

    def upgrade_required(path: str) -> Response:
        return Response(
            "This path serves WebSockets: open one and send a job id.\n",
            status=426,
            headers={"Upgrade": "websocket"},
            mimetype="text/plain",
        )

    for rule, defaults in (("/", {"path": ""}), ("/<path:path>", None)):
        app.add_url_rule(rule, "watch", watch, defaults=defaults, websocket=True)
    app.add_url_rule("/", "about", about, methods=["GET", "HEAD"])
    app.add_url_rule("/<path:path>", "upgrade_required", upgrade_required, methods=["GET", "HEAD"])
    return app
