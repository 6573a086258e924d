"""Basic stats: events, unique users and a per-event breakdown over a date range (each event_id once)."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel

from services.query.dates import FINAL_SETTINGS, RANGE_FILTER, DateRange
from shared.clickhouse import ClickHouse
from shared.constants import EVENTS_TABLE


class EventCount(BaseModel):
    event: str
    count: int
    unique_users: int


class StatsResponse(BaseModel):
    events: int
    unique_users: int
    by_event: list[EventCount]


TOTALS_SQL = f"SELECT count(), uniqExact(user_id) FROM {EVENTS_TABLE} FINAL WHERE {RANGE_FILTER}"
BY_EVENT_SQL = f"""
SELECT event, count() AS events, uniqExact(user_id) AS users
FROM {EVENTS_TABLE} FINAL
WHERE {RANGE_FILTER}
GROUP BY event
ORDER BY events DESC, event ASC
"""


async def basic_stats(clickhouse: ClickHouse, period: DateRange, timeout: float) -> StatsResponse:
    params = period.parameters()
    totals, by_event = await asyncio.gather(
        clickhouse.query(TOTALS_SQL, params, settings=FINAL_SETTINGS, timeout=timeout),
        clickhouse.query(BY_EVENT_SQL, params, settings=FINAL_SETTINGS, timeout=timeout),
    )
    events, users = totals[0] if totals else (0, 0)
    return StatsResponse(
        events=int(events),
        unique_users=int(users),
        by_event=[EventCount(event=e, count=int(c), unique_users=int(u)) for e, c, u in by_event],
    )
