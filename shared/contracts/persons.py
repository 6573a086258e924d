"""The persons contract: which events link distinct ids, how a distinct id resolves to its person, what
updates a person's properties, and how distinct ids are numbered.

- A **distinct id** is what an event carries: `user_id` (the anonymous id when it had no user id).
- A **link** `from -> to` comes from an event's `linked_ids`: each linked id `from` links to the event's
  own distinct id `to` (an anonymous id sent beside a user id; a Segment alias's previousId; the native
  identify call; PostHog's `$anon_distinct_id` and alias). Its time is the event's timestamp and its
  order is (timestamp, event_id), then (should two events share an id) the `to` id and the event name.
- **Resolution** (`resolve`): each distinct id X has at most one outgoing link, the earliest link whose
  `from` is X. X's person is found by following outgoing links until an id with none: that id is the
  person's key. A walk that comes back to an id it visited ends in a cycle, whose smallest id (string
  order) is the key. It is a function of the set of links alone: arrival order, partitions, retries and
  replays change nothing.
- **Person properties** (`property_updates`): `$set` (latest by (timestamp, event_id) wins, per
  property) and `$set_once` (earliest wins) in any event's properties, and the properties of an
  identify call (Segment's traits, the native identify's properties) as `$set`. A value set by `$set`
  beats any `$set_once`. A person's properties are these rules over all their distinct ids' updates.
- **Numbers**: every distinct id with an event of its own has a number (`did`), assigned by the stream
  processor that owns the id's partition from the position of the message that first brought it, so a
  replay assigns the same number; the person's number is the number of its key.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import orjson

from shared.contracts.events import StoredEvent

# Sources whose $identify events carry person properties as their plain properties.
IDENTIFY_SOURCES = frozenset({"api", "segment"})
IDENTIFY_EVENT = "$identify"
# A distinct-id number: | partition (8 bits) | message offset (40 bits) | event index in the message (16).
PARTITION_BITS, OFFSET_BITS, INDEX_BITS = 7, 40, 16


def distinct_number(partition: int, offset: int, index: int) -> int:
    """The number of a distinct id first brought by event `index` of the message at `offset` of
    `partition`; never 0 (0 means "no number" in storage)."""
    if not (0 <= partition < 1 << PARTITION_BITS and 0 <= offset < 1 << OFFSET_BITS):
        raise ValueError(f"partition {partition} or offset {offset} out of the numbering's range")
    if not 0 <= index < 1 << INDEX_BITS:
        raise ValueError(f"event index {index} out of the numbering's range")
    return (partition << (OFFSET_BITS + INDEX_BITS) | offset << INDEX_BITS | index) + 1


@dataclass(frozen=True, order=True)
class Link:
    """`from_id -> to_id`, made by one event (identified as the events table identifies it)."""

    timestamp: datetime
    event_id: uuid.UUID
    from_id: str
    to_id: str
    event: str
    received_at: datetime

    @property
    def identity(self) -> tuple[str, str, str, uuid.UUID]:
        """The copies of one link (a retried or replayed event) share this; the copy received last wins,
        as it does in the events table."""
        return (self.from_id, self.to_id, self.event, self.event_id)

    @property
    def order(self) -> tuple[datetime, uuid.UUID, str, str]:
        return (self.timestamp, self.event_id, self.to_id, self.event)


def links_of(event: StoredEvent) -> list[Link]:
    """The event's links, with its times as stored (UTC milliseconds), so a link compares the same
    whether it comes from a message or from ClickHouse."""
    timestamp, received_at = stored_time(event.timestamp), stored_time(event.received_at)
    return [
        Link(timestamp, event.event_id, linked, event.user_id, event.event, received_at)
        for linked in event.linked_ids
    ]


def stored_time(moment: datetime) -> datetime:
    """A time as a DateTime64(3, 'UTC') column keeps it: in UTC, microseconds truncated to milliseconds."""
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def resolve(links: Iterable[Link]) -> dict[str, str]:
    """The person key of every distinct id that appears in a link (the definition, written plainly; the
    stream processor keeps the same answer up to date incrementally)."""
    winners: dict[tuple[str, str, str, uuid.UUID], Link] = {}
    for link in links:
        kept = winners.get(link.identity)
        if kept is None or link.received_at >= kept.received_at:
            winners[link.identity] = link
    outgoing: dict[str, Link] = {}
    for link in winners.values():
        if link.from_id not in outgoing or link.order < outgoing[link.from_id].order:
            outgoing[link.from_id] = link
    ids = {link.from_id for link in winners.values()} | {link.to_id for link in winners.values()}
    nexts = {from_id: link.to_id for from_id, link in outgoing.items()}
    return {distinct_id: walk(distinct_id, nexts) for distinct_id in ids}


def walk(start: str, nexts: Mapping[str, str]) -> str:
    """Follow outgoing links from `start` to the person key (the smallest id of a cycle it ends in)."""
    seen: dict[str, int] = {}
    path: list[str] = []
    current = start
    while current in nexts and current not in seen:
        seen[current] = len(path)
        path.append(current)
        current = nexts[current]
    if current in seen:  # came back: the ids from that point on form the cycle
        return min(path[seen[current] :])
    return current


@dataclass(frozen=True)
class PropertyUpdate:
    """One property of one person, set (`once` False: latest wins) or set once (earliest wins)."""

    distinct_id: str
    key: str
    value: Any
    once: bool
    timestamp: datetime
    event_id: uuid.UUID
    received_at: datetime


def property_updates(event: StoredEvent) -> list[PropertyUpdate]:
    """What an event says about its person's properties. Most events say nothing: those return at
    the first test (the loader asks this of every event)."""
    properties = event.properties
    identify = event.event == IDENTIFY_EVENT and event.source in IDENTIFY_SOURCES
    if not identify and "$set" not in properties and "$set_once" not in properties:
        return []
    updates: list[tuple[Mapping[str, Any], bool]] = []
    if identify:
        updates.append(({k: v for k, v in properties.items() if not k.startswith("$")}, False))
    for name, once in (("$set", False), ("$set_once", True)):
        values = properties.get(name)
        if isinstance(values, dict):
            updates.append((values, once))
    return [
        PropertyUpdate(event.user_id, key, value, once, event.timestamp, event.event_id, event.received_at)
        for values, once in updates
        for key, value in values.items()
    ]


def merged_properties(updates: Iterable[PropertyUpdate]) -> dict[str, Any]:
    """A person's properties from all their distinct ids' updates (the rules in the module doc)."""
    latest: dict[str, PropertyUpdate] = {}
    earliest: dict[str, PropertyUpdate] = {}
    for update in updates:
        order = (update.timestamp, update.event_id)
        if update.once:
            kept = earliest.get(update.key)
            if kept is None or order < (kept.timestamp, kept.event_id):
                earliest[update.key] = update
        else:
            kept = latest.get(update.key)
            if kept is None or order > (kept.timestamp, kept.event_id):
                latest[update.key] = update
    merged = {key: update.value for key, update in earliest.items()}
    merged.update({key: update.value for key, update in latest.items()})
    return dict(sorted(merged.items()))


# A person deletion's states (DELETIONS_TABLE): asked by the query service, the rows deleted by the stream
# processors, the snapshot days recomputed by the ETL.
PENDING, EVENTS_DELETED, DONE = "pending", "events_deleted", "done"


@dataclass(frozen=True)
class DeletionRecord:
    """One state of a person deletion, as a row of the deletions table (the latest row wins)."""

    deletion_id: uuid.UUID
    person_key: str
    distinct_ids: list[str]
    requested_at: datetime
    status: str
    days: list[date]

    def advanced(self, status: str, days: list[date] | None = None) -> DeletionRecord:
        return DeletionRecord(
            self.deletion_id,
            self.person_key,
            self.distinct_ids,
            self.requested_at,
            status,
            self.days if days is None else days,
        )

    def row(self) -> bytes:
        return orjson.dumps(
            {
                "deletion_id": str(self.deletion_id),
                "person_key": self.person_key,
                "distinct_ids": self.distinct_ids,
                "requested_at": self.requested_at.strftime("%Y-%m-%d %H:%M:%S.%f"),
                "status": self.status,
                "days": [day.isoformat() for day in self.days],
                "updated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"),
            }
        )


# The columns `DeletionRecord(*row)` reads, in order.
DELETION_COLUMNS = "deletion_id, person_key, distinct_ids, requested_at, status, days"
