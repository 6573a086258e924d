"""Person endpoints: look a person up (read key), list their events, search, and delete (admin key)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from services.query import persons
from services.query.persons import Deletion, Person, PersonEvents, PersonSearch
from services.query.settings import QuerySettings
from shared.deps import AdminKey, ClickHouseDep, ReadKey
from shared.http import ERROR_RESPONSES

RESPONSES = {
    **ERROR_RESPONSES,
    404: {"description": "No person has this distinct id"},
    503: {"description": "ClickHouse unavailable; retry"},
}


def build_router(settings: QuerySettings) -> APIRouter:
    router = APIRouter(prefix="/api/v1/persons", tags=["persons"])

    # Before the routes with a distinct id (which may hold "/": its parameter takes the rest of the path),
    # and the events route before the person's, so `<id>/events` is never read as an id.
    @router.get("/deletions/{deletion_id}", response_model=Deletion, responses=RESPONSES)
    async def deletion(clickhouse: ClickHouseDep, _: ReadKey, deletion_id: uuid.UUID) -> Deletion:
        """A deletion's progress: pending, then done once no answer counts the person."""
        return await persons.get_deletion(clickhouse, deletion_id)

    @router.get("", response_model=PersonSearch, responses=RESPONSES)
    async def search(
        clickhouse: ClickHouseDep,
        _: ReadKey,
        search: Annotated[str, Query(max_length=200, description="Start of a distinct id or an email")] = "",
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> PersonSearch:
        """Persons whose distinct id or email starts with `search`."""
        return await persons.search(clickhouse, search, limit)

    @router.get("/{distinct_id:path}/events", response_model=PersonEvents, responses=RESPONSES)
    async def person_events(
        clickhouse: ClickHouseDep,
        _: ReadKey,
        distinct_id: str,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        before: Annotated[str | None, Query(max_length=200, description="The `next` of a page")] = None,
    ) -> PersonEvents:
        """The person's events, newest first, a page at a time."""
        return await persons.events_of(clickhouse, distinct_id, limit, before, settings.timeout_seconds)

    @router.get("/{distinct_id:path}", response_model=Person, responses=RESPONSES)
    async def person(clickhouse: ClickHouseDep, _: ReadKey, distinct_id: str) -> Person:
        """The person of a distinct id: their ids, properties, first and last seen, events."""
        return await persons.get_person(clickhouse, distinct_id, settings.timeout_seconds)

    @router.delete("/{distinct_id:path}", status_code=202, response_model=Deletion, responses=RESPONSES)
    async def delete_person(clickhouse: ClickHouseDep, _: AdminKey, distinct_id: str) -> Deletion:
        """Delete the person and every event of every one of their ids, from storage and every summary."""
        return await persons.request_deletion(clickhouse, distinct_id)

    return router
