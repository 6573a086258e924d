"""Ingest service: HTTP (native and Segment-compatible) -> Kafka, 202 only after Kafka acknowledged."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter

from services.component import BaseComponent
from services.ingest import routes, segment
from services.ingest.fastpath import IngestFastPath
from services.ingest.settings import IngestSettings

if TYPE_CHECKING:
    from services.runtime import Runtime


@dataclass
class IngestComponent(BaseComponent):
    settings: IngestSettings = field(default_factory=IngestSettings)
    name: str = "ingest"
    uses_producer: bool = True
    _runtime: Runtime | None = None
    _topics: asyncio.Task[None] | None = None

    _events_router: APIRouter | None = None

    def routers(self) -> list[APIRouter]:
        return [self.events_router(), segment.build_router()]

    def events_router(self) -> APIRouter:
        if self._events_router is None:
            self._events_router = routes.build_router(self.settings)
        return self._events_router

    def middleware(self) -> list[tuple[type, dict[str, Any]]]:
        """The single-event hot path skips the framework's router (services/ingest/fastpath.py)."""
        return [(IngestFastPath, {"endpoint": self.events_router().post_events})]

    @property
    def producer_ack_timeout(self) -> float:
        return self.settings.ack_timeout_seconds

    async def start(self, runtime: Runtime) -> None:
        self._runtime = runtime
        # Topics are created in the background: ingest answers 503 until Kafka is there.
        self._topics = asyncio.create_task(runtime.ensure_topics())

    async def stop(self) -> None:
        if self._topics is not None and not self._topics.done():
            self._topics.cancel()

    def health(self) -> dict[str, Any]:
        producer = self._runtime.producer if self._runtime else None
        return {"ready": bool(producer and producer.connected)}


def component() -> IngestComponent:
    return IngestComponent()
