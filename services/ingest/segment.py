"""Segment's HTTP tracking API (track, identify, page, screen, group, alias, batch), so the libraries
people already use can point at this service unchanged. Every call becomes one stored event."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Request
from pydantic import BaseModel, TypeAdapter, ValidationError

from services.ingest.body import parse_json, read_body
from services.ingest.intake import ingest_items
from shared.auth import Role, basic_username, bearer_token
from shared.contracts.events import AcceptedEvent, IncomingEvent, as_utc
from shared.contracts.limits import (
    MAX_EVENT_NAME_LENGTH,
    MAX_ID_LENGTH,
    SEGMENT_MAX_BATCH_BYTES,
    SEGMENT_MAX_EVENT_BYTES,
)
from shared.deps import authorize, producer_of, topics_of
from shared.errors import InvalidRequest
from shared.http import ERROR_RESPONSES

# messageIds that are not UUIDs (e.g. "ajs-...") map to a stable UUID, so retries still deduplicate.
MESSAGE_ID_NAMESPACE = uuid.UUID("6f1f3d5e-2c1b-4f1e-9a5e-5e6a7c8d9e0f")
CALL_TYPES = ("track", "identify", "page", "screen", "group", "alias")
TIME = TypeAdapter(datetime)


class SegmentAck(BaseModel):
    success: bool = True
    accepted: int
    rejected: list[dict[str, Any]] = []


def event_name(call: dict[str, Any]) -> str:
    kind = call.get("type")
    if kind == "track":
        name = call.get("event")
        if not isinstance(name, str) or not name:
            raise ValueError("event: a track call needs an event name")
        return name
    if kind in CALL_TYPES:
        return f"${kind}"
    raise ValueError(f"type: unknown call type {kind!r}")


def call_properties(call: dict[str, Any]) -> dict[str, Any]:
    """Track/page/screen properties, identify/group traits, plus the ids that only those calls carry."""
    kind = call.get("type")
    source = call.get("traits") if kind in ("identify", "group") else call.get("properties")
    properties = dict(source) if isinstance(source, dict) else {}
    if kind in ("page", "screen") and call.get("name") is not None:
        properties.setdefault("name", call["name"])
    if kind == "group" and call.get("groupId") is not None:
        properties.setdefault("group_id", call["groupId"])
    if kind == "alias" and call.get("previousId") is not None:
        properties.setdefault("previous_id", call["previousId"])
    if isinstance(call.get("context"), dict) and call["context"]:
        properties["$context"] = call["context"]
    return properties


def event_time(call: dict[str, Any], received_at: datetime) -> datetime:
    """Explicit timestamp as given; else correct the client clock as Segment does:
    receivedAt - (sentAt - originalTimestamp)."""
    if call.get("timestamp"):
        return TIME.validate_python(call["timestamp"])
    original = call.get("originalTimestamp")
    if original:
        original_at = as_utc(TIME.validate_python(original))
        if call.get("sentAt"):
            return received_at - (as_utc(TIME.validate_python(call["sentAt"])) - original_at)
        return original_at
    return received_at


def event_id(call: dict[str, Any]) -> uuid.UUID | None:
    message_id = call.get("messageId")
    if message_id is None or message_id == "":
        return None
    try:
        return uuid.UUID(str(message_id))
    except ValueError:
        return uuid.uuid5(MESSAGE_ID_NAMESPACE, str(message_id))


def stringify(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def segment_event(call: Any, received_at: datetime) -> AcceptedEvent:
    """Map one Segment call onto our event model (validated by the same IncomingEvent rules)."""
    if not isinstance(call, dict):
        raise TypeError("each call must be a JSON object")
    if len(orjson.dumps(call)) > SEGMENT_MAX_EVENT_BYTES:
        raise ValueError(f"a call must be at most {SEGMENT_MAX_EVENT_BYTES} bytes")
    try:
        moment = event_time(call, received_at)
    except ValidationError as exc:
        raise ValueError("timestamp: not an ISO 8601 date-time") from exc
    incoming = IncomingEvent(
        event=event_name(call)[:MAX_EVENT_NAME_LENGTH],
        user_id=stringify(call.get("userId")),
        anonymous_id=stringify(call.get("anonymousId")),
        timestamp=moment,
        properties=call_properties(call),
        event_id=event_id(call),
    )
    # An alias says previousId is now userId: a link (an anonymous id beside the user id is one too).
    previous = stringify(call.get("previousId")) if call.get("type") == "alias" else None
    if previous is not None and len(previous) > MAX_ID_LENGTH:
        raise ValueError(f"previousId: must be at most {MAX_ID_LENGTH} characters")
    if previous is not None and incoming.user_id is None:
        raise ValueError("userId: an alias call needs the userId that previousId becomes")
    return incoming.accept(received_at, source="segment", links_from=[previous] if previous else [])


def with_batch_context(body: dict[str, Any]) -> list[Any]:
    """The calls of a /v1/batch body, with batch-level context and sentAt merged into each."""
    calls = body.get("batch")
    if not isinstance(calls, list) or not calls:
        raise InvalidRequest("'batch' must be a non-empty list of calls")
    shared_context = body.get("context") if isinstance(body.get("context"), dict) else {}
    merged = []
    for call in calls:
        if isinstance(call, dict):
            call = dict(call)
            if shared_context:
                call["context"] = {**shared_context, **(call.get("context") or {})}
            if body.get("sentAt") and not call.get("sentAt"):
                call["sentAt"] = body["sentAt"]
        merged.append(call)
    return merged


def write_key(authorization: str | None, body: Any) -> str | None:
    """Segment sends the write key as the Basic username; some clients put it in the body."""
    key = basic_username(authorization) or bearer_token(authorization)
    if key is None and isinstance(body, dict) and isinstance(body.get("writeKey"), str):
        key = body["writeKey"]
    return key


async def handle(request: Request, authorization: str | None, kind: str | None) -> SegmentAck:
    """One Segment request: a call of `kind`, or a batch (kind None); 200 after Kafka acknowledged."""
    limit = SEGMENT_MAX_BATCH_BYTES if kind is None else SEGMENT_MAX_EVENT_BYTES
    body = parse_json(await read_body(request, limit))
    authorize(request, write_key(authorization, body), Role.INGEST)
    if not isinstance(body, dict):
        raise InvalidRequest("body must be a JSON object")
    calls = with_batch_context(body) if kind is None else [{**body, "type": body.get("type") or kind}]
    result = await ingest_items(
        calls,
        producer=producer_of(request),
        topics=topics_of(request),
        convert=segment_event,
        source="segment",
    )
    return SegmentAck(accepted=result.accepted, rejected=[r.model_dump() for r in result.rejected])


def build_router() -> APIRouter:
    router = APIRouter(tags=["segment"])
    responses = {
        **ERROR_RESPONSES,
        400: {"description": "Body is not JSON"},
        413: {"description": "Too large"},
        503: {"description": "Kafka did not acknowledge in time"},
    }

    for path in ("/v1/batch", "/v1/import"):

        @router.post(path, response_model=SegmentAck, responses=responses, summary="Segment batch")
        async def batch(
            request: Request, authorization: Annotated[str | None, Header()] = None
        ) -> SegmentAck:
            """Segment's batch call: {"batch": [calls], "context": {...}, "sentAt": ...}."""
            return await handle(request, authorization, None)

    for kind in CALL_TYPES:
        router.add_api_route(
            f"/v1/{kind}",
            single_call(handle, kind),
            methods=["POST"],
            response_model=SegmentAck,
            responses=responses,
            summary=f"Segment {kind} call",
        )
    return router


def single_call(handle: Any, kind: str) -> Any:
    async def call(request: Request, authorization: Annotated[str | None, Header()] = None) -> SegmentAck:
        return await handle(request, authorization, kind)

    call.__name__ = f"segment_{kind}"
    call.__doc__ = f"Segment's {kind} call, stored as {'its event' if kind == 'track' else '$' + kind}."
    return call
