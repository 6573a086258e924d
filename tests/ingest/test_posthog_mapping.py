"""PostHog's protocol, function by function (no processes): ids, links and person properties (each
converted event is one the stream processor takes), times, decoding, error answers, CORS headers, and
a PostHog dead letter replayed to the time it was sent with."""

from __future__ import annotations

import base64
import gzip
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from services.ingest.cors import DEFAULT_HEADERS, preflight
from services.ingest.posthog import (
    capture_request,
    client_time,
    distinct_id_of,
    event_time,
    posthog_event,
    properties_of,
)
from services.ingest.posthog_body import decode
from services.ingest.posthog_routes import MissingApiKey, posthog_error_response
from services.ingest.replay import revive
from shared import errors
from shared.contracts.events import AcceptedEvent, StoredEvent
from shared.contracts.persons import property_updates

NOW = datetime(2023, 5, 2, 12, 0, tzinfo=UTC)


def times(sent_at: datetime | None = None) -> tuple[datetime, datetime | None]:
    return NOW, sent_at


def test_event_time_follows_posthog() -> None:
    sent = NOW + timedelta(hours=3)  # the client clock is 3 h ahead
    stamp = {"timestamp": (sent - timedelta(seconds=20)).isoformat()}
    assert event_time(stamp, {}, times(sent)) == NOW - timedelta(seconds=20)
    assert event_time(stamp, {"$ignore_sent_at": True}, times(sent)) == sent - timedelta(seconds=20)
    assert event_time(stamp, {}, times()) == sent - timedelta(seconds=20)
    assert event_time({"offset": 1500}, {}, times(sent)) == NOW - timedelta(milliseconds=1500)
    assert event_time({"timestamp": "2023-01-01T00:00:00Z", "offset": 5}, {}, times()) == datetime(
        2023, 1, 1, tzinfo=UTC
    )
    assert event_time({}, {}, times(sent)) == NOW
    for bad in ({"offset": "soon"}, {"offset": True}, {"timestamp": "yesterday"}, {"offset": 1e300}):
        with pytest.raises(ValueError):
            event_time(bad, {}, times())


def test_client_times_in_seconds_or_milliseconds() -> None:
    assert client_time("1683028800") == datetime(2023, 5, 2, 12, tzinfo=UTC)
    assert client_time(1683028800000) == datetime(2023, 5, 2, 12, tzinfo=UTC)
    assert client_time("2023-05-02T14:00:00+02:00") == datetime(2023, 5, 2, 12, tzinfo=UTC)
    for bad in (True, "later", 1e30, {"t": 1}):
        with pytest.raises(ValueError):
            client_time(bad)


def test_distinct_ids_as_posthog_reads_them() -> None:
    assert distinct_id_of({"distinct_id": "a", "properties": {"distinct_id": "b"}}) == "a"
    assert distinct_id_of({"distinct_id": None, "properties": {"distinct_id": "b"}}) == "b"
    assert distinct_id_of({"$distinct_id": 23}) == "23"
    assert distinct_id_of({"distinct_id": 23.5}) == "23.5"
    assert distinct_id_of({"distinct_id": {"string": "a", "number": 3}}) == '{"number":3,"string":"a"}'
    assert distinct_id_of({"distinct_id": "x" * 300}) == "x" * 200
    for missing in ({}, {"distinct_id": ""}, {"properties": {"distinct_id": None}}):
        with pytest.raises(ValueError, match="distinct_id"):
            distinct_id_of(missing)


def test_person_properties_merge_with_the_top_level_winning() -> None:
    event = {"$set": {"a": 1}, "$set_once": {"b": 2}, "properties": {"$set": {"a": 0, "c": 3}, "x": 1}}
    assert properties_of(event) == {"$set": {"a": 1, "c": 3}, "$set_once": {"b": 2}, "x": 1}
    for bad in ({"properties": [1]}, {"$set": "pro"}, {"properties": {"$set_once": 5}}):
        with pytest.raises(ValueError):
            properties_of(bad)


def captured(event: dict[str, Any]) -> AcceptedEvent:
    """The event as capture converts it, after checking that the stream processor takes its message."""
    (item,) = capture_request(event, {}).items(NOW)
    accepted = posthog_event(item, NOW)
    stored = StoredEvent.model_validate_json(accepted.message)
    assert stored.linked_ids == accepted.linked_ids
    return accepted


def test_identify_and_alias_link_the_other_id_to_the_distinct_id() -> None:
    identify = captured(
        {"event": "$identify", "distinct_id": "u", "properties": {"$anon_distinct_id": "a", "$set": {"x": 1}}}
    )
    assert (identify.user_id, identify.linked_ids) == ("u", ["a"])
    assert identify.properties == {"$anon_distinct_id": "a", "$set": {"x": 1}}  # kept as sent
    alias = captured({"event": "$create_alias", "distinct_id": "u", "properties": {"alias": "u-crm"}})
    assert (alias.user_id, alias.linked_ids) == ("u", ["u-crm"])
    # Only these two events link, and only through their own property.
    for other in (
        {"event": "$identify", "distinct_id": "u", "properties": {"alias": "x"}},
        {"event": "$create_alias", "distinct_id": "u", "properties": {"$anon_distinct_id": "x"}},
        {"event": "$pageview", "distinct_id": "u", "properties": {"$anon_distinct_id": "x", "alias": "y"}},
    ):
        assert captured(other).linked_ids == []


