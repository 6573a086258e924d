"""The SQL behind a trend: one statement for every series, period (the range and, with compare, the
one before) and breakdown value, so all of them read the same snapshot of the table.

Each series' rows are its deduplicated events (FINAL) inside the period's local days (earlier days too
for weekly_active / monthly_active, which look back), with the person, the local day, the time bucket
key, the breakdown bucket, the property read for arithmetic (`x`, NULL when not a usable number) and
whether a set value was skipped (`bad`). Each part then answers uniform rows

    (series, period, k1, k2, is_total, bk, events, persons, dsum, numbers, skipped, lo, hi, low, high)

per time bucket (and once per breakdown bucket for the whole period, `is_total`), carrying what the
series' math needs; trends.py turns them into exact values. Exact throughout: counts, Decimal sums
(Decimal256, which cannot overflow here), and for median and percentiles the two values around the
rank, interpolated exactly in Python.

With a breakdown, `top` holds the 25 values with the largest first-series total over the range (exact,
ties by the bucket order); every other value is `OTHER`, mapped before counting so persons are counted
once across the merged values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from services.query.filters import PropertyFilter, PropertyRef, all_filters_sql, bucket_sql, json_sql
from services.query.intervals import Bucket, Interval, key_sql
from services.query.timezones import LocalRange
from shared.contracts import property_types as pt
from shared.contracts.storage import EVENTS_TABLE, PERSON

TOP_BREAKDOWN_VALUES = 25
ALL_EVENTS = "$all"
OTHER_KIND = 9
OTHER = f"(toUInt8({OTHER_KIND}), toFloat64(0), '')"
NO_BREAKDOWN = f"(toUInt8({pt.BUCKET_NONE}), toFloat64(0), '')"
ACTIVE_DAYS = {"weekly_active": 7, "monthly_active": 30}
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
    params, breakdown = context["params"], context["breakdown"]
    lookback = ACTIVE_DAYS.get(spec.math, 1) - 1
    local = LocalRange(period.local.zone, period.local.first - timedelta(days=lookback), period.local.last)
    prefix = f"z{i}{p}"
    params.update(local.parameters(prefix))
    conditions = [local.in_range_sql(prefix=prefix)]
    if spec.event != ALL_EVENTS:
        params[f"s{i}_e"] = spec.event
        conditions.insert(0, f"event = {{s{i}_e:String}}")
    conditions.append(all_filters_sql(spec.filters, f"s{i}f", params))
    conditions.append(context["global_filters"])
    x, bad = NO_NUMBER, "toUInt8(0)"
    if spec.property is not None:
        params[f"s{i}_x"] = spec.property.property
        source, key = json_sql(spec.property), f"{{s{i}_x:String}}"
        x = pt.as_decimal(source, key)
        bad = f"toUInt8({pt.is_set(source, key)} AND isNull(x))"
    bk = bucket_sql(breakdown, "bk_k", params) if breakdown is not None else NO_BREAKDOWN
    return f"""
        SELECT {PERSON} AS person, {local.local_day_sql(prefix=prefix)} AS day,
               {key_sql(interval, local, prefix)} AS tb, {bk} AS raw_bk, {x} AS x, {bad} AS bad
        FROM {EVENTS_TABLE} FINAL
        WHERE {" AND ".join(conditions)}"""


def mapped(rows: str, breakdown: bool) -> str:
    """The rows with `bk`: the breakdown bucket, or OTHER beyond the top values."""
    bk = f"if(raw_bk IN (SELECT bk FROM top), raw_bk, {OTHER})" if breakdown else "raw_bk"
    return f"SELECT person, day, tb, x, bad, {bk} AS bk FROM ({rows})"


def quantile_pick(p: int, q: int, higher: bool) -> str:
    """The value at rank floor((n - 1) p / q) of the sorted numbers, or the one after it when `higher`
    and the rank has a fraction (1-based arrays; NULL without numbers)."""
    rank = f"intDiv((length(xs) - 1) * {p}, {q}) + 1"
    if higher:
        rank += f" + ((length(xs) - 1) * {p} % {q} > 0)"
    return f"if(length(xs) = 0, {NO_NUMBER}, arrayElement(xs, {rank}))"


def part_sql(i: int, p: int, spec: SeriesSpec, period: Period, rows: str, breakdown: bool) -> str:
    """The uniform rows (module doc) of one series in one period."""
    head = f"toInt8({i}) AS series, toUInt8({p}) AS period"
    source = mapped(rows, breakdown)
    if spec.math in ACTIVE_DAYS:
        return active_part_sql(i, p, spec.math, period, source, head)
    persons = "uniqExact(person)" if spec.math in ("unique_persons", "per_person_avg") else "toUInt64(0)"
    dsum = f"coalesce(sum(toDecimal256(x, 6)), {DECIMAL_0})" if spec.math in ("sum", "avg") else DECIMAL_0
    low = "min(x)" if spec.math == "min" else NO_NUMBER
    high = "max(x)" if spec.math == "max" else NO_NUMBER
    lo = hi = NO_NUMBER
    if spec.math in QUANTILES:
        picks = (quantile_pick(*QUANTILES[spec.math], higher) for higher in (False, True))
        lo, hi = (pick.replace("xs", "arraySort(groupArray(x))") for pick in picks)
    if spec.math == "dau":  # persons = the sum over the bucket's days of each day's persons
        source = f"""
            SELECT tb, day, bk, count() AS events, uniqExact(person) AS day_persons FROM ({source})
            GROUP BY tb, day, bk"""
        persons, counted = "sum(day_persons)", "sum(events)"
    else:
        counted = "count()"
    return f"""
        SELECT {head}, slot.1.1 AS k1, slot.1.2 AS k2, slot.2 AS is_total, bk,
               {counted} AS events, {persons} AS persons, {dsum} AS dsum,
               {"count(x)" if spec.math in PROPERTY_MATHS else "toUInt64(0)"} AS numbers,
               {"sum(bad)" if spec.math in PROPERTY_MATHS else "toUInt64(0)"} AS skipped,
               {lo} AS lo, {hi} AS hi, {low} AS low, {high} AS high
        FROM ({source})
        ARRAY JOIN [(tb, toUInt8(0)), ((toInt64(0), toInt64(0)), toUInt8(1))] AS slot
        GROUP BY slot, bk"""


def active_part_sql(i: int, p: int, math: str, period: Period, source: str, head: str) -> str:
    """weekly_active / monthly_active: persons with an event in the `window` local days ending on each
    bucket's last day (the period's total is its last bucket's value: trends.py)."""
    name = f"a{i}{p}"
    ends = f"{{{name}_ends:Array(Int64)}}"
    window = ACTIVE_DAYS[math]
    return f"""
        SELECT {head}, {{{name}_k1:Array(Int64)}}[j] AS k1, {{{name}_k2:Array(Int64)}}[j] AS k2,
               toUInt8(0) AS is_total, bk, toUInt64(0) AS events, uniqExact(person) AS persons,
               {DECIMAL_0} AS dsum, toUInt64(0) AS numbers, toUInt64(0) AS skipped,
               {NO_NUMBER} AS lo, {NO_NUMBER} AS hi, {NO_NUMBER} AS low, {NO_NUMBER} AS high
        FROM (SELECT DISTINCT person, day, bk FROM ({source}))
        ARRAY JOIN arrayFilter(j -> {ends}[j] >= day AND {ends}[j] < day + {window}, arrayEnumerate({ends}))
            AS j
        GROUP BY j, bk"""


