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
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from services.component import Component
from shared.auth import KeyRing
from shared.clickhouse import ClickHouse
from shared.constants import dead_letter_topic, events_topic, live_topic
from shared.http import install_error_handlers
from shared.kafka import DurableProducer, TopicSpec, ensure_topics
from shared.ratelimit import RateLimiter
from shared.settings import CommonSettings

log = logging.getLogger(__name__)

TARGETS = ("query", "etl", "stream", "live", "ingest")  # start order; stop is the reverse
LIVE_RETENTION_MS = str(60 * 60 * 1000)


def parse_targets(raw: str) -> tuple[str, ...]:
    names = {t.strip() for t in raw.split(",") if t.strip()}
    if not names or "all" in names:
        return TARGETS
    unknown = names - set(TARGETS)
    if unknown:
        raise ValueError(f"unknown target(s) {sorted(unknown)}; choose from all,{','.join(TARGETS)}")
    return tuple(t for t in TARGETS if t in names)


def load_component(name: str) -> Component:
    module = importlib.import_module(f"services.{name}")
    return module.component()


@dataclass
class Runtime:
    """What the running components share: settings, keys and the clients built at start-up."""

    settings: CommonSettings
    targets: tuple[str, ...]
    keyring: KeyRing
    components: dict[str, Component] = field(default_factory=dict)
    clickhouse: ClickHouse | None = None
    producer: DurableProducer | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    _lock_file: IO[str] | None = None

    @property
    def events_topic(self) -> str:
        return events_topic(self.settings.topic_prefix)

    @property
    def dead_letter_topic(self) -> str:
        return dead_letter_topic(self.settings.topic_prefix)

    @property
    def live_topic(self) -> str:
        return live_topic(self.settings.topic_prefix)

    def topic_specs(self) -> dict[str, TopicSpec]:
        return {
            self.events_topic: TopicSpec(self.settings.topic_partitions),
            self.dead_letter_topic: TopicSpec(1),
            self.live_topic: TopicSpec(1, {"retention.ms": LIVE_RETENTION_MS}),
        }

    async def ensure_topics(self) -> None:
        """Create the topics, retrying until Kafka answers (it may start after us)."""
        delay = 0.5
        while True:
            try:
                await ensure_topics(self.settings.kafka_bootstrap_servers, self.topic_specs())
                return
            except Exception as exc:  # noqa: BLE001 - any failure here means "not yet"
                log.warning("kafka not ready for topic creation (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

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
        needs_clickhouse = any(c.uses_clickhouse for c in self.components.values())
        if needs_clickhouse:
            if self.settings.embedded_clickhouse:
                self.lock_embedded_clickhouse()
            self.clickhouse = ClickHouse(
                self.settings.resolved_clickhouse_url, self.settings.resolved_database
            )
            await asyncio.to_thread(self.clickhouse.create_schema)
        producers = [c for c in self.components.values() if c.uses_producer]
        if producers:
            timeout = min(float(getattr(c, "producer_ack_timeout", 5.0)) for c in producers)
            self.producer = DurableProducer(self.settings.kafka_bootstrap_servers, ack_timeout=timeout)
            await self.producer.start()
        for name, component in self.components.items():
            log.info("starting %s", name)
            await component.start(self)

    async def stop(self) -> None:
        for name, component in reversed(self.components.items()):
            log.info("stopping %s", name)
            try:
                await component.stop()
            except Exception:  # noqa: BLE001 - keep stopping the others
                log.exception("error stopping %s", name)
        if self.producer is not None:
            await self.producer.stop()
        if self.clickhouse is not None:
            self.clickhouse.close()
        if self._lock_file is not None:
            self._lock_file.close()

    def health(self) -> dict[str, Any]:
        return {name: component.health() for name, component in self.components.items()}


# Objects a young-generation collection may wait for (CPython's default: 700). Ingest holds ~300 objects
# per batch request in flight (parsed JSON, accepted events) for a Kafka round trip; at 700 they survived
# collection after collection into the old generations, whose full sweeps cost ~19% of the ingest
# process under batch load (py-spy --native: gc_collect_main). At 20,000 they are freed before then.
GC_YOUNG_THRESHOLD = 20_000


def tune_garbage_collector() -> None:
    """After start-up: keep the loaded modules and clients out of every future sweep, collect less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def build_app(
    settings: CommonSettings, targets: tuple[str, ...], extras: dict[str, Any] | None = None
) -> FastAPI:
    """The FastAPI app for the chosen targets, with a lifespan that starts and stops them."""
    keyring = KeyRing(settings.ingest_keys, settings.read_keys, settings.admin_keys)
    if not keyring:
        raise SystemExit("no access keys configured: set ANALYTICS_INGEST_KEYS/READ_KEYS/ADMIN_KEYS")
    runtime = Runtime(settings, targets, keyring, extras=dict(extras or {}))
    runtime.components = {name: load_component(name) for name in targets}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            tune_garbage_collector()
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        # No OpenTelemetry here: checking for it on every request cost ~5% of ingest's CPU.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        title="Analytics backend",
        version="0.1.0",
        description=f"Services in this process: {', '.join(targets)}",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.keyring = keyring
    app.state.rate_limiter = RateLimiter(
        {"ingest": settings.rate_limit_ingest, "query": settings.rate_limit_query}
    )
    install_error_handlers(app)
    for component in runtime.components.values():
        for middleware, options in getattr(component, "middleware", list)():
            app.add_middleware(middleware, **options)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Content-Encoding"],
        )
    add_health_routes(app, runtime)
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
        if runtime.clickhouse is not None:
            checks["clickhouse"] = await runtime.clickhouse.ping()
        if runtime.producer is not None:
            checks["kafka"] = runtime.producer.connected
        for name, detail in runtime.health().items():
            if "ready" in detail:
                checks[name] = bool(detail["ready"])
        ready = all(checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)
