"""The access matrix: every HTTP route and the WebSocket, times {no key, unknown key, ingest, read,
admin}, answers exactly as documented; CORS is off unless configured; keys are never logged."""

from __future__ import annotations

import asyncio
import base64
import time

import httpx
import orjson
import pytest
import websockets

from deploy.processes import ServiceProcess
from tests.support import ADMIN_KEY, INGEST_KEY, READ_KEY, Environment, module_all_in_one

UNKNOWN_KEY = "unknown-key-0123456789abcdef"
KEYS = {"none": None, "unknown": UNKNOWN_KEY, "ingest": INGEST_KEY, "read": READ_KEY, "admin": ADMIN_KEY}
PUBLIC, INGEST, READ, ADMIN = "public", "ingest", "read", "admin"
ALLOWED = {
    PUBLIC: {"none", "unknown", "ingest", "read", "admin"},
    INGEST: {"ingest", "admin"},
    READ: {"read", "admin"},
    ADMIN: {"admin"},
}
EVENT = {"event": "e", "user_id": "u", "timestamp": "2023-03-01T00:00:00Z"}
SEGMENT_CALL = {"type": "track", "userId": "u", "event": "e"}
POSTHOG_EVENT = {"event": "e", "distinct_id": "u", "timestamp": "2023-03-01T00:00:00Z"}
POSTHOG_PATHS = ("/i/v0/e/", "/e/", "/capture/", "/batch/", "/track/")
# PostHog's paths answer in PostHog's error shape: its codes for our 401 and 403.
POSTHOG_CODES = {
    "missing_api_key": "unauthorized",
    "invalid_api_key": "unauthorized",
    "permission_denied": "forbidden",
}
INSIGHT = {"name": "signups", "type": "events", "query": {}, "date_range": {"last_days": 7}}
DASHBOARD = {"name": "growth", "tiles": []}
# (method, path, role, request body or query) for every documented operation.
ROUTES = [
    ("GET", "/healthz", PUBLIC, None),
    ("GET", "/readyz", PUBLIC, None),
    ("POST", "/api/v1/events", INGEST, EVENT),
    *[
        ("POST", f"/v1/{kind}", INGEST, {**SEGMENT_CALL, "type": kind, "previousId": "p", "groupId": "g"})
        for kind in ("track", "identify", "page", "screen", "group", "alias")
    ],
    ("POST", "/v1/batch", INGEST, {"batch": [SEGMENT_CALL]}),
    ("POST", "/v1/import", INGEST, {"batch": [SEGMENT_CALL]}),
    *[
        (
            method,
            path,
            INGEST,
            POSTHOG_EVENT if method == "POST" else {"data": orjson.dumps(POSTHOG_EVENT).decode()},
        )
        for path in POSTHOG_PATHS
        for method in ("POST", "GET")
    ],
    *[
        (method, path, INGEST, {"distinct_id": "u"} if method == "POST" else None)
        for path in ("/flags/", "/decide/")
        for method in ("POST", "GET")
    ],
    ("GET", "/array/{token}/config", INGEST, None),
    ("GET", "/array/{token}/config.js", INGEST, None),
    ("GET", "/v1/projects/{write_key}/settings", INGEST, None),
    *[
        ("POST", f"/v1/{kind[0]}", INGEST, {**SEGMENT_CALL, "type": kind, "previousId": "p", "groupId": "g"})
        for kind in ("track", "page", "identify", "alias", "group", "screen")
    ],
    ("POST", "/v1/b", INGEST, {"batch": [SEGMENT_CALL]}),
    ("GET", "/api/v1/analytics/stats", READ, {"start_date": "2023-03-01", "end_date": "2023-03-01"}),
    (
        "POST",
        "/api/v1/analytics/funnel",
        READ,
        {"steps": ["a", "b"], "start_date": "2023-03-01", "end_date": "2023-03-02"},
    ),
    (
        "POST",
        "/api/v1/analytics/funnel/persons",
        READ,
        {"steps": ["a", "b"], "start_date": "2023-03-01", "end_date": "2023-03-02", "step": 1},
    ),
    (
        "GET",
        "/api/v1/analytics/cohort",
        READ,
        {"period_type": "weekly", "periods": 2, "end_date": "2023-03-01"},
    ),
    (
        "POST",
        "/api/v1/analytics/cohort",
        READ,
        {"period_type": "weekly", "periods": 2, "end_date": "2023-03-01", "retention_type": "first_time"},
    ),
    ("GET", "/api/v1/analytics/metrics", READ, None),
    (
        "GET",
        "/api/v1/analytics/metrics/{metric}",
        READ,
        {"start_date": "2023-03-01", "end_date": "2023-03-02"},
    ),
    ("GET", "/api/v1/analytics/overview", READ, None),
    (
        "POST",
        "/api/v1/analytics/trends",
        READ,
        {"series": [{"event": "e"}], "start_date": "2023-03-01", "end_date": "2023-03-02"},
    ),
    ("GET", "/api/v1/analytics/events", READ, None),
    ("GET", "/api/v1/analytics/properties", READ, {"event": "e"}),
    ("GET", "/api/v1/analytics/properties/{name}/values", READ, None),
    ("POST", "/api/v1/analytics/etl/run", ADMIN, {"date": "2023-03-01"}),
    ("POST", "/api/v1/identify", INGEST, {"anonymous_id": "matrix-anon", "user_id": "matrix-user"}),
    ("GET", "/api/v1/persons", READ, {"search": "access-"}),
    ("GET", "/api/v1/persons/{distinct_id}", READ, None),
    ("GET", "/api/v1/persons/{distinct_id}/events", READ, {"limit": 5}),
    ("DELETE", "/api/v1/persons/{distinct_id}", ADMIN, None),
    ("GET", "/api/v1/persons/deletions/{deletion_id}", READ, None),
    ("GET", "/api/v1/insights", READ, None),
    ("POST", "/api/v1/insights", READ, INSIGHT),
    ("GET", "/api/v1/insights/{insight_id}", READ, None),
    ("PUT", "/api/v1/insights/{insight_id}", READ, INSIGHT),
    ("DELETE", "/api/v1/insights/{insight_id}", READ, None),
    ("GET", "/api/v1/dashboards", READ, None),
    ("POST", "/api/v1/dashboards", READ, DASHBOARD),
    ("GET", "/api/v1/dashboards/{dashboard_id}", READ, None),
    ("PUT", "/api/v1/dashboards/{dashboard_id}", READ, DASHBOARD),
    ("DELETE", "/api/v1/dashboards/{dashboard_id}", READ, None),
]
# Persons the matrix reads (and the one it deletes), made before the first test (see `access_system`).
SEEDED = {"person": "access-anon", "deleted": "access-gone", "deletion_id": ""}
# Saved items a path names: made afresh by the read key for each call, so its creator and admins may
# change or delete it.
SAVED_ITEM_PATHS = {
    "{insight_id}": ("/api/v1/insights", INSIGHT),
    "{dashboard_id}": ("/api/v1/dashboards", DASHBOARD),
}
SEGMENT_PATHS = {path for _, path, _, _ in ROUTES if path.startswith("/v1/")}
KEY_IN_PATH = ("{token}", "{write_key}")
POSTHOG_SHAPED = {*POSTHOG_PATHS, "/flags/", "/decide/", "/array/{token}/config", "/array/{token}/config.js"}


