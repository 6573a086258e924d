"""The same funnel and cohort questions for DuckDB and PostgreSQL 15, over a copy of the rows ours reads.

Both get the deduplicated events (what `analytics_events FINAL` returns), so neither pays for dedup.
The best formulations measured on the benchmark's data (kept here; the others are in the notes):

* funnel, DuckDB: ASOF joins. For each step-2 event, the latest step-1 event strictly before it and the
  earliest step-3 event strictly after it; level 3 when that step-3 event is within the window of that
  step-1 event. (Taking the latest step 1 and the earliest step 3 around a step 2 is optimal, so this is
  exactly the ordered-mode definition for three distinct event names.) Window functions over the
  user's step events (RANGE ... 1 PRECEDING) answer the same and were 1.3-2x slower.
* funnel, PostgreSQL: the same idea with LATERAL index-only lookups on (event, user_id, timestamp);
  window functions after an index-only scan were about as fast.
* cohort: one GROUP BY user_id with min(timestamp) and a bit per active week (bit_or), then one row per
  cohort; DuckDB's DISTINCT (user, week) + join was slower. PostgreSQL streams it from an index-only
  scan on (user_id, timestamp).

Each returns rows in the shape our runner's SQL returns, so `services.query.*.parse` builds responses
that are compared with ours field by field.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import psycopg

from services.query import cohort, funnel
from shared.contracts.property_types import BUCKET_NONE

WEEK_MS = 7 * 86_400_000

DUCKDB_CHAINS = """
s AS (SELECT user_id, event, epoch_ms(timestamp) AS ts FROM events
      WHERE event IN ($s1, $s2, $s3) AND timestamp >= $range_start AND timestamp < $range_end),
s1 AS (SELECT user_id, ts FROM s WHERE event = $s1),
s2 AS (SELECT user_id, ts FROM s WHERE event = $s2),
s3 AS (SELECT user_id, ts FROM s WHERE event = $s3),
chains AS (
    SELECT s2.user_id, s1.ts AS a, s2.ts AS b, CASE WHEN s3.ts - s1.ts <= $window THEN s3.ts END AS c
    FROM s2 ASOF JOIN s1 ON s2.user_id = s1.user_id AND s2.ts > s1.ts
            ASOF LEFT JOIN s3 ON s2.user_id = s3.user_id AND s2.ts < s3.ts
    WHERE s2.ts - s1.ts <= $window),
best AS (
    SELECT user_id, max(CASE WHEN c IS NULL THEN 2 ELSE 3 END) AS level,
           arg_min([a, b, coalesce(c, 0)], [CASE WHEN c IS NULL THEN -2 ELSE -3 END, coalesce(c,
               b), -a, b]) AS chain
    FROM chains GROUP BY user_id),
levels AS (
    SELECT user_id, coalesce(best.level, 1) AS level, chain
    FROM (SELECT DISTINCT user_id FROM s1) entered LEFT JOIN best USING (user_id))"""
# Per step-2 event: the latest step-1 event before it and the first step-3 event after it; of those, the
# conversion chain is the one completing first, then starting last, then with the earliest step 2 (the
# service's definition; taking the latest step 1 and earliest step 3 around each step 2 loses no chain
# that could be it). Per level the users, then the step times' sums and lower and upper medians.
DUCKDB_FUNNEL = f"""
WITH {DUCKDB_CHAINS}
SELECT count(*) FILTER (WHERE level = 1), count(*) FILTER (WHERE level = 2),
    count(*) FILTER (WHERE level = 3),
       sum(chain[2] - chain[1]), sum(chain[3] - chain[2]) FILTER (WHERE level = 3),
       quantile_disc(chain[2] - chain[1], 0.5), quantile_disc(chain[3] - chain[2],
           0.5) FILTER (WHERE level = 3),
       -quantile_disc(chain[1] - chain[2], 0.5), -quantile_disc(chain[2] - chain[3],
           0.5) FILTER (WHERE level = 3)
FROM levels"""

POSTGRES_FUNNEL = """
WITH entered AS (
    SELECT DISTINCT user_id FROM events
    WHERE event = %(s1)s AND timestamp >= %(range_start)s AND timestamp < %(range_end)s),
