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
* unordered: some window [s, s + window] holds k different events matching steps 1..k, one each, in any
  order (one event never satisfies two steps, as in the other modes). Whether steps 1..k can each get
  their own event is Hall's condition: for every set S of those steps, the window holds at least |S|
  events matching some step of S. Steps of different event names never share an event, and steps
  with the same name and filters are interchangeable, so only the unions of filter classes within
  one event name need checking (`hall_tests`); a window function counts, for every start s, the
  events in [s, s + window] matching each such union.

The breakdown value is the user's first step-1 event's; among simultaneous ones (README, Definitions:
"Order and ties") the one received first, then the smaller event_id as text (the `tie` column).
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import combinations
from typing import Any

from services.query.filters import PropertyFilter, PropertyRef, all_filters_sql, bucket_sql
from shared.contracts.property_types import BUCKET_NONE
from shared.contracts.storage import EVENTS_TABLE, PERSON, RANGE_FILTER

TOP_BREAKDOWN_VALUES = 10
# An unordered funnel checks every union of filter classes sharing an event name: 2^n - 1 of them.
MAX_UNORDERED_CLASSES_PER_EVENT = 10
NO_BREAKDOWN_KEY = f"(toUInt8({BUCKET_NONE}), toFloat64(0), '')"
# Among simultaneous events the one received first, then the smaller event_id (as text) is earlier.
TIE_KEY = "(toUnixTimestamp64Milli(received_at), toString(event_id))"
NO_TIE_KEY = "(toInt64(0), '')"


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
    breakdown: PropertyRef | None,
    params: dict[str, Any],
    in_range: str = RANGE_FILTER,
) -> str:
    """One row per deduplicated event in the range (`in_range`: UTC days, or a zone's) that matches at
    least one step, with its mask, breakdown bucket `bk` and `tie` (the order among simultaneous events)."""
    params["events"] = sorted({event for event, _ in steps})
    key, tie = NO_BREAKDOWN_KEY, NO_TIE_KEY
    if breakdown is not None:
        key, tie = bucket_sql(breakdown, "breakdown", params), TIE_KEY
    return f"""
        SELECT {PERSON} AS person, toUInt64(toUnixTimestamp64Milli(timestamp)) AS ts,
               {step_mask_sql(steps, params)} AS mask, {key} AS bk, {tie} AS tie
        FROM {EVENTS_TABLE} FINAL
        WHERE {in_range} AND event IN {{events:Array(String)}}
          AND {all_filters_sql(global_filters, "gf", params)} AND mask > 0"""


def first_key(breakdown: bool, is_first_step: str, ts: str = "ts", key: str = "bk", tie: str = "tie") -> str:
    """The breakdown bucket of the user's earliest step-1 event (ties: `tie`)."""
    return f"argMinIf({key}, ({ts}, {tie}), {is_first_step})" if breakdown else NO_BREAKDOWN_KEY


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
        FROM (SELECT person, ts, bk, tie, {step} AS step FROM ({rows}))
        GROUP BY person"""


def strict_levels_sql(rows: str, steps: int, breakdown: bool) -> str:
    """person, level, bk for `strict`: the longest run of consecutive moments that are steps 1, 2, ..."""
    is_step_j = "bitTest(m[i + j - 1].2, j - 1) AND m[i + j - 1].1 <= m[i].1 + {window:UInt64}"
    run_from_i = f"arrayFirstIndex(j -> NOT ({is_step_j}), range(1, {steps + 2})) - 1"
    moment_key = "argMinIf(bk, tie, bitTest(mask, 0))" if breakdown else NO_BREAKDOWN_KEY
    moment_tie = "minIf(tie, bitTest(mask, 0))" if breakdown else NO_TIE_KEY
    first = first_key(breakdown, "bitTest(moment_mask, 0)", key="moment_bk", tie="moment_tie")
    return f"""
        SELECT person, arrayMax(i -> {run_from_i}, arrayEnumerate(m)) AS level, bk
        FROM (
            SELECT person, arraySort(groupArray((ts, moment_mask))) AS m, {first} AS bk
            FROM (SELECT person, ts, groupBitOr(mask) AS moment_mask, {moment_key} AS moment_bk,
                         {moment_tie} AS moment_tie
                  FROM ({rows}) GROUP BY person, ts)
            GROUP BY person)"""


def hall_tests(steps: list[tuple[str, list[PropertyFilter]]]) -> tuple[list[int], list[list[int]]]:
    """The step sets an unordered funnel checks (see the module doc) and, for each level k, the
    1-based indices of the sets that must hold enough events for steps 1..k to each have their own.
    A set is a mask of steps; it needs as many events as it has steps."""
    classes: dict[str, dict[str, int]] = {}
    for i, (event, filters) in enumerate(steps):
        same = classes.setdefault(event, {})
        key = "[" + ",".join(f.model_dump_json() for f in filters) + "]"
        same[key] = same.get(key, 0) | 1 << i
    unions = sorted(
        {
            sum(chosen)
            for masks in classes.values()
            for size in range(1, len(masks) + 1)
            for chosen in combinations(masks.values(), size)
        }
    )
    tests: dict[int, int] = {}
    per_level = []
    for k in range(1, len(steps) + 1):
        prefixes = {union & ((1 << k) - 1) for union in unions} - {0}
        per_level.append(sorted(tests.setdefault(t, len(tests) + 1) for t in sorted(prefixes)))
    return list(tests), per_level


def unordered_levels_sql(rows: str, steps: int, breakdown: bool) -> str:
    """person, level, bk for `unordered`: the best window start s over the person's rows. Needs the
    parameters `hall_tests` and `hall_levels` (from `hall_tests`)."""
    counts = (
        "sumForEach(arrayMap(t -> toUInt32(bitAnd(mask, t) != 0), {hall_tests:Array(UInt32)})) OVER "
        "(PARTITION BY person ORDER BY ts RANGE BETWEEN CURRENT ROW AND {window:UInt64} FOLLOWING)"
    )
    holds = (
        "arrayAll(i -> counts[i] >= bitCount({hall_tests:Array(UInt32)}[i]), "
        "{hall_levels:Array(Array(UInt32))}[k])"
    )
    failed = f"arrayFirstIndex(k -> NOT {holds}, range(1, {steps + 1}))"
    return f"""
        SELECT person, max(if(failed = 0, {steps}, failed - 1)) AS level,
               {first_key(breakdown, "bitTest(mask, 0)")} AS bk
        FROM (SELECT person, ts, mask, bk, tie, {failed} AS failed
              FROM (SELECT person, ts, mask, bk, tie, {counts} AS counts FROM ({rows})))
        GROUP BY person"""


LEVELS_SQL: dict[str, Callable[[str, int, bool], str]] = {
    "ordered": ordered_levels_sql,
    "strict": strict_levels_sql,
    "unordered": unordered_levels_sql,
}


def buckets_sql(levels: str) -> str:
    """(bucket, value, level, users): the top values by entries are buckets 1-10, the rest 11; `value`
    is the breakdown bucket (kind, number, text) and ties in entries go by its order."""
    return f"""
        SELECT least(rank, {TOP_BREAKDOWN_VALUES + 1}) AS bucket, argMin(bk, rank), level, sum(users)
        FROM (
            SELECT bk, level, users, dense_rank() OVER (ORDER BY entries DESC, bk) AS rank
            FROM (
                SELECT bk, toUInt8(level) AS level, count() AS users,
                       sum(count()) OVER (PARTITION BY bk) AS entries
                FROM ({levels}) WHERE level > 0 GROUP BY bk, level))
        GROUP BY bucket, level
        ORDER BY bucket, level"""
