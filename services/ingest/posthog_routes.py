"""PostHog's capture endpoints (`/i/v0/e/`, `/e/`, `/capture/`, `/batch/`, `/track/`, with or without
the slash, POST or GET `?data=`), answering as PostHog does: `200 {"status": 1}` once Kafka has
acknowledged, errors as `{"type", "code", "detail", "attr"}`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from services.ingest.intake import Rejection, ingest_items
from services.ingest.posthog import capture_request, check_size, posthog_event
from services.ingest.posthog_body import read_payload
from services.ingest.settings import IngestSettings
from shared import errors
from shared.auth import Role, bearer_token
from shared.deps import authorize, producer_of, topics_of
from shared.http import RETRY_AFTER_SECONDS, status_of

CAPTURE_PATHS = ("/i/v0/e/", "/e/", "/capture/", "/batch/", "/track/")
T = TypeVar("T")
# (type, code) of each error kind, in PostHog's vocabulary; PostHog answers an invalid payload 400.
POSTHOG_KINDS: dict[type[errors.AnalyticsError], tuple[str, str]] = {
    errors.MalformedBody: ("validation_error", "invalid_payload"),
    errors.InvalidRequest: ("validation_error", "invalid_payload"),
    errors.PayloadTooLarge: ("client_error", "request_too_large"),
    errors.Unauthorized: ("authentication_error", "invalid_api_key"),
    errors.Forbidden: ("authentication_error", "permission_denied"),
    errors.RateLimited: ("throttled_error", "throttled"),
}
POSTHOG_STATUS: dict[type[errors.AnalyticsError], int] = {errors.InvalidRequest: 400}


class MissingApiKey(errors.Unauthorized):
    """No project key anywhere PostHog's clients put it."""


class PostHogAck(BaseModel):
    """PostHog's answer (`status: 1`), with what was accepted and which items were refused."""

    status: int = 1
    accepted: int
    rejected: list[Rejection] = []


class PostHogError(BaseModel):
    """PostHog's error body; `details` lists the refused items when none was valid."""

    type: str
    code: str
    detail: str
    attr: str | None = None
    details: Any = None


POSTHOG_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": PostHogError, "description": text}
    for code, text in [
        (400, "Body unreadable, or no valid event in it"),
        (401, "Missing or unknown project key"),
        (403, "The key is not an ingest key"),
        (413, "Body or batch over the limits"),
        (429, "Rate limit exceeded for this key (see Retry-After)"),
        (503, "Kafka did not acknowledge in time; retry (see Retry-After)"),
    ]
}


def posthog_error_response(exc: errors.AnalyticsError) -> JSONResponse:
    """One of our error kinds as PostHog words it, with the status and Retry-After we always give."""
    kind, code = of_kind(POSTHOG_KINDS, exc, ("server_error", "server_error"))
    if isinstance(exc, MissingApiKey):
        code = "missing_api_key"
    detail = exc.message
    if isinstance(exc, errors.InvalidRequest) and isinstance(exc.details, list) and exc.details:
        detail = f"Invalid payload: {'; '.join(exc.details[0].get('errors', []))}"
    headers: dict[str, str] = {}
    if isinstance(exc, errors.RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    for retryable, seconds in RETRY_AFTER_SECONDS.items():
        if isinstance(exc, retryable):
            headers["Retry-After"] = str(seconds)
    body = PostHogError(type=kind, code=code, detail=detail, details=exc.details)
    status = of_kind(POSTHOG_STATUS, exc, status_of(exc))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def of_kind(table: dict[type[errors.AnalyticsError], T], exc: errors.AnalyticsError, default: T) -> T:
    """The entry of the nearest error kind of `exc` in `table`."""
    return next((table[kind] for kind in type(exc).__mro__ if kind in table), default)


def in_posthog_words(
    handler: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """The handler with our error kinds answered in PostHog's shape (other errors stay 500s)."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except errors.AnalyticsError as exc:
            return posthog_error_response(exc)

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


def project_key(request: Request, found: str | None) -> str:
    """The key found in the payload, else a bearer token; 401 in PostHog's words without one."""
    key = found or bearer_token(request.headers.get("authorization"))
    if not key:
        raise MissingApiKey(
            "API key not provided: send the ingest key as api_key, token, properties.token "
            "or 'Authorization: Bearer <key>'"
        )
    return key


def capture_body_schema() -> dict[str, Any]:
    event = {
        "type": "object",
        "properties": {
            "event": {"type": "string"},
            "distinct_id": {"type": "string"},
            "properties": {"type": "object"},
            "timestamp": {"type": "string", "format": "date-time"},
            "uuid": {"type": "string", "format": "uuid"},
            "api_key": {"type": "string"},
        },
        "required": ["event"],
    }
    batch = {
        "type": "object",
        "properties": {
            "api_key": {"type": "string"},
            "batch": {"type": "array", "items": event},
            "sent_at": {"type": "string", "format": "date-time"},
        },
        "required": ["batch"],
    }
    form = {
        "type": "object",
        "properties": {"data": {"type": "string", "description": "base64 of the JSON"}, "compression": {}},
    }
    return {
        "required": True,
        "content": {
            "application/json": {"schema": {"oneOf": [event, batch, {"type": "array", "items": event}]}},
            "application/x-www-form-urlencoded": {"schema": form},
        },
    }


def build_router(settings: IngestSettings) -> APIRouter:
    router = APIRouter(tags=["posthog"])

    async def capture(request: Request) -> Response:
        """PostHog capture: one event, a list, or {"batch": [...]}; 200 after Kafka acknowledged."""
        payload = await read_payload(request, settings.posthog_max_body_bytes)
        found = capture_request(payload.data, payload.fields)
        authorize(request, project_key(request, found.token), Role.INGEST)
        check_size(found.events, settings.max_batch_events)
        result = await ingest_items(
            found.items(datetime.now(UTC)),
            producer=producer_of(request),
            topics=topics_of(request),
            convert=posthog_event,
            source="posthog",
        )
        ack = PostHogAck(accepted=result.accepted, rejected=result.rejected)
        return Response(orjson.dumps(ack.model_dump()), media_type="application/json")

    endpoint = in_posthog_words(capture)
    for path in CAPTURE_PATHS:
        for variant in (path, path.rstrip("/")):
            documented = variant == path
            router.add_api_route(
                variant,
                endpoint,
                methods=["POST"],
                response_model=PostHogAck,
                responses=POSTHOG_RESPONSES,
                summary="PostHog capture (posthog-js, posthog-python, posthog-node, ...)",
                include_in_schema=documented,
                openapi_extra={"requestBody": capture_body_schema()},
            )
            router.add_api_route(
                variant,
                endpoint,
                methods=["GET"],
                response_model=PostHogAck,
                responses=POSTHOG_RESPONSES,
                summary="PostHog capture with the event in ?data= (base64 or JSON)",
                include_in_schema=documented,
                openapi_extra={"parameters": GET_PARAMETERS},
            )
    return router


GET_PARAMETERS = [
    {"name": "data", "in": "query", "required": True, "schema": {"type": "string"}},
    {"name": "compression", "in": "query", "required": False, "schema": {"type": "string"}},
    {"name": "api_key", "in": "query", "required": False, "schema": {"type": "string"}},
]
