"""Persons through the stream processor's own code on real ClickHouse: the incremental resolver against
the contract's definition, hand-built journeys with their expected persons, and every person-level
answer (funnels, cohorts, stats, daily metrics) against tests/reference.py on random link graphs loaded
in random orders and batches."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import date, timedelta
from typing import Any

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from services.etl.metrics import METRICS
from services.etl.runner import EtlRunner
from services.etl.settings import EtlSettings
from services.query.cohort import CohortRequest, run_cohort
from services.query.funnel import FunnelRequest, run_funnel
from services.query.persons import get_person
from services.query.stats import basic_stats
from services.stream.persons import PersonsRecorder, Position
from services.stream.resolver import LinkGraph, Resolver
from shared.clickhouse import ClickHouse
from shared.contracts.dates import DateRange
from shared.contracts.events import StoredEvent
from shared.contracts.persons import Link, resolve
from shared.contracts.storage import EVENTS_TABLE, PERSON_PROPERTIES
from shared.kafka import partition_of_user
from tests import reference
from tests.reference import Event, at

T0 = at("2023-01-02 00:00")
IDS = ["a1", "a2", "b1", "u1", "u2", "u3"]


def link(from_id: str, to_id: str, minute: int, event_id: int = 0) -> Link:
    moment = T0 + timedelta(minutes=minute)
    return Link(moment, uuid.UUID(int=event_id or minute + 1), from_id, to_id, "e", moment)


def test_rule_persons_resolution_by_hand() -> None:
    # A chain, a shared device (the earlier link wins), a cycle (its smallest id is the key).
    links = [
        link("a", "b", 1),
        link("b", "c", 2),
        link("d", "u1", 3),
        link("d", "u2", 4),
        link("x", "y", 5),
        link("y", "z", 6),
        link("z", "y", 7),
    ]
    keys = resolve(links)
    assert {i: keys[i] for i in "abc"} == {"a": "c", "b": "c", "c": "c"}
    assert keys["d"] == "u1" and keys["u2"] == "u2"
    assert {i: keys[i] for i in "xyz"} == {"x": "y", "y": "y", "z": "y"}
    # A late link with an earlier time moves the id, and everyone behind it.
    assert resolve([*links, link("b", "q", 0, event_id=99)])["a"] == "q"


LINKS = st.lists(
    st.builds(
        link,
        st.sampled_from("abcdefg"),
        st.sampled_from("abcdefg"),
        st.integers(0, 5),
        st.integers(1, 40),
    ).filter(lambda x: x.from_id != x.to_id),
    max_size=14,
)


@settings(max_examples=300, deadline=None)
@given(links=LINKS, order=st.randoms(use_true_random=False), cut=st.integers(0, 14))
def test_the_incremental_graph_gives_the_definitions_answer(links: list[Link], order: Any, cut: int) -> None:
    """Whatever order and grouping links arrive in, and after a deletion, the graph's keys are the
    contract's `resolve` of the links it holds."""
    shuffled = list(links)
    order.shuffle(shuffled)
    graph = LinkGraph()
    graph.add(shuffled[:cut])
    graph.add(shuffled[cut:])
    expected = resolve(links)
    assert {i: graph.key_of(i) for i in expected} == expected
    gone = {links[0].from_id} if links else set()
    graph.remove(gone)
    remaining = [x for x in links if x.from_id not in gone and x.to_id not in gone]
    expected = resolve(remaining)
    assert {i: graph.key_of(i) for i in expected} == expected


async def load_through_stream(
    clickhouse: ClickHouse, batches: list[list[Event]], resolver: Resolver | None = None
) -> Resolver:
    """Store batches as the stream loader stores them (numbering from Kafka positions, tombstones,
    links, updates, the incremental resolver)."""
    resolver = resolver or Resolver(clickhouse)
    await resolver.rebuild()
    recorder = PersonsRecorder(clickhouse, resolver)
    offsets = {p: 0 for p in range(4)}
    for events in batches:
        stored = [StoredEvent.model_validate(e.message()) for e in events]
        positions: list[Position] = []
        for event in stored:
            partition = partition_of_user(event.user_id, 4)
            positions.append((partition, offsets[partition], 0))
            offsets[partition] += 1
        batch = await recorder.prepare(stored, positions)
        await recorder.store(batch)
        await recorder.resolve(batch)
    return resolver


