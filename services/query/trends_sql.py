"""The SQL behind a trend: one statement for every series, period (the range and, with compare, the
one before) and breakdown value, so all of them read the same snapshot of the table, and each series'
events are read once per period.

Each series' rows are its deduplicated events (FINAL) inside the period's local days (earlier days too
for weekly_active / monthly_active, which look back), with the person (0 for maths that count none),
the local day, the time bucket key, the breakdown value's JSON text (`raw_v`; from its materialized
column when it has one), the property read for arithmetic (`x`, NULL when not a usable number) and
whether a set value was skipped (`bad`). Then, in stages over small intermediate rows:

1. `states`: per time bucket (per day too for dau) and raw breakdown value: counts, sums, mins, maxes,
   the numbers themselves for quantiles, and persons as a uniqExact *state*, so that buckets merge
   into the period's total, and values into "Other", counting each person once. Rows are grouped by
   the value's JSON text, and the groups of texts with one bucket (`1` and `1.0`) then merged: the
   bucket is computed per group, not per row;
2. `ranked`: with a breakdown, the first series' exact total per value over the range (window
   functions merging its buckets' states), and the top 25 of the values seen in the range (ties by the
   bucket order); every other value becomes OTHER;
3. the states merged per (bucket, value or OTHER, day) and per (value, day) for the total
   (`is_total`), then summed over the days.

The answer's rows are (series, period, k1, k2, is_total, bk, events, persons, dsum, numbers, skipped,
lo, hi, low, high), carrying what each math needs; trends.py turns them into exact values: counts,
Decimal sums (Decimal256, which cannot overflow here), and for median and percentiles the two values
around the rank, interpolated exactly in Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from services.query.filters import PropertyFilter, PropertyRef, all_filters_sql, value_source
from services.query.intervals import Bucket, Interval, key_sql
from services.query.timezones import LocalRange
from shared.contracts import property_types as pt
from shared.contracts.materialized import NONE, MaterializedColumns
from shared.contracts.storage import EVENTS_TABLE, PERSON

TOP_BREAKDOWN_VALUES = 25
ALL_EVENTS = "$all"
OTHER_KIND = 9
OTHER = f"(toUInt8({OTHER_KIND}), toFloat64(0), '')"
NO_BREAKDOWN = f"(toUInt8({pt.BUCKET_NONE}), toFloat64(0), '')"
ACTIVE_DAYS = {"weekly_active": 7, "monthly_active": 30}
PERSON_MATHS = {"unique_persons", "per_person_avg", "dau", *ACTIVE_DAYS}
QUANTILES = {"median": (1, 2), "p90": (9, 10), "p95": (19, 20), "p99": (99, 100)}
PROPERTY_MATHS = {"sum", "avg", "min", "max", *QUANTILES}
DECIMAL_0 = "toDecimal256(0, 6)"
NO_NUMBER = "CAST(NULL, 'Nullable(Decimal(38, 6))')"


@dataclass(frozen=True)
class SeriesSpec:
    """What the SQL needs of one series."""

    event: str
    math: str
    property: PropertyRef | None
    filters: list[PropertyFilter]


@dataclass(frozen=True)
class Period:
    """One period of the trend: its local days and its buckets."""

    local: LocalRange
    buckets: list[Bucket]


def rows_sql(
    i: int, p: int, spec: SeriesSpec, period: Period, interval: Interval, context: dict[str, Any]
) -> str:
    """The series' rows in one period (see the module doc)."""
    params, breakdown, columns = context["params"], context["breakdown"], context["columns"]
    lookback = ACTIVE_DAYS.get(spec.math, 1) - 1
    local = LocalRange(period.local.zone, period.local.first - timedelta(days=lookback), period.local.last)
    prefix = f"z{i}{p}"
    params.update(local.parameters(prefix))
    conditions = [local.in_range_sql(prefix=prefix)]
    if spec.event != ALL_EVENTS:
        params[f"s{i}_e"] = spec.event
        conditions.insert(0, f"event = {{s{i}_e:String}}")
    conditions.append(all_filters_sql(spec.filters, f"s{i}f", params, columns))
    conditions.append(context["global_filters"])
    x, bad = NO_NUMBER, "toUInt8(0)"
    if spec.property is not None:
        source, key = value_source(spec.property, f"s{i}_x", params, columns)
        x = pt.as_decimal(source, key)
        bad = f"toUInt8({pt.is_set(source, key)} AND isNull(x))"
    # The breakdown value's JSON text: rows are grouped by it, and its bucket computed once per group.
    text = pt.raw(*value_source(breakdown, "bk_k", params, columns)) if breakdown is not None else "''"
    # Maths that count no persons skip the person lookup.
    person = PERSON if spec.math in PERSON_MATHS else "toUInt64(0)"
    return f"""
        SELECT {person} AS person, {local.local_day_sql(prefix=prefix)} AS day,
               {key_sql(interval, local, prefix)} AS tb, {text} AS raw_v, {x} AS x, {bad} AS bad
        FROM {EVENTS_TABLE} FINAL
        WHERE {" AND ".join(conditions)}"""


