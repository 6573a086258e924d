"""The one plain-Python oracle: the README's definitions of funnels, cohorts and daily metrics written
out literally, slow on purpose (search over chains, not the service's algorithms), over one event model
that the tests also load into ClickHouse or post to the API. Duplicates collapse by the table's rule."""

from __future__ import annotations

import math
import uuid
from calendar import monthrange
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

import orjson

from shared.clickhouse import ClickHouse
from shared.contracts.storage import EVENTS_TABLE

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

    def posted(self) -> dict[str, Any]:
        """The event as a client posts it to /api/v1/events."""
        return {
            "event": self.event,
            "user_id": self.user_id,
            "timestamp": self.timestamp.isoformat(),
            "properties": self.properties,
            "event_id": str(self.event_id),
        }


def clickhouse_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def at(text: str) -> datetime:
    """'2023-03-01 10:00[:00[.000]]' as a UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def ev(event: str, user: str, when: str | datetime, **properties: Any) -> Event:
    return Event(event, user, at(when) if isinstance(when, str) else when, properties)


async def load(clickhouse: ClickHouse, events: Iterable[Event]) -> None:
    """Insert events as one JSONEachRow block, the way the stream loader does."""
    block = b"".join(orjson.dumps(e.row()) + b"\n" for e in events)
    if block:
        await clickhouse.insert_json_rows(EVENTS_TABLE, block)


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
# README "Funnels", literally: every chain of every person is listed (exponential on purpose), each
# unit's level and conversion chain are picked from that list by the README's rules.

WINDOW_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400}
INTERVAL_PERIODS = {"day": "daily", "week": "weekly", "month": "monthly"}


def from_ms(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


def add_months(moment: datetime, months: int) -> datetime:
    """The same day and time `months` calendar months later (UTC); the month's last day when the
    month is shorter."""
    index = moment.year * 12 + moment.month - 1 + months
    year, month = index // 12, index % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, monthrange(year, month)[1]))


def window_end(request: dict[str, Any]) -> Callable[[int], int]:
    """The last millisecond a chain whose step-1 event is at `ms` may reach."""
    window = request.get("window")
    if window and window["unit"] == "month":
        return lambda ms: (add_months(from_ms(ms), window["value"]) - EPOCH) // timedelta(milliseconds=1)
    seconds = window["value"] * WINDOW_UNIT_SECONDS[window["unit"]] if window else None
    span = (seconds or request.get("window_seconds", 14 * 86400)) * 1000
    return lambda ms: ms + span


def person_properties(e: Event) -> dict[str, Any]:
    """The properties of the event's person. PERSONS-TODO: nothing has person properties until identity
    merges land (shared.contracts.storage.PERSON_PROPERTIES is an empty object)."""
    return {}


def prop_key(e: Event, ref: str | dict[str, Any]) -> tuple[bool, str]:
    """(missing, value) of a property reference (a bare name is an event property)."""
    name, source = (ref, "event") if isinstance(ref, str) else (ref["property"], ref.get("source", "event"))
    return breakdown_key(e.properties if source == "event" else person_properties(e), name)


def exclusion_list(request: dict[str, Any]) -> list[tuple[tuple[str, list[dict[str, Any]]], int, int]]:
    """(matcher, from_step, to_step) per exclusion; the top-level filters apply to exclusions too."""
    return [
        ((x["event"], x.get("filters", []) + request.get("filters", [])), x["from_step"], x["to_step"])
        for x in request.get("exclusions", [])
    ]


@dataclass(frozen=True)
class Chain:
    """events[j] is the event of step j + 1."""

    events: tuple[Event, ...]
    unordered: bool

    @property
    def length(self) -> int:
        return len(self.events)

    @property
    def entry(self) -> int:
        """When the chain starts: its step-1 event (unordered: its earliest event)."""
        return min(e.ms for e in self.events) if self.unordered else self.events[0].ms

    def reach(self, step: int) -> int:
        """When the chain reaches step `step` (1-based): for step 1 its entry, after that its step
        event (unordered: the latest of its events for steps 1..step)."""
        if step == 1:
            return self.entry
        if self.unordered:
            return max(e.ms for e in self.events[:step])
        return self.events[step - 1].ms

    def times(self) -> tuple[int, ...]:
        return tuple(e.ms for e in self.events)


def chains_of(mine: list[Event], steps: list[Any], request: dict[str, Any]) -> list[Chain]:
    """Every chain (of every length) in one person's events, by the mode's rule."""
    mode, end, held = request.get("mode", "ordered"), window_end(request), request.get("hold_constant", [])
    matching = [[e for e in mine if matches(e, step)] for step in steps]
    found: list[Chain] = []

    def constant(chain: tuple[Event, ...]) -> bool:
        return all(prop_key(e, r) == prop_key(chain[0], r) for e in chain for r in held)

    if mode == "unordered":

        def assign(chosen: tuple[Event, ...]) -> None:
            if chosen:
                found.append(Chain(chosen, True))
            if len(chosen) < len(steps):
                for e in matching[len(chosen)]:
                    chain = (*chosen, e)
                    if constant(chain) and max(x.ms for x in chain) <= end(min(x.ms for x in chain)):
                        assign(chain)

        assign(())
        return found
    times = sorted({e.ms for e in mine if any(matches(e, step) for step in steps)})

    def extend(chain: tuple[Event, ...]) -> None:
        found.append(Chain(chain, False))
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


def excluded(chain: Chain, mine: list[Event], request: dict[str, Any]) -> bool:
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
    tied: list[Chain]

    def key_at(self, step: int, ref: Any) -> tuple[bool, str]:
        """The value on the conversion chain's step event: the smallest among tied chains."""
        return min(prop_key(c.events[step - 1], ref) for c in self.tied)

    def durations(self) -> list[int]:
        chain = self.tied[0]
        return [chain.reach(j) - chain.reach(j - 1) for j in range(2, self.level + 1)]


