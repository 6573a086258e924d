"""An ETL run: compute every registered metric for a range of days and store them as one snapshot block.

Runs are idempotent: running a day again computes the same values from the same events and replaces
the day's rows (see shared/contracts/schema.sql), so the scheduler, the admin trigger and several ETL
replicas may all run the same days at once without corrupting anything; no lock or leader is needed.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from services.etl import snapshots
from services.etl.metrics import METRICS, Metric
from services.etl.settings import EtlSettings
from services.etl.snapshots import Snapshot
from shared.clickhouse import ClickHouse
from shared.contracts.dates import DateRange
from shared.contracts.storage import FINAL_SETTINGS

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The real clock (tests pass their own)."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class RunResult:
    """What a run stored."""

    run_id: uuid.UUID
    computed_at: datetime
    days: list[date]
    metrics: list[str]
    rows: int


class EtlRunner:
    """Computes and stores daily snapshots; knows which days are missing."""

    def __init__(
        self,
        clickhouse: ClickHouse,
        settings: EtlSettings,
        clock: Clock = utc_now,
        metrics: Sequence[Metric] = METRICS,
    ) -> None:
        self.clickhouse = clickhouse
        self.settings = settings
        self.clock = clock
        self.metrics = tuple(metrics)
        self.last_run: RunResult | None = None

    @property
    def metric_names(self) -> list[str]:
        return [metric.name for metric in self.metrics]

    def yesterday(self) -> date:
        """The last UTC day that has ended, by this runner's clock."""
        return self.clock().astimezone(UTC).date() - timedelta(days=1)

    async def compute(self, metric: Metric, period: DateRange) -> dict[date, float]:
        """One metric for every day of `period` (0 for the days its SQL leaves out)."""
        rows = await self.clickhouse.query(
            metric.statement,
            metric.query_parameters(period),
            settings=FINAL_SETTINGS,
            timeout=self.settings.query_timeout_seconds,
        )
        found = {day: float(value) for day, value in rows}
        return {day: finite(found.get(day, 0.0)) for day in period.days()}

    async def run(self, period: DateRange) -> RunResult:
        """Compute every metric for the days of `period` and store them in one block."""
        computed_at = self.clock().astimezone(UTC)  # before reading: the run that read last wins
        run_id = uuid.uuid4()
        rows: list[Snapshot] = []
        for metric in self.metrics:  # one at a time: the ETL must not crowd out dashboard queries
            values = await self.compute(metric, period)
            rows.extend(Snapshot(day, metric.name, value) for day, value in values.items())
        await snapshots.write_run(self.clickhouse, rows, computed_at, run_id)
        result = RunResult(run_id, computed_at, period.days(), self.metric_names, len(rows))
        log.info("etl run %s stored %d rows for %s..%s", run_id, len(rows), period.start, period.end)
        self.last_run = result
        return result

    async def missing_days(self) -> list[date]:
        """Days in the backfill window (from the first event on, up to yesterday) without every metric."""
        end = self.yesterday()
        if self.settings.backfill_days == 0:
            return []
        start = end - timedelta(days=self.settings.backfill_days - 1)
        first = await snapshots.first_event_day(self.clickhouse)
        if first is None or first > end:
            return []
        window = DateRange(max(start, first), end)
        complete = await snapshots.complete_days(self.clickhouse, window, self.metric_names)
        return [day for day in window.days() if day not in complete]

    async def catch_up(self, *, rerun_yesterday: bool = False) -> RunResult | None:
        """Run the missing days (and, when asked, yesterday and the `recompute_days` before it, whose
        persons late links may have merged since) as one range; None when nothing is due."""
        days = await self.missing_days()
        if rerun_yesterday:
            yesterday = self.yesterday()
            days += [yesterday - timedelta(days=n) for n in range(self.settings.recompute_days + 1)]
        if not days:
            return None
        return await self.run(DateRange(min(days), max(days)))


def finite(value: float) -> float:
    """Guard the Float64 column against NaN/inf from a metric's division."""
    return value if math.isfinite(value) else 0.0
