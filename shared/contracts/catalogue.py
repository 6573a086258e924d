"""The schema catalogue: which events, property names (with the kinds of their values) and property
values exist, kept by ClickHouse itself. Two materialized views add every block inserted into
analytics_events to two small aggregating tables: per event (count, last seen), and per (event,
property) the count of each kind of value and a bounded summary of the most frequent values. So
discovery reads a few thousand rows instead of scanning all properties (README: schema discovery).

The kinds and values follow the typing rule (property_types.py). The counts count stored rows: a
replayed or retried copy counts again (the catalogue sees inserts, not FINAL); they guide a UI's
choices, the insights count exactly. Strings longer than `MAX_VALUE_LENGTH` are not kept as values.
What it costs: each insert into analytics_events does this work too; measured once, an insert of 20,000
events of 9 properties took about twice as long with the views (`make bench`'s processor_drain is the
figure to watch).
The views see only the inserts made after they exist: on a table that already held events, run
`backfill_statements` once (README: schema discovery).
"""

from __future__ import annotations

EVENT_CATALOGUE = "event_catalogue"
PROPERTY_CATALOGUE = "property_catalogue"
MAX_VALUE_LENGTH = 200
# Each (event, property) keeps its most frequent values as a Space-Saving summary of TOP_VALUES
# counters (approx_top_k): counts are exact while the property has at most TOP_VALUES distinct values
# (beyond, each count may be over by the reported error). Bounded, so an id-like property costs a
# thousand counters, not a row per id.
TOP_VALUES = 1000
TOP_STATE = f"approx_top_k({TOP_VALUES}, {TOP_VALUES})"
KINDS = ("string", "number", "boolean", "null", "object", "array")


def kind_sql(raw: str) -> str:
    """The kind of a value from its JSON text by its first character (a string's "datetime" is judged
    when read, on the values kept: `services/query/discovery.py`)."""
    return (
        f"multiIf(startsWith({raw}, '\"'), 'string', {raw} IN ('true', 'false'), 'boolean', {raw} = 'null', "
        f"'null', startsWith({raw}, '{{'), 'object', startsWith({raw}, '['), 'array', 'number')"
    )


def events_select(database: str) -> str:
    return f"""
        SELECT event, count() AS seen, max(timestamp) AS last_seen
        FROM {database}.analytics_events GROUP BY event"""


def properties_select(database: str) -> str:
    """Per (event, property) of an insert: how often each kind was seen, and a summary of the scalar
    values' JSON texts (ClickHouse writes each number in one canonical form); one pass over the keys."""
    kinds = ", ".join(f"countIf(kind = '{kind}') AS {kind}_seen" for kind in KINDS)
    state = TOP_STATE.replace("approx_top_k", "approx_top_kStateIf")
    keep = f"kind IN ('string', 'number', 'boolean') AND length(kv.2) <= {MAX_VALUE_LENGTH + 2}"
    return f"""
        SELECT event, kv.1 AS key, {kinds}, {state}(kv.2, {keep}) AS top
        FROM (SELECT event, kv, {kind_sql("kv.2")} AS kind
              FROM {database}.analytics_events ARRAY JOIN JSONExtractKeysAndValuesRaw(properties) AS kv)
        GROUP BY event, key"""


def table_statements(database: str) -> list[str]:
    """The tables and the views feeding them (idempotent)."""
    kinds = ", ".join(f"{kind}_seen SimpleAggregateFunction(sum, UInt64)" for kind in KINDS)
    return [
        f"""CREATE TABLE IF NOT EXISTS {database}.{EVENT_CATALOGUE}
        (event LowCardinality(String), seen SimpleAggregateFunction(sum, UInt64),
         last_seen SimpleAggregateFunction(max, DateTime64(3, 'UTC')))
        ENGINE = AggregatingMergeTree ORDER BY event""",
        f"""CREATE TABLE IF NOT EXISTS {database}.{PROPERTY_CATALOGUE}
        (event LowCardinality(String), key String, {kinds},
         top AggregateFunction({TOP_STATE}, String))
        ENGINE = AggregatingMergeTree ORDER BY (event, key)""",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.{EVENT_CATALOGUE}_feed "
        f"TO {database}.{EVENT_CATALOGUE} AS {events_select(database)}",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.{PROPERTY_CATALOGUE}_feed "
        f"TO {database}.{PROPERTY_CATALOGUE} AS {properties_select(database)}",
    ]


def backfill_statements(database: str) -> list[str]:
    """Fill the catalogue from the events already stored (once, right after the views were created)."""
    return [
        f"INSERT INTO {database}.{EVENT_CATALOGUE} {events_select(database)}",
        f"INSERT INTO {database}.{PROPERTY_CATALOGUE} {properties_select(database)}",
    ]
