"""Cohort runner: `build(request) -> (sql, params)` and `parse(rows, request) -> CohortResponse`.

The cohorts are the `periods` consecutive periods (of the request's time zone) ending with the one that
holds end_date. Events after end_date do not exist for this query (as if it ran at the end of that
day). A person's cohort is the period of their first-ever event (over all their distinct ids) matching
start_event and start_filters (any event when absent); for each offset k whose period cohort+k starts
on or before end_date, `count` is the number of the cohort's persons retained in period cohort+k (a
return_event matching return_filters in it; `first_time`: period 0 counts the start; `cumulative`: in
it or any later period). A breakdown splits the table by the cohort-starting event's (or the person's)
value (README "Retention cohorts").

With any event as start and return, no filters and no breakdown, in UTC, the rows come from the
per-user summary of active days, exact under duplicates (services/query/cohort_sql.py), which saves
grouping every event by user. Otherwise one scan grouped by person: the first start time, and a UInt64
with bit i set when the person returned in shown period i (measured against `retention()`:
docs/performance.md).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from services.query import cohort_sql
from services.query.cohort_sql import event_condition
from services.query.filters import all_filters_sql
from services.query.properties import Filters, Property, key_sql
from services.query.rounding import percentage
from services.query.timezones import LocalRange, TimeZoneName, Zone, day_number
from shared.clickhouse import ClickHouse
from shared.contracts.dates import Day
from shared.contracts.limits import MAX_EVENT_NAME_LENGTH
from shared.contracts.property_types import bucket_value
from shared.contracts.storage import FINAL_SETTINGS
from shared.errors import QueryFailed

PeriodType = Literal["daily", "weekly", "monthly"]
BlankIsAbsent = BeforeValidator(lambda v: None if v == "" else v)  # `start_event=` in a URL: "any event"
EPOCH_DAY = date(1970, 1, 1)
EventName = Annotated[
    Annotated[str, Field(min_length=1, max_length=MAX_EVENT_NAME_LENGTH)] | None, BlankIsAbsent
]


def json_text(value: Any) -> Any:
    """A query string carries lists and objects as JSON text (`start_filters=[{...}]`, repeated or
    not); a body carries them as JSON."""
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        parsed = [json_text(v) for v in value]
        return [item for p in parsed for item in (p if isinstance(p, list) else [p])]
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise ValueError("not valid JSON") from exc
    return None if value == "" else value


FromJson = BeforeValidator(json_text)


class CohortRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    period_type: PeriodType = "weekly"
    periods: int = Field(8, ge=1, le=52, description="How many cohorts, ending with the one holding end_date")
    end_date: Annotated[Day | None, BlankIsAbsent] = Field(
        None, description="Last day counted, inclusive (default: today, UTC)"
    )
    start_event: EventName = Field(None, description="Event that places a user in a cohort (default: any)")
    return_event: EventName = Field(None, description="Event that counts as a return (default: any)")
    retention_type: Literal["recurring", "first_time"] = Field(
        "recurring", description="first_time: period 0 counts the start itself (README)"
    )
    cumulative: bool = Field(False, description="Retained in period k: a return in k or any later period")
    breakdown: Annotated[Property | None, FromJson] = Field(
        None, description="A property of the cohort-starting event (or of the person): one table per value"
    )
    start_filters: Annotated[Filters, FromJson] = Field([], description="On the start event (JSON in a URL)")
    return_filters: Annotated[Filters, FromJson] = Field(
        [], description="On the return event (JSON in a URL)"
    )
    timezone: TimeZoneName = "UTC"

    @property
    def last_day(self) -> date:
        return self.end_date or datetime.now(UTC).astimezone(ZoneInfo(self.timezone)).date()

    def period_starts(self) -> list[date]:
        """The first day of every shown period, oldest first."""
        last = period_start(self.last_day, self.period_type)
        return [shift(last, k - self.periods + 1, self.period_type) for k in range(self.periods)]


class RetentionPoint(BaseModel):
    period: int
    percentage: float = Field(description="count / users x 100, 2 decimals (0.0 for an empty cohort)")
    count: int


class Cohort(BaseModel):
    cohort_date: str = Field(description="2023-W01 (ISO week-year), 2023-01 or 2023-01-31")
    users: int
    data: list[RetentionPoint]


class CohortResponse(BaseModel):
    cohorts: list[Cohort]


class BreakdownCohorts(BaseModel):
    value: str | float | int | bool | None = Field(
        description="The value on the cohort-starting event (or of the person) as typed JSON; null when "
        "missing, null, an object or an array; 'Other' for the merged bucket"
    )
    other: bool = Field(False, description="True for the bucket that merges every value beyond the top 10")
    cohorts: list[Cohort]


class CohortBreakdownResponse(CohortResponse):
    breakdown: list[BreakdownCohorts] = Field(description="One table per top-10 value by persons, then Other")


def period_start(day: date, period_type: str) -> date:
    """The first day of the period holding `day` (ISO weeks start on Monday)."""
    if period_type == "daily":
        return day
    if period_type == "weekly":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def shift(start: date, periods: int, period_type: str) -> date:
    """The start of the period `periods` after (or before, when negative) the one starting at `start`."""
    if period_type == "daily":
        return start + timedelta(days=periods)
    if period_type == "weekly":
        return start + timedelta(weeks=periods)
    months = start.year * 12 + start.month - 1 + periods
    return date(months // 12, months % 12 + 1, 1)


def label(start: date, period_type: str) -> str:
    """2020-W53 for weeks (by ISO week-year), 2023-01 for months, 2023-01-31 for days."""
    if period_type == "weekly":
        iso = start.isocalendar()
        return f"{iso.year}-W{iso.week:02d}"
    if period_type == "monthly":
        return f"{start.year:04d}-{start.month:02d}"
    return start.isoformat()


def build(request: CohortRequest) -> tuple[str, dict[str, Any]]:
    """Rows (cohort index, users, [returning users at offset 0, 1, ...]) for non-empty cohorts: from the
    per-user summary when any event counts (UTC only: it holds UTC days), else from a scan of the events.
    With a breakdown, rows (bucket, value, cohort index, users, [returning]) from the scan (bucket 0:
    everyone)."""
    if request.timezone != "UTC":
        return build_local_scan(request)
    scanned = request.start_filters or request.return_filters or request.breakdown is not None
    if request.start_event is None and request.return_event is None and not scanned:
        return build_from_summary(request)
    return build_scan(request)


def build_from_summary(request: CohortRequest) -> tuple[str, dict[str, Any]]:
    first = request.period_starts()[0]
    params: dict[str, Any] = {
        "first": first,
        "first_day": (first - EPOCH_DAY).days,
        "end_day": (request.last_day - EPOCH_DAY).days + 1,
        "margin": cohort_sql.CHANGED_MARGIN_SECONDS,
    }
    # the first event is a return of its own period: first_time answers as recurring here
    return cohort_sql.summary_sql(request.period_type, request.periods, request.cumulative), params


def build_scan(request: CohortRequest) -> tuple[str, dict[str, Any]]:
    """The cohort rows from one scan of the events grouped by user."""
    first = request.period_starts()[0]
    params: dict[str, Any] = {
        "first": first,
        "first_at": datetime.combine(first, datetime.min.time(), tzinfo=UTC),
        "first_ms": (first - EPOCH_DAY).days * 86_400_000,
        "range_end": datetime.combine(request.last_day + timedelta(days=1), datetime.min.time(), tzinfo=UTC),
    }
    is_start, is_return, event_filter, breakdown = conditions(request, params)
    sql = cohort_sql.scan_sql(
        request.period_type,
        request.periods,
        is_start,
        is_return,
        event_filter,
        first_time=request.retention_type == "first_time",
        cumulative=request.cumulative,
        breakdown=breakdown,
    )
    return sql, params


def build_local_scan(request: CohortRequest) -> tuple[str, dict[str, Any]]:
    """`build_scan` in the request's time zone: its days, weeks and months (timezones.py)."""
    first = request.period_starts()[0]
    local = LocalRange(Zone(request.timezone), first, request.last_day)
    params: dict[str, Any] = {
        **local.parameters(),
        "first_day": day_number(first),
        "last_day": day_number(request.last_day),
        "first_month": first.year * 12 + first.month,
    }
    is_start, is_return, event_filter, breakdown = conditions(request, params)
    sql = cohort_sql.scan_sql(
        request.period_type,
        request.periods,
        is_start,
        is_return,
        event_filter,
        local_day=local.local_day_sql(),
        first_time=request.retention_type == "first_time",
        cumulative=request.cumulative,
        breakdown=breakdown,
    )
    return sql, params


