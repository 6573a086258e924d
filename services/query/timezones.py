"""Time zones for trends, funnels and cohorts (README, Definitions: "Time zones").

A request's `timezone` is an IANA name; its days, weeks (ISO, from Monday), months and hours are that
zone's clock, DST included (a spring day lasts 23 hours, an autumn day 25). All zone arithmetic happens
here in Python with `zoneinfo` (the system's tz database): for the span a query reads, the zone is cut
into pieces of constant UTC offset, and ClickHouse only adds the piece's offset to each timestamp
(`local_ms_sql`) and divides. So the service, its reference and the labels it prints all read one
tz database, whichever one the ClickHouse server was built with.

A day is the set of instants whose local date is that day; the range filter is exact on the local day
number (`in_range_sql`), whatever a zone does around midnight.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Annotated, Any
from zoneinfo import ZoneInfo, available_timezones

from pydantic import AfterValidator, Field

DAY_MS, HOUR_MS = 86_400_000, 3_600_000
PROBE_MS = 6 * HOUR_MS
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EPOCH_DAY = date(1970, 1, 1)
# Offsets are within -12:00..+14:00 (and historic -15:56..+15:13): two days each side cover any zone.
SLACK_MS = 2 * DAY_MS
# Shifts that keep local day and hour numbers positive for intDiv (1970 minus the slack is negative).
DAY_SHIFT, HOUR_SHIFT = 10_000, 240_000


@cache
def known_zones() -> frozenset[str]:
    return frozenset(available_timezones() | {"UTC"})


def check_zone(name: str) -> str:
    if name not in known_zones():
        raise ValueError(f"unknown time zone {name!r}: use an IANA name such as 'Europe/Berlin' or 'UTC'")
    return name


TimeZoneName = Annotated[
    str,
    Field(max_length=64, description="IANA time zone name (default UTC): days, weeks and months are its own"),
    AfterValidator(check_zone),
]


def ms_of(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(milliseconds=1)


def day_number(day: date) -> int:
    return (day - EPOCH_DAY).days


@dataclass(frozen=True)
class Segment:
    """Instants [start, end) (ms) at one UTC offset (ms)."""

    start: int
    end: int
    offset: int


@dataclass(frozen=True)
class Zone:
    name: str

    @property
    def is_utc(self) -> bool:
        return self.name == "UTC"

    def offset_ms(self, at_ms: int) -> int:
        """The UTC offset in force at the instant, in ms."""
        if self.is_utc:
            return 0
        moment = EPOCH + timedelta(milliseconds=at_ms)
        offset = moment.astimezone(ZoneInfo(self.name)).utcoffset()
        return 0 if offset is None else offset // timedelta(milliseconds=1)

    def segments(self, start_ms: int, end_ms: int) -> list[Segment]:
        """[start_ms, end_ms) cut where the offset changes: probed every 6 hours (offsets never change
        twice within that), each change then found to the millisecond."""
        return segments_of(self, start_ms, end_ms)

    def local_day(self, at_ms: int) -> int:
        return (at_ms + self.offset_ms(at_ms)) // DAY_MS


@cache
def segments_of(zone: Zone, start_ms: int, end_ms: int) -> list[Segment]:
    if zone.is_utc:
        return [Segment(start_ms, end_ms, 0)]
    bounds, at, offset = [start_ms], start_ms, zone.offset_ms(start_ms)
    while at < end_ms:
        probe = min(at + PROBE_MS, end_ms - 1)
        if probe <= at or zone.offset_ms(probe) == offset:
            at = probe + 1 if probe == end_ms - 1 else probe
            continue
        low, high = at, probe  # offset(low) is `offset`, offset(high) is not
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if zone.offset_ms(middle) == offset else (low, middle)
        bounds.append(high)
        at, offset = high, zone.offset_ms(high)
    bounds.append(end_ms)
    return [Segment(a, b, zone.offset_ms(a)) for a, b in zip(bounds, bounds[1:], strict=False)]


@dataclass(frozen=True)
class LocalRange:
    """Local days [first, last] of a zone, and the SQL that reads them."""

    zone: Zone
    first: date
    last: date

    @property
    def span_ms(self) -> tuple[int, int]:
        """UTC instants surely covering the days (a coarse filter the local day number refines)."""
        start = day_number(self.first) * DAY_MS - SLACK_MS
        return start, (day_number(self.last) + 1) * DAY_MS + SLACK_MS

    def segments(self) -> list[Segment]:
        return self.zone.segments(*self.span_ms)

    def parameters(self, prefix: str = "tz") -> dict[str, Any]:
        """The parameters of `local_ms_sql` and `in_range_sql` under `prefix`."""
        start, end = self.span_ms
        params: dict[str, Any] = {
            f"{prefix}_from": EPOCH + timedelta(milliseconds=start),
            f"{prefix}_to": EPOCH + timedelta(milliseconds=end),
            f"{prefix}_first_day": day_number(self.first),
            f"{prefix}_last_day": day_number(self.last),
        }
        for i, segment in enumerate(self.segments()):
            params[f"{prefix}_at{i}"] = segment.start
            params[f"{prefix}_off{i}"] = segment.offset
        return params

    def local_ms_sql(self, ts: str = "timestamp", prefix: str = "tz") -> str:
        """Local wall-clock milliseconds of a DateTime64 column (UTC ms plus the offset at the time)."""
        ms = f"toUnixTimestamp64Milli({ts})"
        segments = self.segments()
        if len(segments) == 1:
            return f"({ms} + {{{prefix}_off0:Int64}})" if segments[0].offset else ms
        cases = ", ".join(
            f"{ms} < {{{prefix}_at{i}:Int64}}, {{{prefix}_off{i - 1}:Int64}}" for i in range(1, len(segments))
        )
        return f"({ms} + multiIf({cases}, {{{prefix}_off{len(segments) - 1}:Int64}}))"

    def local_day_sql(self, ts: str = "timestamp", prefix: str = "tz") -> str:
        """The local day number (days since 1970-01-01) of a DateTime64 column."""
        return f"(intDiv({self.local_ms_sql(ts, prefix)} + {DAY_SHIFT * DAY_MS}, {DAY_MS}) - {DAY_SHIFT})"

    def in_range_sql(self, ts: str = "timestamp", prefix: str = "tz") -> str:
        """The row's local day is one of the range's (with a coarse UTC filter the index can use)."""
        coarse = (
            f"{ts} >= {{{prefix}_from:DateTime64(3, 'UTC')}} AND {ts} < {{{prefix}_to:DateTime64(3, 'UTC')}}"
        )
        days = f"{{{prefix}_first_day:Int32}} AND {{{prefix}_last_day:Int32}}"
        local = f"{self.local_day_sql(ts, prefix)} BETWEEN {days}"
        return f"({coarse} AND {local})"
