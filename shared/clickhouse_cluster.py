"""The cluster form of shared/contracts/schema.sql, rendered from the same statements, and of the few
statements the services run besides SELECTs and inserts.

`CLICKHOUSE_CLUSTER=<name>` makes `ClickHouse.create_schema` run these instead of the single-node
statements, and `ClickHouse.command`/`insert_json_rows`/`query` go through `ClusterForm`. NOT RUN
HERE: this machine has no ClickHouse server, so the cluster form is only checked by ClickHouse's own
parser (tests/shared/test_clickhouse_cluster_schema.py). Why each table has its layout, and why
answers stay exact when a person's events span shards: docs/scaling.md, "Exact answers across shards".

Every table keeps the name the services use, so no SELECT changes. Layouts:
* SHARDED: `<table>_local` on each shard (a Replicated* copy of the single-node engine) and a
  Distributed `<table>` in front, sharded by a hash of the row's distinct id, which every copy of an
  event (a retry, a replay) shares: copies land on one shard and its FINAL collapses them, and an id's
  events, number and property updates sit together.
* EVERY_NODE: one Replicated* table with a replica on every server (one keeper path for the whole
  cluster): what every server must hold whole, because a dictionary on each server reads it or every
  processor reads it all.
* PER_NODE: a plain table on each server, filled on that server (the cohort summary's refresh).
* SUMMARIES: what a materialized view keeps of every insert into a sharded table (the schema
  catalogue): `<table>_local` per shard, fed by the view on the shard's local table, and a Distributed
  `<table>` in front whose readers merge the shards' partial states.
* DICTIONARY_FORM: a single-node table that the cluster form replaces by a dictionary of the same
  name on each server (a Join table is per server and not replicated).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from shared.contracts.catalogue import EVENT_CATALOGUE, PROPERTY_CATALOGUE
from shared.contracts.storage import (
    ACTIVE_DAYS_TABLE,
    DELETIONS_TABLE,
    DISTINCT_IDS_TABLE,
    EVENTS_TABLE,
    LINKS_TABLE,
    OVERRIDES_TABLE,
    PERSON_PROPERTIES,
    PERSON_PROPERTIES_INDEX,
    PERSON_PROPERTIES_TABLE,
    PROPERTY_UPDATES_TABLE,
    SAVED_ITEMS_TABLE,
    SNAPSHOTS_TABLE,
    TOMBSTONES_TABLE,
)

# How rows are spread over shards: ONE rule, a hash of the distinct id (`user_id` in the events). It
# must stay a function of what every copy of an event shares: a person id resolved again on a retry
# after a merge would send the copy to another shard, where FINAL cannot collapse it with the first.
SHARDING_HASH = "cityHash64({column})"
SHARDED = {
    EVENTS_TABLE: SHARDING_HASH.format(column="user_id"),
    DISTINCT_IDS_TABLE: SHARDING_HASH.format(column="distinct_id"),
    PROPERTY_UPDATES_TABLE: SHARDING_HASH.format(column="distinct_id"),
}
EVENTS_SHARDING_KEY = SHARDED[EVENTS_TABLE]
EVERY_NODE = {
    LINKS_TABLE,
    OVERRIDES_TABLE,
    PERSON_PROPERTIES_TABLE,
    DELETIONS_TABLE,
    TOMBSTONES_TABLE,
    SNAPSHOTS_TABLE,
    SAVED_ITEMS_TABLE,
}
PER_NODE = {ACTIVE_DAYS_TABLE}
# A materialized view fires for the inserts on its own server, never for parts a replica fetches, so a
# summary of a sharded table is kept per shard: each shard's view reads the shard's local table and
# writes the shard's local summary (Replicated: its replicas fetch it). A summary row is a partial
# state and every reader aggregates (sum, max, approx_top_kMerge by GROUP BY), so the Distributed table
# in front merges the shards' states on the initiator: an event name seen on two shards is counted
# whole. Its sharding key only routes an insert made through the front (catalogue.backfill_statements).
SUMMARIES = {
    EVENT_CATALOGUE: SHARDING_HASH.format(column="event"),
    PROPERTY_CATALOGUE: SHARDING_HASH.format(column="event"),
}
# Every table with a `_local` table per shard and a Distributed table of its name in front.
PER_SHARD = {**SHARDED, **SUMMARIES}


@dataclass(frozen=True)
class DictionaryForm:
    """A table whose cluster form is a hashed dictionary over an EVERY_NODE table."""

    source: str  # the EVERY_NODE table it is loaded from, read with FINAL
    lifetime: tuple[int, int]  # seconds between checks of the source for a change (then a full load)


# The person-properties index is a Join table on one server. On a cluster each server must hold every
# person's properties (it evaluates storage.PERSON_PROPERTIES on its shard's rows), and a Join table is
# neither replicated nor deletable but by TRUNCATE: a dictionary over person_properties, which has a
# replica on every server, gives each server the whole index and loses a deleted person at its next
# load. Its cost is a full load per change, at most one per 5 s per server (docs/scaling.md).
DICTIONARY_FORM = {PERSON_PROPERTIES_INDEX: DictionaryForm(PERSON_PROPERTIES_TABLE, (5, 10))}
# The expressions that read such a table, as the services write them, and as the cluster reads them.
EXPRESSIONS = {PERSON_PROPERTIES: PERSON_PROPERTIES.replace("joinGetOrNull(", "dictGetOrNull(", 1)}

LOCAL_SUFFIX = "_local"
# Keeper paths: {shard} and {replica} are macros each server defines (deploy/clickhouse/cluster/).
SHARD_PATH = "/clickhouse/tables/{{shard}}/{database}/{table}"
EVERY_NODE_PATH = "/clickhouse/tables/all/{database}/{table}"

CREATE_TABLE = re.compile(
    r"^CREATE TABLE IF NOT EXISTS (?P<db>\w+)\.(?P<table>\w+)(?P<columns>\s*\(.*?\))\s*"
    r"ENGINE = (?P<engine>\w+)(?:\((?P<args>[^)]*)\))?(?P<rest>.*)$",
    re.DOTALL,
)
ALTER_TABLE = re.compile(r"^ALTER TABLE (?P<db>\w+)\.(?P<table>\w+)(?P<rest>\s.*)$", re.DOTALL)
CREATE_NAMED = re.compile(
    r"^(?P<kind>CREATE MATERIALIZED VIEW IF NOT EXISTS|CREATE DICTIONARY IF NOT EXISTS|DROP VIEW IF EXISTS) "
    r"(?P<name>\w+\.\w+)(?P<rest>.*)$",
    re.DOTALL,
)
# A view fed by inserts (no REFRESH): `TO db.target AS SELECT ... FROM db.source ...`.
INSERT_VIEW = re.compile(
    r"^\s+TO (?P<db>\w+)\.(?P<target>\w+) AS(?P<select>.*\bFROM (?P=db)\.(?P<source>\w+)\b.*)$", re.DOTALL
)
FIRST_COLUMN = re.compile(r"\(\s*(\w+)")


def cluster_statements(statements: Iterable[str], database: str, cluster: str) -> list[str]:
    """The cluster form of single-node DDL statements (CREATE DATABASE first)."""
    rendered = [f"CREATE DATABASE IF NOT EXISTS {database} ON CLUSTER {cluster}"]
    for statement in statements:
        rendered += render(statement, cluster)
    return rendered


def render(statement: str, cluster: str) -> list[str]:
    for pattern, renderer in ((CREATE_TABLE, render_table), (ALTER_TABLE, render_alter)):
        match = pattern.match(statement)
        if match:
            return renderer(match, cluster)
    match = CREATE_NAMED.match(statement)
    if match:
        rest = match["rest"]
        if (view := INSERT_VIEW.match(rest)) and match["kind"].startswith("CREATE MATERIALIZED VIEW"):
            rest = render_insert_view(view)
        return [f"{match['kind']} {match['name']} ON CLUSTER {cluster}{rest}"]
    raise ValueError(f"no cluster form for this statement; teach shared/clickhouse_cluster.py:\n{statement}")


def render_insert_view(view: re.Match[str]) -> str:
    """A view fed by the inserts into a sharded table: from the shard's local table to the shard's
    local summary (a view on the Distributed table would fire on whichever server took the insert)."""
    db, target, source = view["db"], view["target"], view["source"]
    if target not in SUMMARIES or source not in SHARDED:
        raise ValueError(f"no cluster form for a view from {source} to {target}: add {target} to SUMMARIES")
    select = re.sub(rf"\bFROM {db}\.{source}\b", f"FROM {db}.{source}{LOCAL_SUFFIX}", view["select"])
    return f"\nTO {db}.{target}{LOCAL_SUFFIX} AS{select}"


def render_table(match: re.Match[str], cluster: str) -> list[str]:
    db, table, engine, args = match["db"], match["table"], match["engine"], match["args"]
    head = f"CREATE TABLE IF NOT EXISTS {db}.{{name}} ON CLUSTER {cluster}{match['columns']}\nENGINE = "
    if table in PER_SHARD:
        local = table + LOCAL_SUFFIX
        path = SHARD_PATH.format(database=db, table=table)
        return [
            head.format(name=local) + replicated(engine, path, args) + match["rest"],
            f"CREATE TABLE IF NOT EXISTS {db}.{table} ON CLUSTER {cluster} AS {db}.{local}\n"
            f"ENGINE = Distributed({cluster}, {db}, {local}, {PER_SHARD[table]})",
        ]
    if table in EVERY_NODE:
        path = EVERY_NODE_PATH.format(database=db, table=table)
        return [head.format(name=table) + replicated(engine, path, args) + match["rest"]]
    if table in PER_NODE:
        return [head.format(name=table) + engine + (f"({args})" if args is not None else "") + match["rest"]]
    if table in DICTIONARY_FORM:
        return [dictionary(db, table, match["columns"], DICTIONARY_FORM[table], cluster)]
    raise ValueError(
        f"table {table} has no cluster layout: add it to SHARDED, SUMMARIES, EVERY_NODE, PER_NODE or "
        "DICTIONARY_FORM"
    )


def replicated(engine: str, path: str, args: str | None) -> str:
    """`ReplacingMergeTree(v)` -> `ReplicatedReplacingMergeTree('<path>', '{replica}', v)`."""
    if not engine.endswith("MergeTree") or engine.startswith("Replicated"):
        raise ValueError(f"cannot replicate engine {engine}")
    extra = f", {args}" if args else ""
    return f"Replicated{engine}('{path}', '{{replica}}'{extra})"


def dictionary(db: str, name: str, columns: str, form: DictionaryForm, cluster: str) -> str:
    """A hashed dictionary keyed by the table's first column, loaded from `form.source` FINAL."""
    if form.source not in EVERY_NODE:
        raise ValueError(f"{name}'s source {form.source} must have a replica on every server")
    match = FIRST_COLUMN.match(columns.strip())
    if match is None:
        raise ValueError(f"no key column in {columns}")
    names = ", ".join(re.findall(r"[(,]\s*(\w+)\s", columns))
    low, high = form.lifetime
    return (
        f"CREATE DICTIONARY IF NOT EXISTS {db}.{name} ON CLUSTER {cluster}{columns}\n"
        f"PRIMARY KEY {match.group(1)}\n"
        f"SOURCE(CLICKHOUSE(QUERY 'SELECT {names} FROM {db}.{form.source} FINAL'\n"
        f"    INVALIDATE_QUERY 'SELECT max(version), count() FROM {db}.{form.source}'))\n"
        f"LAYOUT(HASHED())\nLIFETIME(MIN {low} MAX {high})"
    )


