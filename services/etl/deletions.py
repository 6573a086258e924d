"""Person deletions, the ETL's part: once the stream processors deleted a person's rows, the snapshots
of the days their events were on are computed again, and the deletion is done."""

from __future__ import annotations

import logging
from datetime import date, timedelta

from services.etl.runner import EtlRunner
from shared.contracts.dates import DateRange
from shared.contracts.persons import DELETION_COLUMNS, DONE, EVENTS_DELETED, DeletionRecord
from shared.contracts.storage import DELETIONS_TABLE

log = logging.getLogger(__name__)


def runs_of(days: list[date], yesterday: date, max_days: int) -> list[DateRange]:
    """The ended days among `days` as ranges of consecutive days, each at most `max_days` long."""
    ranges: list[DateRange] = []
    for day in sorted(d for d in set(days) if d <= yesterday):
        last = ranges[-1] if ranges else None
        if last is not None and day == last.end + timedelta(days=1) and (day - last.start).days < max_days:
            ranges[-1] = DateRange(last.start, day)
        else:
            ranges.append(DateRange(day, day))
    return ranges


async def finish_deletions(runner: EtlRunner) -> int:
    """Recompute the days of every deletion whose rows are gone, then mark it done; how many."""
    rows = await runner.clickhouse.query(
        f"SELECT {DELETION_COLUMNS} FROM {DELETIONS_TABLE} FINAL WHERE status = {{status:String}}",
        {"status": EVENTS_DELETED},
    )
    for deletion_id, key, ids, requested_at, status, days in rows:
        record = DeletionRecord(deletion_id, key, list(ids), requested_at, status, list(days))
        for period in runs_of(record.days, runner.yesterday(), runner.settings.max_run_days):
            await runner.run(period)
        await runner.clickhouse.insert_json_rows(DELETIONS_TABLE, record.advanced(DONE).row())
        log.info("deletion of %s done: snapshots of %d days recomputed", key, len(record.days))
    return len(rows)
