"""POST /api/v1/events: one event or {"events": [...]}; 202 once Kafka has acknowledged."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.ingest.body import parse_json, read_body
from services.ingest.intake import IngestResult, ingest_items
from services.ingest.settings import IngestSettings
from shared.auth import Role, bearer_token
from shared.errors import InvalidRequest, PayloadTooLarge
from shared.events import IncomingEvent
from shared.http import ERROR_RESPONSES, authorize

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


def build_router(settings: IngestSettings) -> APIRouter:
    router = APIRouter(tags=["ingest"])
    responses: dict[int | str, dict[str, Any]] = {
        **ERROR_RESPONSES,
        400: {"description": "Body is not JSON"},
        413: {"description": "Body or batch over the limits"},
        503: {"description": "Kafka did not acknowledge in time; retry (see Retry-After)"},
    }

    @router.post(
        "/api/v1/events",
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
    async def post_events(request: Request) -> Response:
        """Validate, publish to Kafka, answer 202 with what was accepted and what was rejected."""
        # Auth inline rather than as a dependency: this is the hottest route (see fastpath.py).
        authorize(request, bearer_token(request.headers.get("authorization")), Role.INGEST)
        items = events_of(
            parse_json(await read_body(request, settings.max_body_bytes)), settings.max_batch_events
        )
        runtime = request.app.state.runtime
        result = await ingest_items(
            items,
            producer=runtime.producer,
            events_topic=runtime.events_topic,
            dead_letter_topic=runtime.dead_letter_topic,
        )
        return Response(orjson.dumps(result.model_dump()), status_code=202, media_type="application/json")

    router.post_events = post_events  # type: ignore[attr-defined]  # the fast path calls it directly
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
