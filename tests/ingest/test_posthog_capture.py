"""PostHog's capture API against the real service process: every body encoding and key location
PostHog's capture accepts, the fields it maps, its answers and errors, and the flags / remote-config
answers posthog-js starts with. One all-in-one process serves the module; each test uses its own
distinct_ids (and event names where it counts), so they do not see each other's events."""

from __future__ import annotations

import base64
import gzip
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import httpx
import orjson
import pytest

from deploy.processes import ServiceProcess
from tests.support import INGEST_KEY, READ_KEY, module_all_in_one, unique_name
from tests.trackers import counts_by_event, dead_letters, person_of, stored

DAY = "2023-05-02"
MOMENT = f"{DAY}T10:00:00.000Z"

posthog_system = module_all_in_one("posthog", {"ETL_SCHEDULE_ENABLED": "false"})


def event(distinct_id: str, name: str = "clicked", **fields: object) -> dict[str, object]:
    return {"event": name, "distinct_id": distinct_id, "timestamp": MOMENT, **fields}


def post(system: ServiceProcess, path: str, **kwargs: object) -> httpx.Response:
    return httpx.post(system.url + path, timeout=30, **kwargs)  # type: ignore[arg-type]


def assert_ok(response: httpx.Response, accepted: int) -> None:
    assert response.status_code == 200, response.text
    assert response.json()["status"] == 1 and response.json()["accepted"] == accepted, response.text


