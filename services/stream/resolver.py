"""Identity resolution, kept up to date as links arrive: every distinct id's person key, exactly as
shared/contracts/persons.py defines it, and the person_overrides rows queries read it through.

The rule is a function of the set of links, so the graph keeps every link's winning copy, each id's
outgoing link (the earliest) and the ids pointing at each id. A new link that changes an id's outgoing
link can move that id and every id whose walk passes through it; those, and only those, are walked
again. Links come from ClickHouse (`person_links`), read by `inserted_at`, so every stream replica sees
every link, its own and other replicas', and all of them converge on the same answer; a replica's
writes carry the newest link or number it had seen as their version, so a fresher view wins.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from services.stream import instruments
from shared.clickhouse import ClickHouse
from shared.contracts.persons import Link, walk
from shared.contracts.storage import DISTINCT_IDS_TABLE, LINKS_TABLE, OVERRIDES_TABLE, PERSON_NUMBERS

log = logging.getLogger(__name__)

# A row is stamped (inserted_at) when its insert starts and seen when the insert commits, so a read may
# see a row stamped before the newest it saw last time; each read goes back this far again (the same
# margin as the cohort summary's changed ids), and copies already known change nothing.
READ_MARGIN_SECONDS = 60
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class LinkGraph:
    """Every link's winning copy, each id's outgoing (earliest) link, and each id's person key."""

    copies: dict[tuple[str, str, str, uuid.UUID], Link] = field(default_factory=dict)
    candidates: dict[str, set[tuple[str, str, str, uuid.UUID]]] = field(default_factory=dict)
    outgoing: dict[str, Link] = field(default_factory=dict)
    incoming: dict[str, set[str]] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    members: dict[str, set[str]] = field(default_factory=dict)  # key -> the ids whose key it is

    def add(self, links: Iterable[Link]) -> set[str]:
        """Take links (new ones, or copies of known ones); the ids whose person key changed."""
        moved: set[str] = set()
        for link in links:
            kept = self.copies.get(link.identity)
            if kept is not None and (kept.received_at > link.received_at or kept == link):
                continue
            self.copies[link.identity] = link
            self.candidates.setdefault(link.from_id, set()).add(link.identity)
            for distinct_id in (link.to_id, link.from_id):
                if distinct_id not in self.keys:
                    self.keys[distinct_id] = distinct_id
                    self.members.setdefault(distinct_id, set()).add(distinct_id)
            if self.choose_outgoing(link.from_id):
                moved.add(link.from_id)
        return self.rekey(moved)

    def remove(self, distinct_ids: set[str]) -> set[str]:
        """Forget every link from or to these ids (a person deletion); the ids whose key changed."""
        moved: set[str] = set()
        for identity in [i for i in self.copies if i[0] in distinct_ids or i[1] in distinct_ids]:
            link = self.copies.pop(identity)
            self.candidates[link.from_id].discard(identity)
            if self.choose_outgoing(link.from_id):
                moved.add(link.from_id)
        for distinct_id in distinct_ids:
            key = self.keys.pop(distinct_id, None)
            if key is not None:
                self.members.get(key, set()).discard(distinct_id)
            moved.discard(distinct_id)
        return self.rekey(moved) - distinct_ids

    def choose_outgoing(self, from_id: str) -> bool:
        """Set `from_id`'s outgoing link to its earliest; True when it changed."""
        links = [self.copies[i] for i in self.candidates.get(from_id, ())]
        best = min(links, key=lambda link: link.order) if links else None
        current = self.outgoing.get(from_id)
        if best == current:
            return False
        if current is not None:
            self.incoming[current.to_id].discard(from_id)
        if best is None:
            del self.outgoing[from_id]
        else:
            self.outgoing[from_id] = best
            self.incoming.setdefault(best.to_id, set()).add(from_id)
        return current is None or best is None or current.to_id != best.to_id

    def rekey(self, moved: set[str]) -> set[str]:
        """Walk again every id upstream of a moved id; the ids whose key changed."""
        upstream: set[str] = set()
        frontier = list(moved)
        while frontier:
            current = frontier.pop()
            if current in upstream:
                continue
            upstream.add(current)
            frontier.extend(self.incoming.get(current, ()))
        nexts = NextIds(self.outgoing)
        changed = set()
        for distinct_id in upstream:
            key = walk(distinct_id, nexts)
            previous = self.keys.get(distinct_id)
            if previous != key:
                if previous is not None:
                    self.members[previous].discard(distinct_id)
                self.keys[distinct_id] = key
                self.members.setdefault(key, set()).add(distinct_id)
                changed.add(distinct_id)
        return changed

    def key_of(self, distinct_id: str) -> str:
        return self.keys.get(distinct_id, distinct_id)

    def members_of(self, key: str) -> set[str]:
        """Every id of the person with this key (the key itself included)."""
        return self.members.get(key) or {key}


