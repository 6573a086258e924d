"""`make bench-query`, dashboard section: the overview's data, in the data directory the services will open.

    python -m bench.dashboard_data EVENTS USERS   (ANALYTICS_DATA_DIR says where; prints JSON)

bench/query_data.py's generator fills a staging table; its rows go into the events table moved by whole
days, so the last event falls on yesterday (UTC): the overview shows the latest day that has ended and
the top events of the last 7 days, which must be days with data. Then the persons' tables and a resolver
round (bench/query_data.py: record_persons) and OPTIMIZE FINAL, so no background merge of the load
shares the CPUs with what is measured. Its own process: chDB lets one process open a data directory,
and the services open this one next.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from bench import query_data
from shared.clickhouse import ClickHouse
from shared.contracts.storage import EVENTS_TABLE
from shared.settings import CommonSettings

STAGING = "bench_dashboard_staging"
MOVED = query_data.COLUMNS.replace(
    "timestamp, received_at",
    "timestamp + toIntervalDay({days:Int32}), received_at + toIntervalDay({days:Int32})",
)
MOVE = f"INSERT INTO {EVENTS_TABLE} ({query_data.COLUMNS}) SELECT {MOVED} FROM {STAGING}"
DAYS = f"SELECT toDate(min(timestamp)), toDate(max(timestamp)), count() FROM {EVENTS_TABLE}"


async def prepare(clickhouse: ClickHouse, events: int, users: int, yesterday: date) -> dict[str, Any]:
    """Generate about `events` events of `users` users ending on `yesterday`, with their persons;
    answers what was made, the days it covers and the seconds each step took."""
    started = time.perf_counter()
    await asyncio.to_thread(clickhouse.create_schema)
    await clickhouse.command(f"DROP TABLE IF EXISTS {STAGING}")
    await clickhouse.command(f"CREATE TABLE {STAGING} AS {EVENTS_TABLE} ENGINE = MergeTree ORDER BY tuple()")
    made = await query_data.generate(clickhouse, events, users, STAGING)
    ((last,),) = await clickhouse.query(f"SELECT toDate(max(timestamp)) FROM {STAGING}")
    await clickhouse.command(MOVE, {"days": (yesterday - last).days})
    await clickhouse.command(f"DROP TABLE {STAGING}")
    generated = time.perf_counter()
    persons = await query_data.record_persons(clickhouse)
    recorded = time.perf_counter()
    await clickhouse.command(f"OPTIMIZE TABLE {EVENTS_TABLE} FINAL")
    ((first, last, rows),) = await clickhouse.query(DAYS)
    return {
        **made,
        "events": rows,
        "first_day": first.isoformat(),
        "last_day": last.isoformat(),
        "overrides": persons["overrides"],
        "generate_s": generated - started,
        "persons_s": recorded - generated,
        "optimize_s": time.perf_counter() - recorded,
    }


def main(argv: list[str]) -> int:
    events, users = int(argv[0]), int(argv[1])
    settings = CommonSettings()
    clickhouse = ClickHouse(settings.resolved_clickhouse_url, settings.resolved_database, workers=1)
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    try:
        made = asyncio.run(prepare(clickhouse, events, users, yesterday))
    finally:
        clickhouse.close()
    print(json.dumps(made))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
