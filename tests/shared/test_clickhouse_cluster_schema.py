"""The ClickHouse cluster form ON PAPER: the schema rendered from shared/contracts/schema.sql, and the
statements the services run rendered by `ClusterForm`, all checked by ClickHouse's own parser (chDB's
formatQuery). This machine has no ClickHouse server, so no statement here is executed against a
cluster: nothing below tests more than parsing and naming."""

from __future__ import annotations

import ast
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from services.stream import person_properties
from services.stream.deletions import delete_rows
from services.stream.persons import number_unnumbered_events
from services.stream.resolver import Resolver
from shared.clickhouse import ClickHouse
from shared.clickhouse_cluster import (
    DICTIONARY_FORM,
    EVENTS_SHARDING_KEY,
    EVERY_NODE,
    PER_NODE,
    SHARDED,
    SUMMARIES,
    ClusterForm,
    cluster_statements,
)
from shared.contracts import catalogue, materialized, storage
from shared.contracts.persons import Link
from shared.contracts.storage import schema_statements
from tests.support import REPO

DATABASE, CLUSTER = "analytics", "analytics_cluster"
QUERYING_SERVICES = ("query", "etl", "stream")
CREATED = re.compile(r"^CREATE (?:TABLE|MATERIALIZED VIEW|DICTIONARY) IF NOT EXISTS \w+\.(\w+)")
ENGINE = re.compile(r"\nENGINE = (\w+)")
TABLE_AFTER_KEYWORD = re.compile(r"\b(?:FROM|JOIN|INTO)\s+([A-Za-z_][A-Za-z0-9_]*)\b(?!\s*\()")
NAMED_IN_FUNCTION = re.compile(r"\b(?:dictGet\w*|dictHas|joinGet\w*)\('(\w+)'")
SQL_WORDS = {"SELECT", "FINAL", "numbers", "system"}


def single_form() -> list[str]:
    """What ClickHouse.create_schema runs (the materialized columns of the default keys last)."""
    return schema_statements(DATABASE) + materialized.add_column_statements(
        DATABASE, materialized.DEFAULT_KEYS
    )


def cluster_form() -> list[str]:
    return cluster_statements(single_form(), DATABASE, CLUSTER)


def created(statements: list[str]) -> set[str]:
    return {m.group(1) for s in statements if (m := CREATED.match(s))}


async def formatted(clickhouse: ClickHouse, statement: str) -> str:
    [(text,)] = await clickhouse.query("SELECT formatQuery({q:String})", {"q": statement})
    return str(text)


async def test_cluster_schema_parses(clickhouse: ClickHouse) -> None:
    """Every statement of the cluster form is valid ClickHouse SQL (parsed, never run)."""
    for statement in cluster_form():
        assert "ON CLUSTER " + CLUSTER in await formatted(clickhouse, statement), statement


def engines() -> dict[str, str]:
    found = {}
    for statement in cluster_form():
        name, engine = CREATED.match(statement), ENGINE.search(statement)
        if name and engine:
            found[name.group(1)] = engine.group(1)
        elif name and statement.startswith("CREATE DICTIONARY"):
            found[name.group(1)] = "DICTIONARY"
    return found


def test_materialized_columns_are_added_to_the_local_and_the_distributed_events_tables() -> None:
    column = materialized.column_name("plan")
    added = [s for s in cluster_form() if f"ADD COLUMN IF NOT EXISTS {column} " in s]
    tables = {re.match(r"ALTER TABLE \w+\.(\w+) ON CLUSTER", s).group(1) for s in added}  # type: ignore[union-attr]
    assert tables == {storage.EVENTS_TABLE, storage.EVENTS_TABLE + "_local"}


