"""Trends: hand-built cases pinning each math, interval, DST day, breakdown with other, compare and
formula, then the service against tests/reference.py on random events, zones and maths. Rows go
straight into ClickHouse; the runner is called directly (and the endpoint for its 422s)."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from typing import Any, get_args

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from services.query.trends import Math, TrendsRequest, run_trends
from services.query.trends_sql import PROPERTY_MATHS
from shared.clickhouse import ClickHouse
from tests import reference
from tests.query.app import query_client
from tests.reference import Event, at, ev, load


async def ask(clickhouse: ClickHouse, events: list[Event], **body: Any) -> dict[str, Any]:
    """The service's answer, checked against the reference before it is returned."""
    request = {"start_date": "2023-03-01", "end_date": "2023-03-03", **body}
    answer = (await run_trends(clickhouse, TrendsRequest(**request).checked(366), timeout=30)).model_dump()
    assert answer == reference.trends(events, request)
    return answer


def series(answer: dict[str, Any], letter: str = "A") -> list[dict[str, Any]]:
    return [r for r in answer["results"] if r["series"] == letter]


async def test_rule_trend_maths_each_math_on_one_day(clickhouse: ClickHouse) -> None:
    amounts: list[Any] = [1, 2, 3.0, 10, "x", True, {"a": 1}]
    events = [ev("buy", f"u{i % 2}", "2023-03-01 10:00", amount=a) for i, a in enumerate(amounts)]
    events += [ev("buy", "u2", "2023-03-01 11:00"), ev("buy", "u2", "2023-03-01 12:00", amount=None)]
    await load(clickhouse, events)
    expected = {
        "total": 9,
        "unique_persons": 3,
        "dau": 3.0,
        "per_person_avg": 3.0,
        "sum": 16.0,
        "avg": 4.0,
        "min": 1.0,
        "max": 10.0,
        "median": 2.5,  # between 2 and 3
        "p90": 7.9,  # rank 2.7: 3 + 0.7 x (10 - 3)
        "p95": 8.95,
        "p99": 9.79,
    }
    for math, value in expected.items():
        body: dict[str, Any] = {"event": "buy", "math": math}
        if math in PROPERTY_MATHS:
            body["property"] = "amount"
        (result,) = series(await ask(clickhouse, events, series=[body], end_date="2023-03-01"))
        assert (result["data"], result["total"]) == ([value], value), math
        if "property" in body:
            assert result["skipped"] == 3, math  # "x", true and the object; missing and null are not set


async def test_weekly_and_monthly_active_look_back_from_each_buckets_last_day(clickhouse: ClickHouse) -> None:
    events = [
        ev("open", "early", "2023-02-05 10:00"),  # 24 days before 03-01: monthly only
        ev("open", "week", "2023-02-24 10:00"),  # 5 days before: weekly on 03-01 and 03-02
        ev("open", "now", "2023-03-03 10:00"),
    ]
    await load(clickhouse, events)
    answer = await ask(clickhouse, events, series=[{"event": "open", "math": "weekly_active"}])
    assert (series(answer)[0]["data"], series(answer)[0]["total"]) == ([1, 1, 1], 1)
    answer = await ask(clickhouse, events, series=[{"event": "open", "math": "monthly_active"}])
    assert (series(answer)[0]["data"], series(answer)[0]["total"]) == ([2, 2, 3], 3)  # `now` from 03-03
    weekly = await ask(
        clickhouse,
        events,
        series=[{"event": "open", "math": "weekly_active"}],
        interval="week",
        end_date="2023-03-06",
    )
    assert series(weekly)[0]["labels"] == ["2023-02-27", "2023-03-06"]
    assert series(weekly)[0]["data"] == [1, 1]  # the window of 03-05 holds `now`; of 03-06, `now` too


async def test_intervals_label_every_bucket_and_fill_empty_ones(clickhouse: ClickHouse) -> None:
    events = [
        ev("open", "u1", "2023-01-01 10:00"),
        ev("open", "u1", "2023-01-09 10:00"),
        ev("open", "u2", "2023-03-10 10:00"),
    ]
    await load(clickhouse, events)
    week = await ask(
        clickhouse,
        events,
        series=[{"event": "open", "math": "dau"}],
        interval="week",
        start_date="2023-01-01",
        end_date="2023-01-16",
    )
    (result,) = series(week)
    assert result["labels"] == [
        "2022-12-26",
        "2023-01-02",
        "2023-01-09",
        "2023-01-16",
    ]  # ISO weeks, by Monday
    assert result["data"] == [1.0, 0.0, 1 / 7, 0.0]  # the first week holds one day of the range
    month = await ask(
        clickhouse,
        events,
        series=[{"event": "open"}],
        interval="month",
        start_date="2023-01-15",
        end_date="2023-03-10",
    )
    assert (series(month)[0]["labels"], series(month)[0]["data"]) == (
        ["2023-01-01", "2023-02-01", "2023-03-01"],
        [0, 0, 1],
    )


