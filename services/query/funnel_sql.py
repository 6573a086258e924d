"""The SQL behind the plain funnel (ordered, a fixed window, persons, first-touch breakdown or none), and
the steps view's buckets that every funnel shares.

Every person's events inside the range are reduced to the steps each event matches (a bit mask). A
chain needs strictly increasing timestamps, so one event (or two events of one millisecond) never
counts as two steps. Per person: the level (the highest step reached) and the *conversion chain*, the
chain the times are measured on (README): of the chains reaching the level, the one reaching it
first; of those, the one with the latest step-1 event; its other steps as early as possible.

* The level comes from windowFunnel, which computes it when every (event, step) pair is its own row
  and, inside one millisecond, higher steps sort first: the key is ts * 32 + (31 - step) and the window
  is scaled by 32. Plain windowFunnel would let one event be two steps (or chain two events of the same
  millisecond); `strict_increase` fixes that but misses chains like a@0 b@1 b@5 c@5.
* A person with at most one row per step (most persons of most funnels) has one possible chain: its
  times are the per-step minimums, no search needed. Any other person's conversion chain comes from
  one pass over their sorted keys (`conversion_chain_fold`): per level the latest start of a chain
  reaching it and that chain (steps as early as possible); the first time a level is reached, its
  chain becomes the conversion chain. The fold runs on an empty array for the other persons.
  The trends view of a plain funnel is one pass too (`plain_trends_sql`). Every other request
  (exclusions, hold_constant, other modes, month windows, totals, attribution rules) is answered by
  the general search in funnel_chains.py.

The breakdown value is the person's first step-1 event's; among simultaneous ones (README, Definitions:
"Order and ties") the one received first, then the smaller event_id as text (the `tie` column).
`hall_tests` serves the unordered search (funnel_chains): whether steps 1..k can each get their own
event is Hall's condition, checked only on the unions of filter classes within one event name.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

from services.query.filters import PropertyFilter, all_filters_sql
from services.query.funnel_models import FunnelRequest
from services.query.funnel_windows import period_index_sql, range_sql
from services.query.properties import KEY_TYPE, NO_KEY, key_sql
from shared.contracts.storage import EVENTS_TABLE, PERSON

TOP_BREAKDOWN_VALUES = 10
NO_BREAKDOWN_KEY = NO_KEY
# Among simultaneous events the one received first, then the smaller event_id (as text) is earlier.
TIE_KEY = "(toUnixTimestamp64Milli(received_at), toString(event_id))"
NO_TIE_KEY = "(toInt64(0), '')"
Steps = list[tuple[str, list[PropertyFilter]]]


def step_mask_sql(steps: Steps, params: dict[str, Any]) -> str:
    """A UInt32 whose bit j-1 says the row matches step j (event name and the step's filters)."""
    terms = []
    for i, (event, filters) in enumerate(steps):
        params[f"event{i}"] = event
        condition = f"event = {{event{i}:String}} AND {all_filters_sql(filters, f's{i}f', params)}"
        terms.append(f"toUInt32({condition}) * {1 << i}")
    return " + ".join(terms)


def matching_rows_sql(
    steps: Steps,
    global_filters: list[PropertyFilter],
    breakdown: str | None,
    params: dict[str, Any],
    in_range: str,
) -> str:
    """One row per deduplicated event in the range (`in_range`: UTC days, or a zone's) that matches at
    least one step, with its mask, breakdown bucket `bk` on step-1 rows (`breakdown`: its SQL, whose
    parameters the caller set) and `tie` (the order among simultaneous events)."""
    params["events"] = sorted({event for event, _ in steps})
    # only step-1 rows' values are read (first touch): the others' JSON is not parsed
    key = NO_BREAKDOWN_KEY if breakdown is None else f"if(bitTest(mask, 0), {breakdown}, {NO_BREAKDOWN_KEY})"
    tie = NO_TIE_KEY if breakdown is None else TIE_KEY
    return f"""
        SELECT {PERSON} AS person, toUInt64(toUnixTimestamp64Milli(timestamp)) AS ts,
               {step_mask_sql(steps, params)} AS mask, {key} AS bk, {tie} AS tie
        FROM {EVENTS_TABLE} FINAL
        WHERE {in_range} AND event IN {{events:Array(String)}}
          AND {all_filters_sql(global_filters, "gf", params)} AND mask > 0"""


def first_step_values_sql(request: FunnelRequest, params: dict[str, Any]) -> str:
    """person, ts, bk (the breakdown value), tie of every step-1 event in the range (the rows whose
    mask has bit 0 in `matching_rows_sql`: the same conditions, the same parameters): the candidates
    for the first-touch value, read by a scan of the step-1 event's granules only (the table's key
    starts with `event`), where reading the value beside the steps reads the properties of every
    matching event."""
    first = request.steps[0]
    params.update(event0=first.event, breakdown=request.breakdown.property if request.breakdown else "")
    key = NO_BREAKDOWN_KEY if request.breakdown is None else key_sql("breakdown", request.breakdown)
    return f"""
        SELECT {PERSON} AS person, toUInt64(toUnixTimestamp64Milli(timestamp)) AS ts,
               CAST({key} AS {KEY_TYPE}) AS bk, {TIE_KEY} AS tie
        FROM {EVENTS_TABLE} FINAL
        WHERE {range_sql(request, params)} AND event = {{event0:String}}
          AND {all_filters_sql(first.filters, "s0f", params)}
          AND {all_filters_sql(request.filters, "gf", params)}"""


def first_key(breakdown: bool, is_first_step: str, ts: str = "ts", key: str = "bk", tie: str = "tie") -> str:
    """The breakdown bucket of the person's earliest step-1 event (ties: `tie`)."""
    return f"argMinIf({key}, ({ts}, {tie}), {is_first_step})" if breakdown else NO_BREAKDOWN_KEY


def conversion_chain_fold(steps: int, keys: str) -> str:
    """The conversion chain (its step times) of a plain ordered funnel, from `keys` (ts * 32 + 31 -
    step, sorted). State: per level the latest start + 1 of a chain reaching it (0: none) and that
    chain, the highest level reached, and the chain that first reached it. A step-j key extends the
    level-(j-1) chain when it fits that chain's window and the chain starts later than the current
    level-j one (a later start has more room and, on a tie, is the conversion chain)."""
    extend = """((intDiv(k, 32) AS t, 31 - k % 32 AS j, if(j = 1, t + 1, acc.1[j - 1]) AS start,
                  j = 1 OR (start > 0 AND t + 1 <= start + {window:UInt64} AND start > acc.1[j]) AS fits,
                  if(j = 1, [t], arrayPushBack(acc.2[j - 1], t)) AS chain).1,
                 if(fits, (arrayMap((s, i) -> if(i = j, start, s), acc.1, arrayEnumerate(acc.1)),
                           arrayMap((c, i) -> if(i = j, chain, c), acc.2, arrayEnumerate(acc.2)),
                           greatest(acc.3, toUInt8(j)), if(j > acc.3, chain, acc.4)), acc)).2"""
    start = (
        f"(arrayResize(emptyArrayUInt64(), {steps}), arrayResize([emptyArrayUInt64()], {steps}), "
        "toUInt8(0), emptyArrayUInt64())"
    )
    return f"arrayFold((acc, k) -> {extend}, {keys}, {start}).4"


def plain_units_sql(request: FunnelRequest, params: dict[str, Any]) -> str:
    """person, level, times, bk, listed of the plain funnel (`is_plain`)."""
    steps = [(s.event, s.filters) for s in request.steps]
    params.update(window=request.window_ms, window_scaled=request.window_ms * 32)
    key = None
    if request.breakdown is not None:
        params["breakdown"] = request.breakdown.property
        key = key_sql("breakdown", request.breakdown)
    rows = matching_rows_sql(steps, request.filters, key, params, range_sql(request, params))
    one_step_per_row = len({event for event, _ in steps}) == len(steps)
    return plain_ordered_units_sql(rows, len(steps), key is not None, one_step_per_row)


def is_plain(request: FunnelRequest) -> bool:
    """Answered here rather than by the general search (funnel_chains)."""
    return (
        request.mode == "ordered"
        and not request.exclusions
        and not request.hold_constant
        and request.window_months is None
        and request.counting == "persons"
        and request.breakdown_attribution == "first_touch"
    )


def plain_ordered_units_sql(rows: str, steps: int, breakdown: bool, one_step_per_row: bool) -> str:
    """person, level, times (the conversion chain's step times, `level` of them), bk, listed: see the
    module doc. When the steps name distinct events a row matches one step at most: its mask's only bit gives
    the step, without an arrayJoin (a measurable share of the funnel: docs/performance.md)."""
    conditions = ", ".join(f"step = {j}" for j in range(1, steps + 1))
    step = "bitCount(mask - 1) + 1"
    if not one_step_per_row:
        step = f"arrayJoin(arrayFilter(j -> bitTest(mask, j - 1), range(1, {steps + 1})))"
    firsts = ", ".join(f"minIf(ts, step = {j})" for j in range(1, steps + 1))
    single = " AND ".join(f"countIf(step = {j}) <= 1" for j in range(1, steps + 1))
    keys = "if(single, emptyArrayUInt64(), keys)"
    return f"""
        SELECT person, level, if(single, arraySlice(firsts, 1, level), {conversion_chain_fold(steps, keys)})
                   AS times, bk, toUInt8(1) AS listed
        FROM (
            SELECT person,
                   windowFunnel({{window_scaled:UInt64}})(toUInt64(ts * 32 + 31 - step), {conditions})
                       AS level,
                   [{firsts}] AS firsts, {single} AS single,
                   arraySort(groupArray(toUInt64(ts * 32 + 31 - step))) AS keys,
                   {first_key(breakdown, "step = 1")} AS bk
            FROM (SELECT person, ts, bk, tie, {step} AS step FROM ({rows}))
            GROUP BY person)
        WHERE level > 0"""


def plain_trends_sql(request: FunnelRequest, params: dict[str, Any]) -> str:
    """(period, entries, entries reaching the last step) of the trends view of a plain funnel
    (`is_plain`), one pass over persons instead of the general search's.

    A unit is a person and the period of a chain's step-1 event; its level, the highest step its chains
    reach, is windowFunnel's over the person's rows with step 1 restricted to that period's step-1
    events (windowFunnel's level is the longest chain starting at an event meeting the first condition:
    see the module doc for why the keys make it exact). A person whose step-1 events all lie in one
    period has one unit, and its chains are all the person's: its level is the person's. Only the
    others (step-1 events in several periods) run windowFunnel once per period, on their key array.
    The period is compared, not the time: in a zone whose clock steps back over midnight the local
    day of a later instant can be the earlier day."""
    n = len(request.steps)
    scaled = request.window_ms * 32
    params.update(window_scaled=scaled, window_funnel=f"windowFunnel({scaled})")  # arrayReduce's name
    steps = [(s.event, s.filters) for s in request.steps]
    rows = matching_rows_sql(steps, request.filters, None, params, range_sql(request, params))
    step = "bitCount(mask - 1) + 1"  # as in plain_ordered_units_sql
    if len({event for event, _ in steps}) < n:
        step = f"arrayJoin(arrayFilter(j -> bitTest(mask, j - 1), range(1, {n + 1})))"
    conditions = ", ".join(f"step = {j}" for j in range(1, n + 1))
    of_key = period_index_sql(request, request.interval, "intDiv(k, 32)")
    each = ", ".join(f"arrayMap(k -> k % 32 = {31 - j}, keys)" for j in range(2, n + 1))
    in_period = f"arrayMap(k -> k % 32 = 30 AND {of_key} = q, keys)"
    periods = f"arrayDistinct(arrayMap(k -> {of_key}, arrayFilter(k -> k % 32 = 30, keys)))"
    level_in = f"arrayReduce({{window_funnel:String}}, keys, {in_period}, {each})"
    per_period = f"arrayMap(q -> (q, {level_in}), {periods})"
    units = f"if(first_period = last_period, [(first_period, level)], {per_period})"
    return f"""
        SELECT unit.1 AS period, count(), countIf(unit.2 = {n})
        FROM (
            SELECT windowFunnel({{window_scaled:UInt64}})(key, {conditions}) AS level,
                   minIf(period, step = 1) AS first_period, maxIf(period, step = 1) AS last_period,
                   groupArray(key) AS keys
            FROM (SELECT person, toUInt64(ts * 32 + 31 - step) AS key, step,
                         {period_index_sql(request, request.interval, "ts")} AS period
                  FROM (SELECT person, ts, {step} AS step FROM ({rows})))
            GROUP BY person
            HAVING countIf(step = 1) > 0)
        ARRAY JOIN {units} AS unit
        GROUP BY period
        ORDER BY period"""


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


def durations_sql(times: str = "times") -> str:
    """The times from each step to the next along a conversion chain (`times` holds its steps')."""
    return f"arrayMap((a, b) -> b - a, arrayPopBack({times}), arrayPopFront({times}))"


def buckets_sql(units: str, steps: int) -> str:
    """Per bucket, and for all units (bucket 0): (bucket, value, [units at level 1..n], [sum of the
    times from step j to j+1], [their lower medians], [upper medians]) from `units` (bk, level, times,
    listed; level > 0). `value` is the breakdown bucket (kind, number, text). The top listed values by
    entries are buckets 1-10 (ties in entries by the bucket's order), the rest 11; units in no bucket
    (listed = 0) are 12 and only counted in the total. Median states are merged."""
    levels = f"arrayMap(k -> toUInt64(level = k), range(1, {steps + 1}))"
    return f"""
        SELECT if(listed, least(rank, {TOP_BREAKDOWN_VALUES + 1}), {TOP_BREAKDOWN_VALUES + 2}) AS bucket,
               argMin(bk, rank), sumForEach(levels), sumForEach(total),
               quantileExactLowForEachMerge(0.5)(low), quantileExactHighForEachMerge(0.5)(high)
        FROM (
            SELECT listed, bk, levels, total, low, high,
                   dense_rank() OVER (ORDER BY listed DESC, entries DESC, bk) AS rank
            FROM (
                SELECT listed, bk, count() AS entries,
                       sumForEach({levels}) AS levels, sumForEach(took) AS total,
                       quantileExactLowForEachState(0.5)(took) AS low,
                       quantileExactHighForEachState(0.5)(took) AS high
                FROM (SELECT listed, bk, level, {durations_sql()} AS took FROM ({units}))
                GROUP BY listed, bk))
        GROUP BY GROUPING SETS ((bucket), ())
        ORDER BY bucket"""
