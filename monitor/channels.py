"""Channels: each job's message history and the sockets subscribed to it.

Everything here runs in one gevent hub and never yields, so a subscription takes
its replay and joins the live stream in one step: no message can fall between the
two.  Expiry needs no scan of all channels: retention and idle timeouts are the
same for every channel, so two insertion-ordered maps (finished channels in
finishing order, unwatched channels in order of last activity) always hold the
next channel to expire at their head, and every operation on them is O(1).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Protocol

from .config import ChannelConfig
from .messages import Message

log = logging.getLogger(__name__)


class Subscriber(Protocol):
    """What a channel needs from a connection; :class:`monitor.session.Session` is one."""

    def deliver(self, data: bytes, count: int, received_at: float | None = None) -> bool:
        """Queue ``count`` messages already encoded as ``data``; False once the subscriber gave up.

        ``received_at`` is when the broker's message arrived (``time.monotonic()``), for the
        delivery latency; a replay has none.
        """

    def finish(self) -> None:
        """The job is finished: close after everything queued so far."""


class Channel:
    """One job's run: the messages so far (bounded), and who is watching it."""

    __slots__ = ("_replay", "finished_at", "history", "id", "last_activity", "overflowed", "subscribers")

    def __init__(self, channel_id: str, max_history: int, now: float) -> None:
        self.id = channel_id
        self.history: deque[Message] = deque(maxlen=max_history)
        self.subscribers: set[Subscriber] = set()
        self.finished_at: float | None = None
        self.last_activity = now
        self.overflowed = False
        self._replay: bytes | None = None

    @property
    def finished(self) -> bool:
        return self.finished_at is not None

    def replay(self) -> bytes:
        """The frames of the whole history, joined once and shared by every late joiner."""
        if self._replay is None:
            self._replay = b"".join(message.frame for message in self.history)
        return self._replay

    def append(self, message: Message) -> None:
        if len(self.history) == self.history.maxlen and not self.overflowed:
            self.overflowed = True
            log.warning(
                "channel %r exceeded %d messages: dropping its oldest messages from the replay",
                self.id,
                self.history.maxlen,
            )
        self.history.append(message)
        self._replay = None

    def restart(self) -> None:
        """Forget a finished run, for a job id that the broker starts again."""
        self.history.clear()
        self.finished_at = None
        self.overflowed = False
        self._replay = None


class ChannelRegistry:
    """All channels of this monitor, with their expiry and the ``max_channels`` bound."""

    def __init__(self, config: ChannelConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self.channels: dict[str, Channel] = {}
        self._finished: OrderedDict[str, Channel] = OrderedDict()
        self._unwatched: OrderedDict[str, Channel] = OrderedDict()
        self.evicted = 0
        self.expired = 0

    def __len__(self) -> int:
        return len(self.channels)

    @property
    def finished_count(self) -> int:
        return len(self._finished)

    @property
    def unwatched_count(self) -> int:
        return len(self._unwatched)

    def publish(self, message: Message) -> int:
        """Append ``message`` to its channel and hand its frame to every subscriber.

        Returns the number of sockets it was queued for.
        """
        now = self.clock()
        channel = self.channels.get(message.channel)
        if channel is None:
            channel = self._create(message.channel, now)
        elif channel.finished:
            log.info("channel %r received %s after FINISHED: starting a new run", channel.id, message.command)
            del self._finished[channel.id]
            channel.restart()
            self._unwatched[channel.id] = channel
        channel.append(message)
        channel.last_activity = now
        delivered = 0
        gone = []
        for subscriber in channel.subscribers:
            if subscriber.deliver(message.frame, 1, message.received_at):
                delivered += 1
            else:
                gone.append(subscriber)
        for subscriber in gone:
            self.unsubscribe(channel, subscriber)
        if message.is_finished:
            self._finish(channel, now)
        elif not channel.subscribers:
            self._unwatched.move_to_end(channel.id)
        return delivered

    def subscribe(self, channel_id: str, subscriber: Subscriber) -> Channel:
        """Queue the channel's replay for ``subscriber``, then keep it posted (or close it, if finished)."""
        now = self.clock()
        channel = self.channels.get(channel_id)
        if channel is None:
            channel = self._create(channel_id, now)
        if channel.history and not subscriber.deliver(channel.replay(), len(channel.history)):
            return channel
        if channel.finished:
            subscriber.finish()
            return channel
        if not channel.subscribers:
            self._unwatched.pop(channel.id, None)
        channel.subscribers.add(subscriber)
        return channel

    def unsubscribe(self, channel: Channel, subscriber: Subscriber) -> None:
        channel.subscribers.discard(subscriber)
        if not channel.subscribers and not channel.finished and self.channels.get(channel.id) is channel:
            channel.last_activity = self.clock()
            self._unwatched[channel.id] = channel
            self._unwatched.move_to_end(channel.id)

    def expire(self) -> int:
        """Drop the channels whose retention or idle time is over; returns how many."""
        now = self.clock()
        dropped = 0
        retention = self.config.retention_after_finish
        while self._finished:
            channel = next(iter(self._finished.values()))
            if channel.finished_at + retention > now:
                break
            self._drop(channel)
            dropped += 1
        idle = self.config.idle_timeout
        while self._unwatched:
            channel = next(iter(self._unwatched.values()))
            if channel.last_activity + idle > now:
                break
            log.info("channel %r dropped: no subscriber and no message for %g s", channel.id, idle)
            self._drop(channel)
            dropped += 1
        self.expired += dropped
        return dropped

    def _create(self, channel_id: str, now: float) -> Channel:
        if len(self.channels) >= self.config.max_channels:
            self._evict_one()
        channel = Channel(channel_id, self.config.max_history, now)
        self.channels[channel_id] = channel
        self._unwatched[channel_id] = channel
        return channel

    def _evict_one(self) -> None:
        """Make room: the longest-finished channel first, else the longest idle unwatched one."""
        for candidates, kind in ((self._finished, "finished"), (self._unwatched, "idle")):
            if candidates:
                channel = next(iter(candidates.values()))
                log.warning(
                    "max_channels (%d) reached: evicting %s channel %r",
                    self.config.max_channels,
                    kind,
                    channel.id,
                )
                self._drop(channel)
                self.evicted += 1
                return
        log.warning(
            "max_channels (%d) reached but every channel has subscribers: exceeding the limit",
            self.config.max_channels,
        )

    def _finish(self, channel: Channel, now: float) -> None:
        channel.finished_at = now
        for subscriber in channel.subscribers:
            subscriber.finish()
        channel.subscribers.clear()
        self._unwatched.pop(channel.id, None)
        self._finished[channel.id] = channel

    def _drop(self, channel: Channel) -> None:
        del self.channels[channel.id]
        self._finished.pop(channel.id, None)
        self._unwatched.pop(channel.id, None)
