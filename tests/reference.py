"""The one plain-Python oracle: the README's definitions of funnels, cohorts and daily metrics written
out literally, slow on purpose (search over chains, not the service's algorithms), over one event model
that the tests also load into ClickHouse or post to the API. Duplicates collapse by the table's rule."""

from __future__ import annotations

import dataclasses
import math
import re
import uuid
from calendar import monthrange
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import re2

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
    person: dict[str, Any] = field(default_factory=dict)  # the person's properties (by_person)

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
    """The deduplicated events, each under its person's key instead of its distinct id, with its
    person's properties."""
    events = list(events)
    keys = person_keys(events)
    unique = deduplicated(events)
    properties = persons_properties(unique, keys)
    return [
        dataclasses.replace(e, user_id=keys[e.user_id], person=properties.get(keys[e.user_id], {}))
        for e in unique
    ]


IDENTIFY_SOURCES = ("api", "segment")


def persons_properties(unique: list[Event], keys: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Each person's properties (README, Persons: person properties): per property, the latest `$set`
    by (timestamp, event_id) over all the person's ids, else the earliest `$set_once`; an identify's
    plain properties are `$set`."""
    latest: dict[tuple[str, str], tuple[tuple[int, str], Any]] = {}
    earliest: dict[tuple[str, str], tuple[tuple[int, str], Any]] = {}
    for e in unique:
        person, order = keys[e.user_id], (e.ms, str(e.event_id))
        sets = []
        if e.event == "$identify" and e.source in IDENTIFY_SOURCES:
            sets.append({k: v for k, v in e.properties.items() if not k.startswith("$")})
        if isinstance(e.properties.get("$set"), dict):
            sets.append(e.properties["$set"])
        for values in sets:
            for name, value in values.items():
                if (person, name) not in latest or order > latest[(person, name)][0]:
                    latest[(person, name)] = (order, value)
        once = e.properties.get("$set_once")
        if isinstance(once, dict):
            for name, value in once.items():
                if (person, name) not in earliest or order < earliest[(person, name)][0]:
                    earliest[(person, name)] = (order, value)
    merged: dict[str, dict[str, Any]] = {}
    for (person, name), (_, value) in [*earliest.items(), *latest.items()]:
        merged.setdefault(person, {})[name] = value
    return merged


# --- property values (README, Definitions: "Property values") ----------------------------------------

ISO_DATE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[T ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]+))?)?(Z|[+-][0-9]{2}:[0-9]{2})?)?"
)


def kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "string" if isinstance(value, str) else "other"


def person_properties(e: Event) -> dict[str, Any]:
    """The properties of the event's person (events from `by_person` carry them)."""
    return e.person


def source_of(flt: dict[str, Any]) -> tuple[str, str]:
    """(source, property): `person.x` without a source names the person's property x."""
    name, source = flt["property"], flt.get("source")
    if source is None and name.startswith("person.") and len(name) > len("person."):
        return "person", name[len("person.") :]
    return source or "event", name


def lookup(e: Event, flt: dict[str, Any]) -> tuple[bool, Any]:
    """(present, value) of the filter's or breakdown's property on the event (or its person)."""
    source, name = source_of(flt)
    properties = e.properties if source == "event" else person_properties(e)
    return name in properties, properties.get(name)


def iso_ms(text: Any) -> int | None:
    """Milliseconds since 1970 of an ISO 8601 date or date-time string as the README defines it."""
    found = ISO_DATE.fullmatch(text) if isinstance(text, str) else None
    if found is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = found.groups()
    offset = 0
    if zone and zone != "Z":
        if int(zone[1:3]) > 23 or int(zone[4:6]) > 59:
            return None
        offset = (1 if zone[0] == "+" else -1) * (int(zone[1:3]) * 60 + int(zone[4:6]))
    try:
        moment = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0))
    except ValueError:
        return None
    base = (moment - datetime(1970, 1, 1)) // timedelta(milliseconds=1)
    return base + int(((fraction or "") + "000")[:3]) - offset * 60000


def same(prop: Any, value: Any) -> bool:
    """Equal within one JSON kind; numbers compare as floats."""
    if kind(prop) != kind(value) or kind(value) not in ("bool", "number", "string"):
        return False
    return float(prop) == float(value) if kind(value) == "number" else prop == value


def regex_found(pattern: str, text: str) -> bool:
    options = re2.Options()
    options.dot_nl = True
    options.log_errors = False
    return re2.compile(pattern, options).search(text) is not None


NEGATIVE = {"neq": "eq", "not_contains": "contains", "not_regex": "regex", "is_not_set": "is_set"}


