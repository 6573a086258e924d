"""Persons as the API shows them: who a distinct id is (their ids, properties, first and last seen),
their events newest first, a search for the dashboard, and deletions.

A person is known by their key (shared/contracts/persons.py), which is also their `person_id`. The
answers read the resolver's overrides (person_overrides), so they follow the links the stream
processors have resolved so far, as every other answer does.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import BaseModel, Field

from shared.clickhouse import ClickHouse
from shared.contracts.persons import DONE, PENDING, DeletionRecord
from shared.contracts.storage import (
    DELETIONS_TABLE,
    DISTINCT_IDS_TABLE,
    EVENTS_TABLE,
    FINAL_SETTINGS,
    LINKS_TABLE,
    OVERRIDES_TABLE,
    PROPERTY_UPDATES_TABLE,
    TOMBSTONES_TABLE,
)
from shared.errors import InvalidRequest, NotFound

EMAIL_KEYS = ("email", "$email", "Email")
MAX_IDS_SHOWN = 1000


class Person(BaseModel):
    person_id: str = Field(description="The person's key: the distinct id their links lead to")
    distinct_ids: list[str] = Field(description="Every distinct id of the person, the key first")
    properties: dict[str, Any]
    first_seen: datetime | None
    last_seen: datetime | None
    events: int


class PersonEvent(BaseModel):
    event_id: uuid.UUID
    event: str
    distinct_id: str
    timestamp: datetime
    properties: dict[str, Any]


class PersonEvents(BaseModel):
    person_id: str
    events: list[PersonEvent]
    next: str | None = Field(description="Cursor of the next (older) page; null on the last page")


class PersonMatch(BaseModel):
    person_id: str
    distinct_ids: list[str]
    email: str | None


class PersonSearch(BaseModel):
    persons: list[PersonMatch]


class Deletion(BaseModel):
    deletion_id: uuid.UUID
    person_id: str
    distinct_ids: list[str]
    status: str = Field(description="pending, then done once no answer counts the person")
    requested_at: datetime


async def person_key(clickhouse: ClickHouse, distinct_id: str) -> str:
    """The person key of an id that was ever seen (an event of its own, or a link); 404 otherwise."""
    rows = await clickhouse.query(
        f"""SELECT
              (SELECT argMax(person_key, version) FROM {OVERRIDES_TABLE} WHERE distinct_id = {{id:String}}),
              (SELECT count() FROM {DISTINCT_IDS_TABLE} WHERE distinct_id = {{id:String}})
            + (SELECT count() FROM {LINKS_TABLE} WHERE from_id = {{id:String}} OR to_id = {{id:String}})""",
        {"id": distinct_id},
    )
    key, seen = rows[0]
    if not seen and not key:
        raise NotFound(f"no person has the distinct id {distinct_id!r}")
    return key or distinct_id


async def distinct_ids_of(clickhouse: ClickHouse, key: str) -> list[str]:
    """Every id of the person with this key, the key first."""
    rows = await clickhouse.query(
        f"""SELECT distinct_id FROM {OVERRIDES_TABLE} FINAL
            WHERE person_key = {{key:String}} AND distinct_id != {{key:String}}
            ORDER BY distinct_id LIMIT {MAX_IDS_SHOWN}""",
        {"key": key},
    )
    return [key, *(distinct_id for (distinct_id,) in rows)]


async def properties_of(clickhouse: ClickHouse, distinct_ids: list[str]) -> dict[str, Any]:
    """The person's properties: per key, the latest `$set` if any, else the earliest `$set_once`."""
    rows = await clickhouse.query(
        f"""SELECT key, countIf(once = 0) > 0,
                   argMaxIf(value, (timestamp, toString(event_id)), once = 0),
                   argMinIf(value, (timestamp, toString(event_id)), once = 1)
            FROM {PROPERTY_UPDATES_TABLE} FINAL
            WHERE distinct_id IN {{ids:Array(String)}}
            GROUP BY key ORDER BY key""",
        {"ids": distinct_ids},
    )
    return {
        key: orjson.loads(set_value if is_set else once_value) for key, is_set, set_value, once_value in rows
    }


async def get_person(clickhouse: ClickHouse, distinct_id: str, timeout: float) -> Person:
    key = await person_key(clickhouse, distinct_id)
    ids = await distinct_ids_of(clickhouse, key)
    [(first, last, count)] = await clickhouse.query(
        f"SELECT min(timestamp), max(timestamp), count() FROM {EVENTS_TABLE} FINAL "
        "WHERE user_id IN {ids:Array(String)}",
        {"ids": ids},
        settings=FINAL_SETTINGS,
        timeout=timeout,
    )
    return Person(
        person_id=key,
        distinct_ids=ids,
        properties=await properties_of(clickhouse, ids),
        first_seen=utc(first) if count else None,
        last_seen=utc(last) if count else None,
        events=int(count),
    )


def encode_cursor(timestamp: datetime, event_id: str) -> str:
    text = orjson.dumps([timestamp.astimezone(UTC).isoformat(), event_id])
    return base64.urlsafe_b64encode(text).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        moment, event_id = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return datetime.fromisoformat(moment), str(uuid.UUID(event_id))
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError) as exc:
        raise InvalidRequest(
            "before: not a cursor this API gave", details=[{"loc": ["query", "before"], "msg": "bad cursor"}]
        ) from exc


