"""Query service: ClickHouse -> stats, funnel and cohort answers for dashboards (read key)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter

from services.query import routes
from services.query.settings import QuerySettings

if TYPE_CHECKING:
    from services.runtime import Runtime


@dataclass
class QueryComponent:
    settings: QuerySettings = field(default_factory=QuerySettings)
    name: str = "query"
    uses_clickhouse: bool = True
    uses_producer: bool = False

    def routers(self) -> list[APIRouter]:
        return [routes.build_router(self.settings)]

    async def start(self, runtime: Runtime) -> None:
        return None

    async def stop(self) -> None:
        return None

    def health(self) -> dict[str, Any]:
        return {}


def component() -> QueryComponent:
    return QueryComponent()