def passes(e: Event, flt: dict[str, Any]) -> bool:
    op, value = flt["op"], flt.get("value")
    if op in NEGATIVE:
        return not passes(e, {**flt, "op": NEGATIVE[op]})
    present, prop = lookup(e, flt)
    if op == "is_set":
        return present and prop is not None
    if op == "eq":
        return present and same(prop, value)
    if op == "in":
        return present and any(same(prop, v) for v in value)
    if op == "contains":
        return kind(prop) == "string" and value in prop
    if op == "regex":
        return kind(prop) == "string" and regex_found(value, prop)
    if op in ("date_before", "date_after"):
        moment = iso_ms(prop) if kind(prop) == "string" else None
        limit = iso_ms(value)
        return moment is not None and (moment < limit if op == "date_before" else moment > limit)
    if op == "between" and isinstance(value[0], str):
        moment = iso_ms(prop) if kind(prop) == "string" else None
        return moment is not None and iso_ms(value[0]) <= moment <= iso_ms(value[1])
    if kind(prop) != "number":
        return False
    if op == "between":
        return float(value[0]) <= float(prop) <= float(value[1])
    compare = {"gt": float.__gt__, "gte": float.__ge__, "lt": float.__lt__, "lte": float.__le__}[op]
    return compare(float(prop), float(value))


def bucket_of(value: Any) -> tuple[int, Any]:
    """A breakdown bucket: (kind order, value), numbers < strings < booleans < no value."""
    if kind(value) == "number":
        return (0, float(value) + 0.0)
    if kind(value) == "string":
        return (1, value)
    if kind(value) == "bool":
        return (2, value)
    return (3, 0)


def bucket_label(bucket: tuple[int, Any]) -> Any:
    """A bucket's value as typed JSON."""
    order, value = bucket
    if order == 0:
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    return None if order == 3 else value


def breakdown_bucket(e: Event, breakdown: Any) -> tuple[int, Any]:
    spec = {"property": breakdown} if isinstance(breakdown, str) else breakdown
    return bucket_of(lookup(e, spec)[1])