def active_parameters(i: int, p: int, period: Period) -> dict[str, Any]:
    name = f"a{i}{p}"
    return {
        f"{name}_ends": [b.last_day for b in period.buckets],
        f"{name}_k1": [b.key[0] for b in period.buckets],
        f"{name}_k2": [b.key[1] for b in period.buckets],
    }


def rank_sql(spec: SeriesSpec, last_day: int) -> str:
    """The first series' exact total over the range for one breakdown value, as Decimal256(24): the
    order of the top values (ties by the bucket)."""
    math = spec.math
    if math == "total":
        value = "count()"
    elif math == "unique_persons":
        value = "uniqExact(person)"
    elif math == "dau":
        value = "uniqExact((person, day))"  # the days' persons summed; the days are the same for all
    elif math in ACTIVE_DAYS:
        value = f"uniqExactIf(person, day > {last_day - ACTIVE_DAYS[math]})"
    elif math == "per_person_avg":
        value = "if(uniqExact(person) = 0, 0, toDecimal256(count(), 24) / uniqExact(person))"
    elif math == "sum":
        value = f"coalesce(sum(toDecimal256(x, 6)), {DECIMAL_0})"
    elif math == "avg":
        value = "if(count(x) = 0, 0, toDecimal256(sum(toDecimal256(x, 6)), 24) / count(x))"
    elif math in ("min", "max"):
        value = f"coalesce({math}(x), 0)"
    else:
        p, q = QUANTILES[math]
        lo, hi = (quantile_pick(p, q, h).replace("xs", "arraySort(groupArray(x))") for h in (False, True))
        rem = f"((count(x) - 1) * {p} % {q})"
        value = f"if(count(x) = 0, 0, toDecimal256({lo}, 24) + (toDecimal256({hi}, 24) - {lo}) * {rem} / {q})"
    return f"toDecimal256({value}, 24)"


