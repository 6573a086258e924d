"""The same funnel and cohort questions for DuckDB and PostgreSQL 15, over a copy of the rows ours reads
(the trends' are in bench/query_trends.py).

Both get the deduplicated events (what `analytics_events FINAL` returns), so neither pays for dedup.
The best formulations measured on the benchmark's data (kept here; the others are in the notes):

* funnel, DuckDB: ASOF joins. For each step-2 event, the latest step-1 event strictly before it and the
  earliest step-3 event strictly after it; level 3 when that step-3 event is within the window of that
  step-1 event. (Taking the latest step 1 and the earliest step 3 around a step 2 is optimal, so this is
  exactly the ordered-mode definition for three distinct event names.) Window functions over the
  user's step events (RANGE ... 1 PRECEDING) answer the same and were 1.3-2x slower.
* funnel, PostgreSQL: the same idea with window functions over each person's step events after an
  index-only scan on (event, user_id, timestamp). Before persons, LATERAL index-only lookups per
  distinct id were about as fast; a person's events span several ids, which those lookups cannot seek.
* cohort: one GROUP BY user_id with min(timestamp) and a bit per active week (bit_or), then the ids'
  rows grouped by person (min of the mins, bit_or of the bits: the same answer as grouping the events
  by person, with a join of one row per id instead of one per event), then one row per cohort;
  DuckDB's DISTINCT (user, week) + join was slower. PostgreSQL streams the first GROUP BY from an
  index-only scan on (user_id, timestamp).

Persons: both load the same link table ours holds (`person_links FINAL`) and resolve it at load time
in their own SQL (RESOLVE_PERSONS: the rule of shared/contracts/persons.py) into a table `persons`
(distinct id -> person key, for the ids that are not their own key), which every query joins. That is
the work ours does at query time too (the resolver's answer is written when links arrive; a query reads
it through a dictionary), so neither side resolves links inside a timed query, and the baselines'
resolution is independent of ours: the bench checks both map every id as our resolver did.

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

# Every event's person: the resolved key of its distinct id (`persons` holds the ids that are not their
# own person's key), joined at query time as ours reads the dictionary at query time.
DUCKDB_STEPS = """
SELECT coalesce(p.person, e.user_id) AS person, e.event, epoch_ms(e.timestamp) AS ts
FROM events e LEFT JOIN persons p ON p.distinct_id = e.user_id
WHERE e.event IN ($s1, $s2, $s3) AND e.timestamp >= $range_start AND e.timestamp < $range_end"""
DUCKDB_CHAINS = f"""
s AS ({DUCKDB_STEPS}),
s1 AS (SELECT person, ts FROM s WHERE event = $s1),
s2 AS (SELECT person, ts FROM s WHERE event = $s2),
s3 AS (SELECT person, ts FROM s WHERE event = $s3),
chains AS (
    SELECT s2.person, s1.ts AS a, s2.ts AS b, CASE WHEN s3.ts - s1.ts <= $window THEN s3.ts END AS c
    FROM s2 ASOF JOIN s1 ON s2.person = s1.person AND s2.ts > s1.ts
            ASOF LEFT JOIN s3 ON s2.person = s3.person AND s2.ts < s3.ts
    WHERE s2.ts - s1.ts <= $window),
best AS (
    SELECT person, max(CASE WHEN c IS NULL THEN 2 ELSE 3 END) AS level,
           arg_min([a, b, coalesce(c, 0)], [CASE WHEN c IS NULL THEN -2 ELSE -3 END, coalesce(c,
               b), -a, b]) AS chain
    FROM chains GROUP BY person),
