"""A worker process holding many WebSocket clients of the live gateway (see bench/live_fanout.py).

Each client subscribes to the bench's event name, then notes the arrival time (`time.time()`, shared
by every process on the host) of each probe's new_event, until the stop probe arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import time
from dataclasses import dataclass
from multiprocessing.queues import Queue
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

EVENT_NAME = "bench_fanout"
CONNECT_CONCURRENCY = 50


@dataclass(frozen=True)
class WorkerPlan:
    ws_url: str
    clients: int
    run_id: str
    compression: bool
    timeout: float


def stop_user(run_id: str) -> str:
    return f"{run_id}-stop"


def raise_open_files_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run_worker(plan: WorkerPlan, queue: Queue[Any]) -> None:
    """Process entry point: connect, report ("ready", n), listen, report ("samples", [(seq, t)], n, cpu s)."""
    raise_open_files_limit()
    asyncio.run(hold_clients(plan, queue))


async def hold_clients(plan: WorkerPlan, queue: Queue[Any]) -> None:
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    opened = await asyncio.gather(*(open_client(plan, gate) for _ in range(plan.clients)))
    sockets = [s for s in opened if s is not None]
    queue.put(("ready", len(sockets)))
    results = await asyncio.gather(*(listen(s, plan) for s in sockets), return_exceptions=True)
    samples = [sample for r in results if isinstance(r, list) for sample in r]
    finished = sum(1 for r in results if isinstance(r, list))
    queue.put(("samples", samples, finished, time.process_time()))
    await asyncio.gather(*(s.close() for s in sockets), return_exceptions=True)


async def open_client(plan: WorkerPlan, gate: asyncio.Semaphore) -> ClientConnection | None:
    """A subscribed client, or None when the gateway refused or did not answer."""
    async with gate:
        try:
            socket = await connect(
                plan.ws_url,
                proxy=None,
                open_timeout=30,
                max_size=2**22,
                compression="deflate" if plan.compression else None,
            )
            await socket.send(orjson.dumps({"type": "subscribe", "events": [EVENT_NAME]}).decode())
            while orjson.loads(await asyncio.wait_for(socket.recv(), 30)).get("type") != "subscribed":
                pass
            return socket
        except (OSError, TimeoutError, Exception):  # noqa: BLE001 - counted as not connected
            return None


async def listen(socket: ClientConnection, plan: WorkerPlan) -> list[tuple[int, float]]:
    """(probe number, arrival time) of every probe this client received, until the stop probe."""
    samples: list[tuple[int, float]] = []
    prefix, stop = f"{plan.run_id}-", stop_user(plan.run_id)
    deadline = time.monotonic() + plan.timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            raw = await asyncio.wait_for(socket.recv(), left)
        except TimeoutError:
            break
        arrived = time.time()
        message = orjson.loads(raw)
        user = message.get("user_id", "")
        if message.get("type") != "new_event" or not user.startswith(prefix):
            continue
        if user == stop:
            break
        samples.append((int(user.removeprefix(prefix)), arrived))
    return samples
