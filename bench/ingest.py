"""Ingest throughput with wrk (C load generator, 64 connections) and the raw-producer baseline."""

from __future__ import annotations

import asyncio
import re
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaProducer

from shared.contracts.events import StoredEvent
from shared.kafka import LINGER_MS

PROPERTIES = (
    '{"path":"/pricing","referrer":"https://www.example.com/blog/how-we-do-analytics",'
    '"plan":"pro","amount":12.5,"browser":"Firefox 131","os":"Linux","country":"DE",'
    '"utm_source":"newsletter","utm_campaign":"autumn-launch","screen":"1920x1080"}'
)

SINGLE_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer KEY"
counter = 0
request = function()
  counter = counter + 1
  local body = '{"event":"page_view","user_id":"u' .. (counter % 50000) ..
    '","timestamp":"2023-03-01T10:00:00Z","properties":PROPS}'
  return wrk.format(nil, "/api/v1/events", nil, body)
end
"""

BATCH_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer KEY"
counter = 0
request = function()
  local parts = {}
  for i = 1, SIZE do
    counter = counter + 1
    parts[i] = '{"event":"page_view","user_id":"u' .. (counter % 50000) ..
      '","timestamp":"2023-03-01T10:00:00Z","properties":PROPS}'
  end
  return wrk.format(nil, "/api/v1/events", nil, '{"events":[' .. table.concat(parts, ",") .. ']}')
end
"""


@dataclass
class WrkResult:
    requests_per_second: float
    non_2xx: int
    p50_ms: float
    p99_ms: float
    requests: int


def lua_script(template: str, key: str, batch: int = 1, pause_ms: int | None = None) -> Path:
    """The wrk script with its key, properties and batch size; with `pause_ms`, each connection waits
    that long after every answer before its next request, which caps the offered load."""
    text = (
        template.replace("KEY", key)
        .replace("PROPS", PROPERTIES.replace("'", "\\'"))
        .replace("SIZE", str(batch))
    )
    if pause_ms is not None:
        text += f"delay = function() return {pause_ms} end\n"
    path = Path(tempfile.mkdtemp(prefix="bench-wrk-")) / f"batch{batch}.lua"
    path.write_text(text)
    return path


def parse_duration_ms(text: str) -> float:
    match = re.match(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"wrk printed a latency this script does not understand: {text!r}")
    value, unit = match.groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def run_wrk(url: str, script: Path, seconds: int, connections: int = 64, threads: int = 1) -> WrkResult:
    """One wrk run; wrk prints requests/s, latency percentiles and the count of non-2xx answers."""
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"^\s*50%\s+(\S+)", out, re.MULTILINE).group(1)  # type: ignore[union-attr]
    p99 = re.search(r"^\s*99%\s+(\S+)", out, re.MULTILINE).group(1)  # type: ignore[union-attr]
    return WrkResult(
        rps, int(non_2xx.group(1)) if non_2xx else 0, parse_duration_ms(p50), parse_duration_ms(p99), requests
    )


def serialized_events(count: int) -> list[tuple[bytes, bytes]]:
    """The same messages ingest would produce (key, value), serialized up front."""
    now = datetime.now(UTC)
    import orjson

    properties = orjson.loads(PROPERTIES)
    events = []
    for i in range(count):
        event = StoredEvent(
            event_id=uuid.uuid4(),
            event="page_view",
            user_id=f"u{i % 50000}",
            timestamp=now,
            received_at=now,
            properties=properties,
        )
        events.append((event.key, event.to_message()))
    return events


async def raw_producer_rate(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> float:
    """Events/s of a bare aiokafka producer (acks=all, idempotent) sending pre-serialized events."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=LINGER_MS,  # as ingest's DurableProducer
        max_batch_size=512 * 1024,
    )
    await producer.start()
    try:
        started = time.perf_counter()
        for chunk in range(0, len(messages), 10_000):
            futures = [
                await producer.send(topic, value, key=key) for key, value in messages[chunk : chunk + 10_000]
            ]
            await asyncio.gather(*futures)
        return len(messages) / (time.perf_counter() - started)
    finally:
        await producer.stop()
