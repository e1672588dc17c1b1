"""The Flask application factory: one WebSocket view on every path, and the HTTP pages."""

from __future__ import annotations

from importlib import resources

from flask import Flask, Response, jsonify, request

from . import __version__, metrics
from .config import Config
from .handler import ACCEPTED_KEY, EXTENSION_KEY
from .logs import configure_logging
from .service import Monitor
from .status import health, status


def create_app(config: Config, warnings: list[str] | None = None) -> Flask:
    """Build the app with its :class:`Monitor`; the worker starts the monitor after fork."""
    configure_logging(config.logger)
    app = Flask("monitor", static_folder=None)
    monitor = Monitor(config)
    metrics.install(monitor)
    app.extensions[EXTENSION_KEY] = monitor
    for warning in warnings or ():
        app.logger.warning("configuration %s: %s", config.source, warning)
    status_page = (
        resources.files("monitor")
        .joinpath("static/status.html")
        .read_text(encoding="utf-8")
        .replace("{{version}}", __version__)
    )

    def watch(path: str) -> Response:
        """Admit the socket; deployments put it on any path (``/``, ``/ws`` behind a proxy).

        The handler serves it once this view has returned and Flask's request
        context is gone: thousands of idle sockets would otherwise each keep a
        request context and a deeper parked stack alive (docs/PERFORMANCE.md).
        """
        request.environ[ACCEPTED_KEY] = True
        return Response(status=204)

    def index() -> Response:
        if config.http.status_page_enabled:
            return Response(status_page, mimetype="text/html")
        return Response(f"recodex-monitor {__version__}\n", mimetype="text/plain")

    def status_json() -> Response:
        return jsonify(status(monitor))

    def healthz() -> Response:
        document, code = health(monitor)
        response = jsonify(document)
        response.status_code = code
        response.headers["Cache-Control"] = "no-store"
        return response

    def metrics_text() -> Response:
        body, content_type = metrics.exposition(monitor)
        return Response(body, content_type=content_type)

    def upgrade_required(path: str) -> Response:
        return Response(
            "This path serves WebSockets: open one and send a job id.\n",
            status=426,
            headers={"Upgrade": "websocket"},
            mimetype="text/plain",
        )

    for rule, defaults in (("/", {"path": ""}), ("/<path:path>", None)):
        app.add_url_rule(rule, "watch", watch, defaults=defaults, websocket=True)
    app.add_url_rule("/", "index", index, methods=["GET", "HEAD"])
    app.add_url_rule("/healthz", "healthz", healthz, methods=["GET", "HEAD"])
    if config.http.status_page_enabled:
        app.add_url_rule("/status.json", "status", status_json, methods=["GET", "HEAD"])
    if config.http.metrics_enabled:
        app.add_url_rule("/metrics", "metrics", metrics_text, methods=["GET", "HEAD"])
    app.add_url_rule("/<path:path>", "upgrade_required", upgrade_required, methods=["GET", "HEAD"])
    return app
