"""Funnels and retention over merged persons and their properties, with the answers written out. Events
are stored as the stream loader stores them (tests.reference.load: distinct ids numbered, links and
`$set` updates resolved into persons), and every answer is also checked against tests/reference.py.

An event of `u1` carrying `linked_ids=["anon-1"]` links anon-1 -> u1: both ids are one person, whose key
(`person_id`) is u1 (README, Definitions: persons). Person properties are the person's current ones."""

from __future__ import annotations

from typing import Any

from services.query.cohort import CohortRequest, run_cohort
from services.query.funnel import run_funnel
from services.query.funnel_models import FunnelPersonsRequest, FunnelRequest
from services.query.funnel_persons import run_funnel_persons
from shared.clickhouse import ClickHouse
from tests import reference
from tests.reference import Event, at, load

DAY = "2023-01-01"


def event(name: str, user: str, when: str, linked: tuple[str, ...] = (), **properties: Any) -> Event:
    return Event(name, user, at(when), properties, linked_ids=list(linked))


async def funnel(clickhouse: ClickHouse, events: list[Event], **request: Any) -> dict[str, Any]:
    """The service's answer, checked against the reference before it is returned."""
    body = {"start_date": DAY, "end_date": "2023-01-03", **request}
    answer = (await run_funnel(clickhouse, FunnelRequest(**body), timeout=30)).model_dump()
    assert answer == reference.funnel(events, body)
    return answer


def counts(answer: dict[str, Any]) -> list[int]:
    return [step["count"] for step in answer["funnel"]]


async def test_a_chain_spans_a_persons_distinct_ids(clickhouse: ClickHouse) -> None:
    events = [
        event("a", "anon-1", "2023-01-01 10:00"),
        event("b", "u1", "2023-01-01 10:05", linked=("anon-1",)),  # anon-1 -> u1
        event("a", "anon-2", "2023-01-01 10:00"),  # not linked: its own person, no b
        event("b", "u2", "2023-01-01 10:05"),
    ]
    await load(clickhouse, events)
    for mode in ("ordered", "strict", "unordered"):
        answer = await funnel(clickhouse, events, steps=["a", "b"], mode=mode)
        assert counts(answer) == [2, 1], mode  # u1 (both ids, once) and anon-2; u2 never did a
    body = {"steps": ["a", "b"], "start_date": DAY, "end_date": DAY, "step": 1}
    page = (await run_funnel_persons(clickhouse, FunnelPersonsRequest(**body), timeout=30)).model_dump()
    assert page == reference.funnel_persons(events, body)
    assert page == {"persons": [{"person_id": "u1", "distinct_id": "anon-1"}], "next_cursor": None}


async def test_an_exclusion_under_another_distinct_id_excludes(clickhouse: ClickHouse) -> None:
    events = [
        *[event("a", "u1", "2023-01-01 10:00"), event("b", "u1", "2023-01-01 10:10")],
        event("x", "anon-1", "2023-01-01 10:05"),
        event("identify", "u1", "2023-01-01 12:00", linked=("anon-1",)),  # later: still retroactive
        *[event("a", "u2", "2023-01-01 10:00"), event("b", "u2", "2023-01-01 10:10")],
        event("x", "anon-2", "2023-01-01 10:05"),  # anon-2 is nobody's: u2 stays in
    ]
    await load(clickhouse, events)
    exclusion = [{"event": "x", "from_step": 0, "to_step": 1}]
    for mode in ("ordered", "strict", "unordered"):
        answer = await funnel(clickhouse, events, steps=["a", "b"], mode=mode, exclusions=exclusion)
        assert counts(answer) == [1, 1], mode


async def test_funnel_breakdown_by_a_person_property(clickhouse: ClickHouse) -> None:
    events = [
        event("a", "anon-1", "2023-01-01 10:00"),
        event("b", "u1", "2023-01-01 10:05", linked=("anon-1",), **{"$set": {"plan": "pro"}}),
        event("a", "u2", "2023-01-01 10:00", **{"$set": {"plan": "trial"}}),
        event("c", "u2", "2023-01-02 09:00", **{"$set": {"plan": "free"}}),  # the current plan: free
        event("a", "u3", "2023-01-01 10:00"),
    ]
    await load(clickhouse, events)
    for attribution in ("first_touch", "last_touch", "all_events"):
        answer = await funnel(
            clickhouse, events, steps=["a", "b"], breakdown="person.plan", breakdown_attribution=attribution
        )
        assert counts(answer) == [3, 1]
        buckets = [(b["value"], [s["count"] for s in b["funnel"]]) for b in answer["breakdown"]]
        # one entry each: strings by bytes, then no value; u1's plan was set on the b event, under u1,
        # and is the whole person's, their a under anon-1 included
        assert buckets == [("free", [1, 0]), ("pro", [1, 1]), (None, [1, 0])], attribution


