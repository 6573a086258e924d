"""Persons end to end, through the real pipeline: the native identify call and Segment's identify and
alias merge ids into one person (seen by the persons API and counted once by the funnel and /stats),
events page newest first, search finds a person by id or email, bad identify calls get 422, and a
deletion removes the person for good: the old events sent again do not come back, new ones are a new
person."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from shared.contracts.topics import Topics
from tests.pipeline import produce_raw, stats, wait_for_count
from tests.support import ADMIN_KEY, INGEST_KEY, READ_KEY, Environment, ServiceProcess, auth

DAY = "2023-05-10"


def at(hour: int, minute: int = 0) -> str:
    return f"{DAY}T{hour:02d}:{minute:02d}:00Z"


@pytest.fixture
def api(system: ServiceProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=system.url, timeout=30) as client:
        yield client


def post(api: httpx.Client, path: str, body: Any) -> httpx.Response:
    return api.post(path, json=body, headers=auth(INGEST_KEY))


def person(api: httpx.Client, distinct_id: str) -> httpx.Response:
    return api.get(f"/api/v1/persons/{distinct_id}", headers=auth(READ_KEY))


def until_person(
    api: httpx.Client, distinct_id: str, expected_key: str, timeout: float = 60
) -> dict[str, Any]:
    """The person of `distinct_id` once the resolver has made it `expected_key`'s."""
    deadline = time.monotonic() + timeout
    answer: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = person(api, distinct_id)
        if response.status_code == 200:
            answer = response.json()
            if answer["person_id"] == expected_key:
                return answer
        time.sleep(0.3)
    raise AssertionError(f"{distinct_id} never became {expected_key}'s: {answer}")


def test_ids_merge_into_persons_and_everything_counts_them_once(
    api: httpx.Client, system: ServiceProcess
) -> None:
    # Anonymous browsing, then a signup with both ids; Segment identify and alias; the native identify.
    events = [
        {"event": "page_view", "anonymous_id": "anon-1", "timestamp": at(9), "properties": {"path": "/"}},
        {"event": "signup", "user_id": "ada", "anonymous_id": "anon-1", "timestamp": at(10)},
        {"event": "purchase", "user_id": "ada", "timestamp": at(11), "properties": {"amount": 9}},
        {"event": "page_view", "anonymous_id": "anon-2", "timestamp": at(9, 30)},
        {"event": "page_view", "anonymous_id": "anon-3", "timestamp": at(9, 40)},
    ]
    assert post(api, "/api/v1/events", {"events": events}).status_code == 202
    segment = {
        "batch": [
            {
                "type": "identify",
                "userId": "bob",
                "anonymousId": "anon-2",
                "timestamp": at(10),
                "traits": {"email": "bob@example.com", "plan": "pro"},
            },
            {"type": "track", "userId": "bob", "event": "signup", "timestamp": at(10, 5)},
            {"type": "alias", "userId": "bob", "previousId": "bob-old", "timestamp": at(10, 6)},
            {"type": "track", "userId": "bob-old", "event": "purchase", "timestamp": at(12)},
        ]
    }
    assert post(api, "/v1/batch", segment).status_code == 200
    identify = {
        "anonymous_id": "anon-3",
        "user_id": "cy",
        "timestamp": at(10),
        "properties": {"plan": "free"},
    }
    assert post(api, "/api/v1/identify", identify).status_code == 202
    wait_for_count(system.url, 10, start=DAY, end=DAY)

    ada = until_person(api, "anon-1", "ada")
    assert ada["distinct_ids"] == ["ada", "anon-1"] and ada["events"] == 3
    assert ada["first_seen"].startswith(f"{DAY}T09:00") and ada["last_seen"].startswith(f"{DAY}T11:00")
    bob = until_person(api, "bob-old", "bob")
    until_person(api, "anon-2", "bob")
    assert sorted(bob["distinct_ids"]) == ["anon-2", "bob", "bob-old"]
    assert bob["properties"] == {"email": "bob@example.com", "plan": "pro"}
    cy = until_person(api, "anon-3", "cy")
    assert cy["properties"] == {"plan": "free"}

    # Counted once, as persons: three people, each converting from their anonymous step.
    answer = stats(system.url, DAY, DAY)
    assert answer["unique_users"] == 3 and answer["events"] == 10
    funnel = api.post(
        "/api/v1/analytics/funnel",
        json={"steps": ["page_view", "signup", "purchase"], "start_date": DAY, "end_date": DAY},
        headers=auth(READ_KEY),
    ).json()
    assert [s["count"] for s in funnel["funnel"]] == [3, 2, 2]

    # The person's events, newest first, two at a time, following the cursor.
    pages, cursor = [], None
    while True:
        params = {"limit": 2, **({"before": cursor} if cursor else {})}
        page = api.get("/api/v1/persons/bob/events", params=params, headers=auth(READ_KEY)).json()
        pages.append([e["event"] for e in page["events"]])
        cursor = page["next"]
        if cursor is None:
            break
    assert pages == [["purchase", "$alias"], ["signup", "$identify"], ["page_view"]]
    bad = api.get("/api/v1/persons/bob/events", params={"before": "nonsense"}, headers=auth(READ_KEY))
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_request"

    # Search by the start of an id or of an email.
    found = api.get("/api/v1/persons", params={"search": "bob@"}, headers=auth(READ_KEY)).json()
    assert [p["person_id"] for p in found["persons"]] == ["bob"]
    found = api.get("/api/v1/persons", params={"search": "anon-"}, headers=auth(READ_KEY)).json()
    assert [p["person_id"] for p in found["persons"]] == ["ada", "bob", "cy"]
    assert person(api, "nobody").status_code == 404

    # A distinct id with slashes (URLs, paths as ids) is reachable, encoded or not.
    post(api, "/api/v1/identify", {"anonymous_id": "web/anon/7", "user_id": "dee", "timestamp": at(13)})
    assert until_person(api, "web/anon/7", "dee")["distinct_ids"] == ["dee", "web/anon/7"]
    assert person(api, "web%2Fanon%2F7").json()["person_id"] == "dee"
    page = api.get("/api/v1/persons/web/anon/7/events", headers=auth(READ_KEY)).json()
    assert [e["event"] for e in page["events"]] == ["$identify"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user_id": "u"}, "anonymous_id"),
        ({"anonymous_id": "a"}, "user_id"),
        ({"anonymous_id": "same", "user_id": "same"}, "user_id"),
        ({"anonymous_id": "a" * 201, "user_id": "u"}, "anonymous_id"),
        ({"anonymous_id": "a", "user_id": "u", "properties": []}, "properties"),
    ],
)
def test_a_bad_identify_call_is_a_422_naming_the_field(
    api: httpx.Client, body: dict[str, Any], field: str
) -> None:
    response = post(api, "/api/v1/identify", body)
    assert response.status_code == 422 and field in response.json()["message"]


