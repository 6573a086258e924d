"""Helpers for the tracker tests (PostHog's and Segment's libraries and protocols): what a running
system stored, read back from its events topic (the message is the row), from /stats (each event_id
once) and from the persons API, and the events it dead-lettered."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer

from deploy.processes import ServiceProcess
from shared.contracts.topics import Topics
from tests.pipeline import is_envelope, stats
from tests.support import READ_KEY, auth, wait_until

Match = Callable[[dict[str, Any]], bool]


def topics_of(system: ServiceProcess) -> Topics:
    return Topics(system.env["ANALYTICS_TOPIC_PREFIX"])


def topic_items(system: ServiceProcess, topic: str, match: Match, expected: int, timeout: float) -> list[Any]:
    """Every item on `topic` (an envelope's events one by one) that `match`es, read from the start
    until `expected` of them arrived, then once more to the end: a duplicate would show."""

    async def consume() -> list[Any]:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=system.env["KAFKA_BOOTSTRAP_SERVERS"],
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
        )
        await consumer.start()
        found: list[Any] = []
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    for record in records:
                        value = orjson.loads(record.value)
                        for item in value["events"] if is_envelope(value) else [value]:
                            if match(item):
                                found.append(item)
                if len(found) >= expected and not batch:
                    break
        finally:
            await consumer.stop()
        return found

    return asyncio.run(consume())


def stored(system: ServiceProcess, user_ids: set[str], expected: int, timeout: float = 60.0) -> list[dict]:
    """The events of `user_ids` on the system's events topic (what the loader writes to ClickHouse)."""
    topic = topics_of(system).events
    return topic_items(system, topic, lambda e: e.get("user_id") in user_ids, expected, timeout)


def dead_letters(system: ServiceProcess, match: Match, expected: int, timeout: float = 30.0) -> list[dict]:
    return topic_items(system, topics_of(system).dead_letter, match, expected, timeout)


def counts_by_event(
    system: ServiceProcess, names: set[str], expected: int, days: tuple[str, str], timeout: float = 120.0
) -> dict[str, int]:
    """/stats' count per event name (each event_id once, read from ClickHouse) once `expected` events
    of `names` are in; the last answer after `timeout`."""
    counts: dict[str, int] = {}

    def arrived() -> bool:
        answer = stats(system.url, *days)
        counts.clear()
        counts.update({e["event"]: e["count"] for e in answer["by_event"] if e["event"] in names})
        return sum(counts.values()) >= expected

    with contextlib.suppress(AssertionError):  # the caller compares the counts, and shows them
        asyncio.run(wait_until(arrived, timeout, interval=0.3))
    return counts


def person_of(
    system: ServiceProcess, distinct_id: str, key: str, events: int = 0, timeout: float = 60.0
) -> dict[str, Any]:
    """The persons API's answer for `distinct_id` once the stream processor has resolved it to the person
    with key `key` (a merge is visible once the processor that loaded the link resolved it) and at least
    `events` of the person's events are loaded."""
    answer: dict[str, Any] = {}

    def resolved() -> bool:
        response = httpx.get(f"{system.url}/api/v1/persons/{distinct_id}", headers=auth(READ_KEY), timeout=30)
        if response.status_code != 200:
            return False
        answer.clear()
        answer.update(response.json())
        return answer["person_id"] == key and answer["events"] >= events

    asyncio.run(wait_until(resolved, timeout, interval=0.3, state=lambda: f"{distinct_id}: {answer}"))
    return answer


def person_events(system: ServiceProcess, distinct_id: str) -> list[dict[str, Any]]:
    """The events of `distinct_id`'s person, newest first (one page of up to 1,000)."""
    response = httpx.get(
        f"{system.url}/api/v1/persons/{distinct_id}/events",
        params={"limit": 1000},
        headers=auth(READ_KEY),
        timeout=30,
    )
    response.raise_for_status()
    events: list[dict[str, Any]] = response.json()["events"]
    return events


def days_around_now() -> tuple[str, str]:
    now = datetime.now(UTC)
    return (now - timedelta(days=1)).date().isoformat(), (now + timedelta(days=1)).date().isoformat()
