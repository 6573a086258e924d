"""A trend's time buckets in a zone: the key ClickHouse computes for each event, and every bucket of
the range listed with its label and days (README, Definitions: "Time zones").

* `day`: a local date; `week`: the ISO week (Monday to Sunday) labelled by its Monday; `month`: a
  calendar month labelled by its first day. Buckets at the range's edges hold only the range's days.
* `hour`: a local clock hour at one UTC offset, labelled with it (`2023-10-29T02:00:00+02:00`, then
  `2023-10-29T02:00:00+01:00` on the day clocks go back; the skipped spring hour has no bucket).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from services.query.timezones import DAY_MS, EPOCH_DAY, HOUR_MS, HOUR_SHIFT, LocalRange, day_number

Interval = Literal["hour", "day", "week", "month"]


@dataclass(frozen=True)
class Bucket:
    key: tuple[int, int]
    label: str
    first_day: int  # local day numbers of the bucket inside the range, inclusive
    last_day: int

    @property
    def days(self) -> int:
        return self.last_day - self.first_day + 1


def key_sql(interval: Interval, local: LocalRange, prefix: str = "tz") -> str:
    """The (Int64, Int64) bucket key of an event's `timestamp`."""
    day = local.local_day_sql(prefix=prefix)
    if interval == "day":
        return f"(toInt64({day}), toInt64(0))"
    if interval == "week":
        return f"(toInt64({day} - ({day} + 3) % 7), toInt64(0))"
    if interval == "month":
        return f"(toInt64(toYear(toDate32({day})) * 12 + toMonth(toDate32({day})) - 1), toInt64(0))"
    ms = local.local_ms_sql(prefix=prefix)
    hour = f"(intDiv({ms} + {HOUR_SHIFT * HOUR_MS}, {HOUR_MS}) - {HOUR_SHIFT})"
    return f"(toInt64({hour}), toInt64({ms} - toUnixTimestamp64Milli(timestamp)))"


def day_of(number: int) -> date:
    return EPOCH_DAY + timedelta(days=number)


def buckets(interval: Interval, local: LocalRange) -> list[Bucket]:
    """Every bucket of the range, in time order."""
    first, last = day_number(local.first), day_number(local.last)
    if interval == "day":
        return [Bucket((d, 0), day_of(d).isoformat(), d, d) for d in range(first, last + 1)]
    if interval == "week":
        monday = first - (first + 3) % 7
        return [
            Bucket((m, 0), day_of(m).isoformat(), max(m, first), min(m + 6, last))
            for m in range(monday, last + 1, 7)
        ]
    if interval == "month":
        return month_buckets(local.first, local.last)
    return hour_buckets(local)


def month_buckets(start: date, end: date) -> list[Bucket]:
    found, month = [], start.year * 12 + start.month - 1
    while month <= end.year * 12 + end.month - 1:
        begins = date(month // 12, month % 12 + 1, 1)
        following = date((month + 1) // 12, (month + 1) % 12 + 1, 1)
        first, last = max(begins, start), min(following - timedelta(days=1), end)
        found.append(Bucket((month, 0), begins.isoformat(), day_number(first), day_number(last)))
        month += 1
    return found


def hour_label(hour: int, offset_ms: int) -> str:
    day, within = divmod(hour, 24)
    sign, minutes = ("+" if offset_ms >= 0 else "-"), abs(offset_ms) // 60_000
    zone = f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    seconds = abs(offset_ms) // 1000 % 60
    zone += f":{seconds:02d}" if seconds else ""
    return f"{day_of(day).isoformat()}T{within:02d}:00:00{zone}"


def hour_buckets(local: LocalRange) -> list[Bucket]:
    first, last = day_number(local.first), day_number(local.last)
    found: dict[tuple[int, int], int] = {}  # key -> start instant, for the order
    for segment in local.segments():
        low = (segment.start + segment.offset) // HOUR_MS
        high = (segment.end - 1 + segment.offset) // HOUR_MS
        for hour in range(low, high + 1):
            if first <= hour * HOUR_MS // DAY_MS <= last:
                found.setdefault((hour, segment.offset), max(hour * HOUR_MS - segment.offset, segment.start))
    ordered = sorted(found, key=lambda key: found[key])
    return [
        Bucket(key, hour_label(*key), key[0] * HOUR_MS // DAY_MS, key[0] * HOUR_MS // DAY_MS)
        for key in ordered
    ]
