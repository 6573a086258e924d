"""Funnel exclusions and window units on hand-built events, the expected answers written out; each
answer is also checked against tests/reference.py. The exclusion cases with a PostHog test's name
are that test's events and expected counts (posthog/hogql_queries/insights/funnels/test/test_funnel.py):
our definition agrees with PostHog's documented behaviour on them."""

from __future__ import annotations

from typing import Any

from services.query.funnel import run_funnel
from services.query.funnel_models import FunnelRequest
from shared.clickhouse import ClickHouse
from tests import reference
from tests.query.test_funnel import counts, t
from tests.reference import Event, ev, load

SIGNUP_PAID = {"steps": ["user signed up", "paid"], "start_date": "2021-05-01", "end_date": "2021-05-14"}


async def ask(clickhouse: ClickHouse, events: list[Event], **body: Any) -> dict[str, Any]:
    answer = (await run_funnel(clickhouse, FunnelRequest(**body), timeout=30)).model_dump()
    assert answer == reference.funnel(events, body)
    return answer


def excluding(event: str, from_step: int, to_step: int) -> list[dict[str, Any]]:
    return [{"event": event, "from_step": from_step, "to_step": to_step}]


async def test_posthog_exclusion_no_end_event(clickhouse: ClickHouse) -> None:
    """An exclusion after step 1 within the window excludes the person even though they never paid."""
    events = [
        *[ev("user signed up", "p1", "2021-05-01 01:00"), ev("paid", "p1", "2021-05-01 02:00")],
        *[ev("user signed up", "p2", "2021-05-01 03:00"), ev("x", "p2", "2021-05-01 03:30")],
        ev("paid", "p2", "2021-05-01 04:00"),
        *[ev("user signed up", "p3", "2021-05-01 05:00"), ev("x", "p3", "2021-05-01 06:00")],
        *[ev("user signed up", "p4", "2021-05-01 07:00"), ev("x", "p4", "2021-05-02 08:00")],  # after its day
    ]
    await load(clickhouse, events)
    answer = await ask(
        clickhouse, events, **SIGNUP_PAID, window_seconds=86400, exclusions=excluding("x", 0, 1)
    )
    assert counts(answer) == [2, 1]  # p1 and p4 entered, p1 paid


async def test_posthog_exclusion_multiple_possible_no_end_event(clickhouse: ClickHouse) -> None:
    """Another chain that avoids the exclusion keeps the person (window 10 s)."""
    one, two = "step one", "step two"
    events = [
        *[ev(one, "first_excluded", t(0)), ev("x", "first_excluded", t(1)), ev(one, "first_excluded", t(31))],
        *[
            ev(one, "second_excluded", t(0)),
            ev(one, "second_excluded", t(31)),
            ev("x", "second_excluded", t(32)),
        ],
        *[ev(one, "both_excluded", t(0)), ev(one, "both_excluded", t(1)), ev("x", "both_excluded", t(2))],
    ]
    await load(clickhouse, events)
    body = {"steps": [one, two], "start_date": "2023-01-01", "end_date": "2023-01-01", "window_seconds": 10}
    for person in ("first_excluded", "second_excluded", "both_excluded"):
        mine = [e for e in events if e.user_id == person]
        await clickhouse.command("TRUNCATE TABLE analytics_events")
        await load(clickhouse, mine)
        answer = await ask(clickhouse, mine, **body, exclusions=excluding("x", 0, 1))
        assert counts(answer) == ([0, 0] if person == "both_excluded" else [1, 0]), person


async def test_posthog_advanced_funnel_exclusions_between_steps(clickhouse: ClickHouse) -> None:
    """Five steps; an exclusion between steps 0 and 1, then between 1 and 2: a person whose only chain
    has the event inside the span is out of the funnel altogether (not even counted at step 0)."""
    steps = ["user signed up", "$pageview", "insight viewed", "invite teammate", "pageview2"]
    at_hours = {"user signed up": "01:00", "$pageview": "02:00", "insight viewed": "04:00"}
    at_hours |= {"invite teammate": "05:00", "pageview2": "06:00"}
    x_hours = {
        "person1": ["03:00", "04:30", "05:30"],
        "person2": ["04:30", "05:30"],
        "person3": ["01:30", "05:30"],
    }
    events = [ev(step, person, f"2021-05-01 {hour}") for person in x_hours for step, hour in at_hours.items()]
    events += [ev("x", person, f"2021-05-01 {hour}") for person, hours in x_hours.items() for hour in hours]
    await load(clickhouse, events)
    body = {"steps": steps, "start_date": "2021-05-01", "end_date": "2021-05-14"}
    assert (
        counts(await ask(clickhouse, events, **body, exclusions=excluding("x", 0, 1))) == [2] * 5
    )  # no person3
    assert (
        counts(await ask(clickhouse, events, **body, exclusions=excluding("x", 1, 2))) == [2] * 5
    )  # no person1
    assert counts(await ask(clickhouse, events, **body, exclusions=excluding("x", 3, 4))) == [0] * 5  # all


