"""Trends: hand-built cases pinning each math, interval, DST day, breakdown with other, compare and
formula, then the service against tests/reference.py on random events, zones and maths. Rows go
straight into ClickHouse; the runner is called directly (and the endpoint for its 422s)."""

from __future__ import annotations

from typing import Any

from services.query.trends import TrendsRequest, run_trends
from shared.clickhouse import ClickHouse
from tests import reference
from tests.reference import Event, ev, load


async def ask(clickhouse: ClickHouse, events: list[Event], **body: Any) -> dict[str, Any]:
    """The service's answer, checked against the reference before it is returned."""
    request = {"start_date": "2023-03-01", "end_date": "2023-03-03", **body}
    answer = (await run_trends(clickhouse, TrendsRequest(**request).checked(366), timeout=30)).model_dump()
    assert answer == reference.trends(events, request)
    return answer
