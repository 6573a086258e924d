"""What Segment's analytics.js (analytics-next) needs from a browser: the settings document it fetches
at load, and the short paths it posts to (`/v1/t`, `/v1/p`, `/v1/i`, `/v1/a`, `/v1/g`, `/v1/s`, and
`/v1/b` when batching), `Content-Type: text/plain` JSON with the write key in the body.

A page loads analytics.js with `cdnURL` set to this system and nothing else: the settings enable only
the "Segment.io" destination, pointed back at the host the settings were fetched from, and turn off
what would make analytics.js fetch more code or send to Segment (legacy destinations, middleware,
remote plugins, its own metrics).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request

from services.ingest.segment import SegmentAck, handle, single_call
from shared.auth import Role
from shared.deps import authorize
from shared.http import ERROR_RESPONSES

# analytics-next posts each call to `<apiHost>/<first letter of its type>`.
SHORT_PATHS = {"t": "track", "p": "page", "i": "identify", "a": "alias", "g": "group", "s": "screen"}
RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    400: {"description": "Body is not JSON"},
    413: {"description": "Too large"},
    503: {"description": "Kafka did not acknowledge in time"},
}


def settings_document(write_key: str, host: str, scheme: str) -> dict[str, Any]:
    """analytics.js' project settings: only "Segment.io", at `host`, nothing else to load or send."""
    return {
        "integrations": {
            "Segment.io": {
                "apiKey": write_key,
                "apiHost": f"{host}/v1",
                "protocol": scheme,
                "unbundledIntegrations": [],
                "addBundledMetadata": True,
                "maybeBundledConfigIds": {},
            }
        },
        "metrics": {"sampleRate": 0},
        "edgeFunction": {},
        "analyticsNextEnabled": True,
        "middlewareSettings": {},
        "enabledMiddleware": {},
        "legacyVideoPluginsEnabled": False,
        "remotePlugins": [],
    }


def public_address(request: Request) -> tuple[str, str]:
    """(host, scheme) the browser reached us at: a TLS-terminating proxy's X-Forwarded-Host/-Proto
    when it sets them (the document only tells this browser where to send its own events)."""
    forwarded_host = request.headers.get("x-forwarded-host", "").split(",")[0].strip()
    forwarded_proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    host = forwarded_host or request.headers.get("host") or request.url.netloc
    scheme = forwarded_proto if forwarded_proto in ("http", "https") else request.url.scheme
    return host, scheme


def build_router() -> APIRouter:
    router = APIRouter(tags=["segment"])

    @router.get(
        "/v1/projects/{write_key}/settings",
        responses=ERROR_RESPONSES,
        summary="analytics.js settings: only the Segment.io destination, pointed at this system",
    )
    async def project_settings(request: Request, write_key: str) -> dict[str, Any]:
        """The settings analytics.js fetches from its cdnURL; the write key must be an ingest key."""
        authorize(request, write_key, Role.INGEST)
        return settings_document(write_key, *public_address(request))

    @router.post("/v1/b", response_model=SegmentAck, responses=RESPONSES, summary="analytics.js batch")
    async def browser_batch(
        request: Request, authorization: Annotated[str | None, Header()] = None
    ) -> SegmentAck:
        """analytics.js' batching delivery: {"batch": [calls], "writeKey", "sentAt"}."""
        return await handle(request, authorization, None)

    for letter, kind in SHORT_PATHS.items():
        router.add_api_route(
            f"/v1/{letter}",
            single_call(handle, kind),
            methods=["POST"],
            response_model=SegmentAck,
            responses=RESPONSES,
            summary=f"analytics.js {kind} call",
        )
    return router
