"""The SQL behind a cohort table, two ways to the same rows (cohort index, users, [returning at k]).

* `summary_sql` (start_event and return_event both absent: any event counts). Every user's active UTC
  days come from `user_active_days`, a per-user summary that a refreshable materialized view rebuilds
  from `analytics_events FINAL` every few minutes (shared/contracts/schema.sql). Users with a row
  inserted since (minus a margin for inserts in flight) are *changed*: their days are recomputed from
  `analytics_events FINAL`, so a retried or replayed copy that moved an event to another day, or a new
  event, is counted exactly as FINAL counts it. A summary built before the oldest stored row (the table
  was truncated and reloaded) is not used at all. One row per user instead of one per event: the
  summary path reads one short array per user and needs no per-event GROUP BY. Its cost grows back
  towards a scan when users changed: finding their events reads every user_id, because
  `analytics_events` is sorted by event first (figures: docs/performance.md).
  Each rebuild swaps the table atomically, and the query reads it more than once: a row whose
  `built_at` is not the one the changed users were found with stops the query (SUMMARY_SWAPPED), and
  the runner asks again.
* `scan_sql` (named start or return events): one scan grouped by user; the first start time, and a
  UInt64 with bit i set when the user returned in shown period i.
"""

from __future__ import annotations

from typing import Any

from shared.contracts.storage import ACTIVE_DAYS_TABLE, EVENTS_TABLE, PERSON

TOP_VALUES = 10

SUMMARY_SWAPPED = "the cohort summary was rebuilt during the query"
# An insert stamps `inserted_at` (now(), in seconds) before its part is committed; a summary built in
# between would miss the rows without seeing them as changed. A minute covers any insert in flight.
CHANGED_MARGIN_SECONDS = 60
BUILT_AT = f"(SELECT max(built_at) FROM {ACTIVE_DAYS_TABLE})"
CHANGED_USERS = (
    f"SELECT user_id FROM {EVENTS_TABLE} "
    f"WHERE inserted_at >= {BUILT_AT} - toIntervalSecond({{margin:UInt32}})"
)
SUMMARY_USABLE = (
    f"({BUILT_AT} > toDateTime(0) AND "
    f"(SELECT count() FROM (SELECT 1 FROM {EVENTS_TABLE} WHERE inserted_at < {BUILT_AT} LIMIT 1)) = 1)"
)
# UTC day number (days since 1970-01-01) of a DateTime64; events are never before 1970.
DAY_NUMBER = "toInt32(intDiv(toUnixTimestamp64Milli({t}), 86400000))"
# The shown period holding day number {d}, counted from the first shown period (day {first_day}).
# Only used for days on or after {first_day}, where intDiv floors.
DAY_PERIOD = {
    "daily": "({d} - {{first_day:Int32}})",
    "weekly": "intDiv({d} - {{first_day:Int32}}, 7)",
    "monthly": "(toRelativeMonthNum(toDate32({d})) - toRelativeMonthNum({{first:Date32}}))",
}
# The same for a DateTime64 {t} on or after {first_at} ({first_ms} in ms); toRelativeDayNum would do,
# but it saturates after 2149.
DAYS_SINCE_FIRST = "intDiv(toUnixTimestamp64Milli({t}) - {{first_ms:Int64}}, 86400000)"
PERIOD_INDEX = {
    "daily": DAYS_SINCE_FIRST,
    "weekly": f"intDiv({DAYS_SINCE_FIRST}, 7)",
    "monthly": "(toRelativeMonthNum({t}) - toRelativeMonthNum({{first:Date32}}))",
}


def counts_sql(periods: int, returned_at_offset: str) -> str:
    """Per cohort row: 1 or 0 for each offset k whose period is shown."""
    return f"arrayMap(k -> toUInt64({returned_at_offset}), range({periods} - cohort))"


def retained_sql(mask: str, at: str, cumulative: bool) -> str:
    """Retained at shown period `at`: a return in it, or with `cumulative` in it or any later one."""
    return f"bitShiftRight({mask}, {at}) != 0" if cumulative else f"bitTest({mask}, {at})"


def summary_sql(period_type: str, periods: int, cumulative: bool = False) -> str:
    """Cohort rows when any event starts and any event returns (see the module doc). Each user becomes
    (sign, cohort, bit mask of the shown periods they were active in): every summarised user (+1),
    minus the changed ones among them (-1, a primary-key lookup in the summary), plus the changed users
    recomputed from the events (+1). Users are then counted per (cohort, mask), a few thousand groups,
    before the masks are expanded; subtracting spares testing a million user ids against the set."""
    period = DAY_PERIOD[period_type]
    return f"""
        SELECT cohort, sum(n) AS users,
               sumForEach(arrayMap(k -> toUInt64({retained_sql("mask", "cohort + k", cumulative)}) * n,
                                   range({periods} - cohort)))
        FROM (
            SELECT cohort, mask, sum(sign) AS n
            FROM (
                {summarised_users_sql(period, "1", SUMMARY_USABLE)}
                UNION ALL
                {summarised_users_sql(period, "-1", f"{SUMMARY_USABLE} AND user_id IN ({CHANGED_USERS})")}
                UNION ALL
                {recomputed_users_sql(period)})
            GROUP BY cohort, mask)
        GROUP BY cohort
        ORDER BY cohort"""


