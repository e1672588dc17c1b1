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
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from .config import ChannelConfig
from .frames import frame_size
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
    """One job's run: the messages so far (bounded), and who is watching it.

    The history is kept as the WebSocket frames themselves, back to back in one
    buffer, rather than as message objects: a late joiner's replay is a single
    copy of it, each kept message costs only its frame's bytes, and when jobs
    expire their memory goes back to the C allocator in large blocks instead of
    leaving many small objects scattered through the interpreter's arenas.
    """

    __slots__ = (
        "_frames",
        "_max_history",
        "_replay",
        "_start",
        "count",
        "finished_at",
        "id",
        "last_activity",
        "overflowed",
        "subscribers",
    )

    def __init__(self, channel_id: str, max_history: int, now: float) -> None:
        self.id = channel_id
        self.subscribers: set[Subscriber] = set()
        self.finished_at: float | None = None
        self.last_activity = now
        self.overflowed = False
        self.count = 0
        self._max_history = max_history
        self._frames = bytearray()
        self._start = 0
        self._replay: bytes | None = None

    @property
    def finished(self) -> bool:
        return self.finished_at is not None

    def replay(self) -> bytes:
        """The frames of the whole history, copied once and shared by every late joiner."""
        if self._replay is None:
            self._replay = bytes(memoryview(self._frames)[self._start :])
        return self._replay

    def append(self, message: Message) -> None:
        if self.count == self._max_history:
            self._drop_oldest()
        self._frames += message.frame
        self.count += 1
        self._replay = None

    def finish(self, now: float) -> None:
        """No more appends will come: keep only the immutable replay, not two copies."""
        self.finished_at = now
        self.replay()
        self._frames = bytearray()
        self._start = 0

    def restart(self) -> None:
        """Forget a finished run, for a job id that the broker starts again."""
        self.finished_at = None
        self.overflowed = False
        self.count = 0
        self._frames = bytearray()
        self._start = 0
        self._replay = None

    def _drop_oldest(self) -> None:
        if not self.overflowed:
            self.overflowed = True
            log.warning(
                "channel %r exceeded %d messages: dropping its oldest messages from the replay",
                self.id,
                self._max_history,
            )
        self._start += frame_size(self._frames, self._start)
        self.count -= 1
        if self._start > len(self._frames) // 2:
            # Compact only when half the buffer is dead: O(1) per message on average.
            del self._frames[: self._start]
            self._start = 0


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

    def counts_by_state(self) -> dict[str, int]:
        """Channels with subscribers, without, and finished (in retention): every channel is one."""
        finished = len(self._finished)
        unwatched = len(self._unwatched)
        watched = len(self.channels) - finished - unwatched
        return {"watched": watched, "unwatched": unwatched, "finished": finished}

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
        if channel.count and not subscriber.deliver(channel.replay(), channel.count):
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
        idled = 0
        while self._unwatched:
            channel = next(iter(self._unwatched.values()))
            if channel.last_activity + idle > now:
                break
            log.debug("channel %r dropped: no subscriber and no message for %g s", channel.id, idle)
            self._drop(channel)
            idled += 1
        if idled:
            # Jobs that never finished (broker FAILED, lost messages): worth knowing, not line by line.
            log.info("dropped %d channel(s) with no subscriber and no message for %g s", idled, idle)
        self.expired += dropped + idled
        return dropped + idled

    def compact(self) -> None:
        """Rebuild the maps: a dict never shrinks its table, so after a mass expiry
        it would keep the memory of its peak size for the life of the process."""
        self.channels = dict(self.channels)
        self._finished = OrderedDict(self._finished)
        self._unwatched = OrderedDict(self._unwatched)

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
        channel.finish(now)
        for subscriber in channel.subscribers:
            subscriber.finish()
        channel.subscribers.clear()
        self._unwatched.pop(channel.id, None)
        self._finished[channel.id] = channel

    def _drop(self, channel: Channel) -> None:
        del self.channels[channel.id]
        self._finished.pop(channel.id, None)
        self._unwatched.pop(channel.id, None)