fresh_system = module_all_in_one(
    "access", {"ETL_SCHEDULE_ENABLED": "false", "ANALYTICS_RATE_LIMIT_QUERY": "0"}
)


@pytest.fixture(scope="module")
def access_system(fresh_system: ServiceProcess) -> ServiceProcess:
    """The all-in-one process with two persons stored and a deletion recorded."""
    headers = {"Authorization": f"Bearer {INGEST_KEY}"}
    for anon, user in (("access-anon", "access-user"), ("access-gone", "access-gone-user"), ("x-1", "x-2")):
        body = {"anonymous_id": anon, "user_id": user, "timestamp": "2023-03-01T10:00:00Z"}
        answer = httpx.post(f"{fresh_system.url}/api/v1/identify", json=body, headers=headers)
        assert answer.status_code == 202, answer.text
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    deadline = time.monotonic() + 60
    for seeded in ("access-anon", "access-gone", "x-1"):
        while httpx.get(f"{fresh_system.url}/api/v1/persons/{seeded}", headers=admin).status_code != 200:
            assert time.monotonic() < deadline, "the seeded persons never arrived"
            time.sleep(0.3)
    deletion = httpx.delete(f"{fresh_system.url}/api/v1/persons/x-1", headers=admin)
    SEEDED["deletion_id"] = deletion.json()["deletion_id"]
    return fresh_system


def call(system: ServiceProcess, method: str, path: str, key: str | None, body: object) -> httpx.Response:
    path = path.replace("{metric}", "dau").replace("{name}", "plan")
    path = path.replace("{deletion_id}", SEEDED["deletion_id"])
    path = path.replace("{distinct_id}", SEEDED["deleted" if method == "DELETE" else "person"])
    for placeholder, (collection, item) in SAVED_ITEM_PATHS.items():
        if placeholder in path:
            made = httpx.post(
                system.url + collection, json=item, headers={"Authorization": f"Bearer {READ_KEY}"}
            )
            path = path.replace(placeholder, made.json()["id"])
    headers: dict[str, str] = {}
    if any(part in path for part in KEY_IN_PATH):
        for part in KEY_IN_PATH:
            path = path.replace(part, key or "no-key-sent")
    elif key is not None:
        if path in SEGMENT_PATHS:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
        else:
            headers["Authorization"] = f"Bearer {key}"
    if method == "GET":
        return httpx.get(system.url + path, params=body or {}, headers=headers, timeout=60)
    return httpx.request(method, system.url + path, json=body, headers=headers, timeout=60)