async def test_rule_time_zones_dst_days_have_23_and_25_hours(clickhouse: ClickHouse) -> None:
    events = [
        ev("open", "spring", "2023-03-25 23:30"),  # 00:30 CET on 03-26
        ev("open", "spring", "2023-03-26 00:59:59.999"),  # 01:59 CET, the last moment before 03:00 CEST
        ev("open", "spring", "2023-03-26 01:00"),  # 03:00 CEST
        ev("open", "autumn", "2023-10-29 00:30"),  # 02:30 CEST
        ev("open", "autumn", "2023-10-29 01:30"),  # 02:30 CET, the second one
        ev("open", "autumn", "2023-10-29 22:59:59.999"),  # 23:59 CET: still 10-29
    ]
    await load(clickhouse, events)
    for day, hours, counts in [("2023-03-26", 23, [1, 1, 1]), ("2023-10-29", 25, [1, 1, 1])]:
        body = {
            "series": [{"event": "open"}],
            "start_date": day,
            "end_date": day,
            "timezone": "Europe/Berlin",
        }
        (result,) = series(await ask(clickhouse, events, **body, interval="hour"))
        assert len(result["labels"]) == hours
        assert [v for v in result["data"] if v] == counts
        (daily,) = series(await ask(clickhouse, events, **body))
        assert daily["data"] == [3]
    autumn = series(
        await ask(
            clickhouse,
            events,
            series=[{"event": "open"}],
            start_date="2023-10-29",
            end_date="2023-10-29",
            timezone="Europe/Berlin",
            interval="hour",
        )
    )[0]
    assert autumn["labels"][2:4] == ["2023-10-29T02:00:00+02:00", "2023-10-29T02:00:00+01:00"]
    assert autumn["data"][2:4] == [1, 1]
    spring = series(
        await ask(
            clickhouse,
            events,
            series=[{"event": "open"}],
            start_date="2023-03-26",
            end_date="2023-03-26",
            timezone="Europe/Berlin",
            interval="hour",
        )
    )[0]
    assert spring["labels"][1:3] == ["2023-03-26T01:00:00+01:00", "2023-03-26T03:00:00+02:00"]


async def test_a_persons_distinct_ids_count_once_in_every_person_math(clickhouse: ClickHouse) -> None:
    """anon browses on 03-01 and 03-02, signs up as u1 on 03-02 (the link anon -> u1): one person."""
    signup = dataclasses.replace(
        ev("signup", "u1", "2023-03-02 12:00", **{"$set": {"plan": "pro"}}), linked_ids=["anon"]
    )
    events = [
        ev("open", "anon", "2023-03-01 10:00"),
        ev("open", "anon", "2023-03-02 10:00"),
        ev("open", "u1", "2023-03-02 13:00"),
        ev("open", "u2", "2023-03-02 13:00"),
        signup,
    ]
    await load(clickhouse, events)
    expected = {
        "unique_persons": ([1, 2, 0], 2),
        "dau": ([1.0, 2.0, 0.0], 1.0),  # the mean over the three days
        "weekly_active": ([1, 2, 2], 2),
        "per_person_avg": ([1.0, 1.5, 0.0], 2.0),  # 4 opens by 2 persons
    }
    for math, (data, total) in expected.items():
        (result,) = series(await ask(clickhouse, events, series=[{"event": "open", "math": math}]))
        assert (result["data"], result["total"]) == (data, total), math
    by_plan = await ask(
        clickhouse,
        events,
        series=[{"event": "open", "math": "unique_persons"}],
        breakdown={"property": "plan", "source": "person"},
    )
    assert [(r["breakdown_value"], r["data"]) for r in series(by_plan)] == [
        ("pro", [1, 1, 0]),  # anon's opens before the signup belong to the person, who is on pro now
        (None, [0, 1, 0]),
    ]
    filtered = await ask(
        clickhouse,
        events,
        series=[{"event": "open", "filters": [{"property": "person.plan", "op": "eq", "value": "pro"}]}],
    )
    assert series(filtered)[0]["data"] == [1, 2, 0]


