"""The one plain-Python oracle: the README's definitions of funnels, cohorts and daily metrics written
out literally, slow on purpose (search over chains, not the service's algorithms), over one event model
that the tests also load into ClickHouse or post to the API. Duplicates collapse by the table's rule."""

from __future__ import annotations

import dataclasses
import math
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from fractions import Fraction
from functools import cache
from typing import Any

import orjson

from services.stream.persons import load_in_bulk
from shared.clickhouse import ClickHouse
from shared.contracts.events import StoredEvent
from shared.contracts.storage import (
    DISTINCT_IDS_TABLE,
    EVENTS_TABLE,
    LINKS_TABLE,
    OVERRIDES_TABLE,
    PERSON_NUMBERS,
    PERSON_PROPERTIES_INDEX,
    PERSON_PROPERTIES_TABLE,
    PROPERTY_UPDATES_TABLE,
)

TOP_VALUES = 10
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SUBSCRIPTION_EVENTS = ("subscription_created", "subscription_updated", "subscription_cancelled")
CENT = Decimal("0.01")
MICRO = Decimal("0.000001")


@dataclass
class Event:
    event: str
    user_id: str
    timestamp: datetime
    properties: dict[str, Any] = field(default_factory=dict)
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)
    received_at: datetime | None = None
    linked_ids: list[str] = field(default_factory=list)
    source: str = "api"

    @property
    def ms(self) -> int:
        return (self.timestamp - EPOCH) // timedelta(milliseconds=1)

    def row(self) -> dict[str, Any]:
        """The analytics_events row, as the stream loader inserts it."""
        return {
            "event_id": str(self.event_id),
            "event": self.event,
            "user_id": self.user_id,
            "timestamp": clickhouse_time(self.timestamp),
            "received_at": clickhouse_time(self.received_at or self.timestamp),
            "properties": orjson.dumps(self.properties).decode(),
            "source": "api",
        }

    def message(self) -> dict[str, Any]:
        """The event as it travels on the events topic."""
        return {
            "event_id": str(self.event_id),
            "event": self.event,
            "user_id": self.user_id,
            "timestamp": self.timestamp.isoformat(),
            "received_at": (self.received_at or self.timestamp).isoformat(),
            "properties": self.properties,
            "source": self.source,
            "linked_ids": self.linked_ids,
        }

    def posted(self) -> dict[str, Any]:
        """The event as a client posts it to /api/v1/events."""
        return {
            "event": self.event,
            "user_id": self.user_id,
            "timestamp": self.timestamp.isoformat(),
            "properties": self.properties,
            "event_id": str(self.event_id),
        }


async def clear(clickhouse: ClickHouse) -> None:
    """Forget every stored event and person (between examples of a hypothesis test)."""
    tables = (
        EVENTS_TABLE,
        DISTINCT_IDS_TABLE,
        LINKS_TABLE,
        OVERRIDES_TABLE,
        PROPERTY_UPDATES_TABLE,
        PERSON_PROPERTIES_TABLE,
        PERSON_PROPERTIES_INDEX,
    )
    for table in tables:
        await clickhouse.command(f"TRUNCATE TABLE {table}")
    await clickhouse.command(f"SYSTEM RELOAD DICTIONARY {clickhouse.database}.{PERSON_NUMBERS}")


def clickhouse_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def at(text: str) -> datetime:
    """'2023-03-01 10:00[:00[.000]]' as a UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def ev(event: str, user: str, when: str | datetime, **properties: Any) -> Event:
    return Event(event, user, at(when) if isinstance(when, str) else when, properties)


async def load(clickhouse: ClickHouse, events: Iterable[Event]) -> None:
    """Store events as the stream loader stores a batch (their distinct ids numbered in bulk), with
    their links and property updates, and bring the persons up to date."""
    stored = [StoredEvent.model_validate(e.message()) for e in events]
    if stored:
        await load_in_bulk(clickhouse, stored)


def received(e: Event) -> datetime:
    return e.received_at or e.timestamp


def deduplicated(events: Iterable[Event]) -> list[Event]:
    """The table's rule: one event per (event, user_id, event_id), the latest received_at winning
    (ReplacingMergeTree(received_at) read with FINAL; of copies received at the same moment, the
    last inserted)."""
    kept: dict[tuple[str, str, uuid.UUID], Event] = {}
    for e in events:
        key = (e.event, e.user_id, e.event_id)
        if key not in kept or received(e) >= received(kept[key]):
            kept[key] = e
    return list(kept.values())


# --- persons ----------------------------------------------------------------------------------------


def person_keys(events: Iterable[Event]) -> dict[str, str]:
    """Every distinct id's person key, as the README defines it: each id's outgoing link is the earliest
    (by timestamp, then event_id, then target id and event name) link from it; the key is where
    following outgoing links ends, or the smallest id of the cycle it runs into. A link's time is its
    event's (the copy received last)."""
    copies: dict[tuple[str, str, str, uuid.UUID], Event] = {}
    for e in events:
        for linked in e.linked_ids:
            identity = (linked, e.user_id, e.event, e.event_id)
            if identity not in copies or received(e) >= received(copies[identity]):
                copies[identity] = e
    outgoing: dict[str, tuple[int, uuid.UUID, str, str]] = {}
    for (linked, to, event, event_id), e in copies.items():
        candidate = (e.ms, event_id, to, event)  # stored to the millisecond; two events may share an id
        if linked not in outgoing or candidate < outgoing[linked]:
            outgoing[linked] = candidate
    ids = {e.user_id for e in events} | {identity[0] for identity in copies}

    def key(distinct_id: str) -> str:
        path: list[str] = []
        while distinct_id in outgoing and distinct_id not in path:
            path.append(distinct_id)
            distinct_id = outgoing[distinct_id][2]
        return min(path[path.index(distinct_id) :]) if distinct_id in path else distinct_id

    return {distinct_id: key(distinct_id) for distinct_id in ids}


