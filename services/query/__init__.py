"""Query service: ClickHouse -> stats, funnel, cohort and person answers (read key), saved insights and
dashboards, and the dashboard's pages at `/`."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import APIRouter

from services.query import persons_routes, routes, saved_routes, web
from services.query.settings import QuerySettings
from shared.component import BaseComponent


@dataclass
class QueryComponent(BaseComponent):
    """Routes only: nothing to start or stop, no health detail (BaseComponent's defaults)."""

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


def component() -> QueryComponent:
    return QueryComponent()
