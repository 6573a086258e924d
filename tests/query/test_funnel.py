"""Funnel semantics on small hand-built event sets, then the service against tests/reference.py on
random ones. Rows go straight into ClickHouse; the runner is called directly."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from services.query.funnel import FunnelRequest, run_funnel
from services.query.settings import QuerySettings
from shared.clickhouse import ClickHouse
from shared.contracts.storage import EVENTS_TABLE
from shared.errors import QueryTimeout
from tests import reference
from tests.query.app import query_client
from tests.reference import Event, at, ev, load

DAY = "2023-01-01"
T0 = at(f"{DAY} 00:00:00")
NO_TIMES = {"average_conversion_seconds": None, "median_conversion_seconds": None}


def t(seconds: float) -> Any:
    """T0 plus `seconds` (milliseconds allowed)."""
    return T0 + timedelta(milliseconds=round(seconds * 1000))


async def ask(clickhouse: ClickHouse, events: list[Event], **request: Any) -> dict[str, Any]:
    """The service's answer, checked against the reference before it is returned."""
    body = {"start_date": DAY, "end_date": DAY, **request}
    answer = (await run_funnel(clickhouse, FunnelRequest(**body), timeout=30)).model_dump()
    assert answer == reference.funnel(events, body)
    return answer


def counts(answer: dict[str, Any]) -> list[int]:
    return [step["count"] for step in answer["funnel"]]


async def test_counts_rates_and_drop_off(clickhouse: ClickHouse) -> None:
    events = [
        ev("signup", "u1", "2023-01-01 10:00"),
        ev("onboarding_completed", "u1", "2023-01-02 10:00"),
        ev("subscription_created", "u1", "2023-01-03 10:00"),
        ev("signup", "u2", "2023-01-01 11:00"),
        ev("onboarding_completed", "u2", "2023-01-01 12:00"),
        ev("signup", "u3", "2023-01-05 11:00"),
        ev("page_view", "u4", "2023-01-05 11:00"),
    ]
    await load(clickhouse, events)
    steps = ["signup", "onboarding_completed", "subscription_created"]
    answer = await ask(clickhouse, events, steps=steps, end_date="2023-01-31")
    assert answer == {
        "funnel": [
            {"step": "signup", "count": 3, "conversion_rate": 100.0, "drop_off": 0, **NO_TIMES},
            {
                "step": "onboarding_completed",
                "count": 2,
                "conversion_rate": 66.67,
                "drop_off": 1,
                "average_conversion_seconds": 45000.0,  # a day (u1) and an hour (u2)
                "median_conversion_seconds": 45000.0,
            },
            {
                "step": "subscription_created",
                "count": 1,
                "conversion_rate": 33.33,
                "drop_off": 1,
                "average_conversion_seconds": 86400.0,
                "median_conversion_seconds": 86400.0,
            },
        ],
        "total_entries": 3,
        "overall_conversion": 33.33,
        "breakdown": None,
    }


async def test_nobody_entered_gives_zeros_not_errors(clickhouse: ClickHouse) -> None:
    events = [ev("b", "u1", t(1))]
    await load(clickhouse, events)
    answer = await ask(clickhouse, events, steps=["a", "b"], breakdown="plan")
    assert answer["funnel"][1] == {"step": "b", "count": 0, "conversion_rate": 0.0, "drop_off": 0, **NO_TIMES}
    assert (answer["total_entries"], answer["overall_conversion"], answer["breakdown"]) == (0, 0.0, [])


async def test_window_is_inclusive_and_measured_from_step_one(clickhouse: ClickHouse) -> None:
    events = [
        *[ev("a", "edge", t(0)), ev("b", "edge", t(60))],  # exactly at the window: in
        *[ev("a", "late", t(0)), ev("b", "late", t(60.001))],  # 1 ms past: out
        *[ev("a", "from1", t(0)), ev("b", "from1", t(30)), ev("c", "from1", t(61))],  # 61 s after step 1
        *[
            ev("a", "restart", t(0)),
            ev("a", "restart", t(40)),
            ev("b", "restart", t(50)),
            ev("c", "restart", t(99)),
        ],
    ]
    await load(clickhouse, events)
    assert counts(await ask(clickhouse, events, steps=["a", "b", "c"], window_seconds=60)) == [4, 3, 1]