async def test_another_chain_to_the_same_step_avoids_the_exclusion(clickhouse: ClickHouse) -> None:
    """PostHog's greedy search gives up on this person (its chain at step 1 is marked when x comes and
    b@3 is not taken for a fresh one); by the definition b@3 starts a chain without x in its span."""
    events = [
        ev("a", "u1", t(0)),
        ev("b", "u1", t(1)),
        ev("x", "u1", t(2)),
        ev("b", "u1", t(3)),
        ev("c", "u1", t(4)),
    ]
    await load(clickhouse, events)
    body = {"steps": ["a", "b", "c"], "start_date": "2023-01-01", "end_date": "2023-01-01"}
    answer = await ask(clickhouse, events, **body, exclusions=excluding("x", 1, 2))
    assert counts(answer) == [1, 1, 1]
    assert answer["funnel"][1]["average_conversion_seconds"] == 3.0  # a@0 -> b@3 -> c@4
    assert answer["funnel"][2]["average_conversion_seconds"] == 1.0


async def test_a_shorter_clean_chain_does_not_keep_a_person_whose_furthest_chain_is_excluded(
    clickhouse: ClickHouse,
) -> None:
    """PostHog's rule: the level is the furthest step, exclusions ignored; the person counts only
    through a chain that reaches it cleanly (window 50 s)."""
    events = [ev("a", "u1", t(0)), ev("b", "u1", t(1))]  # clean, but only to step 1
    events += [ev("a", "u1", t(100)), ev("b", "u1", t(101)), ev("x", "u1", t(102)), ev("c", "u1", t(103))]
    await load(clickhouse, events)
    body = {
        "steps": ["a", "b", "c"],
        "start_date": "2023-01-01",
        "end_date": "2023-01-01",
        "window_seconds": 50,
    }
    assert counts(await ask(clickhouse, events, **body, exclusions=excluding("x", 1, 2))) == [0, 0, 0]
    assert counts(await ask(clickhouse, events, **body)) == [1, 1, 1]


async def test_an_exclusion_at_the_same_millisecond_as_a_step_is_not_between(clickhouse: ClickHouse) -> None:
    events = [
        *[ev("a", "with_from", t(0)), ev("x", "with_from", t(0)), ev("b", "with_from", t(1))],
        *[ev("a", "with_to", t(0)), ev("x", "with_to", t(1)), ev("b", "with_to", t(1))],
        *[ev("a", "inside", t(0)), ev("x", "inside", t(0.5)), ev("b", "inside", t(1))],
    ]
    await load(clickhouse, events)
    body = {"steps": ["a", "b"], "start_date": "2023-01-01", "end_date": "2023-01-01"}
    assert counts(await ask(clickhouse, events, **body, exclusions=excluding("x", 0, 1))) == [2, 2]


async def test_exclusions_spanning_part_of_a_funnel_and_the_window_end(clickhouse: ClickHouse) -> None:
    """Window 10 s. An exclusion between steps 1 and 2 (0-based) leaves chains that never reach step 1
    alone; one that reached step 1 is excluded by an x inside its window, not by one after it."""
    events = [
        *[ev("a", "before_span", t(0)), ev("x", "before_span", t(1))],  # only step 0: counted
        *[ev("a", "in_window", t(0)), ev("b", "in_window", t(1)), ev("x", "in_window", t(10))],  # out
        *[ev("a", "late_x", t(0)), ev("b", "late_x", t(1)), ev("x", "late_x", t(10.001))],  # counted
        *[ev("a", "done", t(0)), ev("b", "done", t(1)), ev("c", "done", t(2)), ev("x", "done", t(3))],
    ]
    await load(clickhouse, events)
    body = {
        "steps": ["a", "b", "c"],
        "start_date": "2023-01-01",
        "end_date": "2023-01-01",
        "window_seconds": 10,
    }
    assert counts(await ask(clickhouse, events, **body, exclusions=excluding("x", 1, 2))) == [3, 2, 1]


