"""The metric registry: every daily metric is defined once, here (name, description, unit, SQL).

The ETL run, GET /metrics, GET /metrics/{metric} and GET /overview all read `METRICS`, so adding a
metric is adding one `Metric(...)` to that tuple. Its SQL answers rows `(day, value)` for the UTC days
in [start, end] whose value is not zero (the run writes 0 for the days it leaves out), reads events
through `$events` (each event_id counted once; other `$fragments` are in fragments.py) and takes
values only as server-side parameters: `{start:Date}`, `{end:Date}`, `{start_at:DateTime64(3, 'UTC')}`,
`{end_before:DateTime64(3, 'UTC')}` (the range, see `range_parameters`) and the metric's `parameters`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from services.etl.fragments import expand
from shared.contracts.dates import DateRange


def range_parameters(period: DateRange) -> dict[str, Any]:
    """The parameters every metric statement may use, for the days of `period`."""
    return {
        "start": period.start,
        "end": period.end,
        "start_at": period.start_at,
        "end_before": period.end_before,
    }


@dataclass(frozen=True)
class Metric:
    """One daily metric: what dashboards show about it and the SQL that computes it."""

    name: str
    description: str
    unit: str
    sql: str
    parameters: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def statement(self) -> str:
        """The SQL with its fragments filled in."""
        return expand(self.sql)

    def query_parameters(self, period: DateRange) -> dict[str, Any]:
        """Server-side parameters for computing the days of `period`."""
        return {**range_parameters(period), **self.parameters}


ACTIVE_USERS = "SELECT day, uniqExact(person) FROM ($active_user_days) GROUP BY day"

METRICS: tuple[Metric, ...] = (
    Metric(
        name="dau",
        description="Daily active users: distinct users with any event on the day",
        unit="users",
        sql=ACTIVE_USERS,
        parameters={"window": 1},
    ),
    Metric(
        name="wau",
        description="Weekly active users: distinct users with an event in the 7 days ending on the day",
        unit="users",
        sql=ACTIVE_USERS,
        parameters={"window": 7},
    ),
    Metric(
        name="mau",
        description="Monthly active users: distinct users with an event in the 30 days ending on the day",
        unit="users",
        sql=ACTIVE_USERS,
        parameters={"window": 30},
    ),
    Metric(
        name="new_users",
        description="Users whose first-ever event is on the day",
        unit="users",
        sql="""
            SELECT first_day, count()
            FROM (
                SELECT $person AS person, toDate(min(timestamp)) AS first_day
                FROM $events
                WHERE timestamp < {end_before:DateTime64(3, 'UTC')}
                GROUP BY person
            )
            WHERE first_day >= {start:Date}
            GROUP BY first_day
        """,
    ),
    Metric(
        name="events",
        description="Events on the day",
        unit="events",
        sql="SELECT toDate(timestamp) AS day, count() FROM $events WHERE $in_range GROUP BY day",
    ),
    Metric(
        name="revenue",
        description="Sum of properties.amount of purchase events on the day, JSON numbers only (2 decimals)",
        unit="currency",
        sql="""
            SELECT toDate(timestamp) AS day, round($money_sum, 2)
            FROM $events
            WHERE event = 'purchase' AND $in_range
            GROUP BY day
        """,
    ),
    Metric(
        name="arpu",
        description="Average revenue per active user: revenue / dau on the day (2 decimals)",
        unit="currency",
        sql="""
            SELECT toDate(timestamp) AS day,
                   round(coalesce(sumIf(toDecimal256($amount, 6), event = 'purchase'), 0)
                         / uniqExact($person), 2)
            FROM $events
            WHERE $in_range
            GROUP BY day
        """,
    ),
    Metric(
        name="stickiness",
        description="dau / mau on the day, from 0 to 1 (4 decimals)",
        unit="ratio",
        sql="""
            SELECT day, round(uniqExactIf(person, seen = day) / uniqExact(person), 4)
            FROM ($active_user_days)
            GROUP BY day
        """,
        parameters={"window": 30},
    ),
    Metric(
        name="mrr",
        description="Monthly recurring revenue at the end of the day: the amount of every active "
        "subscription, yearly plans as amount / 12 (2 decimals)",
        unit="currency",
        sql="""
            SELECT day, round(sum(toDecimal256(monthly, 6)), 2) FROM ($active_subscription_days) GROUP BY day
        """,
    ),
    Metric(
        name="active_subscriptions",
        description="Subscriptions active at the end of the day (their latest event is not a cancellation)",
        unit="subscriptions",
        sql="SELECT day, count() FROM ($active_subscription_days) GROUP BY day",
    ),
    Metric(
        name="churned_subscriptions",
        description="Subscriptions active at the end of the day before and cancelled on the day",
        unit="subscriptions",
        sql="""
            SELECT day, count()
            FROM (
                SELECT day, last_event,
                    lagInFrame(last_event, 1, '') OVER (
                        PARTITION BY subscription_id ORDER BY day ROWS BETWEEN 1 PRECEDING AND CURRENT ROW
                    ) AS previous_event
                FROM ($subscription_days)
            )
            WHERE day >= {start:Date} AND last_event = 'subscription_cancelled'
              AND previous_event IN ('subscription_created', 'subscription_updated')
            GROUP BY day
        """,
    ),
)
