"""The stream processor's live counts with hand-written expectations: the active-user window, what a
dashboard sees of an event, the published events message as the gateway reads it, and the publisher's
wake-up on new events."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime

from aiokafka.structs import ConsumerRecord

from services.live.hub import Hub
from services.live.settings import LiveSettings
from services.stream.active_users import ActiveUsers
from services.stream.live_counts import LiveCounter, LivePublisher
from services.stream.settings import StreamSettings
from shared.contracts.events import StoredEvent, iso_utc
from shared.contracts.live import LiveEvent, number_or_none, read_live_message
from shared.live_topic import LiveTopicReader, ReaderOptions


def test_amount_is_only_a_finite_number() -> None:
    assert [number_or_none(v) for v in (99, 1.5, True, "12", None, 10**400)] == [
        99.0,
        1.5,
        None,
        None,
        None,
        None,
    ]


def test_active_users_window_ignores_old_and_far_future_events() -> None:
    active = ActiveUsers(window_seconds=300)
    now = 1_000_000.0
    assert active.see(0, "a", now - 10, now) is True
    assert active.see(0, "a", now - 5, now) is False  # same user again
    assert active.see(1, "b", now - 299, now) is True
    assert active.see(1, "old", now - 301, now) is False
    assert active.see(1, "skew", now + 30, now) is True  # a little clock skew counts as now
    assert active.see(1, "future", now + 3600, now) is False
    assert active.counts(now, owned=[0, 1, 2]) == {0: 1, 1: 2, 2: 0}
    assert active.counts(now + 2, owned=[0, 1]) == {0: 1, 1: 1}  # b expired
    assert active.counts(now + 400, owned=[1]) == {1: 0}


def test_published_new_events_are_what_the_gateway_reads() -> None:
    """The processor writes its events messages with orjson, not a model: they must read as the
    contract's `LiveEvent`s, through the gateway's own reader and hub."""
    settings = StreamSettings()
    counter = LiveCounter(settings)
    now = datetime.now(UTC)
    events = [
        StoredEvent(
            event_id=uuid.uuid4(),
            event="purchase",
            user_id=f"u{i}",
            timestamp=now,
            received_at=now,
            properties={"amount": amount},
        )
        for i, amount in enumerate([99, "12", None])
    ]
    counter.observe_all(events, [0, 1, 2], time.time())
    publisher = LivePublisher(counter, None, "live", set, settings)  # type: ignore[arg-type]
    [message] = publisher.event_messages()
    read = read_live_message(message.value)
    assert isinstance(read, list)
    parsed = [LiveEvent.model_validate(raw) for raw in read]
    assert [(e.user_id, e.amount) for e in parsed] == [("u0", 99.0), ("u1", None), ("u2", None)]
    assert parsed[0].timestamp == iso_utc(now) and parsed[0].timestamp.endswith("Z")

    # The gateway itself parses with orjson, not the model: the same message through its feed and hub.
    hub = Hub(LiveSettings())
    subscriber = hub.connect(None)  # type: ignore[arg-type]
    hub.subscribe(subscriber, frozenset({"purchase"}))
    feed = LiveTopicReader("unused:9092", "live", ReaderOptions(), hub.publish)
    size = len(message.value)
    feed.handle(ConsumerRecord("live", 0, 5, 0, 0, None, message.value, None, -1, size, ()), history_end=0)
    sent = [json.loads(text) for _, text in subscriber.events]
    assert [(m["type"], m["user_id"], m.get("amount")) for m in sent] == [
        ("new_event", "u0", 99.0),
        ("new_event", "u1", None),
        ("new_event", "u2", None),
    ]


async def test_new_events_wake_the_live_publisher_at_once() -> None:
    """The processor publishes new events as they are taken, not on a timer: observing one wakes the
    publishing loop's wait long before its timeout (the counts' heartbeat)."""
    counter = LiveCounter(StreamSettings())
    waiting = asyncio.create_task(counter.wait_for_events(timeout=60))
    await asyncio.sleep(0.05)
    assert not waiting.done()  # nothing pending: it waits
    now = datetime.now(UTC)
    fresh = StoredEvent(event_id=uuid.uuid4(), event="e", user_id="u", timestamp=now, received_at=now)
    counter.observe_all([fresh], [0], time.time())
    await asyncio.wait_for(waiting, timeout=10)
    assert [e.event_id for e in counter.take_pending()] == [fresh.event_id]
    waiting = asyncio.create_task(counter.wait_for_events(timeout=60))
    await asyncio.sleep(0.05)
    assert not waiting.done()  # drained: the next wait waits again
    waiting.cancel()
