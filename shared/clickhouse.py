"""The one execute path to ClickHouse: embedded chDB (`chdb://path`) or a server (`http(s)://...`).

Every query goes through `ClickHouse.query`: values travel as server-side parameters (`{name:Type}`),
settings are appended as a SETTINGS clause (both chDB and the server accept it), the call runs in a
worker thread so the event loop never blocks, and driver errors become user-safe `shared.errors`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError, DatabaseError, OperationalError

from shared.clickhouse_cluster import ClusterForm, cluster_statements
from shared.contracts import materialized
from shared.contracts.storage import schema_statements
from shared.errors import InvalidRequest, QueryFailed, QueryTimeout, StorageUnavailable
from shared.metrics import counter

log = logging.getLogger(__name__)

TIMEOUT_CODES = {"159", "160", "394"}  # TIMEOUT_EXCEEDED, TOO_SLOW, QUERY_WAS_CANCELLED
UNAVAILABLE_CODES = {"241", "202", "210", "209", "242"}  # memory, too many queries, network, readonly
# CANNOT_COMPILE_REGEXP: a pattern the request models accepted (google-re2) that ClickHouse's RE2 does not.
CLIENT_CODES = {"427": "a regular expression in the filters could not be compiled (RE2 syntax)"}
ERROR_CODE = re.compile(r"Code: (\d+)")
SETTING_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
ERRORS = counter(
    "clickhouse_errors_total",
    "ClickHouse calls that failed, by kind: timeout, unavailable, rejected (a query it refused), failed",
    ["kind"],
)


class ClickHouse:
    """Thread-pooled ClickHouse client; one driver client per worker thread."""

    def __init__(
        self,
        url: str,
        database: str,
        *,
        workers: int = 4,
        query_timeout: float = 30.0,
        cluster: str | None = None,
        materialized_keys: tuple[str, ...] = materialized.DEFAULT_KEYS,
    ) -> None:
        self.url = url
        self.database = database
        self.cluster = cluster  # None: one server; a name: the cluster form (shared/clickhouse_cluster.py)
        self.form = ClusterForm(database, cluster) if cluster else None
        # The event property keys with a materialized column (created by create_schema), which readers
        # read instead of the JSON (shared/contracts/materialized.py).
        self.materialized = materialized.MaterializedColumns.of(materialized_keys)
        self.query_timeout = query_timeout
        self._local = threading.local()
        self._clients: list[Client] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="clickhouse")

    @property
    def embedded(self) -> bool:
        return self.url.startswith("chdb:")

    def _connect(self, database: str | None) -> Client:
        if self.embedded:
            path = self.url.split("?", 1)[0]
            return clickhouse_connect.get_client(dsn=path, database=database)
        return clickhouse_connect.get_client(dsn=self.url, database=database or "default")

    def _client(self) -> Client:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._connect(self.database)
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def create_schema(self) -> None:
        """Create the database and tables (idempotent, safe from several replicas at once)."""
        bootstrap = self._connect(None)
        statements = [
            f"CREATE DATABASE IF NOT EXISTS {self.database}",
            *schema_statements(self.database),
            *materialized.add_column_statements(self.database, self.materialized.columns),
        ]
        if self.cluster:
            statements = cluster_statements(statements[1:], self.database, self.cluster)
        try:
            for statement in statements:
                bootstrap.command(statement)
        finally:
            bootstrap.close()

    async def query(
        self,
        sql: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        settings: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> list[tuple[Any, ...]]:
        """Run a SELECT and return its rows."""
        if self.form is not None:
            sql = self.form.expressions(sql)
        full_sql = with_settings(
            sql, {"max_execution_time": timeout or self.query_timeout, **(settings or {})}
        )
        return await self._run(self._query_rows, full_sql, dict(parameters or {}))

    async def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> Any:
        """Run a statement that returns no rows (DDL, INSERT ... SELECT, ALTER); on a cluster, its
        cluster form (shared/clickhouse_cluster.py refuses what it has none for)."""
        settings: dict[str, Any] = {}
        if self.form is not None:
            rendered = self.form.statement(sql)
            if rendered is None:
                return None
            sql, settings = rendered
        return await self._run(
            lambda s, p: self._client().command(s, parameters=p, settings=settings or None),
            sql,
            dict(parameters or {}),
        )

    async def insert_json_rows(
        self, table: str, block: bytes, settings: Mapping[str, Any] | None = None
    ) -> None:
        """Insert newline-delimited JSON rows (JSONEachRow) in one block."""
        target: str | None = table
        if self.form is not None:
            target = self.form.insert_target(table)
            if target is None:
                return  # a table the cluster replaces by a dictionary over what was written elsewhere
        await self._run(self._insert_block, target, block, dict(settings or {}))

    async def ping(self) -> bool:
        try:
            await self.query("SELECT 1", timeout=5)
        except Exception:  # noqa: BLE001 - readiness reports, it does not raise
            return False
        return True

    def _query_rows(self, sql: str, parameters: dict[str, Any]) -> list[tuple[Any, ...]]:
        rows = self._client().query(sql, parameters=parameters).result_rows
        return cast(list[tuple[Any, ...]], rows)  # the driver's rows are tuples in a list

    def _insert_block(self, table: str, block: bytes, settings: dict[str, Any]) -> None:
        self._client().raw_insert(table, insert_block=block, fmt="JSONEachRow", settings=settings)

    async def _run(self, fn: Any, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            return await loop.run_in_executor(self._pool, fn, *args)
        except ClickHouseError as exc:
            raise map_error(exc) from exc
        finally:
            log.debug(
                "clickhouse %s took %.1f ms",
                getattr(fn, "__name__", "call"),
                (time.perf_counter() - started) * 1e3,
            )

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            for client in self._clients:
                client.close()
            self._clients.clear()


def with_settings(sql: str, settings: Mapping[str, Any]) -> str:
    """Append a SETTINGS clause built from our own (never user-supplied) names and numbers."""
    parts = []
    for name, value in settings.items():
        if not SETTING_NAME.match(name) or not isinstance(value, int | float):
            raise ValueError(f"unsupported setting {name}={value!r}")
        parts.append(f"{name} = {value:g}" if isinstance(value, float) else f"{name} = {value}")
    return f"{sql.rstrip().rstrip(';')}\nSETTINGS {', '.join(parts)}" if parts else sql


def map_error(exc: ClickHouseError) -> Exception:
    """Translate a driver error into a user-safe error; the full text stays in our logs."""
    text = str(exc)
    match = ERROR_CODE.search(text)
    code = match.group(1) if match else ""
    if code in CLIENT_CODES:
        ERRORS.labels("rejected").inc()
        return InvalidRequest(CLIENT_CODES[code])
    if code in TIMEOUT_CODES:
        ERRORS.labels("timeout").inc()
        return QueryTimeout("the query took too long and was cancelled; narrow the date range or retry")
    if isinstance(exc, OperationalError) or code in UNAVAILABLE_CODES:
        ERRORS.labels("unavailable").inc()
        log.warning("clickhouse unavailable: %s", text)
        return StorageUnavailable("the analytics store is unavailable; retry shortly")
    if isinstance(exc, DatabaseError):
        ERRORS.labels("rejected").inc()
        log.error("clickhouse rejected a query: %s", text)
        return QueryFailed("the analytics store could not answer this query")
    ERRORS.labels("failed").inc()
    log.error("clickhouse error: %s", text)
    return StorageUnavailable("the analytics store failed; retry shortly")