async def test_out_of_order_steps_do_not_chain(clickhouse: ClickHouse) -> None:
    events = [
        *[ev("b", "u1", t(0)), ev("a", "u1", t(1))],
        *[ev("a", "u2", t(0)), ev("c", "u2", t(1)), ev("b", "u2", t(2))],
        *[ev("a", "u3", t(0)), ev("c", "u3", t(1)), ev("b", "u3", t(2)), ev("c", "u3", t(3))],
    ]
    await load(clickhouse, events)
    assert counts(await ask(clickhouse, events, steps=["a", "b", "c"])) == [3, 2, 1]


async def test_repeated_steps_need_distinct_later_events(clickhouse: ClickHouse) -> None:
    once = ev("a", "dup", t(0))
    events = [
        ev("a", "single", t(0)),
        *[ev("a", "same_ms", t(0)), ev("a", "same_ms", t(0))],
        *[ev("a", "twice", t(0)), ev("a", "twice", t(1)), ev("b", "twice", t(2))],
        *[once, dataclasses.replace(once, received_at=t(5)), ev("b", "dup", t(1))],  # one event_id, twice
        *[ev("a", "aba", t(0)), ev("b", "aba", t(1)), ev("a", "aba", t(2))],
    ]
    await load(clickhouse, events)
    assert counts(await ask(clickhouse, events, steps=["a", "a", "b"])) == [5, 2, 1]
    assert counts(await ask(clickhouse, events, steps=["a", "b", "a"])) == [5, 3, 1]


async def test_same_millisecond_is_not_after(clickhouse: ClickHouse) -> None:
    events = [ev("a", "u1", t(5)), ev("b", "u1", t(5)), ev("a", "u2", t(5)), ev("b", "u2", t(5.001))]
    await load(clickhouse, events)
    for mode in ("ordered", "strict"):
        assert counts(await ask(clickhouse, events, steps=["a", "b"], mode=mode)) == [2, 1]
    assert counts(await ask(clickhouse, events, steps=["a", "b"], mode="unordered")) == [2, 2]


async def test_only_events_inside_the_range_count(clickhouse: ClickHouse) -> None:
    events = [
        *[ev("a", "before", "2023-01-01 23:59:59.999"), ev("b", "before", "2023-01-02 00:00:00")],
        *[ev("a", "inside", "2023-01-02 00:00:00"), ev("b", "inside", "2023-01-03 23:59:59.999")],
        *[ev("a", "after", "2023-01-03 12:00:00"), ev("b", "after", "2023-01-04 00:00:00")],
    ]
    await load(clickhouse, events)
    answer = await ask(
        clickhouse,
        events,
        steps=["a", "b"],
        start_date="2023-01-02",
        end_date="2023-01-03",
        window_seconds=172800,
    )
    assert counts(answer) == [2, 1]


async def test_strict_needs_the_next_matching_event_to_be_the_next_step(clickhouse: ClickHouse) -> None:
    events = [
        *[ev("a", "other_between", t(0)), ev("page_view", "other_between", t(1))],
        *[ev("b", "other_between", t(2)), ev("c", "other_between", t(3))],
        *[ev("a", "wrong_step", t(0)), ev("c", "wrong_step", t(1)), ev("b", "wrong_step", t(2))],
        ev("c", "wrong_step", t(3)),
        # windowFunnel's strict_order answers 3 here: b@2 comes between b@1 and c@3
        *[ev("a", "repeat", t(0)), ev("b", "repeat", t(1)), ev("b", "repeat", t(2)), ev("c", "repeat", t(3))],
        *[
            ev("a", "restart", t(0)),
            ev("a", "restart", t(1)),
            ev("b", "restart", t(2)),
            ev("c", "restart", t(3)),
        ],
    ]
    await load(clickhouse, events)
    steps = ["a", "b", "c"]
    assert counts(await ask(clickhouse, events, steps=steps, mode="ordered")) == [4, 4, 4]
    assert counts(await ask(clickhouse, events, steps=steps, mode="strict")) == [4, 3, 2]


