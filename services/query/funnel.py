"""Funnel runner: `build(request) -> (sql, params)` and `parse(rows, request) -> FunnelResponse` for the
steps view; the other views (funnel_views) and the persons list (funnel_persons) use the same units.

A unit (a person, or with `counting: totals` each step-1 event) reaches step k when it has a chain
step 1 -> ... -> step k by the mode's rule (README "Funnels"). count_k counts units reaching step k;
each event_id counts once (the table is read with FINAL). The plain funnel is answered by
funnel_sql, the plain funnel with exclusions by funnel_excluding, everything else by the general
search in funnel_chains; all give per unit its level, the times of its conversion chain and its
bucket's value.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from services.query import funnel_views
from services.query.funnel_models import (
    BreakdownFunnel,
    Funnel,
    FunnelRequest,
    FunnelResponse,
    FunnelStep,
    FunnelTrendsResponse,
    TimeToConvertResponse,
)
from services.query.funnel_sql import TOP_BREAKDOWN_VALUES, buckets_sql
from services.query.funnel_units import entry_unit, units_sql
from services.query.rounding import percentage, seconds
from shared.clickhouse import ClickHouse
from shared.contracts.property_types import bucket_value
from shared.contracts.storage import FINAL_SETTINGS

__all__ = ["FunnelRequest", "FunnelResponse", "build", "parse", "run_funnel"]
AnyFunnelResponse = FunnelResponse | TimeToConvertResponse | FunnelTrendsResponse
Stats = tuple[
    list[int], list[int], list[int], list[int]
]  # per level, then per step: sums, low and high medians


def build(request: FunnelRequest) -> tuple[str, dict[str, Any]]:
    """The steps view: rows (bucket, value, per-level counts, time sums, low and high median times) for
    the total (bucket 0) and each breakdown bucket."""
    params: dict[str, Any] = dict(request.period.parameters())
    by_value = request.breakdown is not None and request.breakdown_attribution == "all_events"
    units = units_sql(request, params, "value" if by_value else entry_unit(request))
    listed = f"SELECT bk, level, times, listed FROM ({units}) WHERE level > 0"
    return buckets_sql(listed, len(request.steps)), params


def parse(rows: list[tuple[Any, ...]], request: FunnelRequest) -> FunnelResponse:
    """The funnel from the total row, and one per bucket when there is a breakdown."""
    names = [s.event for s in request.steps]
    buckets = {int(row[0]): row for row in rows}
    total = buckets.get(0)
    response = FunnelResponse(**funnel_of(names, stats_of(total)).model_dump())
    if request.breakdown is not None:
        response.breakdown = [
            BreakdownFunnel(
                **funnel_of(names, stats_of(row)).model_dump(),
                value="Other" if b == TOP_BREAKDOWN_VALUES + 1 else bucket_value(*row[1]),
                other=b == TOP_BREAKDOWN_VALUES + 1,
            )
            for b, row in sorted(buckets.items())
            if 1 <= b <= TOP_BREAKDOWN_VALUES + 1
        ]
    return response


def stats_of(row: tuple[Any, ...] | None) -> Stats:
    """The per-level counts, time sums and medians of one bucket's row (nothing for no row)."""
    if row is None:
        return [], [], [], []
    levels, sums, lows, highs = ([int(x) for x in column] for column in row[2:6])
    return levels, sums, lows, highs


def funnel_of(names: list[str], stats: Stats) -> Funnel:
    """Steps from the units at each level (index k: level k + 1) and the times to each next step."""
    levels, sums, lows, highs = stats
    levels = levels + [0] * (len(names) - len(levels))
    counts = [sum(levels[k:]) for k in range(len(names))]
    steps = []
    for k, (name, count) in enumerate(zip(names, counts, strict=True)):
        average = median = None
        if k > 0 and count > 0 and k - 1 < len(sums):
            average = seconds(Fraction(sums[k - 1], count))
            median = seconds(Fraction(lows[k - 1] + highs[k - 1], 2))
        steps.append(
            FunnelStep(
                step=name,
                count=count,
                conversion_rate=percentage(count, counts[0]),
                drop_off=0 if k == 0 else counts[k - 1] - count,
                average_conversion_seconds=average,
                median_conversion_seconds=median,
            )
        )
    return Funnel(funnel=steps, total_entries=counts[0], overall_conversion=percentage(counts[-1], counts[0]))


async def run_steps(clickhouse: ClickHouse, request: FunnelRequest, timeout: float) -> FunnelResponse:
    sql, params = build(request)
    rows = await clickhouse.query(sql, params, settings=FINAL_SETTINGS, timeout=timeout)
    response = parse(rows, request)
    if request.breakdown is not None and request.breakdown_attribution == "all_events":
        # a person counts under each of their values, but once in the total: a second query by person
        whole = request.model_copy(update={"breakdown": None, "breakdown_attribution": "first_touch"})
        sql, params = build(whole)
        total = parse(await clickhouse.query(sql, params, settings=FINAL_SETTINGS, timeout=timeout), whole)
        response = total.model_copy(update={"breakdown": response.breakdown})
    return response


async def run_funnel(clickhouse: ClickHouse, request: FunnelRequest, timeout: float) -> AnyFunnelResponse:
    """Check, build, execute (FINAL, with the timeout) and parse one funnel in the requested view."""
    request.check()
    if request.view == "time_to_convert":
        return await funnel_views.run_time_to_convert(clickhouse, request, timeout)
    if request.view == "trends":
        return await funnel_views.run_trends(clickhouse, request, timeout)
    return await run_steps(clickhouse, request, timeout)
