"""`make bench`, query section: our person funnel and cohort against DuckDB and PostgreSQL 15 on the same
data, as streamed and settled.

    python -m bench --only query [--scale 1.0] [--runs 3]

Data (bench/query_data.py): 10M events of 1M users at scale 1.0 (proportional otherwise), 20% of them
starting anonymous and linked at signup, with retried and moved copies; generated inside embedded
ClickHouse into a staging table with their persons' tables and a resolver round.

As streamed (issue 20): the rows go into analytics_events as the stream loader writes them, blocks of
STREAM_BATCH_SIZE rows in arrival order (received_at) one after another, background merges running.
SETTLE_SECONDS after the last block the active parts per partition are recorded and merges are stopped,
so the state timed is the state at that moment however long the baselines take. The baselines' copy is
exported before the load, from the same rows in a table of the events table's engine and key (so the
rows `analytics_events FINAL` will return: checked by count and checksum once loaded): Parquet for
DuckDB (in memory, loaded after the freeze) and CSV for a private PostgreSQL cluster (COPY, then
indexes), which loads during the stream and the settle at nice 19 and idle IO, taking only what merges
leave. Each resolves the persons from the links itself (bench/query_baselines.py). The cohort summary
is rebuilt, as its refreshable view does every 10 minutes, and its schedule paused.

Ours runs through the service's runners and `ClickHouse.query` (building the SQL, FINAL, parsing).
Each baseline's persons are compared with our resolver's, and each baseline's first answer with ours
field by field before any timing. Before the first timing the exported files are deleted and
PostgreSQL's checkpoint and the kernel's write-back are flushed; then the engines take turns, `runs`
rounds but at least 5, and each figure is the median. Ratios are per round (same machine load). Beside
ours, in the same rounds, today's funnel over distinct ids (the same SQL grouped by user_id: what the
funnel was before persons), for "no slower than before".
Settled: merges started again and every table merged down (OPTIMIZE ... FINAL, the state background
merges converge to); ours and DuckDB take turns again (PostgreSQL's state did not change), and every
answer must equal the as-streamed one.
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

from bench import query_baselines as baselines
from bench import query_data
from bench.postgres_cluster import PostgresCluster
from bench.query_latency import COHORT, FUNNEL
from bench.report import Figure
from services.query import cohort, cohort_sql, funnel
from services.stream.settings import StreamSettings
from shared.clickhouse import ClickHouse
from shared.contracts.storage import EVENTS_TABLE, FINAL_SETTINGS, LINKS_TABLE, OVERRIDES_TABLE, PERSON

EVENTS, USERS = 10_000_000, 1_000_000
TIMEOUT = 600.0
SETTLE_SECONDS = 60
# Rounds of the engines in turns: a round costs ~10 s (PostgreSQL's share), and single queries of
# ~200 ms are the figures most exposed to the shared machine's noise.
QUERY_ROUNDS = 5
SUMMARY_VIEW = "user_active_days_rebuild"
Call = Callable[[], Any]
# New activity of 1% of the users, as arrives between two rebuilds of the cohort summary.
NEW_ACTIVITY = f"""
INSERT INTO {EVENTS_TABLE} (event_id, event, user_id, timestamp, received_at, properties, did)
SELECT generateUUIDv4(), 'page_view', user_id, timestamp + toIntervalDay(3), received_at + toIntervalDay(3),
       properties, did
