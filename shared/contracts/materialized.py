"""Materialized property columns: for a few hot event property keys, a String column of analytics_events
holding `JSONExtractRaw(properties, '<key>')`, computed by ClickHouse at insert (PostHog's `mat_*`
columns). The column holds exactly the text every reader of the key would extract
(property_types.raw), so a reader that reads the column instead gives byte-for-byte the same answer,
without parsing the ~300-byte JSON object of every row.

* Which keys: `ANALYTICS_MATERIALIZED_PROPERTIES` (README, Configuration). Each column costs insert CPU
  and disk for every event, so the list is short: keys that trends, filters and breakdowns name most.
* Column names are ours: `mat_<key>` for a key of letters, digits and `_`, else `matx_<the key with
  every other character as _>_<12 hex digits of its SHA-1>`; the two forms never collide, so a column
  of a given name was always made from one key. Keys are limited to `KEY_PATTERN` (no quote or
  backslash), so a key is spliced into the DDL as a plain string literal and never into a SELECT.
* A table that existed before a key was listed gets the column by `ADD COLUMN IF NOT EXISTS`: its old
  parts compute it from `properties` when read (the same text, so still exact, just not faster) until
  `ALTER TABLE analytics_events MATERIALIZE COLUMN <name>` rewrites them (`materialize_statements`).
* Removing a key from the list stops readers using its column; the column stays (DROP it by hand).
* Event properties only: a person's properties are JSON in a Join table (storage.PERSON_PROPERTIES).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from shared.contracts.storage import EVENTS_TABLE

# The default list, kept short because every column is computed on every insert (each costs about as
# much insert CPU as 1-2% of the whole insert: bench/results/materialized-columns.md): `plan` and `amount`, a
# typical plan and revenue property, are what the bench's trends filter, break down and sum;
# `$current_url` and `$browser` are the two that posthog-js sends with every event and that PostHog's
# trends break down and filter by most.
DEFAULT_KEYS = ("plan", "amount", "$current_url", "$browser")
KEY_PATTERN = re.compile(r"^[A-Za-z0-9_$.\-]{1,100}$")
PLAIN_KEY = re.compile(r"^[A-Za-z0-9_]+$")
MAX_KEYS = 50
# The column's type and codec: the raw JSON text, String with ZSTD(1) as `properties`.
# LowCardinality(String) read faster (its functions run once per distinct value) but cost three times
# the insert CPU of String for plan and amount, and suits no URL-like key (same file).
COLUMN_TYPE, COLUMN_CODEC = "String", "CODEC(ZSTD(1))"


def column_name(key: str) -> str:
    """Our column name for `key` (module doc)."""
    check_key(key)
    if PLAIN_KEY.match(key):
        return f"mat_{key}"
    digest = hashlib.sha1(key.encode()).hexdigest()[:12]
    return f"matx_{re.sub(r'[^A-Za-z0-9_]', '_', key)}_{digest}"


def check_key(key: str) -> str:
    if not KEY_PATTERN.match(key):
        raise ValueError(
            f"a materialized property key has 1 to 100 letters, digits, '_', '$', '.' or '-': {key!r}"
        )
    return key


def column_expression(key: str) -> str:
    """What the column holds: property_types.raw of the key in the event's properties."""
    return f"JSONExtractRaw(properties, '{check_key(key)}')"


def parse_keys(raw: str) -> tuple[str, ...]:
    """The keys of a comma-separated list (checked, duplicates dropped, order kept)."""
    keys = tuple(dict.fromkeys(check_key(k.strip()) for k in raw.split(",") if k.strip()))
    if len(keys) > MAX_KEYS:
        raise ValueError(f"at most {MAX_KEYS} materialized property keys")
    return keys


def add_column_statements(database: str, keys: Iterable[str]) -> list[str]:
    """The DDL adding each key's column to the events table (idempotent)."""
    return [
        f"ALTER TABLE {database}.{EVENTS_TABLE} ADD COLUMN IF NOT EXISTS {column_name(key)} {COLUMN_TYPE} "
        f"MATERIALIZED {column_expression(key)} {COLUMN_CODEC}"
        for key in keys
    ]


def materialize_statements(database: str, keys: Iterable[str]) -> list[str]:
    """Rewrite the old parts of the events table so they store the keys' columns (a mutation, run by
    hand after adding keys to a table that holds events: reading them is exact either way)."""
    return [f"ALTER TABLE {database}.{EVENTS_TABLE} MATERIALIZE COLUMN {column_name(key)}" for key in keys]


@dataclass(frozen=True)
class MaterializedColumns:
    """The event property keys whose columns a reader may use, and the columns' names."""

    columns: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, keys: Iterable[str]) -> MaterializedColumns:
        return cls({key: column_name(key) for key in keys})

    def column(self, key: str) -> str | None:
        """The column holding `key`'s JSON text, or None (read it from `properties`)."""
        return self.columns.get(key)


NONE = MaterializedColumns()
