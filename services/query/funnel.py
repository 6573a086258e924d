"""Funnel runner: `build(request) -> (sql, params)` and `parse(rows, request) -> FunnelResponse`.

A user reaches step k when their events inside the date range hold a chain step 1 -> ... -> step k
within `window_seconds` of the chain's step-1 event (the exact rule per mode is in funnel_sql).
count_k counts users reaching step k; each event_id counts once (the table is read with FINAL).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from services.query import funnel_sql
from services.query.filters import Breakdown, PropertyFilter
from services.query.rounding import percentage
from services.query.timezones import LocalRange, TimeZoneName, Zone
from shared.clickhouse import ClickHouse
from shared.contracts.dates import DateRange, Day
from shared.contracts.limits import MAX_EVENT_NAME_LENGTH
from shared.contracts.property_types import bucket_value
from shared.contracts.storage import FINAL_SETTINGS

DEFAULT_WINDOW_SECONDS = 14 * 24 * 3600
MAX_WINDOW_SECONDS = 366 * 24 * 3600
EventName = Annotated[str, Field(min_length=1, max_length=MAX_EVENT_NAME_LENGTH)]
Filters = Annotated[list[PropertyFilter], Field(max_length=20)]


class StepSpec(BaseModel):
    """A step with property filters: `{"event": name, "filters": [...]}`."""

    model_config = ConfigDict(extra="forbid")

    event: EventName
    filters: Filters = []


def spec_of(step: Any) -> Any:
    """A bare event name is shorthand for a step without filters."""
    return {"event": step, "filters": []} if isinstance(step, str) else step


Step = Annotated[StepSpec, BeforeValidator(spec_of, json_schema_input_type=EventName | StepSpec)]


class FunnelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    steps: list[Step] = Field(min_length=2, max_length=20, description="Event names or {event, filters}")
    start_date: Day
    end_date: Day
    window_seconds: int = Field(DEFAULT_WINDOW_SECONDS, ge=1, le=MAX_WINDOW_SECONDS)
    mode: Literal["ordered", "strict", "unordered"] = "ordered"
    breakdown: Breakdown | None = Field(
        None, description='A property of the first step-1 event ("plan") or of its person ("person.plan")'
    )
    filters: Filters = Field([], description="Applied to the events of every step")
    timezone: TimeZoneName = "UTC"

    @model_validator(mode="after")
    def _unordered_fits(self) -> FunnelRequest:
        if self.mode == "unordered":
            for event in {s.event for s in self.steps}:
                variants = {str(s.filters) for s in self.steps if s.event == event}
                if len(variants) > funnel_sql.MAX_UNORDERED_CLASSES_PER_EVENT:
                    raise ValueError(
                        f"mode unordered: at most {funnel_sql.MAX_UNORDERED_CLASSES_PER_EVENT} steps with "
                        f"different filters may name one event ({event!r} has {len(variants)})"
                    )
        return self

    @property
    def period(self) -> DateRange:
        return DateRange(self.start_date, self.end_date)


class FunnelStep(BaseModel):
    step: str
    count: int
    conversion_rate: float = Field(description="count / count of step 1 x 100, 2 decimals")
    drop_off: int = Field(description="count of the previous step - count (0 for step 1)")


class Funnel(BaseModel):
    funnel: list[FunnelStep]
    total_entries: int
    overall_conversion: float


class BreakdownFunnel(Funnel):
    value: str | float | int | bool | None = Field(
        description="The property's value on the user's first step-1 event as typed JSON; null when missing, "
        "null, an object or an array; 'Other' for the merged bucket"
    )
    other: bool = Field(False, description="True for the bucket that merges every value beyond the top 10")


class FunnelResponse(Funnel):
    breakdown: list[BreakdownFunnel] | None = Field(
        None, description="With `breakdown`: one funnel per top-10 value by entries, then 'Other'"
    )


def build(request: FunnelRequest) -> tuple[str, dict[str, Any]]:
    """The funnel query: rows (bucket, missing, value, level, users) for users with level >= 1."""
    params: dict[str, Any] = dict(request.period.parameters())
    window_ms = request.window_seconds * 1000
    params.update(window=window_ms, window_scaled=window_ms * 32)
    steps = [(s.event, s.filters) for s in request.steps]
    in_range = funnel_sql.RANGE_FILTER
    if request.timezone != "UTC":  # the range's days are the zone's (timezones.py)
        local = LocalRange(Zone(request.timezone), request.start_date, request.end_date)
        params.update(local.parameters())
        in_range = local.in_range_sql()
    rows = funnel_sql.matching_rows_sql(steps, request.filters, request.breakdown, params, in_range)
    breakdown = request.breakdown is not None
    if request.mode == "ordered" and len({event for event, _ in steps}) == len(steps):
        levels = funnel_sql.ordered_levels_sql(rows, len(steps), breakdown, one_step_per_row=True)
    elif request.mode == "unordered":
        params["hall_tests"], params["hall_levels"] = funnel_sql.hall_tests(steps)
        levels = funnel_sql.unordered_levels_sql(rows, len(steps), breakdown)
    else:
        levels = funnel_sql.LEVELS_SQL[request.mode](rows, len(steps), breakdown)
    return funnel_sql.buckets_sql(levels), params


def parse(rows: list[tuple[Any, ...]], request: FunnelRequest) -> FunnelResponse:
    """Turn per-(bucket, level) user counts into the funnel, and the breakdown when asked for."""
    names = [s.event for s in request.steps]
    per_bucket: dict[int, list[int]] = defaultdict(lambda: [0] * (len(names) + 1))
    labels: dict[int, str | float | int | bool | None] = {}
    for bucket, value, level, users in rows:
        per_bucket[int(bucket)][int(level)] += int(users)
        labels[int(bucket)] = bucket_value(*value)
    total = [sum(levels[k] for levels in per_bucket.values()) for k in range(len(names) + 1)]
    response = FunnelResponse(**funnel_of(names, total).model_dump())
    if request.breakdown is not None:
        response.breakdown = [
            BreakdownFunnel(
                **funnel_of(names, per_bucket[b]).model_dump(),
                value="Other" if b > funnel_sql.TOP_BREAKDOWN_VALUES else labels[b],
                other=b > funnel_sql.TOP_BREAKDOWN_VALUES,
            )
            for b in sorted(per_bucket)
        ]
    return response


def funnel_of(names: list[str], users_at_level: list[int]) -> Funnel:
    """Steps from the number of users whose highest level is exactly k (index k)."""
    counts = [sum(users_at_level[k:]) for k in range(1, len(names) + 1)]
    steps = [
        FunnelStep(
            step=name,
            count=count,
            conversion_rate=percentage(count, counts[0]),
            drop_off=0 if k == 0 else counts[k - 1] - count,
        )
        for k, (name, count) in enumerate(zip(names, counts, strict=True))
    ]
    return Funnel(funnel=steps, total_entries=counts[0], overall_conversion=percentage(counts[-1], counts[0]))


async def run_funnel(clickhouse: ClickHouse, request: FunnelRequest, timeout: float) -> FunnelResponse:
    """Build, execute (FINAL, with the timeout) and parse one funnel."""
    sql, params = build(request)
    rows = await clickhouse.query(sql, params, settings=FINAL_SETTINGS, timeout=timeout)
    return parse(rows, request)
