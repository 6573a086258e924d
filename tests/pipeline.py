"""Helpers for end-to-end pipeline tests: generating events, waiting for them in /stats, reading topics."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer

from tests.support import READ_KEY, auth

DAY = "2023-03-01"


def make_events(
    count: int, *, start: datetime | None = None, users: int = 100, name: str = "page_view"
) -> list[dict[str, Any]]:
    start = start or datetime(2023, 3, 1, tzinfo=UTC)
    return [
        {
            "event": name,
            "user_id": f"user-{i % users}",
            "timestamp": (start + timedelta(seconds=i % 86_000)).isoformat(),
            "event_id": str(uuid.uuid4()),
            "properties": {"i": i},
        }
        for i in range(count)
    ]


def stats(url: str, start: str = DAY, end: str = DAY) -> dict[str, Any]:
    response = httpx.get(
        f"{url}/api/v1/analytics/stats",
        params={"start_date": start, "end_date": end},
        headers=auth(READ_KEY),
        timeout=30,
    )
    response.raise_for_status()
    return response.json()


def wait_for_count(
    url: str, expected: int, timeout: float = 120.0, start: str = DAY, end: str = DAY
) -> dict[str, Any]:
    """Poll /stats until `events` reaches `expected` (or time out with the last answer)."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            last = stats(url, start, end)
        except httpx.HTTPError:
            time.sleep(0.5)
            continue
        if last["events"] >= expected:
            return last
        time.sleep(0.3)
    return last


def read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Every JSON item on a topic from the beginning (an envelope's events one by one), until
    `expected` arrived or the timeout."""
    found: list[dict[str, Any]] = []
    for _, value in read_messages(bootstrap, topic, expected, timeout, unwrap=True):
        found.extend(value)
    return found


def read_messages(
    bootstrap: str, topic: str, expected: int, timeout: float = 30.0, unwrap: bool = False
) -> list[tuple[int, Any]]:
    """(partition, parsed JSON) of every message on a topic from the beginning, until `expected`
    items arrived (counting an envelope's events when `unwrap`, each then a list) or the timeout."""

    async def consume() -> list[tuple[int, Any]]:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
        )
        await consumer.start()
        found: list[tuple[int, Any]] = []
        count = 0
        deadline = time.monotonic() + timeout
        try:
            while count < expected and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    for record in records:
                        value = orjson.loads(record.value)
                        if unwrap:
                            value = value["events"] if is_envelope(value) else [value]
                            count += len(value)
                        else:
                            count += 1
                        found.append((record.partition, value))
        finally:
            await consumer.stop()
        return found

    return asyncio.run(consume())


def is_envelope(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("events"), list) and "event" not in value


async def produce_raw(bootstrap: str, topic: str, values: list[bytes]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=4 * 1024 * 1024)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()
