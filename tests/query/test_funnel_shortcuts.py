"""The shortcuts for requests near the plain funnel (funnel_sql.plain_trends_sql: its trends view;
funnel_excluding: with exclusions) on hand-built events with the expected answers written out, and on
random events against tests/reference.py: persons entering in several periods, several step-1 events,
exclusions at the chains' boundaries and window ends, ties on a millisecond, events matching two
steps or a step and an exclusion, copies of an event, time zones."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st

from services.query.funnel import run_funnel
from services.query.funnel_excluding import is_plain_excluding
from services.query.funnel_models import FunnelRequest
from services.query.funnel_sql import is_plain
from shared.clickhouse import ClickHouse
from tests import reference
from tests.query.test_funnel import DAY, FILTERS, STEP, T0, t
from tests.query.test_funnel_random import crowded_events, dense_events
from tests.reference import Event, ev, load

DAY_S = 86400


async def ask(clickhouse: ClickHouse, events: list[Event], **body: Any) -> dict[str, Any]:
    request = FunnelRequest(**body)
    assert is_plain(request) or is_plain_excluding(request), "not a shortcut's request"
    answer = (await run_funnel(clickhouse, request, timeout=30)).model_dump()
    assert answer == reference.funnel(events, body)
    return answer


def points(answer: dict[str, Any]) -> list[tuple[str, int, int]]:
    return [(p["period"], p["entered"], p["converted"]) for p in answer["trends"]]


async def test_trends_split_persons_by_the_period_of_each_entry(clickhouse: ClickHouse) -> None:
    events = [
        # enters on both days; day 1's chain converts at day 2 + 1 s, inside the 14-day window
        *[ev("a", "both", t(0)), ev("a", "both", t(DAY_S)), ev("b", "both", t(DAY_S + 1))],
        # the last millisecond of day 1, converting on day 2: one entry, on day 1
        *[ev("a", "midnight", t(DAY_S - 0.001)), ev("b", "midnight", t(DAY_S))],
        # a and b on one millisecond are no chain: with a 60 s window its day-1 entry does not convert
        *[
            ev("a", "tie", t(5)),
            ev("b", "tie", t(5)),
            ev("a", "tie", t(DAY_S + 5)),
            ev("b", "tie", t(DAY_S + 6)),
        ],
        # two entries on day 1 (the later converts in the 60 s window), one on day 2 that does not
        *[ev("a", "late", t(0)), ev("a", "late", t(100)), ev("b", "late", t(130)), ev("a", "late", t(DAY_S))],
        ev("b", "never", t(0)),  # no step-1 event: no entry
    ]
    await load(clickhouse, events)
    body = {"steps": ["a", "b"], "start_date": DAY, "end_date": "2023-01-03", "view": "trends"}
    answer = await ask(clickhouse, events, **body)
    assert points(answer) == [("2023-01-01", 4, 4), ("2023-01-02", 3, 2), ("2023-01-03", 0, 0)]
    short = await ask(clickhouse, events, **body, window_seconds=60)
    # both's and tie's day-1 entries no longer convert; midnight's does (1 ms later), late's a@100 too
    assert points(short) == [("2023-01-01", 4, 2), ("2023-01-02", 3, 2), ("2023-01-03", 0, 0)]
    weekly = await ask(clickhouse, events, **body, interval="week")
    assert points(weekly) == [("2022-W52", 4, 4), ("2023-W01", 3, 2)]  # Sunday, then Monday on


async def test_trends_with_an_event_name_on_two_steps(clickhouse: ClickHouse) -> None:
    """Steps a -> a -> b: one event is never two steps, and a's entries are split by period."""
    events = [
        *[ev("a", "one", t(0)), ev("b", "one", t(1))],  # a single a: level 1
        *[ev("a", "two", t(0)), ev("a", "two", t(1)), ev("b", "two", t(2))],  # day 1: converted
        *[ev("a", "two", t(DAY_S)), ev("b", "two", t(DAY_S + 1))],  # day 2: reaches step 2 at most
        *[ev("a", "same", t(0)), ev("a", "same", t(0)), ev("b", "same", t(1))],  # one millisecond
    ]
    await load(clickhouse, events)
    body = {"steps": ["a", "a", "b"], "start_date": DAY, "end_date": "2023-01-02", "view": "trends"}
    answer = await ask(clickhouse, events, **body)
    # two's day-2 entry has no second a after its a@day2 (its chains start on day 2): level 1
    assert points(answer) == [("2023-01-01", 3, 1), ("2023-01-02", 1, 0)]


