"""Stream processors (faust-streaming): Kafka -> ClickHouse loader, and Kafka -> live counts."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import faust
from fastapi import APIRouter

from services.stream.faust_app import build_faust_app
from services.stream.loader import ClickHouseLoader, register_events_agent
from services.stream.settings import StreamSettings

if TYPE_CHECKING:
    from services.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass
class StreamComponent:
    settings: StreamSettings = field(default_factory=StreamSettings)
    name: str = "stream"
    uses_clickhouse: bool = True
    uses_producer: bool = True
    app: faust.App | None = None
    loader: ClickHouseLoader | None = None

    def routers(self) -> list[APIRouter]:
        return []

    async def start(self, runtime: Runtime) -> None:
        assert runtime.clickhouse is not None and runtime.producer is not None
        await runtime.ensure_topics()  # faust assigns only partitions of topics that exist
        common = runtime.settings
        self.app = build_faust_app(
            common.kafka_bootstrap_servers, common.topic_prefix, self.settings, data_dir=common.data_dir
        )
        events = self.app.topic(runtime.events_topic, value_type=bytes, key_type=bytes)
        self.loader = ClickHouseLoader(
            runtime.clickhouse, runtime.producer, runtime.dead_letter_topic, self.settings
        )
        counter = None
        if self.settings.live_enabled:
            from services.stream.live_counts import register_live_counts

            counter = register_live_counts(self.app, runtime, self.settings)
        register_events_agent(self.app, events, self.loader, self.settings, counter)
        await self.app.start()
        log.info("stream processors started (group %s)", self.app.conf.id)

    async def stop(self) -> None:
        if self.app is not None:
            await self.app.stop()

    def health(self) -> dict[str, Any]:
        if self.loader is None:
            return {"ready": False}
        stats = self.loader.stats
        return {
            "ready": True,
            "loaded": stats.loaded,
            "dead_lettered": stats.dead_lettered,
            "insert_failures": stats.insert_failures,
            "last_error": stats.last_error,
        }


def component() -> StreamComponent:
    return StreamComponent()
