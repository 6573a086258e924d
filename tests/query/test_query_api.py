"""The funnel and cohort endpoints over HTTP: 422s naming the field and the key checks on the query
router in-process, then one end-to-end pass through the real service (ingest -> Kafka -> ClickHouse)."""

from __future__ import annotations

from typing import Any

from shared.clickhouse import ClickHouse
from tests.pipeline import DAY as PIPELINE_DAY
from tests.pipeline import wait_for_count
from tests.query.app import query_client
from tests.reference import ev, load
from tests.support import ADMIN_KEY, INGEST_KEY, READ_KEY, ServiceProcess

DAY = "2023-01-01"


def rates(answer: dict[str, Any]) -> list[tuple[str, int, list[float]]]:
    return [(c["cohort_date"], c["users"], [d["percentage"] for d in c["data"]]) for c in answer["cohorts"]]


BAD_BODIES: list[tuple[dict[str, Any], str]] = [
    ({"steps": ["a"]}, "steps"),
    ({"steps": ["a"] * 21}, "steps"),
    ({"steps": ["a", ""]}, "steps.1.event"),
    ({"mode": "sideways"}, "mode"),
    ({"start_date": "2023-13-01"}, "start_date"),
    ({"start_date": "01/02/2023"}, "start_date"),
    ({"start_date": 1672531200}, "start_date"),
    ({"start_date": "1969-12-31"}, "start_date"),  # before any event can be
    ({"end_date": "2200-01-01"}, "end_date"),
    ({"end_date": "2022-12-31"}, "end_date"),  # before start_date
    ({"end_date": "2024-01-02"}, "end_date"),  # 367 days
    (
        {"steps": ["a", {"event": "b", "filters": [{"property": "p", "op": "like", "value": 1}]}]},
        "steps.1.filters.0.op",
    ),
    ({"filters": [{"property": "p", "op": "gt", "value": "x"}]}, "filters.0"),
    ({"filters": [{"property": "p", "op": "in", "value": []}]}, "filters.0"),
    ({"window_seconds": 0}, "window_seconds"),
    ({"breakdown": ""}, "breakdown.property"),
    ({"timezone": "Europe/Nowhere"}, "timezone"),
    ({"window": 60}, "window"),
    # issue 16: window units, exclusions, attribution, views
    ({"window": {"value": 1, "unit": "day"}, "window_seconds": 60}, "window"),
    ({"window": {"value": 1, "unit": "fortnight"}}, "window.unit"),
    ({"window": {"value": 13, "unit": "month"}}, "window.value"),
    ({"window": {"value": 367, "unit": "day"}}, "window.value"),
    ({"exclusions": [{"event": "x", "from_step": 1, "to_step": 1}]}, "exclusions.0.from_step"),
    ({"exclusions": [{"event": "x", "from_step": 0, "to_step": 2}]}, "exclusions.0.to_step"),
    ({"exclusions": [{"event": "x", "from_step": -1, "to_step": 1}]}, "exclusions.0.from_step"),
    ({"exclusions": [{"event": "b", "from_step": 0, "to_step": 1}]}, "exclusions.0.event"),
    ({"exclusions": [{"event": "a", "from_step": 0, "to_step": 1}]}, "exclusions.0.event"),
    ({"breakdown": "plan", "breakdown_attribution": "middle_touch"}, "breakdown_attribution"),
    ({"breakdown": "plan", "breakdown_attribution": "step"}, "breakdown_attribution_step"),
    (
        {"breakdown": "plan", "breakdown_attribution": "step", "breakdown_attribution_step": 2},
        "breakdown_attribution_step",
    ),
    ({"breakdown": {"property": "plan", "source": "session"}}, "breakdown.source"),
    ({"hold_constant": [""]}, "hold_constant.0"),
    ({"counting": "sessions"}, "counting"),
    ({"counting": "totals", "mode": "unordered"}, "counting"),
    ({"view": "pie"}, "view"),
    ({"view": "time_to_convert", "bins": 0}, "bins"),
    ({"view": "time_to_convert", "bins": 91}, "bins"),
    ({"view": "time_to_convert", "from_step": 1, "to_step": 1}, "from_step"),
    ({"view": "time_to_convert", "to_step": 2}, "to_step"),
    ({"view": "trends", "breakdown": "plan"}, "breakdown"),
    ({"view": "trends", "interval": "year"}, "interval"),
]


