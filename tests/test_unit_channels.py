"""Unit tests for monitor.channels: history, replay, subscribers, expiry and the channel bound."""

from __future__ import annotations

import logging

import pytest

from monitor.channels import ChannelRegistry
from monitor.config import ChannelConfig
from monitor.messages import Message, decode


class FakeSubscriber:
    """Records what the registry hands it; ``alive=False`` means it gave up (deliver returns False)."""

    def __init__(self, name: str = "s", alive: bool = True) -> None:
        self.name = name
        self.alive = alive
        self.delivered: list[tuple[bytes, int]] = []
        self.received_at: list[float | None] = []
        self.finished = 0

    def deliver(self, data: bytes, count: int, received_at: float | None = None) -> bool:
        self.delivered.append((data, count))
        self.received_at.append(received_at)
        return self.alive

    def finish(self) -> None:
        self.finished += 1

    def __repr__(self) -> str:
        return f"FakeSubscriber({self.name!r})"


def msg(channel: str, command: str, *task: str) -> Message:
    return decode([channel.encode(), command.encode(), *(value.encode() for value in task)])


class World:
    """A registry driven by a hand-advanced clock."""

    def __init__(self, **config: float) -> None:
        settings = {
            "retention_after_finish": 10.0,
            "max_history": 100,
            "idle_timeout": 50.0,
            "max_channels": 100,
        }
        settings.update(config)
        self.now = [1000.0]
        self.registry = ChannelRegistry(ChannelConfig(**settings), clock=lambda: self.now[0])

    def advance(self, seconds: float) -> None:
        self.now[0] += seconds


@pytest.fixture
def world() -> World:
    return World()


# --- publishing and live delivery ---------------------------------------------------------------


def test_publish_creates_channel(world: World) -> None:
    registry = world.registry
    message = msg("job", "STARTED")
    assert registry.publish(message) == 0
    assert len(registry) == 1
    channel = registry.channels["job"]
    assert channel.id == "job"
    assert (channel.replay(), channel.count) == (message.frame, 1)
    assert channel.finished is False
    assert channel.finished_at is None
    assert channel.last_activity == 1000.0
    assert registry.unwatched_count == 1
    assert registry.finished_count == 0


def test_publish_to_two_channels(world: World) -> None:
    registry = world.registry
    registry.publish(msg("a", "STARTED"))
    registry.publish(msg("b", "STARTED"))
    registry.publish(msg("a", "ENDED"))
    assert len(registry) == 2
    assert registry.channels["a"].replay() == msg("a", "STARTED").frame + msg("a", "ENDED").frame
    assert registry.channels["a"].count == 2
    assert (registry.channels["b"].replay(), registry.channels["b"].count) == (msg("b", "STARTED").frame, 1)


def test_subscriber_gets_live_frames(world: World) -> None:
    registry = world.registry
    sub = FakeSubscriber()
    registry.subscribe("job", sub)
    started = msg("job", "STARTED")
    task = msg("job", "TASK", "t01", "COMPLETED")
    assert registry.publish(started) == 1
    assert registry.publish(task) == 1
    assert sub.delivered == [(started.frame, 1), (task.frame, 1)]
    assert sub.finished == 0


def test_publish_counts_every_subscriber(world: World) -> None:
    registry = world.registry
    subs = [FakeSubscriber(str(i)) for i in range(3)]
    for sub in subs:
        registry.subscribe("job", sub)
    message = msg("job", "STARTED")
    assert registry.publish(message) == 3
    for sub in subs:
        assert sub.delivered == [(message.frame, 1)]


def test_publish_to_other_channel_does_not_reach_subscriber(world: World) -> None:
    registry = world.registry
    sub = FakeSubscriber()
    registry.subscribe("a", sub)
    assert registry.publish(msg("b", "STARTED")) == 0
    assert sub.delivered == []


# --- replay ------------------------------------------------------------------------------------


def test_subscribe_gets_one_replay_of_whole_history(world: World) -> None:
    registry = world.registry
    messages = [
        msg("job", "DOWNLOADED"),
        msg("job", "STARTED"),
        msg("job", "TASK", "t01", "COMPLETED"),
        msg("job", "TASK", "t02", "FAILED"),
    ]
    for message in messages:
        registry.publish(message)
    sub = FakeSubscriber()
    channel = registry.subscribe("job", sub)
    assert channel is registry.channels["job"]
    assert sub.delivered == [(b"".join(m.frame for m in messages), 4)]
    assert sub in channel.subscribers
    later = msg("job", "ENDED")
    registry.publish(later)
    assert sub.delivered[1:] == [(later.frame, 1)]


