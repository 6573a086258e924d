"""`make bench`, query section: our funnel and cohort against DuckDB and PostgreSQL 15 on the same data.

    python -m bench --only query [--scale 1.0] [--runs 3]

Data: 10M events of 1M users at scale 1.0 (proportional otherwise), generated inside embedded ClickHouse
by bench/query_latency.py's generator (INSERT ... SELECT FROM numbers(): every user signs up, 55%
onboard within 3 days, 40% of those subscribe within 20 days; the rest is activity from a skewed
population, the busiest users with thousands of events; ~300-byte JSON properties; 0.5% of events
stored twice as retries would be), plus 0.1% stored again with a later timestamp, as a client retry
without a timestamp would be (the latest copy wins). Ours is timed once on the parts as loaded, then
the table is settled (OPTIMIZE ... FINAL, the state background merges converge to) and the rows
`analytics_events FINAL` returns are exported (Parquet, CSV) and loaded into DuckDB (in memory) and a
private PostgreSQL cluster (COPY, then indexes) at the same time. The cohort summary is rebuilt, as its
refreshable view does every 10 minutes, and its schedule paused so no rebuild lands inside a timing.

Ours runs through the service's runners and `ClickHouse.query` (building the SQL, FINAL, parsing).
Each baseline's first answer is compared with ours field by field before any timing. Before the first
timing the exported files are deleted and PostgreSQL's checkpoint and the kernel's write-back are
flushed; then the three take turns, `runs` rounds but at least 5, and each figure is the median. Ratios
are per round (same machine load).
Last, 1% of the users get new events and our cohort is timed again (those users are recomputed from
the events) and checked against a scan of every event.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench import funnel_options
from bench import query_baselines as baselines
from bench.postgres_cluster import PostgresCluster
from bench.query_latency import COHORT, FUNNEL, generate
from bench.report import Figure
from services.query import cohort, cohort_sql, funnel
from shared.clickhouse import ClickHouse
from shared.contracts.storage import EVENTS_TABLE, FINAL_SETTINGS

EVENTS, USERS = 10_000_000, 1_000_000
TIMEOUT = 600.0
# Rounds of the three engines in turns: a round costs ~8 s (PostgreSQL's share), and single queries of
# ~200 ms are the figures most exposed to the shared machine's noise.
QUERY_ROUNDS = 5
SUMMARY_VIEW = "user_active_days_rebuild"
Call = Callable[[], Any]
MOVED_COPIES = f"""
INSERT INTO {EVENTS_TABLE}
SELECT event_id, event, user_id, timestamp + toIntervalMillisecond(1000 + cityHash64(event_id) % 600000),
       received_at + toIntervalSecond(30), properties, source
FROM {EVENTS_TABLE} WHERE cityHash64(event_id, 'moved') % 1000 = 0"""
# New activity of 1% of the users, as arrives between two rebuilds of the cohort summary.
NEW_ACTIVITY = f"""
INSERT INTO {EVENTS_TABLE} (event_id, event, user_id, timestamp, received_at, properties)
SELECT generateUUIDv4(), 'page_view', user_id, timestamp + toIntervalDay(3), received_at + toIntervalDay(3),
       properties
