"""The dashboard overview: the latest snapshot day, each metric against the day before, live users now."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, Field

from services.etl import snapshots
from shared.clickhouse import ClickHouse

log = logging.getLogger(__name__)

LIVE_COUNT_KEY = "active_users_now"  # runtime.extras entry the live service sets: () -> int | None


class MetricChange(BaseModel):
    value: float | None = Field(description="The metric on the overview's day (null if not computed then)")
    previous: float | None = Field(description="The metric on the day before (null without a snapshot)")
    change_pct: float | None = Field(
        description="Change from previous in percent, 1 decimal (null if undefined)"
    )


class Overview(BaseModel):
    date: dt.date | None = Field(description="The latest day with a snapshot (null before the first run)")
    metrics: dict[str, MetricChange]
    active_users_now: int | None = Field(description="Users active right now per the live service, else null")


def change_pct(value: float | None, previous: float | None) -> float | None:
    """Percent change, 1 decimal; null without both values, or from 0 to non-zero."""
    if value is None or previous is None:
        return None
    if previous == 0:
        return 0.0 if value == 0 else None
    return round((value - previous) / abs(previous) * 100, 1)


def live_users_now(extras: Mapping[str, Any]) -> int | None:
    """The live service's current count, or None when it is absent or fails."""
    source: Callable[[], int | None] | None = extras.get(LIVE_COUNT_KEY)
    if source is None:
        return None
    try:
        count = source()
    except Exception:  # noqa: BLE001 - the overview still answers without the live count
        log.warning("live count unavailable", exc_info=True)
        return None
    return None if count is None else int(count)


async def build_overview(
    clickhouse: ClickHouse, metrics: Sequence[str], extras: Mapping[str, Any]
) -> Overview:
    """Every metric on the latest snapshot day with the previous day's value."""
    now = live_users_now(extras)
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