def test_a_deleted_person_stays_deleted_and_comes_back_only_as_new_events(
    api: httpx.Client, system: ServiceProcess, environment: Environment
) -> None:
    old = [
        {
            "event": "page_view",
            "anonymous_id": "gone-anon",
            "timestamp": at(8),
            "event_id": str(uuid.uuid4()),
        },
        {
            "event": "signup",
            "user_id": "gone",
            "anonymous_id": "gone-anon",
            "timestamp": at(9),
            "event_id": str(uuid.uuid4()),
            "properties": {"$set": {"plan": "pro"}},
        },
        {"event": "page_view", "user_id": "stays", "timestamp": at(9)},
    ]
    assert post(api, "/api/v1/events", {"events": old}).status_code == 202
    wait_for_count(system.url, 3, start=DAY, end=DAY)
    until_person(api, "gone-anon", "gone")
    assert api.delete("/api/v1/persons/gone", headers=auth(READ_KEY)).status_code == 403
    response = api.delete("/api/v1/persons/gone-anon", headers=auth(ADMIN_KEY))
    assert response.status_code == 202, response.text
    deletion = response.json()
    assert sorted(deletion["distinct_ids"]) == ["gone", "gone-anon"] and deletion["status"] == "pending"
    deadline = time.monotonic() + 90
    while (
        api.get(f"/api/v1/persons/deletions/{deletion['deletion_id']}", headers=auth(READ_KEY)).json()[
            "status"
        ]
        != "done"
    ):
        assert time.monotonic() < deadline, "the deletion never finished"
        time.sleep(0.5)
    assert person(api, "gone").status_code == 404 and person(api, "gone-anon").status_code == 404
    assert stats(system.url, DAY, DAY)["events"] == 1
    assert api.delete("/api/v1/persons/gone", headers=auth(ADMIN_KEY)).status_code == 404

    # The same events again on the topic, as a replay or a late delivery would bring them: not loaded.
    replayed = [
        orjson.dumps(
            {
                **e,
                "user_id": e.get("user_id") or e["anonymous_id"],
                "received_at": at(9, 30),
                "linked_ids": ["gone-anon"] if e.get("user_id") == "gone" else [],
            }
        )
        for e in old[:2]
    ]
    asyncio.run(produce_raw(environment.kafka, Topics(environment.prefix).events, replayed))
    # A new event of the same id after the deletion is a new person, with none of the old properties.
    post(api, "/api/v1/events", {"event": "page_view", "user_id": "gone", "timestamp": at(12)})
    deadline = time.monotonic() + 60
    while person(api, "gone").status_code != 200:
        assert time.monotonic() < deadline, "the new event of the deleted id never arrived"
        time.sleep(0.3)
    time.sleep(2)  # the replayed messages were on the topic before the new event: long since read
    reborn = person(api, "gone").json()
    assert reborn == {**reborn, "distinct_ids": ["gone"], "properties": {}, "events": 1}
    assert stats(system.url, DAY, DAY)["events"] == 2
