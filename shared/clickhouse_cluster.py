"""The cluster form of shared/contracts/schema.sql, rendered from the same statements.

`CLICKHOUSE_CLUSTER=<name>` makes `ClickHouse.create_schema` run these instead of the single-node
statements. NOT RUN HERE: this machine has no ClickHouse server, so the cluster form is only checked
by ClickHouse's own parser (tests/shared/test_clickhouse_cluster_schema.py); see docs/scaling.md.

Every table keeps the name the services query, so no query changes:
* `analytics_events` (SHARDED): each shard holds `analytics_events_local`, a Replicated* copy of the
  single-node engine, and `analytics_events` becomes a Distributed table over them, sharded by
  EVENTS_SHARDING_KEY. Copies of an event_id share its user, so they land on one shard and each
  shard's FINAL collapses them. Aggregates over the Distributed table are two-level: shards send
  partial states (count, uniqExactState, groupUniqArray), the initiator merges them, and anything in
  an outer query (windowFunnel, window functions, GROUP BY user_id over a subquery) runs on the
  initiator over every shard's rows: exact when a person's events span shards.
* `metrics_snapshots` (EVERY_NODE): one Replicated* table with a replica on every node (a few
  thousand rows a year): the ETL's one insert block stays one part, fetched whole by every replica.
* `user_active_days` (PER_NODE): the refreshable view's target stays a plain MergeTree on each node,
  rebuilt by that node's view from the Distributed `analytics_events` (the whole cluster, so every
  node's summary is complete and a cohort read on any node is exact). Not Replicated because outside
  a Replicated database ClickHouse refuses a replace-mode refresh into a Replicated target and does
  not coordinate refreshes between nodes; each node paying for its own rebuild is the cost.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# How events are spread over shards: ONE place. A user's events sit on one shard. The persons work
# switches this to the person id; it must stay a function of what every copy of an event shares
# (a replay or a retry re-sends the same row), or FINAL on each shard cannot collapse the copies.
EVENTS_SHARDING_KEY = "cityHash64(user_id)"

SHARDED = {"analytics_events": EVENTS_SHARDING_KEY}
EVERY_NODE = {"metrics_snapshots"}
PER_NODE = {"user_active_days"}
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
CREATE_VIEW = re.compile(
    r"^CREATE MATERIALIZED VIEW IF NOT EXISTS (?P<db>\w+)\.(?P<view>\w+)(?P<rest>\s.*)$", re.DOTALL
)


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
    match = CREATE_VIEW.match(statement)
    if match:
        view = f"{match['db']}.{match['view']}"
        return [f"CREATE MATERIALIZED VIEW IF NOT EXISTS {view} ON CLUSTER {cluster}{match['rest']}"]
    raise ValueError(f"no cluster form for this statement; teach shared/clickhouse_cluster.py:\n{statement}")


def render_table(match: re.Match[str], cluster: str) -> list[str]:
    db, table, engine, args = match["db"], match["table"], match["engine"], match["args"]
    head = f"CREATE TABLE IF NOT EXISTS {db}.{{name}} ON CLUSTER {cluster}{match['columns']}\nENGINE = "
    if table in SHARDED:
        local = table + LOCAL_SUFFIX
        path = SHARD_PATH.format(database=db, table=table)
        return [
            head.format(name=local) + replicated(engine, path, args) + match["rest"],
            f"CREATE TABLE IF NOT EXISTS {db}.{table} ON CLUSTER {cluster} AS {db}.{local}\n"
            f"ENGINE = Distributed({cluster}, {db}, {local}, {SHARDED[table]})",
        ]
    if table in EVERY_NODE:
        path = EVERY_NODE_PATH.format(database=db, table=table)
        return [head.format(name=table) + replicated(engine, path, args) + match["rest"]]
    if table in PER_NODE:
        return [head.format(name=table) + engine + (f"({args})" if args is not None else "") + match["rest"]]
    raise ValueError(f"table {table} has no cluster layout: add it to SHARDED, EVERY_NODE or PER_NODE")


def replicated(engine: str, path: str, args: str | None) -> str:
    """`ReplacingMergeTree(v)` -> `ReplicatedReplacingMergeTree('<path>', '{replica}', v)`."""
    if not engine.endswith("MergeTree") or engine.startswith("Replicated"):
        raise ValueError(f"cannot replicate engine {engine}")
    extra = f", {args}" if args else ""
    return f"Replicated{engine}('{path}', '{{replica}}'{extra})"


def render_alter(match: re.Match[str], cluster: str) -> list[str]:
    """An ALTER applies to the local tables; a new column also to the Distributed table in front."""
    db, table, rest = match["db"], match["table"], match["rest"]
    if table not in SHARDED:
        return [f"ALTER TABLE {db}.{table} ON CLUSTER {cluster}{rest}"]
    statements = [f"ALTER TABLE {db}.{table}{LOCAL_SUFFIX} ON CLUSTER {cluster}{rest}"]
    if rest.lstrip().upper().startswith("ADD COLUMN"):
        statements.append(f"ALTER TABLE {db}.{table} ON CLUSTER {cluster}{rest}")
    return statements
