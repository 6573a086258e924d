"""What the loader stores about persons with each batch of events (shared/contracts/persons.py has
the rules), and the numbering of distinct ids.

For a batch, in this order (a crash anywhere replays the batch, and every step writes the same rows
again, which the tables collapse):
1. events of ids deleted before the event was received are dropped (tombstones);
2. every distinct id gets its number, and new ones are stored (`distinct_ids`) before any event uses
   them, so a resolver on any replica can find them;
3. the events, each with its number; the links and the person-property updates they carry;
4. the resolver takes the new links and numbers, and writes the overrides they change.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson

from services.stream import instruments, person_properties
from services.stream.resolver import Resolver
from shared.clickhouse import ClickHouse
from shared.contracts.events import StoredEvent
from shared.contracts.persons import (
    Link,
    PropertyUpdate,
    distinct_number,
    links_of,
    property_updates,
)
from shared.contracts.storage import (
    ACTIVE_DAYS_TABLE,
    DISTINCT_IDS_TABLE,
    EVENTS_TABLE,
    LINKS_TABLE,
    PROPERTY_UPDATES_TABLE,
    ROW_SETTINGS,
    TOMBSTONES_TABLE,
)

log = logging.getLogger(__name__)

LOOKUP_CHUNK = 10_000
# Numbers given outside the stream (bulk loads, and rows stored before persons existed) have the top bit
# set; the stream's own (shared/contracts/persons.py: distinct_number) never do.
BULK_NUMBERS = 1 << 63
Position = tuple[int, int, int]  # (partition, offset, index of the event in its message)


def clickhouse_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


class DistinctIdNumbers:
    """The numbers of the distinct ids this replica met (at most `capacity`, the oldest forgotten first;
    a forgotten id is looked up again), and new numbers for ids met for the first time."""

    def __init__(self, clickhouse: ClickHouse, capacity: int = 1_000_000) -> None:
        self.clickhouse = clickhouse
        self.capacity = capacity
        self.known: dict[str, int] = {}

    async def number(
        self, events: Sequence[StoredEvent], positions: Sequence[Position]
    ) -> tuple[list[int], dict[str, int]]:
        """Each event's number, and the numbers given for the first time: an id met for the first time
        gets the number of its first position here, which a replay of the same messages gives again.
        New numbers are only remembered once stored (`remember`), so a failed attempt gives them again."""
        known = self.known
        distinct_ids = [e.user_id for e in events]
        unknown = set(distinct_ids).difference(known)
        if unknown:
            await self.look_up(unknown)
            unknown.difference_update(known)
        numbers = [known.get(distinct_id, 0) for distinct_id in distinct_ids]  # never 0 when known
        fresh: dict[str, int] = {}
        if unknown:  # the ids met for the first time, numbered from the first position that brings each
            for at, (distinct_id, (partition, offset, index)) in enumerate(
                zip(distinct_ids, positions, strict=True)
            ):
                if distinct_id in unknown:
                    did = fresh.get(distinct_id)
                    if did is None:
                        did = fresh[distinct_id] = distinct_number(partition, offset, index)
                    numbers[at] = did
        return numbers, fresh

    def remember(self, numbers: dict[str, int]) -> None:
        self.known.update(numbers)
        self.forget_oldest()

    async def look_up(self, distinct_ids: set[str]) -> None:
        wanted = sorted(distinct_ids)
        for start in range(0, len(wanted), LOOKUP_CHUNK):
            rows = await self.clickhouse.query(
                f"SELECT distinct_id, min(did) FROM {DISTINCT_IDS_TABLE} "
                "WHERE distinct_id IN {ids:Array(String)} GROUP BY distinct_id",
                {"ids": wanted[start : start + LOOKUP_CHUNK]},
            )
            self.known.update(rows)

    def forget_oldest(self) -> None:
        """Over capacity, forget the oldest tenth at once, so the cost is paid once per many new ids."""
        if len(self.known) > self.capacity:
            excess = len(self.known) - self.capacity * 9 // 10
            for distinct_id in list(itertools.islice(self.known, excess)):
                del self.known[distinct_id]


class Tombstones:
    """Every deleted id with its latest deletion time (TOMBSTONES_TABLE), kept in memory: each batch
    asks ClickHouse only for the table's size and a checksum of its rows (a few ms), and reads the rows
    again when either changed (a deletion, or a merge of copies). Looking a batch's ids up instead
    parsed an IN list of every id in the batch: ~50 ms of CPU per batch of 8,000 ids. Every deleted id
    is held (deletions are rare: a million deleted ids would be ~150 MB)."""

    def __init__(self, clickhouse: ClickHouse) -> None:
        self.clickhouse = clickhouse
        self.summary: tuple[int, int] | None = None
        self.deleted: dict[str, datetime] = {}

    async def current(self) -> dict[str, datetime]:
        [(rows, checksum)] = await self.clickhouse.query(
            f"SELECT count(), sum(cityHash64(distinct_id, deleted_at)) FROM {TOMBSTONES_TABLE}"
        )
        summary = (int(rows), int(checksum))
        if summary != self.summary:  # read after the summary: at least what it describes
            found = await self.clickhouse.query(
                f"SELECT distinct_id, max(deleted_at) FROM {TOMBSTONES_TABLE} GROUP BY distinct_id"
            )
            self.deleted = {i: at.replace(tzinfo=UTC) if at.tzinfo is None else at for i, at in found}
            self.summary = summary
        return self.deleted


@dataclass
class PersonsBatch:
    """A batch's events as loaded: the rows, and what they say about persons."""

    rows: list[bytes] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    updates: list[tuple[int, PropertyUpdate]] = field(default_factory=list)
    fresh: dict[str, int] = field(default_factory=dict)  # numbers given for the first time
    dropped: int = 0  # events of deleted ids


