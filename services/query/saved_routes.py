"""Saved insights and dashboards (read key to create, open and list; the creator's key or an admin
key to change or delete): /api/v1/insights and /api/v1/dashboards."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.security import HTTPAuthorizationCredentials

from services.query.saved import (
    Dashboard,
    DashboardIn,
    DashboardList,
    DashboardSummary,
    Deleted,
    Insight,
    InsightIn,
    InsightList,
    InsightType,
    PlacedTile,
)
from services.query.saved_store import Caller, SavedItems, StoredItem, owner_hash
from shared.auth import KeyRing, Role
from shared.deps import ClickHouseDep, admit, bearer_scheme, keyring_of, rate_limiter_of
from shared.errors import InvalidRequest
from shared.http import ERROR_RESPONSES
from shared.ratelimit import RateLimiter

RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    503: {"description": "ClickHouse unavailable; retry"},
}
ONE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **RESPONSES,
    404: {"description": "No such item (or it was deleted)"},
}
EDIT_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ONE_RESPONSES,
    403: {"description": "Key lacks the read role, or neither created the item nor is an admin key"},
}


async def caller_of(
    keyring: Annotated[KeyRing, Depends(keyring_of)],
    limiter: Annotated[RateLimiter, Depends(rate_limiter_of)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Caller:
    """A read or admin key (401/403 otherwise, then its rate limit), known by its digest: the same
    checks as `deps.ReadKey`, keeping which key it was."""
    token = credentials.credentials if credentials else None
    role = admit(keyring, limiter, token, Role.READ)
    return Caller(owner_hash(token or ""), role)


def insights_of(clickhouse: ClickHouseDep) -> SavedItems:
    return SavedItems(clickhouse, "insight")


def dashboards_of(clickhouse: ClickHouseDep) -> SavedItems:
    return SavedItems(clickhouse, "dashboard")


CallerKey = Annotated[Caller, Depends(caller_of)]
Insights = Annotated[SavedItems, Depends(insights_of)]
Dashboards = Annotated[SavedItems, Depends(dashboards_of)]


def insight_of(item: StoredItem, caller: Caller) -> Insight:
    return Insight.model_validate(
        {
            **item.body,
            "id": item.id,
            "name": item.name,
            "created_at": item.created_at,
            "updated_at": item.updated_at,
            "can_edit": caller.may_edit(item),
        }
    )


def build_router() -> APIRouter:
    router = APIRouter(prefix="/api/v1")
    add_insight_routes(router)
    add_dashboard_routes(router)
    return router


def add_insight_routes(router: APIRouter) -> None:
    tags: list[str | Any] = ["saved insights"]

    @router.post("/insights", status_code=201, response_model=Insight, responses=RESPONSES, tags=tags)
    async def create_insight(insights: Insights, caller: CallerKey, body: InsightIn) -> Insight:
        """Save an insight under a name; the key that creates it (or an admin key) may change it."""
        item = await insights.create(body.name, body.body(), caller)
        return insight_of(item, caller)

    @router.get("/insights", response_model=InsightList, responses=RESPONSES, tags=tags)
    async def list_insights(
        insights: Insights,
        caller: CallerKey,
        type: Annotated[InsightType | None, Query(description="Only insights of this type")] = None,
    ) -> InsightList:
        """Every saved insight, the most recently changed first."""
        shown = [insight_of(item, caller) for item in await insights.newest_first()]
        return InsightList(insights=[i for i in shown if type is None or i.type == type])

    @router.get("/insights/{insight_id}", response_model=Insight, responses=ONE_RESPONSES, tags=tags)
    async def get_insight(insights: Insights, caller: CallerKey, insight_id: uuid.UUID) -> Insight:
        """One saved insight."""
        return insight_of(await insights.get(insight_id), caller)

    @router.put("/insights/{insight_id}", response_model=Insight, responses=EDIT_RESPONSES, tags=tags)
    async def replace_insight(
        insights: Insights, caller: CallerKey, insight_id: uuid.UUID, body: InsightIn
    ) -> Insight:
        """Replace a saved insight's name, type, query and range (its creator's key or an admin key)."""
        item = await insights.replace(insight_id, body.name, body.body(), caller)
        return insight_of(item, caller)

    @router.delete("/insights/{insight_id}", response_model=Deleted, responses=EDIT_RESPONSES, tags=tags)
    async def delete_insight(insights: Insights, caller: CallerKey, insight_id: uuid.UUID) -> Deleted:
        """Delete a saved insight (its creator's key or an admin key); dashboard tiles show it gone."""
        await insights.delete(insight_id, caller)
        return Deleted(id=insight_id)


async def checked_tiles(insights: SavedItems, body: DashboardIn) -> dict[str, Any]:
    """The dashboard's stored body; 422 when a tile names an insight that does not exist."""
    wanted = [tile.insight_id for tile in body.tiles]
    found = await insights.get_many(wanted)
    for index, insight_id in enumerate(wanted):
        if insight_id not in found:
            raise InvalidRequest(
                f"tile {index} names insight {insight_id}, which does not exist",
                details=[{"loc": ["body", "tiles", index, "insight_id"], "msg": "no such insight"}],
            )
    return {"tiles": [tile.model_dump(mode="json") for tile in body.tiles]}


async def dashboard_of(insights: SavedItems, item: StoredItem, caller: Caller) -> Dashboard:
    """The dashboard with each tile's insight (null for one deleted since)."""
    tiles = item.body.get("tiles", [])
    found = await insights.get_many([uuid.UUID(t["insight_id"]) for t in tiles])
    placed = []
    for tile in tiles:
        insight = found.get(uuid.UUID(tile["insight_id"]))
        placed.append(PlacedTile(**tile, insight=insight_of(insight, caller) if insight else None))
    return Dashboard(
        id=item.id,
        name=item.name,
        tiles=placed,
        created_at=item.created_at,
        updated_at=item.updated_at,
        can_edit=caller.may_edit(item),
    )


def summary_of(item: StoredItem, caller: Caller) -> DashboardSummary:
    return DashboardSummary(
        id=item.id,
        name=item.name,
        tiles=len(item.body.get("tiles", [])),
        created_at=item.created_at,
        updated_at=item.updated_at,
        can_edit=caller.may_edit(item),
    )


def add_dashboard_routes(router: APIRouter) -> None:
    tags: list[str | Any] = ["saved dashboards"]

    @router.post("/dashboards", status_code=201, response_model=Dashboard, responses=RESPONSES, tags=tags)
    async def create_dashboard(
        dashboards: Dashboards, insights: Insights, caller: CallerKey, body: DashboardIn
    ) -> Dashboard:
        """Save a named dashboard of saved insights (tiles in order); anyone with a read key may open it."""
        stored = await checked_tiles(insights, body)
        item = await dashboards.create(body.name, stored, caller)
        return await dashboard_of(insights, item, caller)

    @router.get("/dashboards", response_model=DashboardList, responses=RESPONSES, tags=tags)
    async def list_dashboards(dashboards: Dashboards, caller: CallerKey) -> DashboardList:
        """Every dashboard, the most recently changed first (tiles counted, not included)."""
        items = await dashboards.newest_first()
        return DashboardList(dashboards=[summary_of(item, caller) for item in items])

    @router.get("/dashboards/{dashboard_id}", response_model=Dashboard, responses=ONE_RESPONSES, tags=tags)
    async def get_dashboard(
        dashboards: Dashboards, insights: Insights, caller: CallerKey, dashboard_id: uuid.UUID
    ) -> Dashboard:
        """One dashboard with its tiles' insights: what a shared dashboard link opens."""
        return await dashboard_of(insights, await dashboards.get(dashboard_id), caller)

    @router.put("/dashboards/{dashboard_id}", response_model=Dashboard, responses=EDIT_RESPONSES, tags=tags)
    async def replace_dashboard(
        dashboards: Dashboards,
        insights: Insights,
        caller: CallerKey,
        dashboard_id: uuid.UUID,
        body: DashboardIn,
    ) -> Dashboard:
        """Rename or rearrange a dashboard (its creator's key or an admin key)."""
        stored = await checked_tiles(insights, body)
        item = await dashboards.replace(dashboard_id, body.name, stored, caller)
        return await dashboard_of(insights, item, caller)

    @router.delete("/dashboards/{dashboard_id}", response_model=Deleted, responses=EDIT_RESPONSES, tags=tags)
    async def delete_dashboard(dashboards: Dashboards, caller: CallerKey, dashboard_id: uuid.UUID) -> Deleted:
        """Delete a dashboard (its creator's key or an admin key); its insights stay saved."""
        await dashboards.delete(dashboard_id, caller)
        return Deleted(id=dashboard_id)
