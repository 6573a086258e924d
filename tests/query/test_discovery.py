"""Schema discovery from the catalogue ClickHouse keeps: events, property names with their observed
types (README, Definitions: property values) and most frequent values, each a small read."""

from __future__ import annotations

from typing import Any

from shared.clickhouse import ClickHouse
from tests.query.app import query_client
from tests.reference import ev, load


async def get(clickhouse: ClickHouse, path: str, **params: Any) -> Any:
    async with query_client(clickhouse) as client:
        response = await client.get(f"/api/v1/analytics{path}", params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def test_events_most_frequent_first_with_last_seen(clickhouse: ClickHouse) -> None:
    await load(clickhouse, [ev("signup", "u1", "2023-03-01 10:00"), ev("open", "u1", "2023-03-02 10:00")])
    await load(
        clickhouse, [ev("open", "u2", "2023-03-03 10:00:00.5"), ev("Opened app", "u2", "2023-03-01 10:00")]
    )
    answer = await get(clickhouse, "/events")
    assert answer["events"] == [
        {"event": "open", "count": 2, "last_seen": "2023-03-03T10:00:00.500000Z"},
        {"event": "Opened app", "count": 1, "last_seen": "2023-03-01T10:00:00Z"},
        {"event": "signup", "count": 1, "last_seen": "2023-03-01T10:00:00Z"},
    ]
    assert [e["event"] for e in (await get(clickhouse, "/events", search="OPEN", limit=1))["events"]] == [
        "open"
    ]


async def test_rule_property_values_discovery_types_are_the_kinds_seen(clickhouse: ClickHouse) -> None:
    events = [
        ev("buy", "u1", "2023-03-01 10:00", plan="pro", amount=10, paid=True, at="2023-03-01", tags=["a"]),
        ev(
            "buy",
            "u2",
            "2023-03-01 11:00",
            plan="free",
            amount="12.5",
            paid=False,
            at="2023-03-01T10:00:00Z",
            meta={"a": 1},
        ),
        ev("buy", "u3", "2023-03-01 12:00", plan=None, amount=3.5, at="2023-02-30"),  # not a real day
        ev("open", "u1", "2023-03-01 12:00", plan=1, seen_at="2023-03-01 10:00+01:00"),
    ]
    await load(clickhouse, events)
    found = {
        p["property"]: (p["type"], p["count"])
        for p in (await get(clickhouse, "/properties", event="buy"))["properties"]
    }
    assert found == {
        "plan": ("string", 2),  # null is not set
        "amount": ("mixed", 3),
        "paid": ("boolean", 2),
        "at": ("string", 3),  # "2023-02-30" is no date, so not every string is
        "tags": ("array", 1),
        "meta": ("object", 1),
    }
    everywhere = {p["property"]: p["type"] for p in (await get(clickhouse, "/properties"))["properties"]}
    assert (everywhere["plan"], everywhere["seen_at"]) == ("mixed", "datetime")
    names = [p["property"] for p in (await get(clickhouse, "/properties", search="A", limit=2))["properties"]]
    assert names == ["amount", "at"]  # most often set first, then by name


async def test_values_most_frequent_first_as_typed_json(clickhouse: ClickHouse) -> None:
    plans: list[Any] = ["pro", "pro", 1, 1.0, "1", True, None, {"x": 1}, "x" * 201]
    await load(clickhouse, [ev("buy", f"u{i}", "2023-03-01 10:00", plan=p) for i, p in enumerate(plans)])
    await load(clickhouse, [ev("open", "u1", "2023-03-01 10:00", plan="free")])
    answer = await get(clickhouse, "/properties/plan/values", event="buy")
    assert answer == {
        "property": "plan",
        "values": [
            {"value": 1, "count": 2, "error": 0},  # 1 and 1.0 are one value, as for filters and breakdowns
            {"value": "pro", "count": 2, "error": 0},
            {"value": "1", "count": 1, "error": 0},
            {"value": True, "count": 1, "error": 0},
        ],
    }
    assert (await get(clickhouse, "/properties/plan/values", search="FR"))["values"] == [
        {"value": "free", "count": 1, "error": 0}
    ]
    assert (await get(clickhouse, "/properties/plan/values", search="tru"))["values"] == [
        {"value": True, "count": 1, "error": 0}
    ]


async def test_person_properties_are_empty_until_persons_land(clickhouse: ClickHouse) -> None:
    await load(clickhouse, [ev("buy", "u1", "2023-03-01 10:00", plan="pro")])
    assert (await get(clickhouse, "/properties", source="person"))["properties"] == []
    assert (await get(clickhouse, "/properties/plan/values", source="person"))["values"] == []


async def test_bad_discovery_queries_are_422s(clickhouse: ClickHouse) -> None:
    async with query_client(clickhouse) as client:
        for path, params in [
            ("/events", {"limit": 0}),
            ("/events", {"limit": 1001}),
            ("/properties", {"source": "group"}),
            ("/properties", {"search": "x" * 201}),
            ("/properties/plan/values", {"limit": "many"}),
        ]:
            response = await client.get(f"/api/v1/analytics{path}", params=params)
            assert response.status_code == 422, (path, params, response.text)
            assert next(iter(params)) in response.json()["message"]
