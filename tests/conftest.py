"""Fixtures: real Kafka and real ClickHouse, picked in this order:
1. KAFKA_BOOTSTRAP_SERVERS / CLICKHOUSE_URL when set (an existing cluster);
2. testcontainers (Kafka and ClickHouse server images) when a Docker engine answers;
3. the local broker from deploy/ and embedded chDB (what runs here and in CI).
Each test gets its own topic prefix (so its own topics and consumer groups) and its own database."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from shared.clickhouse import ClickHouse
from tests.support import (
    Environment,
    ServiceProcess,
    docker_answers,
    fresh_database,
    start_local_broker,
)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        return
    if docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("apache/kafka:4.1.1").with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    broker = start_local_broker(tmp_path_factory.mktemp("kafka"))
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def clickhouse_server_url() -> Iterator[str | None]:
    """A ClickHouse server URL, or None to use embedded chDB (one data dir per process)."""
    if os.environ.get("CLICKHOUSE_URL"):
        yield os.environ["CLICKHOUSE_URL"]
        return
    if docker_answers():
        from testcontainers.clickhouse import ClickHouseContainer

        with ClickHouseContainer("clickhouse/clickhouse-server:25.8") as container:
            yield container.get_connection_url().replace("clickhouse://", "http://")
        return
    yield None


@pytest.fixture(scope="session")
def chdb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The one chDB directory this pytest process may open (chDB allows one per process)."""
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture
async def clickhouse(clickhouse_server_url: str | None, chdb_path: Path) -> AsyncIterator[ClickHouse]:
    """ClickHouse with the schema in a fresh database, for tests that load rows directly."""
    async with fresh_database(clickhouse_server_url or f"chdb://{chdb_path}") as client:
        yield client


@pytest.fixture
def environment(kafka_bootstrap: str, clickhouse_server_url: str | None, tmp_path: Path) -> Environment:
    return Environment(kafka=kafka_bootstrap, clickhouse_url=clickhouse_server_url, workdir=tmp_path)


CALL_REPORT = pytest.StashKey[pytest.TestReport]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    """Keep the test's own outcome on the item, for fixtures that report more when it failed."""
    report: pytest.TestReport = yield
    if report.when == "call":
        item.stash[CALL_REPORT] = report
    return report


@pytest.fixture
def services(request: pytest.FixtureRequest) -> Iterator[list[ServiceProcess]]:
    """Processes a test starts; all are stopped at the end whatever happened. When the test failed,
    the end of each one's log is printed (pytest shows it under the failure)."""
    started: list[ServiceProcess] = []
    yield started
    report = request.node.stash.get(CALL_REPORT, None)
    for process in started:
        process.kill()
        if report is not None and report.failed:
            print(f"--- last lines of the {process.targets} service's log ({process.log_path}):")
            print(process.tail(60))


@pytest.fixture
def system(environment: Environment, services: list[ServiceProcess]) -> ServiceProcess:
    """The all-in-one process (`python -m services --target all`), ready."""
    process = environment.service("all")
    services.append(process)
    return process.start()
