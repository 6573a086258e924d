"""Query endpoints (read key): basic stats; the funnel and cohort runners add their own routes."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Request

from services.query.dates import DateRange
from services.query.settings import QuerySettings
from services.query.stats import StatsResponse, basic_stats
from shared.http import ERROR_RESPONSES, ReadKey

QUERY_RESPONSES = {
    **ERROR_RESPONSES,
    503: {"description": "ClickHouse unavailable; retry"},
    504: {"description": "The query ran too long and was cancelled"},
}


def build_router(settings: QuerySettings) -> APIRouter:
    router = APIRouter(prefix="/api/v1/analytics", tags=["query"])

    @router.get("/stats", response_model=StatsResponse, responses=QUERY_RESPONSES)
    async def stats(
        request: Request,
        _: ReadKey,
        start_date: Annotated[date, Query(description="First day, inclusive (YYYY-MM-DD, UTC)")],
        end_date: Annotated[date, Query(description="Last day, inclusive (YYYY-MM-DD, UTC)")],
    ) -> StatsResponse:
        """Events, unique users and per-event counts in the range, each event_id counted once."""
        period = DateRange.checked(start_date, end_date, max_days=settings.max_range_days)
        return await basic_stats(request.app.state.runtime.clickhouse, period, settings.timeout_seconds)

    return router
