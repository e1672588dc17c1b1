"""The ZeroMQ side: a greenlet that receives the broker's messages and publishes them.

The socket is a ``ROUTER`` with the identity ``recodex-monitor`` (the broker
addresses its messages to that peer name) bound at ``zeromq_uri``.  The context
is created in :meth:`BrokerListener.start`, in the gunicorn worker after fork,
because ZeroMQ contexts do not survive a fork.  A socket error never ends the
listener: it logs, waits with back-off and binds a fresh socket, while the
WebSocket side keeps serving the channels it has.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import gevent
import zmq.green as zmq
from zmq.backend import Socket as _RawSocket

from .config import Endpoint
from .messages import MalformedMessage, Message, decode

log = logging.getLogger(__name__)

IDENTITY = b"recodex-monitor"
BACKOFF_FIRST = 0.2
BACKOFF_MAX = 5.0
# A burst of queued broker messages is read without blocking for up to this long before
# the listener yields to the socket writers: the longer, the more messages each writer
# finds queued and writes with one send (fewer, larger writes); the shorter, the sooner
# the first messages of a burst go out.  Without a backlog it never comes into play.
BURST_SECONDS = 0.02

# The non-blocking reads of a burst call the socket's own (Cython) recv with a plain int
# flag and learn from each frame whether more parts follow: zmq.green's wrapper and
# pyzmq's recv_multipart (enum flags, a getsockopt(RCVMORE) per part) cost several times
# more per message than the reads themselves.
_recv = _RawSocket.recv
_NOBLOCK = int(zmq.NOBLOCK)


def _receive_queued(socket: zmq.Socket) -> list[bytes]:
    """One multipart message that is already queued; raises ``zmq.Again`` if there is none."""
    frame = _recv(socket, _NOBLOCK, False)
    frames = [frame.bytes]
    while frame.more:
        frame = _recv(socket, _NOBLOCK, False)
        frames.append(frame.bytes)
    return frames


class BrokerListener:
    """Owns the ROUTER socket and the greenlet reading it; see the module docstring."""

    def __init__(
        self,
        endpoint: Endpoint,
        on_message: Callable[[Message], None],
        on_exit: Callable[[], None],
        on_malformed: Callable[[], None],
    ) -> None:
        self.endpoint = endpoint
        self.on_message = on_message
        self.on_exit = on_exit
        self.on_malformed = on_malformed
        self.bound = False
        self.last_message_at: float | None = None
        self.failures = 0
        self._context: zmq.Context | None = None
        self._socket: zmq.Socket | None = None
        self._greenlet: gevent.Greenlet | None = None

    @property
    def alive(self) -> bool:
        return self._greenlet is not None and not self._greenlet.dead

    @property
    def up(self) -> bool:
        """Running and bound: the broker's messages can arrive."""
        return self.alive and self.bound

    def start(self) -> None:
        self._context = zmq.Context()
        self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=1.0)
        self._close_socket()
        if self._context is not None:
            self._context.term()
            self._context = None

    def _run(self) -> None:
        backoff = BACKOFF_FIRST
        while True:
            try:
                self._bind()
                backoff = BACKOFF_FIRST
                self._receive_forever()
            except zmq.ZMQError as exc:
                self.failures += 1
                log.error(
                    "ZeroMQ socket at %s failed (%s): binding a new one in %.1f s",
                    self.endpoint.zmq_address(),
                    exc,
                    backoff,
                )
            self._close_socket()
            gevent.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    def _bind(self) -> None:
        socket = self._context.socket(zmq.ROUTER)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.IDENTITY, IDENTITY)
        self._socket = socket
        socket.bind(self.endpoint.zmq_address())
        self.bound = True
        log.info(
            "listening for the broker at %s (ZeroMQ ROUTER, identity %s)",
            self.endpoint.zmq_address(),
            IDENTITY.decode(),
        )

    def _receive_forever(self) -> None:
        socket = self._socket
        receive = socket.recv_multipart
        handle = self._handle
        monotonic = time.monotonic
        while True:
            frames = receive()  # waits (cooperatively) for the next message
            started = now = monotonic()
            handle(frames, now)
            # Then everything already queued, without blocking, within the burst budget.
            while now - started < BURST_SECONDS:
                try:
                    frames = _receive_queued(socket)
                except zmq.Again:
                    break
                now = monotonic()
                handle(frames, now)
            else:
                gevent.sleep(0)  # budget spent with more queued: let the writers run first

    def _handle(self, frames: list[bytes], received_at: float) -> None:
        self.last_message_at = received_at
        try:
            message = decode(frames[1:], received_at)
        except MalformedMessage as exc:
            log.warning("dropped a malformed broker message: %s", exc)
            self.on_malformed()
            return
        if message.is_exit:
            self.on_exit()
            return
        try:
            self.on_message(message)
        except Exception:
            log.exception("failed to publish %r", message)

    def _close_socket(self) -> None:
        self.bound = False
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None