async def test_cluster_schema_parses_to_the_intended_layouts(clickhouse: ClickHouse) -> None:
    """Replicated engines with keeper paths and replica macros; Distributed tables sharded by the
    distinct id; the refresh target per server; the Join index replaced by a dictionary on every server
    over a table with a replica on every server (shared/clickhouse_cluster.py, docs/scaling.md)."""
    replicated = "ReplicatedReplacingMergeTree"
    assert engines() == {
        "analytics_events_local": replicated,
        "analytics_events": "Distributed",
        "distinct_ids_local": replicated,
        "distinct_ids": "Distributed",
        "person_property_updates_local": replicated,
        "person_property_updates": "Distributed",
        "person_links": replicated,
        "person_overrides": replicated,
        "person_numbers": "DICTIONARY",
        "person_properties": replicated,
        "person_properties_index": "DICTIONARY",
        "person_deletions": replicated,
        "deleted_distinct_ids": replicated,
        "user_active_days": "MergeTree",
        "metrics_snapshots": replicated,
        "saved_items": replicated,
        "event_catalogue_local": "ReplicatedAggregatingMergeTree",
        "event_catalogue": "Distributed",
        "property_catalogue_local": "ReplicatedAggregatingMergeTree",
        "property_catalogue": "Distributed",
    }
    statements = cluster_form()
    [events] = [s for s in statements if "analytics_events ON CLUSTER" in s and "Distributed(" in s]
    assert f"Distributed({CLUSTER}, {DATABASE}, analytics_events_local, {EVENTS_SHARDING_KEY})" in (
        await formatted(clickhouse, events)
    )
    for table in ("distinct_ids", "person_property_updates"):
        [front] = [s for s in statements if f"{table} ON CLUSTER" in s and "Distributed(" in s]
        assert f"{table}_local, cityHash64(distinct_id))" in await formatted(clickhouse, front)
    [local] = [s for s in statements if "analytics_events_local ON CLUSTER" in s and "CREATE" in s]
    assert "'/clickhouse/tables/{shard}/analytics/analytics_events', '{replica}', received_at)" in local
    [links] = [s for s in statements if "person_links ON CLUSTER" in s]
    assert "'/clickhouse/tables/all/analytics/person_links', '{replica}', received_at)" in links
    [index] = [s for s in statements if "person_properties_index ON CLUSTER" in s]
    assert "FROM analytics.person_properties FINAL" in index and "LAYOUT(HASHED())" in index
    [saved] = [s for s in statements if "saved_items ON CLUSTER" in s]
    assert "'/clickhouse/tables/all/analytics/saved_items', '{replica}', updated_at, deleted)" in saved


async def test_the_catalogue_views_feed_each_shard_from_its_own_events(clickhouse: ClickHouse) -> None:
    """The schema catalogue's views fire on the inserts into each shard's local events table and write
    that shard's local summary; the refreshable cohort view still reads the whole cluster."""
    statements = cluster_form()
    for summary in (catalogue.EVENT_CATALOGUE, catalogue.PROPERTY_CATALOGUE):
        [view] = [s for s in statements if f"{summary}_feed ON CLUSTER" in s]
        text = await formatted(clickhouse, view)
        assert f"TO {DATABASE}.{summary}_local" in text, text
        assert f"FROM {DATABASE}.analytics_events_local" in text, text
        assert f"FROM {DATABASE}.analytics_events " not in text.replace("\n", " ") + " ", text
        [front] = [s for s in statements if f"{summary} ON CLUSTER" in s and "Distributed(" in s]
        assert f"{summary}_local, cityHash64(event))" in await formatted(clickhouse, front)
    [refresh] = [s for s in statements if "user_active_days_rebuild ON CLUSTER" in s]
    assert f"FROM {DATABASE}.analytics_events FINAL" in refresh
    # The backfill of a catalogue made after events were stored goes through the Distributed tables.
    form = ClusterForm(DATABASE, CLUSTER)
    for statement in catalogue.backfill_statements(DATABASE):
        rendered = form.statement(statement)
        assert rendered is not None and rendered[0] == statement
        await formatted(clickhouse, statement)


def test_every_table_has_a_cluster_layout() -> None:
    tables = {m.group(1) for s in single_form() if (m := CREATED.match(s)) and s.startswith("CREATE TABLE")}
    assert tables == set(SHARDED) | set(SUMMARIES) | EVERY_NODE | PER_NODE | set(DICTIONARY_FORM)
    assert all(" ON CLUSTER " in s for s in cluster_form())
    # A dictionary on each server reads its own replica of its source: the source must be whole there.
    assert {form.source for form in DICTIONARY_FORM.values()} <= EVERY_NODE
    assert "person_overrides FINAL" in next(s for s in cluster_form() if "person_numbers ON CLUSTER" in s)


CONTRACT_MODULES = {"shared.contracts.storage": storage, "shared.contracts.catalogue": catalogue}


def contract_names(module: object) -> dict[str, set[str]]:
    """Constant name -> the tables and dictionaries its value names (a name, or an expression)."""
    found = {}
    for name, value in vars(module).items():
        if name.isupper() and isinstance(value, str):
            if re.fullmatch(r"[a-z_]+", value):
                found[name] = {value}
            elif named := set(NAMED_IN_FUNCTION.findall(value)):
                found[name] = named
    return found


def names_the_services_use() -> set[str]:
    """Tables and dictionaries in the SQL of services/{query,etl,stream}: literal names after FROM,
    JOIN or INTO, and what every storage or catalogue constant they import names (expressions included)."""
    known = {module: contract_names(value) for module, value in CONTRACT_MODULES.items()}
    names: set[str] = set()
    for service in QUERYING_SERVICES:
        for path in sorted((REPO / "services" / service).glob("*.py")):
            source = path.read_text()
            names |= {n for n in TABLE_AFTER_KEYWORD.findall(source) if n not in SQL_WORDS}
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, ast.ImportFrom) and node.module in known:
                    names |= {n for alias in node.names for n in known[node.module].get(alias.name, set())}
    return names - {"numbers_to_apply"}  # the single-node migration's own table (refused on a cluster)


