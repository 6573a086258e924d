"""Trend and schema-discovery latency in embedded ClickHouse (chDB), with DuckDB answering the same two
trends over a copy of the deduplicated rows and the same persons as the baseline (issue 15's figures;
`make bench-query`'s query section times them as streamed and settled, with PostgreSQL too). Rerun with:

    python -m bench.trends_latency --events 1000000 [--runs 5] [--path DIR]

The events are the query benchmark's (bench/query_data.py: skewed users, ~300-byte JSON properties
with `plan` and `amount`, 0.5% retried copies, 20% of users anonymous before signup), generated
straight into the events table with their persons. The questions and the baseline's SQL are
bench/query_trends.py's: a 30-day daily trend of unique persons of page_view broken down by plan, a
30-day daily sum of amount of page_view where plan = pro, and GET /events, /properties?event=page_view,
/properties/plan/values on the catalogue the materialized views filled while the events were inserted.

Each figure is the median of `--runs` runs after one warm-up run; DuckDB's answers must equal ours.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench import query_baselines as baselines
from bench import query_trends
from bench.query_latency import generate
from bench.query_load import EXPORT, EXPORTS
from shared.clickhouse import ClickHouse


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


def duck_timed(runs: int, call: Callable[[], Any]) -> tuple[float, Any]:
    answer = call()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        answer = call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), answer


async def main(events: int, runs: int, path: Path | None) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-trends-")) if path is None else path
    clickhouse = ClickHouse(f"chdb://{workdir / 'chdb'}", "bench")
    try:
        await asyncio.to_thread(clickhouse.create_schema)
        made = await generate(clickhouse, events)
        print(f"generated {made['rows']:,} rows of {made['users']:,} users in {made['seconds']} s")
        calls: dict[str, Callable[[], Awaitable[Any]]] = {
            query_trends.LABELS[question]: call
            for question, call in query_trends.our_calls(clickhouse).items()
        }
        calls |= {label: lambda call=call: call(clickhouse) for label, call in query_trends.DISCOVERY.items()}
        answers = {}
        for label, call in calls.items():
            first, wall, cpu, answers[label] = await timed(runs, call)
            print(
                f"{label}: first {first:.0f} ms, then {wall:.1f} ms wall, {cpu:.1f} ms CPU (medians, {runs})"
            )
        await query_trends.check_discovery(clickhouse, list(answers.values())[2:])
        for table, select in EXPORTS.items():
            params = {"path": str(workdir / f"{table}.parquet"), "format": "Parquet"}
            await clickhouse.command(EXPORT.replace("{select}", select), params)
        duck = baselines.load_duckdb(workdir / "events.parquet", workdir / "links.parquet")
        for question, engines in query_trends.baseline_calls(duck, None).items():
            ms, answer = duck_timed(runs, engines["DuckDB"])
            label = query_trends.LABELS[question]
            if answer != answers[label]:
                raise AssertionError(f"DuckDB's {label} differs from ours:\n{answer!r}\n{answers[label]!r}")
            print(f"duckdb: {label} {ms:.1f} ms (median, {runs}), the same answer as ours")
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
