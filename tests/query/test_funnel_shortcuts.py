"""The plain funnel's one-pass shortcuts for other requests (funnel_sql.plain_trends_sql: the trends
view) on hand-built events with the expected answers written out, and on random events against
tests/reference.py: persons entering in several periods, several step-1 events in one period, ties on
a millisecond, events matching two steps, time zones."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from services.query.funnel import run_funnel
from services.query.funnel_models import FunnelRequest
from services.query.funnel_sql import is_plain
from shared.clickhouse import ClickHouse
from tests import reference
from tests.query.test_funnel import DAY, FILTERS, STEP, T0, t
from tests.query.test_funnel_random import dense_events
from tests.reference import Event, ev, load

DAY_S = 86400


async def ask(clickhouse: ClickHouse, events: list[Event], **body: Any) -> dict[str, Any]:
    request = FunnelRequest(**body)
    assert is_plain(request), "not the shortcut's request"
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
