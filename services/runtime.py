"""Assemble the chosen services into one FastAPI app and one event loop (Loki's `-target` pattern).

With embedded ClickHouse (chDB) only one process may open the data directory, so every component
that touches ClickHouse must be in the process that holds it; a lock file makes a second process
fail at once with a clear message instead of corrupting data.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import importlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from shared.auth import KeyRing
from shared.clickhouse import ClickHouse
from shared.component import Component, Resources
from shared.http import install_error_handlers
from shared.kafka import DurableProducer
from shared.logs import RequestIds
from shared.metrics import metrics_router
from shared.ratelimit import RateLimiter
from shared.settings import CommonSettings

log = logging.getLogger(__name__)

TARGETS = ("query", "etl", "stream", "live", "ingest")  # start order; stop is the reverse
DEFAULT_ACK_TIMEOUT = 5.0


def parse_targets(raw: str) -> tuple[str, ...]:
    names = {t.strip() for t in raw.split(",") if t.strip()}
    if not names or "all" in names:
        return TARGETS
    unknown = names - set(TARGETS)
    if unknown:
        raise ValueError(f"unknown target(s) {sorted(unknown)}; choose from all,{','.join(TARGETS)}")
    return tuple(t for t in TARGETS if t in names)


def load_component(name: str) -> Component:
    """The component of `services.<name>`: each service package offers one through `component()`."""
    module = importlib.import_module(f"services.{name}")
    component: Component = module.component()
    return component


class Runtime:
    """Starts the clients the chosen components need, then the components; stops them in reverse."""

    def __init__(self, settings: CommonSettings, targets: tuple[str, ...]) -> None:
        keyring = KeyRing(settings.ingest_keys, settings.read_keys, settings.admin_keys)
        if not keyring:
            raise SystemExit("no access keys configured: set ANALYTICS_INGEST_KEYS/READ_KEYS/ADMIN_KEYS")
        self.settings = settings
        self.targets = targets
        self.resources = Resources(
            settings,
            keyring,
            RateLimiter({"ingest": settings.rate_limit_ingest, "query": settings.rate_limit_query}),
        )
        self.components: dict[str, Component] = {name: load_component(name) for name in targets}
        self._lock_file: IO[str] | None = None

    def lock_embedded_clickhouse(self) -> None:
        """Hold an exclusive lock on the chDB directory for this process's lifetime."""
        path = Path(self.settings.resolved_clickhouse_url.removeprefix("chdb://").split("?", 1)[0])
        path.mkdir(parents=True, exist_ok=True)
        handle = (path.parent / f".{path.name}.lock").open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise SystemExit(
                f"embedded ClickHouse at {path} is in use by pid {owner}: run every ClickHouse target "
                "(stream, query, etl) in that one process, or set CLICKHOUSE_URL to a ClickHouse server"
            ) from None
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock_file = handle

    async def start(self) -> None:
        resources = self.resources
        if any(c.uses_clickhouse for c in self.components.values()):
            if self.settings.embedded_clickhouse:
                if self.settings.clickhouse_cluster:
                    raise SystemExit("CLICKHOUSE_CLUSTER needs ClickHouse servers; embedded chDB is one node")
                self.lock_embedded_clickhouse()
            resources.clickhouse = ClickHouse(
                self.settings.resolved_clickhouse_url,
                self.settings.resolved_database,
                cluster=self.settings.clickhouse_cluster or None,
                materialized_keys=self.settings.materialized_properties,
            )
            await asyncio.to_thread(resources.clickhouse.create_schema)
        if any(c.uses_producer for c in self.components.values()):
            deadlines = [c.producer_ack_timeout for c in self.components.values() if c.uses_producer]
            timeout = min((d for d in deadlines if d is not None), default=DEFAULT_ACK_TIMEOUT)
            resources.producer = DurableProducer(self.settings.kafka_bootstrap_servers, ack_timeout=timeout)
            await resources.producer.start()
        for name, component in self.components.items():
            log.info("starting %s", name)
            await component.start(resources)

    async def stop(self) -> None:
        for name, component in reversed(self.components.items()):
            log.info("stopping %s", name)
            try:
                await component.stop()
            except Exception:  # noqa: BLE001 - keep stopping the others
                log.exception("error stopping %s", name)
        if self.resources.producer is not None:
            await self.resources.producer.stop()
        if self.resources.clickhouse is not None:
            self.resources.clickhouse.close()
        if self._lock_file is not None:
            self._lock_file.close()

    def health(self) -> dict[str, Any]:
        return {name: component.health() for name, component in self.components.items()}

    def server_options(self) -> dict[str, Any]:
        """The uvicorn options the components ask for (e.g. the live gateway's WebSocket protocol)."""
        options: dict[str, Any] = {}
        for component in self.components.values():
            options.update(component.server_options())
        return options


