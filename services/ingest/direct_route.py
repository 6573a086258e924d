"""POST /api/v1/events without the framework's per-request machinery.

Single-event ingest is the hottest path of the product. Routing it through FastAPI's router, request
handling and exception middleware cost more CPU than validating and publishing the event
(docs/performance.md). This ASGI middleware sends exactly that one operation straight to the endpoint
function the FastAPI route also serves (so the OpenAPI document, the auth and the answers are
unchanged) and maps errors with the same handlers; every other request goes through the normal stack.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from services.ingest.instruments import requests_of
from shared.errors import AnalyticsError
from shared.http import analytics_error_response, error_response

log = logging.getLogger(__name__)

PATH = "/api/v1/events"
Endpoint = Callable[[Request], Awaitable[Response]]


class DirectRoute:
    """ASGI middleware: `POST /api/v1/events` goes straight to `endpoint`."""

    def __init__(self, app: ASGIApp, endpoint: Endpoint) -> None:
        self.app = app
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)  # scope["app"] was set by the application already
        try:
            response = await self.endpoint(request)
        except AnalyticsError as exc:
            response = analytics_error_response(exc)
        except Exception:  # noqa: BLE001 - a bug: log it, answer JSON, never a stack trace
            log.exception("unhandled error in %s", PATH)
            response = error_response(500, "internal_error", "unexpected error; it has been logged")
        requests_of("events", response.status_code).inc()
        await response(scope, receive, send)
