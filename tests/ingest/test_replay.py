"""Dead letters can be exported, fixed and replayed with the documented command."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid

import httpx
import orjson

from shared.contracts.topics import Topics
from tests.pipeline import DAY, produce_raw, read_topic, stats, wait_for_count
from tests.support import INGEST_KEY, REPO, Environment, ServiceProcess, auth


def replay(environment: Environment, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **environment.env()}
    return subprocess.run(
        [sys.executable, "-m", "services.ingest.replay", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_export_fix_and_import_dead_letters(
    system: ServiceProcess, environment: Environment, tmp_path
) -> None:
    batch = {
        "events": [
            {"event": "kept", "user_id": "u1", "timestamp": f"{DAY}T00:00:00Z"},
            {"event": "fixable", "timestamp": f"{DAY}T01:00:00Z"},  # no identity
        ]
    }
    assert httpx.post(f"{system.url}/api/v1/events", json=batch, headers=auth(INGEST_KEY)).status_code == 202
    broken = {
        "event_id": str(uuid.uuid4()),
        "event": "from_topic",
        "timestamp": f"{DAY}T02:00:00Z",
        "received_at": f"{DAY}T02:00:00Z",
        "properties": {},
    }  # user_id missing
    asyncio.run(produce_raw(environment.kafka, Topics(environment.prefix).events, [orjson.dumps(broken)]))
    wait_for_count(system.url, 1)
    dump = tmp_path / "dead.jsonl"
    assert len(read_topic(environment.kafka, f"{environment.prefix}.events.dlq", expected=2)) == 2

    exported = replay(environment, "export", str(dump))
    assert exported.returncode == 0, exported.stderr
    records = [orjson.loads(line) for line in dump.read_bytes().splitlines()]
    assert sorted(r["stage"] for r in records) == ["ingest", "stream"]

    unfixed = replay(environment, "import", str(dump))
    assert unfixed.returncode == 1 and "still invalid" in unfixed.stderr

    for record in records:
        record["payload"]["user_id"] = "fixed-user"
    dump.write_bytes(b"\n".join(orjson.dumps(r) for r in records))
    imported = replay(environment, "import", str(dump))
    assert imported.returncode == 0, imported.stderr
    assert "published 2 events" in imported.stdout
    replay(environment, "import", str(dump))  # importing twice must not double-count the topic message

    wait_for_count(system.url, 3)
    time.sleep(1.5)
    result = stats(system.url)
    assert {e["event"]: e["count"] for e in result["by_event"]} == {"kept": 1, "fixable": 1, "from_topic": 1}