FROM {EVENTS_TABLE} WHERE event = 'signup' AND cityHash64(user_id) % 100 = 0"""
EXPORTS = {
    "events": f"SELECT event_id, event, user_id, timestamp, properties FROM {EVENTS_TABLE} FINAL",
    "links": f"SELECT from_id, to_id, event, event_id, timestamp FROM {LINKS_TABLE} FINAL",
}
EXPORT = """
INSERT INTO FUNCTION file({path:String}, {format:String}) {select}
SETTINGS engine_file_truncate_on_insert = 1, do_not_merge_across_partitions_select_final = 1"""
OUR_PERSONS = f"SELECT distinct_id, person_key FROM {OVERRIDES_TABLE} FINAL WHERE person_key != distinct_id"
STATES = ("as streamed", "settled")
MERGES_RUNNING = f"SELECT count() FROM system.merges WHERE table = '{EVENTS_TABLE}'"
FINAL_COPY = "bench_final_copy"
# What FINAL returns, in two numbers: rows, and an order-free checksum of every column the questions read.
CHECKSUM = (
    "SELECT count(), sum(cityHash64(event_id, event, user_id, timestamp, received_at, did)) "
    "FROM {table} FINAL"
)


def run(scale: float, runs: int, workdir: Path) -> list[Figure]:
    """Generate, load, check and time; the figures for bench/results."""
    return asyncio.run(compare(scale, max(1, runs), workdir))


async def compare(scale: float, runs: int, workdir: Path) -> list[Figure]:
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    clickhouse = ClickHouse(f"chdb://{workdir / 'chdb'}", "bench_query", workers=1)
    postgres = PostgresCluster(workdir / "postgres")
    try:
        figures, expected_rows = await generate_and_export(clickhouse, scale, workdir)
        pg = postgres.start().connect()
        postgres.set_priority(19, idle_io=True)
        pg_load = asyncio.create_task(load_postgres(pg, workdir))
        figures.append(await stream_and_freeze(clickhouse, expected_rows))
        postgres.set_priority(0, idle_io=False)
        loaded, duck = await load_duckdb_and_check(clickhouse, pg, pg_load, workdir)
        figures += loaded
        quiet_down(workdir, pg)
        rounds = max(runs, QUERY_ROUNDS)
        others = baselines.calls(duck, pg, *requests())
        streamed, expected = await measure(clickhouse, others, postgres, rounds, "as streamed")
        figures += streamed
        settled = await settle(clickhouse)
        figures.append(Figure("query data: settle ClickHouse (OPTIMIZE FINAL)", "s", [settled]))
        duck_only = {question: {"DuckDB": calls["DuckDB"]} for question, calls in others.items()}
        figures += (await measure(clickhouse, duck_only, postgres, rounds, "settled", expected))[0]
        figures.append(await after_new_activity(clickhouse, rounds))
        return figures
    finally:
        clickhouse.close()
        postgres.stop()
        remove_exports(workdir)
        shutil.rmtree(workdir / "postgres", ignore_errors=True)


def export_paths(workdir: Path) -> dict[str, Path]:
    return {f"{name}.{ext}": workdir / f"{name}.{ext}" for name in EXPORTS for ext in ("parquet", "csv")}


def remove_exports(workdir: Path) -> None:
    for path in export_paths(workdir).values():
        path.unlink(missing_ok=True)


def quiet_down(workdir: Path, pg: Any) -> None:
    """Before any timing: drop the exported files (several GB of page cache, partly not yet written
    back), have PostgreSQL write its checkpoint, and flush what the kernel still holds, so no engine's
    timings share the disks and CPUs with that write-back."""
    remove_exports(workdir)
    pg.execute("CHECKPOINT")
    os.sync()


def requests() -> tuple[funnel.FunnelRequest, cohort.CohortRequest]:
    return funnel.FunnelRequest(**FUNNEL), cohort.CohortRequest(**COHORT)


async def export(clickhouse: ClickHouse, workdir: Path, events_table: str) -> None:
    """The rows `events_table FINAL` returns and the links, as Parquet (DuckDB) and CSV (PostgreSQL)."""
    for name, path in export_paths(workdir).items():
        table, fmt = name.split(".")
        select = EXPORTS[table].replace(EVENTS_TABLE, events_table)
        await clickhouse.command(
            EXPORT.replace("{select}", select), {"path": str(path), "format": fmt.replace("csv", "CSV")}
        )


async def generate_and_export(
    clickhouse: ClickHouse, scale: float, workdir: Path
) -> tuple[list[Figure], Any]:
    """Generate the rows to load and their persons; export what `analytics_events FINAL` will return
    once they are loaded (the same rows in a table of the same engine, FINAL_COPY), and its checksum."""
    started = time.perf_counter()
    await asyncio.to_thread(clickhouse.create_schema)
    events, users = max(10_000, int(EVENTS * scale)), max(400, int(USERS * scale))
    made = await query_data.generate_arrivals(clickhouse, events, users)
    generated = time.perf_counter() - started
    started = time.perf_counter()
    await clickhouse.command(f"CREATE TABLE {FINAL_COPY} AS {EVENTS_TABLE}")
    await clickhouse.command(f"INSERT INTO {FINAL_COPY} SELECT * FROM {query_data.ARRIVALS_TABLE}")
    await export(clickhouse, workdir, FINAL_COPY)
    (expected_rows,) = await clickhouse.query(CHECKSUM.format(table=FINAL_COPY), settings=FINAL_SETTINGS)
    await clickhouse.command(f"DROP TABLE {FINAL_COPY}")
    exported = time.perf_counter() - started
    shape = (
        f"{expected_rows[0]:,} events ({made['rows']:,} rows with the retried copies) of {made['users']:,} "
        f"users, {made['distinct_ids']:,} distinct ids, {made['overrides']:,} linked to another's person; "
        f"properties {made['properties_bytes_avg']} B on average"
    )
    figures = [
        Figure("query data: generate in ClickHouse (staging)", "s", [generated], note=shape),
        Figure(
            "query data: resolve persons (Resolver.rebuild)",
            "s",
            [made["resolve_s"]],
            note=f"{made['overrides']:,} overrides written; distinct_ids and person_links stored in "
            f"{made['store_s']:.1f} s",
        ),
        Figure(
            "query data: export Parquet + CSV (FINAL)",
            "s",
            [exported],
            note="from a copy of the rows to load in a table of the events table's engine and key; the "
            "events table FINAL is checked to return the same rows once loaded",
        ),
    ]
    return figures, expected_rows


async def stream_and_freeze(clickhouse: ClickHouse, expected_rows: Any) -> Figure:
    """Load as streamed; SETTLE_SECONDS after the last block record the active parts and stop merges:
    the state every as-streamed figure is timed on. Check FINAL returns the exported rows."""
    block_rows = StreamSettings().batch_size
    streamed = await query_data.load_as_streamed(clickhouse, block_rows)
    settled_at = time.monotonic() + SETTLE_SECONDS
    at_end = await query_data.active_parts(clickhouse)
    await asyncio.sleep(max(0.0, settled_at - time.monotonic()))
    parts = await query_data.active_parts(clickhouse)
    merging = (await clickhouse.query(MERGES_RUNNING))[0][0]
    await clickhouse.command(f"SYSTEM STOP MERGES {EVENTS_TABLE}")
    (rows,) = await clickhouse.query(CHECKSUM.format(table=EVENTS_TABLE), settings=FINAL_SETTINGS)
    check(rows, expected_rows, "analytics_events FINAL (count, checksum), as streamed, against the export")
    return Figure(
        f"query data: load as streamed ({streamed['blocks']:,} blocks of {block_rows:,} rows)",
        "s",
        [streamed["seconds"]],
        note="active parts per partition when the inserts ended: "
        + parts_text(at_end)
        + f"; {SETTLE_SECONDS} s later, when merges were stopped and the as-streamed state frozen: "
        + parts_text(parts)
        + f" ({merging} merges were running); PostgreSQL loaded meanwhile at nice 19 and idle IO",
        extra={"parts_at_end": at_end, "parts_timed": parts, "merges_running": merging},
    )


def parts_text(parts: dict[str, int]) -> str:
    return ", ".join(f"{partition}: {count}" for partition, count in parts.items())


async def load_postgres(pg: Any, workdir: Path) -> float:
    paths = export_paths(workdir)
    return (await seconds_of(baselines.load_postgres, pg, paths["events.csv"], paths["links.csv"]))[0]


async def load_duckdb_and_check(
    clickhouse: ClickHouse, pg: Any, pg_load: Awaitable[float], workdir: Path
) -> tuple[list[Figure], Any]:
    """DuckDB loads (while PostgreSQL finishes); both resolutions are checked against our resolver's;
    then the cohort summary is rebuilt, as its refreshable view does every 10 minutes."""
    paths = export_paths(workdir)
    duck_seconds, duck = await seconds_of(
        baselines.load_duckdb, paths["events.parquet"], paths["links.parquet"]
    )
    pg_seconds = await pg_load
    ours = {(str(i), str(key)) for i, key in await clickhouse.query(OUR_PERSONS)}
    for engine, connection in (("DuckDB", duck), ("PostgreSQL", pg)):
        check(baselines.persons_of(connection), ours, f"{engine}'s persons")
    summary_seconds = await rebuild_summary(clickhouse)
    figures = [
        Figure(
            "query data: load DuckDB (from Parquet, persons resolved)",
            "s",
            [duck_seconds],
            note=f"after the as-streamed state was frozen; both baselines resolve the same {len(ours):,} "
            "linked ids as our resolver",
        ),
        Figure(
            "query data: load PostgreSQL (COPY, persons resolved, 3 indexes, VACUUM)",
            "s",
            [pg_seconds],
            note="started with the as-streamed load, at the lowest CPU and IO priority until the freeze",
        ),
        Figure("query data: rebuild the cohort summary", "s", [summary_seconds]),
    ]
    return figures, duck


async def seconds_of(fn: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = await asyncio.to_thread(fn, *args)
    return time.perf_counter() - started, result


async def seconds_of_async(work: Awaitable[Any]) -> float:
    started = time.perf_counter()
    await work
    return time.perf_counter() - started


async def settle(clickhouse: ClickHouse) -> float:
    """Start merges again and merge every MergeTree table of the database down to one part per
    partition; the seconds it took."""
    started = time.perf_counter()
    await clickhouse.command(f"SYSTEM START MERGES {EVENTS_TABLE}")
    tables = await clickhouse.query(
        "SELECT name FROM system.tables WHERE database = {db:String} AND engine LIKE '%MergeTree'",
        {"db": clickhouse.database},
    )
    for (table,) in tables:
        await clickhouse.command(f"OPTIMIZE TABLE {table} FINAL")
    return time.perf_counter() - started


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
        f"{LABELS['cohort']}: ours, settled, {changed:,} users changed since the summary",
        "ms",
        [ms for ms, _, _ in samples],
        note="their days are recomputed from the events; same answer as the scan of every event",
    )


def by_distinct_id(request: funnel.FunnelRequest) -> tuple[str, dict[str, Any]]:
    """Today's funnel before persons: the same SQL with every distinct id its own user."""
    sql, params = funnel.build(request)
    person = f"{PERSON} AS person"
    assert person in sql, "the funnel's SQL no longer selects storage.PERSON"
    return sql.replace(person, "user_id AS person"), params


