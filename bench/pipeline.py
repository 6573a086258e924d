"""Sustained HTTP -> ClickHouse throughput, and freshness (POST -> /stats, POST -> WebSocket)."""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

from deploy.processes import ServiceProcess

PROBE_DAY = date(2031, 1, 1)
# The sustained run keeps ingest ahead of the processor without flooding it: 32 wrk connections, each
# pausing 30 ms after every answer. On the 2-core machine ingest then accepts ~35,000 events/s (the
# answer time adds to the pause) and the processor loads ~22,000/s, so its rate is what is measured and
# each run leaves well under a million events to drain. Unpaused, ingest accepted ~60,000/s on one core,
# took that core from the processor, and each run left ~100 s of draining.
SUSTAINED_CONNECTIONS = 32
SUSTAINED_PAUSE_MS = 30


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile q of `values`; NaN when there are none."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def loaded_count(processor: ServiceProcess, key: str, day: str = "2023-03-01") -> int:
    response = httpx.get(
        f"{processor.url}/api/v1/analytics/stats",
        params={"start_date": day, "end_date": day},
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )
    response.raise_for_status()
    return int(response.json()["events"])


def sustained(
    ingest: ServiceProcess,
    processor: ServiceProcess,
    read_key: str,
    wrk_script: Path,
    seconds: int,
    batch: int,
) -> dict[str, Any]:
    """Drive batches into ingest with wrk for `seconds`; events/s that became queryable in that time."""
    before = loaded_count(processor, read_key)
    started = time.monotonic()
    wrk = subprocess.Popen(
        ["wrk", "-t1", f"-c{SUSTAINED_CONNECTIONS}", f"-d{seconds}s", "-s", str(wrk_script), ingest.url],
        stdout=subprocess.PIPE,
        text=True,
    )
    out, _ = wrk.communicate(timeout=seconds + 120)
    at_end = loaded_count(processor, read_key)
    elapsed = time.monotonic() - started
    accepted = int(out.split(" requests in")[0].split()[-1]) * batch
    # Wait for the backlog, to report how far loading lagged behind ingest.
    deadline = time.monotonic() + 120
    final = at_end
    while final - before < accepted and time.monotonic() < deadline:
        time.sleep(1)
        final = loaded_count(processor, read_key)
    return {
        "loaded_events_per_s": (at_end - before) / elapsed,
        "accepted_events_per_s": accepted / elapsed,
        "backlog_drained_s": round(time.monotonic() - started - elapsed, 1),
        "all_loaded": final - before >= accepted,
    }


async def steady_batches(url: str, key: str, events_per_second: int, seconds: float, batch: int = 100) -> int:
    """Post batches at a fixed rate (a background load for the freshness probes)."""
    interval = batch / events_per_second
    body = orjson.dumps(
        {
            "events": [
                {"event": "load", "user_id": f"u{i}", "timestamp": "2023-03-01T10:00:00Z"}
                for i in range(batch)
            ]
        }
    )
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    sent = 0
    async with httpx.AsyncClient(timeout=30) as client:
        deadline = time.monotonic() + seconds
        pending: set[asyncio.Task[Any]] = set()
        next_at = time.monotonic()
        while time.monotonic() < deadline:
            pending.add(
                asyncio.create_task(client.post(f"{url}/api/v1/events", content=body, headers=headers))
            )
            pending = {t for t in pending if not t.done()}
            sent += batch
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        await asyncio.gather(*pending, return_exceptions=True)
    return sent


async def stats_freshness(
    ingest: ServiceProcess,
    processor: ServiceProcess,
    ingest_key: str,
    read_key: str,
    probes: int,
    first_day: int = 0,
    give_up_s: float = 60.0,
) -> list[float]:
    """Seconds from a probe's 202 until /stats counts it (each probe on its own far-future day, from
    PROBE_DAY + first_day: a later round must not reuse a day). A probe not visible after `give_up_s`
    counts as that long."""
    delays = []
    async with httpx.AsyncClient(timeout=30) as client:
        for n in range(first_day, first_day + probes):
            day = (PROBE_DAY + timedelta(days=n)).isoformat()
            probe = {"event": "probe", "user_id": f"probe-{uuid.uuid4()}", "timestamp": f"{day}T00:00:00Z"}
            response = await client.post(
                f"{ingest.url}/api/v1/events", json=probe, headers={"Authorization": f"Bearer {ingest_key}"}
            )
            acked = time.perf_counter()
            assert response.status_code == 202, response.text
            while True:
                stats = await client.get(
                    f"{processor.url}/api/v1/analytics/stats",
                    params={"start_date": day, "end_date": day},
                    headers={"Authorization": f"Bearer {read_key}"},
                )
                if stats.json().get("events") == 1 or time.perf_counter() - acked > give_up_s:
                    delays.append(time.perf_counter() - acked)
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.1)
    return delays


async def websocket_freshness(
    ingest: ServiceProcess, live: ServiceProcess, ingest_key: str, read_key: str, probes: int
) -> list[float]:
    """Seconds from a probe's 202 until its new_event arrives on a WebSocket subscribed to probes."""
    import websockets

    delays = []
    ws_url = live.url.replace("http://", "ws://") + f"/ws/analytics/live?token={read_key}"
    async with websockets.connect(ws_url, max_size=2**22) as socket, httpx.AsyncClient(timeout=30) as client:
        await socket.send(orjson.dumps({"type": "subscribe", "events": ["probe"]}).decode())
        await asyncio.sleep(0.5)
        for _ in range(probes):
            user = f"probe-{uuid.uuid4()}"
            sent = time.perf_counter()
            response = await client.post(
                f"{ingest.url}/api/v1/events",
                json={"event": "probe", "user_id": user},
                headers={"Authorization": f"Bearer {ingest_key}"},
            )
            assert response.status_code == 202
            try:
                while True:
                    message = orjson.loads(await asyncio.wait_for(socket.recv(), timeout=10))
                    if message.get("type") == "new_event" and message.get("user_id") == user:
                        break
            except TimeoutError:
                pass  # counted as the time waited: a lost probe shows in the p99
            delays.append(time.perf_counter() - sent)
            await asyncio.sleep(0.05)
    return delays


def summary(delays: list[float]) -> dict[str, float]:
    return {
        "p50_s": round(statistics.median(delays), 3),
        "p99_s": round(percentile(delays, 99), 3),
        "samples": len(delays),
    }