def render_alter(match: re.Match[str], cluster: str) -> list[str]:
    """An ALTER applies to the local tables; a new column also to the Distributed table in front."""
    db, table, rest = match["db"], match["table"], match["rest"]
    if table not in PER_SHARD:
        return [f"ALTER TABLE {db}.{table} ON CLUSTER {cluster}{rest}"]
    statements = [f"ALTER TABLE {db}.{table}{LOCAL_SUFFIX} ON CLUSTER {cluster}{rest}"]
    if rest.lstrip().upper().startswith("ADD COLUMN"):
        statements.append(f"ALTER TABLE {db}.{table} ON CLUSTER {cluster}{rest}")
    return statements


DELETE = re.compile(r"^DELETE FROM (?P<table>\w+)(?P<rest>\s+WHERE\s.*)$", re.DOTALL)
TRUNCATE = re.compile(r"^TRUNCATE TABLE (?P<table>\w+)$")
RELOAD = re.compile(r"^SYSTEM RELOAD DICTIONARY (?P<name>\w+\.\w+)$")
INSERT_SELECT = re.compile(r"^INSERT INTO (?:\w+\.)?(?P<table>\w+)(?P<rest>\s.*)$", re.DOTALL)
# An ON CLUSTER statement queued for every server without waiting for them (a server that is down
# runs it when it is back): a reload must never hold a stream processor up.
WITHOUT_WAITING = {"distributed_ddl_task_timeout": 0}