async def test_bad_funnel_bodies_are_422_naming_the_field(clickhouse: ClickHouse) -> None:
    async with query_client(clickhouse) as client:
        for change, field in BAD_BODIES:
            body = {"steps": ["a", "b"], "start_date": DAY, "end_date": DAY, **change}
            response = await client.post("/api/v1/analytics/funnel", json=body)
            assert response.status_code == 422, (change, response.text)
            named = [".".join(str(p) for p in d["loc"][1:]) for d in response.json()["details"]]
            assert field in named, (change, response.json())


BAD_PERSONS_BODIES: list[tuple[dict[str, Any], str]] = [
    ({}, "step"),
    ({"step": 2}, "step"),
    ({"step": 0, "status": "dropped"}, "step"),
    ({"step": 1, "status": "gone"}, "status"),
    ({"step": 1, "limit": 0}, "limit"),
    ({"step": 1, "limit": 1001}, "limit"),
    ({"step": 1, "exclusions": [{"event": "a", "from_step": 0, "to_step": 1}]}, "exclusions.0.event"),
]


async def test_funnel_views_and_persons_over_http(clickhouse: ClickHouse) -> None:
    events = [ev("a", "u1", f"{DAY} 10:00"), ev("b", "u1", f"{DAY} 10:01"), ev("a", "u2", f"{DAY} 11:00")]
    await load(clickhouse, events)
    body = {"steps": ["a", "b"], "start_date": DAY, "end_date": DAY}
    async with query_client(clickhouse) as client:
        steps = (await client.post("/api/v1/analytics/funnel", json=body)).json()
        assert [(s["count"], s["median_conversion_seconds"]) for s in steps["funnel"]] == [
            (2, None),
            (1, 60.0),
        ]
        ttc = (await client.post("/api/v1/analytics/funnel", json={**body, "view": "time_to_convert"})).json()
        assert (ttc["view"], ttc["converted"], ttc["median_seconds"]) == ("time_to_convert", 1, 60.0)
        trends = (await client.post("/api/v1/analytics/funnel", json={**body, "view": "trends"})).json()
        assert trends["trends"] == [
            {"period": DAY, "start": DAY, "entered": 2, "converted": 1, "conversion_rate": 50.0}
        ]
        persons = await client.post(
            "/api/v1/analytics/funnel/persons", json={**body, "step": 1, "status": "dropped"}
        )
        assert persons.status_code == 200, persons.text
        assert persons.json() == {"persons": [{"person_id": "u2", "distinct_id": "u2"}], "next_cursor": None}
        for change, field in BAD_PERSONS_BODIES:
            response = await client.post("/api/v1/analytics/funnel/persons", json={**body, **change})
            assert response.status_code == 422, (change, response.text)
            named = [".".join(str(p) for p in d["loc"][1:]) for d in response.json()["details"]]
            assert field in named, (change, response.json())
    async with query_client(clickhouse, INGEST_KEY) as client:
        assert (
            await client.post("/api/v1/analytics/funnel/persons", json={**body, "step": 1})
        ).status_code == 403


async def test_read_or_admin_key_required(clickhouse: ClickHouse) -> None:
    body = {"steps": ["a", "b"], "start_date": DAY, "end_date": DAY}
    for key, status in [
        (None, 401),
        ("not-a-key", 401),
        (INGEST_KEY, 403),
        (READ_KEY, 200),
        (ADMIN_KEY, 200),
    ]:
        async with query_client(clickhouse, key) as client:
            response = await client.post("/api/v1/analytics/funnel", json=body)
        assert response.status_code == status, (key, response.text)


