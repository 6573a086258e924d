"""End to end through HTTP: ingest -> Kafka -> stream processor -> ClickHouse -> /stats."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gzip
import time
import uuid
from datetime import UTC, datetime

import httpx
import orjson

from shared.contracts.topics import Topics
from shared.kafka import partition_of
from shared.settings import CommonSettings
from tests.pipeline import (
    DAY,
    make_events,
    produce_raw,
    read_messages,
    read_topic,
    stats,
    wait_for_count,
)
from tests.support import INGEST_KEY, READ_KEY, Environment, ServiceProcess, auth, start_local_broker

PARTITIONS = CommonSettings.model_fields["topic_partitions"].default  # the tests do not change it


def post(url: str, body: object, key: str = INGEST_KEY, **kwargs: object) -> httpx.Response:
    return httpx.post(f"{url}/api/v1/events", json=body, headers=auth(key), timeout=30, **kwargs)


def test_posted_events_are_queryable(system: ServiceProcess) -> None:
    single = post(system.url, {"event": "signup", "user_id": "u1", "timestamp": f"{DAY}T10:00:00Z"})
    assert single.status_code == 202, single.text
    assert single.json()["accepted"] == 1
    batch = post(
        system.url,
        {
            "events": [
                {"event": "signup", "anonymous_id": "anon-1", "timestamp": f"{DAY}T11:00:00"},
                {
                    "event": "purchase",
                    "user_id": "u1",
                    "timestamp": f"{DAY}T12:00:00+01:00",
                    "properties": {"amount": 9.5},
                },
            ]
        },
    )
    assert batch.status_code == 202 and batch.json()["accepted"] == 2

    result = wait_for_count(system.url, 3)
    assert result == {
        "events": 3,
        "unique_users": 2,
        "by_event": [
            {"event": "signup", "count": 2, "unique_users": 2},
            {"event": "purchase", "count": 1, "unique_users": 1},
        ],
    }


def test_event_times_stay_on_their_utc_day(system: ServiceProcess, environment: Environment) -> None:
    """ClickHouse parses the stored ISO times: microseconds are truncated (never rounded into the next
    day) and an offset written by another producer is converted to UTC."""
    last_moment = post(system.url, {"event": "edge", "user_id": "t1", "timestamp": f"{DAY}T23:59:59.9996Z"})
    assert last_moment.status_code == 202
    with_offset = {
        "event_id": str(uuid.uuid4()),
        "event": "edge",
        "user_id": "t2",
        "timestamp": "2023-03-02T00:30:00+01:00",  # 23:30 UTC on DAY
        "received_at": "2023-03-02T00:30:00+01:00",
        "properties": {},
    }
    asyncio.run(
        produce_raw(environment.kafka, Topics(environment.prefix).events, [orjson.dumps(with_offset)])
    )
    assert wait_for_count(system.url, 2)["events"] == 2
    assert stats(system.url, "2023-03-02", "2023-03-02")["events"] == 0


def test_gzip_body_is_accepted(system: ServiceProcess) -> None:
    body = gzip.compress(orjson.dumps({"event": "signup", "user_id": "gz", "timestamp": f"{DAY}T01:00:00Z"}))
    response = httpx.post(
        f"{system.url}/api/v1/events",
        content=body,
        timeout=30,
        headers={**auth(INGEST_KEY), "Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert response.status_code == 202, response.text
    assert wait_for_count(system.url, 1)["events"] == 1


def test_batch_with_bad_items_keeps_the_good_and_dead_letters_the_bad(
    system: ServiceProcess, environment: Environment
) -> None:
    response = post(
        system.url,
        {
            "events": [
                {"event": "ok", "user_id": "u1", "timestamp": f"{DAY}T00:00:01Z"},
                {"event": "", "user_id": "u1"},
                {"event": "no_identity"},
                "not an object",
                {"event": "ok", "user_id": "u2", "timestamp": f"{DAY}T00:00:02Z", "event_id": "not-a-uuid"},
                {"event": "ok", "user_id": "u3", "timestamp": f"{DAY}T00:00:03Z"},
            ]
        },
    )
    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == 2
    assert [r["index"] for r in body["rejected"]] == [1, 2, 3, 4]
    assert any("user_id or anonymous_id" in e for e in body["rejected"][1]["errors"])

    assert wait_for_count(system.url, 2)["events"] == 2
    dead = read_topic(environment.kafka, Topics(environment.prefix).dead_letter, expected=4)
    assert len(dead) == 4
    assert {d["stage"] for d in dead} == {"ingest"}
    assert any(d["payload"] == "not an object" for d in dead)
    assert all(d["reason"] for d in dead)


def test_request_errors(system: ServiceProcess) -> None:
    assert post(system.url, {"events": [{"event": "x"}]}).status_code == 422
    assert post(system.url, {"events": "nope"}).status_code == 422
    assert post(system.url, {"events": [{"event": "e", "user_id": "u"}] * 1001}).status_code == 413
    bad_json = httpx.post(f"{system.url}/api/v1/events", content=b"{nope", headers=auth(INGEST_KEY))
    assert bad_json.status_code == 400 and bad_json.json()["error"] == "malformed_body"
    huge = {"event": "e", "user_id": "u", "properties": {"blob": "x" * 40_000}}
    too_big = post(system.url, huge)
    assert too_big.status_code == 422 and "32768" in str(too_big.json())
    assert post(system.url, {"event": "e", "user_id": "u"}, key="unknown-key").status_code == 401
    assert post(system.url, {"event": "e", "user_id": "u"}, key=READ_KEY).status_code == 403


def test_retried_event_ids_are_counted_once(system: ServiceProcess) -> None:
    events = make_events(50)
    assert post(system.url, {"events": events}).status_code == 202
    # Retry the same events, some without their timestamp (a new one is assigned on retry).
    retry = [dict(e) for e in events]
    for e in retry[:10]:
        e.pop("timestamp")
        e["timestamp"] = f"{DAY}T23:00:00Z"
    assert post(system.url, {"events": retry}).status_code == 202
    assert post(system.url, {"events": events[:25]}).status_code == 202
    marker = post(system.url, {"event": "marker", "user_id": "m", "timestamp": f"{DAY}T12:00:00Z"})
    assert marker.status_code == 202
    result = wait_for_count(system.url, 51)
    time.sleep(1.5)  # let any stragglers land before asserting the final count
    result = stats(system.url)
    assert result["events"] == 51
    assert {e["event"]: e["count"] for e in result["by_event"]} == {"page_view": 50, "marker": 1}


def test_stream_processor_killed_mid_load_loses_and_duplicates_nothing(
    environment: Environment, services: list[ServiceProcess]
) -> None:
    ingest = environment.service("ingest")
    loader = environment.service("stream,query", STREAM_BATCH_SIZE=5000)
    services.extend([ingest, loader])
    ingest.start()
    loader.start()
    total, batch_size = 100_000, 1000
    batches = [make_events(batch_size, users=1000) for _ in range(total // batch_size)]
    started = time.monotonic()

    def send(batch: list[dict[str, object]]) -> int:
        return post(ingest.url, {"events": batch}).status_code

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        first = list(pool.map(send, batches[:40]))
        loader.kill()  # mid-load: some batches loaded, some buffered, offsets partly committed
        second = list(pool.map(send, batches[40:]))
    assert set(first + second) == {202}
    loader.start()
    result = wait_for_count(loader.url, total, timeout=300)
    elapsed = time.monotonic() - started
    time.sleep(2)
    result = stats(loader.url)
    rate = total / elapsed
    print(f"loaded {total} events end to end in {elapsed:.1f}s ({rate:.0f} events/s) with one SIGKILL")
    assert result["events"] == total
    assert result["by_event"] == [{"event": "page_view", "count": total, "unique_users": 1000}]


def test_broker_down_answers_503_quickly_and_loses_nothing_acknowledged(
    environment: Environment, services: list[ServiceProcess], tmp_path
) -> None:
    broker = start_local_broker(tmp_path / "private")
    try:
        environment.kafka = broker.bootstrap_servers
        system = environment.service("all", INGEST_ACK_TIMEOUT_SECONDS=3)
        services.append(system)
        system.start()
        before = make_events(200)
        assert post(system.url, {"events": before}).status_code == 202

        broker.stop()
        started = time.monotonic()
        refused = post(system.url, {"events": make_events(10, name="refused")})
        elapsed = time.monotonic() - started
        assert refused.status_code == 503, refused.text
        assert "Retry-After" in refused.headers
        assert elapsed < 5.0

        broker.start()
        after = make_events(300)
        deadline = time.monotonic() + 60
        while (
            status := post(system.url, {"events": after}).status_code
        ) != 202 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert status == 202
        result = wait_for_count(system.url, 500, timeout=120)
        time.sleep(2)
        result = stats(system.url)
        assert result["events"] == 500
        assert [e["event"] for e in result["by_event"]] == ["page_view"]
    finally:
        broker.stop()


def test_poison_messages_go_to_the_dead_letter_topic_and_the_pipeline_goes_on(
    system: ServiceProcess, environment: Environment
) -> None:
    good = {
        "event_id": str(uuid.uuid4()),
        "event": "ok",
        "user_id": "u",
        "timestamp": f"{DAY}T00:00:00Z",
        "received_at": f"{DAY}T00:00:00Z",
        "properties": {},
    }
    in_envelope = {**good, "event_id": str(uuid.uuid4()), "user_id": "w"}
    huge_number = orjson.dumps(good).replace(b'"properties":{}', b'"properties":{"n":1' + b"0" * 30 + b"}")
    poison = [
        b"\xff\xfe not json",
        orjson.dumps({"event": "missing fields"}),
        orjson.dumps({**good, "event_id": "nope"}),
        orjson.dumps({**good, "properties": {"x": "y" * 70_000}}),
        # Valid JSON whose properties cannot be written back (an integer beyond 64 bits).
        huge_number,
        # An envelope with two bad events: those are dead-lettered, the other loads.
        b'{"events":[%s,%s,%s]}'
        % (orjson.dumps(in_envelope), orjson.dumps({**good, "timestamp": "yesterday"}), huge_number),
    ]
    asyncio.run(
        produce_raw(environment.kafka, Topics(environment.prefix).events, [*poison, orjson.dumps(good)])
    )
    assert wait_for_count(system.url, 2)["events"] == 2
    dead = read_topic(environment.kafka, Topics(environment.prefix).dead_letter, expected=7)
    reasons = sorted(d["reason"] for d in dead)
    assert len(dead) == 7 and all(d["stage"] == "stream" for d in dead)
    assert any(r.startswith("wrong schema: properties") and "JSON" in r for r in reasons)
    assert any(r.startswith("events[2]: wrong schema: properties") for r in reasons)
    assert any(r.startswith("undecodable") for r in reasons)
    assert any(r.startswith("wrong schema") for r in reasons)
    assert any("over" in r for r in reasons)
    assert any(r.startswith("events[1]: wrong schema: timestamp") for r in reasons)
    assert all(d["offset"] is not None for d in dead)
    # The pipeline keeps going after the poison.
    assert (
        post(system.url, {"event": "after", "user_id": "u", "timestamp": f"{DAY}T01:00:00Z"}).status_code
        == 202
    )
    assert wait_for_count(system.url, 3)["events"] == 3


def test_a_batch_travels_as_one_envelope_per_partition(
    system: ServiceProcess, environment: Environment
) -> None:
    """Ingest wraps a batch's events in one message per partition; each user stays on its partition."""
    events = make_events(300, users=40, start=datetime(2023, 3, 1, tzinfo=UTC))
    assert post(system.url, {"events": events[:1]}).status_code == 202  # fetches the topic's metadata
    response = post(system.url, {"events": events[1:]})
    assert response.status_code == 202 and response.json()["accepted"] == 299
    messages = read_messages(environment.kafka, Topics(environment.prefix).events, expected=300, unwrap=True)
    assert sum(len(items) for _, items in messages) == 300
    assert len(messages) <= 1 + PARTITIONS  # one for the first request, one envelope per partition
    partitions = {(item["user_id"], partition) for partition, items in messages for item in items}
    for user, partition in partitions:
        assert partition == partition_of(user.encode(), PARTITIONS)
    by_user = [[i["event_id"] for _, items in messages for i in items if i["user_id"] == "user-7"]]
    sent = [e["event_id"] for e in events if e["user_id"] == "user-7"]
    assert by_user == [sent]  # a user's events keep their order
    assert wait_for_count(system.url, 300)["events"] == 300
