"""The funnel with every issue-16 option against tests/reference.py on random events: exclusions and
hold_constant in every mode, window units, counting totals, the attribution rules, the three views
and the persons list, over merged persons (random links) and time zones. Events are stored as the
stream loader stores them (tests.reference.load: persons resolved); the runners are called directly."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st

from services.query.funnel import run_funnel
from services.query.funnel_models import FunnelPersonsRequest, FunnelRequest
from services.query.funnel_persons import run_funnel_persons
from shared.clickhouse import ClickHouse
from tests import reference
from tests.query.test_funnel import DAY, FILTERS, PLANS, STEP, T0
from tests.reference import Event, ev, load

IDS = ["u1", "u2", "anon"]


@st.composite
def dense_events(draw: st.DrawFn) -> list[Event]:
    """Three distinct ids' events on a few distinct moments (ties, exclusions at a step's very
    millisecond and window edges are common), a day apart at most; exclusion-looking "x" events are
    frequent. Some events link another id to their own, so a person is often two or three ids."""
    events = []
    for _ in range(draw(st.integers(0, 14))):
        moment = T0 + timedelta(
            days=draw(st.sampled_from([0, 0, 0, 1])),
            seconds=draw(st.integers(0, 4)),
            milliseconds=draw(st.sampled_from([0, 0, 1])),
        )
        properties: dict[str, Any] = {}
        if draw(st.booleans()):
            properties["plan"] = draw(PLANS)
        if draw(st.booleans()):
            properties["n"] = draw(st.integers(0, 2))
        if draw(st.integers(0, 3)) == 0:
            properties["$set"] = {"plan": draw(PLANS)}
        name = draw(st.sampled_from("aabbccxx"))
        user = draw(st.sampled_from(IDS))
        linked = draw(st.lists(st.sampled_from([i for i in IDS if i != user]), max_size=1))
        events.append(Event(name, user, moment, properties, linked_ids=linked))
    return events


WINDOWS = st.one_of(
    st.fixed_dictionaries({"window_seconds": st.sampled_from([1, 2, 3, 5, 86400])}),
    st.fixed_dictionaries(
        {
            "window": st.fixed_dictionaries(
                {"value": st.integers(1, 3), "unit": st.sampled_from(["minute", "day"])}
            )
        }
    ),
    st.just({"window": {"value": 1, "unit": "month"}}),
)
ZONES = st.sampled_from(["UTC", "UTC", "Europe/Berlin", "Asia/Kathmandu"])
HELD = st.sampled_from([[], ["plan"], ["n"], [{"property": "plan", "source": "person"}]])


@st.composite
def exclusions(draw: st.DrawFn, steps: int, mode: str) -> list[dict[str, Any]]:
    found = []
    for _ in range(draw(st.integers(0, 2))):
        if mode == "unordered":
            span = (0, steps - 1)
        else:
            first = draw(st.integers(0, steps - 2))
            span = (first, draw(st.integers(first + 1, steps - 1)))
        found.append(
            {
                "event": draw(st.sampled_from("abcx")),
                "filters": draw(st.lists(FILTERS, max_size=1)),
                "from_step": span[0],
                "to_step": span[1],
            }
        )
    return found


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    steps = draw(st.lists(STEP, min_size=2, max_size=4))
    mode = draw(st.sampled_from(["ordered", "strict", "unordered"]))
    body: dict[str, Any] = {
        "steps": steps,
        "start_date": DAY,
        "end_date": "2023-01-02",
        "mode": mode,
        **draw(WINDOWS),
        "exclusions": draw(exclusions(len(steps), mode)),
        "hold_constant": draw(HELD),
        "filters": draw(st.lists(FILTERS, max_size=1)),
        "counting": draw(st.sampled_from(["persons", "totals"])),
        "timezone": draw(ZONES),
    }
    view = draw(st.sampled_from(["steps", "steps", "time_to_convert", "trends"]))
    body["view"] = view
    if view == "steps" and draw(st.booleans()):
        body["breakdown"] = draw(st.sampled_from(["plan", "n", {"property": "plan", "source": "person"}]))
        if body["mode"] == "unordered":
            body["breakdown_attribution"] = "first_touch"
        body.setdefault(
            "breakdown_attribution",
            draw(st.sampled_from(["first_touch", "last_touch", "step", "all_events"])),
        )
        if body["breakdown_attribution"] == "step":
            body["breakdown_attribution_step"] = draw(st.integers(0, len(steps) - 1))
    if view == "time_to_convert":
        first = draw(st.integers(0, len(steps) - 2))
        body.update(
            from_step=first,
            to_step=draw(st.integers(first + 1, len(steps) - 1)),
            bins=draw(st.integers(1, 4)),
        )
    if view == "trends":
        body["interval"] = draw(st.sampled_from(["day", "week", "month"]))
    return body


def valid(body: dict[str, Any]) -> bool:
    return not FunnelRequest(**body).problems()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=dense_events(), body=requests())
async def test_every_option_matches_reference(
    clickhouse: ClickHouse, events: list[Event], body: dict[str, Any]
) -> None:
    assume(valid(body))
    note(f"events={events!r}\nbody={body!r}")
    await reference.clear(clickhouse)
    await load(clickhouse, events)
    answer = (await run_funnel(clickhouse, FunnelRequest(**body), timeout=30)).model_dump()
    assert answer == reference.funnel(events, body)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    events=dense_events(),
    body=requests(),
    step=st.integers(0, 3),
    status=st.sampled_from(["converted", "dropped"]),
    limit=st.integers(1, 3),
)
async def test_persons_pages_match_reference(
    clickhouse: ClickHouse, events: list[Event], body: dict[str, Any], step: int, status: str, limit: int
) -> None:
    body = {**body, "view": "steps", "step": step, "status": status, "limit": limit}
    body.pop("breakdown", None)
    body.pop("breakdown_attribution_step", None)
    body["breakdown_attribution"] = "first_touch"
    assume(not FunnelPersonsRequest(**body).problems())
    note(f"events={events!r}\nbody={body!r}")
    await reference.clear(clickhouse)
    await load(clickhouse, events)
    cursor = None
    while True:
        page = {**body, "cursor": cursor}
        answer = (await run_funnel_persons(clickhouse, FunnelPersonsRequest(**page), timeout=30)).model_dump()
        assert answer == reference.funnel_persons(events, page)
        cursor = answer["next_cursor"]
        if cursor is None:
            break


@st.composite
def crowded_events(draw: st.DrawFn, names: str) -> list[Event]:
    """A few events on four moments: steps and exclusions share milliseconds and window edges."""
    events = []
    for _ in range(draw(st.integers(1, 10))):
        moment = T0 + timedelta(seconds=draw(st.integers(0, 3)))
        plan = draw(st.sampled_from(["p", "q", None]))
        events.append(
            ev(draw(st.sampled_from(names)), draw(st.sampled_from(["u1", "u2"])), moment, plan=plan)
        )
    return events


@st.composite
def exclusion_requests(draw: st.DrawFn) -> dict[str, Any]:
    steps = draw(
        st.sampled_from([["a", "b"], ["a", "b", "c"], ["a", "b", "a"], ["a", "a", "b"], ["b", "a", "c"]])
    )
    mode = draw(st.sampled_from(["ordered", "strict", "unordered"]))
    return {
        "steps": steps,
        "start_date": DAY,
        "end_date": DAY,
        "mode": mode,
        "window_seconds": draw(st.integers(1, 3)),
        "exclusions": draw(exclusions(len(steps), mode).filter(bool)),
        "counting": draw(st.sampled_from(["persons", "totals"])),
    }


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=crowded_events("abcxx"), body=exclusion_requests())
async def test_exclusions_match_reference(
    clickhouse: ClickHouse, events: list[Event], body: dict[str, Any]
) -> None:
    assume(valid(body))
    note(f"events={events!r}\nbody={body!r}")
    await reference.clear(clickhouse)
    await load(clickhouse, events)
    answer = (await run_funnel(clickhouse, FunnelRequest(**body), timeout=30)).model_dump()
    assert answer == reference.funnel(events, body)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    events=crowded_events("aabbcx"),
    steps=st.sampled_from([["a", "b"], ["a", "b", "c"], ["a", "b", "a"]]),
    mode=st.sampled_from(["ordered", "strict", "unordered"]),
    window=st.integers(1, 3),
    with_exclusion=st.booleans(),
    breakdown=st.sampled_from([None, "first_touch", "last_touch", "all_events"]),
)
async def test_hold_constant_matches_reference(
    clickhouse: ClickHouse,
    events: list[Event],
    steps: list[str],
    mode: str,
    window: int,
    with_exclusion: bool,
    breakdown: str | None,
) -> None:
    body: dict[str, Any] = {
        "steps": steps,
        "start_date": DAY,
        "end_date": DAY,
        "mode": mode,
        "window_seconds": window,
        "hold_constant": ["plan"],
    }
    if with_exclusion:
        body["exclusions"] = [{"event": "x", "from_step": 0, "to_step": len(steps) - 1}]
    if breakdown is not None:
        body.update(breakdown="plan", breakdown_attribution=breakdown)
    assume(valid(body))
    note(f"events={events!r}\nbody={body!r}")
    await reference.clear(clickhouse)
    await load(clickhouse, events)
    answer = (await run_funnel(clickhouse, FunnelRequest(**body), timeout=30)).model_dump()
    assert answer == reference.funnel(events, body)