levels AS (
    SELECT person, coalesce(best.level, 1) AS level, chain
    FROM (SELECT DISTINCT person FROM s1) entered LEFT JOIN best USING (person))"""
# Per step-2 event: the latest step-1 event before it and the first step-3 event after it; of those, the
# conversion chain is the one completing first, then starting last, then with the earliest step 2 (the
# service's definition; taking the latest step 1 and earliest step 3 around each step 2 loses no chain
# that could be it). Per level the persons, then the step times' sums and lower and upper medians.
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

# The same definition with window functions: for each step-2 event, the latest step-1 time strictly
# before it and the earliest step-3 time strictly after it (EXCLUDE GROUP leaves out the same moment).
POSTGRES_FUNNEL = """
WITH s AS (
    SELECT coalesce(p.person, e.user_id) AS person, e.event, e.timestamp AS ts
    FROM events e LEFT JOIN persons p ON p.distinct_id = e.user_id
    WHERE e.event IN (%(s1)s, %(s2)s, %(s3)s) AND e.timestamp >= %(range_start)s
      AND e.timestamp < %(range_end)s),
w AS (
    SELECT person, event, ts,
           max(ts) FILTER (WHERE event = %(s1)s) OVER (PARTITION BY person ORDER BY ts
               RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW EXCLUDE GROUP) AS t1,
           min(ts) FILTER (WHERE event = %(s3)s) OVER (PARTITION BY person ORDER BY ts
               RANGE BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING EXCLUDE GROUP) AS t3
    FROM s),
pairs AS (
    SELECT person, t1 AS a, ts AS b,
           CASE WHEN t3 <= t1 + %(window)s * interval '1 millisecond' THEN t3 END AS c
    FROM w
    WHERE event = %(s2)s AND t1 IS NOT NULL AND ts <= t1 + %(window)s * interval '1 millisecond'),
best AS (
    SELECT DISTINCT ON (person) person, CASE WHEN c IS NULL THEN 2 ELSE 3 END AS level,
           (extract(epoch FROM b - a) * 1000)::bigint AS d2, (extract(epoch FROM c - b) * 1000)::bigint AS d3
    FROM pairs ORDER BY person, c IS NULL, coalesce(c, b), a DESC, b),
entered AS (SELECT DISTINCT person FROM s WHERE event = %(s1)s),
levels AS (SELECT person, coalesce(level, 1) AS level, d2, d3 FROM entered LEFT JOIN best USING (person))
SELECT count(*) FILTER (WHERE level = 1), count(*) FILTER (WHERE level = 2),
    count(*) FILTER (WHERE level = 3),
       sum(d2), sum(d3), percentile_disc(0.5) WITHIN GROUP (ORDER BY d2),
       percentile_disc(0.5) WITHIN GROUP (ORDER BY d3), -percentile_disc(0.5) WITHIN GROUP (ORDER BY -d2),
       -percentile_disc(0.5) WITHIN GROUP (ORDER BY -d3)
FROM levels"""


def cohort_sql(periods: int, postgres: bool) -> str:
    """Weekly cohorts of persons: (cohort index, persons, returning persons at offset 0..periods-1)."""
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
        WITH per_id AS (
            SELECT user_id, min(timestamp) AS first_seen,
                   bit_or(CASE WHEN timestamp >= {bound["first"]}
                               THEN {one} << {week_of.format(t="timestamp")}::integer
                               ELSE 0{cast} END) AS active
            FROM events WHERE timestamp < {bound["end"]}
            GROUP BY user_id),
        per_user AS (
            SELECT min(first_seen) AS first_seen, bit_or(active) AS active
            FROM per_id i LEFT JOIN persons p ON p.distinct_id = i.user_id
            GROUP BY coalesce(p.person, i.user_id) HAVING min(first_seen) >= {bound["first"]}),
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
DUCKDB_LINKS = """
CREATE TABLE links AS
SELECT from_id, to_id, event, event_id, timestamp::TIMESTAMP AS timestamp FROM read_parquet(?)"""
# Persons resolved from the links by the rule of shared/contracts/persons.py, in the engine's own SQL:
# each id's outgoing link is its earliest by (timestamp, event_id, to_id, event); walks follow them to an
# id without one. The ids that are not their own person's key, with that key. A walk still going after
# MAX_WALK steps (a cycle, whose key is its smallest id, or a longer chain) is not handled here:
# check_persons refuses such data, which the bench does not generate.
MAX_WALK = 64
RESOLVE_PERSONS = f"""
CREATE TABLE persons AS
WITH RECURSIVE outgoing AS (
    SELECT from_id, to_id FROM (
        SELECT from_id, to_id,
               row_number() OVER (PARTITION BY from_id ORDER BY timestamp, event_id, to_id, event) AS r
        FROM links) ranked
    WHERE r = 1),
