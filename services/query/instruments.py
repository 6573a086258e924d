"""The query service's metrics (shared/metrics.py): every answer's latency by kind and outcome. The
ClickHouse errors behind them are counted by the one execute path (shared/clickhouse.py)."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.metrics import histogram, outcome_of

QUERY_SECONDS = histogram(
    "query_seconds",
    "Query answers, from the request to the answer's first byte, by kind (stats, trends, funnel, "
    "funnel_persons, cohort, events, properties, property_values, person, person_events, person_search, "
    "person_deletion, deletion_status, insights, dashboards) and outcome (ok, invalid, unauthorized, "
    "rate_limited, timeout: a 504, unavailable, error)",
    ["kind", "outcome"],
)
ANALYTICS = "/api/v1/analytics/"
PERSONS = "/api/v1/persons"
ANALYTICS_KINDS = {"stats", "trends", "funnel", "cohort", "events", "properties"}
KIND_NAMES = {"funnel/persons": "funnel_persons"}  # a label may not hold "/"
PROPERTY_VALUES = ("properties/", "/values")  # /api/v1/analytics/properties/{name}/values
SAVED_KINDS = {"/api/v1/insights": "insights", "/api/v1/dashboards": "dashboards"}  # and /{id}


def kind_of(method: str, path: str) -> str | None:
    """The query kind of a request (None: not a query request)."""
    if path.startswith(ANALYTICS):
        kind = path.removeprefix(ANALYTICS)
        if kind.startswith(PROPERTY_VALUES[0]) and kind.endswith(PROPERTY_VALUES[1]):
            return "property_values"
        return KIND_NAMES.get(kind) or (kind if kind in ANALYTICS_KINDS else None)
    saved = SAVED_KINDS.get(path) or SAVED_KINDS.get(path.rsplit("/", 1)[0])
    if saved:
        return saved
    if path == PERSONS:
        return "person_search"
    if not path.startswith(PERSONS + "/"):
        return None
    if path.startswith(PERSONS + "/deletions/"):
        return "deletion_status"
    if method == "DELETE":
        return "person_deletion"
    return "person_events" if path.endswith("/events") else "person"


class TimeQueries:
    """ASGI middleware: observe each query request's latency and outcome."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = kind_of(scope["method"], scope["path"]) if scope["type"] == "http" else None
        if kind is None:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                outcome = outcome_of(message["status"])
                QUERY_SECONDS.labels(kind, outcome).observe(time.perf_counter() - started)
            await send(message)

        await self.app(scope, receive, timed)
