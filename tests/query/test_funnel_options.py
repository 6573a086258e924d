"""hold_constant, breakdown attribution, counting totals, per-step conversion times, the time-to-convert
and trends views and the persons list on hand-built events, expected answers written out; every
answer is also checked against tests/reference.py."""

from __future__ import annotations

from typing import Any

from services.query.funnel import run_funnel
from services.query.funnel_models import FunnelPersonsRequest, FunnelRequest
from services.query.funnel_persons import run_funnel_persons
from shared.clickhouse import ClickHouse
from tests import reference
from tests.query.test_funnel import DAY, counts, t
from tests.reference import Event, ev, load

BODY = {"start_date": DAY, "end_date": DAY}


async def ask(clickhouse: ClickHouse, events: list[Event], **body: Any) -> dict[str, Any]:
    body = {**BODY, **body}
    answer = (await run_funnel(clickhouse, FunnelRequest(**body), timeout=30)).model_dump()
    assert answer == reference.funnel(events, body)
    return answer


def buckets(answer: dict[str, Any]) -> list[tuple[str | None, list[int]]]:
    return [(b["value"], counts(b)) for b in answer["breakdown"]]


def times(answer: dict[str, Any]) -> list[tuple[float | None, float | None]]:
    return [(s["average_conversion_seconds"], s["median_conversion_seconds"]) for s in answer["funnel"]]


async def test_hold_constant_needs_one_value_across_the_chain(clickhouse: ClickHouse) -> None:
    events = [
        *[ev("a", "same", t(0), plan="p"), ev("b", "same", t(1), plan="q"), ev("b", "same", t(2), plan="p")],
        *[ev("a", "differs", t(0), plan="p"), ev("b", "differs", t(1), plan="q")],
        *[ev("a", "missing", t(0)), ev("b", "missing", t(1), plan=None)],  # absent and null: one value
        *[ev("a", "number", t(0), plan=1), ev("b", "number", t(1), plan=1)],
    ]
    await load(clickhouse, events)
    steps = ["a", "b"]
    answer = await ask(clickhouse, events, steps=steps, hold_constant=["plan"])
    assert counts(answer) == [4, 3]
    assert times(answer)[1] == (1.333, 1.0)  # 2 s (same: a@0 -> b@2), 1 s, 1 s
    # strict: the next step event after a@0 is b@1 with another plan, so `same` stops at step 0
    assert counts(await ask(clickhouse, events, steps=steps, hold_constant=["plan"], mode="strict")) == [4, 2]
    assert counts(await ask(clickhouse, events, steps=steps, hold_constant=["plan"], mode="unordered")) == [
        4,
        3,
    ]
    # these events set no person properties: a held person property is one (missing) value for all
    # (tests/query/test_person_properties.py holds persons with properties)
    by_person = [{"property": "plan", "source": "person"}]
    assert counts(await ask(clickhouse, events, steps=steps, hold_constant=by_person)) == [4, 4]


def attribution_events() -> list[Event]:
    return [
        *[ev("signup", "p1", t(0), plan="free"), ev("signup", "p1", t(10), plan="pro")],
        ev("paid", "p1", t(11), plan="pro"),
        ev("signup", "p2", t(0), plan="pro"),
        *[ev("signup", "p3", t(0)), ev("paid", "p3", t(5), plan="team")],
    ]