def our_calls(clickhouse: ClickHouse) -> dict[str, Callable[[], Any]]:
    funnel_request, cohort_request = requests()
    distinct_sql, distinct_params = by_distinct_id(funnel_request)

    async def funnel_by_distinct_id() -> funnel.FunnelResponse:
        rows = await clickhouse.query(distinct_sql, distinct_params, settings=FINAL_SETTINGS, timeout=TIMEOUT)
        return funnel.parse(rows, funnel_request)

    return {
        "funnel": lambda: funnel.run_funnel(clickhouse, funnel_request, TIMEOUT),
        "funnel by distinct id": funnel_by_distinct_id,
        "cohort": lambda: cohort.run_cohort(clickhouse, cohort_request, TIMEOUT),
    }


TARGETS = {"ours": 300.0, "DuckDB": 3.0, "PostgreSQL": 20.0}
LABELS = {"funnel": "person funnel 3 steps, 30 days, ordered", "cohort": "person cohort weekly x 8"}


async def measure(
    clickhouse: ClickHouse,
    others: dict[str, dict[str, Call]],
    postgres: PostgresCluster,
    runs: int,
    state: str,
    expected: dict[str, Any] | None = None,
) -> tuple[list[Figure], dict[str, Any]]:
    """Check every baseline against ours (and ours against `expected`, the answers of another state),
    then `runs` rounds in turns; figures per question, and our answers."""
    ours = our_calls(clickhouse)
    figures: list[Figure] = []
    answers: dict[str, Any] = {}
    for question, label in LABELS.items():
        answers[question] = await ours[question]()
        if expected is not None:
            check(answers[question], expected[question], f"our {question} {state}, against the first state's")
        for engine, call in others[question].items():
            check(call(), answers[question], f"{engine}'s {question}")
        wall: dict[str, list[float]] = {name: [] for name in ("ours", *others[question])}
        cpu: dict[str, list[float]] = {name: [] for name in wall}
        distinct_ids: list[float] = []
        for _ in range(runs):
            ms, cpu_ms, answer = await timed_async(ours[question])
            check(answer, answers[question], f"our {question}")
            wall["ours"].append(ms)
            cpu["ours"].append(cpu_ms)
            if question == "funnel":
                distinct_ids.append((await timed_async(ours["funnel by distinct id"]))[0])
            for engine, call in others[question].items():
                server_cpu = postgres.cpu_seconds if engine == "PostgreSQL" else None
                ms, cpu_ms, answer = timed(call, server_cpu)
                check(answer, answers[question], f"{engine}'s {question}")
                wall[engine].append(ms)
                cpu[engine].append(cpu_ms)
        figures += question_figures(f"{label}, {state}", wall, cpu, targets=state == STATES[0])
        if distinct_ids:
            by_id = await ours["funnel by distinct id"]()
            figures += distinct_id_figures(state, wall["ours"], distinct_ids, answers[question], by_id)
    return figures, answers