async def test_trends_in_a_time_zone(clickhouse: ClickHouse) -> None:
    """Entries fall in the zone's days: 23:30 UTC on Jan 1 is Jan 2 in Berlin."""
    events = [
        *[ev("a", "u1", T0 + timedelta(hours=23, minutes=30)), ev("b", "u1", T0 + timedelta(hours=24))],
        ev("a", "u1", T0 + timedelta(hours=1)),  # Jan 1, converting at the b above
        ev("b", "u2", T0 + timedelta(hours=2)),  # no step-1 event: no entry
    ]
    await load(clickhouse, events)
    body = {"steps": ["a", "b"], "start_date": DAY, "end_date": "2023-01-02", "view": "trends"}
    answer = await ask(clickhouse, events, **body, timezone="Europe/Berlin")
    assert points(answer) == [("2023-01-01", 1, 1), ("2023-01-02", 1, 1)]


@st.composite
def plain_trends(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "steps": draw(st.lists(STEP, min_size=2, max_size=4)),
        "start_date": DAY,
        "end_date": "2023-01-02",
        "window_seconds": draw(st.sampled_from([1, 2, 3, 5, 86400, 90000])),
        "filters": draw(st.lists(FILTERS, max_size=1)),
        "timezone": draw(st.sampled_from(["UTC", "UTC", "Europe/Berlin", "Asia/Kathmandu"])),
        "view": "trends",
        "interval": draw(st.sampled_from(["day", "day", "week", "month"])),
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=dense_events(), body=plain_trends())
async def test_plain_trends_match_reference(
    clickhouse: ClickHouse, events: list[Event], body: dict[str, Any]
) -> None:
    note(f"events={events!r}\nbody={body!r}")
    await reference.clear(clickhouse)
    await load(clickhouse, events)
    await ask(clickhouse, events, **body)


def counts(answer: dict[str, Any]) -> list[int]:
    return [s["count"] for s in answer["funnel"]]


def excluding(event: str, from_step: int, to_step: int) -> list[dict[str, Any]]:
    return [{"event": event, "from_step": from_step, "to_step": to_step}]


async def test_exclusions_at_the_chains_boundaries(clickhouse: ClickHouse) -> None:
    events = [
        *[ev("a", "at_start", t(0)), ev("x", "at_start", t(0)), ev("b", "at_start", t(1))],  # not after a
        *[ev("a", "at_end", t(0)), ev("x", "at_end", t(1)), ev("b", "at_end", t(1))],  # not before b
        *[ev("a", "inside", t(0)), ev("x", "inside", t(0.001)), ev("b", "inside", t(1))],  # excluded
        *[ev("a", "window_end", t(0)), ev("x", "window_end", t(10))],  # no b: excluded to its window's end
        *[ev("a", "after", t(0)), ev("x", "after", t(10.001))],  # after the window: counts at step 0
        # a@0's chain is excluded, a@2's avoids x: counted, converting in 3 s
        *[ev("a", "two", t(0)), ev("x", "two", t(1)), ev("a", "two", t(2)), ev("b", "two", t(5))],
    ]
    await load(clickhouse, events)
    body = {"steps": ["a", "b"], "start_date": DAY, "end_date": DAY, "window_seconds": 10}
    answer = await ask(clickhouse, events, **body, exclusions=excluding("x", 0, 1))
    assert counts(answer) == [4, 3]
    assert answer["funnel"][1]["average_conversion_seconds"] == 1.667  # 1, 1 and 3 s
    assert answer["funnel"][1]["median_conversion_seconds"] == 1.0


