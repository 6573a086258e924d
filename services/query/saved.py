"""Saved insights and dashboards: what a client sends, what it gets back, and what makes one valid.

An insight is a query of one of the dashboard's charts (`type`) with its date range: either relative
(`{"last_days": 30}`, re-evaluated whenever it is opened) or fixed days. Its `query` is checked by the
same request model as the endpoint that answers it, so a saved insight always runs. A dashboard is a
named, ordered list of tiles, each naming a saved insight.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    ValidationError,
    model_validator,
)

from services.query.cohort import CohortRequest
from services.query.funnel import FunnelRequest
from shared.contracts.dates import MAX_RANGE_DAYS, DateRange, Day
from shared.errors import InvalidRequest

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
InsightType = Literal["events", "metric", "funnel", "retention"]
MAX_TILES = 50
MAX_QUERY_BYTES = 16 * 1024


class LastDays(BaseModel):
    """The N days ending today (in the insight's time zone), evaluated when the insight is opened."""

    model_config = ConfigDict(extra="forbid")

    last_days: int = Field(ge=1, le=MAX_RANGE_DAYS)


class FixedDays(BaseModel):
    """Fixed days, inclusive."""

    model_config = ConfigDict(extra="forbid")

    start_date: Day
    end_date: Day

    @model_validator(mode="after")
    def ordered(self) -> FixedDays:
        try:
            DateRange.checked(self.start_date, self.end_date)
        except InvalidRequest as exc:
            loc = ["body", "date_range", exc.details[0]["loc"][-1]]
            raise InvalidRequest(exc.message, details=[{**exc.details[0], "loc": loc}]) from None
        return self


class MetricQuery(BaseModel):
    """A daily ETL metric's series (`GET /api/v1/analytics/metrics/{metric}`)."""

    model_config = ConfigDict(extra="forbid")

    metric: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


class EventsQuery(BaseModel):
    """The top events of the range (`GET /api/v1/analytics/stats`)."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(10, ge=1, le=100)


def range_kind(value: Any) -> str:
    """Which form a date range takes: the last N days, or fixed days."""
    if isinstance(value, dict):
        return "last_days" if "last_days" in value else "days"
    return "last_days" if isinstance(value, LastDays) else "days"


DateRangeSpec = Annotated[
    Annotated[LastDays, Tag("last_days")] | Annotated[FixedDays, Tag("days")], Discriminator(range_kind)
]

# Fields of the endpoints' requests that the insight's date range supplies instead of its query.
RANGE_FIELDS = {"funnel": {"start_date", "end_date"}, "retention": {"end_date", "periods"}}


def funnel_query(query: dict[str, Any]) -> dict[str, Any]:
    today = dt.date.today()  # any valid days: the insight's range supplies the real ones
    request = FunnelRequest.model_validate({**query, "start_date": today, "end_date": today})
    return request.model_dump(mode="json", exclude=RANGE_FIELDS["funnel"])


def retention_query(query: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(query) - set(CohortRequest.model_fields))  # the cohort request ignores extras
    if unknown:
        raise InvalidRequest(
            f"query has unknown fields: {', '.join(unknown)}",
            details=[{"loc": ["body", "query", name], "msg": "unknown field"} for name in unknown],
        )
    request = CohortRequest.model_validate(query)
    return request.model_dump(mode="json", exclude=RANGE_FIELDS["retention"])


QUERY_CHECKS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "funnel": funnel_query,
    "retention": retention_query,
    "metric": lambda query: MetricQuery.model_validate(query).model_dump(),
    "events": lambda query: EventsQuery.model_validate(query).model_dump(),
}


def check_query(kind: str, query: dict[str, Any]) -> dict[str, Any]:
    """The query as its endpoint's model reads it (defaults filled in), or 422 naming the field."""
    supplied = sorted(RANGE_FIELDS.get(kind, set()) & set(query))
    if supplied:
        raise InvalidRequest(
            f"query.{supplied[0]} comes from the insight's date_range; leave it out of query",
            details=[{"loc": ["body", "query", supplied[0]], "msg": "set by date_range"}],
        )
    try:
        return QUERY_CHECKS[kind](query)
    except ValidationError as exc:
        details = [
            {"loc": ["body", "query", *e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
        fields = sorted({".".join(str(p) for p in d["loc"][1:]) for d in details})
        raise InvalidRequest(f"invalid {', '.join(fields)}", details=details) from None


class InsightFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    type: InsightType
    query: dict[str, Any] = Field(default_factory=dict, description="The chart's request, without dates")
    date_range: DateRangeSpec = Field(default_factory=lambda: LastDays(last_days=30))
    timezone: Literal["UTC"] = Field("UTC", description="UTC only for now")


class InsightIn(InsightFields):
    """A new insight, or an insight's replacement (PUT); its query must be one its endpoint accepts."""

    @model_validator(mode="after")
    def runnable(self) -> InsightIn:
        if len(json.dumps(self.query, default=str)) > MAX_QUERY_BYTES:
            raise InvalidRequest(f"query is larger than {MAX_QUERY_BYTES} bytes")
        self.query = check_query(self.type, self.query)
        try:
            orjson.dumps(self.query)
        except TypeError:  # what JSON allows and storage cannot hold: an integer beyond 64 bits
            raise InvalidRequest("query holds a number too large to store (beyond 64-bit integers)") from None
        return self

    def body(self) -> dict[str, Any]:
        """What is stored besides the name."""
        return self.model_dump(mode="json", exclude={"name"})


class Insight(InsightFields):
    """A saved insight (read back; not validated again, so older saved queries still list)."""

    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID
    created_at: dt.datetime
    updated_at: dt.datetime
    can_edit: bool = Field(description="True when this key created it, or is an admin key")


class InsightList(BaseModel):
    insights: list[Insight]


class Tile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    insight_id: uuid.UUID
    width: Literal["half", "full"] = "half"


class DashboardIn(BaseModel):
    """A new dashboard, or a dashboard's replacement (PUT): its name and tiles, in order."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    tiles: list[Tile] = Field(default_factory=list, max_length=MAX_TILES)


class PlacedTile(Tile):
    insight: Insight | None = Field(description="The saved insight; null once it has been deleted")


class Dashboard(BaseModel):
    id: uuid.UUID
    name: str
    tiles: list[PlacedTile]
    created_at: dt.datetime
    updated_at: dt.datetime
    can_edit: bool = Field(description="True when this key created it, or is an admin key")


class DashboardSummary(BaseModel):
    id: uuid.UUID
    name: str
    tiles: int
    created_at: dt.datetime
    updated_at: dt.datetime
    can_edit: bool


class DashboardList(BaseModel):
    dashboards: list[DashboardSummary]


class Deleted(BaseModel):
    id: uuid.UUID
    deleted: bool = True
