"""Materialized property columns (shared/contracts/materialized.py): a column holds exactly the JSON
text JSONExtractRaw gives, and every trend reading it answers as the same trend reading the JSON, for
values of every kind (strings, numbers, booleans, null, objects, arrays, missing), on rows inserted
before the column existed too."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from services.query import trends
from shared.clickhouse import ClickHouse
from shared.contracts import materialized
from shared.contracts.storage import EVENTS_TABLE, FINAL_SETTINGS
from shared.settings import CommonSettings
from tests import reference
from tests.reference import Event, ev, load
from tests.support import fresh_database, unique_name

KEYS = ("plan", "amount", "$browser", "odd.key-1")
VALUES: list[Any] = [
    "pro",
    "",
    'é "quoted" \\ back',
    "12.5",
    "true",
    1,
    -0.0,
    12.5,
    1e40,
    2**63,
    -(2**63),
    -4,
    True,
    False,
    None,
    {"plan": "pro"},
    [1, "pro"],
]
MISSING = object()  # the key is left out
VALUE = st.sampled_from([*VALUES, MISSING])
FILTERS = [
    {"op": "eq", "value": "pro"},
    {"op": "eq", "value": 1},
    {"op": "eq", "value": True},
    {"op": "neq", "value": "pro"},
    {"op": "gt", "value": 0},
    {"op": "between", "value": [-5, 13]},
    {"op": "contains", "value": "r"},
    {"op": "regex", "value": "^p"},
    {"op": "in", "value": ["pro", 12.5, False]},
    {"op": "is_set"},
    {"op": "is_not_set"},
]


@pytest.fixture
async def mat_clickhouse(clickhouse_server_url: str | None, chdb_path: Path) -> AsyncIterator[ClickHouse]:
    """A fresh database whose events table materializes KEYS."""
    url = clickhouse_server_url or f"chdb://{chdb_path}"
    async with fresh_database(url, materialized_keys=KEYS) as client:
        yield client


def test_column_names_are_ours_and_never_collide() -> None:
    assert materialized.column_name("plan") == "mat_plan"
    odd = materialized.column_name("$browser")
    assert odd.startswith("matx__browser_") and odd != materialized.column_name("_browser")
    assert materialized.column_name("a.b") != materialized.column_name("a-b")
    for bad in ("", "it's", "a\\b", "x" * 101, "a b", "ключ"):
        with pytest.raises(ValueError):
            materialized.column_name(bad)
    assert CommonSettings(ANALYTICS_MATERIALIZED_PROPERTIES="plan, $os,plan").materialized_properties == (
        "plan",
        "$os",
    )
    assert CommonSettings().materialized_properties == materialized.DEFAULT_KEYS
    with pytest.raises(ValueError):
        CommonSettings(ANALYTICS_MATERIALIZED_PROPERTIES="plan,it's")


def properties_of(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not MISSING}


async def test_each_column_holds_exactly_what_json_extract_raw_gives(mat_clickhouse: ClickHouse) -> None:
    events = [
        ev("e", f"u{i}", "2023-03-01 10:00", **{key: value for key in KEYS}) for i, value in enumerate(VALUES)
    ]
    events.append(ev("e", "none", "2023-03-01 10:00"))
    await load(mat_clickhouse, events)
    checks = ", ".join(
        f"countIf({materialized.column_name(k)} != {materialized.column_expression(k)})" for k in KEYS
    )
    (row,) = await mat_clickhouse.query(f"SELECT count(), {checks} FROM {EVENTS_TABLE}")
    assert row == (len(events), *[0] * len(KEYS))
    (texts,) = await mat_clickhouse.query(
        f"SELECT groupUniqArray({materialized.column_name('plan')}) FROM {EVENTS_TABLE}"
    )
    assert "" in texts[0] and "null" in texts[0] and '{"plan":"pro"}' in texts[0]


async def answers(
    clickhouse: ClickHouse, request: dict[str, Any], key: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The trend read through the client's columns (checked to read `key`'s), and read from the JSON."""
    checked = trends.TrendsRequest(**request).checked(366)
    found = []
    for columns in (clickhouse.materialized, materialized.NONE):
        sql, params = trends.build(checked, columns)
        assert (materialized.column_name(key) in sql) == (columns is not materialized.NONE), sql
        rows = await clickhouse.query(sql, params, settings=FINAL_SETTINGS, timeout=30)
        found.append(trends.parse(rows, checked).model_dump())
    return found[0], found[1]


