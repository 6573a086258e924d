"""Trend and schema-discovery latency in embedded ClickHouse (chDB), with DuckDB answering the same two
trends over a copy of the deduplicated rows as the baseline (issue 15's figures). Rerun with:

    python -m bench.trends_latency --events 1000000 [--runs 5] [--path DIR]

The events are the query benchmark's (bench.query_latency.generate: skewed users, ~300-byte JSON
properties with `plan` and `amount`, 0.5% retried copies). The trends run through the service's own
runner (`run_trends`: building the SQL, FINAL, exact parsing), the discovery calls through its
functions on the catalogue the materialized views filled while the events were inserted:

* a 30-day daily trend of unique persons of page_view, broken down by plan (top 25 + other);
* a 30-day daily sum of amount of page_view where plan = pro;
* GET /events, /properties?event=page_view, /properties/plan/values (first call, then the median).

Each figure is the median of `--runs` runs after one warm-up run; DuckDB's answers are checked against
ours (totals per breakdown value, the sum per day).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from bench.query_latency import generate
from services.query.discovery import Listing, PropertyListing, list_events, list_properties, list_values
from services.query.trends import TrendsRequest, run_trends
from shared.clickhouse import ClickHouse
from shared.contracts.storage import EVENTS_TABLE

RANGE = {"start_date": "2023-01-15", "end_date": "2023-02-13"}
UNIQUE_BY_PLAN = {"series": [{"event": "page_view", "math": "unique_persons"}], "breakdown": "plan", **RANGE}
PRO_SUM = {
    "series": [
        {
            "event": "page_view",
            "math": "sum",
            "property": "amount",
            "filters": [{"property": "plan", "op": "eq", "value": "pro"}],
        }
    ],
    **RANGE,
}
TIMEOUT = 600.0
EXPORT = f"""
INSERT INTO FUNCTION file({{path:String}}, 'Parquet')
SELECT user_id, event, timestamp, properties FROM {EVENTS_TABLE} FINAL
SETTINGS engine_file_truncate_on_insert = 1, do_not_merge_across_partitions_select_final = 1"""
DUCK_UNIQUE = """
WITH e AS (SELECT user_id, CAST(timestamp AS DATE) AS day, json_extract_string(properties, '$.plan') AS plan
           FROM events WHERE event = 'page_view' AND timestamp >= TIMESTAMP '2023-01-15'
             AND timestamp < TIMESTAMP '2023-02-14'),
top AS (SELECT plan FROM e GROUP BY plan ORDER BY count(DISTINCT user_id) DESC, plan LIMIT 25)
SELECT CASE WHEN plan IN (SELECT plan FROM top) THEN plan ELSE 'Other' END AS value, day,
       count(DISTINCT user_id) FROM e GROUP BY ALL
UNION ALL
SELECT CASE WHEN plan IN (SELECT plan FROM top) THEN plan ELSE 'Other' END AS value, NULL,
       count(DISTINCT user_id) FROM e GROUP BY ALL"""
DUCK_SUM = """
SELECT CAST(timestamp AS DATE) AS day, sum(CAST(json_extract(properties, '$.amount') AS DECIMAL(38, 6)))
FROM events WHERE event = 'page_view' AND timestamp >= TIMESTAMP '2023-01-15'
  AND timestamp < TIMESTAMP '2023-02-14' AND json_extract_string(properties, '$.plan') = 'pro'
  AND json_type(properties, '$.amount') IN ('UBIGINT', 'BIGINT', 'DOUBLE')
GROUP BY day ORDER BY day"""


async def timed(runs: int, call: Callable[[], Awaitable[Any]]) -> tuple[float, float, float, Any]:
    """(first call ms, median wall ms and median CPU ms of this process over `runs` more, the last
    answer). chDB runs in-process, so CPU time is the query's work, steadier on a shared machine."""
    started = time.perf_counter()
    answer = await call()
    first = (time.perf_counter() - started) * 1000
    wall, cpu = [], []
    for _ in range(runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        answer = await call()
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
    return first, statistics.median(wall), statistics.median(cpu), answer


def duck_timed(runs: int, connection: Any, sql: str) -> tuple[float, list[Any]]:
    rows = connection.execute(sql).fetchall()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        rows = connection.execute(sql).fetchall()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), rows


def check(ours_unique: Any, ours_sum: Any, duck_unique: list[Any], duck_sum: list[Any]) -> None:
    totals = {r.breakdown_value: r.total for r in ours_unique.results}
    theirs = {value: count for value, day, count in duck_unique if day is None}
    assert totals == theirs, (totals, theirs)
    days = {str(day): Decimal(str(value)) for day, value in duck_sum}
    (result,) = ours_sum.results
    for label, value in zip(result.labels, result.data, strict=True):
        assert abs(Decimal(str(value)) - days.get(label, Decimal(0))) < Decimal("0.000001"), label


async def main(events: int, runs: int, path: Path | None) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-trends-")) if path is None else path
    clickhouse = ClickHouse(f"chdb://{workdir / 'chdb'}", "bench")
    try:
        await asyncio.to_thread(clickhouse.create_schema)
        made = await generate(clickhouse, events)
        print(f"generated {made['rows']:,} rows of {made['users']:,} users in {made['seconds']} s")
        calls: dict[str, Callable[[], Awaitable[Any]]] = {
            "trend: unique persons by plan, 30 days": lambda: run_trends(
                clickhouse, TrendsRequest(**UNIQUE_BY_PLAN).checked(366), TIMEOUT
            ),
            "trend: sum of amount where plan = pro, 30 days": lambda: run_trends(
                clickhouse, TrendsRequest(**PRO_SUM).checked(366), TIMEOUT
            ),
            "discovery: events": lambda: list_events(clickhouse, Listing(), TIMEOUT),
            "discovery: properties of page_view": lambda: list_properties(
                clickhouse, PropertyListing(event="page_view"), TIMEOUT
            ),
            "discovery: values of plan": lambda: list_values(clickhouse, "plan", PropertyListing(), TIMEOUT),
        }
        answers = {}
        for label, call in calls.items():
            first, wall, cpu, answers[label] = await timed(runs, call)
            print(
                f"{label}: first {first:.0f} ms, then {wall:.1f} ms wall, {cpu:.1f} ms CPU (medians, {runs})"
            )
        parquet = workdir / "events.parquet"
        await clickhouse.command(EXPORT, {"path": str(parquet)})
        duck = duckdb.connect()
        duck.execute(f"CREATE TABLE events AS SELECT * FROM read_parquet('{parquet}')")
        unique_ms, duck_unique = duck_timed(runs, duck, DUCK_UNIQUE)
        sum_ms, duck_sum = duck_timed(runs, duck, DUCK_SUM)
        print(f"duckdb: unique persons by plan {unique_ms:.1f} ms, sum where plan = pro {sum_ms:.1f} ms")
        labels = list(calls)
        check(answers[labels[0]], answers[labels[1]], duck_unique, duck_sum)
        print("answers match DuckDB's")
    finally:
        clickhouse.close()
        if path is None:
            shutil.rmtree(workdir, ignore_errors=True)


def cli() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--path", type=Path, default=None, help="keep the data here (default: a temp dir)")
    args = parser.parse_args()
    asyncio.run(main(args.events, args.runs, args.path))


if __name__ == "__main__":
    cli()
