"""SQL building blocks the metric definitions share, referenced by name as `$name` in their SQL.

Fragments are our own SQL text, never values: values reach ClickHouse only as server-side parameters
(`{name:Type}`), which `expand` leaves untouched.
"""

from __future__ import annotations

from string import Template

from shared.contracts.property_types import as_decimal
from shared.contracts.storage import EVENTS_TABLE, PERSON

FRAGMENTS: dict[str, str] = {}


def expand(text: str) -> str:
    """Replace every `$fragment` in `text` by its SQL."""
    return Template(text).substitute(FRAGMENTS)


def fragment(name: str, text: str) -> None:
    """Define `$name` (it may use the fragments defined before it)."""
    FRAGMENTS[name] = expand(text)


# Each event_id once: a retried or replayed copy collapses under FINAL.
fragment("events", f"{EVENTS_TABLE} FINAL")
# Money is summed as Decimal: exact, and the same whatever order the threads add it in. `amount` is read
# by the typing rule (shared/contracts/property_types.py): JSON numbers only (the string "12.5" is not
# money), NULL otherwise; sums accumulate in Decimal256 (a Decimal128 sum wraps around silently).
fragment("amount", as_decimal("properties", "'amount'"))
fragment("money_sum", "coalesce(sum(toDecimal256($amount, 6)), 0)")
fragment(
    "in_range",
    "timestamp >= {start_at:DateTime64(3, 'UTC')} AND timestamp < {end_before:DateTime64(3, 'UTC')}",
)

# The person of an event (shared/contracts/storage.py).
fragment("person", PERSON)
# Each (person, day seen) once, from `window - 1` days before the range: a sighting on day `seen`
# makes the person active on days seen .. seen + window - 1 (window 1 = DAU, 7 = WAU, 30 = MAU).
fragment(
    "user_days",
    """
    SELECT DISTINCT $person AS person, toDate(timestamp) AS seen
    FROM $events
    WHERE timestamp >= {start_at:DateTime64(3, 'UTC')} - toIntervalDay({window:UInt16} - 1)
      AND timestamp < {end_before:DateTime64(3, 'UTC')}
    """,
)
# One row per (person, sighting, day of the range the sighting makes them active on).
fragment(
    "active_user_days",
    """
    SELECT person, seen, day
    FROM ($user_days)
    ARRAY JOIN arrayMap(n -> seen + n, range({window:UInt16})) AS day
    WHERE day BETWEEN {start:Date} AND {end:Date}
    """,
)

# The state of each subscription at the end of each day it changed: that day's latest event (README,
# Definitions: "Order and ties": of simultaneous events the one received last, then the greater
# event_id as text, is the later). A latest state whose amount is not a number counts 0.
fragment(
    "subscription_days",
    """
    SELECT
        JSONExtractString(properties, 'subscription_id') AS subscription_id,
        toDate(timestamp) AS day,
        argMax(event, (timestamp, received_at, toString(event_id))) AS last_event,
        argMax(coalesce($amount, 0) / if(JSONExtractString(properties, 'interval') = 'year', 12, 1),
               (timestamp, received_at, toString(event_id))) AS monthly
    FROM $events
    WHERE event IN ('subscription_created', 'subscription_updated', 'subscription_cancelled')
      AND timestamp < {end_before:DateTime64(3, 'UTC')}
      AND subscription_id != ''
    GROUP BY subscription_id, day
    """,
)
# Each state holds from its day until the next change (or past the end of the range).
fragment(
    "subscription_spans",
    """
    SELECT subscription_id, last_event, monthly, day AS since,
        leadInFrame(day, 1, {end:Date} + 1) OVER (
            PARTITION BY subscription_id ORDER BY day ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING
        ) AS until
    FROM ($subscription_days)
    """,
)
# One row per (active subscription, day of the range): states other than a cancellation, over their span.
fragment(
    "active_subscription_days",
    """
    SELECT subscription_id, monthly, addDays(greatest(since, {start:Date}), n) AS day
    FROM ($subscription_spans)
    ARRAY JOIN range(toUInt32(greatest(
        dateDiff('day', greatest(since, {start:Date}), least(until, {end:Date} + 1)), 0))) AS n
    WHERE last_event != 'subscription_cancelled'
    """,
)