async def test_breakdown_keeps_the_top_25_and_counts_persons_once_in_other(clickhouse: ClickHouse) -> None:
    events = []
    for i in range(27):  # value v00 has 27 persons ... v26 has 1
        events += [ev("open", f"p{i}-{n}", "2023-03-01 10:00", page=f"v{i:02d}") for n in range(27 - i)]
    events += [
        ev("open", "both", "2023-03-01 10:00", page="v25"),
        ev("open", "both", "2023-03-01 11:00", page="v26"),
    ]
    await load(clickhouse, events)
    answer = await ask(
        clickhouse, events, series=[{"event": "open", "math": "unique_persons"}], breakdown="page"
    )
    values = [(r["breakdown_value"], r["other"], r["total"]) for r in answer["results"]]
    assert values[:25] == [(f"v{i:02d}", False, 27 - i) for i in range(25)]
    assert values[25:] == [("Other", True, 4)]  # v25: 2 + both, v26: 1 + both -> 4 persons, not 5


async def test_compare_takes_the_equally_long_period_just_before(clickhouse: ClickHouse) -> None:
    events = [
        ev("open", "u1", "2023-02-26 10:00"),
        ev("open", "u1", "2023-02-28 10:00"),
        ev("open", "u2", "2023-03-02 10:00"),
    ]
    await load(clickhouse, events)
    (result,) = series(await ask(clickhouse, events, series=[{"event": "open"}], compare="previous_period"))
    assert result["compare"] == {
        "labels": ["2023-02-26", "2023-02-27", "2023-02-28"],
        "data": [1, 0, 1],
        "total": 2,
        "skipped": None,
    }
    assert (result["data"], result["total"]) == ([0, 1, 0], 1)


async def test_formula_over_series_letters_with_null_on_division_by_zero(clickhouse: ClickHouse) -> None:
    events = [
        ev("buy", "u1", "2023-03-01 10:00", amount=10),
        ev("buy", "u2", "2023-03-01 11:00", amount=5),
        ev("open", "u1", "2023-03-01 09:00"),
        ev("buy", "u1", "2023-03-02 10:00", amount=1),
    ]
    await load(clickhouse, events)
    body = {
        "series": [
            {"event": "buy", "math": "sum", "property": "amount"},
            {"event": "open", "math": "unique_persons"},
        ],
        "formula": "(A - 1) / B * 100",
    }
    answer = await ask(clickhouse, events, **body)
    (formula,) = answer["formula"]
    assert (formula["data"], formula["total"]) == ([1400.0, None, None], 1500.0)


# --- 422s naming the field ----------------------------------------------------------------------------

BAD_TRENDS: list[tuple[dict[str, Any], str]] = [
    ({"series": []}, "series"),
    ({"series": [{"event": "a"}] * 11}, "series"),
    ({"series": [{"event": "a", "math": "mode"}]}, "series.0.math"),
    ({"series": [{"event": "a", "math": "sum"}]}, "series.0.property"),
    ({"series": [{"event": "a", "math": "total", "property": "amount"}]}, "series.0.property"),
    ({"series": [{"event": "a", "math": "dau"}], "interval": "hour"}, "series.0.math"),
    ({"interval": "hour", "end_date": "2023-02-01"}, "interval"),
    ({"interval": "minute"}, "interval"),
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"timezone": "../../etc/passwd"}, "timezone"),
    ({"formula": "A / C"}, "formula"),
    ({"formula": "A ** 2"}, "formula"),
    ({"formula": "__import__('os')"}, "formula"),
    ({"formula": "(A"}, "formula"),
    ({"formula": "A B"}, "formula"),
    ({"compare": "last_year"}, "compare"),
    ({"start_date": "1970-01-01", "end_date": "1970-01-01", "compare": "previous_period"}, "compare"),
    ({"end_date": "2024-01-02"}, "end_date"),
    ({"filters": [{"property": "p", "op": "regex", "value": "a(b"}]}, "filters.0"),
    ({"breakdown": {"property": "plan", "source": "group"}}, "breakdown.source"),
]


async def test_bad_trend_bodies_are_422_naming_the_field(clickhouse: ClickHouse) -> None:
    async with query_client(clickhouse) as client:
        for change, field in BAD_TRENDS:
            body = {
                "series": [{"event": "a"}],
                "start_date": "2023-01-01",
                "end_date": "2023-01-01",
                **change,
            }
            response = await client.post("/api/v1/analytics/trends", json=body)
            assert response.status_code == 422, (change, response.text)
            named = [".".join(str(p) for p in d["loc"][1:]) for d in response.json()["details"]]
            assert any(name.startswith(field) for name in named), (change, response.json())
        ok = await client.post(
            "/api/v1/analytics/trends",
            json={"series": [{"event": "a"}], "start_date": "2023-01-01", "end_date": "2023-01-01"},
        )
        assert ok.status_code == 200 and ok.json()["results"][0]["data"] == [0]


