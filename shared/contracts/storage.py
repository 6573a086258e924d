"""What ClickHouse holds, as every reader and writer must name it: the tables, the settings a reader
or a writer needs, and the schema itself (`schema.sql`, package data, applied at start-up)."""

from __future__ import annotations

from importlib.resources import files

from shared.contracts import catalogue

EVENTS_TABLE = "analytics_events"
SNAPSHOTS_TABLE = "metrics_snapshots"
SAVED_ITEMS_TABLE = "saved_items"  # saved insights and dashboards (services/query/saved_store.py)
# Every distinct id's active days, rebuilt by ACTIVE_DAYS_REFRESH (why and how: schema.sql).
ACTIVE_DAYS_TABLE = "user_active_days"
ACTIVE_DAYS_REFRESH = "user_active_days_rebuild"
# Persons (shared/contracts/persons.py; written by the stream processors).
DISTINCT_IDS_TABLE = "distinct_ids"
LINKS_TABLE = "person_links"
OVERRIDES_TABLE = "person_overrides"
PERSON_NUMBERS = "person_numbers"  # the dictionary did -> person number over OVERRIDES_TABLE
PROPERTY_UPDATES_TABLE = "person_property_updates"
PERSON_PROPERTIES_TABLE = "person_properties"
PERSON_PROPERTIES_INDEX = "person_properties_index"  # in memory: person number -> properties JSON
DELETIONS_TABLE = "person_deletions"
TOMBSTONES_TABLE = "deleted_distinct_ids"

# Readers deduplicate with FINAL; partitions never share an event_id key, so each is done on its own.
FINAL_SETTINGS = {"do_not_merge_across_partitions_select_final": 1}
# The insert settings a `StoredEvent.to_message` row needs; set explicitly, whatever the server's defaults.
ROW_SETTINGS = {"date_time_input_format": "best_effort", "input_format_json_read_objects_as_strings": 1}
# The person an analytics_events row belongs to, as a SQL expression over the row: every answer that
# counts people selects it `AS person` and groups by that. A UInt64: the number of the person's key,
# which for a distinct id in no merged person is its own number (`did`).
PERSON = f"dictGetOrDefault('{PERSON_NUMBERS}', 'person', did, did)"
# True for a row whose distinct id belongs to a merged person (two or more distinct ids).
IN_MERGED_PERSON = f"dictHas('{PERSON_NUMBERS}', did)"
# The JSON text (an object) of the properties of that row's person, as a SQL expression; filters and
# breakdowns on person properties read it as they read `properties`.
PERSON_PROPERTIES = f"coalesce(joinGetOrNull('{PERSON_PROPERTIES_INDEX}', 'properties', {PERSON}), '{{}}')"
# A date range (`dates.DateRange.parameters()`) on analytics_events.
RANGE_FILTER = (
    "timestamp >= {range_start:DateTime64(3, 'UTC')} AND timestamp < {range_end:DateTime64(3, 'UTC')}"
)


def schema_text() -> str:
    return files("shared.contracts").joinpath("schema.sql").read_text()


def schema_statements(database: str) -> list[str]:
    """The DDL of schema.sql for one database, statement by statement, then the schema catalogue's
    (built from the typing rule's SQL: catalogue.py)."""
    lines = [line for line in schema_text().splitlines() if not line.strip().startswith("--")]
    statements = [s.strip().replace("{database}", database) for s in "\n".join(lines).split(";") if s.strip()]
    return statements + catalogue.table_statements(database)