async def test_breakdown_attribution_rules(clickhouse: ClickHouse) -> None:
    """p1's conversion chain is signup@10 (pro) -> paid@11: the latest signup before its conversion."""
    events = attribution_events()
    await load(clickhouse, events)
    body = {"steps": ["signup", "paid"], "breakdown": "plan"}
    first = await ask(clickhouse, events, **body)
    assert buckets(first) == [("free", [1, 1]), ("pro", [1, 0]), (None, [1, 1])]
    last = await ask(clickhouse, events, **body, breakdown_attribution="last_touch")
    assert buckets(last) == [("pro", [2, 1]), ("team", [1, 1])]
    step0 = await ask(clickhouse, events, **body, breakdown_attribution="step", breakdown_attribution_step=0)
    assert buckets(step0) == [("pro", [2, 1]), (None, [1, 1])]
    step1 = await ask(clickhouse, events, **body, breakdown_attribution="step", breakdown_attribution_step=1)
    assert buckets(step1) == [("pro", [1, 1]), ("team", [1, 1])]  # p2 never paid: in no bucket
    assert counts(step1) == [3, 2]
    every = await ask(clickhouse, events, **body, breakdown_attribution="all_events")
    assert buckets(every) == [("pro", [2, 1]), ("free", [1, 1]), (None, [1, 1])]  # p1 under both of its
    assert counts(every) == [3, 2]
    assert times(every)[1] == (3.0, 3.0)  # the total: p1 in 1 s, p3 in 5 s


async def test_counting_totals_counts_each_step_one_event(clickhouse: ClickHouse) -> None:
    events = [ev("a", "u1", t(0), plan="x"), ev("a", "u1", t(1), plan="y"), ev("b", "u1", t(2))]
    await load(clickhouse, events)
    body = {"steps": ["a", "b"], "window_seconds": 1}
    assert counts(await ask(clickhouse, events, **body)) == [1, 1]
    totals = await ask(clickhouse, events, **body, counting="totals", breakdown="plan")
    assert counts(totals) == [2, 1]  # a@0 cannot reach b@2 within a second
    assert buckets(totals) == [("x", [1, 0]), ("y", [1, 1])]
    strict = await ask(clickhouse, events, **body, counting="totals", mode="strict")
    assert counts(strict) == [2, 1]


async def test_conversion_times_are_mean_and_median_from_the_previous_step(clickhouse: ClickHouse) -> None:
    events = []
    for person, took in {"u1": 1, "u2": 2, "u3": 4, "u4": 10}.items():
        events += [ev("a", person, t(0)), ev("b", person, t(took)), ev("c", person, t(took + 0.001))]
    events += [ev("a", "fast", t(0)), ev("b", "fast", t(0.002))]
    events += [ev("a", "never", t(0))]
    await load(clickhouse, events)
    answer = await ask(clickhouse, events, steps=["a", "b", "c"])
    # b: 1, 2, 4, 10 s and 2 ms (mean 3.4004 s, median 2 s); c: 1 ms each
    assert times(answer) == [(None, None), (3.4, 2.0), (0.001, 0.001)]
    nobody = await ask(clickhouse, events, steps=["a", "nothing"])
    assert times(nobody) == [(None, None), (None, None)]
    half = [ev("a", "h1", t(0)), ev("b", "h1", t(0.001)), ev("a", "h2", t(0)), ev("b", "h2", t(0.002))]
    await clickhouse.command("TRUNCATE TABLE analytics_events")
    await load(clickhouse, half)
    assert times(await ask(clickhouse, half, steps=["a", "b"]))[1] == (0.002, 0.002)  # 1.5 ms, half up


async def test_time_to_convert_histogram(clickhouse: ClickHouse) -> None:
    events = []
    for person, took in {"u1": 1, "u2": 2, "u3": 4, "u4": 10}.items():
        events += [ev("a", person, t(0)), ev("b", person, t(took)), ev("c", person, t(took + 5))]
    events.append(ev("a", "u5", t(0)))
    await load(clickhouse, events)
    answer = await ask(clickhouse, events, steps=["a", "b", "c"], view="time_to_convert", to_step=1, bins=3)
    assert answer == {
        "view": "time_to_convert",
        "from_step": 0,
        "to_step": 1,
        "converted": 4,
        # from the fastest (1 s) to the slowest (10 s) in 3 bins of ceil(9 / 3) = 3 s; 10 s is in the last
        "bins": [
            {"from_seconds": 1, "to_seconds": 4, "count": 2},
            {"from_seconds": 4, "to_seconds": 7, "count": 1},
            {"from_seconds": 7, "to_seconds": 10, "count": 1},
        ],
        "average_seconds": 4.25,
        "median_seconds": 3.0,
    }
    whole = await ask(clickhouse, events, steps=["a", "b", "c"], view="time_to_convert", bins=1)
    assert whole["bins"] == [{"from_seconds": 6, "to_seconds": 15, "count": 4}]  # 6, 7, 9 and 15 s
    nobody = await ask(clickhouse, events, steps=["a", "z"], view="time_to_convert")
    assert (nobody["converted"], nobody["bins"], nobody["average_seconds"]) == (0, [], None)


