"""The dashboard overview: the latest snapshot day, each metric against the day before, live users now."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from pydantic import BaseModel, Field

from services.etl import snapshots
from shared.clickhouse import ClickHouse


class MetricChange(BaseModel):
    value: float | None = Field(description="The metric on the overview's day (null if not computed then)")
    previous: float | None = Field(description="The metric on the day before (null without a snapshot)")
    change_pct: float | None = Field(
        description="Change from previous in percent, 1 decimal (null if undefined)"
    )


class Overview(BaseModel):
    date: dt.date | None = Field(description="The latest day with a snapshot (null before the first run)")
    metrics: dict[str, MetricChange]
    active_users_now: int | None = Field(
        description="Users active right now, as the stream processors last reported on the live topic "
        "(null when none reported recently)"
    )


def change_pct(value: float | None, previous: float | None) -> float | None:
    """Percent change, 1 decimal; null without both values, or from 0 to non-zero."""
    if value is None or previous is None:
        return None
    if previous == 0:
        return 0.0 if value == 0 else None
    return round((value - previous) / abs(previous) * 100, 1)


async def build_overview(
    clickhouse: ClickHouse, metrics: Sequence[str], active_users_now: int | None
) -> Overview:
    """Every metric on the latest snapshot day with the previous day's value, and the live count."""
    now = active_users_now
    day = await snapshots.latest_day(clickhouse, metrics)
    if day is None:
        return Overview(date=None, metrics={}, active_users_now=now)
    before = day - dt.timedelta(days=1)
    values = await snapshots.read_days(clickhouse, [before, day], metrics)
    changes = {}
    for name in metrics:
        value, previous = values.get((day, name)), values.get((before, name))
        changes[name] = MetricChange(value=value, previous=previous, change_pct=change_pct(value, previous))
    return Overview(date=day, metrics=changes, active_users_now=now)
