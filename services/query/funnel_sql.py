"""The SQL behind a funnel: matching rows, one level per user for each mode, and the breakdown buckets.

Every user's events inside the range are reduced to the steps each event matches (a bit mask). Events
sharing one millisecond form a *moment*; a chain needs strictly increasing timestamps, so one event
(or one moment) never counts as two steps. Per mode, a user's level is the highest k they reach:

* ordered: moments r1 < ... < rk with step j in mask(rj) and ts(rk) - ts(r1) <= window. windowFunnel
  computes this when every (event, step) pair is its own row and, inside one millisecond, higher steps
  sort first: the key is ts * 32 + (31 - step) and the window is scaled by 32. Plain windowFunnel would
  let one event be two steps (or chain two events of the same millisecond); `strict_increase` fixes
  that but misses chains like a@0 b@1 b@5 c@5 (it keeps only the latest b).
* strict: as ordered, and the chain's moments are consecutive among the user's matching moments (no
  event matching any step in between). windowFunnel's `strict_order` is not this rule (for a@0 b@1 b@2
  c@3 it answers 3), so the chain is checked on the user's sorted moments.
* unordered: some window [s, s + window] holds an event matching each of steps 1..k, in any order (one
  event may satisfy several steps). A running per-step minimum over the user's rows in descending time
  gives, for every start s, the next time each step happens.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from services.query.filters import PropertyFilter, all_filters_sql
from shared.contracts.storage import EVENTS_TABLE, PERSON, RANGE_FILTER

TOP_BREAKDOWN_VALUES = 10
NEVER = "18446744073709551615"  # max UInt64: "this step does not happen later"
# (missing, value) of the breakdown property, from one parse of the JSON; null counts as missing.
BREAKDOWN_KEY = (
    "((JSONExtractRaw(properties, {breakdown:String}) AS breakdown_raw) IN ('', 'null'), "
    "multiIf(breakdown_raw IN ('', 'null'), '', startsWith(breakdown_raw, '\"'), "
    "JSONExtractString(breakdown_raw), breakdown_raw))"
)
NO_BREAKDOWN_KEY = "(false, '')"


def step_mask_sql(steps: list[tuple[str, list[PropertyFilter]]], params: dict[str, Any]) -> str:
    """A UInt32 whose bit j-1 says the row matches step j (event name and the step's filters)."""
    terms = []
    for i, (event, filters) in enumerate(steps):
        params[f"event{i}"] = event
        condition = f"event = {{event{i}:String}} AND {all_filters_sql(filters, f's{i}f', params)}"
        terms.append(f"toUInt32({condition}) * {1 << i}")
    return " + ".join(terms)


def matching_rows_sql(
    steps: list[tuple[str, list[PropertyFilter]]],
    global_filters: list[PropertyFilter],
    breakdown: str | None,
    params: dict[str, Any],
) -> str:
    """One row per deduplicated event in the range that matches at least one step, with its mask and
    breakdown key `bk`."""
    params["events"] = sorted({event for event, _ in steps})
    key = NO_BREAKDOWN_KEY
    if breakdown is not None:
        params["breakdown"] = breakdown
        key = BREAKDOWN_KEY
    return f"""
        SELECT {PERSON} AS person, toUInt64(toUnixTimestamp64Milli(timestamp)) AS ts,
               {step_mask_sql(steps, params)} AS mask, {key} AS bk
        FROM {EVENTS_TABLE} FINAL
        WHERE {RANGE_FILTER} AND event IN {{events:Array(String)}}
          AND {all_filters_sql(global_filters, "gf", params)} AND mask > 0"""


def first_key(breakdown: bool, is_first_step: str, ts: str = "ts", key: str = "bk") -> str:
    """The breakdown key of the user's earliest step-1 event (the smallest key on a tie)."""
    return f"minIf(({ts}, {key}), {is_first_step}).2" if breakdown else NO_BREAKDOWN_KEY


def ordered_levels_sql(rows: str, steps: int, breakdown: bool, one_step_per_row: bool = False) -> str:
    """person, level, bk for `ordered` (windowFunnel on (event, step) rows, see the module doc). When
    the steps name distinct events a row matches one step at most: its mask's only bit gives the step,
    without an arrayJoin (a measurable share of the funnel: docs/performance.md)."""
    conditions = ", ".join(f"step = {j}" for j in range(1, steps + 1))
    step = "bitCount(mask - 1) + 1"
    if not one_step_per_row:
        step = f"arrayJoin(arrayFilter(j -> bitTest(mask, j - 1), range(1, {steps + 1})))"
    return f"""
        SELECT person,
               windowFunnel({{window_scaled:UInt64}})(toUInt64(ts * 32 + 31 - step), {conditions}) AS level,
               {first_key(breakdown, "step = 1")} AS bk
        FROM (SELECT person, ts, bk, {step} AS step FROM ({rows}))
        GROUP BY person"""


def strict_levels_sql(rows: str, steps: int, breakdown: bool) -> str:
    """person, level, bk for `strict`: the longest run of consecutive moments that are steps 1, 2, ..."""
    is_step_j = "bitTest(m[i + j - 1].2, j - 1) AND m[i + j - 1].1 <= m[i].1 + {window:UInt64}"
    run_from_i = f"arrayFirstIndex(j -> NOT ({is_step_j}), range(1, {steps + 2})) - 1"
    moment_key = "minIf(bk, bitTest(mask, 0))" if breakdown else NO_BREAKDOWN_KEY
    return f"""
        SELECT person, arrayMax(i -> {run_from_i}, arrayEnumerate(m)) AS level, bk
        FROM (
            SELECT person, arraySort(groupArray((ts, moment_mask))) AS m,
                   {first_key(breakdown, "bitTest(moment_mask, 0)", key="moment_bk")} AS bk
            FROM (SELECT person, ts, groupBitOr(mask) AS moment_mask, {moment_key} AS moment_bk
                  FROM ({rows}) GROUP BY person, ts)
            GROUP BY person)"""


def unordered_levels_sql(rows: str, steps: int, breakdown: bool) -> str:
    """person, level, bk for `unordered`: the best window start s over the person's rows."""
    seen_at = f"arrayMap(j -> if(bitTest(mask, j - 1), ts, {NEVER}), range(1, {steps + 1}))"
    later = "PARTITION BY person ORDER BY ts DESC RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"
    return f"""
        SELECT person,
               max(arrayFirstIndex(x -> x > ts + {{window:UInt64}}, arrayPushBack(next_seen, {NEVER})) - 1)
                   AS level,
               {first_key(breakdown, "bitTest(mask, 0)")} AS bk
        FROM (SELECT person, ts, mask, bk, minForEach({seen_at}) OVER ({later}) AS next_seen FROM ({rows}))
        GROUP BY person"""


LEVELS_SQL: dict[str, Callable[[str, int, bool], str]] = {
    "ordered": ordered_levels_sql,
    "strict": strict_levels_sql,
    "unordered": unordered_levels_sql,
}


def buckets_sql(levels: str) -> str:
    """(bucket, missing, value, level, users): the top values by entries are buckets 1-10, the rest 11."""
    return f"""
        SELECT least(rank, {TOP_BREAKDOWN_VALUES + 1}) AS bucket, argMin(missing, rank), argMin(value, rank),
               level, sum(users)
        FROM (
            SELECT missing, value, level, users,
                   dense_rank() OVER (ORDER BY entries DESC, missing, value) AS rank
            FROM (
                SELECT bk.1 AS missing, bk.2 AS value, toUInt8(level) AS level, count() AS users,
                       sum(count()) OVER (PARTITION BY missing, value) AS entries
                FROM ({levels}) WHERE level > 0 GROUP BY missing, value, level))
        GROUP BY bucket, level
        ORDER BY bucket, level"""
