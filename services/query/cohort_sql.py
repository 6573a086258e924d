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

from services.query.properties import NO_KEY
from shared.contracts.storage import ACTIVE_DAYS_TABLE, EVENTS_TABLE, IN_MERGED_PERSON, PERSON

# Among simultaneous events the one received first, then the smaller event_id (as text) is earlier.
TIE_KEY = "(toUnixTimestamp64Milli(received_at), toString(event_id))"

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
    """Cohort rows when any event starts and any event returns (see the module doc). Each person becomes
    (sign, cohort, bit mask of the shown periods they were active in). A distinct id that is its own
    person is one summary row: every such summarised id (+1), minus the changed ones among them (-1, a
    primary-key lookup in the summary), plus the changed ones recomputed from the events (+1);
    subtracting spares testing every id against the set. The ids of merged persons (two or more ids)
    are grouped by person first, each id's days coming from the summary or, when changed, from the
    events. People are then counted per (cohort, mask), a few thousand groups, before the masks are
    expanded."""
    period = DAY_PERIOD[period_type]
    alone = f"{SUMMARY_USABLE} AND NOT {IN_MERGED_PERSON}"
    changed = f"user_id IN ({CHANGED_USERS})"
    return f"""
        SELECT cohort, sum(n) AS users,
               sumForEach(arrayMap(k -> toUInt64({retained_sql("mask", "cohort + k", cumulative)}) * n,
                                   range({periods} - cohort)))
        FROM (
            SELECT cohort, mask, sum(sign) AS n
            FROM (
                {from_days_sql(period, "1", summarised_days_sql(alone))}
                UNION ALL
                {from_days_sql(period, "-1", summarised_days_sql(f"{alone} AND {changed}"))}
                UNION ALL
                {from_days_sql(period, "1", recomputed_days_sql(f"NOT {IN_MERGED_PERSON}", "user_id"))}
                UNION ALL
                {from_days_sql(period, "1", merged_person_days_sql())})
            GROUP BY cohort, mask)
        GROUP BY cohort
        ORDER BY cohort"""


def bit_of(period_index: str) -> str:
    """The mask bit of a shown period; clamped into 0..63 because ClickHouse may evaluate it on rows
    (days before the first shown period) that a condition then drops."""
    return f"bitShiftLeft(toUInt64(1), least(greatest({period_index}, 0), 63))"


def from_days_sql(period: str, sign: str, days: str) -> str:
    """(sign, cohort, mask) of each row of `days` (a sorted array `known` of the days before end_day):
    sorted days give sorted periods, so arrayCompact leaves each once."""
    periods = f"arrayCompact(arrayMap(d -> {period.format(d='d')}, known))"
    return f"""
        SELECT {sign} AS sign, toInt32({period.format(d="known[1]")}) AS cohort,
               arraySum(arrayMap(p -> {bit_of("p")}, {periods})) AS mask
        FROM ({days})
        WHERE notEmpty(known) AND known[1] >= {{first_day:Int32}}"""


def summarised_days_sql(where: str, person: str | None = None) -> str:
    """`known` of the summary's rows matching `where` (and `person`, the row's person, when asked)."""
    select = f"{person} AS person, " if person else ""
    return f"""
        SELECT {select}arrayFilter(d -> d < {{end_day:Int32}}, days) AS known
        FROM {ACTIVE_DAYS_TABLE}
        WHERE {where} AND NOT throwIf(built_at != {BUILT_AT}, '{SUMMARY_SWAPPED}')"""


def recomputed_days_sql(where: str, group: str) -> str:
    """`known` from `analytics_events FINAL`, per `group`, of the changed ids matching `where` (of every
    id when the summary cannot be used). The id filters may run before FINAL: copies share the key."""
    return f"""
        SELECT {group}, arraySort(groupArrayIf(d, d < {{end_day:Int32}})) AS known
        FROM (SELECT user_id, {PERSON} AS person, {DAY_NUMBER.format(t="timestamp")} AS d
              FROM {EVENTS_TABLE} FINAL
              PREWHERE (NOT {SUMMARY_USABLE} OR user_id IN ({CHANGED_USERS})) AND {where})
        GROUP BY {group}"""


def merged_person_days_sql() -> str:
    """`known` of every merged person: the days of all their ids, each id's from the summary or, when
    it changed, from the events."""
    unchanged = f"{SUMMARY_USABLE} AND {IN_MERGED_PERSON} AND user_id NOT IN ({CHANGED_USERS})"
    return f"""
        SELECT arraySort(arrayDistinct(arrayFlatten(groupArray(known)))) AS known
        FROM (
            {summarised_days_sql(unchanged, PERSON)}
            UNION ALL
            SELECT person, known FROM ({recomputed_days_sql(IN_MERGED_PERSON, "person")}))
        GROUP BY person"""


