"""The documented production split (docker-compose.yml), run as processes on one machine: ingest alone,
stream + query + etl together (they share the embedded ClickHouse), the live gateway alone, each on its
own port. The overview's live count must work in this shape too: the etl process reads it from the
live topic, not from another component's memory."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import httpx

from tests.pipeline import wait_for_count
from tests.support import INGEST_KEY, READ_KEY, Environment, ServiceProcess, auth


def test_the_overview_counts_active_users_when_etl_and_live_run_apart(
    environment: Environment, services: list[ServiceProcess]
) -> None:
    core = environment.service("stream,query,etl", ETL_SCHEDULE_ENABLED="false")
    ingest = environment.service("ingest")
    live = environment.service("live")
    for process in (core, ingest, live):
        services.append(process)
        process.start()
    user = f"split-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC).isoformat()
    answer = httpx.post(
        f"{ingest.url}/api/v1/events",
        json={"event": "page_view", "user_id": user, "timestamp": now},
        headers=auth(INGEST_KEY),
        timeout=30,
    )
    assert answer.status_code == 202, answer.text

    deadline = time.monotonic() + 60
    overview: dict[str, object] = {}
    while time.monotonic() < deadline and overview.get("active_users_now") != 1:
        time.sleep(0.5)
        response = httpx.get(f"{core.url}/api/v1/analytics/overview", headers=auth(READ_KEY), timeout=30)
        assert response.status_code == 200, response.text
        overview = response.json()
    assert overview.get("active_users_now") == 1, overview
    today = now[:10]
    assert wait_for_count(core.url, 1, start=today, end=today)["unique_users"] == 1  # and ClickHouse has it
    # The gateway, apart, follows the same live topic.
    ready = httpx.get(f"{live.url}/readyz", timeout=10).json()
    assert ready["checks"] == {"live": True}