def test_replay_bytes_cached_and_invalidated_by_publish(world: World) -> None:
    registry = world.registry
    first = msg("job", "STARTED")
    registry.publish(first)
    one, two, three = FakeSubscriber("1"), FakeSubscriber("2"), FakeSubscriber("3")
    registry.subscribe("job", one)
    registry.subscribe("job", two)
    assert one.delivered[0][0] is two.delivered[0][0]
    assert one.delivered[0] == (first.frame, 1)
    second = msg("job", "ENDED")
    registry.publish(second)
    registry.subscribe("job", three)
    assert three.delivered == [(first.frame + second.frame, 2)]
    assert three.delivered[0][0] is not one.delivered[0][0]


def test_subscribe_before_first_message(world: World) -> None:
    registry = world.registry
    sub = FakeSubscriber()
    channel = registry.subscribe("job", sub)
    assert sub.delivered == []
    assert sub.finished == 0
    assert len(registry) == 1
    assert channel.subscribers == {sub}
    assert (channel.replay(), channel.count) == (b"", 0)
    assert registry.unwatched_count == 0
    message = msg("job", "STARTED")
    assert registry.publish(message) == 1
    assert sub.delivered == [(message.frame, 1)]


# --- FINISHED ----------------------------------------------------------------------------------


def test_finished_calls_finish_on_every_subscriber(world: World) -> None:
    registry = world.registry
    one, two = FakeSubscriber("1"), FakeSubscriber("2")
    registry.subscribe("job", one)
    registry.subscribe("job", two)
    world.advance(3)
    finished = msg("job", "FINISHED")
    assert registry.publish(finished) == 2
    for sub in (one, two):
        assert sub.delivered == [(finished.frame, 1)]
        assert sub.finished == 1
    channel = registry.channels["job"]
    assert channel.subscribers == set()
    assert channel.finished is True
    assert channel.finished_at == 1003.0
    assert registry.finished_count == 1
    assert registry.unwatched_count == 0


def test_subscribe_to_finished_channel_gets_replay_then_finish(world: World) -> None:
    registry = world.registry
    messages = [msg("job", "STARTED"), msg("job", "FINISHED")]
    for message in messages:
        registry.publish(message)

    calls: list[str] = []

    class Ordered(FakeSubscriber):
        def deliver(self, data: bytes, count: int, received_at: float | None = None) -> bool:
            calls.append("deliver")
            return super().deliver(data, count, received_at)

        def finish(self) -> None:
            calls.append("finish")
            super().finish()

    sub = Ordered()
    channel = registry.subscribe("job", sub)
    assert calls == ["deliver", "finish"]
    assert sub.delivered == [(messages[0].frame + messages[1].frame, 2)]
    assert channel.subscribers == set()
    assert registry.finished_count == 1
    assert registry.unwatched_count == 0


def test_message_after_finished_starts_new_run(world: World) -> None:
    registry = world.registry
    registry.publish(msg("job", "STARTED"))
    registry.publish(msg("job", "FINISHED"))
    world.advance(2)
    restarted = msg("job", "STARTED")
    registry.publish(restarted)
    channel = registry.channels["job"]
    assert (channel.replay(), channel.count) == (restarted.frame, 1)
    assert channel.finished is False
    assert channel.finished_at is None
    assert channel.last_activity == 1002.0
    assert registry.finished_count == 0
    assert registry.unwatched_count == 1
    sub = FakeSubscriber()
    registry.subscribe("job", sub)
    assert sub.delivered == [(restarted.frame, 1)]
    assert sub.finished == 0
    assert channel.subscribers == {sub}


def test_finished_run_without_subscribers(world: World) -> None:
    registry = world.registry
    registry.publish(msg("job", "STARTED"))
    assert registry.unwatched_count == 1
    registry.publish(msg("job", "FINISHED"))
    assert registry.unwatched_count == 0
    assert registry.finished_count == 1


# --- expiry ------------------------------------------------------------------------------------


def test_finished_channel_kept_until_retention_passed(world: World) -> None:
    registry = world.registry
    registry.publish(msg("job", "FINISHED"))
    world.advance(9.9)
    assert registry.expire() == 0
    assert "job" in registry.channels
    world.advance(0.1)
    assert registry.expire() == 1
    assert "job" not in registry.channels
    assert len(registry) == 0
    assert registry.finished_count == 0
    assert registry.expired == 1