@pytest.mark.parametrize("form", [single_form, cluster_form], ids=["single_node", "cluster_on_paper"])
def test_every_table_and_dictionary_the_services_name_exists(form) -> None:  # noqa: ANN001
    used = names_the_services_use()
    # the search works: the persons tables, the dictionary (through storage.PERSON), the index, the
    # saved items and the catalogue (through catalogue's constants)
    persons = {"analytics_events", "person_numbers", "person_properties_index", "distinct_ids"}
    assert persons | {"saved_items", "event_catalogue", "property_catalogue"} <= used, used
    missing = used - created(form())
    assert not missing, f"named but not created: {missing}"


class Recorder(ClickHouse):
    """A cluster-form client that runs nothing: it records what it would send."""

    def __init__(self) -> None:
        super().__init__("http://nowhere:8123/analytics", DATABASE, cluster=CLUSTER)
        self.sent: list[tuple[str, Any]] = []

    async def _run(self, fn: Any, *args: Any) -> Any:
        self.sent.append((getattr(fn, "__name__", "command"), args))
        return []

    def statements(self) -> list[str]:
        return [args[0] for kind, args in self.sent if kind != "_insert_block"]

    def inserts(self) -> list[str]:
        return [args[0] for kind, args in self.sent if kind == "_insert_block"]


async def test_the_statements_the_services_run_have_a_cluster_form(clickhouse: ClickHouse) -> None:
    """A person deletion, the index rebuild and a resolver write, through the services' own code on a
    recording cluster-form client: each statement sent parses, and names the cluster's tables."""
    recorder = Recorder()
    await delete_rows(recorder, ["gone-1", "gone-2"])
    await person_properties.rebuild_index(recorder)
    moment = datetime(2023, 3, 1, tzinfo=UTC)
    resolver = Resolver(recorder)
    resolver.numbers = {"anon": 7, "user": 9}
    resolver.graph.add([Link(moment, uuid.uuid4(), "anon", "user", "$identify", moment)])
    await resolver.write({"anon", "user"})
    sent = [s for s in recorder.statements() if not s.lstrip().startswith("SELECT")]
    assert sent, recorder.sent
    for statement in sent:
        assert "ON CLUSTER" in statement or "person_" in statement, statement
        await formatted(clickhouse, statement)
    deletes = [s for s in sent if s.startswith("DELETE")]
    assert f"DELETE FROM {DATABASE}.analytics_events_local ON CLUSTER {CLUSTER} WHERE" in deletes[0]
    assert any(s.startswith(f"DELETE FROM {DATABASE}.person_links WHERE") for s in deletes)  # replicated
    reloads = [s for s in sent if s.startswith("SYSTEM RELOAD DICTIONARY ON CLUSTER")]
    reloaded = {s.split()[-1] for s in reloads}
    assert reloaded == {f"{DATABASE}.person_properties_index", f"{DATABASE}.person_numbers"}
    assert "person_overrides" in recorder.inserts()
    assert "person_properties_index" not in recorder.inserts()  # the dictionary loads it


async def test_what_has_no_cluster_form_is_refused() -> None:
    """A new kind of statement or a new table in schema.sql must be taught to the renderer, not passed
    through in its single-node form; so must a statement a service runs."""
    with pytest.raises(ValueError, match="no cluster form"):
        cluster_statements(["DROP TABLE analytics.analytics_events"], DATABASE, CLUSTER)
    new_table = (
        "CREATE TABLE IF NOT EXISTS analytics.persons\n(id UInt64)\nENGINE = ReplacingMergeTree\nORDER BY id"
    )
    with pytest.raises(ValueError, match="persons has no cluster layout"):
        cluster_statements([new_table], DATABASE, CLUSTER)
    form = ClusterForm(DATABASE, CLUSTER)
    for statement in ("OPTIMIZE TABLE analytics_events FINAL", "INSERT INTO user_active_days SELECT 1"):
        with pytest.raises(ValueError, match="no cluster form"):
            form.statement(statement)
    # The migration of rows stored before persons existed is single-node only: refused, not half-run.
    recorder = Recorder()

    async def some_unnumbered(fn: Any, *args: Any) -> Any:
        return [("old-user",)] if "did = 0" in str(args[0]) else [(0,)] if "max(did)" in str(args[0]) else []

    recorder._run = some_unnumbered  # type: ignore[method-assign]
    with pytest.raises(ValueError, match="no cluster form"):
        await number_unnumbered_events(recorder)
