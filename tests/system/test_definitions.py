"""The README's Definitions, one rule at a time, on the smallest events that show each (the examples of
issue 14), across every answer the rule touches: stats, funnels, the ETL's metrics. Each test is named
after its rule (test_definitions_tested.py holds the README to that)."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, date, datetime
from typing import Any

from services.etl.runner import EtlRunner
from services.etl.settings import EtlSettings
from services.query.funnel import FunnelRequest, run_funnel
from services.query.stats import basic_stats
from services.query.trends import TrendsRequest, run_trends
from shared.clickhouse import ClickHouse
from shared.contracts.dates import DateRange
from tests import reference
from tests.etl.helpers import ManualClock, snapshot_values
from tests.query.app import query_client
from tests.reference import Event, at, ev, load

DAY = date(2023, 3, 1)
E = uuid.UUID("0b6f7f55-8d9b-4a43-9a51-3f0d8c1e2a77")


async def funnel(clickhouse: ClickHouse, events: list[Event], **body: Any) -> dict[str, Any]:
    request = {"start_date": "2023-03-01", "end_date": "2023-03-02", **body}
    answer = (await run_funnel(clickhouse, FunnelRequest(**request), timeout=30)).model_dump()
    assert answer == reference.funnel(events, request)
    return answer


def counts(answer: dict[str, Any]) -> list[int]:
    return [step["count"] for step in answer["funnel"]]


async def etl_day(clickhouse: ClickHouse, events: list[Event], day: date = DAY) -> dict[str, float]:
    clock = ManualClock(datetime(2023, 3, 10, tzinfo=UTC))
    await EtlRunner(clickhouse, EtlSettings(schedule_enabled=False), clock).run(DateRange(day, day))
    values = await snapshot_values(clickhouse)
    assert values == reference.metrics(events, day, day)
    return {metric: value for (_, metric), value in values.items()}


async def test_rule_duplicates_collapse_by_event_user_and_event_id_the_last_received_copy_counts(
    clickhouse: ClickHouse,
) -> None:
    events = [
        Event("open", "p4a", at("2023-03-01 10:00"), event_id=E),
        Event("view", "p4a", at("2023-03-01 10:01"), event_id=E),  # another event name: another event
        Event("open", "p4b", at("2023-03-01 10:00"), event_id=E),  # another user: another event
        Event("open", "p4c", at("2023-03-01 10:00"), event_id=E, received_at=at("2023-03-01 10:00")),
        # p4c's retry a day later with another timestamp: the copy received last counts, on 03-02
        Event("open", "p4c", at("2023-03-02 09:00"), event_id=E, received_at=at("2023-03-02 09:00")),
    ]
    await load(clickhouse, events)
    stats = await basic_stats(clickhouse, DateRange(DAY, DAY), timeout=30)
    assert (stats.events, stats.unique_users) == (3, 2)
    assert (await etl_day(clickhouse, events))["dau"] == 2
    answer = await funnel(clickhouse, events, steps=["open", "view"], end_date="2023-03-01")
    assert counts(answer) == [2, 1]


async def test_rule_property_values_filters_breakdowns_and_sums_agree(clickhouse: ClickHouse) -> None:
    plans: list[Any] = [1, "1", True, "true", 1.0, None]
    events = [ev("signup", f"u{i}", "2023-03-01 10:00", plan=plan) for i, plan in enumerate(plans)]
    events += [
        ev("signup", "u9", "2023-03-01 10:00", plan={"tier": 1}),
        ev("signup", "u10", "2023-03-01 10:00"),
    ]
    money: list[Any] = ["12.5", " 7", 10, True, 1e40, [3]]
    events += [ev("purchase", "buyer", "2023-03-01 11:00", amount=amount) for amount in money]
    await load(clickhouse, events)

    answer = await funnel(clickhouse, events, steps=["signup", "purchase"], breakdown="plan")
    buckets = [(b["value"], b["total_entries"]) for b in answer["breakdown"]]
    assert buckets == [(None, 3), (1, 2), ("1", 1), ("true", 1), (True, 1)]
    for value, users in [(1, 2), ("1", 1), (True, 1), ("true", 1)]:
        step = {"event": "signup", "filters": [{"property": "plan", "op": "eq", "value": value}]}
        assert counts(await funnel(clickhouse, events, steps=[step, "purchase"]))[0] == users, value
    over_11 = {"event": "purchase", "filters": [{"property": "amount", "op": "gt", "value": 11}]}
    assert counts(await funnel(clickhouse, events, steps=[over_11, "signup"]))[0] == 1  # only 1e40
    metrics = await etl_day(clickhouse, events)
    assert metrics["revenue"] == 10.0  # "12.5", " 7", true, 1e40 and [3] are not money
    body = {
        "series": [{"event": "purchase", "math": "sum", "property": "amount"}, {"event": "signup"}],
        "start_date": "2023-03-01",
        "end_date": "2023-03-01",
        "breakdown": "plan",
    }
    trend = (await run_trends(clickhouse, TrendsRequest(**body).checked(366), timeout=30)).model_dump()
    assert trend == reference.trends(events, body)
    signups = [(r["breakdown_value"], r["total"]) for r in trend["results"] if r["series"] == "B"]
    # the funnel's buckets; null first: it holds all of series A's revenue, the rest tie at 0
    assert signups == [(None, 3), (1, 2), ("1", 1), ("true", 1), (True, 1)]
    (revenue,) = [r for r in trend["results"] if r["series"] == "A" and r["breakdown_value"] is None]
    assert (revenue["total"], revenue["skipped"]) == (10.0, 5)


async def test_rule_order_and_ties_simultaneous_events_are_picked_by_arrival(clickhouse: ClickHouse) -> None:
    first = ev("signup", "u1", "2023-03-01 10:00", plan="zebra")
    first.received_at = at("2023-03-01 10:00:01")
    later = ev("signup", "u1", "2023-03-01 10:00", plan="apple")
    later.received_at = at("2023-03-01 10:00:02")
    events = [first, later, ev("paid", "u1", "2023-03-01 10:00"), ev("paid", "u1", "2023-03-01 10:00:00.001")]
    await load(clickhouse, events)
    answer = await funnel(clickhouse, events, steps=["signup", "paid"], breakdown="plan")
    assert [(b["value"], counts(b)) for b in answer["breakdown"]] == [("zebra", [1, 1])]
    strict = await funnel(clickhouse, events, steps=["signup", "paid", "paid"], mode="strict")
    assert counts(strict) == [1, 1, 0]  # paid@10:00 is simultaneous with signup: only paid@.001 follows
    subscription = {"subscription_id": "s1", "amount": 10}
    updated = Event("subscription_updated", "u1", at("2023-03-01 12:00"), {**subscription, "amount": 20})
    updated.received_at = at("2023-03-01 12:00:05")
    cancelled = Event("subscription_cancelled", "u1", at("2023-03-01 12:00"), subscription)
    cancelled.received_at = at("2023-03-01 12:00:03")
    states = [Event("subscription_created", "u1", at("2023-03-01 09:00"), subscription), updated, cancelled]
    await load(clickhouse, states)
    metrics = await etl_day(clickhouse, events + states)
    assert (metrics["active_subscriptions"], metrics["mrr"]) == (1, 20.0)  # the update arrived last


async def test_rule_one_event_one_step_in_every_mode(clickhouse: ClickHouse) -> None:
    once = [ev("signup", "once", "2023-03-01 10:00")]
    twice = [ev("signup", "twice", "2023-03-01 10:00"), ev("signup", "twice", "2023-03-01 10:05")]
    same_ms = [ev("signup", "same_ms", "2023-03-01 10:00"), ev("signup", "same_ms", "2023-03-01 10:00")]
    pro = {"property": "plan", "op": "eq", "value": "pro"}
    one_pro = [ev("buy", "one_pro", "2023-03-01 10:00", plan="pro")]
    two = [ev("buy", "two", "2023-03-01 10:00", plan="pro"), ev("buy", "two", "2023-03-01 10:01", plan="x")]
    events = once + twice + same_ms + one_pro + two
    await load(clickhouse, events)
    expected = {"ordered": [3, 1], "strict": [3, 1], "unordered": [3, 2]}  # same_ms: not later, yet two
    for mode, expect in expected.items():
        assert counts(await funnel(clickhouse, events, steps=["signup", "signup"], mode=mode)) == expect
        steps = [{"event": "buy", "filters": [pro]}, "buy"]
        assert counts(await funnel(clickhouse, events, steps=steps, mode=mode)) == [2, 1], mode
    copied = dataclasses.replace(once[0], received_at=at("2023-03-01 11:00"))  # a copy is not a second event
    await load(clickhouse, [copied])
    answer = await funnel(clickhouse, [*events, copied], steps=["signup", "signup"], mode="unordered")
    assert counts(answer) == [3, 2]


async def test_rule_limits_are_422s_naming_the_field(clickhouse: ClickHouse) -> None:
    bad: list[tuple[dict[str, Any], str]] = [
        ({"window_seconds": 0}, "window_seconds"),
        ({"window_seconds": 366 * 86400 + 1}, "window_seconds"),
        ({"filters": [{"property": "plan", "op": "eq", "value": None}]}, "filters.0"),
        ({"filters": [{"property": "plan", "op": "eq"}]}, "filters.0"),
        ({"filters": [{"property": "plan", "op": "in", "value": ["a", None]}]}, "filters.0.value"),
        ({"filters": [{"property": "plan", "op": "in", "value": ["a"] * 1001}]}, "filters.0"),
        ({"filters": [{"property": "n", "op": "between", "value": [2, 1]}]}, "filters.0"),
        ({"filters": [{"property": "n", "op": "regex", "value": "("}]}, "filters.0"),
        ({"filters": [{"property": "n", "op": "regex", "value": "a" * 1001}]}, "filters.0"),
        ({"filters": [{"property": "n", "op": "date_after", "value": "2023-02-30"}]}, "filters.0"),
        ({"filters": [{"property": "n", "op": "is_set", "value": 1}]}, "filters.0"),
        (
            {
                "mode": "unordered",
                "steps": [
                    {"event": "a", "filters": [{"property": "n", "op": "eq", "value": i}]} for i in range(11)
                ],
            },
            "body",
        ),
    ]
    async with query_client(clickhouse) as client:
        for change, field in bad:
            body = {"steps": ["a", "b"], "start_date": "2023-03-01", "end_date": "2023-03-01", **change}
            response = await client.post("/api/v1/analytics/funnel", json=body)
            assert response.status_code == 422, (change, response.text)
            named = [".".join(str(p) for p in d["loc"][1:]) or "body" for d in response.json()["details"]]
            assert any(name.startswith(field) for name in named), (change, response.json())