def test_retention_counts_from_finish_not_from_last_subscribe(world: World) -> None:
    registry = world.registry
    registry.publish(msg("job", "FINISHED"))
    world.advance(8)
    registry.subscribe("job", FakeSubscriber())
    world.advance(2)
    assert registry.expire() == 1


def test_finished_channels_expire_in_finishing_order(world: World) -> None:
    registry = world.registry
    registry.publish(msg("a", "FINISHED"))
    world.advance(5)
    registry.publish(msg("b", "FINISHED"))
    world.advance(5)
    assert registry.expire() == 1
    assert set(registry.channels) == {"b"}
    world.advance(5)
    assert registry.expire() == 1
    assert len(registry) == 0
    assert registry.expired == 2


def test_idle_channel_dropped(world: World) -> None:
    registry = world.registry
    registry.publish(msg("job", "STARTED"))
    world.advance(49)
    assert registry.expire() == 0
    world.advance(1)
    assert registry.expire() == 1
    assert len(registry) == 0
    assert registry.unwatched_count == 0
    assert registry.expired == 1


def test_message_resets_idle_clock(world: World) -> None:
    registry = world.registry
    registry.publish(msg("job", "STARTED"))
    world.advance(40)
    registry.publish(msg("job", "TASK", "t01", "COMPLETED"))
    world.advance(40)
    assert registry.expire() == 0
    world.advance(10)
    assert registry.expire() == 1


def test_idle_order_follows_last_activity(world: World) -> None:
    registry = world.registry
    registry.publish(msg("a", "STARTED"))
    world.advance(10)
    registry.publish(msg("b", "STARTED"))
    world.advance(10)
    registry.publish(msg("a", "ENDED"))  # "a" is now the most recently active
    world.advance(40)  # "b" has been idle for 50 s, "a" for 40 s
    assert registry.expire() == 1
    assert set(registry.channels) == {"a"}
    world.advance(10)
    assert registry.expire() == 1
    assert len(registry) == 0


def test_watched_channel_never_idles(world: World) -> None:
    registry = world.registry
    sub = FakeSubscriber()
    registry.subscribe("job", sub)
    registry.publish(msg("job", "STARTED"))
    world.advance(10_000)
    assert registry.expire() == 0
    assert "job" in registry.channels
    assert registry.expired == 0


def test_unsubscribing_last_subscriber_restarts_idle_clock(world: World) -> None:
    registry = world.registry
    one, two = FakeSubscriber("1"), FakeSubscriber("2")
    channel = registry.subscribe("job", one)
    registry.subscribe("job", two)
    registry.publish(msg("job", "STARTED"))
    world.advance(100)
    registry.unsubscribe(channel, one)
    assert registry.unwatched_count == 0
    world.advance(100)
    registry.unsubscribe(channel, two)
    assert registry.unwatched_count == 1
    assert channel.last_activity == 1200.0
    world.advance(49)
    assert registry.expire() == 0
    world.advance(1)
    assert registry.expire() == 1
    assert "job" not in registry.channels


def test_unsubscribe_from_finished_or_dropped_channel_is_harmless(world: World) -> None:
    registry = world.registry
    sub = FakeSubscriber()
    channel = registry.subscribe("job", sub)
    registry.publish(msg("job", "FINISHED"))
    registry.unsubscribe(channel, sub)
    assert registry.unwatched_count == 0
    assert registry.finished_count == 1
    world.advance(10)
    assert registry.expire() == 1
    registry.unsubscribe(channel, sub)
    assert registry.unwatched_count == 0
    assert len(registry) == 0


def test_subscribe_without_message_then_leave_idles_out(world: World) -> None:
    registry = world.registry
    sub = FakeSubscriber()
    channel = registry.subscribe("job", sub)
    world.advance(500)
    assert registry.expire() == 0
    registry.unsubscribe(channel, sub)
    world.advance(50)
    assert registry.expire() == 1


# --- max_history --------------------------------------------------------------------------------


