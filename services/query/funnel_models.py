"""The funnel API's request and answer models, and the checks that need more than one field.

Pydantic checks each field (types, ranges, the allowed words); `FunnelRequest.check()` checks what
depends on other fields (the number of steps, the mode, the view) and raises `InvalidRequest` naming
the field, so the answer is a 422 that says where the problem is (the route and the runners call it).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from services.query.filters import Breakdown
from services.query.properties import Filters, Property
from services.query.timezones import TimeZoneName
from shared.contracts.dates import DateRange, Day
from shared.contracts.limits import MAX_EVENT_NAME_LENGTH
from shared.errors import InvalidRequest

DEFAULT_WINDOW_SECONDS = 14 * 24 * 3600
MAX_WINDOW_SECONDS = 366 * 24 * 3600
MAX_WINDOW_MONTHS = 12
# An unordered funnel checks every union of filter classes sharing an event name: 2^n - 1 of them.
MAX_UNORDERED_CLASSES_PER_EVENT = 10
UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400}
EventName = Annotated[str, Field(min_length=1, max_length=MAX_EVENT_NAME_LENGTH)]
Mode = Literal["ordered", "strict", "unordered"]
Attribution = Literal["first_touch", "last_touch", "step", "all_events"]


class StepSpec(BaseModel):
    """A step with property filters: `{"event": name, "filters": [...]}`."""

    model_config = ConfigDict(extra="forbid")

    event: EventName
    filters: Filters = []


def spec_of(step: Any) -> Any:
    """A bare event name is shorthand for a step without filters."""
    return {"event": step, "filters": []} if isinstance(step, str) else step


Step = Annotated[StepSpec, BeforeValidator(spec_of, json_schema_input_type=EventName | StepSpec)]


class Window(BaseModel):
    """`{"value": 30, "unit": "minute"}`; a month is a calendar month from the step-1 event."""

    model_config = ConfigDict(extra="forbid")

    value: int = Field(ge=1)
    unit: Literal["minute", "hour", "day", "week", "month"]


class Exclusion(BaseModel):
    """A chain with this event strictly between its `from_step` and `to_step` events (0-based) is
    excluded (README, "Exclusions")."""

    model_config = ConfigDict(extra="forbid")

    event: EventName
    filters: Filters = []
    from_step: int = Field(ge=0)
    to_step: int = Field(ge=1)


class FunnelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    steps: list[Step] = Field(min_length=2, max_length=20, description="Event names or {event, filters}")
    start_date: Day
    end_date: Day
    window_seconds: int = Field(DEFAULT_WINDOW_SECONDS, ge=1, le=MAX_WINDOW_SECONDS)
    window: Window | None = Field(None, description="Instead of window_seconds: a value and a unit")
    mode: Mode = "ordered"
    breakdown: Breakdown | None = Field(
        None, description='A property of the step-1 event ("plan") or of its person ("person.plan")'
    )
    breakdown_attribution: Attribution = "first_touch"
    breakdown_attribution_step: int | None = Field(None, ge=0, description="0-based; with `step`")
    filters: Filters = Field([], description="Applied to the events of every step and exclusion")
    exclusions: list[Exclusion] = Field([], max_length=10)
    hold_constant: list[Property] = Field([], max_length=3)
    counting: Literal["persons", "totals"] = "persons"
    view: Literal["steps", "time_to_convert", "trends"] = "steps"
    bins: int = Field(20, ge=1, le=90, description="time_to_convert: number of equal-width bins")
    from_step: int | None = Field(None, ge=0, description="time_to_convert: 0-based, default 0")
    to_step: int | None = Field(None, ge=1, description="time_to_convert: 0-based, default the last")
    interval: Literal["day", "week", "month"] = "day"
    timezone: TimeZoneName = "UTC"

    @model_validator(mode="after")
    def _unordered_fits(self) -> FunnelRequest:
        if self.mode == "unordered":
            for event in {s.event for s in self.steps}:
                variants = {str(s.filters) for s in self.steps if s.event == event}
                if len(variants) > MAX_UNORDERED_CLASSES_PER_EVENT:
                    raise ValueError(
                        f"mode unordered: at most {MAX_UNORDERED_CLASSES_PER_EVENT} steps with "
                        f"different filters may name one event ({event!r} has {len(variants)})"
                    )
        return self

    @property
    def period(self) -> DateRange:
        return DateRange(self.start_date, self.end_date)

    @property
    def window_months(self) -> int | None:
        return self.window.value if self.window is not None and self.window.unit == "month" else None

    @property
    def window_ms(self) -> int:
        """The window in milliseconds (for a month window: unused, 0)."""
        if self.window is None:
            return self.window_seconds * 1000
        return self.window.value * UNIT_SECONDS.get(self.window.unit, 0) * 1000

    @property
    def time_span(self) -> tuple[int, int]:
        """time_to_convert: (from_step, to_step), 0-based."""
        last = len(self.steps) - 1
        return (self.from_step or 0, last if self.to_step is None else self.to_step)

    def check(self) -> None:
        """Everything that depends on more than one field; 422 naming the first field at fault."""
        problems = list(self.problems())
        if problems:
            loc, msg = problems[0]
            raise InvalidRequest(
                f"{'.'.join(str(p) for p in loc)}: {msg}",
                details=[{"loc": ["body", *loc], "msg": m} for loc, m in problems],
            )

    def problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        return [
            *self.window_problems(),
            *self.exclusion_problems(),
            *self.breakdown_problems(),
            *self.view_problems(),
        ]

    def window_problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        if self.window is None:
            return []
        if "window_seconds" in self.model_fields_set:
            return [(("window",), "give either window or window_seconds, not both")]
        if self.window.unit == "month":
            if self.window.value > MAX_WINDOW_MONTHS:
                return [(("window", "value"), f"at most {MAX_WINDOW_MONTHS} months")]
        elif self.window_ms > MAX_WINDOW_SECONDS * 1000:
            return [(("window", "value"), "the window is at most 366 days")]
        return []

    def exclusion_problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        found: list[tuple[tuple[str | int, ...], str]] = []
        last = len(self.steps) - 1
        for i, exclusion in enumerate(self.exclusions):
            where: tuple[str | int, ...] = ("exclusions", i)
            if exclusion.to_step > last:
                found.append(((*where, "to_step"), f"steps are 0-based: at most {last}"))
            elif exclusion.from_step >= exclusion.to_step:
                found.append(((*where, "from_step"), "must be less than to_step"))
            elif self.mode == "unordered" and (exclusion.from_step, exclusion.to_step) != (0, last):
                found.append(((*where, "from_step"), f"an unordered funnel's exclusions span 0..{last}"))
            else:
                spanned = self.steps[exclusion.from_step : exclusion.to_step + 1]
                if any(step.event == exclusion.event for step in spanned):
                    found.append(((*where, "event"), "is one of the steps it spans"))
        return found

    def breakdown_problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        found: list[tuple[tuple[str | int, ...], str]] = []
        if self.breakdown_attribution == "step":
            step = self.breakdown_attribution_step
            if step is None or step >= len(self.steps):
                found.append((("breakdown_attribution_step",), f"a step 0..{len(self.steps) - 1}"))
        elif self.breakdown_attribution_step is not None:
            found.append((("breakdown_attribution_step",), "only with breakdown_attribution step"))
        if self.breakdown_attribution != "first_touch" and self.mode == "unordered":
            # one event, one step: an unordered chain has no event per step to take a value from
            found.append(
                (
                    ("breakdown_attribution",),
                    f"{self.breakdown_attribution} needs an ordered or strict funnel",
                )
            )
        if self.counting == "totals" and self.mode == "unordered":
            found.append((("counting",), "totals needs an ordered or strict funnel"))
        return found

    def view_problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        found: list[tuple[tuple[str | int, ...], str]] = []
        if self.view != "steps" and self.breakdown is not None:
            found.append((("breakdown",), f"no breakdown with view {self.view}"))
        if self.view == "time_to_convert":
            first, last = self.time_span
            if last > len(self.steps) - 1:
                found.append((("to_step",), f"steps are 0-based: at most {len(self.steps) - 1}"))
            elif first >= last:
                found.append((("from_step",), "must be less than to_step"))
        return found


class FunnelPersonsRequest(FunnelRequest):
    """The funnel body plus which persons: those who reached step `step` (converted) or reached the
    step before it but not it (dropped), `limit` at a time, after `cursor`."""

    step: int = Field(ge=0, description="0-based step")
    status: Literal["converted", "dropped"] = "converted"
    limit: int = Field(100, ge=1, le=1000)
    cursor: str | None = Field(None, max_length=1000, description="next_cursor of the previous page")

    def problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        found = super().problems()
        if self.step >= len(self.steps):
            found.append((("step",), f"steps are 0-based: at most {len(self.steps) - 1}"))
        elif self.status == "dropped" and self.step == 0:
            found.append((("step",), "nobody drops before step 0; ask for converted"))
        return found


class FunnelStep(BaseModel):
    step: str
    count: int
    conversion_rate: float = Field(description="count / count of step 1 x 100, 2 decimals")
    drop_off: int = Field(description="count of the previous step - count (0 for step 1)")
    average_conversion_seconds: float | None = Field(
        None, description="Mean time from the previous step (3 decimals); null for step 1 and nobody"
    )
    median_conversion_seconds: float | None = Field(
        None, description="Median time from the previous step (3 decimals); null for step 1 and nobody"
    )


class Funnel(BaseModel):
    funnel: list[FunnelStep]
    total_entries: int
    overall_conversion: float


class BreakdownFunnel(Funnel):
    value: str | float | int | bool | None = Field(
        description="The property's value the entries are attributed to, as typed JSON; null when missing, "
        "null, an object or an array; 'Other' for the merged bucket"
    )
    other: bool = Field(False, description="True for the bucket that merges every value beyond the top 10")


class FunnelResponse(Funnel):
    breakdown: list[BreakdownFunnel] | None = Field(
        None, description="With `breakdown`: one funnel per top-10 value by entries, then 'Other'"
    )


class TimeBin(BaseModel):
    from_seconds: int
    to_seconds: int
    count: int


class TimeToConvertResponse(BaseModel):
    view: Literal["time_to_convert"] = "time_to_convert"
    from_step: int
    to_step: int
    converted: int = Field(description="Entries that reached to_step")
    bins: list[TimeBin] = Field(description="`bins` equal-width bins from the fastest to the slowest")
    average_seconds: float | None
    median_seconds: float | None


class TrendPoint(BaseModel):
    period: str = Field(description="2023-01-31, 2023-W05 (ISO week-year) or 2023-01")
    start: str = Field(description="First day of the period")
    entered: int
    converted: int = Field(description="Entries of the period that reached the last step")
    conversion_rate: float


class FunnelTrendsResponse(BaseModel):
    view: Literal["trends"] = "trends"
    interval: Literal["day", "week", "month"]
    trends: list[TrendPoint]


class FunnelPerson(BaseModel):
    person_id: str
    distinct_id: str = Field(description="One of the person's distinct ids")


class FunnelPersonsResponse(BaseModel):
    persons: list[FunnelPerson]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last")
