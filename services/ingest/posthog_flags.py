"""What posthog-js asks for as it starts: `/flags` and `/decide` (feature flags) and the remote config
(`/array/{token}/config` and `config.js`), each answering "no feature flags, no session recording,
no surveys, nothing to load", in PostHog's format, so the library initialises cleanly and only
captures. Nothing else of PostHog's product is pretended."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.ingest.posthog import TOKEN_KEYS, first_text
from services.ingest.posthog_body import read_payload
from services.ingest.posthog_routes import POSTHOG_RESPONSES, in_posthog_words, project_key
from services.ingest.settings import IngestSettings
from shared.auth import Role
from shared.deps import authorize
from shared.errors import MalformedBody

# posthog-js sends its events where the config says; /i/v0/e/ is PostHog's current capture path.
ANALYTICS_ENDPOINT = "/i/v0/e/"


def remote_config(token: str) -> dict[str, Any]:
    """PostHog's remote config with every product off: posthog-js loads no extension script."""
    return {
        "token": token,
        "supportedCompression": ["gzip", "gzip-js"],
        "hasFeatureFlags": False,
        "captureDeadClicks": False,
        "capturePerformance": False,
        "autocapture_opt_out": False,
        "autocaptureExceptions": False,
        "analytics": {"endpoint": ANALYTICS_ENDPOINT},
        "elementsChainAsString": True,
        "errorTracking": {"autocaptureExceptions": False, "suppressionRules": []},
        "logs": {"captureConsoleLogs": False},
        "sessionRecording": False,
        "heatmaps": False,
        "conversations": False,
        # No "surveys" key: posthog-js (1.449) loads its surveys script whenever the config names
        # surveys, even as false; absent, it loads nothing (and this system serves no PostHog script).
        "productTours": False,
        "defaultIdentifiedOnly": True,
        "siteApps": [],
    }


def remote_config_script(token: str) -> str:
    """config.js: the same config, set where posthog-js looks for it."""
    key = orjson.dumps(token).decode()
    config = orjson.dumps(remote_config(token)).decode()
    return (
        "(function() {\n"
        "  window._POSTHOG_REMOTE_CONFIG = window._POSTHOG_REMOTE_CONFIG || {};\n"
        f"  window._POSTHOG_REMOTE_CONFIG[{key}] = {{config: {config}, siteApps: []}};\n"
        "})();\n"
    )


def no_flags(version: int) -> dict[str, Any]:
    """The flags part: v2 and later `flags`, v1 `featureFlags` (+ payloads), PostHog's shapes."""
    answer: dict[str, Any] = {"errorsWhileComputingFlags": False, "quotaLimited": []}
    if version >= 2:
        answer["flags"] = {}
    else:
        answer.update(featureFlags={}, featureFlagPayloads={})
    answer["requestId"] = str(uuid.uuid4())
    return answer


def decide_answer(version: int, token: str) -> dict[str, Any]:
    """/decide: the config always, flags in the shape of its version (v4 is /flags v2)."""
    answer = {**remote_config(token), "config": {"enable_collect_everything": True}, "surveys": False}
    answer.update(toolbarParams={}, isAuthenticated=False)
    if version >= 4:
        answer.update(no_flags(2))
    elif version == 3:
        answer.update(no_flags(1))
    elif version == 2:
        answer.update(featureFlags={}, errorsWhileComputingFlags=False)
    else:
        answer.update(featureFlags=[], errorsWhileComputingFlags=False)
    return answer


def version_of(request: Request) -> int:
    raw = request.query_params.get("v", "")
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 4 else 1


async def flags_token(request: Request, max_bytes: int) -> str:
    """The project key of a flags request: in the body (or ?data=), the query, or a bearer token."""
    try:
        payload = await read_payload(request, max_bytes)
        data, fields = payload.data, payload.fields
    except MalformedBody:
        if request.method != "GET":
            raise
        data, fields = None, dict(request.query_params)
    found = first_text(data, TOKEN_KEYS) if isinstance(data, dict) else None
    return project_key(request, found or fields.get("token") or fields.get("api_key"))


def json_response(body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


def build_router(settings: IngestSettings) -> APIRouter:
    router = APIRouter(tags=["posthog"])

    async def flags(request: Request) -> Response:
        """No feature flags (and, with ?config=true, the config with every product off)."""
        token = await flags_token(request, settings.max_body_bytes)
        authorize(request, token, Role.INGEST)
        answer = no_flags(version_of(request))
        if request.query_params.get("config") == "true":
            answer = {**remote_config(token), **answer}
        return json_response(answer)

    async def decide(request: Request) -> Response:
        """PostHog's older flags endpoint: the config, and no feature flags."""
        token = await flags_token(request, settings.max_body_bytes)
        authorize(request, token, Role.INGEST)
        return json_response(decide_answer(version_of(request), token))

    async def config(request: Request) -> Response:
        """The remote config posthog-js falls back to: every product off."""
        token = request.path_params["token"]
        authorize(request, token, Role.INGEST)
        return json_response(remote_config(token))

    async def config_js(request: Request) -> Response:
        """The remote config as the script posthog-js loads first."""
        token = request.path_params["token"]
        authorize(request, token, Role.INGEST)
        return Response(remote_config_script(token), media_type="application/javascript")

    for path, handler in (("/flags/", flags), ("/decide/", decide)):
        for variant in (path, path.rstrip("/")):
            for method in ("POST", "GET"):
                router.add_api_route(
                    variant,
                    in_posthog_words(handler),
                    methods=[method],
                    responses=POSTHOG_RESPONSES,
                    summary=f"PostHog {path.strip('/')}: no feature flags",
                    include_in_schema=variant == path,
                    openapi_extra={"parameters": FLAGS_PARAMETERS},
                )
    router.add_api_route(
        "/array/{token}/config",
        in_posthog_words(config),
        methods=["GET"],
        responses=POSTHOG_RESPONSES,
        summary="PostHog remote config (JSON)",
        openapi_extra={"parameters": [TOKEN_PARAMETER]},
    )
    router.add_api_route(
        "/array/{token}/config.js",
        in_posthog_words(config_js),
        methods=["GET"],
        responses={
            **POSTHOG_RESPONSES,
            200: {"content": {"application/javascript": {"schema": {"type": "string"}}}},
        },
        summary="PostHog remote config (the script posthog-js loads)",
        openapi_extra={"parameters": [TOKEN_PARAMETER]},
    )
    return router


TOKEN_PARAMETER = {"name": "token", "in": "path", "required": True, "schema": {"type": "string"}}
FLAGS_PARAMETERS = [
    {"name": "v", "in": "query", "required": False, "schema": {"type": "integer"}},
    {"name": "config", "in": "query", "required": False, "schema": {"type": "string"}},
    {"name": "token", "in": "query", "required": False, "schema": {"type": "string"}},
]
