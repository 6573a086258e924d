"""Kafka -> live counts, published to the live-updates topic.

The events agent (services/stream/loader.py) hands every decoded event to the `LiveCounter` as it takes
it, before the ClickHouse load, so the counter only does in-memory work (count, buffer) and never waits
on Kafka. A loop publishes what it gathered: new events as soon as the agent hands some over (what
arrives while a send is in flight goes in the next one, so batches grow with the load and no timer
adds latency), and this replica's active-user counts per owned partition when they change (at most 4
times a second) or every `live_heartbeat_seconds`. The gateway adds up the partitions of every replica (see
shared/live_topic.py). Live data is disposable: when Kafka does not take it in time it is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import faust

from services.stream.active_users import ActiveUsers
from services.stream.settings import StreamSettings
from shared.contracts.events import StoredEvent
from shared.contracts.live import Presence, events_message, live_event_of
from shared.contracts.topics import OutgoingMessage, Topics
from shared.errors import BrokerUnavailable
from shared.kafka import DurableProducer

log = logging.getLogger(__name__)

EVENTS_PER_MESSAGE = 500
MIN_PRESENCE_INTERVAL = 0.25  # at most 4 count updates a second


@dataclass
class LiveCounter:
    """State the agent feeds and the publisher drains: recent new events and active-user windows."""

    settings: StreamSettings
    # The person key of a distinct id as far as this processor knows the links (its resolver): active
    # users are counted as persons, each on the partition of the event that made it active.
    person_of: Callable[[str], str] = lambda distinct_id: distinct_id
    active: ActiveUsers = field(init=False)
    pending: deque[StoredEvent] = field(init=False)
    arrived: asyncio.Event = field(init=False)  # set while `pending` has events
    overflowed: int = 0

    def __post_init__(self) -> None:
        self.active = ActiveUsers(self.settings.live_window_seconds)
        self.pending = deque(maxlen=self.settings.live_max_pending_events)
        self.arrived = asyncio.Event()

    def observe_all(self, events: Sequence[StoredEvent], partitions: Sequence[int], now: float) -> None:
        """Count decoded events-topic messages (malformed ones are dead-lettered, never counted)."""
        for event, partition in zip(events, partitions, strict=True):
            self.active.see(partition, self.person_of(event.user_id), event.timestamp.timestamp(), now)
            if now - event.received_at.timestamp() <= self.settings.live_max_event_age_seconds:
                if len(self.pending) == self.pending.maxlen:
                    self.overflowed += 1
                self.pending.append(event)
        if self.pending:
            self.arrived.set()

    def take_pending(self) -> list[StoredEvent]:
        """Every new event gathered since the last call."""
        events = list(self.pending)
        self.pending.clear()
        self.arrived.clear()
        return events

    async def wait_for_events(self, timeout: float) -> None:
        """Return when new events are pending, or after `timeout` seconds (the counts are due then)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self.arrived.wait()


@dataclass
class LivePublisher:
    """Turns the counter's state into live-topic messages and sends them, dropping what Kafka refuses."""

    counter: LiveCounter
    producer: DurableProducer
    topic: str
    owned_partitions: Callable[[], set[int]]
    settings: StreamSettings
    replica: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    last_counts: dict[int, int] | None = None
    last_presence_at: float = 0.0
    overflow_reported: int = 0

    async def tick(self) -> None:
        """One round: flush new events, then the counts if due."""
        if self.counter.overflowed > self.overflow_reported:
            log.warning(
                "%d new events were not published live: the live topic is not keeping up",
                self.counter.overflowed - self.overflow_reported,
            )
            self.overflow_reported = self.counter.overflowed
        messages = self.event_messages()
        now = time.time()
        presence = self.presence_message(now)
        if presence is not None:
            messages.append(presence)
        if messages:
            await self.send(messages)

    def event_messages(self) -> list[OutgoingMessage]:
        """The pending new events as live-topic messages of at most EVENTS_PER_MESSAGE each."""
        events = [live_event_of(e) for e in self.counter.take_pending()]
        chunks = (events[i : i + EVENTS_PER_MESSAGE] for i in range(0, len(events), EVENTS_PER_MESSAGE))
        return [OutgoingMessage(self.topic, events_message(self.replica, chunk)) for chunk in chunks]

    def presence_message(self, now: float) -> OutgoingMessage | None:
        """This replica's counts when they changed (at most 4/s) or the heartbeat is due."""
        since = now - self.last_presence_at
        if since < MIN_PRESENCE_INTERVAL:
            return None
        counts = self.counter.active.counts(now, self.owned_partitions())
        if counts == self.last_counts and since < self.settings.live_heartbeat_seconds:
            return None
        self.last_counts, self.last_presence_at = counts, now
        presence = Presence(
            replica=self.replica,
            window_seconds=self.settings.live_window_seconds,
            partitions=counts,
            sent_at=now,
        )
        return OutgoingMessage(self.topic, presence.model_dump_json().encode())

    async def send(self, messages: list[OutgoingMessage]) -> None:
        """Send, or drop with a warning: live data is worthless late."""
        try:
            await self.producer.send_all(messages)
        except BrokerUnavailable as exc:
            self.last_counts = None  # resend the counts next round
            log.warning("live update dropped (%d messages): %s", len(messages), exc)


def owned_partitions_of(app: faust.App, topic: str) -> Callable[[], set[int]]:
    """The events-topic partitions this replica's faust consumer holds right now."""

    def owned() -> set[int]:
        try:
            return {tp.partition for tp in app.consumer.assignment() if tp.topic == topic}
        except Exception:  # noqa: BLE001 - consumer not started or mid-rebalance: nothing owned yet
            return set()

    return owned


def register_live_counts(
    app: faust.App,
    producer: DurableProducer,
    topics: Topics,
    settings: StreamSettings,
    person_of: Callable[[str], str],
) -> LiveCounter:
    """The live counter the events agent feeds, and the loop that publishes it."""
    counter = LiveCounter(settings, person_of)
    publisher = LivePublisher(
        counter, producer, topics.live, owned_partitions_of(app, topics.events), settings
    )

    @app.task
    async def publish_live() -> None:
        # A plain loop rather than app.timer: a slow Kafka round just delays the next one, and the new
        # events gathered meanwhile go out together then.
        while True:
            await counter.wait_for_events(timeout=MIN_PRESENCE_INTERVAL)
            try:
                await publisher.tick()
            except Exception:  # noqa: BLE001 - a bad round must not stop publishing
                log.exception("live publisher round failed")

    return counter