async def test_unordered_takes_steps_in_any_order_within_one_window(clickhouse: ClickHouse) -> None:
    events = [
        *[ev("c", "reverse", t(0)), ev("b", "reverse", t(1)), ev("a", "reverse", t(2))],
        *[ev("a", "spread", t(0)), ev("b", "spread", t(5)), ev("c", "spread", t(10.001))],
        *[ev("b", "no_a", t(0)), ev("c", "no_a", t(1))],
        *[ev("a", "no_b", t(0)), ev("c", "no_b", t(1))],
    ]
    await load(clickhouse, events)
    answer = await ask(clickhouse, events, steps=["a", "b", "c"], mode="unordered", window_seconds=10)
    assert counts(answer) == [3, 2, 1]


FILTER_CASES: list[tuple[dict[str, Any], set[str]]] = [
    ({"property": "plan", "op": "eq", "value": "pro"}, {"u1"}),
    ({"property": "plan", "op": "neq", "value": "pro"}, {"u2", "u3", "u4", "u5"}),
    ({"property": "amount", "op": "eq", "value": 10}, {"u1"}),
    ({"property": "amount", "op": "eq", "value": 10.0}, {"u1"}),
    ({"property": "amount", "op": "eq", "value": "10"}, {"u3"}),
    ({"property": "amount", "op": "gt", "value": 5}, {"u1", "u2"}),
    ({"property": "amount", "op": "gte", "value": 5.5}, {"u1", "u2"}),
    ({"property": "amount", "op": "lt", "value": 5.5}, {"u5"}),
    ({"property": "amount", "op": "lte", "value": 5.5}, {"u2", "u5"}),
    ({"property": "plan", "op": "contains", "value": "ro"}, {"u1", "u5"}),
    ({"property": "plan", "op": "in", "value": ["pro", "free"]}, {"u1", "u2"}),
    ({"property": "amount", "op": "in", "value": [10, "10"]}, {"u1", "u3"}),
    ({"property": "plan", "op": "is_set"}, {"u1", "u2", "u5"}),
    ({"property": "trial", "op": "eq", "value": True}, {"u1"}),
    ({"property": "trial", "op": "eq", "value": False}, {"u2"}),
]


async def test_step_filters(clickhouse: ClickHouse) -> None:
    properties = {
        "u1": {"plan": "pro", "amount": 10, "trial": True},
        "u2": {"plan": "free", "amount": 5.5, "trial": False},
        "u3": {"plan": None, "amount": "10"},
        "u4": {},
        "u5": {"plan": "Pro", "amount": 0},
    }
    events = [ev("purchase", u, t(0), **p) for u, p in properties.items()]
    events += [ev("done", u, t(1)) for u in properties]
    await load(clickhouse, events)
    for flt, users in FILTER_CASES:
        steps = [{"event": "purchase", "filters": [flt]}, "done"]
        assert counts(await ask(clickhouse, events, steps=steps)) == [len(users), len(users)], flt
    everywhere = [{"property": "plan", "op": "eq", "value": "pro"}]  # "done" has no plan
    assert counts(await ask(clickhouse, events, steps=["purchase", "done"], filters=everywhere)) == [1, 0]