walk (distinct_id, current, steps) AS (
    SELECT from_id, to_id, 1 FROM outgoing
    UNION ALL
    SELECT w.distinct_id, o.to_id, w.steps + 1
    FROM walk w JOIN outgoing o ON o.from_id = w.current
    WHERE w.steps < {MAX_WALK})
SELECT distinct_id, current AS person FROM (
    SELECT distinct_id, current,
           row_number() OVER (PARTITION BY distinct_id ORDER BY steps DESC) AS r
    FROM walk) last
WHERE r = 1"""
UNRESOLVED = "SELECT count(*) FROM persons WHERE person IN (SELECT from_id FROM links)"


def check_persons(unresolved: int) -> None:
    if unresolved:
        raise ValueError(f"{unresolved} walks did not end within {MAX_WALK} links (a cycle?)")


def load_duckdb(
    parquet: Path, links: Path, database: Path | None = None, memory_limit: str | None = None
) -> duckdb.DuckDBPyConnection:
    """A DuckDB with the events (properties included: the trends read them), sorted like ours
    ((event, user_id, timestamp)), so a filter on event skips row groups; and the persons resolved
    from the links. In memory, or in the `database` file (for data larger than memory) with its buffer
    pool capped at `memory_limit`."""
    connection = duckdb.connect(str(database) if database is not None else ":memory:")
    if memory_limit is not None:
        connection.execute(f"SET memory_limit = '{memory_limit}'")
    connection.execute("SET TimeZone = 'UTC'")
    connection.execute(DUCKDB_TABLE, [str(parquet)])
    connection.execute(DUCKDB_LINKS, [str(links)])
    connection.execute(RESOLVE_PERSONS)
    check_persons(connection.execute(UNRESOLVED).fetchall()[0][0])
    return connection


POSTGRES_TABLE = """
CREATE TABLE events (event_id uuid, event text, user_id text, timestamp timestamp(3), properties text)"""
POSTGRES_LINKS = """
CREATE TABLE links (from_id text, to_id text, event text, event_id uuid, timestamp timestamp(3))"""
POSTGRES_INDEXES = (
    "CREATE INDEX events_event_user_time ON events (event, user_id, timestamp)",
    "CREATE INDEX events_user_time ON events (user_id, timestamp)",
    "ALTER TABLE persons ADD PRIMARY KEY (distinct_id)",
)


def copy_in(connection: psycopg.Connection, table: str, csv: Path) -> None:
    with (
        connection.cursor().copy(f"COPY {table} FROM STDIN (FORMAT csv, FREEZE)") as copy,
        csv.open("rb") as f,
    ):
        while chunk := f.read(1 << 20):
            copy.write(chunk)


def load_postgres(connection: psycopg.Connection, csv: Path, links: Path) -> None:
    """COPY the CSVs in (FREEZE: the tables are new in this transaction, so rows are visible to
    index-only scans without a VACUUM), resolve the persons, then the indexes both questions use, then
    statistics."""
    with connection.transaction():
        connection.execute(POSTGRES_TABLE)
        copy_in(connection, "events", csv)
        connection.execute(POSTGRES_LINKS)
        copy_in(connection, "links", links)
    connection.execute(RESOLVE_PERSONS)
    check_persons(connection.execute(UNRESOLVED).fetchall()[0][0])
    for statement in POSTGRES_INDEXES:
        connection.execute(statement)
    connection.execute("VACUUM ANALYZE events")
    connection.execute("VACUUM ANALYZE persons")


def persons_of(connection: Any) -> set[tuple[str, str]]:
    """(distinct id, person key) of every id that is not its own key, as the engine resolved them."""
    return {
        (str(i), str(p)) for i, p in connection.execute("SELECT distinct_id, person FROM persons").fetchall()
    }


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
