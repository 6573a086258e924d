"""Which query answers a funnel's units: the plain funnel's (funnel_sql), the plain funnel's with
exclusions (funnel_excluding) or the general search's (funnel_chains). A unit is a person, or with
`counting: totals` each step-1 event; trends split a person's units by entry period, all_events by the
value on their step-1 events."""

from __future__ import annotations

from typing import Any

from services.query import funnel_chains
from services.query.funnel_excluding import excluding_units_sql, is_plain_excluding
from services.query.funnel_models import FunnelRequest
from services.query.funnel_sql import is_plain, plain_units_sql


def units_sql(request: FunnelRequest, params: dict[str, Any], unit: str) -> str:
    """The unit table: unit columns, level, times (the conversion chain's reach times), bk, listed."""
    if unit == "person" and is_plain(request):
        return plain_units_sql(request, params)
    if unit == "person" and is_plain_excluding(request):
        return excluding_units_sql(request, params)
    return funnel_chains.units_sql(request, params, unit)


def entry_unit(request: FunnelRequest) -> str:
    """ "event" with counting totals (each step-1 event is an entry), else "person"."""
    return "event" if request.counting == "totals" else "person"
