"""ETL: every metric on crafted events, idempotent re-runs and backfills, the scheduler, the HTTP API."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest

from services.etl.metrics import METRICS, Metric
from services.etl.overview import build_overview, change_pct
from services.etl.routes import RunRequest, requested_days
from services.etl.runner import EtlRunner
from services.etl.scheduler import EtlScheduler, nightly_trigger
from services.etl.settings import EtlSettings
from shared.clickhouse import ClickHouse
from shared.contracts.dates import DateRange
from shared.contracts.storage import SNAPSHOTS_TABLE
from shared.errors import InvalidRequest
from tests.etl.helpers import (
    ManualClock,
    activity,
    days,
    random_events,
    series,
    snapshot_runs,
    snapshot_values,
    subscriptions,
)
from tests.pipeline import wait_for_count
from tests.reference import at, ev, load
from tests.reference import metrics as expected
from tests.support import ADMIN_KEY, INGEST_KEY, READ_KEY, ServiceProcess, auth, wait_until

D1, D10 = date(2023, 3, 1), date(2023, 3, 10)
MARCH = DateRange(D1, D10)
AFTER_MARCH_10 = datetime(2023, 3, 11, 1, 0, tzinfo=UTC)
NAMES = [m.name for m in METRICS]


def runner_for(clickhouse: ClickHouse, now: datetime = AFTER_MARCH_10, **settings: object) -> EtlRunner:
    return EtlRunner(clickhouse, EtlSettings(schedule_enabled=False, **settings), ManualClock(now))


async def test_activity_metrics(clickhouse: ClickHouse) -> None:
    await load(clickhouse, activity())
    await runner_for(clickhouse).run(MARCH)
    values = await snapshot_values(clickhouse)

    assert series(values, "dau", D1, D10) == [2, 2, 0, 0, 2, 1, 0, 1, 1, 0]
    assert series(values, "wau", D1, D10) == [2, 2, 2, 2, 4, 5, 5, 5, 5, 5]
    assert series(values, "mau", D1, D10) == [3, 3, 2, 2, 4, 5, 5, 5, 5, 5]  # `old` drops out on 03-03
    assert series(values, "new_users", D1, D10) == [2, 0, 0, 0, 1, 1, 0, 0, 0, 0]
    assert series(values, "events", D1, D10) == [3, 5, 0, 0, 2, 1, 0, 1, 1, 0]  # the retried copy once
    assert series(values, "revenue", D1, D10)[:3] == [10.0, 24.99, 0.0]
    assert series(values, "arpu", D1, D10)[:3] == [5.0, 12.5, 0.0]  # 24.99 / 2 = 12.495 rounds half up
    assert values[(date(2023, 3, 5), "stickiness")] == 0.5
    assert values == expected(activity(), D1, D10)


async def test_subscription_metrics(clickhouse: ClickHouse) -> None:
    await load(clickhouse, subscriptions())
    await runner_for(clickhouse).run(MARCH)
    values = await snapshot_values(clickhouse)

    assert series(values, "mrr", D1, D10) == [15, 25, 35, 35, 65, 45, 15, 30, 40, 48.33]
    assert series(values, "active_subscriptions", D1, D10) == [2, 3, 3, 3, 4, 3, 2, 3, 3, 4]
    assert series(values, "churned_subscriptions", D1, D10) == [0, 0, 0, 0, 0, 1, 1, 0, 0, 0]
    assert values == expected(subscriptions(), D1, D10)


@pytest.mark.parametrize("seed", [1, 2])
async def test_metrics_match_a_plain_python_oracle(clickhouse: ClickHouse, seed: int) -> None:
    events = random_events(seed)
    await load(clickhouse, events[:200])
    await load(clickhouse, events[200:])
    period = DateRange(date(2023, 2, 20), date(2023, 3, 12))
    await runner_for(clickhouse, datetime(2023, 3, 20, tzinfo=UTC)).run(period)
    assert await snapshot_values(clickhouse) == expected(events, period.start, period.end)


async def test_a_run_is_one_part_and_reruns_and_backfills_leave_identical_snapshots(
    clickhouse: ClickHouse,
) -> None:
    await load(clickhouse, activity() + subscriptions())
    runner = runner_for(clickhouse)
    first = await runner.run(MARCH)
    parts = await clickhouse.query(
        "SELECT count(), sum(rows) FROM system.parts"
        " WHERE database = {db:String} AND table = {t:String} AND active",
        {"db": clickhouse.database, "t": SNAPSHOTS_TABLE},
    )
    assert parts == [(1, 10 * len(METRICS))]  # one insert block, one part: visible all at once
    assert first.days == days(D1, D10) and first.metrics == NAMES and first.rows == 10 * len(METRICS)
    baseline = await snapshot_values(clickhouse)

    await runner.run(MARCH)
    assert await snapshot_values(clickhouse) == baseline
    day_runs = [await runner.run(DateRange(day, day)) for day in days(D1, D10)]
    assert await snapshot_values(clickhouse) == baseline
    assert await snapshot_runs(clickhouse) == {str(r.run_id) for r in day_runs}  # each day replaced whole

    await clickhouse.command(f"TRUNCATE TABLE {SNAPSHOTS_TABLE}")
    backfill = await runner.catch_up()
    assert backfill is not None and backfill.days == days(date(2023, 2, 1), D10)  # from the first event on
    assert {k: v for k, v in (await snapshot_values(clickhouse)).items() if k[0] >= D1} == baseline


async def test_catch_up_fills_only_missing_days_within_the_window(clickhouse: ClickHouse) -> None:
    await load(clickhouse, [ev("page_view", f"u{n}", f"2023-03-{n:02d} 12:00") for n in range(1, 11)])
    runner = runner_for(clickhouse, backfill_days=3)
    assert (await runner.catch_up()).days == days(date(2023, 3, 8), D10)  # at most 3 days back
    assert await runner.catch_up() is None  # nothing missing now

    runner = runner_for(clickhouse, backfill_days=90)
    await runner.run(DateRange(D1, date(2023, 3, 4)))  # a gap: 03-05 .. 03-07 missing
    assert (await runner.catch_up()).days == days(date(2023, 3, 5), date(2023, 3, 7))
    # The nightly job's call: yesterday, and the ETL_RECOMPUTE_DAYS before it (late merges settle).
    assert (await runner.catch_up(rerun_yesterday=True)).days == days(date(2023, 3, 3), D10)
    runner = runner_for(clickhouse, backfill_days=90, recompute_days=0)
    assert (await runner.catch_up(rerun_yesterday=True)).days == [D10]

    extra = Metric(
        "page_views",
        "page_view events",
        "events",
        "SELECT toDate(timestamp) AS day, count() FROM $events"
        " WHERE event = 'page_view' AND $in_range GROUP BY day",
    )
    wider = EtlRunner(clickhouse, runner.settings, ManualClock(AFTER_MARCH_10), (*METRICS, extra))
    assert (await wider.catch_up()).days == days(D1, D10)  # a new metric makes every day incomplete
    assert series(await snapshot_values(clickhouse), "page_views", D1, D10) == [1.0] * 10

    empty = runner_for(clickhouse, datetime(2023, 2, 1, tzinfo=UTC))  # before the first event
    assert await empty.catch_up() is None


async def test_scheduler_runs_the_day_that_just_ended(clickhouse: ClickHouse) -> None:
    trigger = nightly_trigger()
    assert trigger.get_next_fire_time(None, at("2023-03-07 15:30")) == at("2023-03-08 00:00")
    assert trigger.get_next_fire_time(None, at("2023-03-08 00:00:01")) == at("2023-03-09 00:00")

    await load(
        clickhouse, [ev("page_view", "a", "2023-03-06 10:00"), ev("page_view", "b", "2023-03-07 23:59:59")]
    )
    clock = ManualClock(at("2023-03-08 00:00:00.002"))  # what the clock says when the job fires
    runner = EtlRunner(clickhouse, EtlSettings(backfill_days=0, recompute_days=0), clock)
    scheduler = EtlScheduler(runner, runner.settings)
    scheduler.start()
    try:
        job = scheduler.nightly_job
        assert job is not None and job.next_run_time > datetime.now(UTC)
        job.modify(next_run_time=datetime.now(UTC))  # due now: APScheduler itself fires it
        scheduler.scheduler.wakeup()
        await wait_until(lambda: runner.last_run is not None)
        assert runner.last_run is not None and runner.last_run.days == [date(2023, 3, 7)]
        values = await snapshot_values(clickhouse)
        assert values[(date(2023, 3, 7), "dau")] == 1.0 and values[(date(2023, 3, 7), "wau")] == 2.0
        await wait_until(
            lambda: scheduler.next_run() is not None and scheduler.next_run() > datetime.now(UTC)
        )
        assert scheduler.next_run() == nightly_trigger().get_next_fire_time(None, datetime.now(UTC))
        assert scheduler.health()["last_error"] is None
    finally:
        await scheduler.stop()
    assert not scheduler.scheduler.running


async def test_scheduler_catches_up_at_start(clickhouse: ClickHouse) -> None:
    await load(clickhouse, [ev("page_view", "a", f"2023-03-0{n} 10:00") for n in (1, 2, 3)])
    runner = EtlRunner(clickhouse, EtlSettings(), ManualClock(at("2023-03-04 09:00")))
    scheduler = EtlScheduler(runner, runner.settings)
    scheduler.start()
    try:
        await wait_until(lambda: runner.last_run is not None)
        assert runner.last_run is not None and runner.last_run.days == days(D1, date(2023, 3, 3))
    finally:
        await scheduler.stop()


async def test_overview_compares_the_latest_day_with_the_day_before(clickhouse: ClickHouse) -> None:
    assert (await build_overview(clickhouse, NAMES, None)).date is None
    await load(clickhouse, activity())
    await runner_for(clickhouse).run(DateRange(D1, date(2023, 3, 2)))
    overview = await build_overview(clickhouse, NAMES, 12)
    assert overview.date == date(2023, 3, 2) and overview.active_users_now == 12
    assert overview.metrics["events"].model_dump() == {"value": 5.0, "previous": 3.0, "change_pct": 66.7}
    assert overview.metrics["revenue"].change_pct == 149.9
    assert change_pct(0.0, 0.0) == 0.0 and change_pct(1.0, 0.0) is None and change_pct(46, 51) == -9.8


@pytest.mark.parametrize(
    "body",
    [
        {"date": "2023-03-01", "start_date": "2023-03-01", "end_date": "2023-03-02"},
        {"start_date": "2023-03-01"},
        {"start_date": "2023-03-05", "end_date": "2023-03-01"},
        {"start_date": "2022-01-01", "end_date": "2023-03-01"},
        {"date": "2023-03-11"},
    ],
)
def test_run_request_checks(body: dict[str, str]) -> None:
    with pytest.raises(InvalidRequest):
        requested_days(RunRequest.model_validate(body), D10, 366)


def test_run_request_defaults_to_yesterday() -> None:
    assert requested_days(None, D10, 366) == DateRange(D10, D10)
    assert requested_days(RunRequest(), D10, 366) == DateRange(D10, D10)
    assert requested_days(RunRequest(date=D1), D10, 366) == DateRange(D1, D1)


def test_etl_run_needs_an_admin_key_and_valid_days(system: ServiceProcess) -> None:
    run = f"{system.url}/api/v1/analytics/etl/run"
    body = {"start_date": "2023-03-01", "end_date": "2023-03-02"}
    assert httpx.post(run, json=body, timeout=30).status_code == 401
    for key in (READ_KEY, INGEST_KEY):
        assert httpx.post(run, json=body, headers=auth(key), timeout=30).status_code == 403
    tomorrow = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
    for bad in (
        {"date": "2023-02-30"},
        {"start_date": "2023-03-05", "end_date": "2023-03-01"},
        {"start_date": "2020-01-01", "end_date": "2023-03-01"},
        {"date": tomorrow},
        {"day": "x"},
    ):
        response = httpx.post(run, json=bad, headers=auth(ADMIN_KEY), timeout=30)
        assert response.status_code == 422, response.text
        assert response.json()["message"]

    default = httpx.post(run, headers=auth(ADMIN_KEY), timeout=60)  # no body: yesterday (UTC)
    assert default.status_code == 200, default.text
    assert default.json()["days"] == [(datetime.now(UTC).date() - timedelta(days=1)).isoformat()]
    assert default.json()["metrics"] == NAMES and uuid.UUID(default.json()["run_id"])
    assert httpx.post(run, json=body, headers=auth(ADMIN_KEY), timeout=60).json()["rows"] == 2 * len(NAMES)


def test_run_then_read_series_list_and_overview(system: ServiceProcess) -> None:
    events = [e.posted() for e in activity()]  # with the retried copy
    with system.client(INGEST_KEY) as client:
        assert client.post("/api/v1/events", json={"events": events}).status_code == 202
    assert wait_for_count(system.url, 8, start="2023-03-01", end="2023-03-02")["events"] == 8
    with system.client(ADMIN_KEY, timeout=60) as client:
        response = client.post(
            "/api/v1/analytics/etl/run", json={"start_date": "2023-03-01", "end_date": "2023-03-02"}
        )
        assert response.status_code == 200 and response.json()["days"] == ["2023-03-01", "2023-03-02"]

    with system.client(READ_KEY) as client:
        listed = client.get("/api/v1/analytics/metrics").json()["metrics"]
        assert [m["name"] for m in listed] == NAMES and all(m["description"] for m in listed)
        dau = client.get(
            "/api/v1/analytics/metrics/dau", params={"start_date": "2023-02-28", "end_date": "2023-03-05"}
        )
        assert dau.json() == {
            "metric": "dau",
            "points": [{"date": "2023-03-01", "value": 2.0}, {"date": "2023-03-02", "value": 2.0}],
        }
        assert client.get("/api/v1/analytics/metrics/nope").status_code == 404
        backwards = {"start_date": "2023-03-05", "end_date": "2023-03-01"}
        assert client.get("/api/v1/analytics/metrics/dau", params=backwards).status_code == 422
        overview = client.get("/api/v1/analytics/overview").json()
        assert overview["date"] == "2023-03-02" and overview["metrics"]["events"] == {
            "value": 5.0,
            "previous": 3.0,
            "change_pct": 66.7,
        }
        assert overview["active_users_now"] is None or isinstance(overview["active_users_now"], int)
    for path in ("/overview", "/metrics", "/metrics/dau"):
        assert httpx.get(f"{system.url}/api/v1/analytics{path}", timeout=30).status_code == 401
