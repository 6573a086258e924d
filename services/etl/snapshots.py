"""metrics_snapshots: a run written as one block, and the reads the endpoints and the catch-up need.

Why one block is enough for "readers never see a half-written day" is in shared/contracts/schema.sql.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import orjson

from shared.clickhouse import ClickHouse
from shared.contracts.dates import DateRange
from shared.contracts.storage import EVENTS_TABLE, SNAPSHOTS_TABLE


@dataclass(frozen=True)
class Snapshot:
    """One metric's value for one day."""

    date: date
    metric: str
    value: float


SERIES_SQL = f"""
SELECT date, value FROM {SNAPSHOTS_TABLE} FINAL
WHERE metric = {{metric:String}} AND date BETWEEN {{start:Date}} AND {{end:Date}}
ORDER BY date
"""
DAYS_SQL = f"""
SELECT date, metric, value FROM {SNAPSHOTS_TABLE} FINAL
WHERE date IN {{days:Array(Date)}} AND metric IN {{metrics:Array(String)}}
"""
LATEST_DAY_SQL = f"SELECT maxOrNull(date) FROM {SNAPSHOTS_TABLE} WHERE metric IN {{metrics:Array(String)}}"
# Days holding every metric asked for (duplicates from older runs do not change the distinct count).
COMPLETE_DAYS_SQL = f"""
SELECT date FROM {SNAPSHOTS_TABLE}
WHERE date BETWEEN {{start:Date}} AND {{end:Date}} AND metric IN {{metrics:Array(String)}}
GROUP BY date
HAVING uniqExact(metric) = length({{metrics:Array(String)}})
"""
# A run must reach the table as one block (so one part): a synchronous insert, parsed in one piece.
# A run is at most tens of thousands of rows, far below max_insert_block_size (about a million).
ONE_BLOCK = {"async_insert": 0, "input_format_parallel_parsing": 0}
# Answered from the partitions' min-max index (no rows read). Without FINAL: a copy an event_id left
# behind at most moves the backfill one day earlier.
FIRST_EVENT_SQL = f"SELECT count(), toDate(min(timestamp)) FROM {EVENTS_TABLE}"


def snapshot_block(rows: Sequence[Snapshot], computed_at: datetime, run_id: uuid.UUID) -> bytes:
    """The JSONEachRow block of a run: every row with the same computed_at and run_id."""
    stamp = computed_at.strftime("%Y-%m-%d %H:%M:%S.%f")
    return b"".join(
        orjson.dumps(
            {
                "date": row.date.isoformat(),
                "metric": row.metric,
                "value": row.value,
                "computed_at": stamp,
                "run_id": str(run_id),
            }
        )
        + b"\n"
        for row in rows
    )


async def write_run(
    clickhouse: ClickHouse, rows: Sequence[Snapshot], computed_at: datetime, run_id: uuid.UUID
) -> None:
    """Store a run's rows in a single insert (one part: all visible at once, or none)."""
    await clickhouse.insert_json_rows(SNAPSHOTS_TABLE, snapshot_block(rows, computed_at, run_id), ONE_BLOCK)


async def read_series(clickhouse: ClickHouse, metric: str, period: DateRange) -> list[tuple[date, float]]:
    """The metric's latest values for the days of `period` that have a snapshot, in date order."""
    rows = await clickhouse.query(SERIES_SQL, {"metric": metric, "start": period.start, "end": period.end})
    return [(day, float(value)) for day, value in rows]


async def read_days(
    clickhouse: ClickHouse, days: Sequence[date], metrics: Sequence[str]
) -> dict[tuple[date, str], float]:
    """The latest value of each (day, metric) that has a snapshot."""
    rows = await clickhouse.query(DAYS_SQL, {"days": list(days), "metrics": list(metrics)})
    return {(day, metric): float(value) for day, metric, value in rows}


async def latest_day(clickhouse: ClickHouse, metrics: Sequence[str]) -> date | None:
    """The last day with a snapshot of any of `metrics`, or None."""
    rows = await clickhouse.query(LATEST_DAY_SQL, {"metrics": list(metrics)})
    return rows[0][0] if rows else None


async def complete_days(clickhouse: ClickHouse, period: DateRange, metrics: Sequence[str]) -> set[date]:
    """The days of `period` that already have a snapshot of every one of `metrics`."""
    rows = await clickhouse.query(
        COMPLETE_DAYS_SQL, {"start": period.start, "end": period.end, "metrics": list(metrics)}
    )
    return {day for (day,) in rows}


async def first_event_day(clickhouse: ClickHouse) -> date | None:
    """The day of the earliest stored event, or None when there are none."""
    [(count, first)] = await clickhouse.query(FIRST_EVENT_SQL)
    return first if count else None
