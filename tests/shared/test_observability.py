"""The pieces of metrics and logs that need no running service: the fixed label sets a free-text reason
or a path is mapped to, the JSON log line, the blanking of secrets, and the request-id middleware."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
from fastapi import FastAPI

from services.ingest import component as ingest_component
from services.ingest.instruments import CountRequests
from services.query import component as query_component
from services.query import web
from services.query.instruments import kind_of
from services.stream.instruments import dead_letter_reason
from shared.logs import REQUEST_ID, JsonFormatter, RedactSecrets, RequestIds
from shared.metrics import outcome_of

KEY = "secret-key-0123456789abcdef"


def test_label_values_come_from_fixed_sets() -> None:
    assert [outcome_of(s) for s in (202, 400, 401, 403, 413, 422, 429, 500, 503, 504)] == [
        "ok", "invalid", "unauthorized", "unauthorized", "invalid", "invalid", "rate_limited", "error",
        "unavailable", "timeout",
    ]  # fmt: skip
    assert dead_letter_reason("message of 70000 bytes is empty or over 65536") == "too_large"
    assert dead_letter_reason("undecodable: not valid JSON") == "not_json"
    assert dead_letter_reason("events[3]: wrong schema: event: Field required") == "wrong_schema"
    assert dead_letter_reason("events[0]: undecodable: not valid JSON") == "not_json"
    counting = CountRequests(FastAPI(), ingest_component().apis())
    ingest_paths = ("/api/v1/identify", "/v1/batch", "/v1/t", "/i/v0/e/", "/e", "/flags/", "/api/v1/events")
    assert [counting.api_of(p) for p in (*ingest_paths, "/healthz", "/api/v1/analytics/stats")] == [
        "identify", "segment", "segment", "posthog", "posthog", "posthog_config", "events", None, None,
    ]  # fmt: skip
    paths = [
        ("GET", "/api/v1/analytics/stats", "stats"),
        ("POST", "/api/v1/analytics/funnel", "funnel"),
        ("GET", "/api/v1/analytics/cohort", "cohort"),
        ("POST", "/api/v1/analytics/trends", "trends"),
        ("GET", "/api/v1/analytics/events", "events"),
        ("GET", "/api/v1/analytics/properties", "properties"),
        ("GET", "/api/v1/analytics/properties/plan/values", "property_values"),
        ("POST", "/api/v1/insights", "insights"),
        ("PUT", "/api/v1/insights/5f0c", "insights"),
        ("GET", "/api/v1/dashboards/9a1e", "dashboards"),
        ("GET", "/", None),  # the dashboard's page
        ("GET", "/api/v1/analytics/metrics", None),  # the ETL's
        ("GET", "/api/v1/persons", "person_search"),
        ("GET", "/api/v1/persons/u-1", "person"),
        ("GET", "/api/v1/persons/u-1/events", "person_events"),
        ("DELETE", "/api/v1/persons/u-1", "person_deletion"),
        ("GET", "/api/v1/persons/deletions/5f0c", "deletion_status"),
        ("GET", "/metrics", None),
    ]
    assert [kind_of(method, path) for method, path, _ in paths] == [kind for _, _, kind in paths]


def concrete(path: str) -> str:
    """A path a route serves, with each `{parameter}` filled in."""
    return path.replace("{distinct_id:path}", "u/1").replace("{", "").replace("}", "")


def test_every_ingest_and_query_route_is_counted() -> None:
    """Each path the ingest routers serve (PostHog's capture and start-up calls, Segment's and
    analytics.js' short paths included) has an API label, and each query route a kind, so a route
    added later is counted or fails here."""
    ingest = ingest_component()
    counting = CountRequests(FastAPI(), ingest.apis())
    for router in ingest.routers():
        for route in router.routes:
            assert counting.api_of(concrete(route.path)) is not None, route.path  # type: ignore[attr-defined]
    pages = {route.path for route in web.build_router().routes}  # type: ignore[attr-defined]
    for router in query_component().routers():
        for route in router.routes:
            path = route.path  # type: ignore[attr-defined]
            if path in pages:
                continue
            for method in route.methods:  # type: ignore[attr-defined]
                assert kind_of(method, concrete(path)) is not None, (method, path)


def record(message: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc else None
    return logging.LogRecord("analytics.test", logging.WARNING, __file__, 1, message, args, exc_info)


def test_a_json_line_has_the_fields_and_the_request_id() -> None:
    formatter = JsonFormatter("ingest")
    line = json.loads(formatter.format(record("sent %d events", 3)))
    assert line["message"] == "sent 3 events" and line["level"] == "WARNING"
    assert line["service"] == "ingest" and line["logger"] == "analytics.test" and "request_id" not in line
    assert line["time"].endswith("+00:00")
    token = REQUEST_ID.set("abc")
    try:
        assert json.loads(formatter.format(record("x")))["request_id"] == "abc"
    finally:
        REQUEST_ID.reset(token)


def test_secrets_are_blanked_in_messages_arguments_and_tracebacks() -> None:
    redact = RedactSecrets([KEY, ""])
    plain = record("key %s refused", KEY)
    assert redact.filter(plain) and plain.getMessage() == "key [redacted] refused"
    try:
        raise ValueError(f"bad {KEY}")
    except ValueError as exc:
        failed = record("boom", exc=exc)
    redact.filter(failed)
    assert KEY not in JsonFormatter("etl").format(failed)
    assert KEY not in logging.Formatter().format(failed)


@pytest.mark.parametrize(("sent", "echoed"), [("given-1", "given-1"), ("bad id", None), (None, None)])
async def test_request_ids_are_echoed_or_made(sent: str | None, echoed: str | None) -> None:
    app = FastAPI()
    seen: list[str | None] = []

    @app.get("/here")
    async def here() -> dict[str, str]:
        seen.append(REQUEST_ID.get())
        return {}

    app.add_middleware(RequestIds)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        headers = {"X-Request-ID": sent} if sent else {}
        answer = await client.get("/here", headers=headers)
    request_id = answer.headers["x-request-id"]
    assert seen == [request_id]
    assert request_id == echoed if echoed else len(request_id) == 32
    assert REQUEST_ID.get() is None
