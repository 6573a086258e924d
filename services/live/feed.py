"""Live topic -> gateway: a plain consumer without a consumer group, so every gateway replica reads
every update, starting from the end of the topic.

At start it reads back the last `history_messages` messages for their counts only (old new-event
batches are skipped), so a freshly started gateway knows the active-user count at once. Messages are
parsed with orjson; presence reports are validated here, new events only by the hub, and only those
some client subscribed to (services/live/hub.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from pydantic import ValidationError

from services.live.messages import Presence
from services.live.settings import LiveSettings

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


class LiveFeed:
    """Consumes the live topic; counts go to the board, new events (parsed, not validated) to `on_events`."""

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        settings: LiveSettings,
        on_events: Callable[[list[Any]], None],
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.settings = settings
        self.on_events = on_events
        self.board = PresenceBoard(settings.presence_ttl_seconds)
        self.connected = False
        self.received = 0

    def active_users(self) -> int | None:
        """The latest combined active-user count (None when no stream replica reported recently)."""
        return self.board.total(time.monotonic())

    async def run_forever(self) -> None:
        """Consume until cancelled, reconnecting after failures."""
        delay = 0.5
        while True:
            try:
                await self.consume()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - reconnect whatever went wrong
                log.warning("live feed interrupted (%s); reconnecting in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def consume(self) -> None:
        consumer = AIOKafkaConsumer(
            self.topic,  # subscribed without a group: every partition is ours, no offsets committed
            bootstrap_servers=self.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            fetch_max_wait_ms=self.settings.fetch_max_wait_ms,
            client_id="live-gateway",
        )
        await consumer.start()
        try:
            history_ends = await self.rewind(consumer)
            self.connected = True
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
            consumer.seek(tp, max(starts[tp], ends[tp] - self.settings.history_messages))
        return ends

    def handle(self, record: ConsumerRecord, history_end: int) -> None:
        """Apply one live-topic message; before `history_end` only counts, with their original age."""
        self.received += 1
        if record.value is None:
            return
        live = record.offset >= history_end
        try:
            message = orjson.loads(record.value)
            kind = message.get("type") if isinstance(message, dict) else None
            if kind == "events":
                events = message.get("events")
                if not isinstance(events, list):
                    raise ValueError("events is not a list")
                if live:
                    self.on_events(events)
            elif kind == "presence":
                presence = Presence.model_validate(message)
                age = 0.0 if live else max(0.0, time.time() - record.timestamp / 1000)
                self.board.update(presence, time.monotonic() - age)
            else:
                raise ValueError(f"unknown message type {kind!r}")
        except (ValueError, ValidationError) as exc:  # orjson.JSONDecodeError is a ValueError
            log.warning("ignoring bad live message at offset %s: %s", record.offset, str(exc)[:200])
