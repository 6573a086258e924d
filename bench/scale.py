"""`make bench-scale` (not part of `make bench`): how the person funnel, the person cohort and a trend
(unique persons by plan, bench/query_trends.py) grow with the data, ours and DuckDB, latency and peak
memory of the querying process.

    python -m bench.scale [--sizes 1000000,10000000,30000000] [--runs 5]

Sizes above BENCH_MAX_EVENTS (default 30M) are left out; `BENCH_MAX_EVENTS=100000000` adds 100M.
Each size is the bench's data (bench/query_data.py: 10 events per user, 20% of users anonymous before
signup), generated straight into the events table with its persons (a resolver round) and settled
(OPTIMIZE FINAL, the state background merges converge to; `make bench-query` has the as-streamed figures).
Every step runs in its own process, one after another: `prepare` generates, settles, rebuilds the cohort
summary and exports the deduplicated events and the links (Parquet); then `query --system ours` and
`query --system duckdb` (in-memory, with the properties column the trend reads; it resolves persons
from the links in its own SQL) each time the questions, `runs` times after a warm-up.
A process's peak memory is its highest RSS sampled every 10 ms while it queried, beside its RSS before
the first query (DuckDB's holds the table). Both answers must agree exactly.
Writes bench/results/scale.json, scale.md and scale.png (latency against events, log-log, one line per
system and question).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from bench.report import RESULTS, commit, fmt, machine
from deploy.kafka.broker import REPO

SIZES = (1_000_000, 10_000_000, 30_000_000, 100_000_000)
DEFAULT_MAX_EVENTS = 30_000_000
# DuckDB holds up to this many events in memory (7.7 GB at 10M); above it, a database file with its
# buffer pool capped at DUCKDB_MEMORY_LIMIT, as DuckDB is run on data larger than the machine's memory
# (30M in memory would take ~23 GB of the 24).
DUCKDB_IN_MEMORY_MAX = 10_000_000
DUCKDB_MEMORY_LIMIT = "8GB"
EVENTS_PER_USER = 10
SYSTEMS = ("ours", "duckdb")
# The questions every size answers (name -> the label in the table and plot); each has a call in
# `our_calls` and in `duckdb_calls`.
QUESTIONS = {
    "funnel": "person funnel 3 steps, 30 days",
    "cohort": "person cohort weekly x 8",
    "trend": "trend: unique persons by plan, 30 days daily",
}


class PeakSampler(threading.Thread):
    """This process's highest RSS (MiB), sampled every 10 ms until `stopping` is set."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process()
        self.peak = self.process.memory_info().rss / 2**20
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.01):
            self.peak = max(self.peak, self.process.memory_info().rss / 2**20)


def requests() -> tuple[Any, Any]:
    from bench.query_compare import requests as bench_requests

    return bench_requests()


