"""Stream processors (faust-streaming): Kafka -> ClickHouse loader (with the persons the events make),
and Kafka -> live counts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

import faust

from services.stream import person_properties
from services.stream.deletions import carry_out_deletions
from services.stream.faust_app import build_faust_app
from services.stream.live_counts import register_live_counts
from services.stream.loader import ClickHouseLoader, register_events_agent
from services.stream.persons import PersonsRecorder, number_unnumbered_events
from services.stream.resolver import Resolver
from services.stream.settings import StreamSettings
from shared.clickhouse import ClickHouse
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
    resolver: Resolver | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self, resources: Resources) -> None:
        assert resources.clickhouse is not None and resources.producer is not None
        clickhouse = resources.clickhouse
        await resources.ensure_topics()  # faust assigns only partitions of topics that exist
        await number_unnumbered_events(clickhouse)
        self.resolver = Resolver(clickhouse)
        await self.resolver.rebuild()
        persons = PersonsRecorder(clickhouse, self.resolver, self.settings.known_ids_capacity)
        await persons.refresh_properties(set())  # persons whose members changed while we were away
        await person_properties.rebuild_index(clickhouse)
        common, topics = resources.settings, resources.topics
        self.app = build_faust_app(
            common.kafka_bootstrap_servers, topics.loader_group, self.settings, data_dir=common.data_dir
        )
        events = self.app.topic(topics.events, value_type=bytes, key_type=bytes)
        self.loader = ClickHouseLoader(
            clickhouse, resources.producer, topics.dead_letter, self.settings, persons
        )
        counter = None
        if self.settings.live_enabled:
            counter = register_live_counts(
                self.app, resources.producer, topics, self.settings, self.resolver.key_of
            )
        register_events_agent(self.app, events, self.loader, self.settings, counter)
        await self.app.start()
        self.tasks = [asyncio.create_task(self.keep_persons_current(clickhouse, persons), name="persons")]
        log.info("stream processors started (group %s)", self.app.conf.id)

    async def keep_persons_current(self, clickhouse: ClickHouse, persons: PersonsRecorder) -> None:
        """Links and numbers other replicas stored, and person deletions, every `persons_sync_seconds`."""
        assert self.resolver is not None and self.loader is not None
        while True:
            await asyncio.sleep(self.settings.persons_sync_seconds)
            try:
                await self.resolver.sync(all_unnumbered=True)
                await persons.refresh_properties(set())
                await carry_out_deletions(clickhouse, persons, self.loader.between_batches)
            except Exception:  # noqa: BLE001 - retried next round
                log.exception("persons round failed; retrying")

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.app is not None:
            await self.app.stop()

    def health(self) -> dict[str, Any]:
        if self.loader is None or self.resolver is None:
            return {"ready": False}
        stats = self.loader.stats
        return {
            "ready": True,
            "loaded": stats.loaded,
            "dead_lettered": stats.dead_lettered,
            "deleted_skipped": stats.deleted_skipped,
            "insert_failures": stats.insert_failures,
            "last_error": stats.last_error,
            "persons": self.resolver.progress(),
        }


def component() -> StreamComponent:
    return StreamComponent()