def assert_posthog_error(response: httpx.Response, status: int, kind: str, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert (body["type"], body["code"]) == (kind, code), body
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def test_a_single_json_event_is_stored_with_posthog_fields(posthog_system: ServiceProcess) -> None:
    user, event_id = unique_name("u"), str(uuid.uuid4())
    body = {
        **event(user, "signed_up", uuid=event_id),
        "api_key": INGEST_KEY,
        "properties": {"plan": "pro", "token": INGEST_KEY, "$set": {"email": "a@example.com"}},
        "$set_once": {"first_seen": DAY},
    }
    assert_ok(post(posthog_system, "/i/v0/e/", json=body), 1)
    (row,) = stored(posthog_system, {user}, 1)
    assert row["event_id"] == event_id and row["event"] == "signed_up" and row["source"] == "posthog"
    assert datetime.fromisoformat(row["timestamp"]) == datetime.fromisoformat(MOMENT)
    assert row["properties"] == {
        "plan": "pro",
        "$set": {"email": "a@example.com"},
        "$set_once": {"first_seen": DAY},
    }  # the key is never stored


def test_batch_with_sent_at_corrects_the_client_clock(posthog_system: ServiceProcess) -> None:
    """A client whose clock is 2 h behind: timestamp - sent_at is the event's age when sent."""
    user = unique_name("u")
    client_now = datetime.now(UTC) - timedelta(hours=2)
    sent_at = client_now.isoformat()
    batch = [
        {"event": "aged", "distinct_id": user, "timestamp": (client_now - timedelta(minutes=10)).isoformat()},
        {"event": "kept", "distinct_id": user, "timestamp": MOMENT, "properties": {"$ignore_sent_at": True}},
        {"event": "offset", "distinct_id": user, "offset": 60_000},
        {"event": "now", "distinct_id": user},
    ]
    before = datetime.now(UTC)
    response = post(
        posthog_system, "/batch/", json={"api_key": INGEST_KEY, "batch": batch, "sent_at": sent_at}
    )
    after = datetime.now(UTC)
    assert_ok(response, 4)
    rows = {
        row["event"]: datetime.fromisoformat(row["timestamp"]) for row in stored(posthog_system, {user}, 4)
    }
    assert (
        before - timedelta(minutes=10, seconds=1) <= rows["aged"] <= after - timedelta(minutes=9, seconds=59)
    )
    assert rows["kept"] == datetime.fromisoformat(MOMENT)
    assert before - timedelta(minutes=1, seconds=1) <= rows["offset"] <= after - timedelta(seconds=59)
    assert before - timedelta(seconds=1) <= rows["now"] <= after + timedelta(seconds=1)


def test_posthog_js_query_time_and_the_event_key_in_properties(posthog_system: ServiceProcess) -> None:
    """posthog-js' older shape: a bare list, properties.token, `_` = send time in ms, no slash."""
    user = unique_name("u")
    sent = datetime.now(UTC) + timedelta(hours=1)  # the client clock is an hour ahead
    events = [
        {
            **event(user, "pageview_a"),
            "timestamp": (sent - timedelta(seconds=30)).isoformat(),
            "properties": {"token": INGEST_KEY, "$current_url": "https://example.com/"},
        }
    ]
    before = datetime.now(UTC)
    response = post(posthog_system, f"/e?_={int(sent.timestamp() * 1000)}&ver=1.0", json=events)
    assert_ok(response, 1)
    (row,) = stored(posthog_system, {user}, 1)
    moment = datetime.fromisoformat(row["timestamp"])
    assert before - timedelta(seconds=31) <= moment <= datetime.now(UTC) - timedelta(seconds=29)
    assert row["properties"] == {"$current_url": "https://example.com/"}


@pytest.mark.parametrize(
    "encoding",
    ["gzip-header", "gzip-js-param", "gzip-magic", "form-base64", "form-json", "base64", "text-plain"],
)
def test_each_body_encoding(posthog_system: ServiceProcess, encoding: str) -> None:
    user = unique_name("u")
    data = orjson.dumps({"api_key": INGEST_KEY, "batch": [event(user, f"enc_{encoding}")]})
    b64 = base64.b64encode(data).decode()
    form = "application/x-www-form-urlencoded"
    path, headers, content = "/batch/", {}, data
    if encoding == "gzip-header":
        headers, content = {"Content-Encoding": "gzip"}, gzip.compress(data)
    elif encoding == "gzip-js-param":
        path, headers, content = (
            "/i/v0/e/?compression=gzip-js",
            {"Content-Type": "text/plain"},
            gzip.compress(data),
        )
    elif encoding == "gzip-magic":
        path, content = "/e/", gzip.compress(data)
    elif encoding == "form-base64":
        path, headers, content = (
            "/e/?compression=base64",
            {"Content-Type": form},
            f"data={quote(b64)}".encode(),
        )
    elif encoding == "form-json":
        headers, content = {"Content-Type": form}, f"data={quote(data.decode())}".encode()
    elif encoding == "base64":
        path, content = "/capture/?compression=base64", b64.encode()
    elif encoding == "text-plain":
        headers = {"Content-Type": "text/plain;charset=UTF-8"}  # navigator.sendBeacon of a JSON string
    assert_ok(post(posthog_system, path, content=content, headers=headers), 1)
    assert [row["event"] for row in stored(posthog_system, {user}, 1)] == [f"enc_{encoding}"]


@pytest.mark.parametrize(
    "where", ["api_key", "token", "$token", "properties.token", "bearer", "query", "form"]
)
def test_each_key_location(posthog_system: ServiceProcess, where: str) -> None:
    user = unique_name("u")
    item = event(user, "keyed")
    headers: dict[str, str] = {}
    path, content = "/track/", None
    if where == "properties.token":
        item["properties"] = {"token": INGEST_KEY}
    elif where == "bearer":
        headers["Authorization"] = f"Bearer {INGEST_KEY}"
    elif where == "query":
        path = f"/track?api_key={INGEST_KEY}"
    elif where == "form":
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        encoded = base64.b64encode(orjson.dumps(item)).decode()
        content = f"data={quote(encoded)}&api_key={INGEST_KEY}".encode()
    else:
        item[where] = INGEST_KEY
    response = post(posthog_system, path, content=content or orjson.dumps(item), headers=headers)
    assert_ok(response, 1)
    assert stored(posthog_system, {user}, 1)[0]["properties"] == {}


def test_get_with_data_in_the_query(posthog_system: ServiceProcess) -> None:
    user = unique_name("u")
    payload = orjson.dumps(event(user, "pixel", api_key=INGEST_KEY))
    b64 = httpx.get(
        f"{posthog_system.url}/e/", params={"data": base64.b64encode(payload).decode()}, timeout=30
    )
    assert_ok(b64, 1)
    plain = httpx.get(f"{posthog_system.url}/capture", params={"data": payload.decode()}, timeout=30)
    assert_ok(plain, 1)
    assert len(stored(posthog_system, {user}, 2)) == 2


def test_retries_with_the_same_uuid_are_counted_once(posthog_system: ServiceProcess) -> None:
    user, event_id = unique_name("u"), str(uuid.uuid4())
    name = unique_name("retried_")
    for _ in range(3):
        assert_ok(post(posthog_system, "/e/", json=event(user, name, uuid=event_id, api_key=INGEST_KEY)), 1)
    marker = unique_name("marker_")
    assert_ok(post(posthog_system, "/e/", json=event(user, marker, api_key=INGEST_KEY)), 1)
    assert counts_by_event(posthog_system, {name, marker}, 2, (DAY, DAY)) == {name: 1, marker: 1}


def test_identify_alias_and_set_merge_into_one_person(posthog_system: ServiceProcess) -> None:
    """$identify links $anon_distinct_id to the distinct id, $create_alias links the alias; $set and
    $set_once (top level or in properties) are the person's properties. An alias of the id itself and an
    over-long anonymous id still load (the stream refuses neither) and link nothing / the cut id."""
    anon, user, alias = unique_name("anon-"), unique_name("user-"), unique_name("crm-")
    long_anon = unique_name("long-") + "x" * 300
    batch = [
        {**event(anon, "$pageview"), "properties": {"$current_url": "https://example.com"}},
        {**event(long_anon, "$pageview"), "properties": {"$current_url": "https://example.com/long"}},
        {**event(user, "$identify"), "properties": {"$anon_distinct_id": anon, "$set": {"email": "e@x.io"}}},
        {**event(user, "$create_alias"), "properties": {"distinct_id": user, "alias": alias}},
        {
            **event(user, "$set"),
            "$set": {"plan": "pro"},
            "$set_once": {"first_plan": "free"},
            "properties": {"$set": {"plan": "free", "seats": 3}},
        },
        {**event(user, "$autocapture"), "properties": {"$event_type": "click"}},
        {**event(user, "$create_alias"), "properties": {"alias": user}},
        {**event(user, "$identify"), "properties": {"$anon_distinct_id": long_anon}},
    ]
    assert_ok(post(posthog_system, "/batch/", json={"api_key": INGEST_KEY, "batch": batch}), 8)
    rows = stored(posthog_system, {anon, user, long_anon[:200]}, 8)
    by_name: dict[str, list[dict]] = {}
    for row in rows:
        by_name.setdefault(row["event"], []).append(row)
    assert {name: len(found) for name, found in by_name.items()} == {
        "$pageview": 2,
        "$identify": 2,
        "$create_alias": 2,
        "$set": 1,
        "$autocapture": 1,
    }
    assert {row["user_id"] for row in by_name["$pageview"]} == {anon, long_anon[:200]}
    first_identify = next(r for r in by_name["$identify"] if r["properties"].get("$set"))
    assert first_identify["properties"] == {"$anon_distinct_id": anon, "$set": {"email": "e@x.io"}}
    assert first_identify["linked_ids"] == [anon]
    links = sorted(tuple(r.get("linked_ids", [])) for r in by_name["$create_alias"])
    assert links == [(), (alias,)]  # the alias of the id itself links nothing
    assert by_name["$set"][0]["properties"]["$set"] == {"plan": "pro", "seats": 3}  # the top level wins
    assert by_name["$autocapture"][0]["properties"] == {"$event_type": "click"}

    for distinct_id in (anon, alias, long_anon[:200], user):
        person = person_of(posthog_system, distinct_id, user, events=8)
    assert sorted(person["distinct_ids"]) == sorted([user, anon, alias, long_anon[:200]])
    assert person["properties"] == {"email": "e@x.io", "first_plan": "free", "plan": "pro", "seats": 3}
    assert person["events"] == 8  # every event loaded, the self-alias and the long id's too


def test_invalid_events_are_listed_and_dead_lettered_the_rest_stored(posthog_system: ServiceProcess) -> None:
    user = unique_name("u")
    batch = [
        event(user, "fine"),
        {"event": "no_id", "properties": {"marker": user}},
        {**event(user, "bad_uuid"), "uuid": "not-a-uuid"},
        {**event(user, "bad_time"), "timestamp": "yesterday"},
        {"distinct_id": user},
        None,
    ]
    response = post(posthog_system, "/batch/", json={"api_key": INGEST_KEY, "batch": batch})
    assert_ok(response, 1)
    rejected = {r["index"]: r["errors"] for r in response.json()["rejected"]}
    assert sorted(rejected) == [1, 2, 3, 4, 5]
    assert "distinct_id" in rejected[1][0] and "uuid" in rejected[2][0] and "timestamp" in rejected[3][0]
    assert [row["event"] for row in stored(posthog_system, {user}, 1)] == ["fine"]
    letters = dead_letters(posthog_system, lambda d: user in orjson.dumps(d["payload"]).decode(), 4)
    assert len(letters) == 4 and all(d["source"] == "posthog" for d in letters)
    assert all(INGEST_KEY not in orjson.dumps(d).decode() for d in letters)


def test_auth_errors_in_posthog_shape(posthog_system: ServiceProcess) -> None:
    item = event("u-auth", "denied")
    assert_posthog_error(
        post(posthog_system, "/e/", json=item), 401, "authentication_error", "missing_api_key"
    )
    unknown = {**item, "api_key": "unknown-key-0123456789abcdef"}
    assert_posthog_error(
        post(posthog_system, "/e/", json=unknown), 401, "authentication_error", "invalid_api_key"
    )
    read = {**item, "api_key": READ_KEY}
    assert_posthog_error(
        post(posthog_system, "/e/", json=read), 403, "authentication_error", "permission_denied"
    )
    mixed = [{**item, "api_key": INGEST_KEY}, {**item, "api_key": READ_KEY}]
    body = assert_posthog_error(
        post(posthog_system, "/e/", json=mixed), 401, "authentication_error", "invalid_api_key"
    )
    assert "inconsistent" in body["detail"]


@pytest.mark.parametrize(
    ("content", "params", "headers", "status", "fragment"),
    [
        (b"{not json", {}, {}, 400, "Invalid JSON"),
        (b"", {}, {}, 400, "No data"),
        (b"\x1f\x8b\x08garbage", {}, {}, 400, "gzip"),
        (b'{"event": "x"}', {"compression": "gzip-js"}, {}, 400, "not gzip"),
        (b"N4Ig", {"compression": "lz64"}, {}, 400, "lz64"),
        (b"not-base64!!", {"compression": "base64"}, {}, 400, "base64"),
        (b'"a string"', {}, {}, 400, "body must be"),
        (b'{"api_key": "K", "batch": {"event": "x"}}', {}, {}, 400, "'batch' must be a list"),
        (b'{"api_key": "K", "batch": []}', {}, {}, 400, "no event"),
        (b'{"api_key": "K", "batch": [{"event": "x"}]}', {}, {}, 400, "distinct_id"),
        (b'{"api_key": "K", "batch": [], "sent_at": "soon"}', {}, {}, 400, "sent_at"),
        (b"x" * 5_300_000, {}, {}, 413, "larger"),
    ],
)
def test_bad_input_is_a_clear_4xx(
    posthog_system: ServiceProcess, content: bytes, params: dict, headers: dict, status: int, fragment: str
) -> None:
    response = httpx.post(
        f"{posthog_system.url}/batch/",
        content=content.replace(b'"K"', orjson.dumps(INGEST_KEY)),
        params={**params, "api_key": INGEST_KEY},
        headers=headers,
        timeout=30,
    )
    body = assert_posthog_error(
        response,
        status,
        "client_error" if status == 413 else "validation_error",
        "request_too_large" if status == 413 else "invalid_payload",
    )
    assert fragment.lower() in body["detail"].lower(), body


def test_a_posthog_python_sized_batch_is_taken(posthog_system: ServiceProcess) -> None:
    """posthog-python sends up to 5 MiB a batch: more than the native API's 1 MiB."""
    user = unique_name("u")
    batch = [{**event(user, "big"), "properties": {"blob": "y" * 30_000}} for _ in range(100)]
    body = orjson.dumps({"api_key": INGEST_KEY, "batch": batch})
    assert len(body) > 3_000_000
    assert_ok(post(posthog_system, "/batch/", content=body), 100)
    assert len(stored(posthog_system, {user}, 100)) == 100


def test_too_many_events_in_one_request(posthog_system: ServiceProcess) -> None:
    batch = [event("u-many", "many")] * 1001
    response = post(posthog_system, "/batch/", json={"api_key": INGEST_KEY, "batch": batch})
    assert_posthog_error(response, 413, "client_error", "request_too_large")


@pytest.mark.parametrize(
    "path", ["/flags/?v=2", "/flags?v=2&config=true", "/flags", "/decide/?v=3", "/decide?v=4"]
)
def test_flags_and_decide_answer_no_flags(posthog_system: ServiceProcess, path: str) -> None:
    body = {"token": INGEST_KEY, "distinct_id": "u-flags", "groups": {}}
    encoded = gzip.compress(orjson.dumps(body))  # posthog-js gzips its flags request too
    response = post(posthog_system, path, content=encoded, headers={"Content-Type": "text/plain"})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["errorsWhileComputingFlags"] is False
    if "v=2" in path or "v=4" in path:
        assert answer["flags"] == {}
    else:
        assert answer["featureFlags"] == {}
    if "decide" in path or "config=true" in path:
        assert answer["sessionRecording"] is False and answer.get("surveys", False) is False
        assert answer["supportedCompression"] == ["gzip", "gzip-js"]
    get = httpx.get(f"{posthog_system.url}/flags/", params={"v": 2, "token": INGEST_KEY}, timeout=30)
    assert get.status_code == 200 and get.json()["flags"] == {}
    assert_posthog_error(
        post(posthog_system, path, json={"token": READ_KEY}), 403, "authentication_error", "permission_denied"
    )
    assert_posthog_error(post(posthog_system, path, json={}), 401, "authentication_error", "missing_api_key")


def test_remote_config_turns_every_product_off(posthog_system: ServiceProcess) -> None:
    config = httpx.get(f"{posthog_system.url}/array/{INGEST_KEY}/config", timeout=30)
    assert config.status_code == 200
    assert config.json()["hasFeatureFlags"] is False and config.json()["sessionRecording"] is False
    assert config.json()["analytics"] == {"endpoint": "/i/v0/e/"}
    script = httpx.get(f"{posthog_system.url}/array/{INGEST_KEY}/config.js", timeout=30)
    assert script.status_code == 200 and script.headers["content-type"].startswith("application/javascript")
    assert f'window._POSTHOG_REMOTE_CONFIG["{INGEST_KEY}"]' in script.text
    unknown = httpx.get(f"{posthog_system.url}/array/unknown-key-0123456789abcdef/config.js", timeout=30)
    assert_posthog_error(unknown, 401, "authentication_error", "invalid_api_key")
