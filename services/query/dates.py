"""Date ranges as the API means them: inclusive UTC days, [start 00:00, end + 1 day 00:00)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from shared.errors import InvalidRequest

MAX_RANGE_DAYS = 366


@dataclass(frozen=True)
class DateRange:
    start: date
    end: date

    @classmethod
    def checked(cls, start: date, end: date, *, max_days: int = MAX_RANGE_DAYS,
                start_field: str = "start_date", end_field: str = "end_date", where: str = "query") -> DateRange:
        """A valid range, or 422 naming the offending field."""
        if end < start:
            raise InvalidRequest(
                f"{end_field} ({end}) is before {start_field} ({start})",
                details=[{"loc": [where, end_field], "msg": f"must not be before {start_field}"}],
            )
        if (end - start).days + 1 > max_days:
            raise InvalidRequest(
                f"the range covers {(end - start).days + 1} days; at most {max_days} are allowed",
                details=[{"loc": [where, end_field], "msg": f"range longer than {max_days} days"}],
            )
        return cls(start, end)

    @property
    def start_at(self) -> datetime:
        return datetime.combine(self.start, time.min, tzinfo=UTC)

    @property
    def end_before(self) -> datetime:
        """The exclusive upper bound: the day after `end`, at midnight UTC."""
        return datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=UTC)

    def parameters(self) -> dict[str, datetime]:
        return {"range_start": self.start_at, "range_end": self.end_before}


# SQL fragment for the range, with the parameters from DateRange.parameters().
RANGE_FILTER = "timestamp >= {range_start:DateTime64(3, 'UTC')} AND timestamp < {range_end:DateTime64(3, 'UTC')}"
# Readers deduplicate with FINAL; partitions never share an event_id key, so each is done on its own.
FINAL_SETTINGS = {"do_not_merge_across_partitions_select_final": 1}