def by_person(events: Iterable[Event]) -> list[Event]:
    """The deduplicated events, each under its person's key instead of its distinct id."""
    events = list(events)
    keys = person_keys(events)
    return [dataclasses.replace(e, user_id=keys[e.user_id]) for e in deduplicated(events)]


# --- property filters -------------------------------------------------------------------------------


def kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "string" if isinstance(value, str) else "other"


def same(prop: Any, value: Any) -> bool:
    """Equal within one JSON kind; numbers compare as floats."""
    if kind(prop) != kind(value) or kind(value) not in ("bool", "number", "string"):
        return False
    return float(prop) == float(value) if kind(value) == "number" else prop == value


def passes(properties: dict[str, Any], flt: dict[str, Any]) -> bool:
    op, value = flt["op"], flt.get("value")
    present = flt["property"] in properties
    prop = properties.get(flt["property"])
    if op == "is_set":
        return present and prop is not None
    if op == "eq":
        return present and same(prop, value)
    if op == "neq":
        return not (present and same(prop, value))
    if op == "in":
        return present and any(same(prop, v) for v in value)
    if op == "contains":
        return kind(prop) == "string" and value in prop
    if kind(prop) != "number":
        return False
    compare = {"gt": float.__gt__, "gte": float.__ge__, "lt": float.__lt__, "lte": float.__le__}[op]
    return compare(float(prop), float(value))


