"""Schema discovery: the events, property names (with their observed types) and property values a UI
offers as choices, read from the catalogue ClickHouse keeps (shared/contracts/catalogue.py), so an
answer reads the catalogue's few thousand rows, not the events.

Person properties have no catalogue until persons land: they are read from the events' persons
(`storage.PERSON_PROPERTIES`), each person once, which scans the events (optionally those of one event).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.clickhouse import ClickHouse
from shared.contracts import property_types as pt
from shared.contracts.catalogue import (
    EVENT_CATALOGUE,
    KINDS,
    PROPERTY_CATALOGUE,
    TOP_STATE,
    kind_sql,
)
from shared.contracts.limits import MAX_EVENT_NAME_LENGTH
from shared.contracts.storage import EVENTS_TABLE, PERSON, PERSON_PROPERTIES

Text = Annotated[str, Field(max_length=MAX_EVENT_NAME_LENGTH)]
SEARCH = "positionCaseInsensitiveUTF8({column}, {{search:String}}) > 0"
# Whether every string among some JSON texts `{values}` is an ISO 8601 date (the "datetime" type).
ALL_DATES = (
    "arrayAll(v -> NOT startsWith(v, '\"') OR isNotNull("
    + pt.date_ms("JSONExtractString(v)").replace("{", "{{").replace("}", "}}")
    + "), {values})"
)
# A value's text as search sees it: a string itself, a number as ClickHouse prints it, true/false.
VALUE_TEXT = (
    f"multiIf(kind = {pt.BUCKET_STRING}, text, kind = {pt.BUCKET_BOOLEAN}, if(number = 1, 'true', 'false'), "
    "toString(number))"
)


class Listing(BaseModel):
    model_config = ConfigDict(extra="forbid")

    search: Text = Field("", description="Case-insensitive part of the name (or value)")
    limit: int = Field(100, ge=1, le=1000)


class PropertyListing(Listing):
    event: Text = Field("", description="Only this event's properties (default: every event's)")
    source: Literal["event", "person"] = "event"


class EventSeen(BaseModel):
    event: str
    count: int = Field(description="Stored events of this name (a replayed copy counts again)")
    last_seen: datetime = Field(description="The latest timestamp of one")


class EventsResponse(BaseModel):
    events: list[EventSeen]


class PropertySeen(BaseModel):
    property: str
    type: str = Field(description="string, number, boolean, datetime, object, array, mixed, or null")
    count: int = Field(description="How often it is set (not null)")
    kinds: dict[str, int] = Field(description="How often each kind was seen (null included)")


class PropertiesResponse(BaseModel):
    properties: list[PropertySeen]


class ValueSeen(BaseModel):
    value: str | float | int | bool
    count: int = Field(description="Stored events with the value; exact unless `error` > 0")
    error: int = Field(0, description="How much `count` may be over (beyond 1,000 distinct values)")


class ValuesResponse(BaseModel):
    property: str
    values: list[ValueSeen]


def observed_type(kinds: dict[str, int]) -> str:
    """The property's type from the kinds it was seen with (README, Definitions: property values)."""
    seen = {kind for kind, count in kinds.items() if count and kind != "null"}
    if not seen:
        return "null"
    if seen <= {"string", "datetime"}:
        return "datetime" if seen == {"datetime"} else "string"
    return seen.pop() if len(seen) == 1 else "mixed"


def where(conditions: list[str]) -> str:
    return "WHERE " + " AND ".join(conditions) if conditions else ""


EVENTS_SQL = f"""
SELECT event, sum(seen) AS count, max(last_seen) FROM {EVENT_CATALOGUE} {{where}}
GROUP BY event ORDER BY count DESC, event LIMIT {{{{limit:UInt32}}}}"""


async def list_events(clickhouse: ClickHouse, query: Listing, timeout: float) -> EventsResponse:
    params: dict[str, Any] = {"limit": query.limit, **({"search": query.search} if query.search else {})}
    conditions = [SEARCH.format(column="event")] if query.search else []
    rows = await clickhouse.query(EVENTS_SQL.format(where=where(conditions)), params, timeout=timeout)
    return EventsResponse(
        events=[EventSeen(event=e, count=int(n), last_seen=t.replace(tzinfo=UTC)) for e, n, t in rows]
    )


