"""The persons at a funnel step: `POST /api/v1/analytics/funnel/persons`.

The funnel body decides each person's level exactly as the funnel does (counting persons); a person
*converted* at step k (0-based) reached it (level > k), *dropped* at step k reached step k - 1 but not k
(level = k). Pages are keyset pages in the order of the person id as text: the cursor is the last id
of the page, so persons added while paging never shift a page (a new person sorting before the cursor
is simply not seen). `person_id` is the person's key, as the persons API names them
(`GET /api/v1/persons/{person_id}`), and each person comes with the smallest of their distinct ids
that has an event in the funnel.
"""

from __future__ import annotations

from typing import Any

from services.query import funnel_chains
from services.query.funnel_models import FunnelPerson, FunnelPersonsRequest, FunnelPersonsResponse
from shared.clickhouse import ClickHouse
from shared.contracts.storage import DISTINCT_IDS_TABLE, FINAL_SETTINGS


def build(request: FunnelPersonsRequest) -> tuple[str, dict[str, Any]]:
    """(person id as text, a distinct id) of the page's persons, one more than `limit` to tell whether
    another page follows."""
    params: dict[str, Any] = {**request.period.parameters(), "step": request.step, "limit": request.limit + 1}
    persons = request.model_copy(update={"counting": "persons", "breakdown": None})
    units = funnel_chains.units_sql(persons, params, "person")
    wanted = "level > {step:UInt8}" if request.status == "converted" else "level = {step:UInt8}"
    after = ""
    if request.cursor is not None:
        params["cursor"] = request.cursor
        after = "AND person_id > {cursor:String}"
    # a person's number is their key's distinct-id number (shared/contracts/schema.sql)
    keys = f"SELECT did, any(distinct_id) AS person_key FROM {DISTINCT_IDS_TABLE} FINAL GROUP BY did"
    sql = f"""
        SELECT if(k.person_key = '', toString(u.distinct_id), k.person_key) AS person_id,
               toString(u.distinct_id)
        FROM ({units}) AS u LEFT JOIN ({keys}) AS k ON k.did = u.person
        WHERE {wanted} {after}
        ORDER BY person_id
        LIMIT {{limit:UInt32}}"""
    return sql, params


def parse(rows: list[tuple[Any, ...]], request: FunnelPersonsRequest) -> FunnelPersonsResponse:
    page = rows[: request.limit]
    persons = [FunnelPerson(person_id=str(person), distinct_id=str(distinct)) for person, distinct in page]
    more = len(rows) > request.limit
    return FunnelPersonsResponse(persons=persons, next_cursor=persons[-1].person_id if more else None)


async def run_funnel_persons(
    clickhouse: ClickHouse, request: FunnelPersonsRequest, timeout: float
) -> FunnelPersonsResponse:
    """Check, build, execute (FINAL, with the timeout) and parse one page of persons."""
    request.check()
    sql, params = build(request)
    return parse(await clickhouse.query(sql, params, settings=FINAL_SETTINGS, timeout=timeout), request)