def step_list(request: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    steps = [(s, []) if isinstance(s, str) else (s["event"], s.get("filters", [])) for s in request["steps"]]
    return [(name, filters + request.get("filters", [])) for name, filters in steps]


def matches(e: Event, step: tuple[str, list[dict[str, Any]]]) -> bool:
    return e.event == step[0] and all(passes(e, f) for f in step[1])


def arrival(e: Event) -> tuple[int, int, str]:
    """The order of events (README, Definitions: "Order and ties"): time, then who was received first."""
    return (e.ms, (received(e) - EPOCH) // timedelta(milliseconds=1), str(e.event_id))


# --- funnels ----------------------------------------------------------------------------------------
# README "Funnels", literally: every chain of every person is listed (exponential on purpose), each
# unit's level and conversion chain are picked from that list by the README's rules.

WINDOW_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400}
INTERVAL_PERIODS = {"day": "daily", "week": "weekly", "month": "monthly"}


def from_ms(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


def add_months(moment: datetime, months: int) -> datetime:
    """The same day and clock time `months` calendar months later; the month's last day when the
    month is shorter."""
    index = moment.year * 12 + moment.month - 1 + months
    year, month = index // 12, index % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, monthrange(year, month)[1]))


def window_end(request: dict[str, Any]) -> Callable[[int], int]:
    """The last millisecond a chain whose step-1 event is at `ms` may reach. A month window ends at the
    same local date and clock time in the request's zone (`fold=0`: a repeated autumn time is its first
    instant, a time in the skipped spring hour is read with the offset before the change)."""
    window = request.get("window")
    if window and window["unit"] == "month":
        zone = ZoneInfo(request.get("timezone", "UTC"))

        def month_end(ms: int) -> int:
            wall = from_ms(ms).astimezone(zone).replace(tzinfo=None)
            end = add_months(wall, window["value"]).replace(tzinfo=zone, fold=0)
            return (end.astimezone(UTC) - EPOCH) // timedelta(milliseconds=1)

        return month_end
    seconds = window["value"] * WINDOW_UNIT_SECONDS[window["unit"]] if window else None
    span = (seconds or request.get("window_seconds", 14 * 86400)) * 1000
    return lambda ms: ms + span


def prop_key(e: Event, ref: str | dict[str, Any]) -> tuple[int, Any]:
    """The breakdown bucket of a property reference (`"plan"`, `"person.plan"` or an object)."""
    return breakdown_bucket(e, ref)


def exclusion_list(request: dict[str, Any]) -> list[tuple[tuple[str, list[dict[str, Any]]], int, int]]:
    """(matcher, from_step, to_step) per exclusion; the top-level filters apply to exclusions too."""
    return [
        ((x["event"], x.get("filters", []) + request.get("filters", [])), x["from_step"], x["to_step"])
        for x in request.get("exclusions", [])
    ]


@dataclass(frozen=True)
class Chain:
    """An ordered or strict chain: events[j] is the event of step j + 1."""

    events: tuple[Event, ...]

    @property
    def length(self) -> int:
        return len(self.events)

    @property
    def entry(self) -> int:
        """When the chain starts: its step-1 event."""
        return self.events[0].ms

    def reach(self, step: int) -> int:
        """When the chain reaches step `step` (1-based): its step event."""
        return self.events[step - 1].ms

    def times(self) -> tuple[int, ...]:
        return tuple(e.ms for e in self.events)

    def held(self, refs: list[Any]) -> tuple[Any, ...]:
        return tuple(prop_key(self.events[0], r) for r in refs)


@dataclass(frozen=True)
class Span:
    """What an unordered funnel reaches from one start `entry` (the time of a step event): level j at
    `reaches[j - 1]`, the first time steps 1..j each have their own event (one event, one step) in
    [entry, that time], inside the window. With hold_constant, only the events of one held value."""

    entry: int
    reaches: tuple[int, ...]
    values: tuple[Any, ...]

    @property
    def length(self) -> int:
        return len(self.reaches)

    def reach(self, step: int) -> int:
        return self.entry if step == 1 else self.reaches[step - 1]

    def times(self) -> tuple[int, ...]:
        return self.reaches

    def held(self, refs: list[Any]) -> tuple[Any, ...]:
        return self.values


def chains_of(mine: list[Event], steps: list[Any], request: dict[str, Any]) -> list[Any]:
    """Every chain (of every length) in one person's events, by the mode's rule (unordered: a Span per
    start)."""
    mode, end, held = request.get("mode", "ordered"), window_end(request), request.get("hold_constant", [])
    if mode == "unordered":
        return spans_of(mine, steps, end, held)
    matching = [[e for e in mine if matches(e, step)] for step in steps]
    found: list[Any] = []

    def constant(chain: tuple[Event, ...]) -> bool:
        return all(prop_key(e, r) == prop_key(chain[0], r) for e in chain for r in held)

    times = sorted({e.ms for e in mine if any(matches(e, step) for step in steps)})

    def extend(chain: tuple[Event, ...]) -> None:
        found.append(Chain(chain))
        if len(chain) == len(steps):
            return
        after = chain[-1].ms
        for e in matching[len(chain)]:
            if e.ms <= after or e.ms > end(chain[0].ms) or not constant((*chain, e)):
                continue
            if mode == "strict" and e.ms != min(t for t in times if t > after):
                continue
            extend((*chain, e))

    for first in matching[0]:
        extend((first,))
    return found


def spans_of(mine: list[Event], steps: list[Any], end: Callable[[int], int], held: list[Any]) -> list[Span]:
    """Per held value (one, without hold_constant) and per start among its step events, the Span."""
    stepping = [e for e in mine if any(matches(e, step) for step in steps)]
    groups: dict[tuple[Any, ...], list[Event]] = {}
    for e in stepping:
        groups.setdefault(tuple(prop_key(e, r) for r in held), []).append(e)
    found = []
    for values, group in groups.items():
        for start in sorted({e.ms for e in group}):
            times = sorted({e.ms for e in group if start <= e.ms <= end(start)})
            reaches: list[int] = []
            for t in times:
                inside = [e for e in group if start <= e.ms <= t]
                while len(reaches) < len(steps) and assignable(inside, steps[: len(reaches) + 1]):
                    reaches.append(t)
            if reaches:
                found.append(Span(start, tuple(reaches), values))
    return found


def excluded(chain: Any, mine: list[Event], request: dict[str, Any]) -> bool:
    """An exclusion event strictly between the chain's from_step and to_step events; for a chain that
    reached from_step but not to_step, strictly after its from_step event and no later than the end
    of its window."""
    end = window_end(request)
    for matcher, from_step, to_step in exclusion_list(request):
        if chain.length <= from_step:
            continue
        after = chain.reach(from_step + 1)
        until = chain.reach(to_step + 1) - 1 if chain.length > to_step else end(chain.entry)
        if any(after < x.ms <= until for x in mine if matches(x, matcher)):
            return True
    return False


@dataclass
class Outcome:
    """A unit's level (0: entered, but every chain to its highest step is excluded) and the chains
    tied for its conversion chain."""

    level: int
    tied: list[Any]

    def key_at(self, step: int, ref: Any) -> tuple[int, Any]:
        """The value on the conversion chain's step event: of the tied chains' (simultaneous) events,
        the one received first (README, Definitions: "Order and ties")."""
        return prop_key(min((c.events[step - 1] for c in self.tied), key=arrival), ref)

    def durations(self) -> list[int]:
        chain = self.tied[0]
        return [chain.reach(j) - chain.reach(j - 1) for j in range(2, self.level + 1)]


def outcome(chains: list[Any], mine: list[Event], request: dict[str, Any]) -> Outcome | None:
    """None when the unit has no chain; else its level L (the longest chain, exclusions ignored) when a
    chain reaching L is not excluded, and the conversion chain: of those, the one reaching L first,
    then the one starting last, then each step's event as early as possible, then the smallest held
    values."""
    if not chains:
        return None
    level = max(c.length for c in chains)
    clean = [c for c in chains if c.length == level and not excluded(c, mine, request)]
    if not clean:
        return Outcome(0, [])
    best = min((c.reach(level), -c.entry, c.times()) for c in clean)
    tied = [c for c in clean if (c.reach(level), -c.entry, c.times()) == best]
    held = request.get("hold_constant", [])
    values = min(c.held(held) for c in tied)
    return Outcome(level, [c for c in tied if c.held(held) == values])


def assignable(events: list[Event], steps: list[Any]) -> bool:
    """Whether every step can get a different event matching it (a bipartite matching, by augmenting
    paths)."""
    owner: dict[int, int] = {}  # event index -> step index

    def place(step: int, seen: set[int]) -> bool:
        for i, e in enumerate(events):
            if i not in seen and matches(e, steps[step]):
                seen.add(i)
                if i not in owner or place(owner[i], seen):
                    owner[i] = step
                    return True
        return False

    return all(place(step, set()) for step in range(len(steps)))


def percent(part: int, whole: int) -> float:
    """part / whole x 100, rounded half up to 2 decimals; 0.0 when whole is 0."""
    if whole == 0:
        return 0.0
    return float(Fraction(math.floor(Fraction(part * 10000, whole) + Fraction(1, 2)), 100))


def seconds(ms: Fraction) -> float:
    """Milliseconds as seconds, rounded half up to 3 decimals."""
    return float(Fraction(math.floor(ms + Fraction(1, 2)), 1000))


def mean_and_median(values: list[int]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    ordered, middle = sorted(values), len(values) // 2
    median = Fraction(ordered[middle] + ordered[~middle], 2)
    return seconds(Fraction(sum(values), len(values))), seconds(median)


def funnel_of(names: list[str], outcomes: list[Outcome]) -> dict[str, Any]:
    counts = [sum(1 for o in outcomes if o.level >= k) for k in range(1, len(names) + 1)]
    steps = []
    for k, name in enumerate(names):
        took = [o.durations()[k - 1] for o in outcomes if k > 0 and o.level > k]
        average, median = mean_and_median(took)
        steps.append(
            {
                "step": name,
                "count": counts[k],
                "conversion_rate": percent(counts[k], counts[0]),
                "drop_off": 0 if k == 0 else counts[k - 1] - counts[k],
                "average_conversion_seconds": average,
                "median_conversion_seconds": median,
            }
        )
    return {"funnel": steps, "total_entries": counts[0], "overall_conversion": percent(counts[-1], counts[0])}


def in_range(e: Event, request: dict[str, Any]) -> bool:
    """The event's local date (in the request's zone) is one of the range's days."""
    first, last = date.fromisoformat(request["start_date"]), date.fromisoformat(request["end_date"])
    return first <= local_time(e, request.get("timezone", "UTC")).date() <= last


def funnel_input(events: Iterable[Event], request: dict[str, Any]) -> dict[str, list[Event]]:
    """Each person's deduplicated events inside the range, under the person's key (`by_person`)."""
    inside = [e for e in by_person(events) if in_range(e, request)]
    people = sorted({e.user_id for e in inside})
    return {user: [e for e in inside if e.user_id == user] for user in people}


Unit = tuple[str, Any]  # (person, what else tells the unit apart)


def funnel_units(events: Iterable[Event], request: dict[str, Any], split: str) -> dict[Unit, Outcome]:
    """Outcome per unit: a person (split "person"), a step-1 event ("event": counting totals), a person
    and the local period of the chain's entry ("period"), or a person and a value of the breakdown
    property on a step-1 event ("value": all_events). Units without a chain are left out."""
    steps = step_list(request)
    interval = INTERVAL_PERIODS[request.get("interval", "day")]
    zone = ZoneInfo(request.get("timezone", "UTC"))
    result: dict[Unit, Outcome] = {}
    for person, mine in funnel_input(events, request).items():
        groups: dict[Any, list[Any]] = {}
        for chain in chains_of(mine, steps, request):
            if split == "event":
                tag: Any = chain.events[0].event_id
            elif split == "period":
                tag = period_of(from_ms(chain.entry).astimezone(zone).date(), interval)
            elif split == "value":
                tag = prop_key(chain.events[0], request["breakdown"])
            else:
                tag = None
            groups.setdefault(tag, []).append(chain)
        for tag, chains in groups.items():
            found = outcome(chains, mine, request)
            if found is not None:
                result[(person, tag)] = found
    return result


def entry_split(request: dict[str, Any]) -> str:
    return "event" if request.get("counting", "persons") == "totals" else "person"


def funnel(events: Iterable[Event], request: dict[str, Any]) -> dict[str, Any]:
    """The funnel response for `request` (the API's JSON body) over `events`."""
    events = list(events)
    view = request.get("view", "steps")
    if view == "time_to_convert":
        return time_to_convert(events, request)
    if view == "trends":
        return funnel_trends(events, request)
    names = [name for name, _ in step_list(request)]
    units = funnel_units(events, request, entry_split(request))
    response = {**funnel_of(names, list(units.values())), "breakdown": None}
    if request.get("breakdown"):
        response["breakdown"] = breakdown(names, bucket_keys(events, request, units))
    return response


def bucket_keys(
    events: list[Event], request: dict[str, Any], units: dict[Unit, Outcome]
) -> list[tuple[tuple[int, Any], Outcome]]:
    """(value, outcome) of every unit in a bucket, by the attribution rule."""
    ref, rule = request["breakdown"], request.get("breakdown_attribution", "first_touch")
    if rule == "all_events":
        found = funnel_units(events, request, "value")
        return [(tag, o) for (_, tag), o in found.items() if o.level > 0]
    keyed = []
    first_step = step_list(request)[0]
    people = funnel_input(events, request)
    for (person, tag), o in units.items():
        if o.level == 0:
            continue
        if rule == "last_touch":
            keyed.append((o.key_at(o.level, ref), o))
        elif rule == "step":
            k = request["breakdown_attribution_step"] + 1
            if o.level >= k:
                keyed.append((o.key_at(k, ref), o))
        elif tag is not None:  # counting totals: the entry's own step-1 event
            (first,) = [e for e in people[person] if e.event_id == tag]
            keyed.append((prop_key(first, ref), o))
        else:  # the person's first step-1 event (of simultaneous ones, the first received)
            firsts = [e for e in people[person] if matches(e, first_step)]
            keyed.append((prop_key(min(firsts, key=arrival), ref), o))
    return keyed


def breakdown(names: list[str], keyed: list[tuple[tuple[int, Any], Outcome]]) -> list[dict[str, Any]]:
    entries: dict[tuple[int, Any], int] = {}
    for key, _ in keyed:
        entries[key] = entries.get(key, 0) + 1
    ranked = sorted(entries, key=lambda k: (-entries[k], k))
    top, rest = ranked[:TOP_VALUES], set(ranked[TOP_VALUES:])
    result = []
    for key in top:
        outcomes = [o for k, o in keyed if k == key]
        result.append({**funnel_of(names, outcomes), "value": bucket_label(key), "other": False})
    if rest:
        outcomes = [o for k, o in keyed if k in rest]
        result.append({**funnel_of(names, outcomes), "value": "Other", "other": True})
    return result


def time_to_convert(events: list[Event], request: dict[str, Any]) -> dict[str, Any]:
    """The time from from_step to to_step (0-based) of every entry's conversion chain that reached
    to_step, in `bins` equal bins of whole seconds from the fastest (rounded down) to the slowest
    (rounded up); a time on a boundary belongs to the bin it starts, the slowest to the last bin."""
    last = len(request["steps"]) - 1
    first, to = request.get("from_step") or 0, request.get("to_step", last) or last
    units = funnel_units(events, request, entry_split(request)).values()
    took = [o.tied[0].reach(to + 1) - o.tied[0].reach(first + 1) for o in units if o.level > to]
    average, median = mean_and_median(took)
    bins: list[dict[str, int]] = []
    if took:
        count = request.get("bins", 20)
        low, high = min(took) // 1000, -(-max(took) // 1000)
        width = max(1, -(-(high - low) // count))
        tally = [0] * count
        for ms in took:
            tally[min(count - 1, (ms - low * 1000) // (width * 1000))] += 1
        bins = [
            {"from_seconds": low + i * width, "to_seconds": low + (i + 1) * width, "count": n}
            for i, n in enumerate(tally)
        ]
    return {
        "view": "time_to_convert",
        "from_step": first,
        "to_step": to,
        "converted": len(took),
        "bins": bins,
        "average_seconds": average,
        "median_seconds": median,
    }


def funnel_trends(events: list[Event], request: dict[str, Any]) -> dict[str, Any]:
    """Per local period of the range (every one listed): the entries whose conversion chain starts in
    it and how many of them reached the last step."""
    interval = request.get("interval", "day")
    period_type = INTERVAL_PERIODS[interval]
    zone = request.get("timezone", "UTC")
    first = period_of(date.fromisoformat(request["start_date"]), period_type)
    last = period_of(date.fromisoformat(request["end_date"]), period_type)
    starts = [last]
    while starts[0] > first:
        starts.insert(0, previous_period(starts[0], period_type))
    n = len(request["steps"])
    entered = {s: 0 for s in starts}
    converted = {s: 0 for s in starts}
    units = funnel_units(events, request, "event" if entry_split(request) == "event" else "period")
    people = funnel_input(events, request)
    periods = {}
    for person, tag in units:
        if entry_split(request) == "event":  # the entry's step-1 event
            (first_event,) = [e for e in people[person] if e.event_id == tag]
            periods[(person, tag)] = period_of(local_time(first_event, zone).date(), period_type)
        else:
            periods[(person, tag)] = tag
    for key, o in units.items():
        if o.level > 0:
            entered[periods[key]] += 1
            converted[periods[key]] += o.level == n
    return {
        "view": "trends",
        "interval": interval,
        "trends": [
            {
                "period": period_label(s, period_type),
                "start": s.isoformat(),
                "entered": entered[s],
                "converted": converted[s],
                "conversion_rate": percent(converted[s], entered[s]),
            }
            for s in starts
        ],
    }


def funnel_persons(events: Iterable[Event], request: dict[str, Any]) -> dict[str, Any]:
    """The persons at a step (0-based): reached it (converted) or reached the one before but not it
    (dropped); ordered by person key, `limit` after `cursor`. Each with the smallest of their distinct
    ids that has an event in the funnel (one matching a step or an exclusion, inside the range)."""
    events = list(events)
    k, status = request["step"], request.get("status", "converted")
    levels: dict[str, int] = {}
    for (person, _), o in funnel_units(events, {**request, "counting": "persons"}, "person").items():
        levels[person] = o.level
    chosen = sorted(p for p, level in levels.items() if (level > k if status == "converted" else level == k))
    chosen = [p for p in chosen if request.get("cursor") is None or p > request["cursor"]]
    page = chosen[: request.get("limit", 100)]
    matchers = step_list(request) + [matcher for matcher, _, _ in exclusion_list(request)]
    ids: dict[str, set[str]] = {}
    for original, e in zip(deduplicated(events), by_person(events), strict=True):  # by_person keeps the order
        if in_range(e, request) and any(matches(e, m) for m in matchers):
            ids.setdefault(e.user_id, set()).add(original.user_id)
    return {
        "persons": [{"person_id": p, "distinct_id": min(ids[p])} for p in page],
        "next_cursor": page[-1] if len(chosen) > len(page) else None,
    }


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


def cohort_matches(e: Event, event: str | None, filters: list[dict[str, Any]]) -> bool:
    return event in (None, e.event) and all(passes(e, f) for f in filters)


def cohorts(events: Iterable[Event], params: dict[str, Any]) -> dict[str, Any]:
    """The cohort response for the API's query parameters over `events` (filters and the breakdown as
    objects, not JSON text)."""
    period_type, count = params.get("period_type", "weekly"), params.get("periods", 8)
    end = date.fromisoformat(params["end_date"])
    starts = [period_of(end, period_type)]
    while len(starts) < count:
        starts.insert(0, previous_period(starts[0], period_type))
    zone = params.get("timezone", "UTC")
    personal = by_person(events)
    day = {id(e): local_time(e, zone).date() for e in personal}
    known = [e for e in personal if day[id(e)] <= end]
    start_event, return_event = params.get("start_event") or None, params.get("return_event") or None
    members: dict[date, set[str]] = {s: set() for s in starts}
    values: dict[str, tuple[int, Any]] = {}
    for user in {e.user_id for e in known}:
        begun = [
            e
            for e in known
            if e.user_id == user and cohort_matches(e, start_event, params.get("start_filters", []))
        ]
        if begun:
            first = min(begun, key=arrival)  # the first start; of simultaneous ones the first received
            cohort = period_of(day[id(first)], period_type)
            if cohort in members:
                members[cohort].add(user)
                if params.get("breakdown"):
                    values[user] = prop_key(first, params["breakdown"])
    returns = [e for e in known if cohort_matches(e, return_event, params.get("return_filters", []))]
    returned = {(e.user_id, period_of(day[id(e)], period_type)) for e in returns}
    if params.get("retention_type") == "first_time":  # period 0 counts the start itself
        returned |= {(u, s) for s, users in members.items() for u in users}

    def table(chosen: set[str]) -> list[dict[str, Any]]:
        result = []
        for i, start in enumerate(starts):
            users = members[start] & chosen
            data = []
            for k in range(count - i):
                later = starts[i + k :] if params.get("cumulative") else [starts[i + k]]
                n = sum(1 for u in users if any((u, s) in returned for s in later))
                data.append({"period": k, "percentage": percent(n, len(users)), "count": n})
            result.append(
                {"cohort_date": period_label(start, period_type), "users": len(users), "data": data}
            )
        return result

    everyone = set().union(*members.values())
    response: dict[str, Any] = {"cohorts": table(everyone)}
    if params.get("breakdown"):
        persons: dict[tuple[int, Any], set[str]] = {}
        for user, key in values.items():
            persons.setdefault(key, set()).add(user)
        ranked = sorted(persons, key=lambda k: (-len(persons[k]), k))
        top, rest = ranked[:TOP_VALUES], ranked[TOP_VALUES:]
        response["breakdown"] = [
            {"value": bucket_label(k), "other": False, "cohorts": table(persons[k])} for k in top
        ]
        if rest:
            merged = set().union(*(persons[k] for k in rest))
            response["breakdown"].append({"value": "Other", "other": True, "cohorts": table(merged)})
    return response


# --- daily metrics ----------------------------------------------------------------------------------


def half_up(value: Decimal, step: Decimal = CENT) -> float:
    return float(value.quantize(step, ROUND_HALF_UP))


def decimal_of(value: Any) -> Decimal | None:
    """A property value as arithmetic reads it: JSON numbers below 10^32 in magnitude, integers exactly
    and other numbers as trunc(x * 10^6) / 10^6 of the float; None for anything else."""
    if kind(value) != "number" or abs(value) >= 1e32:
        return None
    if isinstance(value, int):
        return Decimal(value)
    return Decimal(math.trunc(value * 1e6)) / 10**6


def amount(e: Event) -> Decimal:
    return decimal_of(e.properties.get("amount")) or Decimal(0)


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


# --- trends (README, Definitions: "Time zones", "Trend maths") ----------------------------------------

QUANTILE_LEVELS = {
    "median": Fraction(1, 2),
    "p90": Fraction(9, 10),
    "p95": Fraction(19, 20),
    "p99": Fraction(99, 100),
}
VALUE_MATHS = {"sum", "avg", "min", "max", *QUANTILE_LEVELS}
LOOK_BACK = {"weekly_active": 7, "monthly_active": 30}
COUNTS = {"total", "unique_persons", "weekly_active", "monthly_active"}
OTHER_BUCKET = (9, 0)


def person_of(e: Event) -> str:
    """The event's person (events from `by_person` are under their person's key)."""
    return e.user_id


def local_time(e: Event, zone: str) -> datetime:
    return e.timestamp.astimezone(ZoneInfo(zone))


def offset_text(offset: timedelta) -> str:
    seconds = int(offset.total_seconds())
    sign, seconds = ("+" if seconds >= 0 else "-"), abs(seconds)
    text = f"{sign}{seconds // 3600:02d}:{seconds // 60 % 60:02d}"
    return text + (f":{seconds % 60:02d}" if seconds % 60 else "")


def time_bucket(moment: datetime, interval: str) -> Any:
    """The bucket of a local time: a date (day, week's Monday, month's first day) or (hour, offset)."""
    day = moment.date()
    if interval == "day":
        return day
    if interval == "week":
        return day - timedelta(days=day.weekday())
    if interval == "month":
        return day.replace(day=1)
    return (moment.replace(tzinfo=None, minute=0, second=0, microsecond=0), moment.utcoffset())


def period_buckets(first: date, last: date, interval: str, zone: str) -> list[tuple[Any, str, list[date]]]:
    """(bucket, label, the range's days in it) for every bucket of [first, last], in time order."""
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    if interval != "hour":
        found: dict[Any, list[date]] = {}
        for day in days:
            found.setdefault(time_bucket(datetime.combine(day, datetime.min.time()), interval), []).append(
                day
            )
        return [(key, key.isoformat(), members) for key, members in found.items()]
    hours: dict[Any, list[date]] = {}
    moment = datetime.combine(first - timedelta(days=2), datetime.min.time(), tzinfo=UTC)
    while moment < datetime.combine(last + timedelta(days=3), datetime.min.time(), tzinfo=UTC):
        here = moment.astimezone(ZoneInfo(zone))
        if first <= here.date() <= last:
            hours.setdefault(time_bucket(here, "hour"), [here.date()])
        moment += timedelta(minutes=15)
    return [((h, o), h.isoformat() + offset_text(o), d) for (h, o), d in hours.items()]


def math_value(
    math: str, events: list[Event], prop: Any, days: list[date], zone: str
) -> tuple[Fraction, int]:
    """(exact value, skipped) of one math over the events of a bucket whose range days are `days`."""
    persons = {person_of(e) for e in events}
    if math == "total":
        return Fraction(len(events)), 0
    if math == "unique_persons":
        return Fraction(len(persons)), 0
    if math == "per_person_avg":
        return (Fraction(len(events), len(persons)) if persons else Fraction(0)), 0
    if math == "dau":
        daily = sum(len({person_of(e) for e in events if local_time(e, zone).date() == d}) for d in days)
        return Fraction(daily, len(days)), 0
    if math in LOOK_BACK:
        end = max(days)
        window = [
            e
            for e in events
            if end - timedelta(days=LOOK_BACK[math] - 1) <= local_time(e, zone).date() <= end
        ]
        return Fraction(len({person_of(e) for e in window})), 0
    spec = {"property": prop} if isinstance(prop, str) else prop
    read = [lookup(e, spec) for e in events]
    numbers = sorted(d for present, v in read if present and (d := decimal_of(v)) is not None)
    skipped = sum(1 for present, v in read if present and v is not None and decimal_of(v) is None)
    if not numbers:
        return Fraction(0), skipped
    if math == "sum":
        return Fraction(sum(numbers, Decimal(0))), skipped
    if math == "avg":
        return Fraction(sum(numbers, Decimal(0))) / len(numbers), skipped
    if math in ("min", "max"):
        return Fraction(numbers[0] if math == "min" else numbers[-1]), skipped
    rank = (len(numbers) - 1) * QUANTILE_LEVELS[math]
    low = math_floor(rank)
    high = min(low + 1, len(numbers) - 1)
    return Fraction(numbers[low]) + (Fraction(numbers[high]) - Fraction(numbers[low])) * (rank - low), skipped


def math_floor(value: Fraction) -> int:
    return value.numerator // value.denominator


def answered(math: str | None, value: Fraction | None) -> Any:
    if value is None:
        return None
    return int(value) if math in COUNTS and value.denominator == 1 else float(value)


def formula_value(formula: str, values: dict[str, Fraction]) -> Fraction | None:
    """The formula over exact values (the test oracle may use eval; the service never does)."""
    exact = re.sub(r"[0-9]+(?:\.[0-9]+)?", lambda m: f"Fraction('{m.group(0)}')", formula)
    try:
        return eval(exact, {"__builtins__": {}, "Fraction": Fraction}, dict(values))  # noqa: S307
    except ZeroDivisionError:
        return None


def trends(events: Iterable[Event], request: dict[str, Any]) -> dict[str, Any]:
    """The trends response for `request` (the API's JSON body) over `events`."""
    zone, interval = request.get("timezone", "UTC"), request.get("interval", "day")
    first, last = date.fromisoformat(request["start_date"]), date.fromisoformat(request["end_date"])
    length = (last - first).days + 1
    periods = [(first, last)]
    if request.get("compare") == "previous_period":
        periods.append((first - timedelta(days=length), first - timedelta(days=1)))
    unique = by_person(events)
    breakdown = request.get("breakdown")

    def reads(s: dict[str, Any], start: date, end: date) -> list[Event]:
        """The series' events whose local day is in [start - look back, end]."""
        since = start - timedelta(days=LOOK_BACK.get(s.get("math", "total"), 1) - 1)
        return [
            e
            for e in unique
            if (s["event"] == "$all" or e.event == s["event"])
            and since <= local_time(e, zone).date() <= end
            and all(passes(e, f) for f in s.get("filters", []) + request.get("filters", []))
        ]

    series = request["series"]
    read = [[reads(s, a, b) for a, b in periods] for s in series]
    bucketed = [[period_buckets(a, b, interval, zone) for a, b in periods] for _ in series]
    value_of = (lambda e: breakdown_bucket(e, breakdown)) if breakdown else (lambda e: (3, 0))
    order = [(3, 0)]
    if breakdown:
        first_math = series[0].get("math", "total")
        range_days = [first + timedelta(days=n) for n in range(length)]
        reach = counted(read, bucketed, series, zone)  # by series, then period
        candidates = {value_of(e) for i in range(len(series)) for e in reach[i * len(periods)]}

        def rank(value: Any) -> Fraction:
            mine = [e for e in read[0][0] if value_of(e) == value]
            if first_math not in LOOK_BACK:
                mine = [e for e in mine if first <= local_time(e, zone).date()]
            return math_value(first_math, mine, series[0].get("property"), range_days, zone)[0]

        top = sorted(candidates, key=lambda v: (-rank(v), v))[:TOP_TRENDS]
        order = list(top)
        if any(value_of(e) not in top for events_ in reach for e in events_):
            order.append(OTHER_BUCKET)

    def members(e: Event, value: Any) -> bool:
        return value_of(e) == value if value != OTHER_BUCKET else value_of(e) not in order

    results, exact = [], {}
    for i, s in enumerate(series):
        math, prop = s.get("math", "total"), s.get("property")
        for value in order:
            per_period = []
            for p, (start, _) in enumerate(periods):
                mine = [e for e in read[i][p] if members(e, value)]
                data = []
                for key, _, days in bucketed[i][p]:
                    inside = [
                        e
                        for e in mine
                        if math in LOOK_BACK or time_bucket(local_time(e, zone), interval) == key
                    ]
                    data.append(math_value(math, inside, prop, days, zone)[0])
                whole = [e for e in mine if math in LOOK_BACK or start <= local_time(e, zone).date()]
                all_days = [start + timedelta(days=n) for n in range(length)]
                total, skipped = math_value(math, whole, prop, all_days, zone)
                per_period.append((data, total, skipped if math in VALUE_MATHS else None))
            letter = "ABCDEFGHIJ"[i]
            exact[(letter, value)] = per_period
            results.append(trend_result(s, letter, value, breakdown is not None, bucketed[i], per_period))
    response: dict[str, Any] = {"results": results, "formula": None}
    if request.get("formula"):
        response["formula"] = [
            formula_result(request, value, bucketed[0], exact, breakdown) for value in order
        ]
    return response


TOP_TRENDS = 25


def counted(read: list[list[list[Event]]], bucketed: Any, series: list[Any], zone: str) -> list[list[Event]]:
    """Per series and period, the events that reach a bucket (a look-back math's: those inside a
    bucket's window)."""
    found = []
    for i, s in enumerate(series):
        math = s.get("math", "total")
        for p, events_ in enumerate(read[i]):
            if math not in LOOK_BACK:
                found.append(events_)
                continue
            ends = [max(days) for _, _, days in bucketed[i][p]]
            span = LOOK_BACK[math]
            found.append(
                [
                    e
                    for e in events_
                    if any(0 <= (end - local_time(e, zone).date()).days < span for end in ends)
                ]
            )
    return found


def bucket_fields(value: Any, broken_down: bool) -> dict[str, Any]:
    if value == OTHER_BUCKET:
        return {"breakdown_value": "Other", "other": True}
    return {"breakdown_value": bucket_label(value) if broken_down else None, "other": False}


def trend_result(
    s: dict[str, Any], letter: str, value: Any, broken_down: bool, buckets: Any, per_period: Any
) -> dict[str, Any]:
    math = s.get("math", "total")
    data, total, skipped = per_period[0]
    result = {
        "series": letter,
        "label": s.get("label") or s["event"],
        **bucket_fields(value, broken_down),
        "labels": [label for _, label, _ in buckets[0]],
        "data": [answered(math, v) for v in data],
        "total": answered(math, total),
        "skipped": skipped,
        "compare": None,
    }
    if len(per_period) > 1:
        data, total, skipped = per_period[1]
        result["compare"] = {
            "labels": [label for _, label, _ in buckets[1]],
            "data": [answered(math, v) for v in data],
            "total": answered(math, total),
            "skipped": skipped,
        }
    return result


def formula_result(
    request: dict[str, Any], value: Any, buckets: Any, exact: Any, breakdown: Any
) -> dict[str, Any]:
    letters = "ABCDEFGHIJ"[: len(request["series"])]

    def over(p: int) -> tuple[list[Any], Any]:
        series = {letter: exact[(letter, value)][p] for letter in letters}
        count = len(next(iter(series.values()))[0])
        data = [
            answered(None, formula_value(request["formula"], {k: v[0][j] for k, v in series.items()}))
            for j in range(count)
        ]
        return data, answered(None, formula_value(request["formula"], {k: v[1] for k, v in series.items()}))

    data, total = over(0)
    result = {
        "formula": request["formula"],
        **bucket_fields(value, breakdown is not None),
        "labels": [label for _, label, _ in buckets[0]],
        "data": data,
        "total": total,
        "compare": None,
    }
    if len(buckets) > 1:
        before, before_total = over(1)
        result["compare"] = {
            "labels": [label for _, label, _ in buckets[1]],
            "data": before,
            "total": before_total,
            "skipped": None,
        }
    return result