async def test_trends_by_entry_period(clickhouse: ClickHouse) -> None:
    day = 86400
    events = [
        *[ev("a", "u1", t(0)), ev("b", "u1", t(60))],
        ev("a", "u2", t(0)),
        *[ev("a", "u3", t(day)), ev("b", "u3", t(day + 60))],
        *[ev("a", "u4", t(0)), ev("a", "u4", t(day)), ev("b", "u4", t(day + 1))],  # enters on both days
    ]
    await load(clickhouse, events)
    body = {"steps": ["a", "b"], "start_date": DAY, "end_date": "2023-01-03", "view": "trends"}
    answer = await ask(clickhouse, events, **body)
    assert answer == {
        "view": "trends",
        "interval": "day",
        "trends": [
            {
                "period": "2023-01-01",
                "start": "2023-01-01",
                "entered": 3,
                "converted": 2,
                "conversion_rate": 66.67,
            },
            {
                "period": "2023-01-02",
                "start": "2023-01-02",
                "entered": 2,
                "converted": 2,
                "conversion_rate": 100.0,
            },
            {
                "period": "2023-01-03",
                "start": "2023-01-03",
                "entered": 0,
                "converted": 0,
                "conversion_rate": 0.0,
            },
        ],
    }
    weekly = await ask(clickhouse, events, **body, interval="week")
    # 2023-01-01 is a Sunday: ISO week 2022-W52; the 2nd and 3rd are in 2023-W01
    assert [(p["period"], p["start"], p["entered"]) for p in weekly["trends"]] == [
        ("2022-W52", "2022-12-26", 3),
        ("2023-W01", "2023-01-02", 2),
    ]
    totals = await ask(clickhouse, events, **body, interval="month", counting="totals")
    assert [(p["period"], p["entered"], p["converted"]) for p in totals["trends"]] == [("2023-01", 5, 4)]


async def test_persons_at_a_step_in_stable_pages(clickhouse: ClickHouse) -> None:
    events = [ev("a", f"u{i}", t(0)) for i in range(1, 6)] + [ev("b", f"u{i}", t(1)) for i in (2, 3, 5)]
    await load(clickhouse, events)
    body = {**BODY, "steps": ["a", "b"], "step": 1, "limit": 2}

    async def page(**extra: Any) -> dict[str, Any]:
        found = (
            await run_funnel_persons(clickhouse, FunnelPersonsRequest(**{**body, **extra}), 30)
        ).model_dump()
        assert found == reference.funnel_persons(events, {**body, **extra})
        return found

    first = await page()
    assert first == {
        "persons": [{"person_id": "u2", "distinct_id": "u2"}, {"person_id": "u3", "distinct_id": "u3"}],
        "next_cursor": "u3",
    }
    late = [ev("a", "u0", t(0)), ev("b", "u0", t(1))]  # sorts before the cursor: not in later pages
    events += late
    await load(clickhouse, late)
    assert await page(cursor="u3") == {
        "persons": [{"person_id": "u5", "distinct_id": "u5"}],
        "next_cursor": None,
    }
    dropped = await page(status="dropped", limit=10)
    assert [p["person_id"] for p in dropped["persons"]] == ["u1", "u4"]
