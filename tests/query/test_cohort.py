"""Cohort semantics on small hand-built event sets (ISO week-years, month ends, first-ever starts,
the end_date cut), then the service against tests/reference.py on random ones."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.query.cohort import CohortRequest, label, run_cohort
from shared.clickhouse import ClickHouse
from tests import reference
from tests.reference import Event, ev, load


async def ask(clickhouse: ClickHouse, events: list[Event], **params: Any) -> dict[str, Any]:
    """The service's answer, checked against the reference before it is returned."""
    answer = (await run_cohort(clickhouse, CohortRequest(**params), timeout=30)).model_dump()
    assert answer == reference.cohorts(events, params)
    return answer


def rates(answer: dict[str, Any]) -> list[tuple[str, int, list[float]]]:
    return [(c["cohort_date"], c["users"], [d["percentage"] for d in c["data"]]) for c in answer["cohorts"]]


async def test_weeks_are_iso_weeks_labelled_by_iso_week_year(clickhouse: ClickHouse) -> None:
    events = [
        ev("open", "thursday", "2020-12-31 10:00"),  # 2020-W53
        ev("open", "thursday", "2021-01-04 00:00"),  # Monday: 2021-W01
        ev("open", "sunday", "2021-01-03 23:59:59.999"),  # still 2020-W53
        ev("open", "monday", "2021-01-04 00:00"),
    ]
    await load(clickhouse, events)
    answer = await ask(clickhouse, events, period_type="weekly", periods=3, end_date="2021-01-10")
    assert answer == {
        "cohorts": [
            {
                "cohort_date": "2020-W52",
                "users": 0,
                "data": [{"period": k, "percentage": 0.0, "count": 0} for k in range(3)],
            },
            {
                "cohort_date": "2020-W53",
                "users": 2,
                "data": [
                    {"period": 0, "percentage": 100.0, "count": 2},
                    {"period": 1, "percentage": 50.0, "count": 1},
                ],
            },
            {"cohort_date": "2021-W01", "users": 1, "data": [{"period": 0, "percentage": 100.0, "count": 1}]},
        ]
    }


def test_labels() -> None:
    assert label(date(2019, 12, 30), "weekly") == "2020-W01"  # ISO week-year, not the calendar year
    assert label(date(2020, 12, 28), "weekly") == "2020-W53"
    assert label(date(2021, 1, 4), "weekly") == "2021-W01"
    assert label(date(2023, 1, 1), "monthly") == "2023-01"
    assert label(date(2023, 1, 31), "daily") == "2023-01-31"


async def test_month_ends_and_the_end_date_cut(clickhouse: ClickHouse) -> None:
    events = [
        *[ev("open", "jan", "2024-01-31 23:59:59.999"), ev("open", "jan", "2024-02-01 00:00")],
        *[ev("open", "dec", "2023-12-31 23:59:59.999"), ev("open", "dec", "2024-02-29 23:59:59.999")],
        *[ev("open", "feb", "2024-02-29 12:00"), ev("open", "feb", "2024-03-01 00:00")],  # after end_date
        ev("open", "march", "2024-03-01 00:00"),  # first seen after end_date: in no cohort
    ]
    await load(clickhouse, events)
    answer = await ask(clickhouse, events, period_type="monthly", periods=3, end_date="2024-02-29")
    assert rates(answer) == [
        ("2023-12", 1, [100.0, 0.0, 100.0]),
        ("2024-01", 1, [100.0, 100.0]),
        ("2024-02", 1, [100.0]),
    ]


async def test_start_and_return_events_and_first_ever_start(clickhouse: ClickHouse) -> None:
    events = [
        *[ev("signup", "u1", "2023-01-01 10:00"), ev("purchase", "u1", "2023-01-03 10:00")],
        *[ev("purchase", "u2", "2023-01-01 10:00"), ev("signup", "u2", "2023-01-02 10:00")],
        *[ev("purchase", "u3", "2023-01-02 08:00"), ev("signup", "u3", "2023-01-02 09:00")],  # same day
        *[ev("signup", "u4", "2022-06-30 10:00"), ev("signup", "u4", "2023-01-02 10:00")],  # started long ago
        ev("purchase", "u5", "2023-01-02 10:00"),  # never signed up
    ]
    await load(clickhouse, events)
    params = {"period_type": "daily", "periods": 3, "end_date": "2023-01-03"}
    answer = await ask(clickhouse, events, **params, start_event="signup", return_event="purchase")
    assert rates(answer) == [
        ("2023-01-01", 1, [0.0, 0.0, 100.0]),
        ("2023-01-02", 2, [50.0, 0.0]),
        ("2023-01-03", 0, [0.0]),
    ]
    answer = await ask(clickhouse, events, **params, start_event="signup")  # any event returns
    assert [c["data"][0]["percentage"] for c in answer["cohorts"]] == [100.0, 100.0, 0.0]


async def test_dates_past_2149_where_clickhouse_day_numbers_stop(clickhouse: ClickHouse) -> None:
    events = [ev("open", "u1", "2199-12-20 10:00"), ev("open", "u1", "2199-12-24 10:00")]
    await load(clickhouse, events)
    for period_type, expected in [
        ("daily", [("2199-12-23", 0, [0.0, 0.0]), ("2199-12-24", 0, [0.0])]),
        ("weekly", [("2199-W51", 1, [100.0, 100.0]), ("2199-W52", 0, [0.0])]),
        ("monthly", [("2199-11", 0, [0.0, 0.0]), ("2199-12", 1, [100.0])]),
    ]:
        answer = await ask(clickhouse, events, period_type=period_type, periods=2, end_date="2199-12-24")
        assert rates(answer) == expected, period_type