def test_the_matrix_covers_every_documented_operation(access_system: ServiceProcess) -> None:
    spec = httpx.get(f"{access_system.url}/openapi.json").json()
    documented = {(method.upper(), path) for path, item in spec["paths"].items() for method in item}
    assert documented == {(method, path) for method, path, _, _ in ROUTES}


@pytest.mark.parametrize(
    ("method", "path", "role", "body"), ROUTES, ids=[f"{m} {p}" for m, p, _, _ in ROUTES]
)
def test_each_route_answers_each_key_as_documented(
    access_system: ServiceProcess, method: str, path: str, role: str, body: object
) -> None:
    for kind, key in KEYS.items():
        response = call(access_system, method, path, key, body)
        script = path.endswith(".js") and kind in ALLOWED[role]
        content_type = "application/javascript" if script else "application/json"
        assert response.headers["content-type"].startswith(content_type), (kind, response.text)
        if kind in ALLOWED[role]:
            assert response.status_code < 400, (kind, response.status_code, response.text)
        elif kind in ("none", "unknown"):
            assert response.status_code == 401, (kind, response.text)
            assert error_of(path, response) == "unauthorized"
        else:
            assert response.status_code == 403, (kind, response.text)
            assert error_of(path, response) == "forbidden"


def error_of(path: str, response: httpx.Response) -> str:
    """Our error code, from our body or, on PostHog's paths, from PostHog's."""
    body = response.json()
    return POSTHOG_CODES[body["code"]] if path in POSTHOG_SHAPED else body["error"]


@pytest.mark.parametrize("kind", list(KEYS))
def test_the_websocket_admits_only_read_and_admin_keys(access_system: ServiceProcess, kind: str) -> None:
    key = KEYS[kind]
    url = (
        access_system.url.replace("http://", "ws://")
        + "/ws/analytics/live"
        + (f"?token={key}" if key else "")
    )

    async def connect() -> str:
        try:
            async with websockets.connect(url, open_timeout=10) as socket:
                message = await asyncio.wait_for(socket.recv(), timeout=10)
                return f"open:{message}"
        except websockets.InvalidStatus as refused:
            return f"status:{refused.response.status_code}"
        except websockets.ConnectionClosed as closed:
            return f"closed:{closed.rcvd.code if closed.rcvd else None}"

    outcome = asyncio.run(connect())
    if kind in ("read", "admin"):
        assert outcome.startswith("open:") and "active_users" in outcome
    elif kind in ("none", "unknown"):
        assert outcome in ("status:401", "closed:1008"), outcome
    else:
        assert outcome in ("status:403", "closed:1008"), outcome


def test_cors_is_off_unless_configured(access_system: ServiceProcess) -> None:
    preflight = httpx.options(
        f"{access_system.url}/api/v1/analytics/stats",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    simple = httpx.get(f"{access_system.url}/healthz", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in simple.headers


def test_cors_allows_only_configured_origins(
    environment: Environment, services: list[ServiceProcess]
) -> None:
    system = environment.service("query", ANALYTICS_CORS_ORIGINS="https://dash.example")
    services.append(system)
    system.start()
    allowed = httpx.options(
        f"{system.url}/api/v1/analytics/stats",
        headers={"Origin": "https://dash.example", "Access-Control-Request-Method": "GET"},
    )
    assert allowed.headers.get("access-control-allow-origin") == "https://dash.example"
    denied = httpx.options(
        f"{system.url}/api/v1/analytics/stats",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in denied.headers


def test_keys_never_appear_in_logs(access_system: ServiceProcess) -> None:
    for key in (INGEST_KEY, READ_KEY, ADMIN_KEY, UNKNOWN_KEY):
        call(access_system, "GET", "/api/v1/analytics/stats", key, {"start_date": "x"})
    log = access_system.log_path.read_text(errors="replace")
    for key in (INGEST_KEY, READ_KEY, ADMIN_KEY, UNKNOWN_KEY):
        assert key not in log


def test_query_rate_limit_answers_429_with_retry_after(
    environment: Environment, services: list[ServiceProcess]
) -> None:
    system = environment.service("query", ANALYTICS_RATE_LIMIT_QUERY="1")
    services.append(system)
    system.start()
    answers = [
        call(
            system,
            "GET",
            "/api/v1/analytics/stats",
            READ_KEY,
            {"start_date": "2023-03-01", "end_date": "2023-03-01"},
        )
        for _ in range(5)
    ]
    limited = [a for a in answers if a.status_code == 429]
    assert limited, [a.status_code for a in answers]
    assert int(limited[0].headers["Retry-After"]) >= 1
    assert limited[0].json()["error"] == "rate_limited"
