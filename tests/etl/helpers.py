"""Helpers for the ETL tests: crafted events, a controllable clock and reading snapshots back (the
oracle of every metric is in tests/reference.py)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from shared.clickhouse import ClickHouse
from shared.contracts.storage import SNAPSHOTS_TABLE
from tests.reference import Event, at, ev


@dataclass
class ManualClock:
    """A clock the test sets; each reading moves it on by `step` so runs get distinct computed_at."""

    now: datetime
    step: timedelta = timedelta(milliseconds=1)

    def __call__(self) -> datetime:
        current = self.now
        self.now += self.step
        return current


def sub(
    kind: str, user: str, when: str, subscription_id: str, amount: float | None = None, **extra: Any
) -> Event:
    """A subscription_<kind> event."""
    properties: dict[str, Any] = {"subscription_id": subscription_id, **extra}
    if amount is not None:
        properties["amount"] = amount
    return Event(f"subscription_{kind}", user, at(when), properties)


async def snapshot_values(clickhouse: ClickHouse) -> dict[tuple[date, str], float]:
    """Every stored (day, metric) -> value, latest run per key."""
    rows = await clickhouse.query(f"SELECT date, metric, value FROM {SNAPSHOTS_TABLE} FINAL")
    return {(day, metric): value for day, metric, value in rows}


async def snapshot_runs(clickhouse: ClickHouse) -> set[str]:
    rows = await clickhouse.query(f"SELECT DISTINCT toString(run_id) FROM {SNAPSHOTS_TABLE} FINAL")
    return {run for (run,) in rows}


def days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


def series(values: dict[tuple[date, str], float], metric: str, start: date, end: date) -> list[float]:
    return [values[(day, metric)] for day in days(start, end)]


# --- crafted data ------------------------------------------------------------------------------


def activity() -> list[Event]:
    """Users over 2023-03-01..10; `old` first appeared in February, u3/u4 straddle a midnight."""
    purchase = ev("purchase", "u2", "2023-03-01 12:00", amount=0.01)
    late_copy = Event(
        purchase.event,
        purchase.user_id,
        purchase.timestamp,
        purchase.properties,
        purchase.event_id,
        received_at=at("2023-03-01 12:05"),
    )  # a retried POST: same event_id
    return [
        ev("signup", "old", "2023-02-01 09:00"),
        ev("page_view", "old", "2023-03-05 10:00"),
        ev("signup", "u1", "2023-03-01 08:00"),
        ev("purchase", "u1", "2023-03-01 09:00", amount=9.99),
        purchase,
        late_copy,
        ev("page_view", "u1", "2023-03-02 08:00"),
        ev("page_view", "u2", "2023-03-02 10:00"),
        ev("purchase", "u2", "2023-03-02 11:00", amount=19.99),
        ev("purchase", "u2", "2023-03-02 11:30", amount=5),
        ev("purchase", "u1", "2023-03-02 12:00"),  # no amount: counts 0
        ev("page_view", "u3", "2023-03-05 23:59:59.999"),
        ev("page_view", "u4", "2023-03-06 00:00:00.000"),
        ev("page_view", "u1", "2023-03-08 08:00"),
        ev("page_view", "u2", "2023-03-09 08:00"),
    ]


def subscriptions() -> list[Event]:
    """Upgrades, yearly plans, cancellations and a re-subscription (expectations in the test)."""
    return [
        sub("created", "p3", "2023-02-15 10:00", "s3", 5),  # before the range; interval defaults to month
        sub("created", "p1", "2023-03-01 10:00", "s1", 10, interval="month"),
        sub("created", "p2", "2023-03-02 10:00", "s2", 120, interval="year"),
        sub("updated", "p1", "2023-03-03 10:00", "s1", 20, interval="month"),  # upgrade
        sub("created", "p4", "2023-03-04 10:00", "s4", 50),
        sub("cancelled", "p4", "2023-03-04 12:00", "s4"),  # never active at the end of a day
        sub("created", "p5", "2023-03-05 10:00", "s5", 30),
        sub("cancelled", "p1", "2023-03-06 10:00", "s1"),
        sub("cancelled", "p5", "2023-03-07 00:00:00.000", "s5"),  # exactly midnight: counts for the 7th
        sub("cancelled", "px", "2023-03-07 10:00", "never-created"),
        sub("created", "p1", "2023-03-08 10:00", "s1", 15),  # re-subscribes
        sub("updated", "p2", "2023-03-09 10:00", "s2", 240, interval="year"),
        sub("created", "p7", "2023-03-10 10:00", "s7", 100, interval="year"),
        sub("created", "p8", "2023-03-11 00:00:00.000", "s8", 99),  # the day after the range
    ]


def random_events(seed: int) -> list[Event]:
    """Forty days of random activity, purchases, subscription changes and duplicated deliveries."""
    rng = random.Random(seed)
    start = datetime(2023, 2, 1, tzinfo=UTC)
    events: list[Event] = []
    for _ in range(400):
        day = rng.randrange(40)
        moment = start + timedelta(days=day, milliseconds=rng.randrange(86_400_000))
        user = f"user-{rng.randrange(1 + day * 3 // 4)}"  # new users keep arriving (at most 30)
        if rng.random() < 0.2:
            events.append(Event("purchase", user, moment, {"amount": rng.randrange(1, 10_000) / 100}))
        elif rng.random() < 0.25:
            kind = rng.choice(["created", "updated", "cancelled"])
            properties = {"subscription_id": f"s{rng.randrange(8)}", "amount": rng.randrange(1, 500)}
            if rng.random() < 0.4:
                properties["interval"] = rng.choice(["month", "year"])
            events.append(Event(f"subscription_{kind}", user, moment, properties))
        else:
            events.append(Event("page_view", user, moment))
    copies = [
        Event(e.event, e.user_id, e.timestamp, e.properties, e.event_id, e.timestamp + timedelta(seconds=5))
        for e in rng.sample(events, 30)
    ]
    return events + copies
