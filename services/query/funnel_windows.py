"""Calendar arithmetic of funnels, in UTC: where a chain's window ends and which period holds a moment.

Kept apart and small so the query's time zone (issue 15) is threaded through these functions alone: a
month window and a trends period are calendar notions, so they depend on the zone; a fixed-length
window does not.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Protocol

EPOCH_DAY = date(1970, 1, 1)


class Windowed(Protocol):
    @property
    def window_months(self) -> int | None: ...


def window_end_sql(request: Windowed, start: str) -> str:
    """SQL (UInt64 ms): the last moment a chain whose step-1 event is at `start` (UInt64 ms) may reach,
    `{window:UInt64}` ms later, or `{window_months:UInt32}` calendar months later (the same day and
    time; the month's last day when it is shorter, as addMonths does)."""
    if request.window_months is None:
        return f"({start} + {{window:UInt64}})"
    moment = f"fromUnixTimestamp64Milli(toInt64({start}), 'UTC')"
    return f"toUInt64(toUnixTimestamp64Milli(addMonths({moment}, {{window_months:UInt32}})))"


PERIOD_INDEX = {
    # days since 1970-01-01; weeks (Monday first) since the week of 1969-12-29; months since 1970-01
    "day": "intDiv({ms}, 86400000)",
    "week": "intDiv(intDiv({ms}, 86400000) + 3, 7)",
    "month": "(toYear(fromUnixTimestamp64Milli(toInt64({ms}), 'UTC')) * 12"
    " + toMonth(fromUnixTimestamp64Milli(toInt64({ms}), 'UTC')) - 1 - 23640)",
}


def period_index_sql(interval: str, ms: str) -> str:
    """SQL: the index of the period (`day`, `week` or `month`) holding the time `ms` (UInt64 ms)."""
    return PERIOD_INDEX[interval].format(ms=ms)


def period_start(interval: str, index: int) -> date:
    """The first day of the period with this index (see PERIOD_INDEX)."""
    if interval == "day":
        return EPOCH_DAY + timedelta(days=index)
    if interval == "week":
        return date(1969, 12, 29) + timedelta(weeks=index)
    return date(1970 + index // 12, index % 12 + 1, 1)


def period_index(interval: str, day: date) -> int:
    """The index of the period holding `day`."""
    days = (day - EPOCH_DAY).days
    if interval == "day":
        return days
    if interval == "week":
        return (days + 3) // 7
    return (day.year - 1970) * 12 + day.month - 1
