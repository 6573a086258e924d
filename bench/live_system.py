"""The system the live fan-out bench measures: processes it starts, and the gateway's RSS and CPU."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil


def rss_mib(pid: int | None) -> float | None:
    """Resident memory of a process in MiB (None when unknown or gone)."""
    try:
        return psutil.Process(pid).memory_info().rss / 2**20 if pid else None
    except psutil.Error:
        return None


def cpu_seconds(pid: int | None) -> float | None:
    """User plus system CPU seconds a process has used so far."""
    try:
        times = psutil.Process(pid).cpu_times() if pid else None
    except psutil.Error:
        return None
    return None if times is None else times.user + times.system


def listening_pid(url: str) -> int | None:
    """The process listening on the URL's port (to find the gateway when only its URL is known)."""
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            return conn.pid
    return None


class PeakRss(threading.Thread):
    """Samples a process's RSS every 0.2 s and keeps the highest."""

    def __init__(self, pid: int | None) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.stopping = pid, rss_mib(pid), threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.2):
            now = rss_mib(self.pid)
            if now is not None:
                self.peak = max(self.peak or 0.0, now)


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
