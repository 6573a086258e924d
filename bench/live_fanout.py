"""Live fan-out: many WebSocket clients on one gateway replica.

    python -m bench.live_fanout --clients 1000        # starts Kafka and the services itself
    python -m bench.live_fanout --clients 1000 --url http://127.0.0.1:8000 \\
        --ingest-key KEY --read-key KEY [--live-url URL] [--gateway-pid PID]

Posts probe events one at a time, while a background load of other events (`--background-rate`, 1,000
events/s by default, as in the issue's figure) flows through the same pipeline and gateway, and reports
the delay from each probe's 202 to its new_event at every client (p50/p90/p99/max), the clients' misses,
and the gateway process's RSS: idle, with the clients connected, and at peak. A one-client round first
is the baseline the N-client delays are compared to.
Clients live in worker processes so the bench's own parsing does not queue behind one core, and each
stamps a probe as its bytes are read (bench/live_clients.py); the background load is a process of its own.
`make bench` calls `bench_figures` with the processes it started.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any

import httpx

from bench.live_clients import EVENT_NAME, WorkerPlan, raise_open_files_limit, run_worker, stop_user
from bench.live_system import background_load, start_system, stop_system
from bench.pipeline import percentile
from bench.procstats import PeakRss, cpu_seconds, listening_pid, rss_mib

LIVE_PATH = "/ws/analytics/live"


@dataclass
class FanoutResult:
    """One round's measurements; delays in seconds, RSS in MiB."""

    clients: int
    connected: int = 0
    probes: int = 0
    delays: list[float] = field(default_factory=list)
    by_probe: dict[int, list[float]] = field(default_factory=dict)  # each probe's delays at every client
    round_trips: list[float] = field(default_factory=list)
    rss_idle: float | None = None
    rss_connected: float | None = None
    rss_peak: float | None = None
    cpu_seconds: float | None = None  # the gateway's, while the probes were posted and delivered
    client_cpu_seconds: float = 0.0  # the client workers', while they listened (they share the host)

    @property
    def missing(self) -> int:
        return self.connected * self.probes - len(self.delays)

    def delay(self, q: float) -> float:
        return percentile(self.delays, q)

    def split(self) -> tuple[list[float], list[float]]:
        """Per probe: its first client's delay (the pipeline to the gateway and one write), and how much
        later its last client got it (the fan-out)."""
        firsts = [min(d) for d in self.by_probe.values()]
        spreads = [max(d) - min(d) for d in self.by_probe.values()]
        return firsts, spreads


async def post_probes(
    ingest_url: str, key: str, run_id: str, probes: int, interval: float
) -> tuple[dict[int, float], list[float]]:
    """POST probes one by one; the time each 202 arrived, and each round trip."""
    answered: dict[int, float] = {}
    round_trips: list[float] = []
    async with httpx.AsyncClient(
        base_url=ingest_url, timeout=30, headers={"Authorization": f"Bearer {key}"}
    ) as client:
        for seq in [*range(probes), -1]:
            user = f"{run_id}-{seq}" if seq >= 0 else stop_user(run_id)
            sent = time.time()
            response = await client.post(
                "/api/v1/events", json={"event": EVENT_NAME, "user_id": user, "properties": {"amount": seq}}
            )
            response.raise_for_status()
            answered[seq] = time.time()
            round_trips.append(answered[seq] - sent)
            await asyncio.sleep(interval)
    return answered, round_trips[:-1]


