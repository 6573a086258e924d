"""Segment compatibility: Segment's own Python library, unchanged, pointed at our ingest service."""

from __future__ import annotations

import base64
import gzip
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import orjson
from segment.analytics.client import Client

from services.ingest.segment import MESSAGE_ID_NAMESPACE, event_time, segment_event, with_batch_context
from shared.contracts.topics import Topics
from tests.pipeline import read_topic, wait_for_count
from tests.support import INGEST_KEY, READ_KEY, Environment, ServiceProcess

DAY = "2023-03-01"


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def test_segment_library_calls_are_stored(system: ServiceProcess, environment: Environment) -> None:
    errors: list[Exception] = []
    client = Client(
        INGEST_KEY, host=system.url, sync_mode=True, gzip=True, on_error=lambda e, _: errors.append(e)
    )
    moment = datetime(2023, 3, 1, 12, 0, tzinfo=UTC)
    client.track("user-1", "purchase", {"amount": 42.5}, timestamp=moment, message_id="msg-1")
    client.identify("user-1", {"plan": "pro"}, timestamp=moment)
    client.page("user-1", "docs", "intro", {"path": "/docs"}, timestamp=moment)
    client.screen("user-2", "app", "home", timestamp=moment)
    client.group("user-2", "org-9", {"size": 10}, timestamp=moment)
    client.alias("old-id", "user-2", timestamp=moment)
    client.track(anonymous_id="anon-7", event="signup", timestamp=moment)
    client.flush()
    assert errors == []

    result = wait_for_count(system.url, 7)
    counts = {e["event"]: e["count"] for e in result["by_event"]}
    assert counts == {
        "purchase": 1,
        "$identify": 1,
        "$page": 1,
        "$screen": 1,
        "$group": 1,
        "$alias": 1,
        "signup": 1,
    }
    assert result["unique_users"] == 3

    stored = read_topic(environment.kafka, Topics(environment.prefix).events, expected=7)
    purchase = next(e for e in stored if e["event"] == "purchase")
    assert purchase["event_id"] == str(uuid.uuid5(MESSAGE_ID_NAMESPACE, "msg-1"))
    assert purchase["properties"]["amount"] == 42.5
    assert purchase["properties"]["$context"]["library"]["name"] == "analytics-python"
    assert datetime.fromisoformat(purchase["timestamp"]) == moment  # ISO 8601 in UTC, "Z"
    assert purchase["timestamp"].endswith("Z")
    identify = next(e for e in stored if e["event"] == "$identify")
    assert identify["properties"]["plan"] == "pro"
    assert all(e["source"] == "segment" for e in stored)


def test_segment_retry_with_same_message_id_is_counted_once(system: ServiceProcess) -> None:
    call = {
        "type": "track",
        "userId": "u",
        "event": "signup",
        "messageId": "fixed-1",
        "timestamp": f"{DAY}T00:00:00Z",
    }
    for _ in range(3):
        response = httpx.post(f"{system.url}/v1/track", json=call, headers=basic(INGEST_KEY), timeout=30)
        assert response.status_code == 200 and response.json()["success"] is True
    marker = {**call, "messageId": "marker", "event": "marker"}
    assert httpx.post(f"{system.url}/v1/track", json=marker, headers=basic(INGEST_KEY)).status_code == 200
    result = wait_for_count(system.url, 2)
    assert result["events"] == 2


def test_segment_auth_and_limits(system: ServiceProcess) -> None:
    call = {"type": "track", "userId": "u", "event": "e"}
    url = f"{system.url}/v1/track"
    assert httpx.post(url, json=call).status_code == 401
    assert httpx.post(url, json=call, headers=basic("wrong-key-wrong-key")).status_code == 401
    assert httpx.post(url, json=call, headers=basic(READ_KEY)).status_code == 403
    assert httpx.post(url, json={**call, "writeKey": INGEST_KEY}).status_code == 200
    body = gzip.compress(orjson.dumps({"batch": [call], "writeKey": INGEST_KEY}))
    gz = httpx.post(f"{system.url}/v1/batch", content=body, headers={"Content-Encoding": "gzip"})
    assert gz.status_code == 200, gz.text
    big = {"batch": [{**call, "properties": {"x": "y" * 20_000}}] * 30, "writeKey": INGEST_KEY}
    assert httpx.post(f"{system.url}/v1/batch", json=big).status_code == 413
    one_too_big = {**call, "properties": {"x": "y" * 40_000}, "writeKey": INGEST_KEY}
    assert httpx.post(url, json=one_too_big).status_code == 413
    assert httpx.post(f"{system.url}/v1/batch", json={"batch": [], "writeKey": INGEST_KEY}).status_code == 422


def test_clock_skew_is_corrected_like_segment() -> None:
    received = datetime(2023, 3, 1, 12, 0, 0, tzinfo=UTC)
    call = {"originalTimestamp": "2023-03-01T11:00:00Z", "sentAt": "2023-03-01T11:00:30Z"}
    # The device clock is 1 h behind: it sent 30 s after the event, we received it at 12:00.
    assert event_time(call, received) == received - timedelta(seconds=30)
    assert event_time({"timestamp": "2023-01-01T00:00:00Z", **call}, received) == datetime(
        2023, 1, 1, tzinfo=UTC
    )
    assert event_time({"originalTimestamp": "2023-03-01T11:00:00Z"}, received) == datetime(
        2023, 3, 1, 11, tzinfo=UTC
    )
    assert event_time({}, received) == received


def test_batch_context_and_sent_at_are_merged_into_each_call() -> None:
    body = {
        "batch": [
            {"type": "track", "event": "a", "userId": "u", "context": {"ip": "1.2.3.4"}},
            {"type": "track", "event": "b", "userId": "u"},
        ],
        "context": {"ip": "9.9.9.9", "locale": "fr"},
        "sentAt": "2023-03-01T00:00:00Z",
    }
    calls = with_batch_context(body)
    assert calls[0]["context"] == {"ip": "1.2.3.4", "locale": "fr"}
    assert calls[1]["context"] == {"ip": "9.9.9.9", "locale": "fr"}
    assert all(c["sentAt"] == "2023-03-01T00:00:00Z" for c in calls)


def test_segment_call_mapping() -> None:
    now = datetime(2023, 3, 1, tzinfo=UTC)
    uid = str(uuid.uuid4())
    group = segment_event(
        {"type": "group", "userId": 42, "groupId": "g", "traits": {"n": 1}, "messageId": uid}, now
    )
    assert (group.event, group.user_id, str(group.event_id)) == ("$group", "42", uid)
    assert group.properties == {"n": 1, "group_id": "g"}
    alias = segment_event({"type": "alias", "userId": "new", "previousId": "old"}, now)
    assert alias.properties == {"previous_id": "old"} and alias.timestamp == now
    for bad in (
        {"type": "track", "userId": "u"},
        {"type": "nope", "userId": "u"},
        {"type": "track", "event": "e"},
    ):
        try:
            segment_event(bad, now)
        except ValueError:
            continue
        raise AssertionError(f"accepted {bad}")
