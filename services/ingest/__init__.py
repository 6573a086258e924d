"""Ingest service: HTTP (native and Segment-compatible) -> Kafka, 202 only after Kafka acknowledged."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter
from starlette.middleware import Middleware

from services.ingest import identify, routes, segment
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

    def __post_init__(self) -> None:
        self.post_events = routes.events_endpoint(self.settings)

    @property
    def producer_ack_timeout(self) -> float:
        return self.settings.ack_timeout_seconds

    def routers(self) -> list[APIRouter]:
        return [
            routes.build_router(self.settings, self.post_events),
            identify.build_router(),
            segment.build_router(),
        ]

    def middleware(self) -> list[Middleware]:
        """The single-event hot path skips the framework's router (services/ingest/direct_route.py)."""
        return [Middleware(DirectRoute, endpoint=self.post_events)]

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


def component() -> IngestComponent:
    return IngestComponent()
