"""Prometheus metrics: the one registry every service's metrics live in, `GET /metrics`, and the two
ways a figure gets there.

* Updated where it happens, for rare or per-request work (a request's outcome, a batch insert, an
  ETL run): `counter`/`histogram`/`gauge` below, each defined once beside the code that updates it,
  with labels from small fixed sets, never an event's or a user's value.
* Read when scraped, for what a component already counts in plain integers on its hot path (the live
  gateway's messages per client) or can only know then (consumer lag, the resolver's graph):
  `Readings`, a collector a component registers at start and removes at stop.

`GET /metrics` needs no access key (a Prometheus server holds none); when `ANALYTICS_METRICS_TOKEN`
is set, it answers only `Authorization: Bearer <token>`. It is left out of the OpenAPI document: it
is not JSON and not part of the API the access keys open (tests/system/test_metrics.py holds both).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable, Sequence

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import Metric
from pydantic import SecretStr

from shared.errors import Unauthorized

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)  # process_cpu_seconds_total, process_resident_memory_bytes, ...
PlatformCollector(registry=REGISTRY)
PREFIX = "analytics_"
# Latencies from a millisecond (a Kafka acknowledgement on one machine) to a minute (a slow query).
SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def counter(name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
    return Counter(PREFIX + name, documentation, labels, registry=REGISTRY)


def histogram(
    name: str, documentation: str, labels: Sequence[str] = (), buckets: Sequence[float] = SECONDS
) -> Histogram:
    return Histogram(PREFIX + name, documentation, labels, registry=REGISTRY, buckets=buckets)


def gauge(name: str, documentation: str, labels: Sequence[str] = ()) -> Gauge:
    return Gauge(PREFIX + name, documentation, labels, registry=REGISTRY)


class Readings:
    """A collector whose figures are read when Prometheus scrapes (`read` returns metric families);
    registered by `start`, removed by `stop`, so a stopped component reports nothing."""

    def __init__(self, read: Callable[[], Iterable[Metric]]) -> None:
        self.read = read
        self.registered = False

    def collect(self) -> Iterable[Metric]:
        return self.read()

    def start(self) -> Readings:
        if not self.registered:
            REGISTRY.register(self)
            self.registered = True
        return self

    def stop(self) -> None:
        if self.registered:
            REGISTRY.unregister(self)
            self.registered = False


def outcome_of(status: int) -> str:
    """A request's outcome, from its status: the label values every request counter uses."""
    if status < 400:
        return "ok"
    if status in (401, 403):
        return "unauthorized"
    if status == 429:
        return "rate_limited"
    if status == 503:
        return "unavailable"
    if status == 504:
        return "timeout"
    return "invalid" if status < 500 else "error"


def metrics_router(token: SecretStr) -> APIRouter:
    """`GET /metrics` in Prometheus' text format; with a token set, only for its bearer."""
    router = APIRouter()
    expected = f"Bearer {token.get_secret_value()}".encode() if token.get_secret_value() else None

    @router.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        if expected is not None:
            presented = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(presented, expected):
                raise Unauthorized("GET /metrics needs the metrics token (Authorization: Bearer <token>)")
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return router
