"""Persons' properties, kept current: whenever an event updates a person's properties, or a merge (or
a deletion) changes who a person is, the person's properties are merged again from all their ids'
updates (the rules of shared/contracts/persons.py, in SQL) and written to person_properties and its
in-memory index, which storage.PERSON_PROPERTIES reads."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

import orjson

from services.stream.resolver import Resolver
from shared.clickhouse import ClickHouse
from shared.contracts.storage import (
    DISTINCT_IDS_TABLE,
    PERSON_PROPERTIES_INDEX,
    PERSON_PROPERTIES_TABLE,
    PROPERTY_UPDATES_TABLE,
)

CHUNK = 5_000  # persons refreshed per query


async def refresh(clickhouse: ClickHouse, resolver: Resolver, keys: Iterable[str]) -> int:
    """Merge and write the properties of the persons with these keys; how many were written."""
    wanted = sorted(set(keys))
    written = 0
    for start in range(0, len(wanted), CHUNK):
        written += await refresh_chunk(clickhouse, resolver, wanted[start : start + CHUNK])
    return written


async def refresh_chunk(clickhouse: ClickHouse, resolver: Resolver, keys: list[str]) -> int:
    # a key that a merge moved into another person has no members of its own any more (written
    # empty): its ids count for their current key only (transform below takes an id's first owner)
    members = {key: sorted(resolver.members_of(key)) if resolver.key_of(key) == key else [] for key in keys}
    ids = [distinct_id for ids in members.values() for distinct_id in ids]
    owners = [key for key, ids in members.items() for _ in ids]
    rows = await clickhouse.query(
        f"""SELECT transform(distinct_id, {{ids:Array(String)}}, {{owners:Array(String)}}, '') AS owner,
                   key, countIf(once = 0) > 0,
                   argMaxIf(value, (timestamp, toString(event_id)), once = 0),
                   argMinIf(value, (timestamp, toString(event_id)), once = 1)
            FROM {PROPERTY_UPDATES_TABLE} FINAL
            WHERE distinct_id IN {{ids:Array(String)}}
            GROUP BY owner, key""",
        {"ids": ids, "owners": owners},
    )
    merged: dict[str, dict[str, object]] = {key: {} for key in keys}
    for owner, key, is_set, value, once in rows:
        merged[owner][key] = orjson.loads(value if is_set else once)
    numbers = dict(
        await clickhouse.query(
            f"SELECT distinct_id, min(did) FROM {DISTINCT_IDS_TABLE} "
            "WHERE distinct_id IN {keys:Array(String)} GROUP BY distinct_id",
            {"keys": keys},
        )
    )
    version = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    people = [
        (numbers[key], key, orjson.dumps(dict(sorted(merged[key].items()))).decode())
        for key in keys
        if numbers.get(key)
    ]
    if not people:
        return 0
    await clickhouse.insert_json_rows(
        PERSON_PROPERTIES_TABLE,
        b"\n".join(
            orjson.dumps({"person": n, "person_key": k, "properties": p, "version": version})
            for n, k, p in people
        ),
    )
    await clickhouse.insert_json_rows(
        PERSON_PROPERTIES_INDEX,
        b"\n".join(orjson.dumps({"person": n, "properties": p}) for n, _, p in people),
    )
    return len(people)


async def rebuild_index(clickhouse: ClickHouse) -> None:
    """The in-memory index again from the durable table (after a deletion, or when it was lost)."""
    await clickhouse.command(f"TRUNCATE TABLE {PERSON_PROPERTIES_INDEX}")
    await clickhouse.command(
        f"INSERT INTO {PERSON_PROPERTIES_INDEX} "
        f"SELECT person, properties FROM {PERSON_PROPERTIES_TABLE} FINAL"
    )
