"""Query service: ClickHouse -> stats, funnel, cohort and person answers (read key), saved insights and
dashboards, and the dashboard's pages at `/`."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import APIRouter
from starlette.middleware import Middleware

from services.query import persons_routes, routes, saved_routes, web
from services.query.instruments import TimeQueries
from services.query.settings import QuerySettings
from shared.component import BaseComponent


@dataclass
class QueryComponent(BaseComponent):
    """Routes and their timing only: nothing to start or stop, no health detail."""

    settings: QuerySettings = field(default_factory=QuerySettings)
    name: str = "query"
    uses_clickhouse: bool = True

    def routers(self) -> list[APIRouter]:
        return [
            routes.build_router(self.settings),
            persons_routes.build_router(self.settings),
            saved_routes.build_router(),
            web.build_router(),
        ]

    def middleware(self) -> list[Middleware]:
        """Each answer's latency by kind and outcome (services/query/instruments.py)."""
        return [Middleware(TimeQueries)]


def component() -> QueryComponent:
    return QueryComponent()