async def test_exclusion_on_a_step_event_outside_its_span(clickhouse: ClickHouse) -> None:
    """Steps a -> b -> c, a excluded between b and c: an a row is a step-1 row and an exclusion row."""
    events = [
        *[ev("a", "p1", t(0)), ev("b", "p1", t(1)), ev("a", "p1", t(2)), ev("c", "p1", t(3))],  # excluded
        *[ev("a", "p2", t(0)), ev("b", "p2", t(1)), ev("c", "p2", t(3)), ev("a", "p2", t(4))],  # converted
        *[ev("a", "p3", t(0)), ev("b", "p3", t(1)), ev("a", "p3", t(2))],  # b's chain is cut: excluded
        *[ev("a", "p4", t(0)), ev("b", "p4", t(1)), ev("a", "p4", t(2)), ev("b", "p4", t(3))],  # a@2 -> b@3
    ]
    await load(clickhouse, events)
    body = {"steps": ["a", "b", "c"], "start_date": DAY, "end_date": DAY, "window_seconds": 10}
    answer = await ask(clickhouse, events, **body, exclusions=excluding("a", 1, 2))
    assert counts(answer) == [2, 2, 1]  # p1: level 3, its one chain excluded; p3 too (level 2)


async def test_exclusions_with_repeated_step_events_and_breakdown(clickhouse: ClickHouse) -> None:
    """Steps a -> a -> b (rows matching two steps), the first-touch value, ties and copies."""
    first = ev("a", "tied", t(0), plan="free")
    events = [
        # two a's of one millisecond: the one received first gives the value; a@0 -> a@1 -> b@2
        first,
        dataclasses.replace(ev("a", "tied", t(0), plan="pro"), received_at=t(0.5)),
        *[ev("a", "tied", t(1)), ev("b", "tied", t(2))],
        # a copy of its a@0 received later replaces it (plan team); x after step 1 is outside the span
        *[
            (kept := ev("a", "copied", t(0), plan="free")),
            dataclasses.replace(kept, received_at=t(9), properties={"plan": "team"}),
        ],
        *[ev("a", "copied", t(1)), ev("x", "copied", t(1.5)), ev("b", "copied", t(2))],
        # the earliest a gives the value even when the conversion chain (a@1 -> a@2 -> b) starts later
        *[ev("a", "later", t(0), plan="free"), ev("x", "later", t(0.5)), ev("a", "later", t(1), plan="pro")],
        *[ev("a", "later", t(2)), ev("b", "later", t(3))],
    ]
    await load(clickhouse, events)
    body = {"steps": ["a", "a", "b"], "start_date": DAY, "end_date": DAY, "window_seconds": 10}
    answer = await ask(clickhouse, events, **body, exclusions=excluding("x", 0, 1), breakdown="plan")
    assert counts(answer) == [3, 3, 3]
    assert [(b["value"], counts(b)) for b in answer["breakdown"]] == [
        ("free", [2, 2, 2]),
        ("team", [1, 1, 1]),
    ]


@st.composite
def plain_excluding(draw: st.DrawFn) -> dict[str, Any]:
    steps = draw(
        st.sampled_from([["a", "b"], ["a", "b", "c"], ["a", "b", "a"], ["a", "a", "b"], ["b", "a", "c"]])
    )
    first = draw(st.integers(0, len(steps) - 2))
    spans = [(first, draw(st.integers(first + 1, len(steps) - 1)))]
    if draw(st.booleans()):
        spans.append((0, len(steps) - 1))
    body: dict[str, Any] = {
        "steps": steps,
        "start_date": DAY,
        "end_date": DAY,
        "window_seconds": draw(st.integers(1, 3)),
        "exclusions": [
            {"event": draw(st.sampled_from("abcx")), "from_step": a, "to_step": b} for a, b in spans
        ],
        "filters": draw(st.lists(FILTERS, max_size=1)),
    }
    view = draw(st.sampled_from(["steps", "steps", "time_to_convert"]))
    if view == "steps" and draw(st.booleans()):
        body["breakdown"] = "plan"
    body["view"] = view
    return body


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=crowded_events("abcxx"), body=plain_excluding())
async def test_plain_exclusions_match_reference(
    clickhouse: ClickHouse, events: list[Event], body: dict[str, Any]
) -> None:
    assume(not FunnelRequest(**body).problems())
    note(f"events={events!r}\nbody={body!r}")
    await reference.clear(clickhouse)
    await load(clickhouse, events)
    await ask(clickhouse, events, **body)