def distinct_id_figures(
    state: str, persons: list[float], distinct_ids: list[float], by_person: Any, by_id: Any
) -> list[Figure]:
    """Today's funnel over distinct ids beside the person funnel, in the same rounds."""
    if by_person == by_id:
        raise AssertionError("the person funnel answers as the distinct-id funnel: the data links nothing")
    as_streamed = state == STATES[0]
    ratios = [p / d for p, d in zip(persons, distinct_ids, strict=True)]
    conversion = f"{by_person.overall_conversion}% of {by_person.total_entries:,} persons"
    return [
        Figure(
            f"funnel 3 steps, 30 days, ordered, over distinct ids (before persons), {state}: ours",
            "ms",
            distinct_ids,
            note=f"converts {by_id.overall_conversion}% of {by_id.total_entries:,} distinct ids; the person "
            f"funnel {conversion}",
        ),
        Figure(
            f"person funnel / funnel over distinct ids, {state}",
            "ratio",
            ratios,
            "<= 1" if as_streamed else "",
            statistics.median(ratios) <= 1 if as_streamed else None,
            note="same rounds; the last make bench over distinct ids (settled, 2026-11-28) measured 225 ms",
        ),
    ]


def check(answer: Any, expected: Any, what: str) -> None:
    if answer != expected:
        raise AssertionError(f"{what} differs from ours:\n{answer!r}\n!=\n{expected!r}")


def question_figures(
    label: str, wall: dict[str, list[float]], cpu: dict[str, list[float]], targets: bool
) -> list[Figure]:
    """Ours, each baseline and each ratio; the targets apply to the as-streamed figures."""
    ours = wall["ours"]
    cpu_note = ", ".join(f"{name} {statistics.median(ms):.0f}" for name, ms in cpu.items())
    figures = [
        Figure(
            f"{label}: ours",
            "ms",
            ours,
            f"<= {TARGETS['ours']:.0f}" if targets else "",
            statistics.median(ours) <= TARGETS["ours"] if targets else None,
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
                f">= {target:g}" if targets else "",
                statistics.median(ratios) >= target if targets else None,
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