class PersonsRecorder:
    """Numbers, tombstones, links and property updates, for the loader's batches."""

    def __init__(self, clickhouse: ClickHouse, resolver: Resolver, capacity: int = 1_000_000) -> None:
        self.clickhouse = clickhouse
        self.resolver = resolver
        self.numbers = DistinctIdNumbers(clickhouse, capacity)
        self.tombstones = Tombstones(clickhouse)

    async def prepare(self, events: Sequence[StoredEvent], positions: Sequence[Position]) -> PersonsBatch:
        """Steps 1 and 2 of the module doc, and the batch's rows, links and updates (per event, only
        the row costs anything unless the event links ids or sets person properties)."""
        kept, kept_positions = await self.without_deleted(events, positions)
        numbers, fresh = await self.numbers.number(kept, kept_positions)
        if fresh:
            await self.clickhouse.insert_json_rows(
                DISTINCT_IDS_TABLE,
                b"\n".join(orjson.dumps({"distinct_id": i, "did": n}) for i, n in fresh.items()),
            )
            self.numbers.remember(fresh)
        batch = PersonsBatch(fresh=fresh, dropped=len(events) - len(kept))
        rows, links, updates = batch.rows, batch.links, batch.updates
        for event, did in zip(kept, numbers, strict=True):
            rows.append(event.to_row(did))
            if event.linked_ids:
                links += links_of(event)
            updates += [(did, update) for update in property_updates(event)]
        return batch

    def forget(self, distinct_ids: Iterable[str]) -> None:
        """After a deletion: these ids get new numbers when they come back (as new persons)."""
        for distinct_id in distinct_ids:
            self.numbers.known.pop(distinct_id, None)

    async def without_deleted(
        self, events: Sequence[StoredEvent], positions: Sequence[Position]
    ) -> tuple[Sequence[StoredEvent], Sequence[Position]]:
        """The events not of a deleted id, or received after its deletion (those are a new person),
        with their positions."""
        deleted = await self.tombstones.current()
        if not deleted or deleted.keys().isdisjoint(e.user_id for e in events):
            return events, positions
        kept = [
            (e, p)
            for e, p in zip(events, positions, strict=True)
            if e.user_id not in deleted or e.received_at >= deleted[e.user_id]
        ]
        return [e for e, _ in kept], [p for _, p in kept]

    async def store(self, batch: PersonsBatch) -> None:
        """Step 3: the events, then their links and property updates."""
        if batch.rows:
            started = time.perf_counter()
            await self.clickhouse.insert_json_rows(EVENTS_TABLE, b"\n".join(batch.rows), ROW_SETTINGS)
            instruments.INSERT_SECONDS.observe(time.perf_counter() - started)
        if batch.links:
            await self.clickhouse.insert_json_rows(LINKS_TABLE, links_block(batch.links))
        if batch.updates:
            await self.clickhouse.insert_json_rows(PROPERTY_UPDATES_TABLE, updates_block(batch.updates))

    async def resolve(self, batch: PersonsBatch) -> None:
        """Step 4: the resolver takes the batch's numbers and links; then the properties of every
        person an update or a merge changed are merged again."""
        concerned = self.resolver.note_numbers(batch.fresh)
        if batch.links:
            await self.resolver.add_links(batch.links)
        if concerned:
            await self.resolver.write(concerned)
        await self.refresh_properties({self.resolver.key_of(u.distinct_id) for _, u in batch.updates})

    async def refresh_properties(self, keys: set[str]) -> None:
        """The properties of these persons, and of every person whose members changed meanwhile."""
        keys |= self.resolver.take_moved_keys()
        if keys:
            await person_properties.refresh(self.clickhouse, self.resolver, keys)


