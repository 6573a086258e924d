"""Query endpoints (read key): basic stats, trends, funnels, cohorts and schema discovery."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Path, Query

from services.query.cohort import CohortBreakdownResponse, CohortRequest, CohortResponse, run_cohort
from services.query.discovery import (
    EventsResponse,
    Listing,
    PropertiesResponse,
    PropertyListing,
    ValuesResponse,
    list_events,
    list_properties,
    list_values,
)
from services.query.funnel import AnyFunnelResponse, run_funnel
from services.query.funnel_models import FunnelPersonsRequest, FunnelPersonsResponse, FunnelRequest
from services.query.funnel_persons import run_funnel_persons
from services.query.settings import QuerySettings
from services.query.stats import StatsResponse, basic_stats
from services.query.trends import TrendsRequest, TrendsResponse, run_trends
from shared.contracts.dates import DateRange
from shared.deps import ClickHouseDep, ReadKey
from shared.http import ERROR_RESPONSES

QUERY_RESPONSES = {
    **ERROR_RESPONSES,
    503: {"description": "ClickHouse unavailable; retry"},
    504: {"description": "The query ran too long and was cancelled"},
}


def build_router(settings: QuerySettings) -> APIRouter:
    router = APIRouter(prefix="/api/v1/analytics", tags=["query"])

    @router.get("/stats", response_model=StatsResponse, responses=QUERY_RESPONSES)
    async def stats(
        clickhouse: ClickHouseDep,
        _: ReadKey,
        start_date: Annotated[date, Query(description="First day, inclusive (YYYY-MM-DD, UTC)")],
        end_date: Annotated[date, Query(description="Last day, inclusive (YYYY-MM-DD, UTC)")],
    ) -> StatsResponse:
        """Events, unique users and per-event counts in the range, each event_id counted once."""
        period = DateRange.checked(start_date, end_date, max_days=settings.max_range_days)
        return await basic_stats(clickhouse, period, settings.timeout_seconds)

    @router.post("/trends", response_model=TrendsResponse, responses=QUERY_RESPONSES)
    async def trends(clickhouse: ClickHouseDep, _: ReadKey, body: TrendsRequest) -> TrendsResponse:
        """Series of counts, persons or property maths per interval, broken down and compared."""
        return await run_trends(clickhouse, body.checked(settings.max_range_days), settings.timeout_seconds)

    @router.post("/funnel", response_model=AnyFunnelResponse, responses=QUERY_RESPONSES)
    async def funnel(clickhouse: ClickHouseDep, _: ReadKey, body: FunnelRequest) -> AnyFunnelResponse:
        """Persons (or entries) reaching each step of a funnel in the date range, optionally broken down
        by a property; or the time to convert, or conversion per entry period (`view`)."""
        DateRange.checked(body.start_date, body.end_date, max_days=settings.max_range_days, where="body")
        return await run_funnel(clickhouse, body, settings.timeout_seconds)

    @router.post("/funnel/persons", response_model=FunnelPersonsResponse, responses=QUERY_RESPONSES)
    async def funnel_persons(
        clickhouse: ClickHouseDep, _: ReadKey, body: FunnelPersonsRequest
    ) -> FunnelPersonsResponse:
        """The persons who reached a funnel step, or dropped before it, a page at a time."""
        DateRange.checked(body.start_date, body.end_date, max_days=settings.max_range_days, where="body")
        return await run_funnel_persons(clickhouse, body, settings.timeout_seconds)

    cohort_answer = CohortBreakdownResponse | CohortResponse

    @router.get("/cohort", response_model=cohort_answer, responses=QUERY_RESPONSES)
    async def cohort(
        clickhouse: ClickHouseDep, _: ReadKey, query: Annotated[CohortRequest, Query()]
    ) -> CohortResponse:
        """Retention of persons grouped by the period of their first start_event (filters and a
        breakdown object as JSON text)."""
        return await run_cohort(clickhouse, query, settings.timeout_seconds)

    @router.post("/cohort", response_model=cohort_answer, responses=QUERY_RESPONSES)
    async def cohort_body(clickhouse: ClickHouseDep, _: ReadKey, body: CohortRequest) -> CohortResponse:
        """The same retention table with its fields in a JSON body."""
        return await run_cohort(clickhouse, body, settings.timeout_seconds)

    @router.get("/events", response_model=EventsResponse, responses=QUERY_RESPONSES)
    async def events(
        clickhouse: ClickHouseDep, _: ReadKey, query: Annotated[Listing, Query()]
    ) -> EventsResponse:
        """Event names with how many were stored and when last, most frequent first."""
        return await list_events(clickhouse, query, settings.timeout_seconds)

    @router.get("/properties", response_model=PropertiesResponse, responses=QUERY_RESPONSES)
    async def properties(
        clickhouse: ClickHouseDep, _: ReadKey, query: Annotated[PropertyListing, Query()]
    ) -> PropertiesResponse:
        """Property names with their observed types and how often they are set."""
        return await list_properties(clickhouse, query, settings.timeout_seconds)

    @router.get("/properties/{name}/values", response_model=ValuesResponse, responses=QUERY_RESPONSES)
    async def property_values(
        clickhouse: ClickHouseDep,
        _: ReadKey,
        name: Annotated[str, Path(min_length=1, max_length=200)],
        query: Annotated[PropertyListing, Query()],
    ) -> ValuesResponse:
        """A property's most frequent values (typed JSON) with their counts."""
        return await list_values(clickhouse, name, query, settings.timeout_seconds)

    return router
