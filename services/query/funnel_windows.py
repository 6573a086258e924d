"""Calendar arithmetic of funnels in the request's time zone: which rows are in the range, where a
chain's window ends and which period holds a moment.

A fixed-length window does not depend on the zone; a month window and a trends period are calendar
notions, so they do. All zone arithmetic is Python's (services/query/timezones.py: the zone cut into
pieces of constant UTC offset); the SQL only adds or subtracts a piece's offset:

* local time of an instant: plus the offset in force at it (`local_ms_sql`);
* the instant of a local time (a month window's end, the same local date and clock time `n` months
  later, the month's last day when it is shorter, as addMonths does): minus the offset of the first
  piece whose local times reach past it, a piece's local end taken as its UTC end plus the larger of
  its offset and the next one's. That is Python's `fold=0`: a repeated autumn time is its first
  instant, and a time in the skipped spring hour is read with the offset before the change.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any, Protocol

from services.query.timezones import LocalRange, Segment, Zone
from shared.contracts.storage import RANGE_FILTER

EPOCH_DAY = date(1970, 1, 1)
# a month window ends at most 12 months after the range's last day (funnel_models.MAX_WINDOW_MONTHS)
MONTH_WINDOW_REACH = timedelta(days=12 * 31 + 2)


class Windowed(Protocol):
    @property
    def window_months(self) -> int | None: ...
    @property
    def timezone(self) -> str: ...
    @property
    def start_date(self) -> date: ...
    @property
    def end_date(self) -> date: ...


def local_range(request: Windowed) -> LocalRange:
    return LocalRange(Zone(request.timezone), request.start_date, request.end_date)


def range_sql(request: Windowed, params: dict[str, Any]) -> str:
    """The rows inside the range: UTC days (`DateRange.parameters()`), or the zone's (parameters `tz_*`,
    which `local_ms_sql` reads too)."""
    if request.timezone == "UTC":
        return RANGE_FILTER
    local = local_range(request)
    params.update(local.parameters())
    return local.in_range_sql()


def offset_sql(segments: list[Segment], ms: str, prefix: str, bound: str = "at") -> str:
    """The offset of the piece holding `ms` (Int64): the first piece whose `bound` parameter (its start
    `at`, from the second piece on; or the local end `lend`) is past it."""
    if len(segments) == 1:
        return f"{{{prefix}_off0:Int64}}"
    if bound == "at":
        cases = [
            f"{ms} < {{{prefix}_at{i}:Int64}}, {{{prefix}_off{i - 1}:Int64}}" for i in range(1, len(segments))
        ]
    else:
        cases = [
            f"{ms} < {{{prefix}_lend{i}:Int64}}, {{{prefix}_off{i}:Int64}}" for i in range(len(segments) - 1)
        ]
    return f"multiIf({', '.join(cases)}, {{{prefix}_off{len(segments) - 1}:Int64}})"


def local_ms_sql(request: Windowed, ms: str) -> str:
    """SQL (Int64): the local wall-clock milliseconds of the instant `ms` (UInt64 ms inside the range)."""
    if request.timezone == "UTC":
        return f"toInt64({ms})"
    return f"(toInt64({ms}) + {offset_sql(local_range(request).segments(), f'toInt64({ms})', 'tz')})"


def month_range(request: Windowed) -> LocalRange:
    """Pieces covering every month window's end."""
    return LocalRange(Zone(request.timezone), request.start_date, request.end_date + MONTH_WINDOW_REACH)


def window_parameters(request: Windowed, params: dict[str, Any]) -> None:
    """The parameters `window_end_sql` reads beyond `window` / `window_months`."""
    if request.window_months is None or request.timezone == "UTC":
        return
    local = month_range(request)
    params.update(local.parameters("mw"))
    segments = local.segments()
    for i, (piece, following) in enumerate(zip(segments, segments[1:], strict=False)):
        params[f"mw_lend{i}"] = piece.end + max(piece.offset, following.offset)


def window_end_sql(request: Windowed, start: str) -> str:
    """SQL (UInt64 ms): the last moment a chain whose step-1 event is at `start` (UInt64 ms) may reach,
    `{window:UInt64}` ms later, or `{window_months:UInt32}` calendar months later in the zone."""
    if request.window_months is None:
        return f"({start} + {{window:UInt64}})"
    if request.timezone == "UTC":
        moment = f"fromUnixTimestamp64Milli(toInt64({start}), 'UTC')"
        return f"toUInt64(toUnixTimestamp64Milli(addMonths({moment}, {{window_months:UInt32}})))"
    segments = month_range(request).segments()
    local = f"(toInt64({start}) + {offset_sql(segments, f'toInt64({start})', 'mw')})"
    moment = f"fromUnixTimestamp64Milli({local}, 'UTC')"
    end_local = f"toUnixTimestamp64Milli(addMonths({moment}, {{window_months:UInt32}}))"
    # the local end is computed once per use: a lambda binds it
    unlocal = offset_sql(segments, "mw_l", "mw", "lend")
    return f"toUInt64(arrayMap(mw_l -> mw_l - {unlocal}, [{end_local}])[1])"


PERIOD_INDEX = {
    # days since 1970-01-01; weeks (Monday first) since the week of 1969-12-29; months since 1970-01
    "day": "intDiv({ms}, 86400000)",
    "week": "intDiv(intDiv({ms}, 86400000) + 3, 7)",
    "month": "(toYear(fromUnixTimestamp64Milli(toInt64({ms}), 'UTC')) * 12"
    " + toMonth(fromUnixTimestamp64Milli(toInt64({ms}), 'UTC')) - 1 - 23640)",
}


def period_index_sql(request: Windowed, interval: str, ms: str) -> str:
    """SQL: the index of the local period (`day`, `week` or `month`) holding the instant `ms` (UInt64
    ms inside the range)."""
    return PERIOD_INDEX[interval].format(ms=local_ms_sql(request, ms))


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