async def prepare(workdir: Path, events: int) -> dict[str, Any]:
    """Generate, resolve, settle, rebuild the summary, export: what the query processes read."""
    from bench import query_data
    from bench.query_load import EXPORT, EXPORTS, rebuild_summary, settle
    from shared.clickhouse import ClickHouse

    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    clickhouse = ClickHouse(f"chdb://{workdir / 'chdb'}", "bench_scale", workers=1)
    try:
        started = time.perf_counter()
        await asyncio.to_thread(clickhouse.create_schema)
        made = await query_data.generate(clickhouse, events, max(400, events // EVENTS_PER_USER))
        made.update(await query_data.record_persons(clickhouse))
        for table, select in EXPORTS.items():
            params = {"path": str(workdir / f"{table}.parquet"), "format": "Parquet"}
            await clickhouse.command(EXPORT.replace("{select}", select), params)
        await settle(clickhouse)
        await rebuild_summary(clickhouse)
        made["prepare_s"] = time.perf_counter() - started
        return made
    finally:
        clickhouse.close()


Calls = dict[str, Callable[[], Awaitable[Any]]]


def our_calls(workdir: Path) -> tuple[Calls, Callable[[], None]]:
    from bench import query_trends
    from services.query import cohort, funnel
    from shared.clickhouse import ClickHouse

    clickhouse = ClickHouse(f"chdb://{workdir / 'chdb'}", "bench_scale", workers=1)
    funnel_request, cohort_request = requests()
    calls = {
        "ready": lambda: clickhouse.query("SELECT 1"),  # chDB's start-up, before the memory baseline
        "funnel": lambda: funnel.run_funnel(clickhouse, funnel_request, 600),
        "cohort": lambda: cohort.run_cohort(clickhouse, cohort_request, 600),
        "trend": query_trends.our_calls(clickhouse)["trend_unique"],
    }
    return calls, clickhouse.close


def duckdb_calls(workdir: Path) -> tuple[Calls, Callable[[], None]]:
    from bench import query_baselines as baselines
    from bench import query_trends

    files = (workdir / "events.parquet", workdir / "links.parquet")
    if duckdb_on_disk(workdir):
        duck = baselines.load_duckdb(*files, workdir / "duck.db", DUCKDB_MEMORY_LIMIT)
    else:
        duck = baselines.load_duckdb(*files)
    trend = query_trends.baseline_calls(duck, None)["trend_unique"]["DuckDB"]
    funnel_request, cohort_request = requests()
    fp = baselines.funnel_parameters(funnel_request)
    cp = baselines.cohort_parameters(cohort_request)
    cohort_sql = baselines.cohort_sql(cohort_request.periods, postgres=False)
    from services.query import cohort, funnel

    async def run_funnel() -> Any:
        return funnel.parse(
            baselines.funnel_rows(duck.execute(baselines.DUCKDB_FUNNEL, fp).fetchall()), funnel_request
        )

    async def run_cohort() -> Any:
        return cohort.parse(baselines.cohort_rows(duck.execute(cohort_sql, cp).fetchall()), cohort_request)

    async def run_trend() -> Any:
        return trend()

    async def ready() -> None:
        return None

    return {"ready": ready, "funnel": run_funnel, "cohort": run_cohort, "trend": run_trend}, duck.close


def duckdb_on_disk(workdir: Path) -> bool:
    """Whether DuckDB keeps this size in a file (the size is the work directory's name)."""
    return int(workdir.name) > DUCKDB_IN_MEMORY_MAX


def duckdb_storage(events: int) -> str:
    if events > DUCKDB_IN_MEMORY_MAX:
        return f"file, buffer pool {DUCKDB_MEMORY_LIMIT}"
    return "memory"


async def query(workdir: Path, system: str, runs: int) -> dict[str, Any]:
    """Each question `runs` times after a warm-up (the questions in turns); latencies, answers, memory."""
    started = time.perf_counter()
    calls, close = (our_calls if system == "ours" else duckdb_calls)(workdir)
    await calls.pop("ready")()
    loaded_s = time.perf_counter() - started
    try:
        rss_before = psutil.Process().memory_info().rss / 2**20
        sampler = PeakSampler()
        sampler.start()
        answers = {name: (await call()).model_dump() for name, call in calls.items()}
        ms: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(runs):
            for name, call in calls.items():
                began = time.perf_counter()
                if (await call()).model_dump() != answers[name]:
                    raise AssertionError(f"{system}'s {name} changed between runs")
                ms[name].append((time.perf_counter() - began) * 1000)
        sampler.stopping.set()
        sampler.join()
    finally:
        close()
    return {
        "ms": ms,
        "answers": answers,
        "rss_before_mib": rss_before,
        "peak_mib": sampler.peak,
        "load_s": loaded_s,
    }


def in_process(*args: str) -> dict[str, Any]:
    """One step in a fresh process; its JSON answer."""
    command = [sys.executable, "-m", "bench.scale", *args]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stderr[-4000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def measure_size(events: int, runs: int, root: Path) -> dict[str, Any]:
    workdir = root / str(events)
    started = time.perf_counter()
    made = in_process("prepare", "--events", str(events), "--dir", str(workdir))
    print(f"  prepared {made['rows']:,} rows in {made['prepare_s']:.0f} s", flush=True)
    results = {}
    for system in SYSTEMS:
        results[system] = in_process("query", "--system", system, "--dir", str(workdir), "--runs", str(runs))
        medians = ", ".join(f"{n} {statistics.median(v):.0f} ms" for n, v in results[system]["ms"].items())
        print(f"  {system}: {medians}; peak {results[system]['peak_mib']:.0f} MiB", flush=True)
    for name in QUESTIONS:
        if results["ours"]["answers"][name] != results["duckdb"]["answers"][name]:
            raise AssertionError(f"DuckDB's {name} at {events:,} events differs from ours")
    shutil.rmtree(workdir, ignore_errors=True)
    return {
        "events": events,
        "run_at": datetime.now(UTC).isoformat(),
        "commit": commit(),
        "duckdb_storage": duckdb_storage(events),
        "rows": made["rows"],
        "distinct_ids": made["distinct_ids"],
        "linked_ids": made["overrides"],
        "wall_s": time.perf_counter() - started,
        "load_average": os.getloadavg()[0],
        "systems": {
            system: {
                "median_ms": {n: statistics.median(v) for n, v in r["ms"].items()},
                "ms": r["ms"],
                "rss_before_mib": r["rss_before_mib"],
                "peak_mib": r["peak_mib"],
            }
            for system, r in results.items()
        },
    }


def merged_rows(rows: list[dict[str, Any]], path: Path) -> list[dict[str, Any]]:
    """This run's sizes, and the other sizes as an earlier run left them in `path`, by events."""
    try:
        earlier = json.loads(path.read_text()).get("sizes", [])
    except (OSError, ValueError):
        earlier = []
    measured = {row["events"] for row in rows}
    return sorted([r for r in earlier if r["events"] not in measured] + rows, key=lambda r: r["events"])


def write(rows: list[dict[str, Any]], out_dir: Path = RESULTS) -> Path:
    """scale.json, .md and .png: this run's sizes replace the same sizes of the earlier files, the other
    sizes stay as they were measured (each row says when, at which commit)."""
    rows = merged_rows(rows, out_dir / "scale.json")
    payload = {"finished_at": datetime.now(UTC).isoformat(), "machine": machine(), "sizes": rows}
    (out_dir / "scale.json").write_text(json.dumps(payload, indent=2))
    lines = [
        "# Growth (`make bench-scale`)",
        "",
        "Settled data of `make bench`'s shape at each size; medians of the runs; peak RSS of the querying",
        "process while it queried (before its first query in brackets). Both answers agreed at every size.",
        f"DuckDB holds up to {DUCKDB_IN_MEMORY_MAX:,} events in memory, larger sizes in a database file",
        f"with its buffer pool capped at {DUCKDB_MEMORY_LIMIT}. Sizes measured in different runs are on a",
        "shared machine at different loads (the load average of each size's run is in the table).",
        "",
        "| events | distinct ids | question | ours ms | DuckDB ms | DuckDB / ours | ours peak MiB | "
        "DuckDB peak MiB | wall s | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ours, duck = row["systems"]["ours"], row["systems"]["duckdb"]
        for name, label in QUESTIONS.items():
            o, d = ours["median_ms"][name], duck["median_ms"][name]
            lines.append(
                f"| {row['events']:,} | {row['distinct_ids']:,} | {label} | {fmt(o)} | {fmt(d)} | "
                f"{fmt(d / o)} | "
                f"{ours['peak_mib']:,.0f} ({ours['rss_before_mib']:,.0f}) | "
                f"{duck['peak_mib']:,.0f} ({duck['rss_before_mib']:,.0f}) | {row['wall_s']:,.0f} | "
                f"{row['load_average']:.1f} |"
            )
    lines += ["", "![latency against events](scale.png)", "", "Runs:"]
    for row in rows:
        lines.append(
            f"- {row['events']:,}: {row['run_at'][:16].replace('T', ' ')} UTC at "
            f"{row['commit']}, DuckDB in {row['duckdb_storage']}"
        )
    (out_dir / "scale.md").write_text("\n".join(lines) + "\n")
    plot(rows, out_dir / "scale.png")
    return out_dir / "scale.md"


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Latency against events, log-log: a panel per question, one line per system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, panels = plt.subplots(
        1, len(QUESTIONS), figsize=(5 * len(QUESTIONS), 4.2), dpi=120, squeeze=False
    )
    events = [row["events"] for row in rows]
    for axes, (name, label) in zip(panels[0], QUESTIONS.items(), strict=True):
        for system, (title, style) in {"ours": ("ours", "o-"), "duckdb": ("DuckDB", "s--")}.items():
            ms = [row["systems"][system]["median_ms"][name] for row in rows]
            axes.plot(events, ms, style, label=title)
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xlabel("events")
        axes.set_ylabel("median latency (ms)")
        axes.set_title(label, fontsize=10)
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=8)
    figure.suptitle("Latency as the data grows (settled, 2 cores)", fontsize=11)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("step", nargs="?", choices=("prepare", "query"), help=argparse.SUPPRESS)
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--events", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--system", choices=SYSTEMS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.step == "prepare":
        print(json.dumps(asyncio.run(prepare(args.dir, args.events))))
        return 0
    if args.step == "query":
        print(json.dumps(asyncio.run(query(args.dir, args.system, args.runs))))
        return 0
    limit = int(os.environ.get("BENCH_MAX_EVENTS", DEFAULT_MAX_EVENTS))
    sizes = [int(s) for s in args.sizes.split(",") if int(s) <= limit]
    t0 = time.monotonic()
    root = REPO / "data" / "bench-scale"
    rows = []
    try:
        for events in sizes:
            print(f"== {events:,} events", flush=True)
            rows.append(measure_size(events, args.runs, root))
            write(rows)  # after each size: a later size's failure keeps these
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report = write(rows)
    print(report.read_text())
    print(f"bench-scale took {time.monotonic() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