def journey(name: str, user: str, minute: int, *linked: str, **properties: Any) -> Event:
    return Event(name, user, T0 + timedelta(minutes=minute), properties, linked_ids=list(linked))


async def persons_of(clickhouse: ClickHouse, ids: list[str]) -> dict[str, tuple[str, list[str]]]:
    answers = {}
    for distinct_id in ids:
        person = await get_person(clickhouse, distinct_id, 30)
        answers[distinct_id] = (person.person_id, sorted(person.distinct_ids))
    return answers


async def test_journeys_resolve_to_the_expected_persons(clickhouse: ClickHouse) -> None:
    events = [
        # Anonymous browsing, then a signup carrying both ids: one person, key u1.
        journey("page_view", "anon-1", 0),
        journey("signup", "u1", 5, "anon-1"),
        journey("purchase", "u1", 9),
        # A shared device linked to two users: it belongs to the earlier one.
        journey("page_view", "device", 1),
        journey("login", "u2", 10, "device"),
        journey("login", "u3", 20, "device"),
        # A chain A -> B -> C, and a cycle X -> Y -> X (its smallest id is the key).
        journey("e", "B", 2, "A"),
        journey("e", "C", 3, "B"),
        journey("e", "Y", 4, "X"),
        journey("e", "X", 6, "Y"),
    ]
    await load_through_stream(clickhouse, [events[5:], events[:5]])  # links before the events they join
    persons = await persons_of(clickhouse, ["anon-1", "u1", "device", "u3", "A", "B", "C", "X", "Y"])
    assert persons["anon-1"] == persons["u1"] == ("u1", ["anon-1", "u1"])
    assert persons["device"] == ("u2", ["device", "u2"]) and persons["u3"] == ("u3", ["u3"])
    assert persons["A"] == persons["B"] == persons["C"] == ("C", ["A", "B", "C"])
    assert persons["X"] == persons["Y"] == ("X", ["X", "Y"])

    # A late link with an earlier timestamp, arriving last, moves the device to u3.
    late = journey("login", "u3", -30, "device")
    await load_through_stream(clickhouse, [[late]])
    persons = await persons_of(clickhouse, ["device", "u2", "u3"])
    assert persons["device"] == persons["u3"] == ("u3", ["device", "u3"])
    assert persons["u2"] == ("u2", ["u2"])

    # The funnel counts the anonymous page view and the user's signup as one person's steps.
    request = FunnelRequest(
        steps=["page_view", "signup", "purchase"], start_date="2023-01-02", end_date="2023-01-02"
    )
    answer = await run_funnel(clickhouse, request, 30)
    assert [s.count for s in answer.funnel] == [
        2,
        1,
        1,
    ]  # anon-1 -> u1 converts; device's person (u3) does not


async def test_a_retry_of_a_linked_event_collapses_with_its_first_copy(clickhouse: ClickHouse) -> None:
    first = journey("page_view", "anon", 0)
    linked = journey("signup", "user", 5, "anon")
    await load_through_stream(clickhouse, [[first, linked]])
    again = dataclasses.replace(linked, received_at=linked.timestamp + timedelta(hours=1))
    await load_through_stream(clickhouse, [[again], [dataclasses.replace(first)]])
    stats = await basic_stats(clickhouse, DateRange(date(2023, 1, 2), date(2023, 1, 2)), 30)
    assert (stats.events, stats.unique_users) == (2, 1)


async def test_rule_persons_properties_merge_set_and_set_once_over_ids(clickhouse: ClickHouse) -> None:
    events = [
        journey(
            "page_view", "anon", 0, **{"$set_once": {"first_page": "/pricing"}, "$set": {"plan": "free"}}
        ),
        journey("$identify", "user", 5, "anon", plan="pro", email="ada@example.com"),
        journey("page_view", "user", 6, **{"$set_once": {"first_page": "/blog", "referrer": "x"}}),
        journey("page_view", "anon", 7, **{"$set": {"theme": "dark"}}),
    ]
    await load_through_stream(clickhouse, [events])
    person = await get_person(clickhouse, "anon", 30)
    assert person.person_id == "user" and person.events == 4
    assert person.properties == {
        "email": "ada@example.com",
        "first_page": "/pricing",  # the earliest $set_once
        "plan": "pro",  # the latest $set (the identify's)
        "referrer": "x",
        "theme": "dark",
    }
    # Filters read the same properties on every event row of the person, whichever id it came from.
    rows = await clickhouse.query(
        f"SELECT user_id, JSONExtractString({PERSON_PROPERTIES}, 'plan') FROM {EVENTS_TABLE} FINAL"
    )
    assert sorted(set(rows)) == [("anon", "pro"), ("user", "pro")]


