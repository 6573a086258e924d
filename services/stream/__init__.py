"""Stream processors (faust-streaming): Kafka -> ClickHouse loader, and Kafka -> live counts."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import faust

from services.stream.faust_app import build_faust_app
from services.stream.live_counts import register_live_counts
from services.stream.loader import ClickHouseLoader, register_events_agent
from services.stream.settings import StreamSettings
from shared.component import BaseComponent, Resources

log = logging.getLogger(__name__)


@dataclass
class StreamComponent(BaseComponent):
    settings: StreamSettings = field(default_factory=StreamSettings)
    name: str = "stream"
    uses_clickhouse: bool = True
    uses_producer: bool = True
    app: faust.App | None = None
    loader: ClickHouseLoader | None = None

    async def start(self, resources: Resources) -> None:
        assert resources.clickhouse is not None and resources.producer is not None
        await resources.ensure_topics()  # faust assigns only partitions of topics that exist
        common, topics = resources.settings, resources.topics
        self.app = build_faust_app(
            common.kafka_bootstrap_servers, topics.loader_group, self.settings, data_dir=common.data_dir
        )
        events = self.app.topic(topics.events, value_type=bytes, key_type=bytes)
        self.loader = ClickHouseLoader(
            resources.clickhouse, resources.producer, topics.dead_letter, self.settings
        )
        counter = None
        if self.settings.live_enabled:
            counter = register_live_counts(self.app, resources.producer, topics, self.settings)
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