def outcome(chains: list[Chain], mine: list[Event], request: dict[str, Any]) -> Outcome | None:
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
    values = min(tuple(prop_key(c.events[0], r) for r in held) for c in tied)
    return Outcome(level, [c for c in tied if tuple(prop_key(c.events[0], r) for r in held) == values])


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


def funnel_input(events: Iterable[Event], request: dict[str, Any]) -> dict[str, list[Event]]:
    """Each person's deduplicated events inside the range. PERSONS-TODO: a person is a user_id."""
    start = datetime.combine(date.fromisoformat(request["start_date"]), datetime.min.time(), tzinfo=UTC)
    end = datetime.combine(date.fromisoformat(request["end_date"]), datetime.min.time(), tzinfo=UTC)
    in_range = [e for e in deduplicated(events) if start <= e.timestamp < end + timedelta(days=1)]
    people = sorted({e.user_id for e in in_range})
    return {user: [e for e in in_range if e.user_id == user] for user in people}


Unit = tuple[str, Any]  # (person, what else tells the unit apart)


def funnel_units(events: Iterable[Event], request: dict[str, Any], split: str) -> dict[Unit, Outcome]:
    """Outcome per unit: a person (split "person"), a step-1 event ("event": counting totals), a person
    and the period of the chain's entry ("period"), or a person and a value of the breakdown property
    on a step-1 event ("value": all_events). Units without a chain are left out."""
    steps = step_list(request)
    interval = INTERVAL_PERIODS[request.get("interval", "day")]
    result: dict[Unit, Outcome] = {}
    for person, mine in funnel_input(events, request).items():
        groups: dict[Any, list[Chain]] = {}
        for chain in chains_of(mine, steps, request):
            if split == "event":
                tag: Any = chain.events[0].event_id
            elif split == "period":
                tag = period_of(from_ms(chain.entry).date(), interval)
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
        return trends(events, request)
    names = [name for name, _ in step_list(request)]
    units = funnel_units(events, request, entry_split(request))
    response = {**funnel_of(names, list(units.values())), "breakdown": None}
    if request.get("breakdown"):
        response["breakdown"] = breakdown(names, bucket_keys(events, request, units))
    return response


def bucket_keys(
    events: list[Event], request: dict[str, Any], units: dict[Unit, Outcome]
) -> list[tuple[tuple[bool, str], Outcome]]:
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
        else:
            firsts = [e for e in people[person] if matches(e, first_step)]
            earliest = min(e.ms for e in firsts)
            keyed.append((min(prop_key(e, ref) for e in firsts if e.ms == earliest), o))
    return keyed