def test_no_link_the_stream_would_refuse() -> None:
    """An id linked to itself links nothing; long ids are cut to 200 characters on both sides of a
    link, as the distinct id of their own events is, so the link still meets them."""
    for name, key in (("$identify", "$anon_distinct_id"), ("$create_alias", "alias")):
        assert captured({"event": name, "distinct_id": "u", "properties": {key: "u"}}).linked_ids == []
        assert captured({"event": name, "distinct_id": "u", "properties": {key: ""}}).linked_ids == []
        assert captured({"event": name, "distinct_id": "u", "properties": {key: None}}).linked_ids == []
        long_id = "x" * 300
        cut = captured({"event": name, "distinct_id": "u", "properties": {key: long_id}})
        assert cut.linked_ids == [long_id[:200]]
        assert captured({"event": "e", "distinct_id": long_id}).user_id == long_id[:200]
        itself = captured({"event": name, "distinct_id": long_id, "properties": {key: long_id + "y"}})
        assert itself.linked_ids == []  # the same id once cut
        number = captured({"event": name, "distinct_id": "u", "properties": {key: 42}})
        assert number.linked_ids == ["42"]


def test_identify_properties_are_not_person_properties() -> None:
    """PostHog's $identify sets the person through $set / $set_once only (its other properties are
    the library's: $lib, $browser, ...), unlike the native and Segment identify calls."""
    identify = captured(
        {
            "event": "$identify",
            "distinct_id": "u",
            "$set_once": {"first": 1},
            "properties": {"$anon_distinct_id": "a", "$lib": "web", "plan": "x", "$set": {"email": "e"}},
        }
    )
    updates = {
        (u.key, u.value, u.once) for u in property_updates(StoredEvent.model_validate_json(identify.message))
    }
    assert updates == {("email", "e", False), ("first", 1, True)}


def test_keys_are_dropped_and_a_batch_has_one_key() -> None:
    found = capture_request(
        [{"event": "$identify", "distinct_id": "u", "token": "K", "properties": {"$anon_distinct_id": 7}}], {}
    )
    assert found.token == "K"
    (item,) = found.items(NOW)
    assert "token" not in item["data"]
    accepted = posthog_event(item, NOW)
    assert (accepted.user_id, accepted.timestamp, accepted.source) == ("u", NOW, "posthog")
    assert accepted.properties == {"$anon_distinct_id": 7} and accepted.linked_ids == ["7"]
    with pytest.raises(errors.Unauthorized, match="inconsistent"):
        capture_request([{"event": "e", "api_key": "A"}, {"event": "e", "properties": {"token": "B"}}], {})


def test_decoding() -> None:
    data = b'{"event": "e", "distinct_id": "u"}'
    encoded = base64.b64encode(data).rstrip(b"=").replace(b"+", b" ")  # a form's + read as a space
    assert decode(encoded, "", 1024) == decode(data, "base64", 1024) == orjson.loads(data)
    assert decode(gzip.compress(data), "", 1024) == orjson.loads(data)
    assert decode(base64.b64encode(data), "base64", 1024) == orjson.loads(data)
    with pytest.raises(errors.MalformedBody, match="lz64"):
        decode(b"x", "lz64", 1024)
    with pytest.raises(errors.PayloadTooLarge):
        decode(gzip.compress(b" " * 5000 + data), "gzip-js", 1024)


def test_errors_in_posthog_words() -> None:
    limited = posthog_error_response(errors.RateLimited("slow down", retry_after=3))
    assert limited.status_code == 429 and limited.headers["retry-after"] == "3"
    assert orjson.loads(limited.body)["type"] == "throttled_error"
    kafka = posthog_error_response(errors.BrokerUnavailable("kafka is away"))
    assert kafka.status_code == 503 and kafka.headers["retry-after"] == "2"
    assert orjson.loads(kafka.body)["code"] == "server_error"
    missing = posthog_error_response(MissingApiKey("no key"))
    assert missing.status_code == 401 and orjson.loads(missing.body)["code"] == "missing_api_key"
    invalid = errors.InvalidRequest("no valid event", details=[{"index": 0, "errors": ["event: empty"]}])
    body = orjson.loads(posthog_error_response(invalid).body)
    assert body["detail"] == "Invalid payload: event: empty" and body["details"][0]["index"] == 0


def test_preflight_mirrors_header_lists_only() -> None:
    asked = preflight("https://a.example", "content-type, x-retry-count", None)
    assert (
        asked.status_code == 204
        and asked.headers["access-control-allow-headers"] == "content-type, x-retry-count"
    )
    odd = preflight("https://a.example", "content-type;\x7f", "true")
    assert odd.headers["access-control-allow-headers"] == DEFAULT_HEADERS
    assert odd.headers["access-control-allow-private-network"] == "true"
    assert "access-control-allow-origin" not in preflight(None, None, None).headers


def test_a_posthog_dead_letter_replays_to_its_sent_time() -> None:
    sent = NOW + timedelta(hours=1)
    found = capture_request(
        {
            "batch": [
                {"event": "e", "distinct_id": "u", "timestamp": (sent - timedelta(minutes=5)).isoformat()}
            ],
            "sent_at": sent.isoformat(),
        },
        {},
    )
    (item,) = found.items(NOW)
    live = posthog_event(item, NOW)
    record = {"source": "posthog", "stage": "ingest", "payload": item, "dead_letter_position": "0:7"}
    replayed = revive(record, NOW + timedelta(days=3))
    assert replayed.timestamp == live.timestamp == NOW - timedelta(minutes=5)
    assert replayed.event_id == revive(record, NOW + timedelta(days=4)).event_id  # a stable id
