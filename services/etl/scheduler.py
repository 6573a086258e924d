"""When the ETL runs by itself (APScheduler): nightly at 00:00 UTC, and once at start to catch up.

Every ETL replica runs the same jobs; that is safe because runs are idempotent (see runner.py), so no
job store, lock or leader election is needed. A replica that was down at midnight catches up at start.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from apscheduler.job import Job
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from services.etl.runner import EtlRunner
from services.etl.settings import EtlSettings

log = logging.getLogger(__name__)

NIGHTLY_JOB = "etl-nightly"
CATCH_UP_JOB = "etl-catch-up"


def nightly_trigger() -> CronTrigger:
    """00:00 UTC every day."""
    return CronTrigger(hour=0, minute=0, second=0, timezone=UTC)


class EtlScheduler:
    """The nightly job (the day that just ended, plus any missing days) and the catch-up at start."""

    def __init__(self, runner: EtlRunner, settings: EtlSettings) -> None:
        self.runner = runner
        self.last_error: str | None = None
        self.scheduler = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": settings.misfire_grace_seconds,
            },
        )

    def start(self) -> None:
        """Add both jobs and start (needs a running event loop); the catch-up fires at once."""
        self.scheduler.add_job(self.nightly, nightly_trigger(), id=NIGHTLY_JOB, name="daily metric snapshots")
        self.scheduler.add_job(self.catch_up, id=CATCH_UP_JOB, name="snapshots missing at start")
        self.scheduler.start()

    async def stop(self) -> None:
        """Stop scheduling; a run in progress is cancelled (a later run redoes its days)."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
            await asyncio.sleep(0)  # the shutdown is queued on the loop (call_soon_threadsafe): let it run

    @property
    def nightly_job(self) -> Job | None:
        return self.scheduler.get_job(NIGHTLY_JOB)

    def next_run(self) -> datetime | None:
        job = self.nightly_job
        return job.next_run_time if job is not None else None

    async def nightly(self) -> None:
        """The day that just ended (by the runner's clock), and any day missing before it."""
        await self._guarded(rerun_yesterday=True)

    async def catch_up(self) -> None:
        """Only the days missing in the backfill window."""
        await self._guarded(rerun_yesterday=False)

    async def _guarded(self, *, rerun_yesterday: bool) -> None:
        try:
            await self.runner.catch_up(rerun_yesterday=rerun_yesterday)
        except Exception as exc:  # noqa: BLE001 - logged and reported in health; the next run retries
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("scheduled etl run failed")
        else:
            self.last_error = None

    def health(self) -> dict[str, Any]:
        next_run = self.next_run()
        return {
            "scheduler_running": self.scheduler.running,
            "next_run_at": next_run.isoformat() if next_run else None,
            "last_error": self.last_error,
        }