async def test_empty_store_lists_every_period(clickhouse: ClickHouse) -> None:
    answer = await ask(clickhouse, [], period_type="weekly", periods=8, end_date="2023-03-01")
    assert [len(c["data"]) for c in answer["cohorts"]] == [8, 7, 6, 5, 4, 3, 2, 1]
    assert {c["users"] for c in answer["cohorts"]} == {0}


async def test_injection_looking_event_names_match_nothing(clickhouse: ClickHouse) -> None:
    events = [ev("signup", "u1", "2023-01-01 10:00")]
    await load(clickhouse, events)
    answer = await ask(clickhouse, events, periods=1, end_date="2023-01-01", start_event="signup' OR 1=1 --")
    assert rates(answer) == [("2022-W52", 0, [0.0])]


def test_request_defaults_and_limits() -> None:
    request = CohortRequest(start_event="", return_event="")
    assert (request.period_type, request.periods, request.start_event, request.return_event) == (
        "weekly",
        8,
        None,
        None,
    )
    today = datetime.now(UTC).date()
    assert request.period_starts()[-1] == today - timedelta(days=today.weekday())
    for bad in ({"periods": 0}, {"periods": 53}, {"period_type": "yearly"}, {"end_date": "2023-1-1"}):
        with pytest.raises(ValidationError):
            CohortRequest(**bad)


# --- the service against the reference on random event sets ------------------------------------------

FIRST_DAY = datetime(2020, 12, 1, tzinfo=UTC)


@st.composite
def random_events(draw: st.DrawFn) -> list[Event]:
    """Events from December 2020 to mid-February 2021, often on the last millisecond of a day."""
    events = []
    for _ in range(draw(st.integers(0, 20))):
        moment = FIRST_DAY + timedelta(days=draw(st.integers(0, 75)))
        moment += draw(
            st.sampled_from([timedelta(0), timedelta(hours=12), timedelta(days=1, milliseconds=-1)])
        )
        events.append(
            ev(draw(st.sampled_from("abc")), draw(st.sampled_from(["u1", "u2", "u3", "u4"])), moment)
        )
    for copied in draw(st.lists(st.sampled_from(events), max_size=2)) if events else []:
        events.append(dataclasses.replace(copied, received_at=copied.timestamp + timedelta(hours=1)))
    return events


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    events=random_events(),
    period_type=st.sampled_from(["daily", "weekly", "monthly"]),
    periods=st.integers(1, 10),
    end=st.dates(date(2020, 12, 20), date(2021, 2, 20)),
    start_event=st.sampled_from([None, "a", "b"]),
    return_event=st.sampled_from([None, "a", "b"]),
    timezone=st.sampled_from(["UTC", "UTC", "Europe/Berlin", "Pacific/Kiritimati", "America/St_Johns"]),
)
async def test_service_matches_reference(
    clickhouse: ClickHouse,
    events: list[Event],
    period_type: str,
    periods: int,
    end: date,
    start_event: str | None,
    return_event: str | None,
    timezone: str,
) -> None:
    params = {
        "period_type": period_type,
        "periods": periods,
        "end_date": end.isoformat(),
        "timezone": timezone,
    }
    params.update({k: v for k, v in {"start_event": start_event, "return_event": return_event}.items() if v})
    note(f"events={events!r} params={params!r}")
    await reference.clear(clickhouse)
    await load(clickhouse, events)
    await ask(clickhouse, events, **params)


async def test_periods_are_the_time_zones_days_weeks_and_months(clickhouse: ClickHouse) -> None:
    events = [
        ev("open", "u1", "2023-01-31 23:30"),  # 00:30 on 02-01 in Berlin: February's cohort there
        ev("open", "u1", "2023-02-28 23:30"),  # 00:30 on 03-01 in Berlin
        ev("open", "u2", "2023-02-01 00:30"),  # 19:30 on 01-31 in New York
    ]
    await load(clickhouse, events)
    utc = await ask(clickhouse, events, period_type="monthly", periods=3, end_date="2023-03-31")
    assert rates(utc) == [
        ("2023-01", 1, [100.0, 100.0, 0.0]),
        ("2023-02", 1, [100.0, 0.0]),
        ("2023-03", 0, [0.0]),
    ]
    berlin = await ask(
        clickhouse, events, period_type="monthly", periods=3, end_date="2023-03-31", timezone="Europe/Berlin"
    )
    assert rates(berlin) == [
        ("2023-01", 0, [0.0, 0.0, 0.0]),
        ("2023-02", 2, [100.0, 50.0]),
        ("2023-03", 0, [0.0]),
    ]
    york = await ask(
        clickhouse,
        events,
        period_type="monthly",
        periods=3,
        end_date="2023-03-31",
        timezone="America/New_York",
    )
    assert rates(york) == [
        ("2023-01", 2, [100.0, 50.0, 0.0]),
        ("2023-02", 0, [0.0, 0.0]),
        ("2023-03", 0, [0.0]),
    ]