async def test_breakdown_top_ten_then_other(clickhouse: ClickHouse) -> None:
    events = []
    for i, size in enumerate(range(12, 1, -1)):  # p00 has 12 users ... p10 has 2
        for n in range(size):
            events.append(ev("signup", f"p{i}-{n}", t(0), plan=f"p{i:02d}"))
            if n % 2 == 0:
                events.append(ev("paid", f"p{i}-{n}", t(1)))
    events += [ev("signup", f"none-{n}", t(0)) for n in range(6)]  # ties p06 (6 users); sorts after it
    await load(clickhouse, events)
    answer = await ask(clickhouse, events, steps=["signup", "paid"], breakdown="plan")
    values = [(b["value"], b["other"], b["total_entries"]) for b in answer["breakdown"]]
    top = [(f"p{i:02d}", False, 12 - i) for i in range(7)] + [(None, False, 6)]
    assert values == top + [("p07", False, 5), ("p08", False, 4), ("Other", True, 5)]
    assert sum(b["total_entries"] for b in answer["breakdown"]) == answer["total_entries"] == 83


async def test_breakdown_value_comes_from_the_first_step_one_event(clickhouse: ClickHouse) -> None:
    events = [
        *[ev("signup", "u1", t(0), plan="x"), ev("signup", "u1", t(1), plan="y"), ev("paid", "u1", t(2))],
        *[ev("signup", "u2", t(0), plan=3), ev("paid", "u2", t(2), plan="x")],
        *[ev("signup", "u3", t(0), plan=None), ev("signup", "u4", t(0))],  # null and absent: one bucket
    ]
    await load(clickhouse, events)
    answer = await ask(clickhouse, events, steps=["signup", "paid"], breakdown="plan")
    found = [(b["value"], counts(b)) for b in answer["breakdown"]]
    assert found == [(None, [2, 0]), (3, [1, 1]), ("x", [1, 1])]


async def test_injection_looking_input_is_just_data(clickhouse: ClickHouse) -> None:
    events = [ev("signup", "u1", t(0), plan="pro"), ev("paid", "u1", t(1))]
    await load(clickhouse, events)
    hostile = "signup' OR 1=1 --"
    answer = await ask(clickhouse, events, steps=[hostile, 'paid"); DROP TABLE analytics_events; --'])
    assert counts(answer) == [0, 0]
    odd_filter = {"property": "plan') OR ('1'='1", "op": "eq", "value": "x' OR '1'='1"}
    answer = await ask(clickhouse, events, steps=[{"event": "signup", "filters": [odd_filter]}, "paid"])
    assert counts(answer) == [0, 0]
    assert counts(await ask(clickhouse, events, steps=["signup", "paid"], breakdown="plan' --")) == [1, 1]
    assert (await clickhouse.query(f"SELECT count() FROM {EVENTS_TABLE}"))[0][0] == 2


async def test_a_query_over_its_time_budget_is_cancelled(clickhouse: ClickHouse) -> None:
    await clickhouse.command(
        f"INSERT INTO {EVENTS_TABLE} (event_id, event, user_id, timestamp, received_at, properties, did) "
        "SELECT generateUUIDv4(), ['a', 'b'][number % 2 + 1], toString(number % 100000), "
        "toDateTime64('2023-01-01', 3, 'UTC') + number, toDateTime64('2023-01-01', 3, 'UTC'), '{}', "
        "number % 100000 + 1 FROM numbers(2000000)"
    )
    request = FunnelRequest(steps=["a", "b"], start_date=DAY, end_date="2023-02-01", mode="strict")
    with pytest.raises(QueryTimeout):
        await run_funnel(clickhouse, request, timeout=0.01)
    async with query_client(clickhouse, settings=QuerySettings(timeout_seconds=0.01)) as client:
        response = await client.post("/api/v1/analytics/funnel", json=request.model_dump(mode="json"))
    assert response.status_code == 504
    assert response.json()["error"] == "query_timeout" and "took too long" in response.json()["message"]


# --- the service against the reference on random event sets ------------------------------------------

