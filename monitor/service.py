"""The monitor as one object: channels, the broker listener, open sessions, shutdown."""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable

import gevent

from . import __version__
from .broker import BrokerListener
from .channels import ChannelRegistry
from .config import Config
from .memory import MemoryReleaser
from .messages import Message
from .session import SHUTDOWN, Session
from .stats import Stats
from .websocket import MonitorWebSocket

log = logging.getLogger(__name__)


class Refusal:
    """An HTTP answer instead of the 101 upgrade (gevent-websocket lets only the handler do it)."""

    __slots__ = ("body", "headers", "kind", "status")

    def __init__(
        self, status: str, body: str, kind: str, headers: list[tuple[str, str]] | None = None
    ) -> None:
        self.status = status
        self.body = body.encode("utf-8")
        self.kind = kind
        self.headers = [("Content-Type", "text/plain; charset=utf-8"), *(headers or [])]


class Monitor:
    """Everything one worker process serves; built by the app factory, started by the worker."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.registry = ChannelRegistry(config.channels)
        self.memory = MemoryReleaser(self.registry)
        self.stats = Stats()
        self.sessions: set[Session] = set()
        self.open_sockets = 0
        self.started_at = time.time()
        self.listener = BrokerListener(config.zeromq_uri, self.publish, self.exit_command, self._malformed)
        self._trusted_proxies = [
            ipaddress.ip_network(net, strict=False) for net in config.websocket.trusted_proxies
        ]
        self._on_exit: Callable[[], None] = lambda: None
        self._reaper: gevent.Greenlet | None = None

    def start(self, on_exit: Callable[[], None]) -> None:
        """Start the background greenlets; ``on_exit`` stops the whole service."""
        self._on_exit = on_exit
        config = self.config
        sockets, channels = config.websocket, config.channels
        log.info(
            "recodex-monitor %s: WebSockets at %s, broker at %s; max %d connections, "
            "%d channels of at most %d messages, retention %g s",
            __version__,
            config.websocket_uri.bind_address(),
            config.zeromq_uri.zmq_address(),
            sockets.max_connections,
            channels.max_channels,
            channels.max_history,
            channels.retention_after_finish,
        )
        log.info(
            "limits: idle channels kept %g s; job id within %g s, at most %d bytes; ping every %g s, "
            "silence allowed %g s more; send timeout %g s; max %d pending messages; origins %s%s; "
            "exit command %s",
            channels.idle_timeout,
            sockets.first_message_timeout,
            sockets.max_message_size,
            sockets.ping_interval,
            sockets.ping_timeout,
            sockets.send_timeout,
            sockets.max_pending,
            ", ".join(sockets.allowed_origins),
            " (Origin required)" if sockets.require_origin else "",
            "allowed" if config.broker.allow_exit_command else "ignored",
        )
        self.listener.start()
        self._reaper = gevent.spawn(self._reap_forever)

    def publish(self, message: Message) -> None:
        self.stats.count_received(message.command)
        log.debug("broker: %s -> %r", message.text, message.channel)
        self.registry.publish(message)

    def exit_command(self) -> None:
        self.stats.count_received("exit")
        if not self.config.broker.allow_exit_command:
            log.warning("broker sent the exit command; ignored (broker.allow_exit_command is false)")
            return
        log.warning("broker sent the exit command: shutting down")
        self._on_exit()

    def admission(self, environ: dict) -> Refusal | None:
        """Decide, before the 101, whether this upgrade may become a WebSocket."""
        limits = self.config.websocket
        origin = environ.get("HTTP_ORIGIN")
        if origin is None:
            if limits.require_origin:
                return Refusal("403 Forbidden", "An Origin header is required.\n", "origin")
        elif "*" not in limits.allowed_origins and origin not in limits.allowed_origins:
            log.info("refused a WebSocket from %s: origin %r is not allowed", self.peer(environ), origin)
            return Refusal("403 Forbidden", "This origin may not open sockets here.\n", "origin")
        if self.open_sockets >= limits.max_connections:
            log.warning(
                "refused a WebSocket from %s: %d connections open", self.peer(environ), self.open_sockets
            )
            return Refusal(
                "503 Service Unavailable",
                "Too many connections; try again shortly.\n",
                "limit",
                [("Retry-After", "5")],
            )
        return None

    def serve(self, ws: MonitorWebSocket, environ: dict) -> None:
        """Run one WebSocket session to its end, then log it in one line."""
        session = Session(ws, self, self.peer(environ))
        self.sessions.add(session)
        self.stats.opened += 1
        try:
            session.run()
        finally:
            self.sessions.discard(session)
            ended = session.ended_by
            kind = ended.kind if ended else "client_gone"
            self.stats.closed[kind] += 1
            log.info(
                "websocket %s channel=%r path=%s duration=%.1fs sent=%d close=%s reason=%r",
                session.peer,
                session.channel_id,
                environ.get("PATH_INFO", "/"),
                time.monotonic() - session.started,
                session.sent,
                ws.close_code if ws.close_code is not None else "-",
                ended.reason if ended else "client gone",
            )

    def peer(self, environ: dict) -> str:
        """The client's address; ``X-Forwarded-For`` counts only behind a trusted proxy."""
        address = environ.get("REMOTE_ADDR", "?")
        forwarded = environ.get("HTTP_X_FORWARDED_FOR")
        if not forwarded or not self._is_trusted(address):
            return address
        for hop in reversed([part.strip() for part in forwarded.split(",")]):
            if not self._is_trusted(hop):
                return hop
        return address

    def shutdown(self) -> None:
        """Close every WebSocket with 1001 and stop the listener, within ``shutdown_timeout``."""
        log.info("shutting down: closing %d WebSocket(s)", len(self.sessions))
        for session in list(self.sessions):
            session.end(SHUTDOWN)
        deadline = time.monotonic() + self.config.server.shutdown_timeout
        while self.sessions and time.monotonic() < deadline:
            gevent.sleep(0.02)
        for session in list(self.sessions):
            session.ws.abort()
        if self._reaper is not None:
            self._reaper.kill(block=False)
        self.listener.stop()

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._trusted_proxies)

    def _malformed(self) -> None:
        self.stats.malformed += 1

    def _reap_forever(self) -> None:
        channels = self.config.channels
        tick = max(0.05, min(1.0, channels.retention_after_finish / 4, channels.idle_timeout / 4))
        while True:
            gevent.sleep(tick)
            dropped = self.registry.expire()
            if dropped:
                self.memory.dropped_channels(dropped)
