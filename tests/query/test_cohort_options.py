"""Retention options (first_time, cumulative, start and return filters, breakdown) on the README's worked
example with the answers written out, the GET and POST forms over HTTP, then the service against
tests/reference.py on random events with every option."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from services.query.cohort import CohortRequest, run_cohort
from shared.clickhouse import ClickHouse
from tests import reference
from tests.query.app import query_client
from tests.query.test_cohort import random_events
from tests.reference import Event, ev, load

PARAMS = {"period_type": "daily", "periods": 3, "end_date": "2023-01-03", "start_event": "signup"}


def example() -> list[Event]:
    """README, "Retention types": ann bought before signing up the same day, bob the day after."""
    return [
        ev("signup", "ann", "2023-01-01 10:00", plan="pro"),
        ev("purchase", "ann", "2023-01-01 08:00", amount=10),
        ev("purchase", "ann", "2023-01-03 09:00", amount=100),
        ev("signup", "bob", "2023-01-01 12:00", plan="free"),
        ev("purchase", "bob", "2023-01-02 12:00", amount=20),
        ev("signup", "cid", "2023-01-02 09:00", plan="pro"),
    ]


async def ask(clickhouse: ClickHouse, events: list[Event], **params: Any) -> dict[str, Any]:
    answer = (await run_cohort(clickhouse, CohortRequest(**params), timeout=30)).model_dump()
    assert answer == reference.cohorts(events, params)
    return answer


def table(answer: dict[str, Any]) -> list[tuple[str, int, list[int]]]:
    return [(c["cohort_date"], c["users"], [d["count"] for d in c["data"]]) for c in answer["cohorts"]]


async def test_recurring_first_time_and_cumulative(clickhouse: ClickHouse) -> None:
    events = example()
    await load(clickhouse, events)
    body = {**PARAMS, "return_event": "purchase"}
    assert table(await ask(clickhouse, events, **body)) == [
        ("2023-01-01", 2, [1, 1, 1]),  # ann's purchase before her signup counts in period 0
        ("2023-01-02", 1, [0, 0]),
        ("2023-01-03", 0, [0]),
    ]
    assert table(await ask(clickhouse, events, **body, retention_type="first_time")) == [
        ("2023-01-01", 2, [2, 1, 1]),  # the start itself is period 0
        ("2023-01-02", 1, [1, 0]),
        ("2023-01-03", 0, [0]),
    ]
    assert table(await ask(clickhouse, events, **body, cumulative=True)) == [
        ("2023-01-01", 2, [2, 2, 1]),  # bob returned on day 1, ann on day 2: both "on or after" 0 and 1
        ("2023-01-02", 1, [0, 0]),
        ("2023-01-03", 0, [0]),
    ]
    both = await ask(clickhouse, events, **body, retention_type="first_time", cumulative=True)
    assert table(both)[1] == ("2023-01-02", 1, [1, 0])


async def test_start_and_return_filters(clickhouse: ClickHouse) -> None:
    events = example()
    await load(clickhouse, events)
    pro = [{"property": "plan", "op": "eq", "value": "pro"}]
    big = [{"property": "amount", "op": "gt", "value": 50}]
    answer = await ask(
        clickhouse, events, **PARAMS, return_event="purchase", start_filters=pro, return_filters=big
    )
    assert table(answer) == [("2023-01-01", 1, [0, 0, 1]), ("2023-01-02", 1, [0, 0]), ("2023-01-03", 0, [0])]
    # filters without named events: any event matching them
    anything = {k: v for k, v in PARAMS.items() if k != "start_event"}
    answer = await ask(clickhouse, events, **anything, start_filters=pro)
    assert table(answer) == [("2023-01-01", 1, [1, 0, 1]), ("2023-01-02", 1, [1, 0]), ("2023-01-03", 0, [0])]


async def test_breakdown_by_the_cohort_starting_event(clickhouse: ClickHouse) -> None:
    events = example()
    await load(clickhouse, events)
    answer = await ask(clickhouse, events, **PARAMS, return_event="purchase", breakdown="plan")
    assert table(answer)[0] == ("2023-01-01", 2, [1, 1, 1])
    assert [(b["value"], b["other"], table(b)) for b in answer["breakdown"]] == [
        ("pro", False, [("2023-01-01", 1, [1, 0, 1]), ("2023-01-02", 1, [0, 0]), ("2023-01-03", 0, [0])]),
        ("free", False, [("2023-01-01", 1, [0, 1, 0]), ("2023-01-02", 0, [0, 0]), ("2023-01-03", 0, [0])]),
    ]
    # these events set no person properties: everyone is in the null bucket
    # (tests/query/test_person_properties.py holds persons with properties)
    by_person = await ask(clickhouse, events, **PARAMS, breakdown={"property": "plan", "source": "person"})
    assert [(b["value"], b["cohorts"][0]["users"]) for b in by_person["breakdown"]] == [(None, 2)]


async def test_get_and_post_forms(clickhouse: ClickHouse) -> None:
    events = example()
    await load(clickhouse, events)
    body = {
        **PARAMS,
        "return_event": "purchase",
        "start_filters": [{"property": "plan", "op": "eq", "value": "pro"}],
    }
    expected = reference.cohorts(events, body)
    async with query_client(clickhouse) as client:
        posted = await client.post("/api/v1/analytics/cohort", json=body)
        assert posted.status_code == 200, posted.text
        assert posted.json() == expected
        query = {**body, "start_filters": json.dumps(body["start_filters"])}
        got = await client.get("/api/v1/analytics/cohort", params=query)
        assert got.status_code == 200, got.text
        assert got.json() == expected
        broken = await client.get("/api/v1/analytics/cohort", params={**query, "start_filters": "[{"})
        assert broken.status_code == 422 and "start_filters" in broken.json()["message"]
        wrong = await client.post("/api/v1/analytics/cohort", json={**body, "retention_type": "sometimes"})
        assert wrong.status_code == 422 and "retention_type" in wrong.json()["message"]
        split = await client.get("/api/v1/analytics/cohort", params={**PARAMS, "breakdown": "plan"})
        assert [b["value"] for b in split.json()["breakdown"]] == ["pro", "free"]


FILTERS = st.sampled_from(
    [[], [{"property": "plan", "op": "eq", "value": "p"}], [{"property": "plan", "op": "is_set"}]]
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    events=random_events(),
    period_type=st.sampled_from(["daily", "weekly", "monthly"]),
    periods=st.integers(1, 8),
    end=st.dates(date(2020, 12, 20), date(2021, 2, 20)),
    start_event=st.sampled_from([None, "a", "b"]),
    return_event=st.sampled_from([None, "a", "b"]),
    options=st.fixed_dictionaries(
        {
            "retention_type": st.sampled_from(["recurring", "first_time"]),
            "cumulative": st.booleans(),
            "start_filters": FILTERS,
            "return_filters": FILTERS,
        }
    ),
    breakdown=st.sampled_from([None, "plan", "person.plan"]),
    plans=st.lists(st.sampled_from(["p", "q", None]), min_size=20, max_size=20),
    links=st.lists(st.tuples(st.integers(0, 19), st.sampled_from(["u1", "u2", "u3", "u4"])), max_size=3),
    timezone=st.sampled_from(["UTC", "UTC", "Europe/Berlin", "America/St_Johns"]),
)
async def test_service_matches_reference_with_options(
    clickhouse: ClickHouse,
    events: list[Event],
    period_type: str,
    periods: int,
    end: date,
    start_event: str | None,
    return_event: str | None,
    options: dict[str, Any],
    breakdown: str | None,
    plans: list[str | None],
    links: list[tuple[int, str]],
    timezone: str,
) -> None:
    """Merged persons (random links), person properties (`$set` beside each event's plan) and zones."""
    for e, plan in zip(events, plans, strict=False):
        if plan is not None:
            e.properties.update(plan=plan, **{"$set": {"plan": plan.upper()}})
    for i, other in links:
        if i < len(events) and events[i].user_id != other:
            events[i].linked_ids.append(other)
    params: dict[str, Any] = {
        "period_type": period_type,
        "periods": periods,
        "end_date": end.isoformat(),
        "timezone": timezone,
        **options,
    }
    params.update({k: v for k, v in {"start_event": start_event, "return_event": return_event}.items() if v})
    if breakdown:
        params["breakdown"] = breakdown
    note(f"events={events!r} params={params!r}")
    await reference.clear(clickhouse)
    await load(clickhouse, events)
    await ask(clickhouse, events, **params)
