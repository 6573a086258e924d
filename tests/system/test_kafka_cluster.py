"""A real 3-broker Kafka cluster (deploy/kafka/cluster.py) under steady ingest load: topics are
replicated 3 times with min.insync.replicas 2; the broker leading the most partitions is SIGKILLed;
two of the three are stopped. Every 202 is kept, each once; no 202 is given that the cluster cannot
keep; the stream processor loads through the leader changes and commits every offset.

Figures (election gap, 503 count, catch-up time) are printed: run with `-s` to see them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from deploy.kafka.cluster import KafkaCluster
from deploy.processes import ServiceProcess
from shared.contracts.topics import Topics
from tests.pipeline import stats
from tests.support import Environment, wait_until
from tests.system.cluster_support import (
    ClusterLoad,
    describe_topics,
    leader_counts,
    stored_event_ids,
    wait_committed_to_end,
    wait_in_sync,
)

pytestmark = pytest.mark.timeout(900)


@dataclass
class Pipeline:
    cluster: KafkaCluster
    environment: Environment
    ingest: ServiceProcess
    processor: ServiceProcess

    @property
    def bootstrap(self) -> str:
        return self.cluster.bootstrap_servers

    @property
    def events_topic(self) -> str:
        return Topics(self.environment.prefix).events


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    kafka = KafkaCluster(tmp_path_factory.mktemp("kafka-cluster"), nodes=3)
    kafka.start()
    yield kafka
    kafka.kill()  # SIGKILL: a graceful stop of the last node waits for a quorum that is gone


@pytest.fixture(scope="module")
def pipeline(
    cluster: KafkaCluster, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Pipeline]:
    environment = Environment(
        kafka=cluster.bootstrap_servers, clickhouse_url=None, workdir=tmp_path_factory.mktemp("cluster")
    )
    ingest = environment.service("ingest", INGEST_ACK_TIMEOUT_SECONDS=3)
    processor = environment.service("stream,query")
    failed_before = request.session.testsfailed
    try:
        ingest.start()
        processor.start()
        yield Pipeline(cluster, environment, ingest, processor)
    finally:
        for process in (ingest, processor):
            process.kill()
            if request.session.testsfailed > failed_before:
                print(f"--- last lines of the {process.targets} service's log:\n{process.tail(60)}")


def event_count(url: str, event: str) -> int:
    counts = {row["event"]: row["count"] for row in stats(url)["by_event"]}
    return int(counts.get(event, 0))


def wait_loaded(url: str, event: str, expected: int, timeout: float = 120.0) -> float:
    """Seconds until ClickHouse holds `expected` events named `event`."""
    started = time.monotonic()
    seen = -1

    def loaded() -> bool:
        nonlocal seen
        try:
            seen = event_count(url, event)
        except httpx.HTTPError:
            seen = -1
        return seen >= expected

    state = lambda: f"{seen} of {expected} {event} events loaded"  # noqa: E731
    asyncio.run(wait_until(loaded, timeout, interval=0.3, state=state))
    return time.monotonic() - started


def check_everything_kept(pipeline: Pipeline, load: ClusterLoad) -> int:
    """The acknowledged ids are exactly the stored ones, every offset is committed; returns the copies
    a replay left before a merge (stored rows minus distinct ids)."""
    wait_loaded(pipeline.processor.url, load.event, len(load.acknowledged))
    group = Topics(pipeline.environment.prefix).loader_group
    wait_committed_to_end(pipeline.bootstrap, group, pipeline.events_topic)
    pipeline.processor.terminate()
    try:
        stored, rows = stored_event_ids(pipeline.environment, load.event)
    finally:
        pipeline.processor.start()
    assert len(stored) == len(set(stored)), "an event_id is counted twice"
    assert set(stored) == load.acknowledged, (
        f"{len(load.acknowledged - set(stored))} acknowledged ids missing, "
        f"{len(set(stored) - load.acknowledged)} stored without a 202"
    )
    return rows - len(stored)


def test_topics_are_replicated_three_times_and_shortfalls_reported(pipeline: Pipeline) -> None:
    names = list(Topics(pipeline.environment.prefix).specs(4))
    described = {t["topic"]: t for t in describe_topics(pipeline.bootstrap)}
    for name in [*names, "__consumer_offsets"]:
        assert {len(p["replicas"]) for p in described[name]["partitions"]} == {3}, name
    assert topic_report(pipeline.ingest.url) == {"replication": 3, "min_insync_replicas": 2, "warnings": []}

    # Topics another deployment created with replication 1 are used, but reported at start-up.
    weak = Environment(kafka=pipeline.bootstrap, clickhouse_url=None, workdir=pipeline.environment.workdir)
    create_unreplicated(pipeline.bootstrap, Topics(weak.prefix).events)
    ingest = weak.service("ingest")
    try:
        ingest.start()
        warnings = topic_report(ingest.url)["warnings"]
        assert len(warnings) == 2, warnings  # replication 1 < 3, min.insync.replicas 1 < 2
        assert f"topic {Topics(weak.prefix).events} has replication 1, below the wanted 3" in warnings[0]
        assert "below the wanted 3" in ingest.tail(200)
    finally:
        ingest.kill()


def topic_report(url: str, timeout: float = 60.0) -> dict[str, Any]:
    """/readyz's `topics`, once there: ingest checks its topics in the background after it starts
    (services/ingest), and can be ready to publish before that check has answered."""
    deadline = time.monotonic() + timeout
    while True:
        body = httpx.get(f"{url}/readyz", timeout=10).json()
        if "topics" in body:
            return dict(body["topics"])
        if time.monotonic() >= deadline:
            raise AssertionError(f"/readyz had no topic report within {timeout:.0f} s: {body}")
        time.sleep(0.2)


def create_unreplicated(bootstrap: str, topic: str) -> None:
    import asyncio

    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    async def create() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, 4, 1, topic_configs={"min.insync.replicas": "1"})])
        finally:
            await admin.close()

    asyncio.run(create())


def test_leader_killed_under_load_keeps_every_202_and_the_loader_going(pipeline: Pipeline) -> None:
    load = ClusterLoad(pipeline.ingest.url, "leader_kill").start()
    time.sleep(5)
    victim, led = leader_counts(pipeline.bootstrap, pipeline.events_topic).most_common(1)[0]
    killed_at = time.monotonic()
    pipeline.cluster.broker(victim).kill()
    time.sleep(20)
    # The broker is still down: the processor must load what was acknowledged meanwhile.
    acknowledged_while_down = len(load.acknowledged)
    caught_up = wait_loaded(pipeline.processor.url, load.event, acknowledged_while_down, timeout=60)
    restarted_at = time.monotonic()
    pipeline.cluster.broker(victim).start()
    listening = time.monotonic() - restarted_at
    in_sync = wait_in_sync(pipeline.bootstrap, victim)
    time.sleep(3)
    load.stop()

    during = load.statuses(since=killed_at, until=restarted_at)
    gap = load.longest_gap(since=killed_at)
    copies = check_everything_kept(pipeline, load)
    print(
        f"\nleader kill: broker {victim} led {led} of the events topic's partitions; "
        f"longest time without a 202 after the SIGKILL {gap:.1f}s; answers while it was down {dict(during)} "
        f"(503: {during[503]}); 202 p50 latency before {load.latency_p50(0, killed_at) * 1000:.0f} ms; "
        f"loader caught up to the {acknowledged_while_down} acknowledged {caught_up:.1f}s after, with the "
        f"broker down; the restarted broker listened {listening:.1f}s after its start and was in sync "
        f"for every partition {in_sync:.1f}s later; "
        f"{len(load.acknowledged)} acknowledged, all stored once ({copies} replayed copies before merge)"
    )
    assert during[202] > 0, "ingest never recovered while the broker was down"
    assert set(during) <= {202, 503}, dict(during)


def test_two_of_three_brokers_stopped_refuses_then_resumes(pipeline: Pipeline) -> None:
    load = ClusterLoad(pipeline.ingest.url, "two_down").start()
    time.sleep(4)
    leaders = leader_counts(pipeline.bootstrap, pipeline.events_topic)
    first, second = [n for n, _ in leaders.most_common()][:2] if len(leaders) > 1 else (1, 2)
    pipeline.cluster.broker(first).stop()  # controlled shutdown: the ISR shrinks to the other two
    pipeline.cluster.broker(second).stop()  # now one copy is in sync, below min.insync.replicas=2
    down_at = time.monotonic()
    time.sleep(10)
    refused = load.statuses(since=down_at)
    log = pipeline.ingest.log_path.read_text(errors="replace")
    refusals = {kind: log.count(kind) for kind in ("NotEnoughReplicas", "TimeoutError", "NotLeader")}
    back_at = time.monotonic()
    pipeline.cluster.broker(first).start()
    resumed_202 = lambda: load.first_202_after(back_at) is not None  # noqa: E731
    asyncio.run(wait_until(resumed_202, 120, interval=0.5, state=lambda: "no 202 since a broker returned"))
    resumed = load.first_202_after(back_at)
    pipeline.cluster.broker(second).start()
    for node in (first, second):
        wait_in_sync(pipeline.bootstrap, node)
    time.sleep(2)
    load.stop()
    assert resumed is not None
    copies = check_everything_kept(pipeline, load)
    print(
        f"\ntwo brokers down: answers to requests sent while only one ran {dict(refused)}; "
        f"the producer's errors in ingest's log so far: {refusals}; "
        f"first 202 {resumed:.1f}s after broker {first} was started again (its start included); "
        f"{len(load.acknowledged)} acknowledged, all stored once ({copies} replayed copies before merge)"
    )
    assert refused[202] == 0, "a 202 the cluster could not keep"
    assert refused[503] > 0, dict(refused)
