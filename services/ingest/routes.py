"""POST /api/v1/events: one event or {"events": [...]}; 202 once Kafka has acknowledged."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.ingest.body import parse_json, read_body
from services.ingest.direct_route import PATH, Endpoint
from services.ingest.intake import IngestResult, ingest_items
from services.ingest.settings import IngestSettings
from shared.auth import Role, bearer_token
from shared.contracts.events import IncomingEvent
from shared.deps import authorize, producer_of, topics_of
from shared.errors import InvalidRequest, PayloadTooLarge
from shared.http import ERROR_RESPONSES

EVENT_SCHEMA = IncomingEvent.model_json_schema()


def request_body_schema(max_events: int) -> dict[str, Any]:
    batch = {
        "type": "object",
        "properties": {
            "events": {"type": "array", "items": EVENT_SCHEMA, "minItems": 1, "maxItems": max_events}
        },
        "required": ["events"],
    }
    return {"oneOf": [EVENT_SCHEMA, batch]}


def events_endpoint(settings: IngestSettings) -> Endpoint:
    """The endpoint itself, served both by its route and by the direct route (direct_route.py)."""

    async def post_events(request: Request) -> Response:
        """Validate, publish to Kafka, answer 202 with what was accepted and what was rejected."""
        # Plain calls rather than dependencies: the direct route runs this without FastAPI's machinery.
        authorize(request, bearer_token(request.headers.get("authorization")), Role.INGEST)
        items = events_of(
            parse_json(await read_body(request, settings.max_body_bytes)), settings.max_batch_events
        )
        result = await ingest_items(items, producer=producer_of(request), topics=topics_of(request))
        return Response(orjson.dumps(result.model_dump()), status_code=202, media_type="application/json")

    return post_events


def build_router(settings: IngestSettings, post_events: Endpoint) -> APIRouter:
    router = APIRouter(tags=["ingest"])
    responses: dict[int | str, dict[str, Any]] = {
        **ERROR_RESPONSES,
        400: {"description": "Body is not JSON"},
        413: {"description": "Body or batch over the limits"},
        503: {"description": "Kafka did not acknowledge in time; retry (see Retry-After)"},
    }
    router.add_api_route(
        PATH,
        post_events,
        methods=["POST"],
        status_code=202,
        response_model=IngestResult,
        responses=responses,
        summary="Send one event or a batch of up to 1,000 (202 after Kafka acknowledged them)",
        openapi_extra={
            "security": [{"HTTPBearer": []}],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": request_body_schema(settings.max_batch_events)}},
            },
        },
    )
    return router


def events_of(body: Any, max_events: int) -> list[Any]:
    """The list of items in a single-event or batch body."""
    if isinstance(body, dict) and "events" in body:
        events = body["events"]
        if not isinstance(events, list):
            raise InvalidRequest("'events' must be a list of event objects")
        if not events:
            raise InvalidRequest("'events' is empty")
        if len(events) > max_events:
            raise PayloadTooLarge(f"a batch holds at most {max_events} events, got {len(events)}")
        return events
    if isinstance(body, dict):
        return [body]
    raise InvalidRequest('body must be an event object or {"events": [...]}')