async def test_exclusions_in_strict_and_unordered_funnels(clickhouse: ClickHouse) -> None:
    events = [
        *[ev("a", "x_between", t(0)), ev("x", "x_between", t(1)), ev("b", "x_between", t(2))],
        *[ev("b", "reversed", t(0)), ev("x", "reversed", t(1)), ev("a", "reversed", t(2))],
        *[ev("a", "x_after", t(0)), ev("b", "x_after", t(1)), ev("x", "x_after", t(2))],
    ]
    await load(clickhouse, events)
    body = {"steps": ["a", "b"], "start_date": "2023-01-01", "end_date": "2023-01-01"}
    exclusions = excluding("x", 0, 1)
    assert counts(await ask(clickhouse, events, **body, mode="strict")) == [3, 2]  # x is no step
    assert counts(await ask(clickhouse, events, **body, mode="strict", exclusions=exclusions)) == [2, 1]
    assert counts(await ask(clickhouse, events, **body, mode="unordered", exclusions=exclusions)) == [1, 1]


async def test_exclusion_filters_and_the_top_level_filters_apply(clickhouse: ClickHouse) -> None:
    events = [
        *[
            ev("a", "refund_small", t(0)),
            ev("refund", "refund_small", t(1), amount=5),
            ev("b", "refund_small", t(2)),
        ],
        *[
            ev("a", "refund_big", t(0)),
            ev("refund", "refund_big", t(1), amount=50),
            ev("b", "refund_big", t(2)),
        ],
    ]
    await load(clickhouse, events)
    body = {"steps": ["a", "b"], "start_date": "2023-01-01", "end_date": "2023-01-01"}
    big = [{"property": "amount", "op": "gt", "value": 10}]
    exclusions = [{"event": "refund", "filters": big, "from_step": 0, "to_step": 1}]
    assert counts(await ask(clickhouse, events, **body, exclusions=exclusions)) == [1, 1]
    no_amount = [{"property": "amount", "op": "is_set"}]  # the steps have no amount: nobody enters
    assert counts(await ask(clickhouse, events, **body, exclusions=exclusions, filters=no_amount)) == [0, 0]


async def test_counting_totals_judges_each_entry(clickhouse: ClickHouse) -> None:
    events = [ev("a", "u1", t(0)), ev("x", "u1", t(1)), ev("a", "u1", t(2)), ev("b", "u1", t(3))]
    await load(clickhouse, events)
    body = {"steps": ["a", "b"], "start_date": "2023-01-01", "end_date": "2023-01-01", "counting": "totals"}
    assert counts(await ask(clickhouse, events, **body)) == [2, 2]
    assert counts(await ask(clickhouse, events, **body, exclusions=excluding("x", 0, 1))) == [1, 1]


async def test_window_units(clickhouse: ClickHouse) -> None:
    events = [
        *[ev("a", "minute_edge", t(0)), ev("b", "minute_edge", t(60))],
        *[ev("a", "minute_late", t(0)), ev("b", "minute_late", t(60.001))],
        *[ev("a", "hour", t(0)), ev("b", "hour", t(3600))],
    ]
    await load(clickhouse, events)
    body = {"steps": ["a", "b"], "start_date": "2023-01-01", "end_date": "2023-01-01"}
    assert counts(await ask(clickhouse, events, **body, window={"value": 1, "unit": "minute"})) == [3, 1]
    assert counts(await ask(clickhouse, events, **body, window={"value": 60, "unit": "minute"})) == [3, 3]
    assert counts(await ask(clickhouse, events, **body, window={"value": 1, "unit": "hour"})) == [3, 3]


