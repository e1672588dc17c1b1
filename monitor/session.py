"""One browser connection, from its first message to its close.

One greenlet serves it: the view's own, which must not return before the socket
is done.  It is the writer: it writes everything queued for the socket in one
``send``, sends keepalive pings, enforces the timeouts and closes.  Reading needs
no greenlet of its own: the socket's event-loop watcher
(:meth:`monitor.websocket.MonitorWebSocket.start_reading`) hands the job id, pings
and the end of the connection to this session's callbacks, so a client that leaves
(closed tab, TCP reset) is noticed at once rather than at the next message for its
job.  Every way a session can end sets :attr:`Session.ended_by` and wakes the
writer, so the writer is the one place that decides how to end it.

Queueing a message for the socket (:meth:`Session.deliver`) costs a list append;
a parked writer is woken once, however many messages arrive before it runs, and
then writes them all at once.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gevent.hub import get_hub
from greenlet import getcurrent, greenlet

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
    ``reply``: the reason to put in the close frame when it differs from ``reason``
    (which is what the log says).
    """

    code: int | None
    reason: str
    kind: str
    flush: bool = True
    reply: str | None = None


CLIENT_GONE = Close(None, "client gone", "client_gone")
FINISHED = Close(CLOSE_NORMAL, "job finished", "finished")
SHUTDOWN = Close(CLOSE_GOING_AWAY, "monitor shutting down", "shutdown")


class Session:
    """A subscriber of one channel; see the module docstring."""

    __slots__ = (
        "_hub",
        "_in_park",
        "_next_ping",
        "_oldest_received_at",
        "_out",
        "_pong",
        "_reader_done",
        "_subscribed",
        "_waking",
        "_writer",
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
        self._out: list[bytes] = []
        self._pong: bytes | None = None
        self._hub = get_hub()
        self._writer: greenlet | None = None
        self._in_park = False
        self._waking = False
        self._reader_done = False
        self._subscribed = False
        self._next_ping = 0.0
        self._oldest_received_at: float | None = None

    def deliver(self, data: bytes, count: int, received_at: float | None = None) -> bool:
        if self.ended_by is not None:
            return False
        pending = self.pending
        if not pending:
            self._oldest_received_at = received_at
        pending += count
        self.pending = pending
        if pending > self.config.max_pending:
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
        self._out.append(data)
        if self._in_park:
            self._wake()
        return True

    def finish(self) -> None:
        self.end(FINISHED)

    def end(self, close: Close) -> None:
        """Ask the writer to end the session; the first reason given wins."""
        if self.ended_by is None:
            self.ended_by = close
            self._wake()

    def run(self) -> None:
        """Serve the connection until it is over; called in the view's greenlet."""
        ws = self.ws
        self._writer = getcurrent()
        try:
            ws.start_reading(self)
            self._write_loop()
        except SendTimeout:
            self.ended_by = Close(None, f"send blocked for over {self.config.send_timeout:g} s", "slow")
            ws.abort()
        except OSError:
            if self.ended_by is None:
                self.ended_by = CLIENT_GONE
        except Exception:
            log.exception("session of %s on channel %r failed", self.peer, self.channel_id)
            self.ended_by = Close(None, "internal error", "error")
            ws.abort()
        finally:
            ws.stop_reading()
            self._unsubscribe()
            self._writer = None

    @property
    def channel_id(self) -> str | None:
        return self.channel.id if self.channel is not None else None

    # -- callbacks of the socket's reader (event loop; they never block) -----------------

    def message_received(self, message: str | bytes) -> None:
        """A complete message from the client: the first one is the job id, later ones are ignored."""
        if self._subscribed or self.ended_by is not None:
            return
        problem = self._check_channel_id(message)
        if problem is not None:
            self.end(problem)
            return
        self.channel = self.monitor.registry.subscribe(message, self)
        self._subscribed = True
        replayed = self.channel.count
        self.monitor.stats.replayed += replayed
        log.debug("%s subscribed to %r with a replay of %d message(s)", self.peer, message, replayed)

    def reading_ended(self, code: int | None, reply: str, why: str) -> None:
        """The client is gone, closed, or broke the protocol (``code``: the close frame to answer with)."""
        self._reader_done = True
        if code is None:
            self.end(Close(None, why, "client_gone"))
        else:
            self.end(Close(code, why, "client_gone", flush=False, reply=reply))
        self._wake()

    def control_reply(self, frame: bytes) -> None:
        """A pong to send, after what is queued.  Only the latest one waits (RFC 6455
        section 5.5.3 allows it), so a client that pings without reading queues nothing."""
        if self.ended_by is None:
            self._pong = frame
            self._wake()

    def _check_channel_id(self, message: str | bytes) -> Close | None:
        if not isinstance(message, str):
            return Close(CLOSE_UNSUPPORTED_DATA, "expected the job id as a text message", "bad_input")
        if not message:
            return Close(CLOSE_POLICY_VIOLATION, "empty job id", "bad_input")
        return None

    # -- the writer ------------------------------------------------------------------------

    def _wake(self) -> None:
        """Resume the parked writer (from any greenlet or event-loop callback), once."""
        if self._in_park and not self._waking:
            self._waking = True
            self._hub.loop.run_callback(self._resume)

    def _resume(self) -> None:
        """Event-loop callback (a wake-up or the park timer): switch back into the parked writer.

        A late one, after the writer already resumed, does nothing; or, if the writer
        has parked again since, makes it look round once more: harmless either way.
        """
        self._waking = False
        if self._in_park:
            self._in_park = False
            self._writer.switch()

    def _park(self, delay: float) -> None:
        """Wait until woken, or at most ``delay`` seconds."""
        hub = self._hub
        timer = hub.loop.timer(max(delay, 0.0))
        timer.start(self._resume)
        self._in_park = True
        try:
            hub.switch()
        finally:
            self._in_park = False
            timer.close()

    def _write_loop(self) -> None:
        ws = self.ws
        stats = self.monitor.stats
        send_timeout = self.config.send_timeout
        self._next_ping = self.started + self.config.ping_interval
        check_at = 0.0
        while True:
            now = time.monotonic()
            if now >= check_at:
                check_at = self._check_timers(now)
            out = self._out
            if self._pong is not None:
                out.append(self._pong)
                self._pong = None
            if out:
                self._out = []
                count = self.pending
                oldest = self._oldest_received_at
                self.pending = 0
                close = self.ended_by
                if close is None or close.flush:
                    ws.write(out[0] if len(out) == 1 else b"".join(out), send_timeout)
                    if count:
                        self.sent += count
                        stats.delivered += count
                        if oldest is not None:
                            stats.latency.observe(time.monotonic() - oldest)
                continue
            close = self.ended_by
            if close is not None:
                self._close(close)
                return
            self._park(check_at - now)

    def _check_timers(self, now: float) -> float:
        """Enforce the job-id deadline and the keepalive, whether or not messages flow.

        Returns the time at which to look again (never later than needed: the
        deadlines it depends on only move later).
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
        ws = self.ws
        if close.code is not None and not ws.closed:
            ws.close(close.code, close.reason if close.reply is None else close.reply)
            deadline = time.monotonic() + CLOSE_REPLY_WAIT
            while not self._reader_done:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._park(left)

    def _unsubscribe(self) -> None:
        if self._subscribed and self.channel is not None:
            self._subscribed = False
            self.monitor.registry.unsubscribe(self.channel, self)
