"""Trends runner: `build(request) -> (sql, params)` and `parse(rows, request) -> TrendsResponse`.

How many times, how many people, how much, per hour, day, week or month of a zone, optionally broken
down by a property and compared with the period before (README, Definitions: "Trend maths"). The SQL
(trends_sql.py) returns exact pieces per bucket; the values are computed here as fractions and
rounded once, to the nearest 64-bit float, when answered.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.query import formula as formulas
from services.query.filters import Breakdown, PropertyFilter
from services.query.intervals import Interval, buckets
from services.query.timezones import LocalRange, TimeZoneName, Zone
from services.query.trends_sql import (
    ACTIVE_DAYS,
    OTHER_KIND,
    PROPERTY_MATHS,
    QUANTILES,
    Period,
    SeriesSpec,
    trends_sql,
)
from shared.clickhouse import ClickHouse
from shared.contracts.dates import FIRST_DAY, DateRange, Day
from shared.contracts.limits import MAX_EVENT_NAME_LENGTH
from shared.contracts.materialized import NONE, MaterializedColumns
from shared.contracts.property_types import bucket_value
from shared.contracts.storage import FINAL_SETTINGS
from shared.errors import InvalidRequest

Math = Literal[
    "total",
    "unique_persons",
    "dau",
    "weekly_active",
    "monthly_active",
    "sum",
    "avg",
    "min",
    "max",
    "median",
    "p90",
    "p95",
    "p99",
    "per_person_avg",
]
COUNT_MATHS = {"total", "unique_persons", "weekly_active", "monthly_active"}
MAX_HOUR_RANGE_DAYS = 31
EventName = Annotated[str, Field(min_length=1, max_length=MAX_EVENT_NAME_LENGTH)]
Filters = Annotated[list[PropertyFilter], Field(max_length=20)]
JsonValue = str | float | int | bool | None
Number = float | int


class Series(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event: EventName = Field(description='An event name, or "$all" for every event')
    math: Math = "total"
    property: Breakdown | None = Field(None, description="The numeric property of sum, avg, min, ... p99")
    filters: Filters = []
    label: Annotated[str, Field(max_length=200)] | None = None


class TrendsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    series: list[Series] = Field(min_length=1, max_length=10)
    start_date: Day
    end_date: Day
    interval: Interval = "day"
    timezone: TimeZoneName = "UTC"
    breakdown: Breakdown | None = None
    compare: Literal["previous_period"] | None = None
    formula: Annotated[str, Field(max_length=formulas.MAX_FORMULA_LENGTH)] | None = None
    filters: Filters = Field([], description="Applied to every series")

    def checked(self, max_days: int) -> TrendsRequest:
        """422s naming the field for what the model alone cannot see."""
        DateRange.checked(self.start_date, self.end_date, max_days=max_days, where="body")
        days = (self.end_date - self.start_date).days + 1
        if self.interval == "hour" and days > MAX_HOUR_RANGE_DAYS:
            refuse(["interval"], f"interval hour covers at most {MAX_HOUR_RANGE_DAYS} days, not {days}")
        for i, series in enumerate(self.series):
            needs = series.math in PROPERTY_MATHS
            if needs and series.property is None:
                refuse(["series", i, "property"], f"math {series.math} needs a numeric property")
            if not needs and series.property is not None:
                refuse(["series", i, "property"], f"math {series.math} takes no property")
            if self.interval == "hour" and series.math in ("dau", *ACTIVE_DAYS):
                refuse(["series", i, "math"], f"math {series.math} needs interval day, week or month")
        if self.compare and self.start_date - timedelta(days=days) < FIRST_DAY:
            refuse(["compare"], f"the period before starts before {FIRST_DAY}")
        if self.formula is not None:
            try:
                formulas.parse(self.formula, len(self.series))
            except formulas.FormulaError as exc:
                refuse(["formula"], f"formula: {exc}")
        return self

    def periods(self) -> list[Period]:
        zone, days = Zone(self.timezone), (self.end_date - self.start_date).days + 1
        ranges = [(self.start_date, self.end_date)]
        if self.compare:
            ranges.append((self.start_date - timedelta(days=days), self.start_date - timedelta(days=1)))
        locals_ = [LocalRange(zone, first, last) for first, last in ranges]
        return [Period(local, buckets(self.interval, local)) for local in locals_]


def refuse(loc: list[str | int], message: str) -> None:
    raise InvalidRequest(message, details=[{"loc": ["body", *loc], "msg": message}])


class Compared(BaseModel):
    labels: list[str]
    data: list[Number | None]
    total: Number | None
    skipped: int | None = None


class TrendResult(BaseModel):
    series: str = Field(description="The series' letter, as formulas name it")
    label: str
    breakdown_value: JsonValue = Field(None, description="Typed JSON (null: missing); 'Other' when other")
    other: bool = False
    labels: list[str]
    data: list[Number]
    total: Number = Field(description="The math over the whole range as one bucket")
    skipped: int | None = Field(None, description="Set values of the property that are not numbers")
    compare: Compared | None = None


class FormulaResult(BaseModel):
    formula: str
    breakdown_value: JsonValue = None
    other: bool = False
    labels: list[str]
    data: list[Number | None]
    total: Number | None
    compare: Compared | None = None


class TrendsResponse(BaseModel):
    results: list[TrendResult]
    formula: list[FormulaResult] | None = None


@dataclass
class Pieces:
    """What a bucket's row carries (trends_sql's module doc)."""

    events: int = 0
    persons: int = 0
    dsum: Decimal = Decimal(0)
    numbers: int = 0
    skipped: int = 0
    lo: Decimal | None = None
    hi: Decimal | None = None
    low: Decimal | None = None
    high: Decimal | None = None


def value_of(math: str, pieces: Pieces, days: int) -> Fraction:
    """A bucket's exact value (0 when it has nothing to aggregate)."""
    if math in ("total",):
        return Fraction(pieces.events)
    if math in ("unique_persons", *ACTIVE_DAYS):
        return Fraction(pieces.persons)
    if math == "dau":
        return Fraction(pieces.persons, days)
    if math == "per_person_avg":
        return Fraction(pieces.events, pieces.persons) if pieces.persons else Fraction(0)
    if math == "sum":
        return Fraction(pieces.dsum)
    if math == "avg":
        return Fraction(pieces.dsum) / pieces.numbers if pieces.numbers else Fraction(0)
    if math in ("min", "max"):
        found = pieces.low if math == "min" else pieces.high
        return Fraction(found) if found is not None else Fraction(0)
    if pieces.numbers == 0 or pieces.lo is None or pieces.hi is None:
        return Fraction(0)
    p, q = QUANTILES[math]
    rank = Fraction((pieces.numbers - 1) * p % q, q)
    return Fraction(pieces.lo) + (Fraction(pieces.hi) - Fraction(pieces.lo)) * rank


