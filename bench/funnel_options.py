"""Issue 16's funnel figures for `make bench-query` (query section): time to convert, trends over 30 daily
periods, and a funnel with one exclusion and a breakdown, each ours against DuckDB computing the same
answer on the same rows and persons (the DuckDB connection of bench/query_baselines.py), and each as a
ratio to our plain funnel timed in the same round.

The DuckDB formulations follow the service's definitions for the benchmark's funnel (three distinct
events, ordered): per step-2 event the latest step-1 event before it and the first step-3 event after
it are the only candidates the conversion chain can be (README "Conversion chain"); a chain's greedy
continuation from a step-1 event gives its level (trends); an exclusion between steps 0 and 1 excludes
a candidate when its first exclusion event after the step-1 event comes before its step-2 event.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import duckdb

from bench.query_baselines import DUCKDB_CHAINS, DUCKDB_STEPS, funnel_parameters
from services.query import funnel
from services.query.funnel_models import FunnelRequest
from services.query.funnel_views import parse_time_to_convert, parse_trends
from shared.contracts.property_types import BUCKET_NONE, BUCKET_STRING

EXCLUDED = "search"  # a frequent event (a sixth of the activity) between signup and onboarding
BREAKDOWN = "plan"


def option_requests(base: dict[str, Any]) -> dict[str, FunnelRequest]:
    """The three figures' requests, on the benchmark's funnel."""
    exclusion = [{"event": EXCLUDED, "from_step": 0, "to_step": 1}]
    return {
        "time to convert": FunnelRequest(**base, view="time_to_convert"),
        "trends, 30 daily periods": FunnelRequest(**base, view="trends"),
        "one exclusion and a breakdown": FunnelRequest(**base, exclusions=exclusion, breakdown=BREAKDOWN),
    }


DUCKDB_TIME_TO_CONVERT = f"""
WITH {DUCKDB_CHAINS},
took AS (SELECT chain[3] - chain[1] AS d FROM levels WHERE level = 3),
shape AS (SELECT count(*) AS n, sum(d) AS total, quantile_disc(d, 0.5) AS low, -quantile_disc(-d,
    0.5) AS high,
                 min(d) // 1000 AS lo_s, (max(d) + 999) // 1000 AS hi_s FROM took),
width AS (SELECT *, greatest(1, (hi_s - lo_s + $bins - 1) // $bins) AS width FROM shape),
per_bin AS (SELECT least($bins - 1, (d // 1000 - lo_s) // width) AS i, count(*) AS k FROM took,
    width GROUP BY i)
SELECT n, total, low, high, lo_s, hi_s, width, (SELECT list([i, k]) FROM per_bin) FROM width"""

DUCKDB_TRENDS = f"""
WITH s AS ({DUCKDB_STEPS}),
s1 AS (SELECT person, ts FROM s WHERE event = $s1),
s2 AS (SELECT person, ts FROM s WHERE event = $s2),
s3 AS (SELECT person, ts FROM s WHERE event = $s3),
next2 AS (SELECT s1.person, s1.ts AS a,
    s2.ts AS b FROM s1 ASOF LEFT JOIN s2 ON s1.person = s2.person AND s1.ts < s2.ts),
greedy AS (SELECT next2.person, a, b, s3.ts AS c FROM next2 ASOF LEFT JOIN s3
           ON next2.person = s3.person AND next2.b < s3.ts),
units AS (SELECT person, a // 86400000 AS day,
                 max(CASE WHEN b - a <= $window
                     AND c - a <= $window THEN 3 WHEN b - a <= $window THEN 2 ELSE 1 END)
                     AS level
          FROM greedy GROUP BY person, day)
SELECT day, count(*), count(*) FILTER (WHERE level = 3) FROM units GROUP BY day ORDER BY day"""

# Level L ignoring the exclusion; counted when a candidate chain reaching L avoids it (for L = 1: a
# step-1 event without an exclusion event in its window); the value is the earliest signup's.
DUCKDB_EXCLUSION_BREAKDOWN = f"""
WITH {DUCKDB_CHAINS},
x AS (SELECT coalesce(p.person, e.user_id) AS person, epoch_ms(e.timestamp) AS ts
      FROM events e LEFT JOIN persons p ON p.distinct_id = e.user_id
      WHERE e.event = $x AND e.timestamp >= $range_start AND e.timestamp < $range_end),
checked AS (SELECT chains.*, CASE WHEN c IS NULL THEN 2 ELSE 3 END AS level, x.ts AS after_a
            FROM chains ASOF LEFT JOIN x ON chains.person = x.person AND chains.a < x.ts),
clean AS (SELECT person, level, arg_min([a, b, coalesce(c, 0)], [coalesce(c, b), -a, b]) AS chain
          FROM checked WHERE after_a IS NULL OR after_a >= b GROUP BY person, level),
lonely AS (SELECT DISTINCT s1.person FROM s1 ASOF LEFT JOIN x ON s1.person = x.person AND s1.ts < x.ts
           WHERE x.ts IS NULL OR x.ts > s1.ts + $window),
firsts AS (SELECT coalesce(p.person, e.user_id) AS person,
                  arg_min(json_extract_string(e.properties, '$.plan'), [epoch_ms(e.timestamp)]) AS value
           FROM events e LEFT JOIN persons p ON p.distinct_id = e.user_id
           WHERE e.event = $s1 AND e.timestamp >= $range_start AND e.timestamp < $range_end
           GROUP BY coalesce(p.person, e.user_id)),
counted AS (
    SELECT levels.person, levels.level, clean.chain, firsts.value
    FROM levels JOIN firsts USING (person)
    LEFT JOIN clean ON clean.person = levels.person AND clean.level = levels.level
    WHERE (levels.level = 1 AND levels.person IN (SELECT person FROM lonely)) OR clean.chain IS NOT NULL)
SELECT value, count(*), count(*) FILTER (WHERE level = 1), count(*) FILTER (WHERE level = 2),
       count(*) FILTER (WHERE level = 3), sum(chain[2] - chain[1]),
           sum(chain[3] - chain[2]) FILTER (WHERE level = 3),
       quantile_disc(chain[2] - chain[1], 0.5), quantile_disc(chain[3] - chain[2],
           0.5) FILTER (WHERE level = 3),
       -quantile_disc(chain[1] - chain[2], 0.5), -quantile_disc(chain[2] - chain[3],
           0.5) FILTER (WHERE level = 3),
       grouping(value)
FROM counted GROUP BY GROUPING SETS ((value), ())"""


def stats_row(bucket: int, value: str | None, found: tuple[Any, ...]) -> tuple[Any, ...]:
    """Our buckets row from (users per level, time sums, lower and upper medians of steps 2 and 3)."""
    one, two, three, sum2, sum3, low2, low3, high2, high3 = found
    reached = len([n for n in (two + three, three) if n])
    pick = lambda pair: [int(x) for x in pair[:reached]]  # noqa: E731
    levels = [int(one), int(two), int(three)]
    kind = (BUCKET_NONE, 0.0, "") if value is None else (BUCKET_STRING, 0.0, value)  # the plans: strings
    return (
        bucket,
        kind,
        levels,
        pick((sum2, sum3)),
        pick((low2, low3)),
        pick((high2, high3)),
    )


def breakdown_rows(found: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The total (bucket 0) and the values by entries (the benchmark has five plans: no 'Other')."""
    total = [row for row in found if row[-1] == 1]
    values = sorted(
        (row for row in found if row[-1] == 0), key=lambda row: (-row[1], row[0] is None, row[0] or "")
    )
    assert len(values) <= funnel.TOP_BREAKDOWN_VALUES, "an 'Other' bucket needs merged medians"
    rows = [stats_row(0, None, total[0][2:11])] if total else []
    return rows + [stats_row(i + 1, row[0], row[2:11]) for i, row in enumerate(values)]


def duckdb_calls(
    duck: duckdb.DuckDBPyConnection, requests: dict[str, FunnelRequest]
) -> dict[str, Callable[[], Any]]:
    """Per figure, a call returning our response model built from DuckDB's rows."""
    ttc, trend, excl = requests.values()
    base = funnel_parameters(ttc)

    def time_to_convert() -> Any:
        n, total, low, high, lo_s, hi_s, width, per_bin = (
            duck.execute(DUCKDB_TIME_TO_CONVERT, {**base, "bins": ttc.bins}).fetchone() or ()
        )
        counts = [0] * ttc.bins
        for i, k in per_bin or []:
            counts[int(i)] = int(k)
        row = (
            int(n),
            int(total or 0),
            int(low or 0),
            int(high or 0),
            int(lo_s or 0),
            hi_s,
            int(width or 1),
            counts,
        )
        return parse_time_to_convert(row, ttc)

    return {
        "time to convert": time_to_convert,
        "trends, 30 daily periods": lambda: parse_trends(duck.execute(DUCKDB_TRENDS, base).fetchall(), trend),
        "one exclusion and a breakdown": lambda: funnel.parse(
            breakdown_rows(duck.execute(DUCKDB_EXCLUSION_BREAKDOWN, {**base, "x": EXCLUDED}).fetchall()), excl
        ),
    }
