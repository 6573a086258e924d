"""The system the live fan-out bench measures: the processes it starts, and other events posted meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def post_background(url: str, key: str, events_per_second: int, seconds: float) -> None:
    """Process entry point: other events, in batches of 10, at a steady rate (see bench/pipeline.py)."""
    from bench.pipeline import steady_batches

    asyncio.run(steady_batches(url, key, events_per_second, seconds, batch=10))


@contextlib.contextmanager
def background_load(url: str, key: str, events_per_second: int, seconds: float = 3600) -> Iterator[None]:
    """Post other events meanwhile, from a process of its own (its CPU is not the probes' poster's)."""
    if events_per_second <= 0:
        yield
        return
    process = multiprocessing.get_context("spawn").Process(
        target=post_background, args=(url, key, events_per_second, seconds), daemon=True
    )
    process.start()
    try:
        yield
    finally:
        process.terminate()
        process.join(30)


def start_system(workdir: Path, keys: dict[str, str]) -> tuple[Any, dict[str, Any]]:
    """A Kafka broker and three processes: ingest; stream,query,etl; live (so RSS is the gateway's own)."""
    from deploy.kafka.broker import KafkaBroker, free_port
    from deploy.processes import ServiceProcess

    broker = KafkaBroker(workdir / "kafka", port=free_port(), controller_port=free_port())
    broker.start()
    env = {
        **keys,
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "ANALYTICS_DATA_DIR": str(workdir / "data"),
        "ANALYTICS_TOPIC_PREFIX": "fanout",
        "ANALYTICS_LOG_LEVEL": "WARNING",
        "ETL_SCHEDULE_ENABLED": "false",
        "ANALYTICS_RATE_LIMIT_INGEST": "0",
        "ANALYTICS_RATE_LIMIT_QUERY": "0",
    }
    processes: dict[str, Any] = {}
    try:
        for name, targets in (("processor", "stream,query,etl"), ("live", "live"), ("ingest", "ingest")):
            processes[name] = ServiceProcess(targets, dict(env), workdir).start()
    except BaseException:
        stop_system(broker, processes)
        raise
    return broker, processes


def stop_system(broker: Any, processes: dict[str, Any]) -> None:
    """Stop the services (SIGTERM, clean exit) and then the broker, whatever happens to one of them."""
    from deploy.processes import stop_all

    stop_all(processes.values(), broker)