@st.composite
def linked_events(draw: st.DrawFn) -> list[Event]:
    """A few ids' events over three days, some linking another id to their own, some retried."""
    events = []
    for _ in range(draw(st.integers(1, 14))):
        user = draw(st.sampled_from(IDS))
        linked = draw(st.lists(st.sampled_from([i for i in IDS if i != user]), max_size=1))
        moment = T0 + timedelta(
            days=draw(st.integers(0, 2)),
            minutes=draw(st.sampled_from([0, 1, 30, 600])),
            microseconds=draw(st.sampled_from([0, 0, 400, 900, 1400])),  # stored to the millisecond
        )
        properties = {"plan": draw(st.sampled_from(["pro", "free"]))} if draw(st.booleans()) else {}
        name = draw(st.sampled_from(["open", "signup", "pay"]))
        events.append(Event(name, user, moment, properties, linked_ids=linked))
    for copied in draw(st.lists(st.sampled_from(events), max_size=2)):
        events.append(dataclasses.replace(copied, received_at=copied.timestamp + timedelta(hours=1)))
    return events


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=linked_events(), order=st.randoms(use_true_random=False), batch=st.integers(1, 5))
async def test_rule_persons_every_answer_counts_persons_as_the_reference_does(
    clickhouse: ClickHouse, events: list[Event], order: Any, batch: int
) -> None:
    """Funnels, cohorts, stats and the daily metrics, counted by person, equal the reference whatever
    order and batches the events (and so the links) arrive in."""
    arrival = list(events)
    order.shuffle(arrival)
    note(f"events={events!r} arrival={arrival!r} batch={batch}")
    await reference.clear(clickhouse)
    await load_through_stream(clickhouse, [arrival[i : i + batch] for i in range(0, len(arrival), batch)])

    for mode in ("ordered", "strict", "unordered"):
        body = {
            "steps": ["open", "signup", "pay"],
            "start_date": "2023-01-02",
            "end_date": "2023-01-04",
            "mode": mode,
            "breakdown": "plan",
        }
        answer = (await run_funnel(clickhouse, FunnelRequest(**body), 30)).model_dump()
        assert answer == reference.funnel(events, body), mode
    for params in (
        {"period_type": "daily", "periods": 3, "end_date": "2023-01-04"},
        {"period_type": "daily", "periods": 3, "end_date": "2023-01-04", "start_event": "signup"},
    ):
        cohorts = (await run_cohort(clickhouse, CohortRequest(**params), 30)).model_dump()
        assert cohorts == reference.cohorts(events, params), params
    period = DateRange(date(2023, 1, 2), date(2023, 1, 4))
    stats = await basic_stats(clickhouse, period, 30)
    people = reference.by_person(events)
    assert (stats.events, stats.unique_users) == (len(people), len({e.user_id for e in people}))
    runner = EtlRunner(clickhouse, EtlSettings())
    expected = reference.metrics(events, period.start, period.end)
    for metric in METRICS:
        if metric.name in ("dau", "wau", "mau", "new_users", "stickiness"):
            computed = await runner.compute(metric, period)
            assert computed == {day: expected[(day, metric.name)] for day in period.days()}, metric.name


async def test_a_number_forgotten_for_room_is_looked_up_again_unchanged(clickhouse: ClickHouse) -> None:
    resolver = Resolver(clickhouse)
    recorder = PersonsRecorder(clickhouse, resolver, capacity=10)
    events = [StoredEvent.model_validate(journey("e", f"id-{n}", n).message()) for n in range(30)]
    first = await recorder.prepare(events, [(0, n, 0) for n in range(30)])
    assert len(recorder.numbers.known) <= 10 and len(first.fresh) == 30
    again = await recorder.prepare(events, [(1, n, 0) for n in range(30)])  # other positions: no matter
    assert again.fresh == {} and again.rows == first.rows
