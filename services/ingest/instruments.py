"""Ingest's metrics (shared/metrics.py): requests by API and outcome, events by outcome. Updated on
the hot path, so only counters, and each label combination is bound once."""

from __future__ import annotations

import functools
from collections.abc import Mapping

from prometheus_client import Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.metrics import counter, outcome_of

REQUESTS = counter(
    "ingest_requests_total",
    "Ingest requests by API (events, identify, segment, posthog, posthog_config) and outcome (ok, "
    "invalid, unauthorized, rate_limited, unavailable: a 503 after Kafka missed the deadline, error)",
    ["api", "outcome"],
)
EVENTS = counter(
    "ingest_events_total",
    "Events by outcome: accepted (acknowledged by Kafka), rejected (invalid, dead-lettered), "
    "unacknowledged (their request answered 503)",
    ["outcome"],
)
ACCEPTED, REJECTED, UNACKNOWLEDGED = (EVENTS.labels(o) for o in ("accepted", "rejected", "unacknowledged"))


@functools.cache
def requests_of(api: str, status: int) -> Counter:
    return REQUESTS.labels(api, outcome_of(status))


class CountRequests:
    """ASGI middleware counting ingest requests by API and outcome; `apis` maps each ingest path (a
    `{parameter}` part matches any rest) to its API. POST /api/v1/events is counted by the direct route
    it takes (services/ingest/direct_route.py), outside this."""

    def __init__(self, app: ASGIApp, apis: Mapping[str, str]) -> None:
        self.app = app
        self.exact = {path: api for path, api in apis.items() if "{" not in path}
        self.prefixes = sorted(
            ((path.split("{", 1)[0], api) for path, api in apis.items() if "{" in path), reverse=True
        )

    def api_of(self, path: str) -> str | None:
        """The ingest API a path belongs to (None: not an ingest path)."""
        api = self.exact.get(path)
        if api is None:
            api = next((api for prefix, api in self.prefixes if path.startswith(prefix)), None)
        return api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        api = self.api_of(scope["path"]) if scope["type"] == "http" else None
        if api is None:
            await self.app(scope, receive, send)
            return

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                requests_of(api, message["status"]).inc()
            await send(message)

        await self.app(scope, receive, counted)
