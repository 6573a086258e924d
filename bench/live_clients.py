"""A worker process holding many WebSocket clients of the live gateway (see bench/live_fanout.py).

Each client subscribes to the bench's event name, then notes the arrival time (`time.time()`, shared
by every process on the host) of each probe's new_event, until the stop probe arrives.

The clients are websockets' Sans-I/O protocol driven from `asyncio.Protocol.data_received` on uvloop:
the arrival time is taken as the bytes are read from the socket, before any parsing, and a message costs
a frame parse and one `orjson.loads`, with no task, future or `wait_for` per message. With the asyncio
client (one `recv()` per message under `wait_for`) the last of a worker's 250 clients stamped a probe only
after the worker had resumed the 249 before it, so the bench measured its own queue as well as the
gateway, and the workers took CPU from the gateway on the same cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import time
from dataclasses import dataclass
from multiprocessing.queues import Queue
from typing import Any, cast

import orjson
import uvloop
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

EVENT_NAME = "bench_fanout"
CONNECT_CONCURRENCY = 50
# Probes of different users travel on different partitions, so after a stall in the pipeline the stop
# probe can overtake the last few: listen a little longer before taking a probe as missing.
STOP_GRACE_SECONDS = 2.0
SUBSCRIBE = orjson.dumps({"type": "subscribe", "events": [EVENT_NAME]})


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
    """Process entry point: connect, report ("ready", n), listen, report ("samples", [(seq, t)], n, cpu s),
    cpu s being this worker's CPU while it listened (not its start-up and handshakes)."""
    raise_open_files_limit()
    uvloop.run(hold_clients(plan, queue))  # uvicorn's loop too: less of the shared CPU per message


class ProbeClient(asyncio.Protocol):
    """One subscribed dashboard: (probe number, arrival time) of each probe until the stop probe."""

    def __init__(self, plan: WorkerPlan) -> None:
        loop = asyncio.get_running_loop()
        extensions = [ClientPerMessageDeflateFactory()] if plan.compression else None
        self.protocol = ClientProtocol(parse_uri(plan.ws_url), extensions=extensions, max_size=2**22)
        self.prefix, self.stop = f"{plan.run_id}-", stop_user(plan.run_id)
        self.subscribed: asyncio.Future[None] = loop.create_future()
        self.finished: asyncio.Future[None] = loop.create_future()
        self.samples: list[tuple[int, float]] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not an asyncio.Transport subclass
        self.protocol.send_request(self.protocol.connect())
        self.flush()

    def data_received(self, data: bytes) -> None:
        arrived = time.time()  # before parsing: the gateway's delay, not this worker's
        self.protocol.receive_data(data)
        for event in self.protocol.events_received():
            if isinstance(event, Response):
                if event.status_code != 101:
                    self.fail(ConnectionError(f"handshake answered {event.status_code}"))
                else:
                    self.protocol.send_text(SUBSCRIBE)
            elif isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                self.on_text(event.data, arrived)
        self.flush()

    def on_text(self, data: bytes, arrived: float) -> None:
        message = orjson.loads(data)
        kind = message.get("type")
        if kind == "subscribed" and not self.subscribed.done():
            self.subscribed.set_result(None)
        user = message.get("user_id", "")
        if kind != "new_event" or not user.startswith(self.prefix) or self.finished.done():
            return
        if user == self.stop:
            asyncio.get_running_loop().call_later(STOP_GRACE_SECONDS, self.finish)
        else:
            self.samples.append((int(user.removeprefix(self.prefix)), arrived))

    def finish(self) -> None:
        if not self.finished.done():
            self.finished.set_result(None)

    def flush(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.writelines(self.protocol.data_to_send())

    def fail(self, exc: BaseException) -> None:
        for future in (self.subscribed, self.finished):
            if not future.done():
                future.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(exc or ConnectionError("connection closed"))

    def close(self) -> None:
        if self.transport is not None:
            with contextlib.suppress(Exception):
                self.protocol.send_close()
                self.flush()
            self.transport.close()


async def open_client(plan: WorkerPlan, gate: asyncio.Semaphore) -> ProbeClient | None:
    """A subscribed client, or None when the gateway refused or did not answer."""
    uri = parse_uri(plan.ws_url)
    loop = asyncio.get_running_loop()
    async with gate:
        try:
            _, client = await asyncio.wait_for(
                loop.create_connection(lambda: ProbeClient(plan), uri.host, uri.port), 30
            )
            await asyncio.wait_for(asyncio.shield(client.subscribed), 30)
            return client
        except Exception:  # noqa: BLE001 - counted as not connected
            return None


async def hold_clients(plan: WorkerPlan, queue: Queue[Any]) -> None:
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    opened = await asyncio.gather(*(open_client(plan, gate) for _ in range(plan.clients)))
    clients = [c for c in opened if c is not None]
    queue.put(("ready", len(clients)))
    listening_from = time.process_time()
    if clients:
        await asyncio.wait([c.finished for c in clients], timeout=plan.timeout)
    samples = [sample for c in clients for sample in c.samples]
    finished = sum(1 for c in clients if c.finished.done() and c.finished.exception() is None)
    queue.put(("samples", samples, finished, time.process_time() - listening_from))
    for client in clients:
        client.close()
