"""CORS for the ingest endpoints from any origin, as PostHog's and Segment's own capture servers do.

An ingest key can only write events, and a browser tracker ships it in the page anyway, so letting any
page post to the ingest paths gives nothing away. This middleware answers those paths' preflights
itself (any origin, the methods they serve, whatever headers the tracker asks for, credentials
allowed: posthog-js' sendBeacon and fetch send cookies) and adds the CORS headers to their answers;
Retry-After is exposed so a tracker can back off. Every other path is passed through untouched: the
query endpoints keep CORS off unless ANALYTICS_CORS_ORIGINS lists the origin (services/runtime.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from starlette.datastructures import MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ALLOWED_METHODS = "GET, POST, OPTIONS"
DEFAULT_HEADERS = "Authorization, Content-Type, Content-Encoding"
# A list of header names as the preflight asks for them; anything else gets the default list.
HEADER_LIST = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+(\s*,\s*[A-Za-z0-9!#$%&'*+.^_`|~-]+)*")
PREFLIGHT_MAX_AGE = "86400"


class PublicIngestCors:
    """Answers CORS on the paths in `paths` (a path's `{parameter}` part matches any segment)."""

    def __init__(self, app: ASGIApp, paths: Iterable[str]) -> None:
        self.app = app
        paths = list(paths)
        self.exact = frozenset(p for p in paths if "{" not in p)
        self.prefixes = tuple(sorted({p.split("{", 1)[0] for p in paths if "{" in p}))

    def is_ingest(self, path: str) -> bool:
        return path in self.exact or (bool(self.prefixes) and path.startswith(self.prefixes))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.is_ingest(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = scope["headers"]
        origin = header(headers, b"origin")
        if scope["method"] == "OPTIONS":
            await preflight(
                origin,
                header(headers, b"access-control-request-headers"),
                header(headers, b"access-control-request-private-network"),
            )(scope, receive, send)
            return
        if origin is None:
            await self.app(scope, receive, send)
            return
        # The app below never sees the Origin, so a configured CORSMiddleware leaves these paths alone.
        inner = {**scope, "headers": [(k, v) for k, v in headers if k != b"origin"]}

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(scope=message)
                response_headers["Access-Control-Allow-Origin"] = origin
                response_headers["Access-Control-Allow-Credentials"] = "true"
                response_headers["Access-Control-Expose-Headers"] = "Retry-After"
                response_headers.add_vary_header("Origin")
            await send(message)

        await self.app(inner, receive, send_with_cors)


def header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


def preflight(origin: str | None, requested: str | None, private_network: str | None) -> Response:
    """The answer to an OPTIONS on an ingest path: 204, with CORS headers when a browser asks."""
    if origin is None:
        return Response(status_code=204, headers={"Allow": ALLOWED_METHODS})
    headers = {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Credentials": "true",
        "Access-Control-Allow-Methods": ALLOWED_METHODS,
        "Access-Control-Allow-Headers": (
            requested.strip() if requested and HEADER_LIST.fullmatch(requested.strip()) else DEFAULT_HEADERS
        ),
        "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
        "Vary": "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
    }
    if private_network == "true":
        headers["Access-Control-Allow-Private-Network"] = "true"
    return Response(status_code=204, headers=headers)