def scan_sql(
    period_type: str,
    periods: int,
    is_start: str,
    is_return: str,
    event_filter: str,
    *,
    local_day: str | None = None,
    first_time: bool = False,
    cumulative: bool = False,
    breakdown: str | None = None,
) -> str:
    """Cohort rows from one scan of the events grouped by person: `active` has bit i set when the
    person returned in shown period i (first_time: their cohort's bit too, the start counts). With a
    breakdown, rows per (value on the cohort-starting event, cohort): see breakdown_sql.
    Periods are UTC's, or with `local_day` (SQL of the local day number over `timestamp`,
    timezones.py) the time zone's: local dates never go back as time goes on, so the first start
    event's day is the smallest one."""
    if local_day is None:
        at, day, first = "timestamp", "", "{first_at:DateTime64(3, 'UTC')}"
        index = PERIOD_INDEX[period_type].replace("{t}", "{at}")
        rows = "timestamp < {range_end:DateTime64(3, 'UTC')}"
    else:
        at, day, first = "day", f", {local_day} AS day", "{first_day:Int32}"
        index = LOCAL_PERIOD[period_type].replace("{d}", "{at}")
        rows = "timestamp < {tz_to:DateTime64(3, 'UTC')} AND day <= {last_day:Int32}"
    mask = "bitOr(active, bitShiftLeft(toUInt64(1), cohort))" if first_time else "active"
    counts = counts_sql(periods, retained_sql(mask, "cohort + k", cumulative))
    value = f", {first_value('timestamp')}" if breakdown else ""
    people = f"""
            SELECT {index.format(at=f"minIf({at}, is_start)")} AS cohort,
                   groupBitOrIf(bitShiftLeft(toUInt64(1), greatest(period, 0)), returned) AS active{value}
            FROM (SELECT {PERSON} AS person, timestamp{day}, {is_start} AS is_start{start_key(breakdown)},
                         {index.format(at=at)} AS period,
                         {is_return} AND {at} >= {first} AS returned
                  FROM {EVENTS_TABLE} FINAL
                  WHERE {rows} AND {event_filter})
            GROUP BY person
            HAVING countIf(is_start) > 0 AND minIf({at}, is_start) >= {first}"""
    if breakdown:
        return breakdown_sql(people, counts)
    return f"""
        SELECT cohort, count() AS users, sumForEach({counts})
        FROM ({people})
        GROUP BY cohort
        ORDER BY cohort"""


def start_key(breakdown: str | None) -> str:
    """The breakdown bucket `bk` and the order among simultaneous events `tie` of a row, read for start
    events only (the others' JSON is not parsed)."""
    if breakdown is None:
        return ""
    return f", if(is_start, {breakdown}, {NO_KEY}) AS bk, {TIE_KEY} AS tie"


def first_value(at: str) -> str:
    """The person's cohort-starting event's bucket: their first start event (`at`: its time), among
    simultaneous ones the one received first (README, Definitions: "Order and ties")."""
    return f"argMinIf(bk, ({at}, tie), is_start) AS bk"


def breakdown_sql(people: str, counts: str) -> str:
    """(bucket, value, cohort, users, [returning at k]): the values with the most persons in the shown
    cohorts are buckets 1-10 (ties by the bucket's order), the rest 11; bucket 0 is every person."""
    return f"""
        SELECT if(grouping(bucket) = 1, 0, bucket) AS bucket_id, argMin(bk, rank),
               cohort, sum(users), sumForEach(returning)
        FROM (
            SELECT least(rank, {TOP_VALUES + 1}) AS bucket, rank, bk, cohort, users, returning
            FROM (
                SELECT *, dense_rank() OVER (ORDER BY persons DESC, bk) AS rank
                FROM (
                    SELECT bk, cohort, count() AS users,
                           sumForEach({counts}) AS returning,
                           sum(count()) OVER (PARTITION BY bk) AS persons
                    FROM ({people})
                    GROUP BY bk, cohort)))
        GROUP BY GROUPING SETS ((bucket, cohort), (cohort))
        ORDER BY bucket_id, cohort"""


def event_condition(event: str | None, name: str, params: dict[str, Any]) -> str:
    if event is None:
        return "1"
    params[name] = event
    return f"event = {{{name}:String}}"


# The shown period of a local day number {d} (timezones.py), counted from the first shown period.
LOCAL_PERIOD = {
    "daily": "({d} - {{first_day:Int32}})",
    "weekly": "intDiv({d} - {{first_day:Int32}}, 7)",
    "monthly": "(toYear(toDate32({d})) * 12 + toMonth(toDate32({d})) - {{first_month:Int32}})",
}
