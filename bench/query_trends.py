"""`make bench-query`, query section: issue 15's trends against DuckDB and PostgreSQL, and the schema
discovery calls, on the query data (bench/query_compare.py runs them as streamed and settled).

* "trend_unique": a 30-day daily trend of unique persons of page_view, broken down by plan (top 25 by
  the range's persons, the rest merged into Other);
* "trend_sum": a 30-day daily sum of amount of page_view where plan = pro.

Ours runs through the service's runner (`run_trends`: building the SQL, FINAL, exact parsing). The
baselines compute the same answer in their own SQL over the same deduplicated rows and the same
resolved persons (their `persons` table, bench/query_baselines.py), by the typing rule (a breakdown or
filter value is a JSON string, only JSON numbers are summed, a set value that is not one is skipped);
their rows become a `TrendsResponse` here, compared with ours field by field (sums as the nearest
float of the exact decimal sum, as ours answers them).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import datetime, time, timedelta
from decimal import Decimal
from time import perf_counter
from typing import Any

import duckdb
import psycopg

from bench.report import Figure
from services.query import discovery, trends
from shared.clickhouse import ClickHouse
from shared.contracts.catalogue import EVENT_CATALOGUE, PROPERTY_CATALOGUE
from shared.contracts.storage import EVENTS_TABLE

RANGE = {"start_date": "2023-01-15", "end_date": "2023-02-13"}
UNIQUE_BY_PLAN = {"series": [{"event": "page_view", "math": "unique_persons"}], "breakdown": "plan", **RANGE}
PRO_SUM = {
    "series": [
        {
            "event": "page_view",
            "math": "sum",
            "property": "amount",
            "filters": [{"property": "plan", "op": "eq", "value": "pro"}],
        }
    ],
    **RANGE,
}
LABELS = {
    "trend_unique": "trend: unique persons by plan, 30 days daily",
    "trend_sum": "trend: sum of amount where plan = pro, 30 days daily",
}
TARGETS = {"ours": 100.0, "DuckDB": 3.0}  # issue 15; it sets no PostgreSQL ratio for trends
TIMEOUT = 600.0
TOP = 25

# Both engines: the person of each event, its UTC day and its plan when that is a JSON string.
DUCKDB_ROWS = """
SELECT coalesce(p.person, e.user_id) AS person, CAST(e.timestamp AS DATE) AS day,
       CASE WHEN json_type(e.properties, '$.plan') = 'VARCHAR'
            THEN json_extract_string(e.properties, '$.plan') END AS value
FROM events e LEFT JOIN persons p ON p.distinct_id = e.user_id
WHERE e.event = $event AND e.timestamp >= $range_start AND e.timestamp < $range_end"""
POSTGRES_ROWS = """
SELECT coalesce(p.person, e.user_id) AS person, e.timestamp::date AS day,
       CASE WHEN json_typeof(e.properties::json -> 'plan') = 'string'
            THEN e.properties::json ->> 'plan' END AS value
FROM events e LEFT JOIN persons p ON p.distinct_id = e.user_id
WHERE e.event = %(event)s AND e.timestamp >= %(range_start)s AND e.timestamp < %(range_end)s"""
# (value, other, day or NULL for the range, persons): the top values by the range's persons (ties by
# value, a missing plan after the strings), every other value merged into one "other" row.
UNIQUE = """
WITH e AS (SELECT person, day, value, value IS NULL AS missing, coalesce(value, '') AS v FROM ({rows}) r),
top AS (SELECT missing, v FROM e GROUP BY missing, v
        ORDER BY count(DISTINCT person) DESC, missing, v {collate} LIMIT {top}),
c AS (SELECT CASE WHEN t.v IS NULL THEN NULL ELSE e.value END AS value, t.v IS NULL AS other, day, person
      FROM e LEFT JOIN top t ON t.missing = e.missing AND t.v = e.v)