def quantile_pick(p: int, q: int, higher: bool, xs: str) -> str:
    """The value at rank floor((n - 1) p / q) of the sorted numbers `xs`, or the one after it when
    `higher` and the rank has a fraction (1-based arrays; NULL without numbers)."""
    rank = f"intDiv((length({xs}) - 1) * {p}, {q}) + 1"
    if higher:
        rank += f" + ((length({xs}) - 1) * {p} % {q} > 0)"
    return f"if(length({xs}) = 0, {NO_NUMBER}, arrayElement({xs}, {rank}))"


def states_sql(i: int, p: int, spec: SeriesSpec, period: Period, rows: str, broken_down: bool) -> str:
    """Stage 1 of one series in one period (module doc)."""
    head = f"toInt8({i}) AS series, toUInt8({p}) AS period"
    math = spec.math
    wanted = math in PERSON_MATHS
    persons = f"uniqExactState{'' if wanted else 'If'}(person{'' if wanted else ', false'}) AS persons"
    numbers = math in PROPERTY_MATHS
    dsum = f"coalesce(sum(toDecimal256(x, 6)), {DECIMAL_0})" if math in ("sum", "avg") else DECIMAL_0
    low, high = ("min(x)" if math == "min" else NO_NUMBER), ("max(x)" if math == "max" else NO_NUMBER)
    pieces = f"""
               count() AS events, {persons}, {dsum} AS dsum,
               {"count(x)" if numbers else "toUInt64(0)"} AS numbers,
               {"sum(bad)" if numbers else "toUInt64(0)"} AS skipped, {low} AS low, {high} AS high,
               groupArrayIf(assumeNotNull(x), {"isNotNull(x)" if math in QUANTILES else "false"}) AS xs"""
    if math in ACTIVE_DAYS:
        name, window = f"a{i}{p}", ACTIVE_DAYS[math]
        ends = f"{{{name}_ends:Array(Int64)}}"
        return f"""
        SELECT {head}, {{{name}_k1:Array(Int64)}}[j] AS k1, {{{name}_k2:Array(Int64)}}[j] AS k2,
               toUInt8(0) AS is_total, toInt64(0) AS day, raw_bk, {pieces}
        FROM (SELECT DISTINCT person, day AS seen, {pt.bucket("raw_v")} AS raw_bk,
                     CAST(NULL, 'Nullable(Decimal(38, 6))') AS x,
                     toUInt8(0) AS bad FROM ({rows}))
        ARRAY JOIN arrayFilter(j -> {ends}[j] >= seen AND {ends}[j] < seen + {window}, arrayEnumerate({ends}))
            AS j
        GROUP BY j, raw_bk"""
    by_day = "day" if math == "dau" else "toInt64(0)"
    if not broken_down:
        return f"""
        SELECT {head}, tb.1 AS k1, tb.2 AS k2, toUInt8(0) AS is_total, {by_day} AS day,
               {NO_BREAKDOWN} AS raw_bk, {pieces}
        FROM ({rows})
        GROUP BY k1, k2, day"""
    # Grouped by the value's text, then the texts' groups merged per bucket (`1` and `1.0` are one).
    return f"""
        SELECT series, period, k1, k2, is_total, day, {pt.bucket("raw_v")} AS raw_bk, sum(events) AS events,
               uniqExactMergeState(persons) AS persons, sum(dsum) AS dsum, sum(numbers) AS numbers,
               sum(skipped) AS skipped, min(low) AS low, max(high) AS high, groupArrayArray(xs) AS xs
        FROM (SELECT {head}, tb.1 AS k1, tb.2 AS k2, toUInt8(0) AS is_total, {by_day} AS day, raw_v, {pieces}
              FROM ({rows})
              GROUP BY k1, k2, day, raw_v)
        GROUP BY series, period, k1, k2, is_total, day, raw_bk"""


def rank_sql(spec: SeriesSpec, last: tuple[int, int]) -> str:
    """A window expression over stage-1 rows: the first series' exact total over the range for the
    row's breakdown value, as Decimal256(24) (its buckets' states merged)."""
    math = spec.math
    mine = "series = 0 AND period = 0"
    window = "OVER (PARTITION BY raw_bk)"
    persons = f"uniqExactMergeIf(persons, {mine}) {window}"
    if math in ACTIVE_DAYS:
        value = f"sumIf(finalizeAggregation(persons), {mine} AND k1 = {last[0]} AND k2 = {last[1]}) {window}"
    elif math == "total":
        value = f"sumIf(events, {mine}) {window}"
    elif math == "unique_persons":
        value = persons
    elif math == "dau":  # the days' persons summed (every value has the same days)
        value = f"sumIf(finalizeAggregation(persons), {mine}) {window}"
    elif math == "per_person_avg":
        value = f"if({persons} = 0, 0, toDecimal256(sumIf(events, {mine}) {window}, 24) / {persons})"
    elif math == "sum":
        value = f"sumIf(dsum, {mine}) {window}"
    elif math == "avg":
        numbers = f"sumIf(numbers, {mine}) {window}"
        value = f"if({numbers} = 0, 0, toDecimal256(sumIf(dsum, {mine}) {window}, 24) / {numbers})"
    elif math in ("min", "max"):
        found = f"{math}If({'low' if math == 'min' else 'high'}, {mine}) {window}"
        value = f"coalesce({found}, 0)"
    else:
        p, q = QUANTILES[math]
        xs = f"arraySort(groupArrayArrayIf(xs, {mine}) {window})"
        lo, hi = quantile_pick(p, q, False, xs), quantile_pick(p, q, True, xs)
        rem = f"((length({xs}) - 1) * {p} % {q})"
        value = (
            f"if(length({xs}) = 0, 0, toDecimal256({lo}, 24) + (toDecimal256({hi}, 24) - {lo}) * {rem} / {q})"
        )
    return f"toDecimal256({value}, 24)"


