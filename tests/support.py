"""Test helpers: where Kafka and ClickHouse come from, and running the real services as processes."""

from __future__ import annotations

import asyncio
import inspect
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from deploy.kafka.broker import KafkaBroker, free_port
from deploy.processes import ServiceProcess
from shared.clickhouse import ClickHouse

REPO = Path(__file__).resolve().parent.parent

INGEST_KEY = "test-ingest-key-0123456789"
READ_KEY = "test-read-key-0123456789ab"
ADMIN_KEY = "test-admin-key-0123456789a"
KEY_ENV = {
    "ANALYTICS_INGEST_KEYS": INGEST_KEY,
    "ANALYTICS_READ_KEYS": READ_KEY,
    "ANALYTICS_ADMIN_KEYS": ADMIN_KEY,
}


def unique_name(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


@asynccontextmanager
async def fresh_database(url: str, **options: Any) -> AsyncIterator[ClickHouse]:
    """ClickHouse with the schema in a fresh database (`options` for the client), dropped after."""
    client = ClickHouse(url, unique_name("db_"), **options)
    await asyncio.to_thread(client.create_schema)
    try:
        yield client
    finally:
        try:
            await client.command(f"DROP DATABASE IF EXISTS {client.database}")
        finally:
            client.close()


def docker_answers() -> bool:
    """True when a Docker engine (not only the client) is reachable."""
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@dataclass
class Environment:
    """What a test's services share: Kafka, the topic prefix, and (for chDB) a data directory."""

    kafka: str
    clickhouse_url: str | None
    workdir: Path
    prefix: str = field(default_factory=unique_name)
    database: str = field(default_factory=lambda: unique_name("db_"))
    extra: dict[str, str] = field(default_factory=dict)

    def env(self, **overrides: Any) -> dict[str, str]:
        values = {
            **KEY_ENV,
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka,
            "ANALYTICS_TOPIC_PREFIX": self.prefix,
            "ANALYTICS_DATA_DIR": str(self.workdir / "data"),
            "CLICKHOUSE_DATABASE": self.database,
            "STREAM_FLUSH_SECONDS": "0.3",
            **self.extra,
        }
        if self.clickhouse_url:
            values["CLICKHOUSE_URL"] = self.clickhouse_url
        values.update({k: str(v) for k, v in overrides.items()})
        return values

    def service(self, targets: str = "all", **overrides: Any) -> ServiceProcess:
        return ServiceProcess(targets, self.env(**overrides), self.workdir)


def module_all_in_one(name: str, extra: dict[str, str]) -> Callable[..., Iterator[ServiceProcess]]:
    """A module-scoped fixture: the all-in-one process with `extra` environment, started once per module
    in its own temporary directory (named after `name`) and killed after the module's last test."""

    @pytest.fixture(scope="module")
    def all_in_one(
        kafka_bootstrap: str, clickhouse_server_url: str | None, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[ServiceProcess]:
        environment = Environment(
            kafka=kafka_bootstrap,
            clickhouse_url=clickhouse_server_url,
            workdir=tmp_path_factory.mktemp(name),
            extra=dict(extra),
        )
        process = environment.service("all")
        process.start()
        yield process
        process.kill()

    return all_in_one


def start_local_broker(workdir: Path) -> KafkaBroker:
    broker = KafkaBroker(workdir / "kafka", port=free_port(), controller_port=free_port())
    broker.start()
    return broker


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]],
    timeout: float = 30.0,
    *,
    interval: float = 0.05,
    state: Callable[[], object] | None = None,
) -> None:
    """Poll `condition` (plain or async) until it holds; on timeout, fail saying what `state` returns."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"not true within {timeout}s" + (f": {state()}" if state else ""))
        await asyncio.sleep(interval)