async def events_of(
    clickhouse: ClickHouse, distinct_id: str, limit: int, before: str | None, timeout: float
) -> PersonEvents:
    """The person's events, newest first; pages follow (timestamp, event_id), so an event stored
    meanwhile neither repeats nor shifts a page."""
    cursor = decode_cursor(before) if before else None
    key = await person_key(clickhouse, distinct_id)
    ids = await distinct_ids_of(clickhouse, key)
    params: dict[str, Any] = {"ids": ids, "limit": limit + 1}
    older = "1"
    if cursor is not None:
        params.update(before_at=cursor[0], before_id=cursor[1])
        older = "(timestamp, toString(event_id)) < ({before_at:DateTime64(3, 'UTC')}, {before_id:String})"
    rows = await clickhouse.query(
        f"""SELECT event_id, event, user_id, timestamp, properties FROM {EVENTS_TABLE} FINAL
            WHERE user_id IN {{ids:Array(String)}} AND {older}
            ORDER BY timestamp DESC, toString(event_id) DESC
            LIMIT {{limit:UInt32}}""",
        params,
        settings=FINAL_SETTINGS,
        timeout=timeout,
    )
    page = [
        PersonEvent(
            event_id=event_id,
            event=event,
            distinct_id=user_id,
            timestamp=utc(timestamp),
            properties=orjson.loads(properties),
        )
        for event_id, event, user_id, timestamp, properties in rows[:limit]
    ]
    following = encode_cursor(page[-1].timestamp, str(page[-1].event_id)) if len(rows) > limit else None
    return PersonEvents(person_id=key, events=page, next=following)


async def search(clickhouse: ClickHouse, text: str, limit: int) -> PersonSearch:
    """Persons one of whose distinct ids, or whose email, starts with `text` (every person when empty)."""
    rows = await clickhouse.query(
        f"""SELECT person, groupUniqArray(distinct_id), anyIf(email, email != '')
            FROM (
                SELECT if(o.person_key = '', d.distinct_id, o.person_key) AS person,
                       d.distinct_id AS distinct_id, '' AS email
                FROM (SELECT distinct_id FROM {DISTINCT_IDS_TABLE}
                      WHERE startsWith(distinct_id, {{text:String}}) LIMIT {{scan:UInt32}}) AS d
                LEFT JOIN (SELECT distinct_id, argMax(person_key, version) AS person_key
                           FROM {OVERRIDES_TABLE} GROUP BY distinct_id) AS o USING distinct_id
                UNION ALL
                SELECT if(o.person_key = '', u.distinct_id, o.person_key), u.distinct_id, u.email
                FROM (SELECT distinct_id, JSONExtractString(value) AS email FROM {PROPERTY_UPDATES_TABLE}
                      WHERE key IN {{keys:Array(String)}} AND startsWith(email, {{text:String}})
                      LIMIT {{scan:UInt32}}) AS u
                LEFT JOIN (SELECT distinct_id, argMax(person_key, version) AS person_key
                           FROM {OVERRIDES_TABLE} GROUP BY distinct_id) AS o USING distinct_id)
            GROUP BY person ORDER BY person LIMIT {{limit:UInt32}}""",
        {"text": text, "keys": list(EMAIL_KEYS), "limit": limit, "scan": limit * 20},
    )
    return PersonSearch(
        persons=[
            PersonMatch(person_id=person, distinct_ids=sorted(ids), email=email or None)
            for person, ids, email in rows
        ]
    )


async def request_deletion(clickhouse: ClickHouse, distinct_id: str) -> Deletion:
    """Record the deletion and the tombstones (from now on no old event of these ids loads); the stream
    processors delete the rows, the ETL recomputes the days (services/stream/deletions.py)."""
    key = await person_key(clickhouse, distinct_id)
    ids = await distinct_ids_of(clickhouse, key)
    now = datetime.now(UTC)
    record = DeletionRecord(uuid.uuid4(), key, ids, now, PENDING, [])
    stamp = now.strftime("%Y-%m-%d %H:%M:%S.%f")
    tombstones = b"\n".join(
        orjson.dumps({"distinct_id": i, "deleted_at": stamp, "deletion_id": str(record.deletion_id)})
        for i in ids
    )
    await clickhouse.insert_json_rows(TOMBSTONES_TABLE, tombstones)
    await clickhouse.insert_json_rows(DELETIONS_TABLE, record.row())
    return Deletion(
        deletion_id=record.deletion_id, person_id=key, distinct_ids=ids, status=PENDING, requested_at=now
    )


async def get_deletion(clickhouse: ClickHouse, deletion_id: uuid.UUID) -> Deletion:
    rows = await clickhouse.query(
        f"SELECT person_key, distinct_ids, status, requested_at FROM {DELETIONS_TABLE} FINAL "
        "WHERE deletion_id = {id:UUID}",
        {"id": deletion_id},
    )
    if not rows:
        raise NotFound(f"no deletion {deletion_id}")
    key, ids, status, requested_at = rows[0]
    return Deletion(
        deletion_id=deletion_id,
        person_id=key,
        distinct_ids=list(ids),
        status=DONE if status == DONE else PENDING,
        requested_at=utc(requested_at),
    )


def utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
