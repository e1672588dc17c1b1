"""The gevent-websocket handler class, where upgrades are admitted or refused.

gevent-websocket answers the upgrade with 101 before any Flask view runs, so an
upgrade that must be refused (foreign origin: 403; too many sockets: 503) is
refused here, and the connection's frame layer is swapped for
:class:`monitor.websocket.MonitorWebSocket` before the view sees it.
"""

from __future__ import annotations

import logging

import gevent
from geventwebsocket.handler import WebSocketHandler

from .service import Monitor
from .websocket import MonitorWebSocket

EXTENSION_KEY = "recodex_monitor"
# Set in the WSGI environ by the Flask view that admits a WebSocket.
ACCEPTED_KEY = "recodex_monitor.accepted"
log = logging.getLogger(__name__)


class MonitorHandler(WebSocketHandler):
    """Per-connection handler used by :class:`monitor.worker.MonitorWorker`."""

    @property
    def logger(self) -> logging.Logger:
        return log

    @property
    def monitor(self) -> Monitor:
        return self.server.application.extensions[EXTENSION_KEY]

    def read_requestline(self) -> str:
        """A connection must send its request promptly, or it is closed.

        gevent's server waits for a request line without limit, so an idle or
        trickling connection would hold one of ``worker_connections``' slots for
        ever; this also bounds how long an HTTP keep-alive connection may idle.
        """
        with gevent.Timeout(self.monitor.config.server.header_timeout, False):
            return super().read_requestline()
        return ""

    def read_request(self, raw_requestline: str) -> bool:
        """The headers too: past the deadline the request is answered with 400."""
        timeout = self.monitor.config.server.header_timeout
        with gevent.Timeout(timeout, ValueError(f"request headers not complete within {timeout:g} s")):
            return super().read_request(raw_requestline)

    def upgrade_websocket(self) -> list[bytes] | None:
        if self.environ.get("HTTP_UPGRADE", "").lower() == "websocket":
            refusal = self.monitor.admission(self.environ)
            if refusal is not None:
                self.monitor.stats.closed[refusal.kind] += 1
                self.start_response(refusal.status, refusal.headers)
                return [refusal.body]
        result = super().upgrade_websocket()
        plain = self.environ.get("wsgi.websocket")
        if plain is not None:
            plain.closed = True
            self.websocket = MonitorWebSocket(
                self.environ, plain.stream, self, self.monitor.config.websocket.max_message_size
            )
            self.environ["wsgi.websocket"] = self.websocket
        return result

    def run_websocket(self) -> None:
        """Route the upgrade through the Flask app, then serve the socket it admitted.

        Unlike gevent-websocket's own handler, this one does not need the view to
        block for the life of the socket: the session runs here, after Flask has
        popped its request context (and with no client list kept on the server).
        """
        monitor = self.monitor
        environ = self.environ
        monitor.open_sockets += 1
        try:
            for _ in self.application(environ, lambda status, headers, exc_info=None: None):
                pass
            environ.pop("werkzeug.request", None)
            if environ.pop(ACCEPTED_KEY, False):
                monitor.serve(self.websocket, environ)
        finally:
            monitor.open_sockets -= 1
            self.websocket.abort()
            self.environ["wsgi.websocket"] = None
            self.websocket = None

    def log_request(self) -> None:
        if "101" not in str(self.status):
            log.debug(self.format_request())