def conditions(request: CohortRequest, params: dict[str, Any]) -> tuple[str, str, str, str | None]:
    """The SQL of a start row, a return row, the events read, and the breakdown bucket (or None)."""
    is_start = event_condition(request.start_event, "start_event", params)
    is_start += f" AND {all_filters_sql(request.start_filters, 'sf', params)}"
    is_return = event_condition(request.return_event, "return_event", params)
    is_return += f" AND {all_filters_sql(request.return_filters, 'rf', params)}"
    events = [e for e in (request.start_event, request.return_event) if e is not None]
    event_filter = "1"
    if len(events) == 2:
        params["events"] = events
        event_filter = "event IN {events:Array(String)}"
    breakdown = None
    if request.breakdown is not None:
        params["breakdown"] = request.breakdown.property
        breakdown = key_sql("breakdown", request.breakdown)
    return is_start, is_return, event_filter, breakdown


def parse(rows: list[tuple[Any, ...]], request: CohortRequest) -> CohortResponse:
    """Every shown period as a cohort (empty ones too), with offsets up to the last shown period."""
    if request.breakdown is not None:
        return parse_breakdown(rows, request)
    return CohortResponse(cohorts=cohorts_of(rows, request))


def parse_breakdown(rows: list[tuple[Any, ...]], request: CohortRequest) -> CohortBreakdownResponse:
    """The whole table from bucket 0, one per value bucket (1-10, 11: Other)."""
    per_bucket: dict[int, list[tuple[Any, ...]]] = {}
    labels: dict[int, str | float | int | bool | None] = {}
    for bucket, value, index, users, counts in rows:
        per_bucket.setdefault(int(bucket), []).append((index, users, counts))
        labels[int(bucket)] = bucket_value(*value)
    tables = [
        BreakdownCohorts(
            value="Other" if b == cohort_sql.TOP_VALUES + 1 else labels[b],
            other=b == cohort_sql.TOP_VALUES + 1,
            cohorts=cohorts_of(per_bucket[b], request),
        )
        for b in sorted(per_bucket)
        if b > 0
    ]
    return CohortBreakdownResponse(cohorts=cohorts_of(per_bucket.get(0, []), request), breakdown=tables)


def cohorts_of(rows: list[tuple[Any, ...]], request: CohortRequest) -> list[Cohort]:
    found = {int(index): (int(users), [int(c) for c in counts]) for index, users, counts in rows}
    cohorts = []
    for i, start in enumerate(request.period_starts()):
        users, counts = found.get(i, (0, [0] * request.periods))
        data = [
            RetentionPoint(period=k, count=counts[k], percentage=percentage(counts[k], users))
            for k in range(request.periods - i)
        ]
        cohorts.append(Cohort(cohort_date=label(start, request.period_type), users=users, data=data))
    return cohorts


async def run_cohort(clickhouse: ClickHouse, request: CohortRequest, timeout: float) -> CohortResponse:
    """Build, execute (FINAL, with the timeout) and parse one cohort table; once more if the summary
    was swapped by a rebuild while the query read it."""
    sql, params = build(request)
    try:
        rows = await clickhouse.query(sql, params, settings=FINAL_SETTINGS, timeout=timeout)
    except QueryFailed as exc:
        if cohort_sql.SUMMARY_SWAPPED not in str(exc.__cause__):
            raise
        rows = await clickhouse.query(sql, params, settings=FINAL_SETTINGS, timeout=timeout)
    return parse(rows, request)
