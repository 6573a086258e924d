"""Basic stats: events, unique users and a per-event breakdown over a date range (each event_id once)."""

from __future__ import annotations

from pydantic import BaseModel

from shared.clickhouse import ClickHouse
from shared.contracts.dates import DateRange
from shared.contracts.storage import EVENTS_TABLE, FINAL_SETTINGS, PERSON, RANGE_FILTER


class EventCount(BaseModel):
    event: str
    count: int
    unique_users: int


class StatsResponse(BaseModel):
    events: int
    unique_users: int
    by_event: list[EventCount]


# One statement, so the totals and the breakdown come from the same snapshot of the table: two
# queries run side by side could straddle an insert and disagree (events 3, by_event empty).
STATS_SQL = f"""
SELECT sum(events), uniqExactMerge(users), groupArray((event, events, finalizeAggregation(users)))
FROM (
    SELECT event, count() AS events, uniqExactState({PERSON}) AS users
    FROM {EVENTS_TABLE} FINAL
    WHERE {RANGE_FILTER}
    GROUP BY event
)
"""


async def basic_stats(clickhouse: ClickHouse, period: DateRange, timeout: float) -> StatsResponse:
    rows = await clickhouse.query(STATS_SQL, period.parameters(), settings=FINAL_SETTINGS, timeout=timeout)
    events, users, breakdown = rows[0] if rows else (0, 0, [])
    ordered = sorted(breakdown, key=lambda row: (-int(row[1]), row[0]))
    return StatsResponse(
        events=int(events or 0),
        unique_users=int(users or 0),
        by_event=[EventCount(event=e, count=int(c), unique_users=int(u)) for e, c, u in ordered],
    )