SELECT value, other, day, count(DISTINCT person) FROM c GROUP BY value, other, day
UNION ALL
SELECT value, other, NULL, count(DISTINCT person) FROM c GROUP BY value, other"""
DUCKDB_SUM = """
SELECT CAST(timestamp AS DATE) AS day,
       sum(CASE WHEN json_type(properties, '$.amount') IN ('UBIGINT', 'BIGINT', 'DOUBLE')
                THEN TRY_CAST(json_extract(properties, '$.amount') AS DECIMAL(38, 6)) END),
       count(*) FILTER (WHERE json_type(properties, '$.amount')
                              NOT IN ('UBIGINT', 'BIGINT', 'DOUBLE', 'NULL'))
FROM events
WHERE event = $event AND timestamp >= $range_start AND timestamp < $range_end
  AND json_type(properties, '$.plan') = 'VARCHAR' AND json_extract_string(properties, '$.plan') = $value
GROUP BY day"""
POSTGRES_SUM = """
SELECT timestamp::date AS day,
       sum(CASE WHEN json_typeof(properties::json -> 'amount') = 'number'
                THEN (properties::json ->> 'amount')::numeric END),
       count(*) FILTER (WHERE json_typeof(properties::json -> 'amount') NOT IN ('number', 'null'))
FROM events
WHERE event = %(event)s AND timestamp >= %(range_start)s AND timestamp < %(range_end)s
  AND json_typeof(properties::json -> 'plan') = 'string' AND properties::json ->> 'plan' = %(value)s
GROUP BY day"""


def requests() -> dict[str, trends.TrendsRequest]:
    return {
        "trend_unique": trends.TrendsRequest(**UNIQUE_BY_PLAN).checked(366),
        "trend_sum": trends.TrendsRequest(**PRO_SUM).checked(366),
    }


def our_calls(clickhouse: ClickHouse) -> dict[str, Callable[[], Awaitable[Any]]]:
    def call(request: trends.TrendsRequest) -> Callable[[], Awaitable[Any]]:
        return lambda: trends.run_trends(clickhouse, request, TIMEOUT)

    return {question: call(request) for question, request in requests().items()}


def parameters(request: trends.TrendsRequest) -> dict[str, Any]:
    """The series' event, its UTC days as naive times (both baselines store UTC without a zone) and
    the value of its filter, if any."""
    (series,) = request.series
    found = {
        "event": series.event,
        "range_start": datetime.combine(request.start_date, time()),
        "range_end": datetime.combine(request.end_date + timedelta(days=1), time()),
    }
    if series.filters:
        found["value"] = str(series.filters[0].value)
    return found


def unique_response(request: trends.TrendsRequest, rows: list[tuple[Any, ...]]) -> trends.TrendsResponse:
    """Our response from (value, other, day or None, persons): values by the range's persons, ties by
    value (missing last), Other after them."""
    period = request.periods()[0]
    per_day: dict[tuple[Any, bool], dict[str, int]] = defaultdict(dict)
    totals: dict[tuple[Any, bool], int] = {}
    for value, other, day, persons in rows:
        if day is None:
            totals[(value, bool(other))] = int(persons)
        else:
            per_day[(value, bool(other))][str(day)] = int(persons)
    order = sorted(totals, key=lambda key: (key[1], -totals[key], key[0] is None, key[0] or ""))
    series = request.series[0]
    return trends.TrendsResponse(
        results=[
            trends.TrendResult(
                series="A",
                label=series.event,
                breakdown_value="Other" if other else value,
                other=other,
                labels=trends.labels(period),
                data=[per_day[(value, other)].get(label, 0) for label in trends.labels(period)],
                total=totals[(value, other)],
            )
            for value, other in order
        ]
    )


def sum_response(request: trends.TrendsRequest, rows: list[tuple[Any, ...]]) -> trends.TrendsResponse:
    """Our response from (day, exact sum or None, skipped values)."""
    period = request.periods()[0]
    sums = {str(day): Decimal(total or 0) for day, total, _ in rows}
    return trends.TrendsResponse(
        results=[
            trends.TrendResult(
                series="A",
                label=request.series[0].event,
                labels=trends.labels(period),
                data=[float(sums.get(label, Decimal(0))) for label in trends.labels(period)],
                total=float(sum(sums.values(), Decimal(0))),
                skipped=sum(int(skipped) for _, _, skipped in rows),
            )
        ]
    )


def baseline_calls(
    duck: duckdb.DuckDBPyConnection, pg: psycopg.Connection | None
) -> dict[str, dict[str, Callable[[], Any]]]:
    """Per question and engine (PostgreSQL when given), a call returning our response model built from
    the engine's rows."""
    unique, pro_sum = requests().values()
    up, sp = parameters(unique), parameters(pro_sum)
    duck_unique = UNIQUE.format(rows=DUCKDB_ROWS, collate="", top=TOP)
    pg_unique = UNIQUE.format(rows=POSTGRES_ROWS, collate='COLLATE "C"', top=TOP)
    calls: dict[str, dict[str, Callable[[], Any]]] = {
        "trend_unique": {"DuckDB": lambda: unique_response(unique, duck.execute(duck_unique, up).fetchall())},
        "trend_sum": {"DuckDB": lambda: sum_response(pro_sum, duck.execute(DUCKDB_SUM, sp).fetchall())},
    }
    if pg is not None:
        calls["trend_unique"]["PostgreSQL"] = lambda: unique_response(
            unique, pg.execute(pg_unique, up).fetchall()
        )
        calls["trend_sum"]["PostgreSQL"] = lambda: sum_response(
            pro_sum, pg.execute(POSTGRES_SUM, sp).fetchall()
        )
    return calls