async def test_hold_constant_on_a_person_property(clickhouse: ClickHouse) -> None:
    events = [  # the plan changes between step 1 and step 2, on the events and on the person
        event("a", "anon-1", "2023-01-01 10:00", plan="pro", **{"$set": {"plan": "pro"}}),
        event("b", "u1", "2023-01-01 10:05", linked=("anon-1",), plan="free", **{"$set": {"plan": "free"}}),
    ]
    await load(clickhouse, events)
    held_event = await funnel(clickhouse, events, steps=["a", "b"], hold_constant=["plan"])
    assert counts(held_event) == [1, 0]
    # person properties are the current ones (free on both events): holding them never splits a chain
    held_person = await funnel(clickhouse, events, steps=["a", "b"], hold_constant=["person.plan"])
    assert counts(held_person) == [1, 1]


async def test_counting_totals_and_trends_count_a_merged_person_once_per_entry(
    clickhouse: ClickHouse,
) -> None:
    events = [
        event("a", "anon-1", "2023-01-01 10:00"),
        event("a", "u1", "2023-01-02 10:00", linked=("anon-1",)),
        event("b", "u1", "2023-01-02 10:30"),
    ]
    await load(clickhouse, events)
    request: dict[str, Any] = {"steps": ["a", "b"], "window_seconds": 3600}
    assert counts(await funnel(clickhouse, events, **request)) == [1, 1]
    assert counts(await funnel(clickhouse, events, **request, counting="totals")) == [2, 1]
    trends = await funnel(clickhouse, events, **request, view="trends", interval="day")
    points = [(p["period"], p["entered"], p["converted"]) for p in trends["trends"]]
    assert points == [("2023-01-01", 1, 0), ("2023-01-02", 1, 1), ("2023-01-03", 0, 0)]
    totals = await funnel(clickhouse, events, **request, view="trends", interval="day", counting="totals")
    assert [(p["entered"], p["converted"]) for p in totals["trends"]] == [(1, 0), (1, 1), (0, 0)]


async def test_retention_cohort_and_breakdown_by_person(clickhouse: ClickHouse) -> None:
    events = [
        event("signup", "anon-1", "2023-01-01 09:00"),  # u1's first-ever signup, under anon-1
        event("signup", "u1", "2023-01-02 09:00", linked=("anon-1",), **{"$set": {"plan": "pro"}}),
        event("purchase", "u1", "2023-01-02 10:00"),
        event("purchase", "anon-1", "2023-01-03 10:00"),  # a return under the other id
        event("signup", "u2", "2023-01-01 11:00"),
        event("purchase", "u2", "2023-01-02 11:00"),
    ]
    await load(clickhouse, events)
    params: dict[str, Any] = {
        "period_type": "daily",
        "periods": 3,
        "end_date": "2023-01-03",
        "start_event": "signup",
        "return_event": "purchase",
        "breakdown": "person.plan",
    }
    answer = (await run_cohort(clickhouse, CohortRequest(**params), timeout=30)).model_dump()
    assert answer == reference.cohorts(events, params)

    def table(cohorts: list[dict[str, Any]]) -> list[tuple[str, int, list[int]]]:
        return [(c["cohort_date"], c["users"], [d["count"] for d in c["data"]]) for c in cohorts]

    assert table(answer["cohorts"]) == [
        ("2023-01-01", 2, [0, 2, 1]),
        ("2023-01-02", 0, [0, 0]),
        ("2023-01-03", 0, [0]),
    ]
    assert [(b["value"], table(b["cohorts"])[0]) for b in answer["breakdown"]] == [
        ("pro", ("2023-01-01", 1, [0, 1, 1])),
        (None, ("2023-01-01", 1, [0, 1, 0])),
    ]


async def test_a_property_set_under_an_id_merged_in_the_same_batch_is_the_persons(
    clickhouse: ClickHouse,
) -> None:
    """Found by the funnel's random test: the merge moved anon-1's key into u1's person, and the
    properties refresh attributed anon-1's `$set` to the old key anon-1, leaving u1 without a plan."""
    events = [
        event("a", "anon-1", "2023-01-01 10:00", **{"$set": {"plan": "pro"}}),
        event("b", "u1", "2023-01-01 10:00:01", linked=("anon-1",)),
    ]
    await load(clickhouse, events)
    answer = await funnel(
        clickhouse,
        events,
        steps=["a", "b"],
        filters=[{"property": "person.plan", "op": "eq", "value": "pro"}],
    )
    assert counts(answer) == [1, 1]