def test_end_to_end_through_the_service(system: ServiceProcess) -> None:
    """Events posted to ingest come back as a funnel and a cohort from the real process."""
    events = [
        {
            "event": "signup",
            "user_id": "u1",
            "timestamp": f"{PIPELINE_DAY}T10:00:00Z",
            "properties": {"plan": "pro"},
        },
        {"event": "paid", "user_id": "u1", "timestamp": f"{PIPELINE_DAY}T11:00:00Z"},
        {"event": "signup", "user_id": "u2", "timestamp": f"{PIPELINE_DAY}T12:00:00Z"},
    ]
    with system.client(INGEST_KEY) as ingest:
        assert ingest.post("/api/v1/events", json={"events": events}).status_code == 202
    assert wait_for_count(system.url, 3)["events"] == 3
    body = {
        "steps": ["signup", "paid"],
        "start_date": PIPELINE_DAY,
        "end_date": PIPELINE_DAY,
        "breakdown": "plan",
    }
    cohort = {"period_type": "daily", "periods": 2, "end_date": "2023-03-02", "start_event": "signup"}
    with system.client(READ_KEY) as client:
        funnel = client.post("/api/v1/analytics/funnel", json=body)
        assert funnel.status_code == 200, funnel.text
        assert [s["count"] for s in funnel.json()["funnel"]] == [2, 1]
        assert [(b["value"], b["total_entries"]) for b in funnel.json()["breakdown"]] == [
            ("pro", 1),
            (None, 1),
        ]
        retention = client.get("/api/v1/analytics/cohort", params=cohort)
        assert retention.status_code == 200, retention.text
        assert [(c["cohort_date"], c["users"]) for c in retention.json()["cohorts"]] == [
            ("2023-03-01", 2),
            ("2023-03-02", 0),
        ]
        trends = client.post(
            "/api/v1/analytics/trends",
            json={
                "series": [{"event": "signup", "math": "unique_persons"}, {"event": "paid"}],
                "start_date": PIPELINE_DAY,
                "end_date": PIPELINE_DAY,
                "timezone": "Europe/Berlin",
                "breakdown": "plan",
                "formula": "B / A",
                "filters": [{"property": "plan", "op": "regex", "value": "^p"}],
            },
        )
        assert trends.status_code == 200, trends.text
        assert [(r["series"], r["breakdown_value"], r["total"]) for r in trends.json()["results"]] == [
            ("A", "pro", 1),
            ("B", "pro", 0),
        ]
        events_seen = client.get("/api/v1/analytics/events").json()["events"]
        assert {e["event"]: e["count"] for e in events_seen} == {"signup": 2, "paid": 1}
        bad_regex = {"series": [{"event": "a", "filters": [{"property": "p", "op": "regex", "value": "("}]}]}
        bad = client.post(
            "/api/v1/analytics/trends",
            json={**bad_regex, "start_date": PIPELINE_DAY, "end_date": PIPELINE_DAY},
        )
        assert bad.status_code == 422 and "series.0.filters.0" in bad.json()["message"]
        assert client.post("/api/v1/analytics/funnel", json={**body, "steps": ["signup"]}).status_code == 422
        bad_periods = client.get("/api/v1/analytics/cohort", params={**cohort, "periods": 53})
        assert bad_periods.status_code == 422 and "periods" in bad_periods.json()["message"]
    with system.client(INGEST_KEY) as wrong_role, system.client() as anonymous:
        assert wrong_role.post("/api/v1/analytics/funnel", json=body).status_code == 403
        assert anonymous.get("/api/v1/analytics/cohort", params=cohort).status_code == 401


BAD_QUERIES: list[tuple[dict[str, Any], str]] = [
    ({"period_type": "yearly"}, "period_type"),
    ({"periods": 0}, "periods"),
    ({"periods": 53}, "periods"),
    ({"periods": "eight"}, "periods"),
    ({"end_date": "2023-02-30"}, "end_date"),
    ({"end_date": "yesterday"}, "end_date"),
    ({"end_date": "2200-01-01"}, "end_date"),
    ({"start_event": "x" * 201}, "start_event"),
    ({"timezone": "Mars/Base"}, "timezone"),
]


async def test_cohort_answers_and_422s_naming_the_field(clickhouse: ClickHouse) -> None:
    events = [ev("signup", "u1", "2023-01-02 10:00"), ev("open", "u1", "2023-01-09 10:00")]
    await load(clickhouse, events)
    async with query_client(clickhouse) as client:
        query = {"periods": 2, "end_date": "2023-01-09", "start_event": "signup", "return_event": ""}
        response = await client.get("/api/v1/analytics/cohort", params=query)
        assert response.status_code == 200, response.text
        assert rates(response.json()) == [("2023-W01", 1, [100.0, 100.0]), ("2023-W02", 0, [0.0])]
        for change, field in BAD_QUERIES:
            response = await client.get("/api/v1/analytics/cohort", params={**query, **change})
            assert response.status_code == 422, (change, response.text)
            assert field in response.json()["message"], (change, response.json())
    async with query_client(clickhouse, INGEST_KEY) as client:
        assert (await client.get("/api/v1/analytics/cohort")).status_code == 403
