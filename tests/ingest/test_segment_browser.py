"""analytics.js' side of Segment (the settings document, the short paths with text/plain bodies and the
write key inside) and CORS: ingest paths answer any origin, query paths only ANALYTICS_CORS_ORIGINS."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import orjson
import pytest

from deploy.processes import ServiceProcess
from tests.support import INGEST_KEY, READ_KEY, Environment, module_all_in_one, unique_name
from tests.trackers import stored

browser_system = module_all_in_one("segment_browser", {"ETL_SCHEDULE_ENABLED": "false"})
ORIGIN = "https://shop.example"
TEXT = {"Content-Type": "text/plain"}


@pytest.fixture(scope="module")
def limited_ingest(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """An ingest-only process with a CORS list for the query side and an ingest limit of 1 request/s."""
    environment = Environment(
        kafka=kafka_bootstrap, clickhouse_url=None, workdir=tmp_path_factory.mktemp("cors")
    )
    process = environment.service(
        "ingest", ANALYTICS_CORS_ORIGINS="https://dash.example", ANALYTICS_RATE_LIMIT_INGEST="1"
    )
    process.start()
    yield process
    process.kill()


def call(kind: str, user: str, **fields: object) -> dict[str, object]:
    """A call as analytics-next sends it: its type, ids, the write key in the body."""
    return {"type": kind, "userId": user, "writeKey": INGEST_KEY, "messageId": unique_name("ajs-"), **fields}


def test_settings_enable_only_segment_io_pointed_back_here(browser_system: ServiceProcess) -> None:
    response = httpx.get(f"{browser_system.url}/v1/projects/{INGEST_KEY}/settings", timeout=30)
    assert response.status_code == 200, response.text
    settings = response.json()
    assert list(settings["integrations"]) == ["Segment.io"]
    segment_io = settings["integrations"]["Segment.io"]
    assert segment_io["apiKey"] == INGEST_KEY
    assert f"{segment_io['protocol']}://{segment_io['apiHost']}" == f"{browser_system.url}/v1"
    assert settings["metrics"]["sampleRate"] == 0 and settings["remotePlugins"] == []
    unknown = httpx.get(f"{browser_system.url}/v1/projects/unknown-key-0123456789abcdef/settings", timeout=30)
    assert unknown.status_code == 401 and unknown.json()["error"] == "unauthorized"
    read = httpx.get(f"{browser_system.url}/v1/projects/{READ_KEY}/settings", timeout=30)
    assert read.status_code == 403
    proxied = httpx.get(
        f"{browser_system.url}/v1/projects/{INGEST_KEY}/settings",
        headers={"X-Forwarded-Host": "analytics.example.com", "X-Forwarded-Proto": "https"},
        timeout=30,
    ).json()["integrations"]["Segment.io"]
    assert (proxied["protocol"], proxied["apiHost"]) == ("https", "analytics.example.com/v1")


def test_short_paths_take_text_plain_json_with_the_key_in_the_body(browser_system: ServiceProcess) -> None:
    user = unique_name("u")
    calls = {
        "t": call("track", user, event="bought", properties={"amount": 5}),
        "p": call("page", user, name="Home", properties={"path": "/"}),
        "i": call("identify", user, anonymousId="anon-1", traits={"email": "e@x.io"}),
        "a": call("alias", user, previousId="anon-1"),
        "g": call("group", user, groupId="org-1", traits={"size": 3}),
        "s": call("screen", user, name="Settings"),
    }
    for letter, body in calls.items():
        response = httpx.post(f"{browser_system.url}/v1/{letter}", content=orjson.dumps(body), headers=TEXT)
        assert response.status_code == 200 and response.json()["success"] is True, (letter, response.text)
    batch = {
        "batch": [call("track", user, event="batched")],
        "writeKey": INGEST_KEY,
        "sentAt": "2023-05-02T00:00:00Z",
    }
    response = httpx.post(f"{browser_system.url}/v1/b", content=orjson.dumps(batch), headers=TEXT)
    assert response.status_code == 200, response.text
    rows = {row["event"]: row for row in stored(browser_system, {user}, 7)}
    assert set(rows) == {"bought", "$page", "$identify", "$alias", "$group", "$screen", "batched"}
    assert (
        rows["bought"]["properties"]["amount"] == 5 and rows["$identify"]["properties"]["email"] == "e@x.io"
    )
    refused = httpx.post(
        f"{browser_system.url}/v1/t", content=orjson.dumps({**calls["t"], "writeKey": READ_KEY})
    )
    assert refused.status_code == 403


@pytest.mark.parametrize(
    "path", ["/i/v0/e/", "/batch", "/flags/?v=2", "/v1/t", "/v1/batch", "/api/v1/events"]
)
def test_ingest_paths_answer_preflights_from_any_origin(browser_system: ServiceProcess, path: str) -> None:
    asked = "content-type, authorization, x-retry-count"
    response = httpx.options(
        browser_system.url + path,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": asked,
        },
    )
    assert response.status_code == 204, response.text
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "POST" in response.headers["access-control-allow-methods"]
    assert response.headers["access-control-allow-headers"] == asked


def test_ingest_answers_carry_cors_headers_errors_too(browser_system: ServiceProcess) -> None:
    user = unique_name("u")
    ok = httpx.post(
        f"{browser_system.url}/i/v0/e/",
        json={"event": "e", "distinct_id": user, "api_key": INGEST_KEY},
        headers={"Origin": ORIGIN},
    )
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == ORIGIN
    assert ok.headers["access-control-expose-headers"] == "Retry-After"
    assert "Origin" in ok.headers["vary"]
    native = httpx.post(
        f"{browser_system.url}/api/v1/events",
        json={"event": "e", "user_id": user},
        headers={"Origin": ORIGIN, "Authorization": f"Bearer {INGEST_KEY}"},
    )
    assert native.status_code == 202 and native.headers["access-control-allow-origin"] == ORIGIN
    denied = httpx.post(f"{browser_system.url}/v1/t", json={"type": "track"}, headers={"Origin": ORIGIN})
    assert denied.status_code == 401 and denied.headers["access-control-allow-origin"] == ORIGIN
    settings = httpx.get(
        f"{browser_system.url}/v1/projects/{INGEST_KEY}/settings", headers={"Origin": ORIGIN}
    )
    assert settings.headers["access-control-allow-origin"] == ORIGIN
    assert len(stored(browser_system, {user}, 2)) == 2


def test_query_paths_keep_cors_off(browser_system: ServiceProcess) -> None:
    preflight = httpx.options(
        f"{browser_system.url}/api/v1/analytics/stats",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    answer = httpx.get(
        f"{browser_system.url}/api/v1/analytics/stats",
        params={"start_date": "2023-05-02", "end_date": "2023-05-02"},
        headers={"Origin": ORIGIN, "Authorization": f"Bearer {READ_KEY}"},
    )
    assert answer.status_code == 200 and "access-control-allow-origin" not in answer.headers


def test_a_configured_origin_list_leaves_ingest_open(limited_ingest: ServiceProcess) -> None:
    evil = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    assert httpx.options(f"{limited_ingest.url}/e/", headers=evil).headers["access-control-allow-origin"] == (
        "https://evil.example"
    )
    assert (
        "access-control-allow-origin"
        not in httpx.options(f"{limited_ingest.url}/healthz", headers=evil).headers
    )
    dash = {**evil, "Origin": "https://dash.example"}
    answer = httpx.options(
        f"{limited_ingest.url}/healthz", headers={**dash, "Access-Control-Request-Method": "GET"}
    )
    assert answer.headers["access-control-allow-origin"] == "https://dash.example"


def test_ingest_rate_limit_answers_429_in_each_protocols_words(limited_ingest: ServiceProcess) -> None:
    """The per-key ingest limit holds on the new paths as on the others (burst: 2 s worth)."""
    basic = "Basic " + base64.b64encode(f"{INGEST_KEY}:".encode()).decode()
    posthog = segment = None
    for _ in range(10):
        posthog = httpx.post(
            f"{limited_ingest.url}/batch/",
            json={"api_key": INGEST_KEY, "batch": [{"event": "e", "distinct_id": "rl"}]},
            headers={"Origin": ORIGIN},
        )
        if posthog.status_code == 429:
            break
    assert posthog is not None and posthog.status_code == 429, posthog.text if posthog else None
    assert posthog.json()["type"] == "throttled_error" and int(posthog.headers["retry-after"]) >= 1
    assert posthog.headers["access-control-allow-origin"] == ORIGIN
    segment = httpx.post(
        f"{limited_ingest.url}/v1/t", json={"type": "track"}, headers={"Authorization": basic}
    )
    assert segment.status_code == 429 and segment.json()["error"] == "rate_limited"
