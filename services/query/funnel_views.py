"""The funnel's other views over the same units: time to convert (a histogram of conversion times) and
trends (entries and conversion per entry period)."""

from __future__ import annotations

from datetime import date
from fractions import Fraction
from typing import Any

from services.query.funnel_models import (
    FunnelRequest,
    FunnelTrendsResponse,
    TimeBin,
    TimeToConvertResponse,
    TrendPoint,
)
from services.query.funnel_sql import is_plain, plain_trends_sql
from services.query.funnel_units import entry_unit, units_sql
from services.query.funnel_windows import period_index, period_start
from services.query.rounding import percentage, seconds
from shared.clickhouse import ClickHouse
from shared.contracts.storage import FINAL_SETTINGS


def time_to_convert_sql(request: FunnelRequest, params: dict[str, Any]) -> str:
    """One row: entries that reached to_step, the sum, lower and upper median of their times from
    from_step (ms), the bins' first second and width, the count per bin. A time's bin depends on its
    whole seconds only: (seconds - first) // width, the slowest in the last bin."""
    first, last = request.time_span
    params["bins"] = request.bins
    units = units_sql(request, params, entry_unit(request))
    return f"""
        SELECT count() AS converted, sum(took), quantileExactLow(0.5)(took), quantileExactHigh(0.5)(took),
               intDiv(min(took), 1000) AS low, intDiv(max(took) + 999, 1000) AS high,
               greatest(1, intDiv(high - low + {{bins:UInt32}} - 1, {{bins:UInt32}})) AS width,
               arrayMap(i -> countEqual(positions, i), range({{bins:UInt32}})) AS per_bin,
               arrayMap(x -> least({{bins:UInt32}} - 1, intDiv(intDiv(x, 1000) - low, width)),
                        groupArray(took)) AS positions
        FROM (SELECT toInt64(times[{last + 1}]) - toInt64(times[{first + 1}]) AS took
              FROM ({units}) WHERE level > {last})"""


def parse_time_to_convert(row: tuple[Any, ...], request: FunnelRequest) -> TimeToConvertResponse:
    first, last = request.time_span
    converted, total, low, high, start, _, width, per_bin = (row[i] for i in range(8))
    if converted == 0:
        return TimeToConvertResponse(
            from_step=first, to_step=last, converted=0, bins=[], average_seconds=None, median_seconds=None
        )
    bins = [
        TimeBin(from_seconds=start + i * width, to_seconds=start + (i + 1) * width, count=count)
        for i, count in enumerate(per_bin)
    ]
    return TimeToConvertResponse(
        from_step=first,
        to_step=last,
        converted=converted,
        bins=bins,
        average_seconds=seconds(Fraction(total, converted)),
        median_seconds=seconds(Fraction(low + high, 2)),
    )


async def run_time_to_convert(
    clickhouse: ClickHouse, request: FunnelRequest, timeout: float
) -> TimeToConvertResponse:
    params: dict[str, Any] = dict(request.period.parameters())
    sql = time_to_convert_sql(request, params)
    (row,) = await clickhouse.query(sql, params, settings=FINAL_SETTINGS, timeout=timeout)
    return parse_time_to_convert(row, request)


def trends_sql(request: FunnelRequest, params: dict[str, Any]) -> str:
    """(period index, entries, entries that reached the last step) per period with entries: a person
    enters in the period of each chain start, an entry of counting totals in its step-1 event's. A
    plain funnel's are counted in one pass over persons (funnel_sql.plain_trends_sql)."""
    if is_plain(request):
        return plain_trends_sql(request, params)
    unit = "event" if request.counting == "totals" else "period"
    return f"""
        SELECT period, countIf(level > 0), countIf(level = {len(request.steps)})
        FROM ({units_sql(request, params, unit)})
        GROUP BY period
        ORDER BY period"""


def label(start: date, interval: str) -> str:
    """2023-01-31 for days, 2023-W05 for ISO weeks (by ISO week-year), 2023-01 for months."""
    if interval == "week":
        iso = start.isocalendar()
        return f"{iso.year}-W{iso.week:02d}"
    return f"{start.year:04d}-{start.month:02d}" if interval == "month" else start.isoformat()


def parse_trends(rows: list[tuple[Any, ...]], request: FunnelRequest) -> FunnelTrendsResponse:
    """Every period from the one holding start_date to the one holding end_date, empty ones too."""
    found = {int(index): (int(entered), int(converted)) for index, entered, converted in rows}
    first = period_index(request.interval, request.start_date)
    last = period_index(request.interval, request.end_date)
    points = []
    for index in range(first, last + 1):
        entered, converted = found.get(index, (0, 0))
        start = period_start(request.interval, index)
        points.append(
            TrendPoint(
                period=label(start, request.interval),
                start=start.isoformat(),
                entered=entered,
                converted=converted,
                conversion_rate=percentage(converted, entered),
            )
        )
    return FunnelTrendsResponse(interval=request.interval, trends=points)


async def run_trends(clickhouse: ClickHouse, request: FunnelRequest, timeout: float) -> FunnelTrendsResponse:
    params: dict[str, Any] = dict(request.period.parameters())
    rows = await clickhouse.query(
        trends_sql(request, params), params, settings=FINAL_SETTINGS, timeout=timeout
    )
    return parse_trends(rows, request)
