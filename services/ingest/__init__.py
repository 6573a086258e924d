"""Ingest service: HTTP (native, Segment- and PostHog-compatible) -> Kafka, answered only after Kafka
acknowledged."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter
from fastapi.routing import APIRoute
from starlette.middleware import Middleware

from services.ingest import identify, posthog_flags, posthog_routes, routes, segment, segment_browser
from services.ingest.cors import PublicIngestCors
from services.ingest.direct_route import DirectRoute, Endpoint
from services.ingest.settings import IngestSettings
from shared.component import BaseComponent, Resources


@dataclass
class IngestComponent(BaseComponent):
    settings: IngestSettings = field(default_factory=IngestSettings)
    name: str = "ingest"
    uses_producer: bool = True
    post_events: Endpoint = field(init=False)
    _resources: Resources | None = None
    _topics: asyncio.Task[None] | None = None
    _routers: list[APIRouter] | None = None

    def __post_init__(self) -> None:
        self.post_events = routes.events_endpoint(self.settings)

    @property
    def producer_ack_timeout(self) -> float:
        return self.settings.ack_timeout_seconds

    def routers(self) -> list[APIRouter]:
        """The native API, then the APIs of the trackers people already ship: Segment's, analytics.js',
        PostHog's (built once: the CORS middleware reads their paths)."""
        if self._routers is None:
            self._routers = [
                routes.build_router(self.settings, self.post_events),
                identify.build_router(),
                segment.build_router(),
                segment_browser.build_router(),
                posthog_routes.build_router(self.settings),
                posthog_flags.build_router(self.settings),
            ]
        return self._routers

    def middleware(self) -> list[Middleware]:
        """The single-event hot path skips the framework's router (services/ingest/direct_route.py);
        every ingest path answers CORS for any origin (cors.py). Listed innermost first: the CORS comes
        last, so it is outside the hot path too."""
        paths = [path for router in self.routers() for path in route_paths(router)]
        return [Middleware(DirectRoute, endpoint=self.post_events), Middleware(PublicIngestCors, paths=paths)]

    async def start(self, resources: Resources) -> None:
        self._resources = resources
        # Topics are created in the background: ingest answers 503 until Kafka is there.
        self._topics = asyncio.create_task(resources.ensure_topics())

    async def stop(self) -> None:
        if self._topics is not None and not self._topics.done():
            self._topics.cancel()

    def health(self) -> dict[str, Any]:
        producer = self._resources.producer if self._resources else None
        return {"ready": bool(producer and producer.connected)}


def route_paths(router: APIRouter) -> list[str]:
    return [route.path for route in router.routes if isinstance(route, APIRoute)]


def component() -> IngestComponent:
    return IngestComponent()