def requests_over(key: str) -> list[dict[str, Any]]:
    day = {"start_date": "2023-03-01", "end_date": "2023-03-02"}
    unique = {"event": "e", "math": "unique_persons"}
    asked = [{"series": [unique], "breakdown": key, **day}]
    asked += [
        {"series": [{"event": "e", "math": m, "property": key}], **day} for m in ("sum", "min", "median")
    ]
    asked += [{"series": [unique], "filters": [{"property": key, **f}], **day} for f in FILTERS]
    asked.append({"series": [{**unique, "filters": [{"property": key, "op": "eq", "value": "pro"}]}], **day})
    return asked


async def test_trends_read_through_a_column_answer_as_through_the_json(mat_clickhouse: ClickHouse) -> None:
    events = [
        ev("e", f"u{i % 5}", f"2023-03-0{1 + i % 2} 10:00", **properties_of({"plan": v, "$browser": v}))
        for i, v in enumerate([*VALUES, MISSING, *VALUES[:5]])
    ]
    await load(mat_clickhouse, events)
    for key in ("plan", "$browser"):
        for request in requests_over(key):
            through_column, through_json = await answers(mat_clickhouse, request, key)
            assert through_column == through_json == reference.trends(events, request), request


async def test_a_column_added_to_a_table_with_events_is_exact_before_and_after_materializing(
    clickhouse_server_url: str | None, chdb_path: Path
) -> None:
    url, database = clickhouse_server_url or f"chdb://{chdb_path}", unique_name("db_")
    before = ClickHouse(url, database, materialized_keys=())
    after = ClickHouse(url, database, materialized_keys=("plan",))
    try:
        await asyncio.to_thread(before.create_schema)
        events = [
            ev("e", f"u{i}", "2023-03-01 10:00", **properties_of({"plan": v}))
            for i, v in enumerate([*VALUES, MISSING])
        ]
        await load(before, events[:8])  # a part without the column
        await asyncio.to_thread(after.create_schema)  # ADD COLUMN IF NOT EXISTS
        await load(after, events[8:])
        for request in requests_over("plan"):
            through_column, through_json = await answers(after, request, "plan")
            assert through_column == through_json == reference.trends(events, request), request
        for statement in materialized.materialize_statements(database, ("plan",)):
            await after.command(f"{statement} SETTINGS mutations_sync = 1")
        for request in requests_over("plan"):
            through_column, through_json = await answers(after, request, "plan")
            assert through_column == through_json, request
    finally:
        await after.command(f"DROP DATABASE IF EXISTS {database}")
        before.close()
        after.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    values=st.lists(st.tuples(VALUE, VALUE, st.sampled_from(["u1", "u2", "u3"])), max_size=12),
    key=st.sampled_from(["plan", "odd.key-1"]),
    math=st.sampled_from(["unique_persons", "sum", "avg", "max", "p90"]),
    flt=st.sampled_from([None, *FILTERS]),
    broken_down=st.booleans(),
)
async def test_random_values_read_through_a_column_answer_as_through_the_json(
    mat_clickhouse: ClickHouse,
    values: list[tuple[Any, Any, str]],
    key: str,
    math: str,
    flt: Any,
    broken_down: bool,
) -> None:
    events: list[Event] = [
        ev("e", user, "2023-03-01 10:00", **properties_of({key: a, "amount": b})) for a, b, user in values
    ]
    spec: dict[str, Any] = {"event": "e", "math": math}
    if math != "unique_persons":
        spec["property"] = "amount"
    request: dict[str, Any] = {"series": [spec], "start_date": "2023-03-01", "end_date": "2023-03-01"}
    if flt is not None:
        request["filters"] = [{"property": key, **flt}]
    if broken_down or flt is None:
        request["breakdown"] = key
    note(f"properties={[orjson.dumps(e.properties).decode() for e in events]} request={request!r}")
    await reference.clear(mat_clickhouse)
    await load(mat_clickhouse, events)
    through_column, through_json = await answers(mat_clickhouse, request, key)
    assert through_column == through_json == reference.trends(events, request)
