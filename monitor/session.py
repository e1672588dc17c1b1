"""One browser connection, from its first message to its close.

Two greenlets serve it.  The reader waits on the socket, so a client that leaves
(closed tab, TCP reset) is noticed at once rather than at the next message for its
job; it also reads the channel id and answers pings.  The writer (the view's own
greenlet, which must not return before the socket is done) drains the session's
queue and writes everything queued in one ``sendall``, sends keepalive pings and
enforces the timeouts.  Every way a session can end arrives in the queue as a
:class:`Close`, so the writer is the one place that decides how to end it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import gevent
from gevent.queue import Empty, SimpleQueue

from .config import WebSocketConfig
from .frames import ping_frame
from .websocket import (
    CLOSE_GOING_AWAY,
    CLOSE_INTERNAL_ERROR,
    CLOSE_NORMAL,
    CLOSE_POLICY_VIOLATION,
    CLOSE_TRY_AGAIN_LATER,
    CLOSE_UNSUPPORTED_DATA,
    MonitorWebSocket,
    SendTimeout,
)

if TYPE_CHECKING:
    from .channels import Channel
    from .service import Monitor

log = logging.getLogger(__name__)

# How long to wait for the client's close reply before dropping TCP: closing with
# unread data makes the kernel send a reset, which can destroy our close frame.
CLOSE_REPLY_WAIT = 0.5


@dataclass(frozen=True)
class Close:
    """Why and how a session ends.

    ``code`` None: the client is gone, send nothing.  ``flush`` False: drop what is
    still queued (a client too slow to read it would only delay its own close).
    """

    code: int | None
    reason: str
    kind: str
    flush: bool = True


CLIENT_GONE = Close(None, "client gone", "client_gone")
FINISHED = Close(CLOSE_NORMAL, "job finished", "finished")
SHUTDOWN = Close(CLOSE_GOING_AWAY, "monitor shutting down", "shutdown")


class Session:
    """A subscriber of one channel; see the module docstring."""

    __slots__ = (
        "_next_ping",
        "_oldest_received_at",
        "_queue",
        "_reader",
        "_subscribed",
        "channel",
        "config",
        "ended_by",
        "monitor",
        "peer",
        "pending",
        "sent",
        "started",
        "ws",
    )

    def __init__(self, ws: MonitorWebSocket, monitor: Monitor, peer: str) -> None:
        self.ws = ws
        self.monitor = monitor
        self.config: WebSocketConfig = monitor.config.websocket
        self.peer = peer
        self.channel: Channel | None = None
        self.pending = 0
        self.sent = 0
        self.started = time.monotonic()
        self.ended_by: Close | None = None
        self._queue: SimpleQueue = SimpleQueue()
        self._reader: gevent.Greenlet | None = None
        self._subscribed = False
        self._next_ping = 0.0
        self._oldest_received_at: float | None = None

    def deliver(self, data: bytes, count: int, received_at: float | None = None) -> bool:
        if self.ended_by is not None:
            return False
        if not self.pending:
            self._oldest_received_at = received_at
        self.pending += count
        if self.pending > self.config.max_pending:
            self.end(
                Close(
                    CLOSE_TRY_AGAIN_LATER,
                    f"too slow: over {self.config.max_pending} messages pending",
                    "slow",
                    flush=False,
                )
            )
            if self.ws.writing:
                # Stuck in a write, the writer would only see the close after send_timeout;
                # half a frame is out, so no close frame can follow: drop the connection.
                self.ws.abort()
            return False
        self._queue.put(data)
        return True

    def finish(self) -> None:
        self.end(FINISHED)

    def end(self, close: Close) -> None:
        """Ask the writer to end the session; the first reason given wins."""
        if self.ended_by is None:
            self.ended_by = close
            self._queue.put(close)

    def run(self) -> None:
        """Serve the connection until it is over; called in the view's greenlet."""
        self._reader = gevent.spawn(self._read_loop)
        try:
            self._write_loop()
        except SendTimeout:
            self.ended_by = Close(None, f"send blocked for over {self.config.send_timeout:g} s", "slow")
            self.ws.abort()
        except OSError:
            if self.ended_by is None:
                self.ended_by = CLIENT_GONE
        except Exception:
            log.exception("session of %s on channel %r failed", self.peer, self.channel_id)
            self.ended_by = Close(None, "internal error", "error")
            self.ws.abort()
        finally:
            self._unsubscribe()
            self._stop_reader()

    @property
    def channel_id(self) -> str | None:
        return self.channel.id if self.channel is not None else None

    def _read_loop(self) -> None:
        first = self.ws.receive()
        if first is None:
            self.end(CLIENT_GONE)
            return
        problem = self._check_channel_id(first)
        if problem is not None:
            self.end(problem)
            return
        self.channel = self.monitor.registry.subscribe(first, self)
        self._subscribed = True
        replayed = self.channel.count
        self.monitor.stats.replayed += replayed
        log.debug("%s subscribed to %r with a replay of %d message(s)", self.peer, first, replayed)
        while self.ws.receive() is not None:
            pass
        self.end(Close(None, self.ws.close_reason or "client gone", "client_gone"))

    def _check_channel_id(self, message: str | bytearray) -> Close | None:
        if not isinstance(message, str):
            return Close(CLOSE_UNSUPPORTED_DATA, "expected the job id as a text message", "bad_input")
        if not message:
            return Close(CLOSE_POLICY_VIOLATION, "empty job id", "bad_input")
        return None

    def _write_loop(self) -> None:
        queue = self._queue
        send_timeout = self.config.send_timeout
        self._next_ping = self.started + self.config.ping_interval
        while True:
            wake = self._check_timers(time.monotonic())
            try:
                item = queue.get(timeout=max(0.0, wake - time.monotonic()))
            except Empty:
                continue
            batch = []
            while not isinstance(item, Close):
                batch.append(item)
                if queue.empty():
                    break
                item = queue.get_nowait()
            if batch and (not isinstance(item, Close) or item.flush):
                count = self.pending
                oldest = self._oldest_received_at
                self.pending = 0
                self.ws.write(b"".join(batch) if len(batch) > 1 else batch[0], send_timeout)
                self.sent += count
                self.monitor.stats.delivered += count
                if oldest is not None:
                    self.monitor.stats.latency.observe(time.monotonic() - oldest)
            if isinstance(item, Close):
                self._close(item)
                return

    def _check_timers(self, now: float) -> float:
        """Enforce the job-id deadline and the keepalive, whether or not messages flow.

        Returns the time at which to look again.
        """
        config = self.config
        silent_until = self.ws.last_seen + config.ping_interval + config.ping_timeout
        if now > silent_until:
            self.end(Close(CLOSE_INTERNAL_ERROR, "keepalive ping timeout", "timeout"))
        elif now >= self._next_ping:
            self.ws.write(ping_frame(), config.send_timeout)
            self._next_ping = now + config.ping_interval
        wake = min(self._next_ping, silent_until + 0.001)
        if not self._subscribed:
            deadline = self.started + config.first_message_timeout
            if now >= deadline:
                reason = f"no job id within {config.first_message_timeout:g} s"
                self.end(Close(CLOSE_POLICY_VIOLATION, reason, "timeout"))
            wake = min(wake, deadline)
        return wake

    def _close(self, close: Close) -> None:
        if close.code is not None and not self.ws.closed:
            self.ws.close(close.code, close.reason)
            if self._reader is not None:
                self._reader.join(timeout=CLOSE_REPLY_WAIT)

    def _unsubscribe(self) -> None:
        if self._subscribed and self.channel is not None:
            self._subscribed = False
            self.monitor.registry.unsubscribe(self.channel, self)

    def _stop_reader(self) -> None:
        if self._reader is not None and not self._reader.dead:
            self._reader.kill(block=False)