def breakdown(names: list[str], keyed: list[tuple[tuple[bool, str], Outcome]]) -> list[dict[str, Any]]:
    entries: dict[tuple[bool, str], int] = {}
    for key, _ in keyed:
        entries[key] = entries.get(key, 0) + 1
    ranked = sorted(entries, key=lambda k: (-entries[k], k))
    top, rest = ranked[:TOP_VALUES], set(ranked[TOP_VALUES:])
    result = []
    for key in top:
        outcomes = [o for k, o in keyed if k == key]
        result.append({**funnel_of(names, outcomes), "value": None if key[0] else key[1], "other": False})
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


def trends(events: list[Event], request: dict[str, Any]) -> dict[str, Any]:
    """Per period of the range (every one listed): the entries whose conversion chain starts in it
    and how many of them reached the last step."""
    interval = request.get("interval", "day")
    period_type = INTERVAL_PERIODS[interval]
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
            periods[(person, tag)] = period_of(first_event.timestamp.date(), period_type)
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
    (dropped); ordered by person id as text, `limit` after `cursor`."""
    events = list(events)
    k, status = request["step"], request.get("status", "converted")
    levels: dict[str, int] = {}
    for (person, _), o in funnel_units(events, {**request, "counting": "persons"}, "person").items():
        levels[person] = o.level
    chosen = sorted(p for p, level in levels.items() if (level > k if status == "converted" else level == k))
    chosen = [p for p in chosen if request.get("cursor") is None or p > request["cursor"]]
    page = chosen[: request.get("limit", 100)]
    people = funnel_input(events, request)
    return {
        "persons": [{"person_id": p, "distinct_id": min(e.user_id for e in people[p])} for p in page],
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
    return event in (None, e.event) and all(passes(e.properties, f) for f in filters)


def cohorts(events: Iterable[Event], params: dict[str, Any]) -> dict[str, Any]:
    """The cohort response for the API's query parameters over `events` (filters and the breakdown as
    objects, not JSON text)."""
    period_type, count = params.get("period_type", "weekly"), params.get("periods", 8)
    end = date.fromisoformat(params["end_date"])
    starts = [period_of(end, period_type)]
    while len(starts) < count:
        starts.insert(0, previous_period(starts[0], period_type))
    known = [e for e in deduplicated(events) if e.timestamp.date() <= end]
    start_event, return_event = params.get("start_event") or None, params.get("return_event") or None
    members: dict[date, set[str]] = {s: set() for s in starts}
    values: dict[str, tuple[bool, str]] = {}
    for user in {e.user_id for e in known}:
        begun = [
            e
            for e in known
            if e.user_id == user and cohort_matches(e, start_event, params.get("start_filters", []))
        ]
        if begun:
            first = min(e.timestamp for e in begun)
            if period_of(first.date(), period_type) in members:
                members[period_of(first.date(), period_type)].add(user)
                if params.get("breakdown"):
                    values[user] = min(
                        prop_key(e, params["breakdown"]) for e in begun if e.timestamp == first
                    )
    returns = [e for e in known if cohort_matches(e, return_event, params.get("return_filters", []))]
    returned = {(e.user_id, period_of(e.timestamp.date(), period_type)) for e in returns}
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
        persons: dict[tuple[bool, str], set[str]] = {}
        for user, key in values.items():
            persons.setdefault(key, set()).add(user)
        ranked = sorted(persons, key=lambda k: (-len(persons[k]), k))
        top, rest = ranked[:TOP_VALUES], ranked[TOP_VALUES:]
        response["breakdown"] = [
            {"value": None if k[0] else k[1], "other": False, "cohorts": table(persons[k])} for k in top
        ]
        if rest:
            merged = set().union(*(persons[k] for k in rest))
            response["breakdown"].append({"value": "Other", "other": True, "cohorts": table(merged)})
    return response


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
    unique = deduplicated(events)
    days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
    return {(day, name): float(value) for day in days for name, value in metrics_of_day(unique, day).items()}
