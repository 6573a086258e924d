"""Helpers for the Kafka cluster tests: a steady load that records every answer, what the cluster
metadata says about leaders and in-sync replicas, and the loader's committed offsets."""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from tests.pipeline import DAY
from tests.support import INGEST_KEY, REPO, Environment, auth, wait_until

BATCH = 50


@dataclass(frozen=True)
class Answer:
    sent: float  # time.monotonic() when the request left
    done: float
    status: int  # 0: no HTTP answer (connection error, client timeout)


@dataclass
class ClusterLoad:
    """`senders` threads posting batches of `event` with explicit event_ids; like a real client, each
    retries a batch (same ids) until it gets 202, so every id attempted is in the end acknowledged."""

    url: str
    event: str
    senders: int = 4
    pause: float = 0.2
    acknowledged: set[str] = field(default_factory=set)
    answers: list[Answer] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _failures: list[str] = field(default_factory=list)

    def start(self) -> ClusterLoad:
        self._threads = [threading.Thread(target=self._send, daemon=True) for _ in range(self.senders)]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout: float = 120.0) -> None:
        """Stop taking new batches; the batches in hand are retried until acknowledged."""
        self.stopping.set()
        for thread in self._threads:
            thread.join(timeout)
        assert not any(t.is_alive() for t in self._threads), "a sender is still retrying"
        assert not self._failures, self._failures

    def _send(self) -> None:
        with httpx.Client(headers=auth(INGEST_KEY), timeout=15) as client:
            n = 0
            while not self.stopping.is_set():
                n += 1
                batch = [
                    {
                        "event": self.event,
                        "user_id": f"u{n % 300}-{i}",
                        "timestamp": f"{DAY}T12:00:00Z",
                        "event_id": str(uuid.uuid4()),
                    }
                    for i in range(BATCH)
                ]
                self._deliver(client, batch)
                time.sleep(self.pause)

    def _deliver(self, client: httpx.Client, batch: list[dict[str, str]]) -> None:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            sent = time.monotonic()
            status = 0
            try:
                response = client.post(f"{self.url}/api/v1/events", json={"events": batch})
                status = response.status_code
                if status == 503 and "retry-after" not in response.headers:
                    self._failures.append("a 503 without Retry-After")
            except httpx.HTTPError:
                pass
            with self._lock:
                self.answers.append(Answer(sent, time.monotonic(), status))
                if status == 202:
                    self.acknowledged.update(response.json()["event_ids"])
                    return
            time.sleep(0.25)
        self._failures.append("a batch was never acknowledged")

    def statuses(self, since: float = 0.0, until: float = float("inf")) -> Counter[int]:
        """Answers by status for requests sent in [since, until)."""
        with self._lock:
            return Counter(a.status for a in self.answers if since <= a.sent < until)

    def longest_gap(self, since: float) -> float:
        """The longest time without a 202 answer after `since` (to the first one, then between them)."""
        with self._lock:
            times = sorted(a.done for a in self.answers if a.status == 202 and a.done >= since)
        if not times:
            return float("inf")
        return max(b - a for a, b in zip([since, *times], times, strict=False))

    def first_202_after(self, moment: float) -> float | None:
        """Seconds from `moment` to the first 202 of a request sent after it."""
        with self._lock:
            done = [a.done for a in self.answers if a.status == 202 and a.sent >= moment]
        return min(done) - moment if done else None

    def latency_p50(self, since: float, until: float) -> float:
        with self._lock:
            values = [a.done - a.sent for a in self.answers if a.status == 202 and since <= a.sent < until]
        return statistics.median(values) if values else float("nan")


async def _describe(bootstrap: str, topics: list[str] | None = None) -> list[dict]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        return await admin.describe_topics(topics)
    finally:
        await admin.close()


def describe_topics(bootstrap: str, topics: list[str] | None = None) -> list[dict]:
    """Cluster metadata for `topics` (None: every topic, the internal ones included)."""
    return asyncio.run(_describe(bootstrap, topics))


def leader_counts(bootstrap: str, topic: str) -> Counter[int]:
    [described] = describe_topics(bootstrap, [topic])
    return Counter(p["leader"] for p in described["partitions"])


async def out_of_sync(bootstrap: str, node_id: int) -> list[str]:
    """Partitions (every topic) that `node_id` replicates but is not in sync for."""
    missing = []
    for topic in await _describe(bootstrap):
        for p in topic["partitions"]:
            if node_id in p["replicas"] and node_id not in p["isr"]:
                missing.append(f"{topic['topic']}-{p['partition']}")
    return missing


def wait_in_sync(bootstrap: str, node_id: int, timeout: float = 90.0) -> float:
    """Seconds until `node_id` is in sync for every partition it replicates."""
    started = time.monotonic()
    missing: list[str] = []

    async def in_sync() -> bool:
        nonlocal missing
        try:
            missing = await out_of_sync(bootstrap, node_id)
        except Exception as exc:  # noqa: BLE001 - metadata may not answer yet
            missing = [repr(exc)]
        return not missing

    state = lambda: f"node {node_id} out of sync for {missing[:10]}"  # noqa: E731
    asyncio.run(wait_until(in_sync, timeout, interval=0.5, state=state))
    return time.monotonic() - started


async def _lag(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await admin.start()
    await consumer.start()
    try:
        [described] = await admin.describe_topics([topic])
        partitions = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
        ends = await consumer.end_offsets(partitions)
        committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
        return {tp.partition: ends[tp] - committed[tp].offset for tp in partitions}
    finally:
        with contextlib.suppress(asyncio.CancelledError):  # aiokafka 0.14 may re-raise its own cancel
            await consumer.stop()
        await admin.close()


def wait_committed_to_end(bootstrap: str, group: str, topic: str, timeout: float = 60.0) -> None:
    """Wait until the group's committed offset is the end of every partition."""
    lag: dict[int, int] | str = {}

    async def at_end() -> bool:
        nonlocal lag
        try:
            lag = await _lag(bootstrap, group, topic)
        except Exception as exc:  # noqa: BLE001 - coordinator may be moving
            lag = repr(exc)
        return isinstance(lag, dict) and bool(lag) and not any(lag.values())

    asyncio.run(wait_until(at_end, timeout, interval=1.0, state=lambda: f"committed offsets lag {lag}"))


def stored_event_ids(environment: Environment, event: str) -> tuple[list[str], int]:
    """event_ids of `event` as every reader sees them (FINAL), and the raw row count (copies from a
    replay included, before a merge collapses them), from the stopped processor's chDB directory."""
    script = (
        "import json, sys, clickhouse_connect\n"
        f"c = clickhouse_connect.get_client(dsn='chdb://{environment.workdir / 'data' / 'clickhouse'}',"
        f" database='{environment.database}')\n"
        "p = {'e': sys.argv[1]}\n"
        "ids = c.query('SELECT toString(event_id) FROM analytics_events FINAL WHERE event = {e:String}',"
        " parameters=p).result_rows\n"
        "raw = c.query('SELECT count() FROM analytics_events WHERE event = {e:String}', parameters=p)\n"
        "json.dump([[r[0] for r in ids], raw.result_rows[0][0]], sys.stdout)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, event], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    ids, raw = json.loads(result.stdout)
    return ids, int(raw)
