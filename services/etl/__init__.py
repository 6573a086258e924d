"""ETL service: ClickHouse events -> daily metric snapshots (nightly, at start, on an admin's request),
read back as metric series and the dashboard overview."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter

from services.component import BaseComponent
from services.etl import routes
from services.etl.runner import Clock, EtlRunner, utc_now
from services.etl.scheduler import EtlScheduler
from services.etl.settings import EtlSettings
from shared.errors import StorageUnavailable

if TYPE_CHECKING:
    from services.runtime import Runtime


@dataclass
class EtlComponent(BaseComponent):
    """The runner (built at start, on the shared ClickHouse client), its scheduler and its routes."""

    settings: EtlSettings = field(default_factory=EtlSettings)
    clock: Clock = utc_now
    name: str = "etl"
    uses_clickhouse: bool = True
    runner: EtlRunner | None = None
    scheduler: EtlScheduler | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def routers(self) -> list[APIRouter]:
        return [routes.build_router(self.started_runner, lambda: self.extras, self.settings.max_run_days)]

    def started_runner(self) -> EtlRunner:
        """The runner, once start() has built it."""
        if self.runner is None:
            raise StorageUnavailable("the ETL service is not started yet; retry shortly")
        return self.runner

    async def start(self, runtime: Runtime) -> None:
        assert runtime.clickhouse is not None
        self.extras = runtime.extras  # the live service adds its count here after we start
        self.runner = EtlRunner(runtime.clickhouse, self.settings, self.clock)
        if self.settings.schedule_enabled:
            self.scheduler = EtlScheduler(self.runner, self.settings)
            self.scheduler.start()

    async def stop(self) -> None:
        if self.scheduler is not None:
            await self.scheduler.stop()

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