PLANS = st.sampled_from(["pro", "free", None, 1, 2.5, True])
FILTERS = st.sampled_from(
    [
        {"property": "plan", "op": "eq", "value": "pro"},
        {"property": "plan", "op": "neq", "value": "free"},
        {"property": "plan", "op": "in", "value": ["pro", 1]},
        {"property": "plan", "op": "is_set"},
        {"property": "plan", "op": "contains", "value": "r"},
        {"property": "n", "op": "gt", "value": 1},
        {"property": "n", "op": "lte", "value": 1.5},
        {"property": "plan", "op": "not_contains", "value": "r"},
        {"property": "plan", "op": "regex", "value": "^p.o$"},
        {"property": "plan", "op": "is_not_set"},
        {"property": "n", "op": "between", "value": [1, 2]},
        {"property": "person.plan", "op": "is_set"},
    ]
)
STEP = st.one_of(
    st.sampled_from(["a", "b", "c"]),
    st.fixed_dictionaries(
        {"event": st.sampled_from(["a", "b", "c"]), "filters": st.lists(FILTERS, max_size=1)}
    ),
)


@st.composite
def random_events(draw: st.DrawFn) -> list[Event]:
    """A few users' events over four days, on a coarse clock so ties and window edges are common."""
    events = []
    for _ in range(draw(st.integers(0, 16))):
        moment = T0 + timedelta(
            days=draw(st.sampled_from([-1, 0, 0, 0, 1, 2])),
            seconds=draw(st.integers(0, 6)),
            milliseconds=draw(st.sampled_from([0, 0, 1, 999])),
        )
        properties: dict[str, Any] = {}
        if draw(st.booleans()):
            properties["plan"] = draw(PLANS)
        if draw(st.booleans()):
            properties["n"] = draw(st.integers(0, 3))
        events.append(
            ev(draw(st.sampled_from("abcx")), draw(st.sampled_from(["u1", "u2", "u3"])), moment, **properties)
        )
    for copied in draw(st.lists(st.sampled_from(events), max_size=2)) if events else []:
        events.append(dataclasses.replace(copied, received_at=copied.timestamp + timedelta(hours=1)))
    return events


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    events=random_events(),
    steps=st.lists(STEP, min_size=2, max_size=4),
    window=st.sampled_from([1, 2, 3, 5, 86400]),
    breakdown=st.sampled_from([None, "plan", "person.plan"]),
    global_filters=st.lists(FILTERS, max_size=1),
    timezone=st.sampled_from(["UTC", "UTC", "Europe/Berlin", "Asia/Kathmandu", "America/St_Johns"]),
)
async def test_service_matches_reference(
    clickhouse: ClickHouse,
    events: list[Event],
    steps: list[Any],
    window: int,
    breakdown: str | None,
    global_filters: list[dict[str, Any]],
    timezone: str,
) -> None:
    note(f"events={events!r} steps={steps!r} window={window} breakdown={breakdown} filters={global_filters}")
    note(f"timezone={timezone}")
    await reference.clear(clickhouse)
    await load(clickhouse, events)
    for mode in ("ordered", "strict", "unordered"):
        request = {"steps": steps, "end_date": "2023-01-02", "window_seconds": window, "mode": mode}
        request["timezone"] = timezone
        await ask(clickhouse, events, **request, breakdown=breakdown, filters=global_filters)


async def test_the_range_is_the_time_zones_days(clickhouse: ClickHouse) -> None:
    events = [  # 00:30 and 00:45 on 01-01 in Berlin, then 00:30 and 00:40 on 01-02
        *[ev("a", "late_utc", "2022-12-31 23:30"), ev("b", "late_utc", "2022-12-31 23:45")],
        *[ev("a", "late_berlin", "2023-01-01 23:30"), ev("b", "late_berlin", "2023-01-01 23:40")],
    ]
    await load(clickhouse, events)
    assert counts(await ask(clickhouse, events, steps=["a", "b"])) == [1, 1]
    assert counts(await ask(clickhouse, events, steps=["a", "b"], timezone="Europe/Berlin")) == [1, 1]
    berlin = await ask(
        clickhouse, events, steps=["a", "b"], timezone="Europe/Berlin", breakdown="person.plan"
    )
    assert [b["value"] for b in berlin["breakdown"]] == [None]