def shown(math: str | None, value: Fraction | None) -> Number | None:
    """The answered number: counts as integers, everything else as the nearest float."""
    return None if value is None else number(math, value)


def number(math: str | None, value: Fraction) -> Number:
    if math in COUNT_MATHS and value.denominator == 1:
        return int(value)
    return float(value)


def build(request: TrendsRequest, columns: MaterializedColumns = NONE) -> tuple[str, dict[str, Any]]:
    """The SQL and parameters, reading event properties from their materialized `columns`, if any."""
    specs = [SeriesSpec(s.event, s.math, s.property, s.filters) for s in request.series]
    return trends_sql(specs, request.periods(), request.interval, request.breakdown, request.filters, columns)


Key = tuple[int, int, tuple[int, int], bool, tuple[Any, ...]]


def collect(rows: list[tuple[Any, ...]]) -> dict[Key, Pieces]:
    """(series, period, time key, is_total, breakdown bucket) -> pieces."""
    found: dict[Key, Pieces] = {}
    for series, period, k1, k2, is_total, bk, events, persons, dsum, numbers, skipped, *picks in rows:
        lo, hi, low, high = picks
        found[(int(series), int(period), (int(k1), int(k2)), bool(is_total), tuple(bk))] = Pieces(
            int(events), int(persons), Decimal(dsum), int(numbers), int(skipped), lo, hi, low, high
        )
    return found


def breakdown_order(request: TrendsRequest, found: dict[Key, Pieces], days: int) -> list[tuple[Any, ...]]:
    """The buckets to list: the top values by the first series' exact total, then 'other' if used."""
    first = request.series[0].math
    values = {key[4] for key in found if key[4][0] != OTHER_KIND}
    last = request.periods()[0].buckets[-1].key

    def total(bk: tuple[Any, ...]) -> Fraction:
        if first in ACTIVE_DAYS:
            return value_of(first, found.get((0, 0, last, False, bk), Pieces()), days)
        return value_of(first, found.get((0, 0, (0, 0), True, bk), Pieces()), days)

    ordered = sorted(values, key=lambda bk: (-total(bk), bk))
    others = [key[4] for key in found if key[4][0] == OTHER_KIND][:1]
    return ordered + others


