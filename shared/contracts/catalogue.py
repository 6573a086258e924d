"""The schema catalogue: which events, property names (with the kinds of their values) and property
values exist, kept by ClickHouse itself. Materialized views add every block inserted into
analytics_events to three small aggregating tables, so discovery reads thousands of rows instead of
scanning all properties (README: schema discovery).

The kinds and values follow the typing rule (property_types.py). The counts count stored rows: a
replayed or retried copy counts again (the catalogue sees inserts, not FINAL); they guide a UI's
choices, the insights count exactly. Strings longer than `MAX_VALUE_LENGTH` are not kept as values.
The views see only the inserts made after they exist: on a table that already held events, run
`backfill_statements` once (README: schema discovery).
"""

from __future__ import annotations

from shared.contracts import property_types as pt

EVENT_CATALOGUE = "event_catalogue"
PROPERTY_CATALOGUE = "property_catalogue"
VALUE_CATALOGUE = "property_value_catalogue"
MAX_VALUE_LENGTH = 200
KINDS = ("string", "datetime", "number", "boolean", "null", "object", "array")


def kind_sql(raw: str) -> str:
    """The kind of a value (one of KINDS) from its JSON text."""
    text = f"JSONExtractString({raw})"
    return (
        f"multiIf(startsWith({raw}, '\"'), if(isNotNull({pt.date_ms(text)}), 'datetime', 'string'), "
        f"{raw} IN ('true', 'false'), 'boolean', {raw} = 'null', 'null', startsWith({raw}, '{{'), 'object', "
        f"startsWith({raw}, '['), 'array', 'number')"
    )


def events_select(database: str) -> str:
    return f"""
        SELECT event, count() AS seen, max(timestamp) AS last_seen
        FROM {database}.analytics_events GROUP BY event"""


def properties_select(database: str) -> str:
    return f"""
        SELECT event, kv.1 AS key, {kind_sql("kv.2")} AS kind, count() AS seen
        FROM {database}.analytics_events ARRAY JOIN JSONExtractKeysAndValuesRaw(properties) AS kv
        GROUP BY event, key, kind"""


def values_select(database: str) -> str:
    bucket = pt.bucket("kv.2")
    return f"""
        SELECT event, key, value.1 AS kind, value.2 AS number, value.3 AS text, count() AS seen
        FROM (SELECT event, kv.1 AS key, {bucket} AS value
              FROM {database}.analytics_events ARRAY JOIN JSONExtractKeysAndValuesRaw(properties) AS kv)
        WHERE kind != {pt.BUCKET_NONE} AND length(text) <= {MAX_VALUE_LENGTH}
        GROUP BY event, key, kind, number, text"""


def table_statements(database: str) -> list[str]:
    """The tables and the views feeding them (idempotent)."""
    return [
        f"""CREATE TABLE IF NOT EXISTS {database}.{EVENT_CATALOGUE}
        (event LowCardinality(String), seen SimpleAggregateFunction(sum, UInt64),
         last_seen SimpleAggregateFunction(max, DateTime64(3, 'UTC')))
        ENGINE = AggregatingMergeTree ORDER BY event""",
        f"""CREATE TABLE IF NOT EXISTS {database}.{PROPERTY_CATALOGUE}
        (event LowCardinality(String), key String, kind LowCardinality(String),
         seen SimpleAggregateFunction(sum, UInt64))
        ENGINE = AggregatingMergeTree ORDER BY (event, key, kind)""",
        f"""CREATE TABLE IF NOT EXISTS {database}.{VALUE_CATALOGUE}
        (event LowCardinality(String), key String, kind UInt8, number Float64, text String,
         seen SimpleAggregateFunction(sum, UInt64))
        ENGINE = AggregatingMergeTree ORDER BY (event, key, kind, number, text)""",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.{EVENT_CATALOGUE}_feed "
        f"TO {database}.{EVENT_CATALOGUE} AS {events_select(database)}",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.{PROPERTY_CATALOGUE}_feed "
        f"TO {database}.{PROPERTY_CATALOGUE} AS {properties_select(database)}",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.{VALUE_CATALOGUE}_feed "
        f"TO {database}.{VALUE_CATALOGUE} AS {values_select(database)}",
    ]


def backfill_statements(database: str) -> list[str]:
    """Fill the catalogue from the events already stored (once, right after the views were created)."""
    return [
        f"INSERT INTO {database}.{EVENT_CATALOGUE} {events_select(database)}",
        f"INSERT INTO {database}.{PROPERTY_CATALOGUE} {properties_select(database)}",
        f"INSERT INTO {database}.{VALUE_CATALOGUE} {values_select(database)}",
    ]