def ranked_sql(states: str, spec: SeriesSpec, last: tuple[int, int]) -> str:
    """Stage 2: each stage-1 row with `bk`, its value or OTHER beyond the top values."""
    current = "max(period = 0) OVER (PARTITION BY raw_bk)"
    return f"""
        SELECT *, if(in_range AND place <= {TOP_BREAKDOWN_VALUES}, raw_bk, {OTHER}) AS bk
        FROM (SELECT *, dense_rank() OVER (ORDER BY in_range DESC, r DESC, raw_bk) AS place
              FROM (SELECT *, {rank_sql(spec, last)} AS r, {current} AS in_range FROM ({states})))"""


def merged_sql(ranked: str, specs: list[SeriesSpec]) -> str:
    """Stage 3: the states merged per bucket and value (and per value for the whole period, the
    total), summed over the days; the quantiles' two values."""
    picks: dict[str, list[str]] = {"lo": [], "hi": []}
    for i, spec in enumerate(specs):
        if spec.math in QUANTILES:
            p, q = QUANTILES[spec.math]
            xs = "arraySort(groupArrayArray(xs))"  # one row per bucket for these maths
            picks["lo"].append(f"series = {i}, {quantile_pick(p, q, False, xs)}")
            picks["hi"].append(f"series = {i}, {quantile_pick(p, q, True, xs)}")
    lo, hi = (f"multiIf({', '.join(found)}, {NO_NUMBER})" if found else NO_NUMBER for found in picks.values())
    sums = "sum(events) AS events, sum(dsum) AS dsum, sum(numbers) AS numbers, sum(skipped) AS skipped"
    extremes = "min(low) AS low, max(high) AS high, groupArrayArray(xs) AS xs"
    per_bucket = f"""
        SELECT series, period, k1 AS b1, k2 AS b2, day, bk, {sums}, uniqExactMergeState(persons) AS persons,
               {extremes}
        FROM ({ranked})
        GROUP BY series, period, b1, b2, day, bk"""
    per_day = f"""
        SELECT series, period, slot.1 AS k1, slot.2 AS k2, slot.3 AS is_total, day, bk, {sums},
               uniqExactMerge(persons) AS persons, {extremes}
        FROM ({per_bucket})
        ARRAY JOIN [(b1, b2, toUInt8(0)), (toInt64(0), toInt64(0), toUInt8(1))] AS slot
        GROUP BY series, period, k1, k2, is_total, day, bk"""
    return f"""
        SELECT series, period, k1, k2, is_total, bk, sum(events) AS events, sum(persons) AS persons,
               sum(dsum) AS dsum, sum(numbers) AS numbers, sum(skipped) AS skipped,
               {lo} AS lo, {hi} AS hi, min(low) AS low, max(high) AS high
        FROM ({per_day})
        GROUP BY series, period, k1, k2, is_total, bk"""


def active_parameters(i: int, p: int, period: Period) -> dict[str, Any]:
    name = f"a{i}{p}"
    return {
        f"{name}_ends": [b.last_day for b in period.buckets],
        f"{name}_k1": [b.key[0] for b in period.buckets],
        f"{name}_k2": [b.key[1] for b in period.buckets],
    }


def trends_sql(
    specs: list[SeriesSpec],
    periods: list[Period],
    interval: Interval,
    breakdown: PropertyRef | None,
    global_filters: list[PropertyFilter],
    columns: MaterializedColumns = NONE,
) -> tuple[str, dict[str, Any]]:
    """The whole statement and its parameters; event properties with a column in `columns` are read
    from it."""
    params: dict[str, Any] = {}
    context = {
        "params": params,
        "breakdown": breakdown,
        "columns": columns,
        "global_filters": all_filters_sql(global_filters, "gf", params, columns),
    }
    parts = []
    for p, period in enumerate(periods):
        for i, spec in enumerate(specs):
            rows = rows_sql(i, p, spec, period, interval, context)
            if spec.math in ACTIVE_DAYS:
                params.update(active_parameters(i, p, period))
            parts.append(states_sql(i, p, spec, period, rows, breakdown is not None))
    states = "\nUNION ALL\n".join(parts)
    if breakdown is None:
        ranked = f"SELECT *, raw_bk AS bk FROM ({states})"
    else:
        ranked = ranked_sql(states, specs[0], periods[0].buckets[-1].key)
    return merged_sql(ranked, specs), params