def parse(rows: list[tuple[Any, ...]], request: TrendsRequest) -> TrendsResponse:
    periods = request.periods()
    found = collect(rows)
    days = [(p.local.last - p.local.first).days + 1 for p in periods]
    if request.breakdown is None:
        order: list[tuple[Any, ...]] = [(3, 0.0, "")]
    else:
        order = breakdown_order(request, found, days[0])
    results, exact = [], {}
    for i, series in enumerate(request.series):
        letter = formulas.LETTERS[i]
        for bk in order:
            per_period = [
                series_values(series.math, i, p, period, bk, found, days[p])
                for p, period in enumerate(periods)
            ]
            exact[(letter, bk)] = per_period
            results.append(result_of(series, letter, bk, request.breakdown is not None, periods, per_period))
    response = TrendsResponse(results=results)
    if request.formula is not None:
        tree = formulas.parse(request.formula, len(request.series))
        response.formula = [formula_result(request, tree, bk, periods, exact) for bk in order]
    return response


@dataclass
class Values:
    """One series' exact values in one period for one breakdown bucket."""

    data: list[Fraction]
    total: Fraction
    skipped: int | None


def series_values(
    math: str, i: int, p: int, period: Period, bk: tuple[Any, ...], found: dict[Key, Pieces], days: int
) -> Values:
    data = [value_of(math, found.get((i, p, b.key, False, bk), Pieces()), b.days) for b in period.buckets]
    whole = found.get((i, p, (0, 0), True, bk), Pieces())
    total = data[-1] if math in ACTIVE_DAYS else value_of(math, whole, days)
    return Values(data, total, whole.skipped if math in PROPERTY_MATHS else None)


def labels(period: Period) -> list[str]:
    return [b.label for b in period.buckets]


def bucket_fields(bk: tuple[Any, ...], broken_down: bool) -> dict[str, Any]:
    if bk[0] == OTHER_KIND:
        return {"breakdown_value": "Other", "other": True}
    return {"breakdown_value": bucket_value(*bk) if broken_down else None, "other": False}


def result_of(
    series: Series,
    letter: str,
    bk: tuple[Any, ...],
    broken_down: bool,
    periods: list[Period],
    values: list[Values],
) -> TrendResult:
    math = series.math
    compare = None
    if len(periods) > 1:
        before = values[1]
        compare = Compared(
            labels=labels(periods[1]),
            data=[shown(math, v) for v in before.data],
            total=shown(math, before.total),
            skipped=before.skipped,
        )
    return TrendResult(
        series=letter,
        label=series.label or series.event,
        **bucket_fields(bk, broken_down),
        labels=labels(periods[0]),
        data=[number(math, v) for v in values[0].data],
        total=number(math, values[0].total),
        skipped=values[0].skipped,
        compare=compare,
    )


def formula_result(
    request: TrendsRequest,
    tree: formulas.Node,
    bk: tuple[Any, ...],
    periods: list[Period],
    exact: dict[tuple[str, tuple[Any, ...]], list[Values]],
) -> FormulaResult:
    letters = formulas.LETTERS[: len(request.series)]

    def over(p: int) -> tuple[list[Number | None], Number | None]:
        series = {letter: exact[(letter, bk)][p] for letter in letters}
        data = [
            shown(None, formulas.evaluate(tree, {k: v.data[j] for k, v in series.items()}))
            for j in range(len(periods[p].buckets))
        ]
        return data, shown(None, formulas.evaluate(tree, {k: v.total for k, v in series.items()}))

    data, total = over(0)
    compare = None
    if len(periods) > 1:
        before, before_total = over(1)
        compare = Compared(labels=labels(periods[1]), data=before, total=before_total)
    return FormulaResult(
        formula=str(request.formula),
        **bucket_fields(bk, request.breakdown is not None),
        labels=labels(periods[0]),
        data=data,
        total=total,
        compare=compare,
    )


async def run_trends(clickhouse: ClickHouse, request: TrendsRequest, timeout: float) -> TrendsResponse:
    """Build, execute (FINAL, with the timeout) and parse one trend."""
    sql, params = build(request, clickhouse.materialized)
    rows = await clickhouse.query(sql, params, settings=FINAL_SETTINGS, timeout=timeout)
    return parse(rows, request)
