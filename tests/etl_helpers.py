"""Helpers for the ETL tests: crafted events straight into ClickHouse, a controllable clock, reading
snapshots back, and an independent plain-Python oracle of every metric."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from typing import Any

import orjson

from shared.clickhouse import ClickHouse
from shared.constants import EVENTS_TABLE, SNAPSHOTS_TABLE

SUBSCRIPTION_EVENTS = ("subscription_created", "subscription_updated", "subscription_cancelled")
CENT = Decimal("0.01")
MICRO = Decimal("0.000001")


@dataclass
class ManualClock:
    """A clock the test sets; each reading moves it on by `step` so runs get distinct computed_at."""

    now: datetime
    step: timedelta = timedelta(milliseconds=1)

    def __call__(self) -> datetime:
        current = self.now
        self.now += self.step
        return current


@dataclass
class Event:
    event: str
    user_id: str
    timestamp: datetime
    properties: dict[str, Any] = field(default_factory=dict)
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)
    received_at: datetime | None = None

    def posted(self) -> dict[str, Any]:
        """The event as a client posts it to /api/v1/events."""
        return {
            "event": self.event,
            "user_id": self.user_id,
            "timestamp": self.timestamp.isoformat(),
            "properties": self.properties,
            "event_id": str(self.event_id),
        }

    def row(self) -> dict[str, Any]:
        received = self.received_at or self.timestamp
        return {
            "event_id": str(self.event_id),
            "event": self.event,
            "user_id": self.user_id,
            "timestamp": clickhouse_time(self.timestamp),
            "received_at": clickhouse_time(received),
            "properties": orjson.dumps(self.properties).decode(),
            "source": "api",
        }


def at(text: str) -> datetime:
    """'2023-03-01 10:00[:00[.000]]' as a UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def clickhouse_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def ev(event: str, user: str, when: str, **properties: Any) -> Event:
    return Event(event, user, at(when), properties)


def sub(
    kind: str, user: str, when: str, subscription_id: str, amount: float | None = None, **extra: Any
) -> Event:
    """A subscription_<kind> event."""
    properties: dict[str, Any] = {"subscription_id": subscription_id, **extra}
    if amount is not None:
        properties["amount"] = amount
    return Event(f"subscription_{kind}", user, at(when), properties)


async def load(clickhouse: ClickHouse, events: Iterable[Event]) -> None:
    """Insert the events as one JSONEachRow block, the way the stream loader does."""
    block = b"".join(orjson.dumps(e.row()) + b"\n" for e in events)
    await clickhouse.insert_json_rows(EVENTS_TABLE, block)


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


async def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


# --- the oracle: the definitions, written naively in Python --------------------------------


def deduplicated(events: Iterable[Event]) -> list[Event]:
    """One event per event_id: the copy received last."""
    latest: dict[uuid.UUID, Event] = {}
    for e in events:
        kept = latest.get(e.event_id)
        if kept is None or (e.received_at or e.timestamp) >= (kept.received_at or kept.timestamp):
            latest[e.event_id] = e
    return list(latest.values())


def half_up(value: Decimal, step: Decimal = CENT) -> float:
    return float(value.quantize(step, ROUND_HALF_UP))


def amount(e: Event) -> Decimal:
    return Decimal(str(e.properties.get("amount", 0)))


def users_between(events: list[Event], first: date, last: date) -> set[str]:
    return {e.user_id for e in events if first <= e.timestamp.date() <= last}


def subscription_states(events: list[Event], day: date) -> dict[str, Event]:
    """Each subscription's latest event before day + 1 (00:00 UTC)."""
    states: dict[str, Event] = {}
    key = lambda e: (e.timestamp, e.received_at or e.timestamp, str(e.event_id))  # noqa: E731
    for e in sorted((e for e in events if e.event in SUBSCRIPTION_EVENTS), key=key):
        if e.timestamp.date() <= day and e.properties.get("subscription_id"):
            states[e.properties["subscription_id"]] = e
    return states


def monthly(e: Event) -> Decimal:
    value = amount(e)
    return (value / 12).quantize(MICRO, ROUND_DOWN) if e.properties.get("interval") == "year" else value


def expected_day(events: list[Event], day: date) -> dict[str, float]:
    """Every metric of the registry for one day."""
    today = [e for e in events if e.timestamp.date() == day]
    dau = users_between(events, day, day)
    mau = users_between(events, day - timedelta(days=29), day)
    first_seen: dict[str, date] = {}
    for e in events:
        first_seen[e.user_id] = min(first_seen.get(e.user_id, e.timestamp.date()), e.timestamp.date())
    revenue = sum((amount(e) for e in today if e.event == "purchase"), Decimal(0))
    active = [s for s in subscription_states(events, day).values() if s.event != "subscription_cancelled"]
    before = subscription_states(events, day - timedelta(days=1))
    now = subscription_states(events, day)
    churned = [
        s
        for s, e in now.items()
        if e.event == "subscription_cancelled" and s in before and before[s].event != "subscription_cancelled"
    ]
    return {
        "dau": len(dau),
        "wau": len(users_between(events, day - timedelta(days=6), day)),
        "mau": len(mau),
        "new_users": sum(1 for seen in first_seen.values() if seen == day),
        "events": len(today),
        "revenue": half_up(revenue),
        "arpu": half_up((revenue / len(dau)).quantize(MICRO, ROUND_DOWN)) if dau else 0.0,
        "stickiness": round(len(dau) / len(mau), 4) if mau else 0.0,
        "mrr": half_up(sum((monthly(s) for s in active), Decimal(0))),
        "active_subscriptions": len(active),
        "churned_subscriptions": len(churned),
    }


def expected(events: Iterable[Event], start: date, end: date) -> dict[tuple[date, str], float]:
    """The oracle's (day, metric) -> value over [start, end]."""
    unique = deduplicated(events)
    return {
        (day, name): float(value)
        for day in days(start, end)
        for name, value in expected_day(unique, day).items()
    }
