"""Cohorts over any event come from the per-user summary `user_active_days` (plus the users changed since
it was built): the answer stays the reference's through retried copies that move an event to another
day, new events, and a truncated and reloaded table."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from typing import Any

import pytest

from services.query import cohort_sql
from services.query.cohort import CohortRequest, run_cohort
from shared.clickhouse import ClickHouse
from shared.contracts.storage import ACTIVE_DAYS_TABLE as SUMMARY_TABLE
from shared.errors import QueryFailed
from tests import reference
from tests.reference import Event, at, ev, load

QUESTIONS = [
    {"period_type": "weekly", "periods": 4, "end_date": "2023-01-29"},
    {"period_type": "daily", "periods": 10, "end_date": "2023-01-12"},
    {"period_type": "monthly", "periods": 3, "end_date": "2023-02-15"},
]


@pytest.fixture(autouse=True)
def no_margin(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows stamped a second before the build count as unchanged (the service allows a minute for
    inserts in flight, which a test cannot wait for)."""
    monkeypatch.setattr(cohort_sql, "CHANGED_MARGIN_SECONDS", 0)


def sample_events() -> list[Event]:
    return [
        ev("open", "u1", "2023-01-02 10:00"),
        ev("click", "u1", "2023-01-10 23:59:59.999"),
        ev("open", "u2", "2023-01-05 00:00"),
        ev("open", "u2", "2023-01-20 12:00"),
        ev("open", "u3", "2022-12-30 08:00"),  # first seen before the shown periods
        ev("open", "u3", "2023-01-16 08:00"),
        ev("buy", "u4", "2023-01-28 09:00"),
        ev("buy", "u4", "2023-02-20 09:00"),  # after some end dates
    ]


async def load_before_the_build(clickhouse: ClickHouse, events: list[Event]) -> None:
    """Load, then let the clock pass the second the rows were stamped with (inserted_at is in
    seconds), so a summary built next is newer than them."""
    await load(clickhouse, events)
    await asyncio.sleep(1.1)


async def rebuild_summary(clickhouse: ClickHouse) -> None:
    view = f"{clickhouse.database}.user_active_days_rebuild"
    await clickhouse.command(f"SYSTEM REFRESH VIEW {view}")
    await clickhouse.command(f"SYSTEM WAIT VIEW {view}")


async def answers_match_reference(clickhouse: ClickHouse, events: list[Event]) -> list[dict[str, Any]]:
    answers = []
    for params in QUESTIONS:
        answer = (await run_cohort(clickhouse, CohortRequest(**params), timeout=30)).model_dump()
        assert answer == reference.cohorts(events, params), params
        answers.append(answer)
    return answers


async def test_the_summary_answers_for_users_unchanged_since_it_was_built(clickhouse: ClickHouse) -> None:
    events = sample_events()
    await load_before_the_build(clickhouse, events)
    await rebuild_summary(clickhouse)
    assert (await clickhouse.query(f"SELECT count() FROM {SUMMARY_TABLE}"))[0][0] == 4
    await answers_match_reference(clickhouse, events)
    # A user only the summary knows is counted: the summary, not a scan, answered.
    await clickhouse.command(
        f"INSERT INTO {SUMMARY_TABLE} (user_id, days, built_at) "
        f"SELECT 'ghost', [19363], max(built_at) FROM {SUMMARY_TABLE}"
    )
    answer = await run_cohort(clickhouse, CohortRequest(**QUESTIONS[0]), timeout=30)
    assert answer.cohorts[0].users == reference.cohorts(events, QUESTIONS[0])["cohorts"][0]["users"] + 1


async def test_copies_that_move_events_and_new_events_after_the_build_count_once(
    clickhouse: ClickHouse,
) -> None:
    events = sample_events()
    await load_before_the_build(clickhouse, events)
    await rebuild_summary(clickhouse)
    later = timedelta(minutes=5)
    moved = [  # retries without a timestamp: same event_id, received later, another day of the month
        dataclasses.replace(e, timestamp=at(day), received_at=e.timestamp + later)
        for e, day in [(events[0], "2023-01-11 10:00"), (events[2], "2023-01-25 08:00")]
    ]
    fresh = [ev("open", "u5", "2023-01-24 10:00"), ev("open", "u2", "2023-01-27 10:00")]
    await load(clickhouse, moved + fresh)
    await answers_match_reference(clickhouse, events + moved + fresh)


async def test_a_summary_older_than_every_stored_row_is_ignored(clickhouse: ClickHouse) -> None:
    await load_before_the_build(clickhouse, sample_events())
    await rebuild_summary(clickhouse)
    await reference.clear(clickhouse)
    events = [ev("open", "u9", "2023-01-03 10:00"), ev("open", "u9", "2023-01-18 10:00")]
    await load(clickhouse, events)
    await answers_match_reference(clickhouse, events)


async def test_rows_of_another_build_than_the_changed_users_were_found_with_stop_the_query(
    clickhouse: ClickHouse,
) -> None:
    """What a query overlapping a rebuild's swap would read: it fails (and the runner asks again)
    rather than pair old rows with a newer build time."""
    await load_before_the_build(clickhouse, sample_events())
    await rebuild_summary(clickhouse)
    await clickhouse.command(
        f"INSERT INTO {SUMMARY_TABLE} (user_id, days, built_at) "
        f"SELECT 'old', [19363], max(built_at) - 600 FROM {SUMMARY_TABLE}"
    )
    with pytest.raises(QueryFailed) as failure:
        await run_cohort(clickhouse, CohortRequest(**QUESTIONS[0]), timeout=30)
    assert cohort_sql.SUMMARY_SWAPPED in str(failure.value.__cause__)


async def test_a_merge_of_two_ids_whose_days_differ_stays_exact_after_a_rebuild(
    clickhouse: ClickHouse,
) -> None:
    """The summary keeps one row per distinct id; a merge changes none of them, the cohort groups the
    merged person's rows when it reads them, so nothing needs invalidating."""
    events = sample_events() + [
        ev("open", "anon", "2022-12-31 10:00"),
        ev("open", "anon", "2023-01-17 10:00"),
    ]
    await load_before_the_build(clickhouse, events)
    await rebuild_summary(clickhouse)
    unmerged = await answers_match_reference(clickhouse, events)
    # u2 signs in on the anonymous device: anon's days (Dec 31, Jan 17) join u2's (Jan 5, Jan 20).
    link = dataclasses.replace(ev("signup", "u2", "2023-01-05 01:00"), linked_ids=["anon"])
    await load(clickhouse, [link])
    merged = await answers_match_reference(clickhouse, [*events, link])
    assert merged != unmerged
    await asyncio.sleep(1.1)
    await rebuild_summary(clickhouse)  # and after the next rebuild, with every row unchanged again
    assert await answers_match_reference(clickhouse, [*events, link]) == merged
