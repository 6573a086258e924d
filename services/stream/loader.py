"""Kafka -> ClickHouse: batches of events inserted into analytics_events, offsets committed after.

The agent takes up to `batch_size` events or `flush_seconds` worth, whichever comes first
(`noack_take`, so nothing is acknowledged before it is stored), sends messages that can never load to
the dead-letter topic, inserts the rest in one block with retries and backoff, and only then acks the
events so faust may commit their offsets. A crash before the ack replays the batch; the table's
ReplacingMergeTree key collapses the copies (see deploy/clickhouse/schema.sql).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import faust
import orjson
from pydantic import ValidationError

from services.stream.settings import StreamSettings
from shared.clickhouse import ClickHouse
from shared.constants import EVENTS_TABLE
from shared.errors import AnalyticsError
from shared.events import DeadLetter, StoredEvent
from shared.kafka import DurableProducer, OutgoingMessage

log = logging.getLogger(__name__)


@dataclass
class Decoded:
    rows: list[bytes] = field(default_factory=list)
    events: list[StoredEvent] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)


def decode_batch(messages: Sequence[tuple[bytes, str, int, int]], max_bytes: int) -> Decoded:
    """Split raw messages (value, topic, partition, offset) into rows to load and dead letters."""
    out = Decoded()
    for value, topic, partition, offset in messages:
        where = {"topic": topic, "partition": partition, "offset": offset}
        if value is None or len(value) > max_bytes:
            size = 0 if value is None else len(value)
            out.dead.append(
                DeadLetter(
                    reason=f"message of {size} bytes is empty or over {max_bytes}",
                    stage="stream", source="kafka",
                    payload=None,
                    **where,
                )
            )
            continue
        try:
            event = StoredEvent.model_validate_json(value)
        except ValidationError as exc:
            out.dead.append(
                DeadLetter(
                    reason=reason_of(exc),
                    stage="stream", source="kafka",
                    payload=payload_of(value),
                    errors=[str(e.get("msg")) for e in exc.errors(include_url=False)],
                    **where,
                )
            )
            continue
        out.events.append(event)
        out.rows.append(orjson.dumps(event.to_row()))
    return out


def reason_of(exc: ValidationError) -> str:
    first = exc.errors(include_url=False)[0]
    if first.get("type") == "json_invalid":
        return "undecodable: not valid JSON"
    where = ".".join(str(p) for p in first.get("loc", ()))
    return f"wrong schema: {where or 'message'}: {first.get('msg')}"


def payload_of(value: bytes) -> Any:
    """The original message as JSON when it parses, else as text, so it can be fixed and replayed."""
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return value.decode("utf-8", errors="replace")


@dataclass
class LoaderStats:
    loaded: int = 0
    dead_lettered: int = 0
    batches: int = 0
    insert_failures: int = 0
    last_batch_at: float | None = None
    last_error: str | None = None


class ClickHouseLoader:
    """Owns the retry policy: ClickHouse errors are retried with backoff, never skipped."""

    def __init__(
        self,
        clickhouse: ClickHouse,
        producer: DurableProducer,
        dead_letter_topic: str,
        settings: StreamSettings,
    ) -> None:
        self.clickhouse = clickhouse
        self.producer = producer
        self.dead_letter_topic = dead_letter_topic
        self.settings = settings
        self.stats = LoaderStats()

    async def load(self, decoded: Decoded) -> None:
        if decoded.dead:
            messages = [OutgoingMessage(self.dead_letter_topic, d.to_message()) for d in decoded.dead]
            await self._retry("dead-letter", lambda: self.producer.send_all(messages))
            self.stats.dead_lettered += len(decoded.dead)
            for dead in decoded.dead:
                log.warning(
                    "dead-lettered %s[%s]@%s: %s", dead.topic, dead.partition, dead.offset, dead.reason
                )
        if decoded.rows:
            block = b"\n".join(decoded.rows)
            await self._retry("insert", lambda: self.clickhouse.insert_json_rows(EVENTS_TABLE, block))
            self.stats.loaded += len(decoded.rows)
        self.stats.batches += 1
        self.stats.last_batch_at = time.time()

    async def _retry(self, what: str, attempt: Any) -> None:
        delay = 0.2
        while True:
            try:
                await attempt()
                return
            except (AnalyticsError, OSError) as exc:
                self.stats.insert_failures += 1
                self.stats.last_error = f"{what}: {exc}"
                log.warning("%s failed (%s); retrying in %.1fs without committing", what, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.retry_max_seconds)


def register_loader(
    app: faust.App, topic: faust.TopicT, loader: ClickHouseLoader, settings: StreamSettings
) -> None:
    """The faust agent: take a batch, load it, then ack every event in it."""

    @app.agent(topic, name="clickhouse-loader", concurrency=1)
    async def load_into_clickhouse(stream: faust.StreamT) -> None:
        async for events in stream.noack_take(settings.batch_size, within=settings.flush_seconds):
            raw = [(e.value, e.message.topic, e.message.partition, e.message.offset) for e in events]
            await loader.load(decode_batch(raw, settings.max_message_bytes))
            for event in events:
                await stream.ack(event)
