"""Date ranges as the API means them: inclusive UTC days, [start 00:00, end + 1 day 00:00)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator

from shared.contracts.limits import MAX_TIMESTAMP, MIN_TIMESTAMP
from shared.errors import InvalidRequest

MAX_RANGE_DAYS = 366
DAY_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}")
# Events exist only in [MIN_TIMESTAMP, MAX_TIMESTAMP) (ingest refuses others); so may the days asked for.
FIRST_DAY, LAST_DAY = MIN_TIMESTAMP.date(), MAX_TIMESTAMP.date() - timedelta(days=1)


@dataclass(frozen=True)
class DateRange:
    start: date
    end: date

    @classmethod
    def checked(
        cls,
        start: date,
        end: date,
        *,
        max_days: int = MAX_RANGE_DAYS,
        start_field: str = "start_date",
        end_field: str = "end_date",
        where: str = "query",
    ) -> DateRange:
        """A valid range, or 422 naming the offending field."""
        for name, day in ((start_field, start), (end_field, end)):
            if not FIRST_DAY <= day <= LAST_DAY:
                raise InvalidRequest(
                    f"{name} ({day}) is outside {FIRST_DAY}..{LAST_DAY}, the days events can have",
                    details=[{"loc": [where, name], "msg": f"must be between {FIRST_DAY} and {LAST_DAY}"}],
                )
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
        """The range as the parameters of `storage.RANGE_FILTER`."""
        return {"range_start": self.start_at, "range_end": self.end_before}

    def days(self) -> list[date]:
        """Every day of the range, in order."""
        return [date.fromordinal(n) for n in range(self.start.toordinal(), self.end.toordinal() + 1)]


def strict_day(value: Any) -> Any:
    """Accept only `YYYY-MM-DD` text (or a date) between FIRST_DAY and LAST_DAY."""
    if isinstance(value, str) and DAY_PATTERN.fullmatch(value):
        value = date.fromisoformat(value)
    if not isinstance(value, date) or isinstance(value, datetime):
        raise ValueError("dates are YYYY-MM-DD")
    if not FIRST_DAY <= value <= LAST_DAY:
        raise ValueError(f"dates are between {FIRST_DAY} and {LAST_DAY}")
    return value


# A calendar day in requests: `YYYY-MM-DD`, a real date, in the range events can have.
Day = Annotated[date, BeforeValidator(strict_day)]