# Objects a young-generation collection may wait for (CPython's default: 700). Ingest holds a few
# hundred objects per batch request in flight (parsed JSON, accepted events) for a Kafka round trip; at
# 700 they survived collection after collection into the old generations, whose full sweeps were a large
# share of the ingest process under batch load (docs/performance.md). At 20,000 they are freed before.
GC_YOUNG_THRESHOLD = 20_000


def tune_garbage_collector() -> None:
    """After start-up: keep the loaded modules and clients out of every future sweep, collect less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def build_app(runtime: Runtime) -> FastAPI:
    """The FastAPI app for the runtime's components, with a lifespan that starts and stops them."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            tune_garbage_collector()
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        # No OpenTelemetry here: checking for it on every request cost CPU on ingest's hot path.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        title="Analytics backend",
        version="0.1.0",
        description=f"Services in this process: {', '.join(runtime.targets)}",
        lifespan=lifespan,
    )
    app.state.resources = runtime.resources
    install_error_handlers(app)
    if runtime.settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=runtime.settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Content-Encoding"],
        )
    # Added after (so outside) the configured CORS: ingest answers CORS for any origin on its own paths.
    for component in runtime.components.values():
        for middleware in component.middleware():
            app.add_middleware(middleware.cls, *middleware.args, **middleware.kwargs)
    if runtime.settings.log_format == "json":
        app.add_middleware(RequestIds)  # outermost: every line a request logs carries its id
    add_health_routes(app, runtime)
    app.include_router(metrics_router(runtime.settings.metrics_token))
    for component in runtime.components.values():
        for router in component.routers():
            app.include_router(router)
    return app


def add_health_routes(app: FastAPI, runtime: Runtime) -> None:
    @app.get("/healthz", tags=["health"], summary="Liveness: the process is up (no key needed)")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "targets": list(runtime.targets)}

    @app.get(
        "/readyz",
        tags=["health"],
        summary="Readiness: Kafka and ClickHouse answer (no key needed)",
        responses={503: {"description": "A dependency is not ready"}},
    )
    async def readyz() -> JSONResponse:
        checks: dict[str, Any] = {}
        if runtime.resources.clickhouse is not None:
            checks["clickhouse"] = await runtime.resources.clickhouse.ping()
        if runtime.resources.producer is not None:
            checks["kafka"] = runtime.resources.producer.connected
        for name, detail in runtime.health().items():
            if "ready" in detail:
                checks[name] = bool(detail["ready"])
        ready = all(checks.values())
        body: dict[str, Any] = {"ready": ready, "checks": checks}
        report = runtime.resources.topic_report
        if report is not None:
            # Under-replicated topics are used, not refused (see shared/kafka_admin.py), but said here.
            body["topics"] = {
                "replication": report.replication,
                "min_insync_replicas": report.min_insync_replicas,
                "warnings": report.warnings,
            }
        return JSONResponse(body, status_code=200 if ready else 503)
