"""Person deletions, the stream processor's part: delete every stored row of the person's distinct ids.

The query service records the request and the tombstones (DELETE /api/v1/persons/{id}); from then on
no batch loads an event of those ids received before the deletion (services/stream/persons.py). Here,
between two batches (so none loaded before the tombstones can land after), every table's rows of the
ids are deleted, the resolver starts again from the links that remain, and the deletion moves on to
`events_deleted` with the days its events were on; the ETL recomputes those days and marks it `done`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import date

from services.stream import person_properties
from services.stream.persons import PersonsRecorder
from shared.clickhouse import ClickHouse
from shared.contracts.persons import DELETION_COLUMNS, EVENTS_DELETED, PENDING, DeletionRecord
from shared.contracts.storage import (
    ACTIVE_DAYS_TABLE,
    DELETIONS_TABLE,
    DISTINCT_IDS_TABLE,
    EVENTS_TABLE,
    LINKS_TABLE,
    OVERRIDES_TABLE,
    PERSON_PROPERTIES_TABLE,
    PROPERTY_UPDATES_TABLE,
)

log = logging.getLogger(__name__)


async def pending_deletions(clickhouse: ClickHouse) -> list[DeletionRecord]:
    rows = await clickhouse.query(
        f"SELECT {DELETION_COLUMNS} FROM {DELETIONS_TABLE} FINAL WHERE status = {{status:String}} "
        "ORDER BY requested_at",
        {"status": PENDING},
    )
    return [
        DeletionRecord(i, key, list(ids), at, status, list(days)) for i, key, ids, at, status, days in rows
    ]


async def delete_rows(clickhouse: ClickHouse, distinct_ids: Sequence[str]) -> list[date]:
    """Delete every row of these ids, everywhere; the days their events were on."""
    ids = {"ids": list(distinct_ids)}
    days = [
        day
        for (day,) in await clickhouse.query(
            f"SELECT DISTINCT toDate(timestamp) FROM {EVENTS_TABLE} WHERE user_id IN {{ids:Array(String)}}",
            ids,
        )
    ]
    for table, where in (
        (EVENTS_TABLE, "user_id IN {ids:Array(String)}"),
        (ACTIVE_DAYS_TABLE, "user_id IN {ids:Array(String)}"),
        (LINKS_TABLE, "from_id IN {ids:Array(String)} OR to_id IN {ids:Array(String)}"),
        (PROPERTY_UPDATES_TABLE, "distinct_id IN {ids:Array(String)}"),
        (DISTINCT_IDS_TABLE, "distinct_id IN {ids:Array(String)}"),
        (OVERRIDES_TABLE, "distinct_id IN {ids:Array(String)} OR person_key IN {ids:Array(String)}"),
        (PERSON_PROPERTIES_TABLE, "person_key IN {ids:Array(String)}"),
    ):
        await clickhouse.command(f"DELETE FROM {table} WHERE {where}", ids)
    return sorted(days)


async def carry_out_deletions(
    clickhouse: ClickHouse, persons: PersonsRecorder, between_batches: asyncio.Lock
) -> int:
    """Every pending deletion, each between two batches; how many were carried out."""
    deletions = await pending_deletions(clickhouse)
    for deletion in deletions:
        async with between_batches:
            days = await delete_rows(clickhouse, deletion.distinct_ids)
            persons.forget(deletion.distinct_ids)
            await persons.resolver.rebuild()
            await persons.refresh_properties(set())  # the persons the deletion split
            await person_properties.rebuild_index(clickhouse)
        await clickhouse.insert_json_rows(DELETIONS_TABLE, deletion.advanced(EVENTS_DELETED, days).row())
        log.info(
            "deleted person %s (%d distinct ids, events on %d days)",
            deletion.person_key,
            len(deletion.distinct_ids),
            len(days),
        )
    return len(deletions)
