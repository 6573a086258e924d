"""The ClickHouse cluster schema ON PAPER: rendered from shared/contracts/schema.sql and checked by
ClickHouse's own parser (chDB's formatQuery). This machine has no ClickHouse server, so no statement
here is executed against a cluster: nothing below tests more than parsing and naming."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from shared.clickhouse import ClickHouse
from shared.clickhouse_cluster import EVENTS_SHARDING_KEY, EVERY_NODE, PER_NODE, SHARDED, cluster_statements
from shared.contracts.storage import schema_statements
from tests.support import REPO

DATABASE, CLUSTER = "analytics", "analytics_cluster"
QUERYING_SERVICES = ("query", "etl", "stream")
CREATED = re.compile(r"^CREATE (?:TABLE|MATERIALIZED VIEW) IF NOT EXISTS \w+\.(\w+)")
ENGINE = re.compile(r"\nENGINE = (\w+)")
TABLE_AFTER_KEYWORD = re.compile(r"\b(?:FROM|JOIN|INTO)\s+([A-Za-z_][A-Za-z0-9_]*)\b(?!\s*\()")
TABLE_CONSTANT = re.compile(r"\{([A-Z][A-Z0-9_]*TABLE)\}|insert_json_rows\(\s*([A-Z][A-Z0-9_]*TABLE)\b")
SQL_WORDS = {"SELECT", "FINAL", "numbers", "system"}


def single_form() -> list[str]:
    return schema_statements(DATABASE)


def cluster_form() -> list[str]:
    return cluster_statements(single_form(), DATABASE, CLUSTER)


def created(statements: list[str]) -> set[str]:
    return {m.group(1) for s in statements if (m := CREATED.match(s))}


async def test_cluster_schema_parses(clickhouse: ClickHouse) -> None:
    """Every statement of the cluster form is valid ClickHouse SQL (parsed, never run)."""
    for statement in cluster_form():
        [(formatted,)] = await clickhouse.query("SELECT formatQuery({q:String})", {"q": statement})
        assert "ON CLUSTER " + CLUSTER in formatted, statement


async def test_cluster_schema_parses_to_the_intended_engines(clickhouse: ClickHouse) -> None:
    """Replicated engines with keeper paths and replica macros, a Distributed table sharded by the
    one sharding expression; the refresh target stays per node (shared/clickhouse_cluster.py)."""
    engines = {}
    for statement in cluster_form():
        name, engine = CREATED.match(statement), ENGINE.search(statement)
        if name and engine:
            engines[name.group(1)] = engine.group(1)
    assert engines == {
        "analytics_events_local": "ReplicatedReplacingMergeTree",
        "analytics_events": "Distributed",
        "user_active_days": "MergeTree",
        "metrics_snapshots": "ReplicatedReplacingMergeTree",
    }
    [distributed] = [s for s in cluster_form() if "Distributed(" in s]
    [(formatted,)] = await clickhouse.query("SELECT formatQuery({q:String})", {"q": distributed})
    assert f"Distributed({CLUSTER}, {DATABASE}, analytics_events_local, {EVENTS_SHARDING_KEY})" in formatted
    [events] = [s for s in cluster_form() if "analytics_events_local ON CLUSTER" in s and "CREATE" in s]
    assert "'/clickhouse/tables/{shard}/analytics/analytics_events', '{replica}', received_at)" in events


def test_every_table_has_a_cluster_layout() -> None:
    tables = {m.group(1) for s in single_form() if (m := CREATED.match(s)) and "MATERIALIZED VIEW" not in s}
    assert tables == set(SHARDED) | EVERY_NODE | PER_NODE
    assert all(" ON CLUSTER " in s for s in cluster_form())


def tables_the_services_query() -> set[str]:
    """Table names in the SQL that services/{query,etl,stream} build: literal names after FROM, JOIN
    or INTO, and *_TABLE constants spliced into f-strings or passed to insert_json_rows."""
    names: set[str] = set()
    for service in QUERYING_SERVICES:
        for path in sorted((REPO / "services" / service).glob("*.py")):
            source = path.read_text()
            names |= {n for n in TABLE_AFTER_KEYWORD.findall(source) if n not in SQL_WORDS}
            constants = {a or b for a, b in TABLE_CONSTANT.findall(source)}
            if constants:
                module = importlib.import_module(module_name(path))
                names |= {getattr(module, constant) for constant in constants}
    return names


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts)


@pytest.mark.parametrize("form", [single_form, cluster_form], ids=["single_node", "cluster_on_paper"])
def test_every_table_the_services_query_exists(form) -> None:  # noqa: ANN001 - a parametrized builder
    used = tables_the_services_query()
    assert {"analytics_events", "metrics_snapshots", "user_active_days"} <= used, used  # the grep works
    missing = used - created(form())
    assert not missing, f"queried but not created: {missing}"


def test_a_statement_without_a_cluster_form_is_refused() -> None:
    """A new kind of statement or a new table in schema.sql must be taught to the renderer, not
    passed through in its single-node form."""
    with pytest.raises(ValueError, match="no cluster form"):
        cluster_statements(["DROP TABLE analytics.analytics_events"], DATABASE, CLUSTER)
    new_table = (
        "CREATE TABLE IF NOT EXISTS analytics.persons\n(id UInt64)\nENGINE = ReplacingMergeTree\nORDER BY id"
    )
    with pytest.raises(ValueError, match="persons has no cluster layout"):
        cluster_statements([new_table], DATABASE, CLUSTER)
