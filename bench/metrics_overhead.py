"""What the metrics cost ingest: the same ingest code with every metric update made a no-op, with the
metrics, and with the metrics while `GET /metrics` is scraped every second; same run.

    python -m bench.metrics_overhead [--runs 5] [--seconds 8]

Two ingest processes run side by side for the whole script against one broker: one started with a
`sitecustomize` that turns prometheus-client's `inc`/`set`/`observe` into no-ops (the baseline: the
code path is the same, the updates do nothing), one as shipped. Each round measures, in an order that
rotates between rounds, single-event ingest (requests/s) and batch ingest (100 events a request,
events/s) on the baseline, on the metrics process, and on the metrics process while a thread scrapes
its /metrics every second (as Prometheus would, 15x more often than the compose profile's interval).
Each run reports events/s and the ingest process's CPU time per event (what ingest's throughput is,
one Python thread per process; the figure other work on a shared machine disturbs least). Ratios are
taken within each round. Writes bench/results/metrics-overhead.md and .json. Needs wrk
(`make bench-tools`).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench import ingest as ingest_bench
from bench.procstats import cpu_seconds
from bench.report import RESULTS, Figure, fmt, machine
from deploy.kafka.broker import KafkaBroker, free_port
from deploy.processes import ServiceProcess, stop_all

INGEST_KEY = "bench-ingest-key-0123456789"
KEYS = {name: INGEST_KEY for name in ("ANALYTICS_INGEST_KEYS", "ANALYTICS_READ_KEYS", "ANALYTICS_ADMIN_KEYS")}
NO_OP_METRICS = """
import prometheus_client.metrics as metrics

def _nothing(self, *args, **kwargs):
    return None