FROM {EVENTS_TABLE} WHERE event = 'signup' AND cityHash64(user_id) % 100 = 0"""
EXPORT = f"""
INSERT INTO FUNCTION file({{path:String}}, {{format:String}})
SELECT event_id, event, user_id, timestamp, properties FROM {EVENTS_TABLE} FINAL
SETTINGS engine_file_truncate_on_insert = 1, do_not_merge_across_partitions_select_final = 1"""


def run(scale: float, runs: int, workdir: Path) -> list[Figure]:
    """Generate, load, check and time; the figures for bench/results."""
    return asyncio.run(compare(scale, max(1, runs), workdir))


async def compare(scale: float, runs: int, workdir: Path) -> list[Figure]:
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    clickhouse = ClickHouse(f"chdb://{workdir / 'chdb'}", "bench_query", workers=1)
    postgres = PostgresCluster(workdir / "postgres")
    try:
        figures = await generate_and_export(clickhouse, scale, workdir)
        loaded, duck, pg = await load_everywhere(clickhouse, postgres, workdir)
        figures += loaded
        quiet_down(workdir, pg)
        rounds = max(runs, QUERY_ROUNDS)
        figures += await measure(clickhouse, baselines.calls(duck, pg, *requests()), postgres, rounds)
        figures += await measure_options(clickhouse, duck, rounds)
        figures.append(await after_new_activity(clickhouse, rounds))
        return figures
    finally:
        clickhouse.close()
        postgres.stop()
        remove_exports(workdir)
        shutil.rmtree(workdir / "postgres", ignore_errors=True)


def remove_exports(workdir: Path) -> None:
    for name in ("events.parquet", "events.csv"):
        (workdir / name).unlink(missing_ok=True)


def quiet_down(workdir: Path, pg: Any) -> None:
    """Before any timing: drop the exported files (several GB of page cache, partly not yet written
    back), have PostgreSQL write its checkpoint, and flush what the kernel still holds, so no engine's
    timings share the disks and CPUs with that write-back."""
    remove_exports(workdir)
    pg.execute("CHECKPOINT")
    os.sync()


def requests() -> tuple[funnel.FunnelRequest, cohort.CohortRequest]:
    return funnel.FunnelRequest(**FUNNEL), cohort.CohortRequest(**COHORT)


async def generate_and_export(clickhouse: ClickHouse, scale: float, workdir: Path) -> list[Figure]:
    """Generate into ClickHouse, time ours once on the fresh parts, settle, export what FINAL returns."""
    started = time.perf_counter()
    await asyncio.to_thread(clickhouse.create_schema)
    made = await generate(clickhouse, max(10_000, int(EVENTS * scale)), max(400, int(USERS * scale)))
    await clickhouse.command(MOVED_COPIES)
    generated = time.perf_counter() - started
    fresh = [f"{name} {(await timed_async(call))[0]:.0f} ms" for name, call in our_calls(clickhouse).items()]
    (stored,) = (await clickhouse.query(f"SELECT count() FROM {EVENTS_TABLE}"))[0]
    settled = await seconds_of_async(settle(clickhouse))
    (distinct,) = (await clickhouse.query(f"SELECT count() FROM {EVENTS_TABLE}"))[0]
    started = time.perf_counter()
    for path, fmt in ((workdir / "events.parquet", "Parquet"), (workdir / "events.csv", "CSV")):
        await clickhouse.command(EXPORT, {"path": str(path), "format": fmt})
    exported = time.perf_counter() - started
    shape = (
        f"{distinct:,} events ({stored:,} stored rows with the retried copies) of {made['users']:,} users, "
        f"properties {made['properties_bytes_avg']} B on average"
    )
    return [
        Figure("query data: generate in ClickHouse", "s", [generated], note=shape),
        Figure(
            "query data: settle ClickHouse (OPTIMIZE FINAL)",
            "s",
            [settled],
            note="before it, on the parts as loaded and before the cohort summary was built (one run "
            f"each): {', '.join(fresh)}",
        ),
        Figure("query data: export Parquet + CSV (FINAL)", "s", [exported]),
    ]


async def load_everywhere(
    clickhouse: ClickHouse, postgres: PostgresCluster, workdir: Path
) -> tuple[list[Figure], Any, Any]:
    """PostgreSQL (COPY, indexes) and DuckDB load at the same time; then the cohort summary is rebuilt,
    as its refreshable view does every 10 minutes."""
    pg = postgres.start().connect()
    pg_load = asyncio.create_task(seconds_of(baselines.load_postgres, pg, workdir / "events.csv"))
    duck_seconds, duck = await seconds_of(baselines.load_duckdb, workdir / "events.parquet")
    pg_seconds, _ = await pg_load
    summary_seconds = await rebuild_summary(clickhouse)
    figures = [
        Figure("query data: load DuckDB (from Parquet)", "s", [duck_seconds], note="beside PostgreSQL's"),
        Figure("query data: load PostgreSQL (COPY, 2 indexes, VACUUM)", "s", [pg_seconds]),
        Figure("query data: rebuild the cohort summary", "s", [summary_seconds]),
    ]
    return figures, duck, pg


async def seconds_of(fn: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = await asyncio.to_thread(fn, *args)
    return time.perf_counter() - started, result


async def seconds_of_async(work: Awaitable[Any]) -> float:
    started = time.perf_counter()
    await work
    return time.perf_counter() - started


async def settle(clickhouse: ClickHouse) -> None:
    """Merge every MergeTree table of the database down to one part per partition."""
    tables = await clickhouse.query(
        "SELECT name FROM system.tables WHERE database = {db:String} AND engine LIKE '%MergeTree'",
        {"db": clickhouse.database},
    )
    for (table,) in tables:
        await clickhouse.command(f"OPTIMIZE TABLE {table} FINAL")


async def rebuild_summary(clickhouse: ClickHouse) -> float:
    """Refresh the cohort summary once the last insert is older than the changed-users margin, then
    pause its schedule; the seconds the refresh took."""
    (newest,) = (
        await clickhouse.query(f"SELECT dateDiff('second', max(inserted_at), now()) FROM {EVENTS_TABLE}")
    )[0]
    await asyncio.sleep(max(0, cohort_sql.CHANGED_MARGIN_SECONDS + 1 - newest))
    view = f"{clickhouse.database}.{SUMMARY_VIEW}"
    started = time.perf_counter()
    await clickhouse.command(f"SYSTEM REFRESH VIEW {view}")
    await clickhouse.command(f"SYSTEM WAIT VIEW {view}")
    seconds = time.perf_counter() - started
    await clickhouse.command(f"SYSTEM STOP VIEW {view}")
    return seconds


async def after_new_activity(clickhouse: ClickHouse, runs: int) -> Figure:
    """Ours again once 1% of the users have new events the summary has not seen (checked against the
    scan of every event)."""
    await clickhouse.command(NEW_ACTIVITY)
    changed_users = f"SELECT uniqExact(user_id) FROM ({cohort_sql.CHANGED_USERS})"
    (changed,) = (await clickhouse.query(changed_users, {"margin": cohort_sql.CHANGED_MARGIN_SECONDS}))[0]
    _, request = requests()
    call = our_calls(clickhouse)["cohort"]
    samples = [await timed_async(call) for _ in range(runs)]
    sql, params = cohort.build_scan(request)
    scanned = cohort.parse(
        await clickhouse.query(sql, params, settings=FINAL_SETTINGS, timeout=TIMEOUT), request
    )
    check(samples[-1][2], scanned, "the cohort with new activity")
    return Figure(
        f"{LABELS['cohort']}: ours, {changed:,} users changed since the summary",
        "ms",
        [ms for ms, _, _ in samples],
        note="their days are recomputed from the events; same answer as the scan of every event",
    )


def our_calls(clickhouse: ClickHouse) -> dict[str, Callable[[], Any]]:
    funnel_request, cohort_request = requests()
    return {
        "funnel": lambda: funnel.run_funnel(clickhouse, funnel_request, TIMEOUT),
        "cohort": lambda: cohort.run_cohort(clickhouse, cohort_request, TIMEOUT),
    }


TARGETS = {"ours": 300.0, "DuckDB": 3.0, "PostgreSQL": 20.0}
LABELS = {"funnel": "funnel 3 steps, 30 days, ordered", "cohort": "cohort weekly x 8"}


async def measure(
    clickhouse: ClickHouse, others: dict[str, dict[str, Call]], postgres: PostgresCluster, runs: int
) -> list[Figure]:
    """Check every baseline against ours, then `runs` rounds in turns; figures per question."""
    ours = our_calls(clickhouse)
    figures: list[Figure] = []
    for question, label in LABELS.items():
        expected = await ours[question]()
        for engine, call in others[question].items():
            check(call(), expected, f"{engine}'s {question}")
        wall: dict[str, list[float]] = {name: [] for name in ("ours", *others[question])}
        cpu: dict[str, list[float]] = {name: [] for name in wall}
        for _ in range(runs):
            ms, cpu_ms, answer = await timed_async(ours[question])
            check(answer, expected, f"our {question}")
            wall["ours"].append(ms)
            cpu["ours"].append(cpu_ms)
            for engine, call in others[question].items():
                server_cpu = postgres.cpu_seconds if engine == "PostgreSQL" else None
                ms, cpu_ms, answer = timed(call, server_cpu)
                check(answer, expected, f"{engine}'s {question}")
                wall[engine].append(ms)
                cpu[engine].append(cpu_ms)
        figures += question_figures(label, wall, cpu)
    return figures


async def measure_options(clickhouse: ClickHouse, duck: Any, runs: int) -> list[Figure]:
    """Issue 16's figures (bench/funnel_options.py): each option's funnel, ours and DuckDB's, checked
    alike, and ours over our plain funnel in the same round (target <= 2)."""
    plain, _ = requests()
    optioned = funnel_options.option_requests(FUNNEL)
    theirs = funnel_options.duckdb_calls(duck, optioned)
    figures: list[Figure] = []
    for label, request in optioned.items():
        expected = await funnel.run_funnel(clickhouse, request, TIMEOUT)
        check(theirs[label](), expected, f"DuckDB's funnel ({label})")
        ours, duckdb_ms, over_plain, duck_over = [], [], [], []
        for _ in range(runs):
            plain_ms, _, _ = await timed_async(lambda: funnel.run_funnel(clickhouse, plain, TIMEOUT))
            ms, _, answer = await timed_async(lambda r=request: funnel.run_funnel(clickhouse, r, TIMEOUT))
            check(answer, expected, f"our funnel ({label})")
            theirs_ms, _, answer = timed(theirs[label])
            check(answer, expected, f"DuckDB's funnel ({label})")
            ours.append(ms)
            duckdb_ms.append(theirs_ms)
            over_plain.append(ms / plain_ms)
            duck_over.append(theirs_ms / ms)
        name = f"funnel 3 steps, 30 days, {label}"
        ratio = statistics.median(over_plain)
        figures += [
            Figure(f"{name}: ours", "ms", ours),
            Figure(f"{name}: DuckDB", "ms", duckdb_ms),
            Figure(f"{name}: ours / our plain funnel", "ratio", over_plain, "<= 2", ratio <= 2),
            Figure(f"{name}: DuckDB / ours", "ratio", duck_over),
        ]
    return figures


def check(answer: Any, expected: Any, what: str) -> None:
    if answer != expected:
        raise AssertionError(f"{what} differs from ours:\n{answer!r}\n!=\n{expected!r}")


def question_figures(label: str, wall: dict[str, list[float]], cpu: dict[str, list[float]]) -> list[Figure]:
    ours = wall["ours"]
    cpu_note = ", ".join(f"{name} {statistics.median(ms):.0f}" for name, ms in cpu.items())
    figures = [
        Figure(
            f"{label}: ours",
            "ms",
            ours,
            f"<= {TARGETS['ours']:.0f}",
            statistics.median(ours) <= TARGETS["ours"],
            note=f"median CPU ms (PostgreSQL: all its processes): {cpu_note}; load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs",
        )
    ]
    for engine in (name for name in wall if name != "ours"):
        figures.append(Figure(f"{label}: {engine}", "ms", wall[engine]))
    for engine in (name for name in wall if name != "ours"):
        ratios = [theirs / mine for theirs, mine in zip(wall[engine], ours, strict=True)]
        target = TARGETS[engine]
        figures.append(
            Figure(
                f"{label}: {engine} / ours",
                "ratio",
                ratios,
                f">= {target:g}",
                statistics.median(ratios) >= target,
            )
        )
    return figures


async def timed_async(call: Call) -> tuple[float, float, Any]:
    """Wall ms, CPU ms of this process (chDB runs in it) and the result of one awaited call."""
    started, started_cpu = time.perf_counter(), time.process_time()
    result = await call()
    return (time.perf_counter() - started) * 1000, (time.process_time() - started_cpu) * 1000, result


def timed(call: Call, server_cpu: Callable[[], float] | None = None) -> tuple[float, float, Any]:
    """Wall ms, CPU ms (of the server's processes when given, else of this one) and the result."""
    cpu = server_cpu or time.process_time
    started, started_cpu = time.perf_counter(), cpu()
    result = call()
    return (time.perf_counter() - started) * 1000, (cpu() - started_cpu) * 1000, result
