"""Funnel and cohort latency on synthetic events in embedded ClickHouse (chDB). Rerun with:

    python -m bench.query_latency --events 1000000 [--runs 7] [--path DIR]

The events are generated inside ClickHouse (INSERT ... SELECT FROM numbers(), bench/query_data.py has
their shape, persons included) straight into the events table; 0.5% of events arrive twice (same
event_id), as retries would, so FINAL has work to do. Queries run through the service's own runners
and `ClickHouse.query`, so the figures include building the SQL, FINAL and parsing. Each figure is the
median of `--runs` runs after one warm-up run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any

from bench import query_data
from services.query.cohort import CohortRequest, run_cohort
from services.query.cohort import build_scan as build_cohort_scan
from services.query.cohort import parse as parse_cohort
from services.query.funnel import FunnelRequest, run_funnel
from shared.clickhouse import ClickHouse
from shared.contracts.storage import EVENTS_TABLE, FINAL_SETTINGS

FUNNEL = {
    "steps": ["signup", "onboarding_completed", "subscription_created"],
    "start_date": "2023-01-15",
    "end_date": "2023-02-13",
}
COHORT = {"period_type": "weekly", "periods": 8, "end_date": "2023-02-26"}
TIMEOUT = 600.0


async def generate(clickhouse: ClickHouse, events: int, users: int | None = None) -> dict[str, Any]:
    """Fill a fresh events table with about `events` synthetic events (bench/query_data.py) and their
    persons; returns what was made."""
    made = await query_data.generate(clickhouse, events, users)
    made.update(await query_data.record_persons(clickhouse))
    return made


def retention_aggregate(periods: int) -> str:
    """retention(1, returned in period 0, ...) without its first element; it takes at most 32
    conditions, so more than 31 periods need several calls."""
    calls = []
    for low in range(0, periods, 31):
        conditions = ", ".join(f"returned AND period = {i}" for i in range(low, min(periods, low + 31)))
        calls.append(f"arraySlice(retention(1, {conditions}), 2)")
    return f"arrayConcat({', '.join(calls)})"


# The service's scan keeps a user's return periods as a bit mask; the same query on retention():
BIT_MASK_AGGREGATE = "groupBitOrIf(bitShiftLeft(toUInt64(1), greatest(period, 0)), returned) AS active"
BIT_MASK_TEST = "bitTest(active, cohort + k)"


def with_retention(sql: str, periods: int) -> str:
    """The cohort scan's SQL with retention() in place of the bit mask."""
    assert BIT_MASK_AGGREGATE in sql and BIT_MASK_TEST in sql, "the cohort scan's SQL changed"
    sql = sql.replace(BIT_MASK_AGGREGATE, f"{retention_aggregate(periods)} AS active")
    return sql.replace(BIT_MASK_TEST, "active[cohort + k + 1]")


async def timed(
    runs: int, calls: dict[str, Callable[[], Awaitable[Any]]]
) -> dict[str, tuple[float, float, Any]]:
    """Per call: median wall time and median CPU time of this process (ms; chDB runs in-process, so
    CPU time is the query's work and barely moves when other programs load the machine) over `runs`
    rounds after a warm-up, and the last result. The calls take turns within each round."""
    results = {label: await call() for label, call in calls.items()}
    wall: dict[str, list[float]] = {label: [] for label in calls}
    cpu: dict[str, list[float]] = {label: [] for label in calls}
    for _ in range(runs):
        for label, call in calls.items():
            started, started_cpu = time.perf_counter(), time.process_time()
            results[label] = await call()
            wall[label].append((time.perf_counter() - started) * 1000)
            cpu[label].append((time.process_time() - started_cpu) * 1000)
    return {
        label: (statistics.median(wall[label]), statistics.median(cpu[label]), results[label])
        for label in calls
    }


async def measure(clickhouse: ClickHouse, runs: int) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) ms of each query shape; checks the two cohort formulations agree."""
    funnels = {
        "funnel 3 steps, 30 days, ordered": {},
        "funnel 3 steps, 30 days, strict": {"mode": "strict"},
        "funnel 3 steps, 30 days, unordered": {"mode": "unordered"},
        "funnel 3 steps, 30 days, ordered, breakdown by plan": {"breakdown": "plan"},
    }
    calls: dict[str, Callable[[], Awaitable[Any]]] = {
        label: partial(run_funnel, clickhouse, FunnelRequest(**FUNNEL, **extra), TIMEOUT)
        for label, extra in funnels.items()
    }
    cohorts = {
        "cohort weekly x 8, any event": CohortRequest(**COHORT),
        "cohort weekly x 8, signup -> page_view": CohortRequest(
            **COHORT, start_event="signup", return_event="page_view"
        ),
        "cohort weekly x 52, any event": CohortRequest(**{**COHORT, "periods": 52}),
    }
    for label, request in cohorts.items():
        calls[label] = partial(run_cohort, clickhouse, request, TIMEOUT)
        sql, params = build_cohort_scan(request)
        sql = with_retention(sql, request.periods)
        retention = partial(clickhouse.query, sql, params, settings=FINAL_SETTINGS, timeout=TIMEOUT)
        calls[f"{label}, retention() instead of the bit mask"] = retention
    results = await timed(runs, calls)
    for label, request in cohorts.items():
        retention_rows = results[f"{label}, retention() instead of the bit mask"][2]
        assert parse_cohort(retention_rows, request) == results[label][2], "cohort formulations disagree"
    ordered = results["funnel 3 steps, 30 days, ordered"][2]
    print(
        "ordered funnel:", ", ".join(f"{s.step} {s.count:,} ({s.conversion_rate}%)" for s in ordered.funnel)
    )
    return {label: (wall, cpu) for label, (wall, cpu, _) in results.items()}


async def main(events: int, runs: int, path: Path | None) -> None:
    workdir = path or Path(tempfile.mkdtemp(prefix="query-latency-"))
    clickhouse = ClickHouse(f"chdb://{workdir}", "bench_query", workers=1)
    try:
        await asyncio.to_thread(clickhouse.create_schema)
        await clickhouse.command(f"TRUNCATE TABLE {EVENTS_TABLE}")
        made = await generate(clickhouse, events)
        print(
            f"generated {made['rows']:,} rows for {made['users']:,} users in {made['seconds']} s "
            f"(properties {made['properties_bytes_avg']} B on average, {made['raw_properties_mb']} MB raw)"
        )
        figures = await measure(clickhouse, runs)
        load = f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        print(f"median of {runs} runs, {date.today()}, {load}")
        print("  wall ms    CPU ms")
        for label, (wall, cpu) in figures.items():
            print(f"  {wall:7.0f}  {cpu:8.0f}  {label}")
    finally:
        clickhouse.close()
        if path is None:
            shutil.rmtree(workdir, ignore_errors=True)


def cli() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument(
        "--path", type=Path, default=None, help="chDB directory to keep (default: a temp dir)"
    )
    args = parser.parse_args()
    asyncio.run(main(args.events, args.runs, args.path))


if __name__ == "__main__":
    cli()