metrics.Counter.inc = _nothing
metrics.Gauge.inc = metrics.Gauge.dec = metrics.Gauge.set = _nothing
metrics.Histogram.observe = _nothing
"""
SHAPES = ("no-op metrics", "metrics", "metrics, scraped every 1 s")
KINDS = {"single": ingest_bench.SINGLE_LUA, "batch": ingest_bench.BATCH_LUA}


class Scraper:
    """GET /metrics every `interval` seconds in a thread, while running."""

    def __init__(self, url: str, interval: float = 1.0) -> None:
        self.url, self.interval = url, interval
        self.stopping = threading.Event()
        self.scrapes = 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stopping.wait(self.interval):
                client.get(f"{self.url}/metrics").raise_for_status()
                self.scrapes += 1

    def __enter__(self) -> Scraper:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        self.thread.join()


def measure(process: ServiceProcess, kind: str, seconds: int) -> tuple[float, float]:
    """(events/s, ingest's CPU microseconds per event) of one wrk run (a single-event request is one
    event). The CPU per event is the ingest process's own: other work on the machine slows it down but
    barely changes what it spends per event, so it is the figure to compare on a shared machine."""
    batch = 100 if kind == "batch" else 1
    script = ingest_bench.lua_script(KINDS[kind], INGEST_KEY, batch=batch)
    pid = process.process.pid if process.process is not None else None
    os.sync()
    cpu_before = cpu_seconds(pid) or 0.0
    result = ingest_bench.run_wrk(process.url, script, seconds)
    cpu = (cpu_seconds(pid) or 0.0) - cpu_before
    if result.non_2xx:
        raise RuntimeError(f"{result.non_2xx} answers were not 2xx")
    return result.requests_per_second * batch, cpu * 1e6 / (result.requests * batch)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=8)
    args = parser.parse_args(argv)
    started, clock, load_before = datetime.now(UTC), time.monotonic(), os.getloadavg()
    workdir = Path(tempfile.mkdtemp(prefix="bench-metrics-"))
    (workdir / "no-op").mkdir()
    (workdir / "no-op" / "sitecustomize.py").write_text(NO_OP_METRICS)
    broker = KafkaBroker(workdir / "kafka", port=free_port(), controller_port=free_port())
    processes: dict[str, ServiceProcess] = {}
    results: dict[tuple[str, str], list[float]] = {(k, s): [] for k in KINDS for s in SHAPES}
    cpu: dict[tuple[str, str], list[float]] = {(k, s): [] for k in KINDS for s in SHAPES}
    scrapes = 0
    try:
        broker.start()
        for name, extra in (("baseline", {"PYTHONPATH": str(workdir / "no-op")}), ("metrics", {})):
            env = {
                **KEYS,
                **extra,
                "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
                "ANALYTICS_TOPIC_PREFIX": f"bench-m-{name}",
                "ANALYTICS_DATA_DIR": str(workdir / name),
                "ANALYTICS_RATE_LIMIT_INGEST": "0",
                "ANALYTICS_LOG_LEVEL": "WARNING",
            }
            processes[name] = ServiceProcess("ingest", env, workdir).start()
        check_baseline_is_silent(processes)
        for process in processes.values():  # warm-up
            measure(process, "batch", 3)
        for round_ in range(args.runs):
            order = SHAPES[round_ % 3 :] + SHAPES[: round_ % 3]
            for kind in KINDS:
                for shape in order:
                    process = processes["baseline" if shape == SHAPES[0] else "metrics"]
                    if shape == SHAPES[2]:
                        with Scraper(process.url) as scraper:
                            rate, per_event = measure(process, kind, args.seconds)
                        scrapes += scraper.scrapes
                    else:
                        rate, per_event = measure(process, kind, args.seconds)
                    results[(kind, shape)].append(rate)
                    cpu[(kind, shape)].append(per_event)
                    print(
                        f"  round {round_ + 1}, {kind}, {shape}: {rate:,.0f} events/s, "
                        f"{per_event:.1f} us of ingest CPU per event",
                        flush=True,
                    )
    finally:
        stop_all(processes.values())
        broker.stop()
    figures = figures_from(cpu, "us CPU/event") + figures_from(results, "events/s")
    load_after = os.getloadavg()
    figures[0].note = (
        f"load average (1/5/15 min, other work included): {'/'.join(f'{x:.1f}' for x in load_before)} "
        f"before, {'/'.join(f'{x:.1f}' for x in load_after)} at the end; {os.cpu_count()} CPUs; "
        f"{scrapes} scrapes during the scraped runs"
    )
    path = write(figures, started, time.monotonic() - clock, args)
    print(f"wrote {path}")
    return 0


def check_baseline_is_silent(processes: dict[str, ServiceProcess]) -> None:
    """The baseline counts nothing (its updates are no-ops); the metrics process counts."""
    for process in processes.values():
        ingest_bench.run_wrk(process.url, ingest_bench.lua_script(KINDS["single"], INGEST_KEY), 1)
    counted = {name: requests_counted(p.url) > 0 for name, p in processes.items()}
    if counted != {"baseline": False, "metrics": True}:
        raise RuntimeError(f"the baseline must count nothing and the metrics process must count: {counted}")


def requests_counted(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    families = text_string_to_metric_families(text)
    return sum(s.value for f in families for s in f.samples if s.name == "analytics_ingest_requests_total")


def figures_from(results: dict[tuple[str, str], list[float]], unit: str) -> list[Figure]:
    figures = []
    for kind in KINDS:
        base = results[(kind, SHAPES[0])]
        for shape in SHAPES:
            figures.append(Figure(f"{kind} ingest, {shape} ({unit})", unit, results[(kind, shape)]))
        for shape in SHAPES[1:]:
            ratios = [m / b for m, b in zip(results[(kind, shape)], base, strict=True)]
            figures.append(Figure(f"{kind} ingest {unit}: {shape} / no-op metrics", "ratio", ratios))
    return figures


def write(figures: list[Figure], started: datetime, wall: float, args: argparse.Namespace) -> Path:
    info = machine()
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "started_at": started.isoformat(),
        "wall_seconds": round(wall),
        "machine": info,
        "figures": [f.as_dict() for f in figures],
    }
    (RESULTS / "metrics-overhead.json").write_text(json.dumps(payload, indent=2))
    lines = [
        f"# What the metrics cost ingest ({started:%Y-%m-%d %H:%M} UTC, `python -m bench.metrics_overhead "
        f"--runs {args.runs} --seconds {args.seconds}`, {wall:.0f} s)",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB. One broker; two ingest"
        " processes side by side for the whole run (one with every metric update a no-op, one as shipped),"
        " rounds rotating which shape went first; wrk, the broker and both processes share the cores.",
        "Ratios are taken within each round. The CPU per event is the ingest process's own (psutil); the"
        " throughput depends on everything else the 2 cores run, the CPU per event much less.",
        "",
        "| figure | median | unit | runs |",
        "|---|---|---|---|",
        *(
            f"| {f.name} | {fmt(f.median)} | {f.unit} | {', '.join(fmt(r) for r in f.runs)} |"
            for f in figures
        ),
        "",
        *(f"- {f.name}: {f.note}" for f in figures if f.note),
    ]
    path = RESULTS / "metrics-overhead.md"
    path.write_text("\n".join(lines) + "\n")
    return path


if __name__ == "__main__":
    raise SystemExit(main())