pairs AS (
    SELECT s2.user_id, t1.ts AS a, s2.timestamp AS b,
           CASE WHEN t3.ts <= t1.ts + %(window)s * interval '1 millisecond' THEN t3.ts END AS c
    FROM events s2
    CROSS JOIN LATERAL (
        SELECT max(timestamp) AS ts FROM events s1
        WHERE s1.event = %(s1)s AND s1.user_id = s2.user_id
          AND s1.timestamp >= %(range_start)s AND s1.timestamp < s2.timestamp) t1
    LEFT JOIN LATERAL (
        SELECT min(timestamp) AS ts FROM events s3
        WHERE s3.event = %(s3)s AND s3.user_id = s2.user_id
          AND s3.timestamp > s2.timestamp AND s3.timestamp < %(range_end)s) t3 ON true
    WHERE s2.event = %(s2)s AND s2.timestamp >= %(range_start)s AND s2.timestamp < %(range_end)s
      AND s2.timestamp <= t1.ts + %(window)s * interval '1 millisecond'),
best AS (
    SELECT DISTINCT ON (user_id) user_id, CASE WHEN c IS NULL THEN 2 ELSE 3 END AS level,
           (extract(epoch FROM b - a) * 1000)::bigint AS d2, (extract(epoch FROM c - b) * 1000)::bigint AS d3
    FROM pairs ORDER BY user_id, c IS NULL, coalesce(c, b), a DESC, b),
levels AS (SELECT user_id, coalesce(level, 1) AS level, d2, d3 FROM entered LEFT JOIN best USING (user_id))
SELECT count(*) FILTER (WHERE level = 1), count(*) FILTER (WHERE level = 2),
    count(*) FILTER (WHERE level = 3),
       sum(d2), sum(d3), percentile_disc(0.5) WITHIN GROUP (ORDER BY d2),
       percentile_disc(0.5) WITHIN GROUP (ORDER BY d3), -percentile_disc(0.5) WITHIN GROUP (ORDER BY -d2),
       -percentile_disc(0.5) WITHIN GROUP (ORDER BY -d3)
FROM levels"""


def cohort_sql(periods: int, postgres: bool) -> str:
    """Weekly cohorts: (cohort index, users, returning users at offset 0..periods-1)."""
    if postgres:
        ms = "(extract(epoch FROM {t}) * 1000)::bigint"
        week, one, cast = "(({ms} - %(first_ms)s) / {week})", "1::bigint", "::bigint"
        bound = {"first": "%(first)s", "end": "%(range_end)s"}
    else:
        ms = "epoch_ms({t})"
        week, one, cast = "CAST(({ms} - $first_ms) // {week} AS INTEGER)", "1::UBIGINT", "::UBIGINT"
        bound = {"first": "$first", "end": "$range_end"}
    week_of = week.format(ms=ms, week=WEEK_MS)
    counts = ", ".join(f"sum(((active >> (cohort + {k})) & 1)::integer)" for k in range(periods))
    return f"""
        WITH per_user AS (
            SELECT min(timestamp) AS first_seen,
                   bit_or(CASE WHEN timestamp >= {bound["first"]}
                               THEN {one} << {week_of.format(t="timestamp")}::integer
                               ELSE 0{cast} END) AS active
            FROM events WHERE timestamp < {bound["end"]}
            GROUP BY user_id HAVING min(timestamp) >= {bound["first"]}),
        cohorts AS (SELECT ({week_of.format(t="first_seen")})::integer AS cohort, active FROM per_user)
        SELECT cohort, count(*), {counts} FROM cohorts GROUP BY cohort ORDER BY cohort"""


NO_VALUE = (BUCKET_NONE, 0.0, "")  # the breakdown bucket of no value


def funnel_rows(found: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """(users at level 1, 2, 3, time sums, lower and upper medians of steps 2 and 3) as our funnel SQL's
    total row: (bucket 0, value bucket, [per level], [sums], [low medians], [high medians])."""
    ((one, two, three, sum2, sum3, low2, low3, high2, high3),) = found
    reached = [n for n in (two + three, three) if n]  # the steps someone reached have times
    return [
        (
            0,
            NO_VALUE,
            [int(one), int(two), int(three)],
            [int(x) for x in (sum2, sum3)[: len(reached)]],
            [int(x) for x in (low2, low3)[: len(reached)]],
            [int(x) for x in (high2, high3)[: len(reached)]],
        )
    ]


def cohort_rows(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """(cohort, users, c0, c1, ...) as our cohort SQL's rows: (cohort, users, [c0, c1, ...])."""
    return [(int(row[0]), int(row[1]), [int(c) for c in row[2:]]) for row in rows]


