"""ETL endpoints: the admin-only manual run, and the metric series, list and overview (read key)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, ConfigDict, Field

from services.etl import snapshots
from services.etl.overview import Overview, build_overview
from services.etl.runner import EtlRunner
from shared.contracts.dates import DateRange
from shared.deps import AdminKey, ReadKey
from shared.errors import InvalidRequest, NotFound
from shared.http import ERROR_RESPONSES

RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    503: {"description": "ClickHouse unavailable; retry"},
    504: {"description": "A metric query ran too long and was cancelled"},
}
DEFAULT_SERIES_DAYS = 30


class RunRequest(BaseModel):
    """Either one `date`, or `start_date` and `end_date` (inclusive); nothing means yesterday (UTC)."""

    model_config = ConfigDict(extra="forbid")

    date: dt.date | None = None
    start_date: dt.date | None = None
    end_date: dt.date | None = None


class RunResponse(BaseModel):
    run_id: uuid.UUID
    computed_at: dt.datetime
    days: list[dt.date]
    metrics: list[str]
    rows: int = Field(description="Snapshot rows stored: days x metrics")


class MetricInfo(BaseModel):
    name: str
    description: str
    unit: str


class MetricList(BaseModel):
    metrics: list[MetricInfo]


class Point(BaseModel):
    date: dt.date
    value: float


class Series(BaseModel):
    metric: str
    points: list[Point]


def invalid(field: str, message: str) -> InvalidRequest:
    return InvalidRequest(message, details=[{"loc": ["body", field], "msg": message}])


def requested_days(body: RunRequest | None, yesterday: dt.date, max_days: int) -> DateRange:
    """The days a run request asks for, or 422; only days that have ended (UTC) may be snapshotted."""
    body = body or RunRequest()
    if body.date is not None and (body.start_date or body.end_date):
        raise invalid("date", "send either date, or start_date and end_date, not both")
    if (body.start_date is None) != (body.end_date is None):
        raise invalid(
            "start_date" if body.start_date is None else "end_date", "start_date and end_date go together"
        )
    start = body.date or body.start_date or yesterday
    end = body.date or body.end_date or yesterday
    period = DateRange.checked(start, end, max_days=max_days, where="body")
    if period.end > yesterday:
        field = "date" if body.date else "end_date"
        raise invalid(
            field, f"{period.end} has not ended yet (UTC); the latest day that can be run is {yesterday}"
        )
    return period


def build_router(
    runner_of: Callable[[], EtlRunner], active_users_now: Callable[[], int | None], max_days: int
) -> APIRouter:
    """Routes over the started runner (`runner_of`) and the live count (`active_users_now`)."""
    router = APIRouter(prefix="/api/v1/analytics", tags=["etl"])

    @router.post("/etl/run", response_model=RunResponse, responses=RESPONSES)
    async def run_etl(_: AdminKey, body: Annotated[RunRequest | None, Body()] = None) -> RunResponse:
        """Compute and store the snapshots of the given days (admin key); answers once they are stored."""
        runner = runner_of()
        result = await runner.run(requested_days(body, runner.yesterday(), max_days))
        return RunResponse(
            run_id=result.run_id,
            computed_at=result.computed_at,
            days=result.days,
            metrics=result.metrics,
            rows=result.rows,
        )

    @router.get("/metrics", response_model=MetricList, responses=RESPONSES)
    async def list_metrics(_: ReadKey) -> MetricList:
        """The metrics the ETL computes, with their descriptions and units."""
        return MetricList(
            metrics=[
                MetricInfo(name=m.name, description=m.description, unit=m.unit) for m in runner_of().metrics
            ]
        )

    @router.get(
        "/metrics/{metric}",
        response_model=Series,
        responses={**RESPONSES, 404: {"description": "Unknown metric"}},
    )
    async def metric_series(
        _: ReadKey,
        metric: str,
        start_date: Annotated[
            dt.date | None, Query(description="First day, inclusive (default: end_date - 29)")
        ] = None,
        end_date: Annotated[
            dt.date | None, Query(description="Last day, inclusive (default: yesterday, UTC)")
        ] = None,
    ) -> Series:
        """One point per day with a snapshot in the range, in date order."""
        runner = runner_of()
        if metric not in runner.metric_names:
            raise NotFound(f"unknown metric {metric!r}; known: {', '.join(runner.metric_names)}")
        end = end_date or runner.yesterday()
        start = start_date or end - dt.timedelta(days=DEFAULT_SERIES_DAYS - 1)
        period = DateRange.checked(start, end, max_days=max_days)
        points = await snapshots.read_series(runner.clickhouse, metric, period)
        return Series(metric=metric, points=[Point(date=day, value=value) for day, value in points])

    @router.get("/overview", response_model=Overview, responses=RESPONSES)
    async def overview(_: ReadKey) -> Overview:
        """The latest snapshot day: every metric with the previous day's value and the change in percent."""
        runner = runner_of()
        return await build_overview(runner.clickhouse, runner.metric_names, active_users_now())

    return router