def person_rows(event: str, params: dict[str, Any]) -> str:
    """Each person of the events (of `event` when given) once, with their properties' JSON as `pp`."""
    condition = ""
    if event:
        params["event"] = event
        condition = "WHERE event = {event:String}"
    return f"SELECT DISTINCT {PERSON} AS person, {PERSON_PROPERTIES} AS pp FROM {EVENTS_TABLE} {condition}"


async def list_properties(
    clickhouse: ClickHouse, query: PropertyListing, timeout: float
) -> PropertiesResponse:
    params: dict[str, Any] = {"search": query.search} if query.search else {}
    conditions = [SEARCH.format(column="key")] if query.search else []
    if query.source == "event":
        if query.event:
            params["event"] = query.event
            conditions.append("event = {event:String}")
        merged = TOP_STATE.replace("approx_top_k", "approx_top_kMerge")
        counts = ", ".join(f"sum({kind}_seen)" for kind in KINDS)
        sql = f"""
            SELECT key, {counts}, {ALL_DATES.format(values=f"arrayMap(t -> t.1, {merged}(top))")}
            FROM {PROPERTY_CATALOGUE} {where(conditions)} GROUP BY key"""
    else:
        counts = ", ".join(f"countIf(kind = '{kind}')" for kind in KINDS)
        sql = f"""
            SELECT key, {counts}, {ALL_DATES.format(values="groupArrayIf(kv.2, kind = 'string')")}
            FROM (SELECT kv.1 AS key, kv, {kind_sql("kv.2")} AS kind
                  FROM ({person_rows(query.event, params)}) ARRAY JOIN JSONExtractKeysAndValuesRaw(pp) AS kv)
            {where(conditions)} GROUP BY key"""
    found = []
    for key, *seen, dates in await clickhouse.query(sql, params, timeout=timeout):
        kinds = {kind: int(n) for kind, n in zip(KINDS, seen, strict=True) if n}
        if dates and set(kinds) - {"null"} == {"string"}:
            kinds["datetime"], kinds["string"] = kinds.pop("string"), 0
        counted = {kind: n for kind, n in kinds.items() if n}
        found.append(
            PropertySeen(
                property=key,
                type=observed_type(counted),
                count=sum(n for kind, n in counted.items() if kind != "null"),
                kinds=counted,
            )
        )
    found.sort(key=lambda p: (-p.count, p.property))
    return PropertiesResponse(properties=found[: query.limit])


async def list_values(
    clickhouse: ClickHouse, name: str, query: PropertyListing, timeout: float
) -> ValuesResponse:
    params: dict[str, Any] = {
        "key": name,
        "limit": query.limit,
        **({"search": query.search} if query.search else {}),
    }
    if query.source == "event":
        conditions = ["key = {key:String}"]
        if query.event:
            params["event"] = query.event
            conditions.append("event = {event:String}")
        merged = TOP_STATE.replace("approx_top_k", "approx_top_kMerge")
        source = f"""
            SELECT value.1 AS kind, value.2 AS number, value.3 AS text, sum(seen.2) AS count,
                   sum(seen.3) AS error
            FROM (SELECT seen, {pt.bucket("seen.1")} AS value
                  FROM (SELECT arrayJoin({merged}(top)) AS seen
                        FROM {PROPERTY_CATALOGUE} {where(conditions)}))
            GROUP BY kind, number, text"""
    else:
        source = f"""
            SELECT value.1 AS kind, value.2 AS number, value.3 AS text, count() AS count, toUInt64(0) AS error
            FROM (SELECT {pt.bucket(pt.raw("pp", "{key:String}"))} AS value
                  FROM ({person_rows(query.event, params)}))
            WHERE kind != {pt.BUCKET_NONE}
            GROUP BY kind, number, text"""
    search = f"WHERE {SEARCH.format(column=VALUE_TEXT)}" if query.search else ""
    sql = f"""
        SELECT kind, number, text, count, error FROM ({source}) {search}
        ORDER BY count DESC, kind, number, text LIMIT {{limit:UInt32}}"""
    rows = await clickhouse.query(sql, params, timeout=timeout)
    values = []
    for kind, number, text, count, error in rows:
        value = pt.bucket_value(int(kind), float(number), str(text))
        if value is not None:
            values.append(ValueSeen(value=value, count=int(count), error=int(error)))
    return ValuesResponse(property=name, values=values)
