"""ETL service: ClickHouse events -> daily metric snapshots (nightly, at start, on an admin's request),
read back as metric series and the dashboard overview (whose live count it reads from the live topic)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter

from services.etl import routes
from services.etl.deletions import finish_deletions
from services.etl.runner import Clock, EtlRunner, utc_now
from services.etl.scheduler import EtlScheduler
from services.etl.settings import EtlSettings
from shared.component import BaseComponent, Resources
from shared.errors import StorageUnavailable
from shared.live_topic import LiveTopicReader, ReaderOptions

log = logging.getLogger(__name__)


@dataclass
class EtlComponent(BaseComponent):
    """The runner (built at start, on the shared ClickHouse client), its scheduler, its routes, and a
    reader of the live topic's counts for the overview, so the count is there in any deployment shape."""

    settings: EtlSettings = field(default_factory=EtlSettings)
    clock: Clock = utc_now
    name: str = "etl"
    uses_clickhouse: bool = True
    runner: EtlRunner | None = None
    scheduler: EtlScheduler | None = None
    live_counts: LiveTopicReader | None = None
    _following: asyncio.Task[None] | None = None
    _deletions: asyncio.Task[None] | None = None

    def routers(self) -> list[APIRouter]:
        return [routes.build_router(self.started_runner, self.active_users_now, self.settings.max_run_days)]

    def started_runner(self) -> EtlRunner:
        """The runner, once start() has built it."""
        if self.runner is None:
            raise StorageUnavailable("the ETL service is not started yet; retry shortly")
        return self.runner

    def active_users_now(self) -> int | None:
        return self.live_counts.active_users() if self.live_counts is not None else None

    async def start(self, resources: Resources) -> None:
        assert resources.clickhouse is not None
        self.runner = EtlRunner(resources.clickhouse, self.settings, self.clock)
        if self.settings.schedule_enabled:
            self.scheduler = EtlScheduler(self.runner, self.settings)
            self.scheduler.start()
        self.live_counts = LiveTopicReader(
            resources.settings.kafka_bootstrap_servers,
            resources.topics.live,
            ReaderOptions(client_id="etl-overview"),
        )
        self._following = asyncio.create_task(self.follow_live_counts(resources), name="etl-live-counts")
        self._deletions = asyncio.create_task(self.finish_deletions_forever(), name="etl-deletions")

    async def finish_deletions_forever(self) -> None:
        """Recompute the snapshot days of person deletions the stream processors carried out."""
        assert self.runner is not None
        while True:
            await asyncio.sleep(self.settings.deletions_check_seconds)
            try:
                await finish_deletions(self.runner)
            except Exception:  # noqa: BLE001 - retried next round
                log.exception("finishing person deletions failed; retrying")

    async def follow_live_counts(self, resources: Resources) -> None:
        """Create the topics if needed (Kafka may come up after us), then read the counts forever."""
        assert self.live_counts is not None
        await resources.ensure_topics()
        await self.live_counts.run_forever()

    async def stop(self) -> None:
        if self.scheduler is not None:
            await self.scheduler.stop()
        for task in (self._following, self._deletions):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def health(self) -> dict[str, Any]:
        last = self.runner.last_run if self.runner else None
        detail: dict[str, Any] = {
            "last_run_at": last.computed_at.isoformat() if last else None,
            "last_run_days": [last.days[0].isoformat(), last.days[-1].isoformat()] if last else None,
        }
        if self.scheduler is not None:
            detail.update(self.scheduler.health())
        return detail


def component() -> EtlComponent:
    return EtlComponent()
