"""Reading the live topic: a plain consumer without a consumer group, so every reader (each gateway
replica, each process serving the ETL overview) gets every update, starting from the end of the topic.

At start it reads back the last `history_messages` messages for their counts only (old new-event
batches are skipped), so a freshly started reader knows the active-user count at once. Presence reports
are validated here; new events go as parsed JSON to `on_events` (the gateway validates only those some
client subscribed to), and a reader without `on_events` skips them unparsed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from shared.contracts.live import Presence, is_events_message, read_live_message
from shared.retry import Backoff

log = logging.getLogger(__name__)


@dataclass
class PartitionReport:
    count: int
    replica: str
    seen_at: float  # time.monotonic() of this gateway


@dataclass
class PresenceBoard:
    """The latest count of every events-topic partition, from whichever stream replica owns it.

    A user's events share one partition (they are keyed by user id), so the sum over partitions is
    the distinct count. A partition not reported for `ttl` seconds (its replica died) is left out.
    Limitation: after a rebalance a partition's new owner counts only the events it reads itself
    (from the last committed offset on), so that partition can read low for up to one window.
    """

    ttl: float
    reports: dict[int, PartitionReport] = field(default_factory=dict)

    def update(self, presence: Presence, seen_at: float) -> None:
        """Take a replica's report; partitions it no longer lists were handed to another replica."""
        for partition, report in list(self.reports.items()):
            if report.replica == presence.replica and partition not in presence.partitions:
                del self.reports[partition]
        for partition, count in presence.partitions.items():
            self.reports[partition] = PartitionReport(count, presence.replica, seen_at)

    def total(self, now: float) -> int | None:
        """Distinct active users, or None when no replica reported recently."""
        fresh = [r.count for r in self.reports.values() if now - r.seen_at <= self.ttl]
        return sum(fresh) if fresh else None


@dataclass(frozen=True)
class ReaderOptions:
    """How a live-topic reader follows the topic."""

    presence_ttl_seconds: float = 10.0
    history_messages: int = 200
    fetch_max_wait_ms: int = 100
    client_id: str = "live-reader"


class LiveTopicReader:
    """Consumes the live topic; counts go to the board, new events (parsed, not validated) to `on_events`
    (None: only the counts are wanted, and events messages are skipped unparsed)."""

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        options: ReaderOptions,
        on_events: Callable[[list[Any]], None] | None = None,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.options = options
        self.on_events = on_events
        self.board = PresenceBoard(options.presence_ttl_seconds)
        self.connected = False

    def active_users(self) -> int | None:
        """The latest combined active-user count (None when no stream replica reported recently)."""
        return self.board.total(time.monotonic())

    async def run_forever(self) -> None:
        """Consume until cancelled, reconnecting after failures."""
        backoff = Backoff()
        while True:
            try:
                await self.consume(on_connected=backoff.reset)
            except Exception as exc:  # noqa: BLE001 - reconnect whatever went wrong
                log.warning("live topic reader interrupted (%s); reconnecting in %.1fs", exc, backoff.delay)
                await backoff.wait()

    async def consume(self, on_connected: Callable[[], None] = lambda: None) -> None:
        consumer = AIOKafkaConsumer(
            self.topic,  # subscribed without a group: every partition is ours, no offsets committed
            bootstrap_servers=self.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            fetch_max_wait_ms=self.options.fetch_max_wait_ms,
            client_id=self.options.client_id,
        )
        await consumer.start()
        try:
            history_ends = await self.rewind(consumer)
            self.connected = True
            on_connected()
            while True:
                batches = await consumer.getmany(timeout_ms=1000, max_records=2000)
                for tp, records in batches.items():
                    for record in records:
                        self.handle(record, history_ends.get(tp, 0))
                        await asyncio.sleep(0)  # let client writers drain between batches
        finally:
            self.connected = False
            await consumer.stop()

    async def rewind(self, consumer: AIOKafkaConsumer) -> dict[TopicPartition, int]:
        """Seek a little before the end of every partition, for recent counts; return the ends."""
        while not consumer.assignment():
            await asyncio.sleep(0.1)
        tps = sorted(consumer.assignment())
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        for tp in tps:
            consumer.seek(tp, max(starts[tp], ends[tp] - self.options.history_messages))
        return ends

    def handle(self, record: ConsumerRecord, history_end: int) -> None:
        """Apply one live-topic message; before `history_end` only counts, with their original age."""
        if record.value is None:
            return
        live = record.offset >= history_end
        if (self.on_events is None or not live) and is_events_message(record.value):
            return
        try:
            message = read_live_message(record.value)
        except ValueError as exc:  # orjson's and pydantic's errors are ValueErrors
            log.warning("ignoring bad live message at offset %s: %s", record.offset, str(exc)[:200])
            return
        if isinstance(message, Presence):
            age = 0.0 if live else max(0.0, time.time() - record.timestamp / 1000)
            self.board.update(message, time.monotonic() - age)
        elif live and self.on_events is not None:
            self.on_events(message)