def links_block(links: Iterable[Link]) -> bytes:
    return b"\n".join(
        orjson.dumps(
            {
                "from_id": link.from_id,
                "to_id": link.to_id,
                "event": link.event,
                "event_id": str(link.event_id),
                "timestamp": clickhouse_time(link.timestamp),
                "received_at": clickhouse_time(link.received_at),
            }
        )
        for link in links
    )


def updates_block(updates: Iterable[tuple[int, PropertyUpdate]]) -> bytes:
    return b"\n".join(
        orjson.dumps(
            {
                "distinct_id": update.distinct_id,
                "did": did,
                "key": update.key,
                "value": orjson.dumps(update.value).decode(),
                "once": int(update.once),
                "timestamp": clickhouse_time(update.timestamp),
                "event_id": str(update.event_id),
                "received_at": clickhouse_time(update.received_at),
            }
        )
        for did, update in updates
    )


async def number_in_bulk(clickhouse: ClickHouse, distinct_ids: Iterable[str]) -> dict[str, int]:
    """Numbers for ids stored without the stream (bulk loads, rows from before persons existed): the
    ones they have, and new ones (top bit set, counting on from the highest bulk number) for the rest."""
    wanted = sorted(set(distinct_ids))
    found: dict[str, int] = {}
    for start in range(0, len(wanted), LOOKUP_CHUNK):
        rows = await clickhouse.query(
            f"SELECT distinct_id, min(did) FROM {DISTINCT_IDS_TABLE} "
            "WHERE distinct_id IN {ids:Array(String)} GROUP BY distinct_id",
            {"ids": wanted[start : start + LOOKUP_CHUNK]},
        )
        found.update(rows)
    missing = [i for i in wanted if i not in found]
    if missing:
        [(highest,)] = await clickhouse.query(
            f"SELECT max(did) FROM {DISTINCT_IDS_TABLE} WHERE did >= {{bulk:UInt64}}", {"bulk": BULK_NUMBERS}
        )
        first = max(int(highest), BULK_NUMBERS) + 1
        new = {distinct_id: first + n for n, distinct_id in enumerate(missing)}
        block = b"\n".join(orjson.dumps({"distinct_id": i, "did": n}) for i, n in new.items())
        await clickhouse.insert_json_rows(DISTINCT_IDS_TABLE, block)
        found.update(new)
    return found


async def number_unnumbered_events(clickhouse: ClickHouse) -> int:
    """Give rows stored before persons existed (did = 0) their distinct ids' numbers; how many ids."""
    rows = await clickhouse.query(f"SELECT DISTINCT user_id FROM {EVENTS_TABLE} WHERE did = 0")
    if not rows:
        return 0
    numbers = await number_in_bulk(clickhouse, [distinct_id for (distinct_id,) in rows])
    table = "numbers_to_apply"
    await clickhouse.command(f"DROP TABLE IF EXISTS {table}")
    await clickhouse.command(
        f"CREATE TABLE {table} (distinct_id String, did UInt64) ENGINE = Join(ANY, LEFT, distinct_id)"
    )
    try:
        block = b"\n".join(orjson.dumps({"distinct_id": i, "did": n}) for i, n in numbers.items())
        await clickhouse.insert_json_rows(table, block)
        for target in (EVENTS_TABLE, ACTIVE_DAYS_TABLE):
            await clickhouse.command(
                f"ALTER TABLE {target} UPDATE did = joinGet('{clickhouse.database}.{table}', 'did', user_id) "
                "WHERE did = 0 SETTINGS mutations_sync = 2"
            )
    finally:
        await clickhouse.command(f"DROP TABLE IF EXISTS {table}")
    log.info("numbered %d distinct ids stored before persons existed", len(numbers))
    return len(numbers)


async def load_in_bulk(clickhouse: ClickHouse, events: Sequence[StoredEvent]) -> None:
    """Store events without the stream (benchmark data, tests that load ClickHouse directly): numbers
    in bulk, then the same rows, links and updates as the loader's, then a resolver round over every
    stored link."""
    numbers = await number_in_bulk(clickhouse, {e.user_id for e in events})
    batch = PersonsBatch()
    for event in events:
        did = numbers[event.user_id]
        batch.rows.append(event.to_row(did))
        batch.links += links_of(event)
        batch.updates += [(did, update) for update in property_updates(event)]
    recorder = PersonsRecorder(clickhouse, Resolver(clickhouse))
    await recorder.store(batch)
    await recorder.resolver.rebuild()
    await recorder.refresh_properties({recorder.resolver.key_of(u.distinct_id) for _, u in batch.updates})
