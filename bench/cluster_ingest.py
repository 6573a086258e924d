"""Ingest on a 3-broker cluster with replication 3 against one broker with replication 1, same run.

    python -m bench.cluster_ingest [--runs 5] [--seconds 8]

Both shapes run side by side for the whole script (one broker; three brokers of deploy/kafka/cluster.py),
each with its own ingest process, and the rounds alternate which one is measured first, so both see
the same machine. Measured per round: batch ingest (wrk, 100 events a request, as `make bench`) and the
raw aiokafka producer (acks=all). On this machine all three brokers share the same 2 cores with ingest
and wrk: the ratio is the cost of replication in CPU on one host, not the network cost a real cluster
adds. Writes the "replication" section of bench/results/latest.md and .json. Needs wrk
(`make bench-tools`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import ingest as ingest_bench
from bench import report
from bench.report import Figure, Section, commit
from deploy.kafka.broker import KafkaBroker, free_port
from deploy.kafka.cluster import KafkaCluster
from deploy.processes import ServiceProcess, stop_all
from shared.contracts.topics import Topics

INGEST_KEY = "bench-ingest-key-0123456789"
KEYS = {name: INGEST_KEY for name in ("ANALYTICS_INGEST_KEYS", "ANALYTICS_READ_KEYS", "ANALYTICS_ADMIN_KEYS")}


def ingest_env(workdir: Path, bootstrap: str, prefix: str) -> dict[str, str]:
    return {
        **KEYS,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "ANALYTICS_TOPIC_PREFIX": prefix,
        "ANALYTICS_DATA_DIR": str(workdir / prefix),
        "ANALYTICS_RATE_LIMIT_INGEST": "0",
        "ANALYTICS_LOG_LEVEL": "WARNING",
    }


def measure(
    url: str, bootstrap: str, topic: str, seconds: int, messages: list[tuple[bytes, bytes]]
) -> tuple[float, float]:
    """(batch ingest events/s, raw producer events/s), each after the writes so far are flushed."""
    script = ingest_bench.lua_script(ingest_bench.BATCH_LUA, INGEST_KEY, batch=100)
    os.sync()
    result = ingest_bench.run_wrk(url, script, seconds)
    if result.non_2xx:
        raise RuntimeError(f"{result.non_2xx} answers were not 2xx")
    os.sync()
    raw = asyncio.run(ingest_bench.raw_producer_rate(bootstrap, topic, messages))
    return result.requests_per_second * 100, raw


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=8)
    args = parser.parse_args(argv)
    started, clock, load_before, tree = datetime.now(UTC), time.monotonic(), os.getloadavg()[0], commit()
    workdir = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    single = KafkaBroker(workdir / "kafka-1", port=free_port(), controller_port=free_port())
    cluster = KafkaCluster(workdir / "kafka-3", nodes=3)
    shapes = {"1 broker, replication 1": single, "3 brokers, replication 3": cluster}
    processes: dict[str, ServiceProcess] = {}
    results: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in shapes}
    messages = ingest_bench.serialized_events(100_000)
    try:
        single.start()
        cluster.start()
        for i, (name, kafka) in enumerate(shapes.items()):
            env = ingest_env(workdir, kafka.bootstrap_servers, f"bench-c{i}")
            processes[name] = ServiceProcess("ingest", env, workdir).start()
        for process in processes.values():  # warm-up, and the topics exist before the raw producer
            ingest_bench.run_wrk(
                process.url, ingest_bench.lua_script(ingest_bench.BATCH_LUA, INGEST_KEY, 100), 3
            )
        for round_ in range(args.runs):
            order = list(shapes) if round_ % 2 == 0 else list(reversed(shapes))
            for name in order:
                topic = Topics(processes[name].env["ANALYTICS_TOPIC_PREFIX"]).events
                ingest, raw = measure(
                    processes[name].url, shapes[name].bootstrap_servers, topic, args.seconds, messages
                )
                results[name][0].append(ingest)
                results[name][1].append(raw)
                print(
                    f"  round {round_ + 1}, {name}: ingest {ingest:,.0f} events/s, raw producer {raw:,.0f}",
                    flush=True,
                )
    finally:
        stop_all(processes.values())
        single.stop()
        cluster.kill()
    figures = figures_from(results)
    loads = (load_before, os.getloadavg()[0])
    path = write(Section("replication", started, time.monotonic() - clock, 1.0, figures, tree, loads), args)
    print(f"wrote {path}")
    return 0


def figures_from(results: dict[str, tuple[list[float], list[float]]]) -> list[Figure]:
    (one_ingest, one_raw), (three_ingest, three_raw) = results.values()
    names = list(results)
    return [
        Figure(f"batch ingest (100/request), {names[0]}", "events/s", one_ingest),
        Figure(f"batch ingest (100/request), {names[1]}", "events/s", three_ingest),
        Figure(
            "batch ingest: 3 brokers / 1 broker",
            "ratio",
            [t / o for t, o in zip(three_ingest, one_ingest, strict=True)],
        ),
        Figure(f"raw aiokafka producer, {names[0]}", "events/s", one_raw),
        Figure(f"raw aiokafka producer, {names[1]}", "events/s", three_raw),
        Figure(
            "raw producer: 3 brokers / 1 broker",
            "ratio",
            [t / o for t, o in zip(three_raw, one_raw, strict=True)],
        ),
    ]


def write(section: Section, args: argparse.Namespace) -> Path:
    """The figures as the "replication" section of bench/results/latest.* (bench/report.py)."""
    section.figures[0].note = (
        f"`python -m bench.cluster_ingest --runs {args.runs} --seconds {args.seconds}`: both shapes "
        "ran side by side in this one run, rounds alternating which went first; every broker shares the "
        "same 2 cores with ingest and wrk, so the ratio is replication's CPU cost on one host, with no "
        "network between brokers"
    )
    return report.write([section], Figure("bench wall time", "s", [section.seconds]))


if __name__ == "__main__":
    raise SystemExit(main())