def step_list(request: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    steps = [(s, []) if isinstance(s, str) else (s["event"], s.get("filters", [])) for s in request["steps"]]
    return [(name, filters + request.get("filters", [])) for name, filters in steps]


def matches(e: Event, step: tuple[str, list[dict[str, Any]]]) -> bool:
    return e.event == step[0] and all(passes(e.properties, f) for f in step[1])


# --- funnels ----------------------------------------------------------------------------------------


def ordered_level(events: list[Event], steps: list[Any], window: int, strict: bool) -> int:
    """The longest chain step1 -> ... -> stepk of events with strictly increasing times, all within
    `window` ms of the first; when strict, each next event is at the user's next matching time."""
    relevant = [e for e in events if any(matches(e, s) for s in steps)]
    times = sorted({e.ms for e in relevant})

    @cache
    def longest(start: int, last: int, done: int) -> int:
        if done == len(steps):
            return done
        later = [t for t in times if t > last]
        allowed = later[:1] if strict else later
        return max(
            [done]
            + [
                longest(start, e.ms, done + 1)
                for e in relevant
                if e.ms in allowed and e.ms - start <= window and matches(e, steps[done])
            ]
        )

    return max([0] + [longest(e.ms, e.ms, 1) for e in relevant if matches(e, steps[0])])


def unordered_level(events: list[Event], steps: list[Any], window: int) -> int:
    """The most leading steps that all have a matching event inside one window [s, s + window]."""
    best = 0
    for s in {e.ms for e in events}:
        inside = [e for e in events if s <= e.ms <= s + window]
        level = 0
        while level < len(steps) and any(matches(e, steps[level]) for e in inside):
            level += 1
        best = max(best, level)
    return best


def breakdown_key(properties: dict[str, Any], name: str) -> tuple[bool, str]:
    value = properties.get(name)
    if value is None:
        return (True, "")
    return (False, value if isinstance(value, str) else orjson.dumps(value).decode())


def percent(part: int, whole: int) -> float:
    """part / whole x 100, rounded half up to 2 decimals; 0.0 when whole is 0."""
    if whole == 0:
        return 0.0
    return float(Fraction(math.floor(Fraction(part * 10000, whole) + Fraction(1, 2)), 100))


def funnel_of(names: list[str], levels: list[int]) -> dict[str, Any]:
    counts = [sum(1 for level in levels if level >= k) for k in range(1, len(names) + 1)]
    steps = [
        {
            "step": name,
            "count": counts[k],
            "conversion_rate": percent(counts[k], counts[0]),
            "drop_off": 0 if k == 0 else counts[k - 1] - counts[k],
        }
        for k, name in enumerate(names)
    ]
    return {"funnel": steps, "total_entries": counts[0], "overall_conversion": percent(counts[-1], counts[0])}


def funnel(events: Iterable[Event], request: dict[str, Any]) -> dict[str, Any]:
    """The funnel response for `request` (the API's JSON body) over `events`."""
    start = datetime.combine(date.fromisoformat(request["start_date"]), datetime.min.time(), tzinfo=UTC)
    end = datetime.combine(date.fromisoformat(request["end_date"]), datetime.min.time(), tzinfo=UTC)
    in_range = [e for e in by_person(events) if start <= e.timestamp < end + timedelta(days=1)]
    steps = step_list(request)
    window = request.get("window_seconds", 14 * 86400) * 1000
    mode = request.get("mode", "ordered")
    levels: dict[str, int] = {}
    keys: dict[str, tuple[bool, str]] = {}
    for user in sorted({e.user_id for e in in_range}):
        mine = [e for e in in_range if e.user_id == user]
        if mode == "unordered":
            levels[user] = unordered_level(mine, steps, window)
        else:
            levels[user] = ordered_level(mine, steps, window, strict=mode == "strict")
        firsts = [e for e in mine if matches(e, steps[0])]
        if firsts and request.get("breakdown"):
            earliest = [e for e in firsts if e.ms == min(f.ms for f in firsts)]
            keys[user] = min(breakdown_key(e.properties, request["breakdown"]) for e in earliest)
    names = [name for name, _ in steps]
    response = {**funnel_of(names, list(levels.values())), "breakdown": None}
    if request.get("breakdown"):
        response["breakdown"] = breakdown(names, levels, keys)
    return response


def breakdown(
    names: list[str], levels: dict[str, int], keys: dict[str, tuple[bool, str]]
) -> list[dict[str, Any]]:
    entries: dict[tuple[bool, str], int] = {}
    for key in keys.values():
        entries[key] = entries.get(key, 0) + 1
    ranked = sorted(entries, key=lambda k: (-entries[k], k))
    top, rest = ranked[:TOP_VALUES], set(ranked[TOP_VALUES:])
    result = []
    for key in top:
        users = [levels[u] for u, k in keys.items() if k == key]
        result.append({**funnel_of(names, users), "value": None if key[0] else key[1], "other": False})
    if rest:
        users = [levels[u] for u, k in keys.items() if k in rest]
        result.append({**funnel_of(names, users), "value": "Other", "other": True})
    return result


# --- cohorts ----------------------------------------------------------------------------------------


def period_of(day: date, period_type: str) -> date:
    if period_type == "daily":
        return day
    if period_type == "weekly":
        while day.isoweekday() != 1:
            day -= timedelta(days=1)
        return day
    return date(day.year, day.month, 1)


def previous_period(start: date, period_type: str) -> date:
    return period_of(start - timedelta(days=1), period_type)


def period_label(start: date, period_type: str) -> str:
    if period_type == "weekly":
        return start.strftime("%G-W%V")
    return start.strftime("%Y-%m") if period_type == "monthly" else start.isoformat()


def cohorts(events: Iterable[Event], params: dict[str, Any]) -> dict[str, Any]:
    """The cohort response for the API's query parameters over `events`."""
    period_type, count = params.get("period_type", "weekly"), params.get("periods", 8)
    end = date.fromisoformat(params["end_date"])
    starts = [period_of(end, period_type)]
    while len(starts) < count:
        starts.insert(0, previous_period(starts[0], period_type))
    known = [e for e in by_person(events) if e.timestamp.date() <= end]
    start_event, return_event = params.get("start_event") or None, params.get("return_event") or None
    members: dict[date, set[str]] = {s: set() for s in starts}
    for user in {e.user_id for e in known}:
        begun = [e.timestamp for e in known if e.user_id == user and start_event in (None, e.event)]
        if begun and period_of(min(begun).date(), period_type) in members:
            members[period_of(min(begun).date(), period_type)].add(user)
    returns = [e for e in known if return_event in (None, e.event)]
    returned = {(e.user_id, period_of(e.timestamp.date(), period_type)) for e in returns}
    result = []
    for i, start in enumerate(starts):
        users = members[start]
        data = []
        for k in range(count - i):
            n = sum(1 for u in users if (u, starts[i + k]) in returned)
            data.append({"period": k, "percentage": percent(n, len(users)), "count": n})
        result.append({"cohort_date": period_label(start, period_type), "users": len(users), "data": data})
    return {"cohorts": result}


# --- daily metrics ----------------------------------------------------------------------------------


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


def metrics_of_day(events: list[Event], day: date) -> dict[str, float]:
    """Every daily metric for one day, over deduplicated events."""
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


def metrics(events: Iterable[Event], start: date, end: date) -> dict[tuple[date, str], float]:
    """(day, metric) -> value over [start, end]."""
    unique = by_person(events)
    days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
    return {(day, name): float(value) for day in days for name, value in metrics_of_day(unique, day).items()}