def test_max_history_keeps_newest_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    world = World(max_history=3)
    registry = world.registry
    messages = [msg("job", "TASK", f"t{i}", "COMPLETED") for i in range(6)]
    with caplog.at_level(logging.WARNING, logger="monitor.channels"):
        for message in messages[:3]:
            registry.publish(message)
        assert caplog.records == []
        for message in messages[3:]:
            registry.publish(message)
    channel = registry.channels["job"]
    assert channel.replay() == b"".join(m.frame for m in messages[3:])
    assert channel.count == 3
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].getMessage() == (
        "channel 'job' exceeded 3 messages: dropping its oldest messages from the replay"
    )
    sub = FakeSubscriber()
    registry.subscribe("job", sub)
    assert sub.delivered == [(b"".join(m.frame for m in messages[3:]), 3)]


def test_max_history_warns_once_per_channel(caplog: pytest.LogCaptureFixture) -> None:
    world = World(max_history=2)
    registry = world.registry
    with caplog.at_level(logging.WARNING, logger="monitor.channels"):
        for channel in ("a", "b"):
            for i in range(5):
                registry.publish(msg(channel, "TASK", str(i), "COMPLETED"))
    messages = sorted(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert messages == [
        "channel 'a' exceeded 2 messages: dropping its oldest messages from the replay",
        "channel 'b' exceeded 2 messages: dropping its oldest messages from the replay",
    ]


# --- max_channels -------------------------------------------------------------------------------


def test_max_channels_evicts_longest_finished_first(caplog: pytest.LogCaptureFixture) -> None:
    world = World(max_channels=3)
    registry = world.registry
    registry.publish(msg("idle", "STARTED"))
    world.advance(1)
    registry.publish(msg("done1", "FINISHED"))
    world.advance(1)
    registry.publish(msg("done2", "FINISHED"))
    with caplog.at_level(logging.WARNING, logger="monitor.channels"):
        registry.publish(msg("new", "STARTED"))
    assert set(registry.channels) == {"idle", "done2", "new"}
    assert registry.evicted == 1
    assert registry.expired == 0
    assert registry.finished_count == 1
    assert [r.getMessage() for r in caplog.records] == [
        "max_channels (3) reached: evicting finished channel 'done1'"
    ]
    registry.publish(msg("newer", "STARTED"))
    assert set(registry.channels) == {"idle", "new", "newer"}
    assert registry.evicted == 2
    assert registry.finished_count == 0


def test_max_channels_evicts_longest_idle_unwatched(caplog: pytest.LogCaptureFixture) -> None:
    world = World(max_channels=3)
    registry = world.registry
    registry.publish(msg("a", "STARTED"))
    world.advance(1)
    registry.publish(msg("b", "STARTED"))
    world.advance(1)
    registry.subscribe("watched", FakeSubscriber())
    world.advance(1)
    registry.publish(msg("a", "ENDED"))  # "b" is now the longest idle
    with caplog.at_level(logging.WARNING, logger="monitor.channels"):
        registry.subscribe("c", FakeSubscriber())
    assert set(registry.channels) == {"a", "watched", "c"}
    assert registry.evicted == 1
    assert [r.getMessage() for r in caplog.records] == ["max_channels (3) reached: evicting idle channel 'b'"]


def test_max_channels_never_evicts_watched_channel(caplog: pytest.LogCaptureFixture) -> None:
    world = World(max_channels=2)
    registry = world.registry
    one, two = FakeSubscriber("1"), FakeSubscriber("2")
    registry.subscribe("a", one)
    registry.subscribe("b", two)
    with caplog.at_level(logging.WARNING, logger="monitor.channels"):
        registry.publish(msg("c", "STARTED"))
    assert set(registry.channels) == {"a", "b", "c"}
    assert len(registry) == 3
    assert registry.evicted == 0
    assert [r.getMessage() for r in caplog.records] == [
        "max_channels (2) reached but every channel has subscribers: exceeding the limit"
    ]
    message = msg("a", "STARTED")
    assert registry.publish(message) == 1
    assert one.delivered == [(message.frame, 1)]


def test_evicted_channel_is_new_again() -> None:
    world = World(max_channels=1)
    registry = world.registry
    registry.publish(msg("a", "STARTED"))
    registry.publish(msg("b", "STARTED"))
    assert set(registry.channels) == {"b"}
    sub = FakeSubscriber()
    registry.subscribe("a", sub)
    assert sub.delivered == []  # the history of "a" went with it
    assert set(registry.channels) == {"a"}
    assert registry.evicted == 2


# --- subscribers that gave up -------------------------------------------------------------------


def test_subscriber_that_gave_up_is_removed(world: World) -> None:
    registry = world.registry
    good, gone = FakeSubscriber("good"), FakeSubscriber("gone", alive=False)
    channel = registry.subscribe("job", good)
    registry.subscribe("job", gone)
    first = msg("job", "STARTED")
    assert registry.publish(first) == 1
    assert channel.subscribers == {good}
    assert gone.delivered == [(first.frame, 1)]
    second = msg("job", "ENDED")
    assert registry.publish(second) == 1
    assert gone.delivered == [(first.frame, 1)]
    assert good.delivered == [(first.frame, 1), (second.frame, 1)]
    assert registry.unwatched_count == 0


def test_last_subscriber_gave_up_makes_channel_unwatched(world: World) -> None:
    registry = world.registry
    gone = FakeSubscriber("gone", alive=False)
    channel = registry.subscribe("job", gone)
    world.advance(5)
    assert registry.publish(msg("job", "STARTED")) == 0
    assert channel.subscribers == set()
    assert registry.unwatched_count == 1
    assert channel.last_activity == 1005.0
    world.advance(50)
    assert registry.expire() == 1


def test_gave_up_on_finished_is_not_finished_but_channel_is(world: World) -> None:
    registry = world.registry
    good, gone = FakeSubscriber("good"), FakeSubscriber("gone", alive=False)
    registry.subscribe("job", good)
    registry.subscribe("job", gone)
    assert registry.publish(msg("job", "FINISHED")) == 1
    assert good.finished == 1
    assert gone.finished == 0
    assert registry.finished_count == 1
    assert registry.unwatched_count == 0


# --- counters -----------------------------------------------------------------------------------


def test_counters_over_a_sequence() -> None:
    world = World(max_channels=3)
    registry = world.registry
    assert (registry.evicted, registry.expired, registry.finished_count, registry.unwatched_count) == (
        0,
        0,
        0,
        0,
    )
    registry.publish(msg("a", "STARTED"))
    registry.publish(msg("b", "FINISHED"))
    sub = FakeSubscriber()
    registry.subscribe("c", sub)
    assert (registry.finished_count, registry.unwatched_count, len(registry)) == (1, 1, 3)
    registry.publish(msg("d", "STARTED"))  # evicts finished "b"
    assert (registry.evicted, registry.finished_count, registry.unwatched_count) == (1, 0, 2)
    world.advance(50)
    assert registry.expire() == 2  # "a" and "d" idle out; "c" is watched
    assert (registry.expired, registry.unwatched_count, len(registry)) == (2, 0, 1)
    registry.publish(msg("c", "FINISHED"))
    assert (registry.finished_count, registry.unwatched_count) == (1, 0)
    world.advance(10)
    assert registry.expire() == 1
    assert (registry.evicted, registry.expired, registry.finished_count, len(registry)) == (1, 3, 0, 0)


def test_history_compacts_its_buffer_while_dropping_the_oldest() -> None:
    """Long past max_history, the kept frames are still exactly the newest ones, whatever their sizes."""
    world = World(max_history=5)
    registry = world.registry
    messages = [msg("job", "TASK", f"t{i}" + "x" * (i * 37 % 300), "COMPLETED") for i in range(200)]
    for message in messages:
        registry.publish(message)
    channel = registry.channels["job"]
    assert channel.count == 5
    assert channel.replay() == b"".join(m.frame for m in messages[-5:])


def test_finished_channel_keeps_one_copy_of_its_replay(world: World) -> None:
    registry = world.registry
    registry.publish(msg("job", "STARTED"))
    registry.publish(msg("job", "FINISHED"))
    channel = registry.channels["job"]
    first, second = FakeSubscriber(), FakeSubscriber()
    registry.subscribe("job", first)
    registry.subscribe("job", second)
    assert first.delivered[0][0] is second.delivered[0][0] is channel.replay()
    assert channel.replay() == msg("job", "STARTED").frame + msg("job", "FINISHED").frame


def test_compact_keeps_every_channel_and_the_expiry_order(world: World) -> None:
    registry = world.registry
    for name in ("a", "b", "c"):
        registry.publish(msg(name, "STARTED"))
        world.advance(1)
    registry.publish(msg("c", "FINISHED"))
    registry.compact()
    assert sorted(registry.channels) == ["a", "b", "c"]
    assert (registry.unwatched_count, registry.finished_count) == (2, 1)
    world.advance(47.5)  # "a" idle since 1000, "b" since 1001 (idle_timeout 50); "c" finished at 1003
    assert registry.expire() == 2
    assert sorted(registry.channels) == ["b"]
