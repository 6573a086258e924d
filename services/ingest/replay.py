"""Dead letters out, fixed events back in.

    python -m services.ingest.replay export dead.jsonl       # every dead letter, one JSON per line
    # ... fix the `payload` of the lines you want back (or fix the code that refused them) ...
    python -m services.ingest.replay import dead.jsonl       # validate each payload again, publish the good

Import validates with the same rules as ingest (native API, Segment, PostHog, or the events-topic
message the stream processor refused, as the record's `source` and `stage` say) and publishes with the
durable producer; event_ids are kept, so importing the same file twice does not double-count. Lines that
still fail are listed with their reason. Bringing events back in is ingest's job, so the tool lives here.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from services.ingest.native_events import native_event
from services.ingest.posthog import posthog_event
from services.ingest.segment import segment_event
from shared.contracts.events import AcceptedEvent, StoredEvent
from shared.contracts.topics import OutgoingMessage, Topics
from shared.kafka import DurableProducer
from shared.settings import CommonSettings
from shared.validation import reasons

REPLAY_NAMESPACE = uuid.UUID("0b6f7f55-8d9b-4a43-9a51-3f0d8c1e2a77")


async def export_dead_letters(bootstrap: str, topic: str, out: Path) -> int:
    """Write every message on the dead-letter topic, up to its end now, to `out` (JSON lines)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    written = 0
    try:
        partitions = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or set())]
        if not partitions:
            await consumer._client.force_metadata_update()  # noqa: SLF001 - first call may lack metadata
            partitions = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or set())]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        with out.open("wb") as sink:
            while await behind(consumer, ends):
                for records in (await consumer.getmany(timeout_ms=1000)).values():
                    for record in records:
                        sink.write(with_position(record.value, record.partition, record.offset) + b"\n")
                        written += 1
    finally:
        await consumer.stop()
    return written


def with_position(value: bytes, partition: int, offset: int) -> bytes:
    """Note where the dead letter sits, so a payload without an id gets a stable one on import."""
    try:
        record = orjson.loads(value)
    except orjson.JSONDecodeError:
        return value
    record["dead_letter_position"] = f"{partition}:{offset}"
    return orjson.dumps(record)


async def behind(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    """True while some partition has not been read up to its end offset."""
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return True
    return False


def revive(record: dict[str, Any], now: datetime) -> StoredEvent | AcceptedEvent:
    """The event a dead letter's payload makes under today's rules (raises if it still cannot load)."""
    payload = record.get("payload")
    position = record.get("dead_letter_position")
    if isinstance(payload, dict) and position:
        # Importing the same file twice must not double-count items that never had an id.
        stable_id = str(uuid.uuid5(REPLAY_NAMESPACE, position))
        payload = {**payload}
        if record.get("source") == "posthog" and isinstance(payload.get("data"), dict):
            payload["data"] = {"uuid": stable_id, **payload["data"]}  # the event's own uuid wins
        else:
            payload.setdefault("messageId" if record.get("source") == "segment" else "event_id", stable_id)
    if record.get("source") == "segment":
        return segment_event(payload, now)
    if record.get("source") == "posthog":
        return posthog_event(payload, now)
    if record.get("stage") == "stream":
        return StoredEvent.model_validate(
            payload if isinstance(payload, dict) else orjson.loads(str(payload))
        )
    return native_event(payload, now)


def read_lines(path: Path) -> Iterator[tuple[int, Any]]:
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        if line.strip():
            yield number, orjson.loads(line)


async def import_dead_letters(
    bootstrap: str, topic: str, path: Path, ack_timeout: float = 10.0
) -> tuple[int, int]:
    """Publish every line that now validates; print the others. Returns (published, still_failing)."""
    now = datetime.now(UTC)
    messages: list[OutgoingMessage] = []
    failing = 0
    for number, record in read_lines(path):
        try:
            event = revive(record, now)
        except (ValidationError, ValueError, TypeError) as exc:
            failing += 1
            print(f"line {number}: still invalid: {'; '.join(reasons(exc))}", file=sys.stderr)
            continue
        messages.append(OutgoingMessage(topic, event.to_message(), event.key))
    producer = DurableProducer(bootstrap, ack_timeout=ack_timeout, client_id="analytics-replay")
    await producer.start()
    try:
        for start in range(0, len(messages), 1000):
            await producer.send_all(messages[start : start + 1000])
    finally:
        await producer.stop()
    return len(messages), failing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.ingest.replay",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("action", choices=["export", "import"])
    parser.add_argument("file", type=Path)
    args = parser.parse_args(argv)
    settings = CommonSettings()
    bootstrap, topics = settings.kafka_bootstrap_servers, Topics(settings.topic_prefix)
    if args.action == "export":
        count = asyncio.run(export_dead_letters(bootstrap, topics.dead_letter, args.file))
        print(f"exported {count} dead letters to {args.file}")
        return 0
    published, failing = asyncio.run(import_dead_letters(bootstrap, topics.events, args.file))
    print(f"published {published} events; {failing} lines still invalid")
    return 0 if failing == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