# --- the service against the reference on random events ---------------------------------------------

ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "America/Santiago",
    "Asia/Kathmandu",
    "Pacific/Chatham",
    "America/St_Johns",
]
START = at("2023-03-24 00:00")
AMOUNTS = st.sampled_from([1, 2.5, -4, 0.0000015, 10**6, "3", True, None, {"x": 1}, 1e40])
PLANS = st.sampled_from(["pro", "1", 1, 1.0, True, None, "free"])
MATHS = st.sampled_from(get_args(Math))
TREND_FILTERS = st.sampled_from(
    [
        {"property": "plan", "op": "eq", "value": "pro"},
        {"property": "plan", "op": "neq", "value": 1},
        {"property": "amount", "op": "between", "value": [0, 5]},
        {"property": "plan", "op": "regex", "value": "^(p|f)"},
        {"property": "plan", "op": "is_not_set"},
        {"property": "person.plan", "op": "is_not_set"},
    ]
)


@st.composite
def trend_events(draw: st.DrawFn) -> list[Event]:
    """A few people over 12 days around DST changes (Berlin 03-26; Santiago, Lord Howe, Chatham 04-02)."""
    events = []
    for _ in range(draw(st.integers(0, 25))):
        moment = START + timedelta(
            minutes=draw(st.integers(0, 12 * 24 * 4)) * 15 + draw(st.sampled_from([0, 7, 14]))
        )
        properties: dict[str, Any] = {}
        if draw(st.booleans()):
            properties["plan"] = draw(PLANS)
        if draw(st.booleans()):
            properties["amount"] = draw(AMOUNTS)
        events.append(
            ev(
                draw(st.sampled_from("ab")),
                draw(st.sampled_from(["u1", "u2", "u3", "u4"])),
                moment,
                **properties,
            )
        )
    for copied in draw(st.lists(st.sampled_from(events), max_size=2)) if events else []:
        events.append(dataclasses.replace(copied, received_at=copied.timestamp + timedelta(hours=1)))
    for _ in range(draw(st.integers(0, 3))):  # links merge ids into persons; $set gives them a plan
        source, target = draw(st.permutations(["u1", "u2", "u3", "u4"]))[:2]
        moment = START + timedelta(minutes=draw(st.integers(0, 12 * 24 * 4)) * 15)
        properties = {"$set": {"plan": draw(PLANS)}} if draw(st.booleans()) else {}
        events.append(dataclasses.replace(ev("link", target, moment, **properties), linked_ids=[source]))
    return events


@st.composite
def trend_requests(draw: st.DrawFn) -> dict[str, Any]:
    interval = draw(st.sampled_from(["hour", "day", "day", "week", "month"]))
    start = date(2023, 3, 25) + timedelta(days=draw(st.integers(0, 8)))
    length = draw(st.integers(1, 2 if interval == "hour" else 4))
    series = []
    for _ in range(draw(st.integers(1, 2))):
        math = draw(MATHS)
        if interval == "hour" and math in ("dau", "weekly_active", "monthly_active"):
            math = "total"
        spec: dict[str, Any] = {"event": draw(st.sampled_from(["a", "b", "$all"])), "math": math}
        if math in PROPERTY_MATHS:
            spec["property"] = "amount"
        spec["filters"] = draw(st.lists(TREND_FILTERS, max_size=1))
        series.append(spec)
    request = {
        "series": series,
        "start_date": start.isoformat(),
        "end_date": (start + timedelta(days=length - 1)).isoformat(),
        "interval": interval,
        "timezone": draw(st.sampled_from(ZONES)),
        "breakdown": draw(st.sampled_from([None, None, "plan", "person.plan"])),
        "compare": draw(st.sampled_from([None, "previous_period"])),
        "filters": draw(st.lists(TREND_FILTERS, max_size=1)),
    }
    if len(series) == 2:
        request["formula"] = draw(st.sampled_from([None, "A / B", "A - 2 * B", "(A + B) / (A - B)"]))
    return request


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=trend_events(), request=trend_requests())
async def test_service_matches_reference(
    clickhouse: ClickHouse, events: list[Event], request: dict[str, Any]
) -> None:
    note(f"events={events!r} request={request!r}")
    await reference.clear(clickhouse)
    await load(clickhouse, events)
    await ask(clickhouse, events, **request)