DISCOVERY = {
    "discovery: GET /events": lambda ch: discovery.list_events(ch, discovery.Listing(), TIMEOUT),
    "discovery: GET /properties?event=page_view": lambda ch: discovery.list_properties(
        ch, discovery.PropertyListing(event="page_view"), TIMEOUT
    ),
    "discovery: GET /properties/plan/values": lambda ch: discovery.list_values(
        ch, "plan", discovery.PropertyListing(), TIMEOUT
    ),
}
PLANS = {"free", "starter", "pro", "business", "enterprise"}
EVENT_NAMES = f"SELECT DISTINCT event FROM {EVENTS_TABLE}"
CATALOGUE_PARTS = f"""
SELECT table, count() FROM system.parts
WHERE database = {{db:String}} AND table IN ('{EVENT_CATALOGUE}', '{PROPERTY_CATALOGUE}') AND active
GROUP BY table ORDER BY table"""


async def check_discovery(clickhouse: ClickHouse, answers: list[Any]) -> None:
    """The catalogue lists the events stored, page_view's plan and amount, and the five plans."""
    events, properties, values = answers
    stored = {str(name) for (name,) in await clickhouse.query(EVENT_NAMES)}
    if {e.event for e in events.events} != stored:
        raise AssertionError(f"discovery lists {events.events!r}, the table holds {stored!r}")
    kinds = {p.property: p.type for p in properties.properties}
    if kinds.get("plan") != "string" or kinds.get("amount") != "number":
        raise AssertionError(f"page_view's properties listed as {kinds!r}")
    if {v.value for v in values.values} != PLANS:
        raise AssertionError(f"plan's values listed as {values.values!r}")


async def discovery_figures(clickhouse: ClickHouse, runs: int, state: str) -> list[Figure]:
    """Each discovery call `runs` times after a first call (checked), in turns; no baseline."""
    first = {}
    for label, call in DISCOVERY.items():
        started = perf_counter()
        first[label] = (await call(clickhouse), (perf_counter() - started) * 1000)
    await check_discovery(clickhouse, [answer for answer, _ in first.values()])
    ms: dict[str, list[float]] = {label: [] for label in DISCOVERY}
    for _ in range(runs):
        for label, call in DISCOVERY.items():
            started = perf_counter()
            await call(clickhouse)
            ms[label].append((perf_counter() - started) * 1000)
    parts = await catalogue_parts(clickhouse)
    return [
        Figure(
            f"{label}, {state}: ours",
            "ms",
            ms[label],
            note=f"first call {first[label][1]:.0f} ms; the catalogue's active parts: {parts}",
        )
        for label in DISCOVERY
    ]


async def catalogue_parts(clickhouse: ClickHouse) -> str:
    rows = await clickhouse.query(CATALOGUE_PARTS, {"db": clickhouse.database})
    return ", ".join(f"{table} {parts}" for table, parts in rows)
