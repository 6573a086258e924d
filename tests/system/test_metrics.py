"""Metrics and logs end to end: every service of the production split scraped before and after a load
that exercises each figure (events good and bad, identify calls, a poison message on the topic, queries,
an ETL run, a rate-limited WebSocket client, an ingest without Kafka, a query service whose every query
times out); each metric the Grafana dashboard uses must exist and move. Also: `GET /metrics` and its
token, its absence from the OpenAPI document, JSON log lines with the request id, and no key or token
in any log."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from deploy.kafka.broker import free_port
from deploy.processes import ServiceProcess
from shared.contracts.topics import Topics
from tests.live.client import LiveClient, open_live
from tests.pipeline import wait_for_count
from tests.support import ADMIN_KEY, INGEST_KEY, READ_KEY, REPO, Environment, auth, wait_until

TOKEN = "metrics-token-0123456789abcdef"
DASHBOARD = REPO / "deploy" / "grafana" / "analytics-dashboard.json"
METRIC_NAME = re.compile(r"\b((?:analytics|process)_[a-z0-9_]+)\b")
TODAY = datetime.now(UTC).date().isoformat()
YESTERDAY = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()


@dataclass
class Split:
    """The production split plus two processes that fail on purpose."""

    environment: Environment
    ingest: ServiceProcess
    storage: ServiceProcess  # stream, query and etl: they share the embedded ClickHouse
    live: ServiceProcess
    no_kafka: ServiceProcess  # ingest with no broker: every event request answers 503
    timing_out: ServiceProcess  # query with its own ClickHouse, every query over its deadline

    @property
    def all(self) -> dict[str, ServiceProcess]:
        return {name: getattr(self, name) for name in ("ingest", "storage", "live", "no_kafka", "timing_out")}


@pytest.fixture(scope="module")
def split(
    kafka_bootstrap: str, clickhouse_server_url: str | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Split]:
    common = {"ANALYTICS_METRICS_TOKEN": TOKEN, "ANALYTICS_LOG_FORMAT": "json"}
    environment = Environment(
        kafka_bootstrap, clickhouse_server_url, tmp_path_factory.mktemp("metrics"), extra=common
    )
    lonely = Environment(
        f"127.0.0.1:{free_port()}", None, tmp_path_factory.mktemp("metrics-alone"), extra=common
    )
    split = Split(
        environment,
        environment.service("ingest", ANALYTICS_RATE_LIMIT_INGEST="0"),
        environment.service("stream,query,etl", ETL_SCHEDULE_ENABLED="false", ANALYTICS_RATE_LIMIT_QUERY="0"),
        environment.service("live", LIVE_MAX_EVENTS_PER_SECOND="1"),
        lonely.service("ingest", INGEST_ACK_TIMEOUT_SECONDS="1"),
        lonely.service("query", QUERY_TIMEOUT_SECONDS="0.0001"),
    )
    try:
        for name, process in split.all.items():
            process.start(wait_ready=name != "no_kafka")  # that one is never ready: no Kafka
        yield split
    finally:
        for process in split.all.values():
            process.kill()


def scrape(process: ServiceProcess) -> dict[str, float]:
    """Sample name -> the sum of its samples' values in one scrape."""
    answer = httpx.get(f"{process.url}/metrics", headers=auth(TOKEN), timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


def scrape_all(split: Split) -> dict[str, dict[str, float]]:
    return {name: scrape(process) for name, process in split.all.items()}


def dashboard_metrics() -> set[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return {name for p in panels for t in p.get("targets", []) for name in METRIC_NAME.findall(t["expr"])}


async def run_load(split: Split) -> tuple[int, LiveClient]:
    """Exercise every figure; the number of events accepted, and the WebSocket client (still open)."""
    accepted = 0
    live = await open_live(split.live.url)
    async with httpx.AsyncClient(timeout=60) as client:
        for round_ in range(10):
            batch = [
                {"event": "page_view", "user_id": f"m-{round_}-{i}", "timestamp": f"{TODAY}T10:00:00Z"}
                for i in range(100)
            ]
            batch.append({"event": ""})  # rejected
            answer = await client.post(
                f"{split.ingest.url}/api/v1/events", json={"events": batch}, headers=auth(INGEST_KEY)
            )
            assert answer.status_code == 202, answer.text
            accepted += answer.json()["accepted"]
        for n in range(3):
            body = {
                "anonymous_id": f"m-anon-{n}",
                "user_id": f"m-user-{n}",
                "timestamp": f"{TODAY}T11:00:00Z",
            }
            answer = await client.post(
                f"{split.ingest.url}/api/v1/identify", json=body, headers=auth(INGEST_KEY)
            )
            assert answer.status_code == 202, answer.text
            accepted += 1
        refused = await client.post(
            f"{split.no_kafka.url}/api/v1/events",
            json={"event": "e", "user_id": "u"},
            headers=auth(INGEST_KEY),
        )
        assert refused.status_code == 503, refused.text
        await send_poison(split.environment)
        await live.drain(2)  # the rate limit of 1 a second drops most new events
        read = auth(READ_KEY)
        dates = {"start_date": TODAY, "end_date": TODAY}
        funnel = {"steps": ["page_view", "$identify"], **dates}
        for base in (split.storage.url, split.timing_out.url):
            await client.get(f"{base}/api/v1/analytics/stats", params=dates, headers=read)
            await client.post(f"{base}/api/v1/analytics/funnel", json=funnel, headers=read)
        timed_out = await client.get(
            f"{split.timing_out.url}/api/v1/analytics/stats", params=dates, headers=read
        )
        assert timed_out.status_code == 504, timed_out.text
        await client.get(
            f"{split.storage.url}/api/v1/analytics/cohort", params={"end_date": TODAY}, headers=read
        )
        await client.get(f"{split.storage.url}/api/v1/persons/m-anon-0", headers=read)
    return accepted, live


async def send_poison(environment: Environment) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=environment.kafka)
    await producer.start()
    try:
        await producer.send_and_wait(Topics(environment.prefix).events, b"this is not json", key=b"poison")
    finally:
        await producer.stop()


def run_etl(split: Split, request_id: str) -> None:
    answer = httpx.post(
        f"{split.storage.url}/api/v1/analytics/etl/run",
        json={"date": YESTERDAY},
        headers={**auth(ADMIN_KEY), "X-Request-ID": request_id},
        timeout=120,
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-request-id"] == request_id


def moved_metrics(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]) -> dict[str, str]:
    """Each dashboard metric: "moved", "missing" (no service serves it) or "still" (the same totals)."""
    found = {}
    for name in sorted(dashboard_metrics()):
        present = [process for process, totals in after.items() if name in totals]
        total_before = sum(totals.get(name, 0.0) for totals in before.values())
        appeared = any(name not in before[process] for process in present)
        if not present:
            found[name] = "missing"
        elif appeared or sum(after[p][name] for p in present) != total_before:
            found[name] = "moved"
        else:
            found[name] = "still"
    return found


async def test_every_dashboard_metric_exists_and_moves_under_load(split: Split) -> None:
    before = scrape_all(split)
    accepted, live = await run_load(split)
    try:
        wait_for_count(split.storage.url, accepted, start=TODAY, end=TODAY)
        run_etl(split, "etl-run-under-load")

        async def dead_lettered() -> bool:
            return scrape(split.storage).get("analytics_stream_dead_letters_total", 0) >= 1

        await wait_until(dead_lettered, 60, interval=0.5)
        after = scrape_all(split)  # the WebSocket client is still connected
    finally:
        await live.close()
    found = moved_metrics(before, after)
    missing = [name for name, state in found.items() if state == "missing"]
    still = [name for name, state in found.items() if state == "still"]
    assert not missing, f"the dashboard uses metrics no service serves: {missing}"
    assert not still, f"the dashboard uses metrics that did not move under load: {still}"
    assert len(found) >= 25, sorted(found)
    # The 503s are told apart, in the process that gave them.
    text = httpx.get(f"{split.no_kafka.url}/metrics", headers=auth(TOKEN), timeout=10).text
    assert re.search(r'analytics_ingest_requests_total\{api="events",outcome="unavailable"\} [1-9]', text)


def test_metrics_need_the_token_when_one_is_set(split: Split) -> None:
    url = f"{split.ingest.url}/metrics"
    for headers in ({}, auth("wrong-token-0123456789abcdef"), auth(INGEST_KEY), auth(ADMIN_KEY)):
        answer = httpx.get(url, headers=headers, timeout=10)
        assert answer.status_code == 401, (headers, answer.text)
        assert answer.json()["error"] == "unauthorized"
    assert httpx.get(url, headers=auth(TOKEN), timeout=10).status_code == 200


def test_metrics_need_no_key_without_a_token(
    environment: Environment, services: list[ServiceProcess]
) -> None:
    process = environment.service("ingest")
    services.append(process)
    process.start()
    answer = httpx.get(f"{process.url}/metrics", timeout=10)
    assert answer.status_code == 200 and "analytics_ingest_requests_total" in answer.text
    assert "/metrics" not in httpx.get(f"{process.url}/openapi.json", timeout=10).json()["paths"]


def test_json_logs_carry_the_request_id_and_no_secret(split: Split) -> None:
    given = httpx.get(f"{split.ingest.url}/healthz", headers={"X-Request-ID": "given-id-1"}, timeout=10)
    assert given.headers["x-request-id"] == "given-id-1"
    made = httpx.get(f"{split.ingest.url}/healthz", headers={"X-Request-ID": "bad id!"}, timeout=10)
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
    run_etl(split, "etl-run-logged")  # the run logs a line inside its request
    lines = [line for line in split.storage.log_path.read_text().splitlines() if line.startswith("{")]
    entries = [json.loads(line) for line in lines]
    assert entries and all({"time", "level", "service", "logger", "message"} <= set(e) for e in entries)
    assert {e["service"] for e in entries} == {"query,etl,stream"}
    assert any(e.get("request_id") == "etl-run-logged" for e in entries), entries[-5:]
    for process in split.all.values():
        log = process.log_path.read_text(errors="replace")
        for secret in (INGEST_KEY, READ_KEY, ADMIN_KEY, TOKEN):
            assert secret not in log, (process.targets, secret)
        not_json = [line for line in log.splitlines() if line.strip() and not line.startswith("{")]
        assert not not_json, (process.targets, not_json[:5])  # every line of the output is one object


def test_request_ids_appear_only_with_json_logs(
    environment: Environment, services: list[ServiceProcess]
) -> None:
    process = environment.service("ingest")
    services.append(process)
    process.start()
    answer = httpx.post(
        f"{process.url}/api/v1/events",
        json={"event": "e", "user_id": f"u-{uuid.uuid4().hex[:6]}"},
        headers={**auth(INGEST_KEY), "X-Request-ID": "ignored"},
        timeout=30,
    )
    assert answer.status_code == 202 and "x-request-id" not in answer.headers


def test_the_dashboard_reads_the_provisioned_datasource() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    sources = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p.get("targets", [])}
    provisioned = (REPO / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    assert sources == {"prometheus"} and "uid: prometheus" in provisioned