def top_sql(specs: list[SeriesSpec], current_rows: list[str], last_day: int) -> str:
    """The top values: every breakdown value of any series' range, by the first series' total."""
    parts = [f"SELECT raw_bk, {rank_sql(specs[0], last_day)} AS r FROM ({current_rows[0]}) GROUP BY raw_bk"]
    parts += [f"SELECT DISTINCT raw_bk, toDecimal256(0, 24) AS r FROM ({rows})" for rows in current_rows[1:]]
    union = " UNION ALL ".join(parts)
    return f"""
        SELECT raw_bk AS bk FROM ({union})
        GROUP BY raw_bk ORDER BY max(r) DESC, raw_bk LIMIT {TOP_BREAKDOWN_VALUES}"""


def trends_sql(
    specs: list[SeriesSpec],
    periods: list[Period],
    interval: Interval,
    breakdown: PropertyRef | None,
    global_filters: list[PropertyFilter],
) -> tuple[str, dict[str, Any]]:
    """The whole statement and its parameters."""
    params: dict[str, Any] = {}
    context = {
        "params": params,
        "breakdown": breakdown,
        "global_filters": all_filters_sql(global_filters, "gf", params),
    }
    parts, current_rows = [], []
    for p, period in enumerate(periods):
        for i, spec in enumerate(specs):
            rows = rows_sql(i, p, spec, period, interval, context)
            if p == 0:
                current_rows.append(rows)
            if spec.math in ACTIVE_DAYS:
                params.update(active_parameters(i, p, period))
            parts.append(part_sql(i, p, spec, period, rows, breakdown is not None))
    body = "\nUNION ALL\n".join(parts)
    if breakdown is None:
        return body, params
    last_day = periods[0].buckets[-1].last_day
    listed = f"""
        SELECT toInt8(-1) AS series, toUInt8(0) AS period, toInt64(0) AS k1, toInt64(0) AS k2,
               toUInt8(0) AS is_total, bk, toUInt64(0) AS events, toUInt64(0) AS persons, {DECIMAL_0} AS dsum,
               toUInt64(0) AS numbers, toUInt64(0) AS skipped, {NO_NUMBER} AS lo, {NO_NUMBER} AS hi,
               {NO_NUMBER} AS low, {NO_NUMBER} AS high
        FROM top"""
    return f"WITH top AS ({top_sql(specs, current_rows, last_day)})\n{body}\nUNION ALL{listed}", params
