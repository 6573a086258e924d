"""The saved_items table: saved insights and dashboards, each change one inserted row (schema.sql says
why), read with FINAL. Only a hash of the creator's key is stored."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from shared.auth import Role
from shared.clickhouse import ClickHouse
from shared.contracts.storage import SAVED_ITEMS_TABLE
from shared.errors import Forbidden, NotFound

Kind = Literal["insight", "dashboard"]
MAX_ITEMS_LISTED = 1000
# A domain prefix: the digest of an access key here never equals its digest anywhere else.
OWNER_HASH_PREFIX = b"analytics-saved-item-owner\0"
COLUMNS = "id, name, body, owner_key_hash, created_at, updated_at"
ONE_SQL = f"""
SELECT {COLUMNS} FROM {SAVED_ITEMS_TABLE} FINAL
WHERE kind = {{kind:String}} AND id = {{id:UUID}}
"""
MANY_SQL = f"""
SELECT {COLUMNS} FROM {SAVED_ITEMS_TABLE} FINAL
WHERE kind = {{kind:String}} AND id IN {{ids:Array(UUID)}}
"""
LIST_SQL = f"""
SELECT {COLUMNS} FROM {SAVED_ITEMS_TABLE} FINAL
WHERE kind = {{kind:String}}
ORDER BY updated_at DESC, id
LIMIT {MAX_ITEMS_LISTED}
"""
# A change must be visible to the very next read: a synchronous insert, never buffered.
SYNC_INSERT = {"async_insert": 0}


def owner_hash(key: str) -> str:
    """What is stored of the key that created an item: a SHA-256 digest, hex."""
    return hashlib.sha256(OWNER_HASH_PREFIX + key.encode()).hexdigest()


@dataclass(frozen=True)
class Caller:
    """Who asks: their key's digest and kind (admin keys may change anyone's items)."""

    key_hash: str
    role: Role

    def may_edit(self, item: StoredItem) -> bool:
        return self.role == Role.ADMIN or hmac.compare_digest(self.key_hash, item.owner_key_hash)


@dataclass(frozen=True)
class StoredItem:
    id: uuid.UUID
    name: str
    body: dict[str, Any]
    owner_key_hash: str
    created_at: dt.datetime
    updated_at: dt.datetime


def item_of(row: Sequence[Any]) -> StoredItem:
    item_id, name, body, owner, created, updated = row
    return StoredItem(
        id=item_id if isinstance(item_id, uuid.UUID) else uuid.UUID(str(item_id)),
        name=name,
        body=orjson.loads(body),
        owner_key_hash=owner,
        created_at=aware(created),
        updated_at=aware(updated),
    )


def aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


class SavedItems:
    """Reads and writes of one kind of saved item."""

    def __init__(self, clickhouse: ClickHouse, kind: Kind) -> None:
        self.clickhouse = clickhouse
        self.kind = kind

    async def create(self, name: str, body: dict[str, Any], caller: Caller) -> StoredItem:
        now = dt.datetime.now(dt.UTC)
        item = StoredItem(uuid.uuid4(), name, body, caller.key_hash, now, now)
        await self._write(item)
        return item

    async def get(self, item_id: uuid.UUID) -> StoredItem:
        """The item, or 404."""
        rows = await self.clickhouse.query(ONE_SQL, {"kind": self.kind, "id": item_id})
        if not rows:
            raise NotFound(f"no {self.kind} {item_id}; it may have been deleted")
        return item_of(rows[0])

    async def get_many(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, StoredItem]:
        """The items among `ids` that exist."""
        if not ids:
            return {}
        rows = await self.clickhouse.query(MANY_SQL, {"kind": self.kind, "ids": list(ids)})
        return {item.id: item for item in map(item_of, rows)}

    async def newest_first(self) -> list[StoredItem]:
        """Every item of the kind, the most recently changed first."""
        return [item_of(row) for row in await self.clickhouse.query(LIST_SQL, {"kind": self.kind})]

    async def replace(
        self, item_id: uuid.UUID, name: str, body: dict[str, Any], caller: Caller
    ) -> StoredItem:
        """The item with a new name and body, if the caller may change it (else 403; 404 if absent)."""
        current = await self.editable(item_id, caller, "change")
        item = StoredItem(
            item_id, name, body, current.owner_key_hash, current.created_at, dt.datetime.now(dt.UTC)
        )
        await self._write(item)
        return item

    async def delete(self, item_id: uuid.UUID, caller: Caller) -> None:
        """Hide the item from every later read (a tombstone row), if the caller may."""
        current = await self.editable(item_id, caller, "delete")
        gone = StoredItem(
            item_id, current.name, {}, current.owner_key_hash, current.created_at, dt.datetime.now(dt.UTC)
        )
        await self._write(gone, deleted=True)

    async def editable(self, item_id: uuid.UUID, caller: Caller, action: str) -> StoredItem:
        item = await self.get(item_id)
        if not caller.may_edit(item):
            raise Forbidden(f"only the key that created this {self.kind}, or an admin key, may {action} it")
        return item

    async def _write(self, item: StoredItem, *, deleted: bool = False) -> None:
        row = {
            "kind": self.kind,
            "id": str(item.id),
            "name": item.name,
            "body": orjson.dumps(item.body).decode(),
            "owner_key_hash": item.owner_key_hash,
            "created_at": clickhouse_time(item.created_at),
            "updated_at": clickhouse_time(item.updated_at),
            "deleted": int(deleted),
        }
        await self.clickhouse.insert_json_rows(SAVED_ITEMS_TABLE, orjson.dumps(row) + b"\n", SYNC_INSERT)


def clickhouse_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
