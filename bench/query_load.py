"""`make bench-query`, query section: the data's way into the three engines. Generated with its persons
(bench/query_data.py), exported for the baselines, loaded into ours as streamed and frozen
SETTLE_SECONDS after the last block, loaded into DuckDB and PostgreSQL (each resolving the persons
itself, checked against our resolver), the cohort summary rebuilt; later settled. The module doc of
bench/query_compare.py tells the whole sequence."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench import query_baselines as baselines
from bench import query_data
from bench.report import Figure
from services.query import cohort_sql
from services.stream.settings import StreamSettings
from shared.clickhouse import ClickHouse
from shared.contracts.storage import EVENTS_TABLE, FINAL_SETTINGS, LINKS_TABLE, OVERRIDES_TABLE

EVENTS, USERS = 10_000_000, 1_000_000
SETTLE_SECONDS = 60
SUMMARY_VIEW = "user_active_days_rebuild"
EXPORTS = {
    "events": f"SELECT event_id, event, user_id, timestamp, properties FROM {EVENTS_TABLE} FINAL",
    "links": f"SELECT from_id, to_id, event, event_id, timestamp FROM {LINKS_TABLE} FINAL",
}
EXPORT = """
INSERT INTO FUNCTION file({path:String}, {format:String}) {select}
SETTINGS engine_file_truncate_on_insert = 1, do_not_merge_across_partitions_select_final = 1"""
OUR_PERSONS = f"SELECT distinct_id, person_key FROM {OVERRIDES_TABLE} FINAL WHERE person_key != distinct_id"
MERGES_RUNNING = f"SELECT count() FROM system.merges WHERE table = '{EVENTS_TABLE}'"
FINAL_COPY = "bench_final_copy"
# What FINAL returns, in two numbers: rows, and an order-free checksum of every column the questions read.
CHECKSUM = (
    "SELECT count(), sum(cityHash64(event_id, event, user_id, timestamp, received_at, did)) "
    "FROM {table} FINAL"
)


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


async def settle(clickhouse: ClickHouse) -> float:
    """Start merges again and merge every MergeTree table of the database down to one part per
    partition; the seconds it took."""
    started = time.perf_counter()
    await clickhouse.command(f"SYSTEM START MERGES {EVENTS_TABLE}")
    tables = await clickhouse.query(
        "SELECT name FROM system.tables WHERE database = {db:String} AND engine LIKE '%MergeTree'"
        " AND NOT startsWith(name, '.tmp')",  # a refreshable view's table of the moment, soon gone
        {"db": clickhouse.database},
    )
    for (table,) in tables:
        await clickhouse.command(f"OPTIMIZE TABLE `{table}` FINAL")  # inner tables' names start with '.'
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


def check(answer: Any, expected: Any, what: str) -> None:
    if answer != expected:
        raise AssertionError(f"{what} differs from ours:\n{answer!r}\n!=\n{expected!r}")
