"""Helpers for the live gateway tests: a WebSocket client that keeps what it saw, and async posting."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer
from websockets.asyncio.client import ClientConnection, connect

from services.live.routes import LIVE_PATH
from shared.contracts.live import Presence, read_live_message
from shared.contracts.topics import Topics
from tests.support import INGEST_KEY, READ_KEY, Environment, auth

Message = dict[str, Any]


def live_url(http_url: str, token: str | None = READ_KEY) -> str:
    base = http_url.replace("http://", "ws://", 1) + LIVE_PATH
    return f"{base}?token={token}" if token else base


def fresh_user() -> str:
    return f"user-{uuid.uuid4().hex[:10]}"


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


async def open_live(http_url: str, token: str | None = READ_KEY, **kwargs: Any) -> LiveClient:
    """Connect to the gateway (no proxy, whatever the environment says)."""
    connection = await connect(live_url(http_url, token), proxy=None, open_timeout=10, **kwargs)
    return LiveClient(connection)


async def open_stalled(http_url: str) -> LiveClient:
    """A client that will not read: tiny kernel buffer and a one-frame library queue."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    host, port = http_url.removeprefix("http://").split(":")
    sock.connect((host, int(port)))
    sock.setblocking(False)
    connection = await connect(
        live_url(http_url), proxy=None, sock=sock, max_queue=1, ping_interval=None, compression=None
    )
    return LiveClient(connection)


class LiveClient:
    """A connection plus every message it received, so tests can wait for one and look at the rest."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.seen: list[Message] = []

    async def send(self, message: Any) -> None:
        raw = message if isinstance(message, str | bytes) else orjson.dumps(message).decode()
        await self.connection.send(raw)

    async def wait_for(self, match: Callable[[Message], bool], timeout: float = 30.0) -> Message:
        """The next message that matches, keeping the others in `seen`; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                raw = await asyncio.wait_for(self.connection.recv(), left)
            except TimeoutError:
                break
            message = orjson.loads(raw)
            self.seen.append(message)
            if match(message):
                return message
        raise AssertionError(f"no matching message in {timeout}s; saw {self.seen[-10:]}")

    async def seen_or_wait(self, match: Callable[[Message], bool], timeout: float = 30.0) -> Message:
        """A matching message already received, or the next one."""
        found = next((m for m in self.seen if match(m)), None)
        return found if found is not None else await self.wait_for(match, timeout)

    async def drain(self, seconds: float) -> list[Message]:
        """Everything that arrives within `seconds`."""
        got: list[Message] = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                raw = await asyncio.wait_for(self.connection.recv(), left)
            except TimeoutError:
                break
            got.append(orjson.loads(raw))
            self.seen.append(got[-1])
        return got

    def of_type(self, kind: str) -> list[Message]:
        return [m for m in self.seen if m.get("type") == kind]

    async def close(self) -> None:
        await self.connection.close()


def is_type(kind: str, **fields: Any) -> Callable[[Message], bool]:
    return lambda m: m.get("type") == kind and all(m.get(k) == v for k, v in fields.items())


async def post_events(url: str, events: list[dict[str, Any]]) -> None:
    """POST a batch and require 202 for all of it."""
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            f"{url}/api/v1/events", json={"events": events}, headers=auth(INGEST_KEY)
        )
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == len(events), response.text


def event(name: str, user: str, timestamp: str | None = None, **properties: Any) -> dict[str, Any]:
    return {"event": name, "user_id": user, "timestamp": timestamp or now_iso(), "properties": properties}


async def both_replicas_own_partitions(environment: Environment, timeout: float = 90) -> None:
    """Wait until two stream replicas report disjoint partition sets covering the events topic."""
    consumer = AIOKafkaConsumer(
        Topics(environment.prefix).live,
        bootstrap_servers=environment.kafka,
        group_id=None,
        auto_offset_reset="latest",
    )
    await consumer.start()
    owners: dict[str, set[int]] = {}
    try:
        deadline = time.monotonic() + timeout
        while not split_between_two(owners):
            assert time.monotonic() < deadline, f"replicas never split the partitions: {owners}"
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    message = read_live_message(record.value)
                    if isinstance(message, Presence):
                        owners[message.replica] = set(message.partitions)
    finally:
        await consumer.stop()


def split_between_two(owners: dict[str, set[int]]) -> bool:
    owned = [p for p in owners.values() if p]
    return len(owned) == 2 and not owned[0] & owned[1] and owned[0] | owned[1] == {0, 1, 2, 3}