def measure(
    ingest_url: str,
    live_url: str,
    ingest_key: str,
    read_key: str,
    *,
    clients: int,
    probes: int,
    interval: float,
    workers: int,
    gateway_pid: int | None,
    compression: bool = True,
) -> FanoutResult:
    """One round: connect `clients`, post `probes`, collect every client's arrival times."""
    result = FanoutResult(clients, probes=probes, rss_idle=rss_mib(gateway_pid))
    run_id = f"fanout-{uuid.uuid4().hex[:8]}"
    ws_url = live_url.replace("http://", "ws://", 1) + f"{LIVE_PATH}?token={read_key}"
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    shares = [clients // workers + (1 if i < clients % workers else 0) for i in range(workers)]
    plans = [WorkerPlan(ws_url, n, run_id, compression, probes * interval + 120) for n in shares if n]
    processes = [context.Process(target=run_worker, args=(plan, queue), daemon=True) for plan in plans]
    for process in processes:
        process.start()
    result.connected = sum(receive(queue, "ready", 300, processes)[1] for _ in processes)
    result.rss_connected = rss_mib(gateway_pid)
    sampler = PeakRss({"gateway": gateway_pid})
    sampler.start()
    cpu_before = cpu_seconds(gateway_pid)
    answered, result.round_trips = asyncio.run(post_probes(ingest_url, ingest_key, run_id, probes, interval))
    for _ in processes:
        _, samples, _finished, client_cpu = receive(queue, "samples", 180, processes)
        result.client_cpu_seconds += client_cpu
        for seq, arrived in samples:
            if seq in answered:
                result.delays.append(arrived - answered[seq])
                result.by_probe.setdefault(seq, []).append(arrived - answered[seq])
    sampler.stopping.set()
    result.rss_peak = sampler.peak.get("gateway")
    cpu_after = cpu_seconds(gateway_pid)
    if cpu_before is not None and cpu_after is not None:
        result.cpu_seconds = cpu_after - cpu_before
    for process in processes:
        process.join(30)
    return result


def receive(queue: Any, kind: str, timeout: float, workers: list[Any]) -> tuple[Any, ...]:
    """The next message from a client worker, which must be of `kind`; fails fast if they all died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            message = queue.get(timeout=1)
        except Empty:
            if not any(w.is_alive() for w in workers):
                raise RuntimeError("every client worker exited early; see its traceback above") from None
            continue
        if message[0] != kind:
            raise RuntimeError(f"expected {kind!r} from a client worker, got {message[0]!r}")
        return message
    raise TimeoutError(f"no {kind!r} from the client workers in {timeout:.0f}s")


def describe(baseline: FanoutResult, result: FanoutResult) -> str:
    """The human-readable report of a baseline round and an N-client round."""

    def ms(seconds: float) -> str:
        return f"{seconds * 1000:.0f} ms"

    lines = [
        f"clients connected: {result.connected}/{result.clients}; probes: {result.probes}; "
        f"deliveries: {len(result.delays)} (missing {result.missing})",
        f"delay 202 -> new_event, {result.connected} clients: p50 {ms(result.delay(50))}, "
        f"p90 {ms(result.delay(90))}, p99 {ms(result.delay(99))}, max {ms(result.delay(100))}",
        f"baseline, {baseline.connected} client: p50 {ms(baseline.delay(50))}, p99 {ms(baseline.delay(99))} "
        f"(p99 ratio {result.delay(99) / baseline.delay(99):.1f}x)",
        f"POST round trip p50: {ms(statistics.median(result.round_trips))}",
    ]
    firsts, spreads = result.split()
    if firsts:
        lines.append(
            f"per probe: first client p50 {ms(percentile(firsts, 50))}, p90 {ms(percentile(firsts, 90))}; "
            f"first -> last client p50 {ms(percentile(spreads, 50))}, p90 {ms(percentile(spreads, 90))}"
        )
    if result.rss_idle is not None and result.rss_connected is not None:
        per_client = (result.rss_connected - result.rss_idle) * 1024 / max(1, result.connected)
        lines.append(
            f"gateway RSS: idle {result.rss_idle:.0f} MiB, {result.connected} clients "
            f"{result.rss_connected:.0f} MiB (~{per_client:.0f} KiB/client), peak {result.rss_peak:.0f} MiB"
        )
    if result.cpu_seconds is not None and result.delays:
        per_message = result.cpu_seconds / len(result.delays) * 1e6
        lines.append(
            f"CPU: gateway {result.cpu_seconds:.1f} s (~{per_message:.0f} µs per delivered message), "
            f"client workers {result.client_cpu_seconds:.1f} s while listening, on the same host"
        )
    lines.append(f"load average after the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return "\n".join(lines)


def run_rounds(
    ingest_url: str,
    live_url: str,
    ingest_key: str,
    read_key: str,
    args: argparse.Namespace,
    gateway_pid: int | None,
) -> tuple[FanoutResult, FanoutResult]:
    """The one-client baseline round, then the N-client round, both under the background load."""
    common = {
        "probes": args.probes,
        "interval": args.interval,
        "gateway_pid": gateway_pid,
        "compression": not args.no_compression,
    }
    with background_load(ingest_url, ingest_key, args.background_rate):
        baseline = measure(ingest_url, live_url, ingest_key, read_key, clients=1, workers=1, **common)
        result = measure(
            ingest_url, live_url, ingest_key, read_key, clients=args.clients, workers=args.workers, **common
        )
    result.rss_idle = baseline.rss_idle
    return baseline, result


def bench_figures(
    ingest: Any, live: Any, ingest_key: str, read_key: str, scale: float, runs: int, background_rate: int
) -> list[Any]:
    """The figures for `make bench`: delays with 1,000 clients against one client, and the gateway's RSS."""
    from bench.report import Figure

    args = argparse.Namespace(
        clients=1000,
        probes=max(20, int(50 * scale)),
        interval=0.2,
        workers=min(4, os.cpu_count() or 1),
        no_compression=False,
        background_rate=background_rate,
    )
    rounds = [run_rounds(ingest.url, live.url, ingest_key, read_key, args, live.pid) for _ in range(runs)]
    p99 = [r.delay(99) for _, r in rounds]
    return [
        Figure("live fan-out 202 -> new_event p50 (1,000 clients)", "s", [r.delay(50) for _, r in rounds]),
        Figure(
            "live fan-out 202 -> new_event p99 (1,000 clients)",
            "s",
            p99,
            "<= 1",
            max(p99) <= 1.0,
            note="one-client p99: " + ", ".join(f"{b.delay(99):.3f}" for b, _ in rounds),
        ),
        Figure(
            "live gateway RSS with 1,000 clients",
            "MiB",
            [r.rss_peak or 0.0 for _, r in rounds],
            note=f"idle: {rounds[0][1].rss_idle or 0:.0f} MiB",
        ),
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.live_fanout",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--probes", type=int, default=50, help="events posted, one at a time")
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between probes")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="client processes")
    parser.add_argument(
        "--background-rate", type=int, default=1000, help="other events/s posted meanwhile (batches of 10)"
    )
    parser.add_argument("--no-compression", action="store_true", help="clients refuse permessage-deflate")
    parser.add_argument("--url", help="ingest URL of a running system (default: start one)")
    parser.add_argument("--live-url", help="gateway URL when it is not --url")
    parser.add_argument("--ingest-key", default=os.environ.get("ANALYTICS_INGEST_KEYS", "").split(",")[0])
    parser.add_argument("--read-key", default=os.environ.get("ANALYTICS_READ_KEYS", "").split(",")[0])
    parser.add_argument(
        "--gateway-pid", type=int, help="default: the process listening on the gateway's port"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_open_files_limit()  # the gateway we start inherits it: one descriptor per client
    if args.url:
        live_url = args.live_url or args.url
        pid = args.gateway_pid or listening_pid(live_url)
        baseline, result = run_rounds(args.url, live_url, args.ingest_key, args.read_key, args, pid)
    else:
        keys = {
            "ANALYTICS_INGEST_KEYS": "fanout-ingest-key-0123456789",
            "ANALYTICS_READ_KEYS": "fanout-read-key-0123456789",
        }
        with tempfile.TemporaryDirectory(prefix="live-fanout-") as workdir:
            broker, processes = start_system(Path(workdir), keys)
            try:
                ingest, live = processes["ingest"], processes["live"]
                baseline, result = run_rounds(
                    ingest.url,
                    live.url,
                    keys["ANALYTICS_INGEST_KEYS"],
                    keys["ANALYTICS_READ_KEYS"],
                    args,
                    live.pid,
                )
            finally:
                stop_system(broker, processes)
    print(describe(baseline, result))
    return 0 if result.connected == args.clients and result.delays else 1


if __name__ == "__main__":
    sys.exit(main())