def bit_of(period_index: str) -> str:
    """The mask bit of a shown period; clamped into 0..63 because ClickHouse may evaluate it on rows
    (days before the first shown period) that a condition then drops."""
    return f"bitShiftLeft(toUInt64(1), least(greatest({period_index}, 0), 63))"


def summarised_users_sql(period: str, sign: str, where: str) -> str:
    """(sign, cohort, mask) of the summary's users matching `where`; a user's days are sorted, so the
    periods are too and arrayCompact leaves each once."""
    periods = f"arrayCompact(arrayMap(d -> {period.format(d='d')}, known))"
    return f"""
        SELECT {sign} AS sign, toInt32({period.format(d="known[1]")}) AS cohort,
               arraySum(arrayMap(p -> {bit_of("p")}, {periods})) AS mask
        FROM (SELECT arrayFilter(d -> d < {{end_day:Int32}}, days) AS known
              FROM {ACTIVE_DAYS_TABLE}
              WHERE {where} AND NOT throwIf(built_at != {BUILT_AT}, '{SUMMARY_SWAPPED}'))
        WHERE notEmpty(known) AND known[1] >= {{first_day:Int32}}"""


def recomputed_users_sql(period: str) -> str:
    """(1, cohort, mask) from `analytics_events FINAL` of the changed users, or of everyone when the
    summary cannot be used. The user_id filter may run before FINAL: copies share the key."""
    known, shown = "d < {end_day:Int32}", "d >= {first_day:Int32} AND d < {end_day:Int32}"
    first_known = f"minIf(d, {known})"
    return f"""
        SELECT 1 AS sign, toInt32({period.format(d=first_known)}) AS cohort,
               groupBitOrIf({bit_of(period.format(d="d"))}, {shown}) AS mask
        FROM (SELECT user_id, {DAY_NUMBER.format(t="timestamp")} AS d
              FROM {EVENTS_TABLE} FINAL
              PREWHERE NOT {SUMMARY_USABLE} OR user_id IN ({CHANGED_USERS}))
        GROUP BY user_id
        HAVING countIf({known}) > 0 AND {first_known} >= {{first_day:Int32}}"""


def scan_sql(
    period_type: str,
    periods: int,
    is_start: str,
    is_return: str,
    event_filter: str,
    *,
    first_time: bool = False,
    cumulative: bool = False,
    breakdown: str | None = None,
) -> str:
    """Cohort rows from one scan of the events grouped by person: `active` has bit i set when the
    person returned in shown period i (first_time: their cohort's bit too, the start counts). With a
    breakdown, rows per (value on the cohort-starting event, cohort): see breakdown_sql."""
    index = PERIOD_INDEX[period_type]
    mask = "bitOr(active, bitShiftLeft(toUInt64(1), cohort))" if first_time else "active"
    retained = "bitTest(active, cohort + k)" if mask == "active" and not cumulative else None
    counts = counts_sql(periods, retained or retained_sql(mask, "cohort + k", cumulative))
    value = ", minIf((timestamp, bk), is_start).2 AS bk" if breakdown else ""
    key = f", if(is_start, {breakdown}, (false, '')) AS bk" if breakdown else ""  # parsed for starts only
    people = f"""
            SELECT {index.format(t="minIf(timestamp, is_start)")} AS cohort,
                   groupBitOrIf(bitShiftLeft(toUInt64(1), greatest(period, 0)), returned) AS active{value}
            FROM (SELECT {PERSON} AS person, timestamp, {is_start} AS is_start{key},
                         {index.format(t="timestamp")} AS period,
                         {is_return} AND timestamp >= {{first_at:DateTime64(3, 'UTC')}} AS returned
                  FROM {EVENTS_TABLE} FINAL
                  WHERE timestamp < {{range_end:DateTime64(3, 'UTC')}} AND {event_filter})
            GROUP BY person
            HAVING countIf(is_start) > 0
               AND minIf(timestamp, is_start) >= {{first_at:DateTime64(3, 'UTC')}}"""
    if breakdown:
        return breakdown_sql(people, counts)
    return f"""
        SELECT cohort, count() AS users, sumForEach({counts})
        FROM ({people})
        GROUP BY cohort
        ORDER BY cohort"""


def breakdown_sql(people: str, counts: str) -> str:
    """(bucket, missing, value, cohort, users, [returning at k]): the values with the most persons in
    the shown cohorts are buckets 1-10, the rest 11; bucket 0 is every person."""
    return f"""
        SELECT if(grouping(bucket) = 1, 0, bucket) AS bucket_id, argMin(missing, rank), argMin(value, rank),
               cohort, sum(users), sumForEach(returning)
        FROM (
            SELECT least(rank, {TOP_VALUES + 1}) AS bucket, rank, missing, value, cohort, users, returning
            FROM (
                SELECT *, dense_rank() OVER (ORDER BY persons DESC, missing, value) AS rank
                FROM (
                    SELECT bk.1 AS missing, bk.2 AS value, cohort, count() AS users,
                           sumForEach({counts}) AS returning,
                           sum(count()) OVER (PARTITION BY missing, value) AS persons
                    FROM ({people})
                    GROUP BY missing, value, cohort)))
        GROUP BY GROUPING SETS ((bucket, cohort), (cohort))
        ORDER BY bucket_id, cohort"""


def event_condition(event: str | None, name: str, params: dict[str, Any]) -> str:
    if event is None:
        return "1"
    params[name] = event
    return f"event = {{{name}:String}}"
