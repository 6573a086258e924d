"""A partition whose writes stopped is merged down to one part (schema.sql: min_age_to_force_merge_*), so
queries read it without FINAL's merging work; the answer is the same before and after."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from shared.clickhouse import ClickHouse
from shared.contracts.storage import EVENTS_TABLE, FINAL_SETTINGS
from tests.reference import ev, load
from tests.support import wait_until

PARTS = (
    "SELECT count() FROM system.parts WHERE database = {db:String} AND table = {table:String} "
    "AND partition = '202301' AND active"
)


async def test_the_events_table_merges_a_closed_partition_after_a_minute(clickhouse: ClickHouse) -> None:
    [(create,)] = await clickhouse.query(
        "SELECT create_table_query FROM system.tables WHERE database = {db:String} AND name = {table:String}",
        {"db": clickhouse.database, "table": EVENTS_TABLE},
    )
    assert "min_age_to_force_merge_seconds = 60" in create
    assert "min_age_to_force_merge_on_partition_only = 1" in create


async def test_a_closed_partition_becomes_one_part_and_answers_the_same(clickhouse: ClickHouse) -> None:
    # The same rule with an age of 1 s, so the test need not wait the schema's minute.
    await clickhouse.command(f"ALTER TABLE {EVENTS_TABLE} MODIFY SETTING min_age_to_force_merge_seconds = 1")
    first = [ev("open", f"u{n}", "2023-01-05 10:00") for n in range(3)]
    retried = dataclasses.replace(first[0], received_at=first[0].timestamp + timedelta(seconds=1))
    for batch in ([first[0], first[1]], [retried, first[2]], [ev("click", "u9", "2023-01-20 08:00")]):
        await load(clickhouse, batch)  # one insert each: one part each in January
    count = f"SELECT count() FROM {EVENTS_TABLE} FINAL"
    [(before,)] = await clickhouse.query(count, settings=FINAL_SETTINGS)
    params = {"db": clickhouse.database, "table": EVENTS_TABLE}

    async def one_part() -> bool:
        return (await clickhouse.query(PARTS, params))[0][0] == 1

    await wait_until(one_part, timeout=60, interval=0.5)
    [(after,)] = await clickhouse.query(count, settings=FINAL_SETTINGS)
    [(stored,)] = await clickhouse.query(f"SELECT count() FROM {EVENTS_TABLE}")
    assert before == after == stored == 4  # the retried copy collapsed in the merge