async def test_a_month_window_is_a_calendar_month_from_the_step_one_event(clickhouse: ClickHouse) -> None:
    events = [
        *[
            ev("a", "jan31", "2023-01-31 10:00"),
            ev("b", "jan31", "2023-02-28 10:00"),
        ],  # shorter month: its end
        *[ev("a", "jan31_late", "2023-01-31 10:00"), ev("b", "jan31_late", "2023-02-28 10:00:00.001")],
        *[ev("a", "leap", "2024-01-31 10:00"), ev("b", "leap", "2024-02-29 10:00")],
        *[ev("a", "mid", "2023-03-15 10:00"), ev("b", "mid", "2023-04-15 10:00")],
        *[ev("a", "mid_late", "2023-03-15 10:00"), ev("b", "mid_late", "2023-04-15 10:00:00.001")],
        *[ev("a", "thirty_days", "2023-02-01 00:00"), ev("b", "thirty_days", "2023-03-01 00:00")],  # 28 days
    ]
    await load(clickhouse, events)
    body = {"steps": ["a", "b"], "start_date": "2023-01-01", "end_date": "2023-12-31"}
    answer = await ask(clickhouse, events, **body, window={"value": 1, "unit": "month"})
    assert counts(answer) == [5, 3]  # the leap-year pair is outside this range
    body = {**body, "start_date": "2024-01-01", "end_date": "2024-12-31"}
    assert counts(await ask(clickhouse, events, **body, window={"value": 1, "unit": "month"})) == [1, 1]


async def test_a_month_window_is_the_time_zones_calendar_month(clickhouse: ClickHouse) -> None:
    events = [  # Berlin: CET (+01:00) until 2023-03-26 01:00 UTC, CEST (+02:00) until 2023-10-29 01:00 UTC
        # 12:00 local on Feb 26 -> 12:00 CEST on Mar 26 = 10:00 UTC (in UTC the window ends at 11:00)
        *[ev("a", "noon", "2023-02-26 11:00"), ev("b", "noon", "2023-03-26 10:00")],
        *[ev("a", "noon_late", "2023-02-26 11:00"), ev("b", "noon_late", "2023-03-26 10:30")],
        # 02:30 local on Feb 26 -> Mar 26 02:30, skipped by DST: read at +01:00, 01:30 UTC
        *[ev("a", "gap", "2023-02-26 01:30"), ev("b", "gap", "2023-03-26 01:30")],
        *[ev("a", "gap_late", "2023-02-26 01:30"), ev("b", "gap_late", "2023-03-26 01:30:00.001")],
    ]
    await load(clickhouse, events)
    body = {"steps": ["a", "b"], "start_date": "2023-02-26", "end_date": "2023-03-26"}
    month = {"window": {"value": 1, "unit": "month"}}
    assert counts(await ask(clickhouse, events, **body, **month, timezone="Europe/Berlin")) == [4, 2]
    assert counts(await ask(clickhouse, events, **body, **month)) == [4, 3]  # UTC: noon_late too
    autumn = [  # 02:30 CEST on Sep 29 -> Oct 29 02:30, repeated by DST: its first instant, 00:30 UTC
        *[ev("a", "fold", "2023-09-29 00:30"), ev("b", "fold", "2023-10-29 00:30")],
        *[ev("a", "fold_late", "2023-09-29 00:30"), ev("b", "fold_late", "2023-10-29 01:00")],
    ]
    await load(clickhouse, autumn)
    body = {"steps": ["a", "b"], "start_date": "2023-09-29", "end_date": "2023-10-29"}
    everything = events + autumn
    assert counts(await ask(clickhouse, everything, **body, **month, timezone="Europe/Berlin")) == [2, 1]


async def test_trends_periods_are_the_time_zones(clickhouse: ClickHouse) -> None:
    events = [  # 23:30 UTC on Jan 1 is 00:30 on Jan 2 in Berlin
        *[ev("a", "u1", "2023-01-01 23:30"), ev("b", "u1", "2023-01-01 23:40")],
        ev("a", "u2", "2023-01-01 12:00"),
    ]
    await load(clickhouse, events)
    body = {"steps": ["a", "b"], "start_date": "2023-01-01", "end_date": "2023-01-02", "view": "trends"}
    utc = await ask(clickhouse, events, **body)
    assert [(p["period"], p["entered"], p["converted"]) for p in utc["trends"]] == [
        ("2023-01-01", 2, 1),
        ("2023-01-02", 0, 0),
    ]
    berlin = await ask(clickhouse, events, **body, timezone="Europe/Berlin")
    assert [(p["period"], p["entered"], p["converted"]) for p in berlin["trends"]] == [
        ("2023-01-01", 1, 0),
        ("2023-01-02", 1, 1),
    ]
