"""Funnel and cohort latency on synthetic events in embedded ClickHouse (chDB). Rerun with:

    python -m bench.query_latency --events 1000000 [--runs 7] [--path DIR]

The events are generated inside ClickHouse (INSERT ... SELECT FROM numbers()): every user signs up once
at a random moment of a 60-day span, 55% complete onboarding within 3 days, 40% of those subscribe
within 20 days (so some fall outside the 14-day window); the rest are page views, clicks, searches
and feature uses from a skewed user population (user k gets a share ~ 1/sqrt(k)), denser soon after
signup. Properties are ~300 bytes of JSON; 0.5% of events arrive twice (same event_id), as retries
would, so FINAL has work to do. Queries run through the service's own runners and `ClickHouse.query`,
so the figures include building the SQL, FINAL and parsing. Each figure is the median of `--runs`
runs after one warm-up run.
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

from services.query.cohort import CohortRequest, run_cohort
from services.query.cohort import build_scan as build_cohort_scan
from services.query.cohort import parse as parse_cohort
from services.query.funnel import FunnelRequest, run_funnel
from shared.clickhouse import ClickHouse
from shared.contracts.storage import EVENTS_TABLE, FINAL_SETTINGS

SPAN_MS = 60 * 86_400_000
EVENTS_PER_USER = 25
FUNNEL = {
    "steps": ["signup", "onboarding_completed", "subscription_created"],
    "start_date": "2023-01-15",
    "end_date": "2023-02-13",
}
COHORT = {"period_type": "weekly", "periods": 8, "end_date": "2023-02-26"}
TIMEOUT = 600.0

PROPERTIES = """concat(
    '{"plan":"', ['free', 'starter', 'pro', 'business', 'enterprise'][h % 5 + 1],
    '","path":"/app/', ['dashboard', 'settings', 'reports', 'billing', 'projects'][intDiv(h, 7) % 5 + 1],
    '/', toString(intDiv(h, 41) % 10000),
    '","referrer":"https://www.example.com/search?q=', hex(cityHash64(h)),
    '","browser":"', ['Chrome', 'Firefox', 'Safari', 'Edge'][intDiv(h, 13) % 4 + 1],
    '","os":"', ['Windows', 'macOS', 'Linux', 'iOS', 'Android'][intDiv(h, 17) % 5 + 1],
    '","screen":"1920x1080","locale":"en-US","session_id":"', toString(generateUUIDv4(2)),
    '","utm_source":"newsletter","utm_campaign":"spring_sale_2023","amount":',
    toString(intDiv(h, 3) % 100000 / 100), '}')"""
SIGNUP_AT = "toDateTime64('2023-01-01', 3, 'UTC') + toIntervalMillisecond(cityHash64({u}, 'signup') % {span})"
FUNNEL_ROWS = f"""
INSERT INTO {EVENTS_TABLE} (event_id, event, user_id, timestamp, received_at, properties)
SELECT generateUUIDv4(1), step.1, concat('user-', toString(u)),
       signed_up + toIntervalMillisecond(step.2), signed_up + toIntervalMillisecond(step.2 + 150),
       {PROPERTIES}
FROM (
    SELECT number AS u, cityHash64(number, 'props') AS h,
           {SIGNUP_AT.format(u="number", span=SPAN_MS)} AS signed_up,
           cityHash64(number, 'onboard') % 100 < 55 AS onboarded,
           cityHash64(number, 'subscribe') % 100 < 40 AS subscribed,
           cityHash64(number, 'd1') % (3 * 86400000) AS d1,
           d1 + cityHash64(number, 'd2') % (20 * 86400000) AS d2
    FROM numbers({{users:UInt64}}))
ARRAY JOIN arrayConcat([('signup', toUInt64(0))], if(onboarded, [('onboarding_completed', d1)], []),
                       if(onboarded AND subscribed, [('subscription_created', d2)], [])) AS step
"""
ACTIVITY_ROWS = f"""
INSERT INTO {EVENTS_TABLE} (event_id, event, user_id, timestamp, received_at, properties)
SELECT generateUUIDv4(1), ['page_view', 'page_view', 'page_view', 'button_click', 'search',
       'feature_used'][h % 6 + 1], concat('user-', toString(u)), at, at + toIntervalMillisecond(h % 2000),
       {PROPERTIES}
FROM (
    SELECT number, cityHash64(number) AS h,
           toUInt64({{users:UInt64}} * pow((cityHash64(number, 'user') % 1000003) / 1000003, 2)) AS u,
           {SIGNUP_AT.format(u="u", span=SPAN_MS)}
               + toIntervalMillisecond(toUInt64({SPAN_MS} * pow((h % 1000003) / 1000003, 2))) AS at
    FROM numbers({{count:UInt64}}))
"""
RETRIES = f"""
INSERT INTO {EVENTS_TABLE}
SELECT event_id, event, user_id, timestamp, received_at + toIntervalSecond(1), properties, source
FROM {EVENTS_TABLE} WHERE cityHash64(event_id) % 200 = 0
"""


async def generate(clickhouse: ClickHouse, events: int, users: int | None = None) -> dict[str, Any]:
    """Fill a fresh events table with about `events` synthetic events of `users` users (default one per
    EVENTS_PER_USER events); returns what was made."""
    started = time.perf_counter()
    users = users or max(100, events // EVENTS_PER_USER)
    await clickhouse.command(FUNNEL_ROWS, {"users": users})
    (funnel_rows,) = (await clickhouse.query(f"SELECT count() FROM {EVENTS_TABLE}"))[0]
    await clickhouse.command(ACTIVITY_ROWS, {"users": users, "count": max(0, events - funnel_rows)})
    await clickhouse.command(RETRIES)
    rows, size, avg_properties = (
        await clickhouse.query(
            f"SELECT count(), sum(length(properties)), avg(length(properties)) FROM {EVENTS_TABLE}"
        )
    )[0]
    return {
        "rows": rows,
        "users": users,
        "properties_bytes_avg": round(avg_properties),
        "raw_properties_mb": round(size / 1e6),
        "seconds": round(time.perf_counter() - started, 1),
    }


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