class NextIds(Mapping[str, str]):
    """The outgoing links as `from -> to`, the mapping the contract's `walk` follows, without a copy."""

    def __init__(self, outgoing: dict[str, Link]) -> None:
        self.outgoing = outgoing

    def __getitem__(self, from_id: str) -> str:
        return self.outgoing[from_id].to_id

    def __contains__(self, from_id: object) -> bool:
        return from_id in self.outgoing

    def __iter__(self) -> Iterator[str]:
        return iter(self.outgoing)

    def __len__(self) -> int:
        return len(self.outgoing)


Answer = tuple[str, int, int]  # (person key, the id's number, the key's number); 0: no number yet


class Resolver:
    """The link graph of one stream replica, fed from ClickHouse, and the overrides it writes."""

    def __init__(self, clickhouse: ClickHouse) -> None:
        self.clickhouse = clickhouse
        self.graph = LinkGraph()
        self.numbers: dict[str, int] = {}  # the numbers of the graph's ids that have one
        self.unnumbered: set[str] = set()  # the graph's ids without one yet (no event of their own so far)
        self.links_read_to = EPOCH
        self.numbers_read_to = EPOCH
        self.written: dict[str, Answer] = {}  # what person_overrides says of each id, as we know it
        self.lock = asyncio.Lock()  # one round at a time: the batch's, the periodic one, a rebuild
        self.moved_keys: set[str] = set()  # keys whose members or number changed since last taken

    def key_of(self, distinct_id: str) -> str:
        return self.graph.keys.get(distinct_id, distinct_id)  # LinkGraph.key_of, one call less per event

    def take_moved_keys(self) -> set[str]:
        """The person keys whose members or number changed since the last call (their properties)."""
        moved, self.moved_keys = self.moved_keys, set()
        return moved

    def members_of(self, key: str) -> set[str]:
        return self.graph.members_of(key)

    def progress(self) -> dict[str, Any]:
        """What the resolver knows, for /readyz: links, linked ids, ids still without a number, and the
        newest link it has read."""
        return {
            "links": len(self.graph.copies),
            "linked_ids": len(self.graph.keys),
            "unnumbered_ids": len(self.unnumbered),
            "links_read_to": self.links_read_to.isoformat(),
        }

    async def rebuild(self) -> int:
        """Start again from every stored link and override (at start, and after a person deletion);
        returns how many ids got a new answer."""
        async with self.lock:
            return await self._rebuild()

    async def sync(self, all_unnumbered: bool = False) -> int:
        """Read the links stored since the last round, and the numbers of their ids (of every graph id
        still without one when `all_unnumbered`: the periodic round), update the graph, write what
        changed (and reload the dictionary queries read it through)."""
        async with self.lock:
            return await self._sync(all_unnumbered)

    async def write(self, distinct_ids: Iterable[str]) -> int:
        """Write the overrides of these ids whose answer differs from what person_overrides says."""
        async with self.lock:
            return await self._write(distinct_ids)

    async def add_links(self, links: list[Link]) -> int:
        """Links this replica just stored: into the graph at once, without reading them back (the
        periodic `sync` reads them too, with everyone else's, and they change nothing then)."""
        async with self.lock:
            return await self._take(links, all_unnumbered=False)

    async def _rebuild(self) -> int:
        self.graph = LinkGraph()
        self.numbers.clear()
        self.unnumbered.clear()
        self.links_read_to = self.numbers_read_to = EPOCH
        rows = await self.clickhouse.query(
            f"SELECT distinct_id, person_key, did, person FROM {OVERRIDES_TABLE} FINAL"
        )
        self.written = {distinct_id: (key, did, person) for distinct_id, key, did, person in rows}
        changed = await self._sync(all_unnumbered=True)
        gone = set(self.written) - set(self.graph.keys)  # no link names them now: their own persons
        return changed + await self._write(gone)

    async def _sync(self, all_unnumbered: bool) -> int:
        return await self._take(await self.read_links(), all_unnumbered)

    async def _take(self, links: list[Link], all_unnumbered: bool) -> int:
        moved = self.graph.add(links)
        new_ids = ({link.from_id for link in links} | {link.to_id for link in links}) - set(self.numbers)
        self.unnumbered |= new_ids
        moved |= await self.read_numbers(self.unnumbered if all_unnumbered else new_ids)
        return await self._write(moved)

    def note_numbers(self, numbered: dict[str, int]) -> set[str]:
        """Numbers this replica just gave; the graph ids they concern (to be written by `write`)."""
        known = {i: n for i, n in numbered.items() if i in self.graph.keys and self.numbers.get(i) != n}
        self.numbers.update(known)
        self.unnumbered -= set(known)
        return self.concerned(set(known))

    async def read_links(self) -> list[Link]:
        rows = await self.clickhouse.query(
            f"SELECT from_id, to_id, event, event_id, timestamp, received_at, inserted_at FROM {LINKS_TABLE} "
            "WHERE inserted_at >= {since:DateTime64(6, 'UTC')} - toIntervalSecond({margin:UInt32})",
            {"since": self.links_read_to, "margin": READ_MARGIN_SECONDS},
        )
        links = []
        for from_id, to_id, event, event_id, timestamp, received_at, inserted_at in rows:
            links.append(Link(as_utc(timestamp), event_id, from_id, to_id, event, as_utc(received_at)))
            self.links_read_to = max(self.links_read_to, as_utc(inserted_at))
        return links

    async def read_numbers(self, ids: set[str]) -> set[str]:
        """The numbers of these graph ids, where they have one now; the ids whose answer they change."""
        wanted = sorted(ids)
        found: dict[str, int] = {}
        for start in range(0, len(wanted), 10_000):
            rows = await self.clickhouse.query(
                f"SELECT distinct_id, min(did), max(inserted_at) FROM {DISTINCT_IDS_TABLE} "
                "WHERE distinct_id IN {ids:Array(String)} GROUP BY distinct_id",
                {"ids": wanted[start : start + 10_000]},
            )
            for distinct_id, did, inserted_at in rows:
                found[distinct_id] = did
                self.numbers_read_to = max(self.numbers_read_to, as_utc(inserted_at))
        self.numbers.update(found)
        self.unnumbered -= set(found)
        return self.concerned(set(found))

    def concerned(self, numbered: set[str]) -> set[str]:
        """Ids whose answer a new number changes: the ids themselves, and everyone whose key they are."""
        if not numbered:
            return set()
        return numbered | {i for i, key in self.graph.keys.items() if key in numbered}

    def answer(self, distinct_id: str) -> Answer:
        key = self.graph.key_of(distinct_id)
        return (key, self.numbers.get(distinct_id, 0), self.numbers.get(key, 0))

    async def _write(self, distinct_ids: Iterable[str]) -> int:
        version = max(self.links_read_to, self.numbers_read_to).strftime("%Y-%m-%d %H:%M:%S.%f")
        rows = []
        for distinct_id in distinct_ids:
            answer = self.answer(distinct_id)
            own = (distinct_id, answer[1], answer[1])  # its own person: what no row at all says
            if self.written.get(distinct_id, own) == answer:
                continue
            self.moved_keys |= {self.written.get(distinct_id, own)[0], answer[0]}
            self.written[distinct_id] = answer
            key, did, person = answer
            row = {"distinct_id": distinct_id, "did": did, "person_key": key, "person": person}
            rows.append(orjson.dumps({**row, "version": version}))
        if rows:
            await self.clickhouse.insert_json_rows(OVERRIDES_TABLE, b"\n".join(rows))
            instruments.OVERRIDES_WRITTEN.inc(len(rows))
            await self.clickhouse.command(
                f"SYSTEM RELOAD DICTIONARY {self.clickhouse.database}.{PERSON_NUMBERS}"
            )
        return len(rows)


def as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
