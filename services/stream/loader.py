"""Kafka -> ClickHouse: batches of events inserted into analytics_events, offsets committed after.

One faust agent reads the events topic. Every `take_seconds` it takes what arrived (`noack_take`, so
nothing is acknowledged before it is stored), decodes each message once, hands the events to the live
counter (services/stream/live_counts.py) and adds them to the pending batch. A batch is loaded when it
holds `batch_size` events or its oldest is `flush_seconds` old: messages that can never load go to the
dead-letter topic, the rest are inserted in one block with retries and backoff, and only then are the
events acked so faust may commit their offsets. A crash before the ack replays the batch; the table's
ReplacingMergeTree key collapses the copies (see shared/contracts/schema.sql).

One load runs in the background while the agent gathers the next batch, so decoding (Python, on the
event loop) overlaps the insert (ClickHouse, in a thread): at most two batches are held, and loads run
one at a time, in offset order. One agent rather than one per concern: faust's per-message cost
(conductor, stream, event, sensors, ack) is paid once per message instead of once per agent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import faust

from services.stream.persons import PersonsRecorder, Position
from services.stream.settings import StreamSettings
from shared.clickhouse import ClickHouse
from shared.contracts import envelope
from shared.contracts.events import DeadLetter, StoredEvent
from shared.contracts.limits import MAX_ENVELOPE_BYTES
from shared.contracts.topics import OutgoingMessage
from shared.errors import AnalyticsError
from shared.kafka import DurableProducer
from shared.retry import Backoff, retry_forever

if TYPE_CHECKING:
    from services.stream.live_counts import LiveCounter

log = logging.getLogger(__name__)


@dataclass
class DecodedBatch:
    """Messages taken from the events topic, decoded once: the events to load, each with its partition
    (for the live counts) and position (partition, offset, index in its message: for numbering distinct
    ids), and the dead letters of what can never load."""

    events: list[StoredEvent] = field(default_factory=list)
    partitions: list[int] = field(default_factory=list)
    positions: list[Position] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)

    def extend(self, other: DecodedBatch) -> None:
        self.events += other.events
        self.partitions += other.partitions
        self.positions += other.positions
        self.dead += other.dead


def decode_batch(
    messages: Sequence[tuple[bytes | None, str, int, int]],
    max_bytes: int,
    max_envelope_bytes: int = MAX_ENVELOPE_BYTES,
) -> DecodedBatch:
    """Split raw messages (value, topic, partition, offset) into rows to load and dead letters.

    A message is one event or an envelope of events (shared/contracts/envelope.py); in an envelope,
    each event that cannot load is dead-lettered on its own (with its index) and the others load.
    """
    out = DecodedBatch()
    for value, topic, partition, offset in messages:
        where = {"topic": topic, "partition": partition, "offset": offset}
        limit = max_envelope_bytes if value is not None and envelope.is_envelope(value) else max_bytes
        if value is None or len(value) > limit:
            size = 0 if value is None else len(value)
            reason = f"message of {size} bytes is empty or over {limit}"
            out.dead.append(DeadLetter(reason=reason, stage="stream", source="kafka", payload=None, **where))
            continue
        unpacked = envelope.unpack(value)
        for refused in unpacked.refused:
            out.dead.append(
                DeadLetter(
                    reason=refused.reason,
                    stage="stream",
                    source="kafka",
                    payload=refused.payload,
                    errors=refused.errors,
                    **where,
                )
            )
        for index, event in enumerate(unpacked.events):
            out.events.append(event)
            out.partitions.append(partition)
            out.positions.append((partition, offset, index))
    return out


@dataclass
class LoaderStats:
    loaded: int = 0
    deleted_skipped: int = 0  # events of deleted persons, received before the deletion
    dead_lettered: int = 0
    insert_failures: int = 0
    last_error: str | None = None


class ClickHouseLoader:
    """Owns the retry policy: ClickHouse errors are retried with backoff, never skipped."""

    def __init__(
        self,
        clickhouse: ClickHouse,
        producer: DurableProducer,
        dead_letter_topic: str,
        settings: StreamSettings,
        persons: PersonsRecorder,
    ) -> None:
        self.clickhouse = clickhouse
        self.producer = producer
        self.dead_letter_topic = dead_letter_topic
        self.settings = settings
        self.persons = persons
        self.stats = LoaderStats()
        self.between_batches = asyncio.Lock()  # held while a batch is stored (deletions wait for it)

    async def load(self, decoded: DecodedBatch) -> None:
        if decoded.dead:
            messages = [OutgoingMessage(self.dead_letter_topic, d.to_message()) for d in decoded.dead]
            await self._retry("dead-letter", lambda: self.producer.send_all(messages))
            self.stats.dead_lettered += len(decoded.dead)
            for dead in decoded.dead:
                log.warning(
                    "dead-lettered %s[%s]@%s: %s", dead.topic, dead.partition, dead.offset, dead.reason
                )
        if decoded.events:
            async with self.between_batches:
                await self._retry("insert", lambda: self.store(decoded))

    async def store(self, decoded: DecodedBatch) -> None:
        """The events and what they say about persons (services/stream/persons.py), in one attempt: a
        retry does every step again, and the tables collapse what a failed attempt already wrote."""
        batch = await self.persons.prepare(decoded.events, decoded.positions)
        await self.persons.store(batch)
        await self.persons.resolve(batch)
        self.stats.loaded += len(batch.rows)
        self.stats.deleted_skipped += batch.dropped

    async def _retry(self, what: str, attempt: Callable[[], Awaitable[None]]) -> None:
        def failed(exc: BaseException, delay: float) -> None:
            self.stats.insert_failures += 1
            self.stats.last_error = f"{what}: {exc}"
            log.warning("%s failed (%s); retrying in %.1fs without committing", what, exc, delay)

        await retry_forever(
            attempt,
            retry_on=(AnalyticsError, OSError),
            backoff=Backoff(0.2, self.settings.retry_max_seconds),
            on_failure=failed,
        )


class PendingBatch:
    """The events taken but not yet stored, and the one load in flight.

    `add` and `flush_if_due` may be called from the agent and from a timer; a lock keeps flushes in
    order, and each flush first waits for the previous load, so offsets are acked in order and at most
    two batches are in memory. A load that fails for good (not a ClickHouse error, which is retried)
    re-raises in the next flush and stops the agent, with nothing acked.
    """

    def __init__(self, loader: ClickHouseLoader, ack: Callable[[Any], Any], settings: StreamSettings) -> None:
        self.loader = loader
        self.ack = ack
        self.settings = settings
        self.decoded = DecodedBatch()
        self.events: list[Any] = []
        self.since: float | None = None
        self.loading: asyncio.Task[None] | None = None
        self.lock = asyncio.Lock()

    async def add(self, decoded: DecodedBatch, events: Sequence[Any]) -> None:
        self.decoded.extend(decoded)
        self.events += events
        if self.since is None:
            self.since = time.monotonic()
        if len(self.events) >= self.settings.batch_size:
            await self.flush()

    async def flush_if_due(self) -> None:
        if self.since is not None and time.monotonic() - self.since >= self.settings.flush_seconds:
            await self.flush()

    async def flush(self) -> None:
        async with self.lock:
            if self.loading is not None:
                loading, self.loading = self.loading, None
                await loading
            if not self.events:
                return
            decoded, events = self.decoded, self.events
            self.decoded, self.events, self.since = DecodedBatch(), [], None
            self.loading = asyncio.create_task(self._load(decoded, events))

    async def drain(self, timeout: float) -> None:
        """On shutdown: let the load in flight finish (and ack) for a while, then give it up unacked.

        What is still pending stays unacked too; the next owner of the partitions loads it again.
        """
        if self.loading is not None and not self.loading.done():
            await asyncio.wait({self.loading}, timeout=timeout)
            self.loading.cancel()

    async def _load(self, decoded: DecodedBatch, events: list[Any]) -> None:
        await self.loader.load(decoded)
        for event in events:
            await self.ack(event)


def register_events_agent(
    app: faust.App,
    topic: faust.TopicT,
    loader: ClickHouseLoader,
    settings: StreamSettings,
    counter: LiveCounter | None = None,
) -> None:
    """The faust agent: take, decode once, count live, batch, load, then ack every event loaded."""

    @app.agent(topic, name="events", concurrency=1)
    async def process_events(stream: faust.StreamT) -> None:
        pending = PendingBatch(loader, stream.ack, settings)

        async def flush_when_due() -> None:
            # Flush a batch that stopped growing: noack_take yields nothing while nothing arrives.
            while True:
                await asyncio.sleep(settings.take_seconds)
                await pending.flush_if_due()

        timer = asyncio.create_task(flush_when_due())
        try:
            # faust declares noack_take on its Stream class, not on the StreamT protocol agents receive.
            taken = cast(faust.Stream, stream).noack_take(settings.batch_size, within=settings.take_seconds)
            async for events in taken:
                raw = [(e.value, e.message.topic, e.message.partition, e.message.offset) for e in events]
                decoded = decode_batch(raw, settings.max_message_bytes)
                if counter is not None:
                    counter.observe_all(decoded.events, decoded.partitions, time.time())
                await pending.add(decoded, events)
                await pending.flush_if_due()
        finally:
            timer.cancel()
            await pending.drain(timeout=settings.retry_max_seconds)