Statement = tuple[str, dict[str, Any]]  # SQL and the settings it runs with


@dataclass(frozen=True)
class ClusterForm:
    """What a service's statement becomes on the cluster `cluster` (database `database`)."""

    database: str
    cluster: str

    def statement(self, sql: str) -> Statement | None:
        """The cluster form of a non-SELECT statement (None: nothing to run); anything this does not
        know is refused, never run in its single-node form."""
        sql = sql.strip()
        if match := DELETE.match(sql):
            return self.delete(match["table"], match["rest"])
        if match := TRUNCATE.match(sql):
            return self.truncate(match["table"])
        if match := RELOAD.match(sql):
            # Every server reloads; the dictionary's lifetime catches a reload that ran before the
            # replicated rows arrived.
            return f"SYSTEM RELOAD DICTIONARY ON CLUSTER {self.cluster} {match['name']}", WITHOUT_WAITING
        if (match := INSERT_SELECT.match(sql)) and match["table"] not in PER_NODE:
            if match["table"] in DICTIONARY_FORM:
                return None  # the dictionary loads what was written to its source
            return self.expressions(sql), {}
        raise ValueError(f"no cluster form for this statement; teach shared/clickhouse_cluster.py:\n{sql}")

    def delete(self, table: str, where: str) -> Statement:
        """A lightweight DELETE: on each shard's local table, or on every server's own table. On an
        EVERY_NODE table the replicas apply it through replication."""
        if table in PER_SHARD:
            return f"DELETE FROM {self.database}.{table}{LOCAL_SUFFIX} ON CLUSTER {self.cluster}{where}", {}
        if table in PER_NODE:
            return f"DELETE FROM {self.database}.{table} ON CLUSTER {self.cluster}{where}", {}
        if table in EVERY_NODE:
            return f"DELETE FROM {self.database}.{table}{where}", {}
        raise ValueError(f"no cluster form for a DELETE on {table}")

    def truncate(self, table: str) -> Statement:
        if table in DICTIONARY_FORM:  # emptied to be filled again: the dictionary reloads instead
            name = f"{self.database}.{table}"
            return f"SYSTEM RELOAD DICTIONARY ON CLUSTER {self.cluster} {name}", WITHOUT_WAITING
        if table in PER_SHARD:
            return f"TRUNCATE TABLE {self.database}.{table}{LOCAL_SUFFIX} ON CLUSTER {self.cluster}", {}
        if table in PER_NODE or table in EVERY_NODE:
            return f"TRUNCATE TABLE {self.database}.{table} ON CLUSTER {self.cluster}", {}
        raise ValueError(f"no cluster form for a TRUNCATE of {table}")

    def insert_target(self, table: str) -> str | None:
        """Where rows for `table` go (the Distributed table or the local replica: the same name);
        None for a table the cluster replaces by a dictionary."""
        if table in DICTIONARY_FORM:
            return None
        if table in PER_NODE:
            raise ValueError(f"an insert into {table} would reach one server only")
        return table

    def expressions(self, sql: str) -> str:
        """The SQL with every expression that reads a replaced table in its cluster form."""
        for single, cluster in EXPRESSIONS.items():
            sql = sql.replace(single, cluster)
        return sql