DUCKDB_TABLE = """
CREATE TABLE events AS
SELECT event_id, event, user_id, timestamp::TIMESTAMP AS timestamp, properties FROM read_parquet(?)
ORDER BY event, user_id, timestamp"""


def load_duckdb(parquet: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the events, sorted like ours ((event, user_id, timestamp)), so the
    funnel's filter on event skips row groups."""
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    connection.execute(DUCKDB_TABLE, [str(parquet)])
    return connection


POSTGRES_TABLE = """
CREATE TABLE events (event_id uuid, event text, user_id text, timestamp timestamp(3), properties text)"""
POSTGRES_INDEXES = (
    "CREATE INDEX events_event_user_time ON events (event, user_id, timestamp)",
    "CREATE INDEX events_user_time ON events (user_id, timestamp)",
)


def load_postgres(connection: psycopg.Connection, csv: Path) -> None:
    """COPY the CSV in (FREEZE: the table is new in this transaction, so rows are visible to index-only
    scans without a VACUUM), then the indexes both questions use, then statistics."""
    with connection.transaction():
        connection.execute(POSTGRES_TABLE)
        with (
            connection.cursor().copy("COPY events FROM STDIN (FORMAT csv, FREEZE)") as copy,
            csv.open("rb") as f,
        ):
            while chunk := f.read(1 << 20):
                copy.write(chunk)
    for statement in POSTGRES_INDEXES:
        connection.execute(statement)
    connection.execute("VACUUM ANALYZE events")


def calls(
    duck: duckdb.DuckDBPyConnection,
    pg: psycopg.Connection,
    funnel_request: funnel.FunnelRequest,
    cohort_request: cohort.CohortRequest,
) -> dict[str, dict[str, Callable[[], Any]]]:
    """Per question and engine, a call returning our response model built from the engine's rows."""
    fp = funnel_parameters(funnel_request)
    cp = cohort_parameters(cohort_request)
    duck_cohort = cohort_sql(cohort_request.periods, postgres=False)
    pg_cohort = cohort_sql(cohort_request.periods, postgres=True)

    def as_funnel(rows: list[tuple[Any, ...]]) -> Any:
        return funnel.parse(funnel_rows(rows), funnel_request)

    def as_cohort(rows: list[tuple[Any, ...]]) -> Any:
        return cohort.parse(cohort_rows(rows), cohort_request)

    return {
        "funnel": {
            "DuckDB": lambda: as_funnel(duck.execute(DUCKDB_FUNNEL, fp).fetchall()),
            "PostgreSQL": lambda: as_funnel(pg.execute(POSTGRES_FUNNEL, fp).fetchall()),
        },
        "cohort": {
            "DuckDB": lambda: as_cohort(duck.execute(duck_cohort, cp).fetchall()),
            "PostgreSQL": lambda: as_cohort(pg.execute(pg_cohort, cp).fetchall()),
        },
    }


def funnel_parameters(request: funnel.FunnelRequest) -> dict[str, Any]:
    s1, s2, s3 = (step.event for step in request.steps)
    return {
        "s1": s1,
        "s2": s2,
        "s3": s3,
        "range_start": naive(request.period.start_at),
        "range_end": naive(request.period.end_before),
        "window": request.window_seconds * 1000,
    }


def cohort_parameters(request: cohort.CohortRequest) -> dict[str, Any]:
    _, params = cohort.build_scan(request)
    return {
        "first": naive(params["first_at"]),
        "first_ms": params["first_ms"],
        "range_end": naive(params["range_end"]),
    }


def naive(moment: datetime) -> datetime:
    """Both baselines store UTC wall-clock times without a zone."""
    return moment.astimezone(UTC).replace(tzinfo=None)
