"""ClickHouse failing for a while: the loader retries with backoff, commits nothing it did not store,
then catches up; ingest keeps answering 202 meanwhile. Embedded ClickHouse cannot be stopped on its
own, so the failure is injected at the client boundary (`ClickHouse.insert_json_rows`)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.runtime import Runtime, build_app
from shared.contracts.topics import Topics
from shared.errors import StorageUnavailable
from shared.settings import CommonSettings
from tests.pipeline import make_events
from tests.support import INGEST_KEY, KEY_ENV, auth, unique_name, wait_until


async def committed(bootstrap: str, group: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return sum(max(meta.offset, 0) for meta in offsets.values())


async def topic_end(bootstrap: str, topic: str) -> int:
    """Messages on the topic (sum of its partitions' end offsets): what a complete commit reaches."""
    partitions = [TopicPartition(topic, p) for p in range(CommonSettings().topic_partitions)]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    return sum(ends.values())


async def test_insert_failures_are_retried_and_nothing_is_committed_early(
    kafka_bootstrap: str, chdb_path: Path, clickhouse_server_url: str | None, monkeypatch
) -> None:
    prefix = unique_name()
    for name, value in {
        **KEY_ENV,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "CLICKHOUSE_URL": clickhouse_server_url or f"chdb://{chdb_path}",
        "CLICKHOUSE_DATABASE": unique_name("db_"),
        "ANALYTICS_TOPIC_PREFIX": prefix,
        "STREAM_FLUSH_SECONDS": "0.2",
        "STREAM_RETRY_MAX_SECONDS": "0.5",
        "STREAM_LIVE_ENABLED": "false",
    }.items():
        monkeypatch.setenv(name, value)
    runtime = Runtime(CommonSettings(), ("stream", "ingest"))
    app = build_app(runtime)
    topics = Topics(prefix)
    await runtime.start()
    try:
        clickhouse = runtime.resources.clickhouse
        assert clickhouse is not None
        loader = runtime.components["stream"].loader  # type: ignore[attr-defined]
        real_insert = clickhouse.insert_json_rows
        attempts = {"failed": 0, "stored": 0}
        failing = True

        async def flaky_insert(table: str, block: bytes, settings=None) -> None:
            if failing:
                attempts["failed"] += 1
                raise StorageUnavailable("injected: ClickHouse is down")
            await real_insert(table, block, settings)
            attempts["stored"] += 1

        monkeypatch.setattr(loader.clickhouse, "insert_json_rows", flaky_insert)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers=auth(INGEST_KEY)
        ) as client:
            for _ in range(5):  # ingest is unaffected by ClickHouse being down
                response = await client.post("/api/v1/events", json={"events": make_events(100)})
                assert response.status_code == 202

        async def retried_a_few_times() -> bool:
            return attempts["failed"] >= 4

        await wait_until(retried_a_few_times)
        await asyncio.sleep(2.5)  # longer than the commit interval: a wrong commit would show now
        assert await committed(kafka_bootstrap, topics.loader_group) == 0
        assert attempts["stored"] == 0

        failing = False

        async def all_loaded() -> bool:
            rows = await clickhouse.query("SELECT count() FROM analytics_events FINAL")
            return rows[0][0] == 500

        await wait_until(all_loaded)

        # A batch request travels as one message per partition, so count messages, not events.
        messages = await topic_end(kafka_bootstrap, topics.events)
        assert 5 <= messages < 500

        async def all_committed() -> bool:
            return await committed(kafka_bootstrap, topics.loader_group) == messages

        await wait_until(all_committed, timeout=30)
        assert loader.stats.loaded == 500
        assert loader.stats.insert_failures >= 4
    finally:
        await runtime.stop()
