"""Every 202 is kept, each once: under steady load the stream processor is SIGKILLed three times at
random moments, the broker is SIGKILLed and restarted once, and every service gets a SIGTERM once.
Then the event_ids in ClickHouse are compared with the acknowledged ones."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
import uuid

import httpx

from tests.pipeline import DAY, stats, wait_for_count
from tests.support import INGEST_KEY, REPO, Environment, ServiceProcess, auth, start_local_broker

BATCH = 100


class SteadyLoad(threading.Thread):
    """Posts batches with explicit event_ids and, like a real client, retries a batch until it gets 202."""

    def __init__(self, url: str, rate_batches_per_second: float = 4.0) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.interval = 1.0 / rate_batches_per_second
        self.acknowledged: set[str] = set()
        self.refusals = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        with httpx.Client(headers=auth(INGEST_KEY), timeout=10) as client:
            while not self.stopping.is_set():
                batch = [
                    {
                        "event": "tick",
                        "user_id": f"u{random.randrange(500)}",
                        "timestamp": f"{DAY}T12:00:00Z",
                        "event_id": str(uuid.uuid4()),
                    }
                    for _ in range(BATCH)
                ]
                self.deliver(client, batch)
                time.sleep(self.interval)

    def deliver(self, client: httpx.Client, batch: list[dict[str, str]]) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                response = client.post(f"{self.url}/api/v1/events", json={"events": batch})
                if response.status_code == 202:
                    self.acknowledged.update(response.json()["event_ids"])
                    return
            except httpx.HTTPError:
                pass
            self.refusals += 1
            time.sleep(0.5)
        raise AssertionError("a batch was never acknowledged")


def stored_event_ids(environment: Environment) -> list[str]:
    """Read event_ids from the (stopped) processor's chDB directory in a separate process."""
    script = (
        "import json, sys, clickhouse_connect\n"
        f"c = clickhouse_connect.get_client(dsn='chdb://{environment.workdir / 'data' / 'clickhouse'}',"
        f" database='{environment.database}')\n"
        "rows = c.query('SELECT toString(event_id) FROM analytics_events FINAL').result_rows\n"
        "json.dump([r[0] for r in rows], sys.stdout)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_every_acknowledged_event_is_stored_exactly_once_through_crashes(
    environment: Environment, services: list[ServiceProcess], tmp_path
) -> None:
    broker = start_local_broker(tmp_path / "broker")
    environment.kafka = broker.bootstrap_servers
    ingest = environment.service("ingest", INGEST_ACK_TIMEOUT_SECONDS=3)
    processor = environment.service("stream,query,etl", ETL_SCHEDULE_ENABLED="false")
    live = environment.service("live")
    services.extend([ingest, processor, live])
    try:
        for process in (ingest, processor, live):
            process.start()
        load = SteadyLoad(ingest.url)
        load.start()
        rng = random.Random(7)
        for _ in range(3):
            time.sleep(rng.uniform(1.0, 4.0))
            processor.kill()
            processor.start()
        time.sleep(rng.uniform(1.0, 3.0))
        broker.kill()
        time.sleep(1.0)
        broker.start()
        for process in (ingest, processor, live):
            time.sleep(1.0)
            process.terminate()
            process.start()
        time.sleep(2.0)
        load.stopping.set()
        load.join(timeout=180)
        acknowledged = load.acknowledged
        assert len(acknowledged) >= 10 * BATCH

        wait_for_count(processor.url, len(acknowledged), timeout=180)
        time.sleep(2.0)
        assert stats(processor.url)["events"] == len(acknowledged)
        processor.terminate()
        stored = stored_event_ids(environment)
        assert len(stored) == len(set(stored)), "an event_id is stored twice"
        assert set(stored) == acknowledged
        print(f"{len(acknowledged)} acknowledged, {load.refusals} refused attempts retried, all stored once")
    finally:
        broker.stop()
