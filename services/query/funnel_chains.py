"""The general funnel search, exact for every option (README "Funnels").

Rows are a person's events in the range matching a step or an exclusion. A person with at most one row
per step has one possible chain: funnel_single answers for them from aggregates. Every other person
(with hold_constant: every person and held value, the steps of that value, exclusion events whatever
their value, and in strict mode every step event still breaking a run) is searched: their rows sorted
and merged into moments (one millisecond each), then for each start (a step-1 moment; unordered: any
step moment) one arrayFold walks the moments up to the end of the start's window:

* ordered / strict: per level a mask bit says a chain from this start reaches it and is still *alive*
  (may be extended). A step-j moment extends an alive level-(j-1) chain of an earlier moment. An
  exclusion event at time T kills the alive chains that reached its from_step before T and not its
  to_step (levels from_step+1..to_step): none can reach to_step without the event strictly inside,
  and one left there is excluded by the partial rule (the event falls in its window). A chain
  reaching from_step at T survives, one reaching to_step at T counts. Every later exclusion event kills
  every alive chain of its span alike, so one chain per level is enough: the first made since the last
  kill, which has the earliest steps (the conversion chain's rule). Strict mode also ends, at every
  moment with a step event, the runs it does not extend (they stay *clean*: counted, not grown). The
  plain level (exclusions ignored) is tracked too.
* unordered (one event, one step): the fold walks the start's window row by row, not by moment
  (simultaneous events are still different events) and counts the rows matching each union of filter
  classes (`funnel_sql.hall_tests`); level k is reached at the first row after which, for every union
  of steps 1..k, at least as many rows match as the union has steps (Hall's condition for each step
  getting its own event). An exclusion event after the start kills it unless every step was reached
  by then (at the same millisecond counts as by then).

Per start: the plain level L, whether a chain reaching L is clean, its times. Per unit (a person, a
step-1 event, a person and entry period, a person and value) the start with the highest L, then a
clean chain, the earliest completion, the latest start, the earliest steps, the smallest held value
(`sort_key`): its level (0 when its chain is excluded) and times. The search is one expression under
`if(single, ...)`, so ClickHouse evaluates it only for the persons that need it (short-circuit); its
cost is the moments (unordered: rows) of each start's window, per start (docs/performance.md).
"""

from __future__ import annotations

from typing import Any

from services.query.filters import all_filters_sql
from services.query.funnel_models import FunnelRequest
from services.query.funnel_single import (
    needs_keys,
    result_sql,
    single_aggregates,
    single_columns,
    single_results,
)
from services.query.funnel_sql import NO_BREAKDOWN_KEY, NO_TIE_KEY, TIE_KEY, hall_tests, step_mask_sql
from services.query.funnel_windows import period_index_sql, range_sql, window_end_sql, window_parameters
from services.query.properties import KEY_TYPE, PropertyRef, key_sql
from shared.contracts.storage import EVENTS_TABLE, PERSON

EMPTY = "emptyArrayUInt64()"


def exclusion_masks(request: FunnelRequest) -> list[tuple[int, int]]:
    """Per exclusion, the levels (bit j-1 for level j) an exclusion event kills: those that reached
    from_step and not to_step (from_step+1..to_step), and of the chains created at the same moment
    those past from_step+1 (a chain reaching from_step at the event's moment survives)."""
    masks = []
    for x in request.exclusions:
        span = sum(1 << bit for bit in range(x.from_step, x.to_step))
        masks.append((span, span & ~(1 << x.from_step)))
    return masks


def bit_or(masks: list[str]) -> str:
    """The OR of UInt32 masks (two exclusions may kill the same levels)."""
    found = masks[0]
    for mask in masks[1:]:
        found = f"bitOr({found}, toUInt32({mask}))"
    return f"toUInt32({found})"


def property_key(ref: PropertyRef, name: str, params: dict[str, Any]) -> str:
    params[name] = ref.property
    return key_sql(name, ref)


def rows_sql(request: FunnelRequest, params: dict[str, Any]) -> str:
    """person, user_id, ts, mask (steps), kb / kc (levels an exclusion event kills), hk (held values),
    bk (breakdown value), xm (bit i: matches exclusion i), tie (the order among simultaneous events) of
    every event in the range matching a step or an exclusion."""
    steps = [(s.event, s.filters) for s in request.steps]
    kills_before, kills_created, matched_bits = ["toUInt32(0)"], ["toUInt32(0)"], ["toUInt32(0)"]
    for i, (x, (before, created)) in enumerate(
        zip(request.exclusions, exclusion_masks(request), strict=True)
    ):
        params[f"x{i}"] = x.event
        matched = f"(event = {{x{i}:String}} AND {all_filters_sql(x.filters, f'x{i}f', params)})"
        kills_before.append(f"if({matched}, {before}, 0)")
        kills_created.append(f"if({matched}, {created}, 0)")
        matched_bits.append(f"if({matched}, {1 << i}, 0)")
    held = "0"
    if request.hold_constant:
        keys = [property_key(ref, f"h{i}", params) for i, ref in enumerate(request.hold_constant)]
        nothing = ", ".join(NO_BREAKDOWN_KEY for _ in keys)
        held = f"if(mask > 0, ({', '.join(keys)}, 0), ({nothing}, 0))"  # parsed for step rows only
    breakdown = NO_BREAKDOWN_KEY
    if request.breakdown is not None:
        on = (
            "bitTest(mask, 0)"
            if request.breakdown_attribution in ("first_touch", "all_events")
            else "mask > 0"
        )
        key = property_key(request.breakdown, "breakdown", params)
        breakdown = f"if({on}, {key}, {NO_BREAKDOWN_KEY})"  # parsed only for the rows that need it
    params["events"] = sorted({s.event for s in request.steps} | {x.event for x in request.exclusions})
    tie = NO_TIE_KEY if request.breakdown is None else TIE_KEY
    return f"""
        SELECT {PERSON} AS person, user_id, toUInt64(toUnixTimestamp64Milli(timestamp)) AS ts,
               toUInt32({step_mask_sql(steps, params)}) AS mask,
               {bit_or(kills_before)} AS kb, {bit_or(kills_created)} AS kc, {held} AS hk,
               CAST({breakdown} AS {KEY_TYPE}) AS bk, {bit_or(matched_bits)} AS xm, {tie} AS tie
        FROM {EVENTS_TABLE} FINAL
        WHERE {range_sql(request, params)} AND event IN {{events:Array(String)}}
          AND {all_filters_sql(request.filters, "gf", params)} AND (mask > 0 OR kb > 0)"""


def ordered_fold(steps: int, strict: bool, span: str) -> str:
    """The per-start fold over moments m = (ts, group mask, kb, kc, any-step mask) of ordered and
    strict funnels. State: 1 alive levels (may be extended), 2 their chains, 3 clean levels (reached
    and not killed), 4 their chains, 5 plain alive levels (exclusions ignored), 6 plain levels
    reached. Without strict the alive levels are the clean ones and the plain alive ones those
    reached: the state is 1, 2 and 6 (3-5 stay empty)."""
    start = "toUInt32(m.1 = s)"
    made = f"bitAnd(bitAnd(bitOr(bitShiftLeft(acc.1, 1), {start}), m.2), bitNot(m.4))"
    plain_made = f"bitAnd(bitOr(bitShiftLeft({'acc.5' if strict else 'acc.6'}, 1), {start}), m.2)"
    chain = "if(j = 1, [m.1], arrayPushBack(acc.2[j - 1], m.1))"

    def keep(kept: str, chains: str) -> str:
        """The levels kept from before the moment with their chains, then the ones made at it."""
        return (
            f"arrayMap(j -> if(bitTest({kept}, j - 1), {chains}[j], if(bitTest({made}, j - 1), {chain}, "
            f"{EMPTY})), range(1, {steps + 1}))"
        )

    survivors = "bitAnd(acc.1, bitNot(m.3))"
    chains = f"arrayResize([{EMPTY}], {steps})"
    if strict:  # a moment with any step event ends the runs it does not extend; they stay clean
        runs, clean = f"if(m.5 > 0, toUInt32(0), {survivors})", "bitAnd(acc.3, bitNot(m.3))"
        rest = f"bitOr({clean}, {made}), {keep(clean, 'acc.4')}, if(m.5 > 0, {plain_made}, acc.5)"
    else:
        runs, rest = survivors, f"toUInt32(0), {chains}, toUInt32(0)"
    step = f"(bitOr({runs}, {made}), {keep(runs, 'acc.2')}, {rest}, bitOr(acc.6, {plain_made}))"
    initial = f"(toUInt32(0), {chains}, toUInt32(0), {chains}, toUInt32(0), toUInt32(0))"
    return f"arrayFold((acc, m) -> {step}, {span}, {initial})"


def unordered_fold(steps: int, span: str) -> str:
    """The per-start fold over rows r = (ts, mask, kb, kc, any-step mask) of unordered funnels (one
    event, one step: Hall's condition on the `hall_tests` unions, funnel_sql.hall_tests). State: 1 the
    rows matching each union so far, 2 per level the time + 1 it was first reached (0: not yet), 3 the
    time + 1 of the first exclusion event after the start (0: none)."""
    tests = "{hall_tests:Array(UInt32)}"
    counts = f"arrayMap((c, t) -> toUInt32(c + (bitAnd(m.2, t) != 0)), acc.1, {tests})"
    holds = f"arrayAll(i -> c[i] >= bitCount({tests}[i]), {{hall_levels:Array(Array(UInt32))}}[k])"
    reach = f"arrayMap((r, k) -> if(r = 0 AND {holds}, m.1 + 1, r), acc.2, range(1, {steps + 1}))"
    excluded = "if(acc.3 = 0 AND m.3 > 0 AND m.1 > s, m.1 + 1, acc.3)"
    step = f"arrayMap(c -> (c, {reach}, {excluded}), [{counts}])[1]"
    initial = (
        f"(arrayResize(emptyArrayUInt32(), length({tests})), arrayResize({EMPTY}, {steps}), toUInt64(0))"
    )
    return f"arrayFold((acc, m) -> {step}, {span}, {initial})"


ROWS = "arrayZip(tss, masks, arrayMap(e -> e.3, ev), arrayMap(e -> e.4, ev), arrayMap(e -> e.2, ev))"
# Rows of one millisecond merged into a moment (their masks ORed), unless no two rows share one.
MOMENTS = f"""if(arrayAll(d -> d != 0, arrayPopFront(arrayDifference(tss))), {ROWS},
              arrayMap(g -> (g[1].1, arrayReduce('groupBitOr', arrayMap(e -> e.2, g)),
                             arrayReduce('groupBitOr', arrayMap(e -> e.3, g)),
                             arrayReduce('groupBitOr', arrayMap(e -> e.4, g)),
                             arrayReduce('groupBitOr', arrayMap(e -> e.5, g))),
                       arraySplit((e, d) -> d != 0, {ROWS}, arrayDifference(tss))))"""


def let(bindings: list[tuple[str, str]], body: str) -> str:
    """`body` with each name bound to its value, computed once (a lambda over one-element arrays):
    ClickHouse would expand a repeated alias inside one expression, and a subquery column is computed
    for every row, where this expression runs only for the rows that need it."""
    names = ", ".join(name for name, _ in bindings)
    values = ", ".join(f"[{value}]" for _, value in bindings)
    return f"arrayMap(({names}) -> {body}, {values})[1]"


def key_at(step: str, at: str) -> str:
    """The breakdown value of the group's row at `at` matching step `step` (of simultaneous ones the
    first received: README, Definitions, "Order and ties")."""
    rows = f"arrayFilter(e -> e.1 = {at} AND e.5 = hv AND bitTest(e.2, {step} - 1), ev)"
    return f"arrayReduce('argMin', arrayMap(e -> e.6, {rows}), arrayMap(e -> e.8, {rows}))"


def keys_sql(request: FunnelRequest, unit: str, level: str, times: str, s: str) -> tuple[str, str, str]:
    """The values a unit's bucket may need (the others are left empty: computing them costs)."""
    last, step, starting = needs_keys(request, unit)
    k = (request.breakdown_attribution_step or 0) + 1
    found = [NO_BREAKDOWN_KEY, NO_BREAKDOWN_KEY, "[]"]
    if last:
        found[0] = f"if({level} > 0, {key_at(level, f'{times}[{level}]')}, {NO_BREAKDOWN_KEY})"
    if step:
        found[1] = f"if({level} >= {k}, {key_at(str(k), f'{times}[{k}]')}, {NO_BREAKDOWN_KEY})"
    if starting:
        rows = f"arrayFilter(e -> e.1 = {s} AND e.5 = hv AND bitTest(e.2, 0), ev)"
        found[2] = f"arrayMap(e -> e.6, {rows})"
    return found[0], found[1], found[2]


def searched_sql(request: FunnelRequest, unit: str) -> str:
    """The outcome of every start of a group (person, or person and held value: columns ev, hv), by
    the folds of the module doc, as one expression."""
    steps = len(request.steps)
    unordered = request.mode == "unordered"
    until = f"arrayCount(t -> t <= {window_end_sql(request, 's')}, moment_ts)"
    span = f"arraySlice(moments, p, {until} - p + 1)"
    if unordered:  # over rows, not moments: simultaneous events are still different events
        first_row = "arrayFirstIndex(t -> t >= s, tss)"
        last_row = f"arrayCount(t -> t <= {window_end_sql(request, 's')}, tss)"
        fold = unordered_fold(steps, f"arraySlice(rows, {first_row}, {last_row} - {first_row} + 1)")
        level = "arrayCount(r -> r > 0, f.2)"
        survived = f"l > 0 AND (f.3 = 0 OR (l = {steps} AND f.3 >= f.2[{steps}]))"
        times = "arrayMap(x -> toUInt64(x - 1), arraySlice(f.2, 1, l))"
        reach = "arrayMap(j -> if(j = 1, o.1, o.4[j]), range(1, o.2 + 1))"
    else:
        strict = request.mode == "strict"
        fold = ordered_fold(steps, strict, span)
        clean, chains = ("f.3", "f.4") if strict else ("f.1", "f.2")
        level, survived, times, reach = (
            "bitCount(f.6)",
            f"l > 0 AND bitTest({clean}, l - 1)",
            f"{chains}[l]",
            "o.4",
        )
    starts = "m > 0" if unordered else "bitTest(m, 0)"  # a moment of this group's steps / its step 1
    masks = "arrayMap(e -> if(e.5 = hv, e.2, 0), ev)" if request.hold_constant else "arrayMap(e -> e.2, ev)"
    outcome = result_sql("o.1", "o.2", "o.3", reach, "o.4", keys_sql(request, unit, "o.2", "o.4", "o.1"))
    levels = f"arrayMap(f -> toUInt8({level}), folds)"
    ends = f"arrayMap((f, s, l) -> (s, l, {survived}, {times}), folds, start_ts, {levels})"
    outcomes = f"arrayMap(o -> {outcome}, {ends})"
    with_folds = let([("folds", f"arrayMap((p, s) -> {fold}, starts, start_ts)")], outcomes)
    with_starts = let([("start_ts", "arrayMap(i -> moment_ts[i], starts)")], with_folds)
    found = "arrayFilter((i, m) -> " + starts + ", arrayEnumerate(moments), arrayMap(m -> m.2, moments))"
    with_moments = let([("moment_ts", "arrayMap(m -> m.1, moments)"), ("starts", found)], with_starts)
    bound = [("moments", MOMENTS), *([("rows", ROWS)] if unordered else [])]
    return let([("tss", "arrayMap(e -> e.1, ev)"), ("masks", masks)], let(bound, with_moments))


def groups_sql(request: FunnelRequest, params: dict[str, Any], unit: str) -> str:
    """One row per person (per person and held value with hold_constant) and `results`, the outcome of
    each of its starts: the closed form for a person with at most one row per step, else the search."""
    params["window"] = request.window_ms
    if request.window_months is not None:
        params["window_months"] = request.window_months
        window_parameters(request, params)
    if request.mode == "unordered":
        params["hall_tests"], params["hall_levels"] = hall_tests(
            [(s.event, s.filters) for s in request.steps]
        )
    rule = request.breakdown_attribution if request.breakdown is not None else None
    first_bk = "argMinIf(bk, (ts, tie), bitTest(mask, 0))" if rule == "first_touch" else NO_BREAKDOWN_KEY
    last, step, starting = needs_keys(request, unit)
    bk = "bk" if last or step or starting else "0"  # the search reads values only for these
    hk = "hk" if request.hold_constant else "0"
    aggregates = [] if request.hold_constant else single_aggregates(request, unit)
    people = f"""
        SELECT person, min(user_id) AS distinct_id, {first_bk} AS first_bk,
               arraySort(groupArray((ts, mask, kb, kc, {hk}, {bk}, xm, tie))) AS ev
               {"".join(f", {a}" for a in aggregates)}
        FROM ({rows_sql(request, params)})
        GROUP BY person
        HAVING countIf(mask > 0) > 0"""
    if request.hold_constant:  # one search per held value among the person's step rows
        values = "arrayDistinct(arrayMap(e -> e.5, arrayFilter(e -> e.2 > 0, ev)))"
        return f"""
            SELECT person, distinct_id, first_bk, hv, {searched_sql(request, unit)} AS results
            FROM ({people}) ARRAY JOIN {values} AS hv"""
    return f"""
        SELECT person, distinct_id, first_bk, hv,
               if(single, {single_results(request, unit)}, {searched_sql(request, unit)}) AS results
        FROM (SELECT *, 0 AS hv, {", ".join(single_columns(request))} FROM ({people}))"""


def sort_key(r: str) -> str:
    """The conversion chain's order among starts (argMin): the highest plain level, then a surviving
    chain, the earliest completion, the latest start, the earliest steps, the smallest held value."""
    return f"(-toInt64({r}.2), NOT {r}.3, {r}.4[{r}.2], -toInt64({r}.1), {r}.5, hv)"


def best_of(results: str) -> str:
    """The chosen start's outcome among `results` (the only one without a search)."""
    keys = f"arrayMap(r -> {sort_key('r')}, {results})"
    return f"if(length({results}) = 1, {results}[1], arrayReduce('argMin', {results}, {keys}))"


def units_sql(request: FunnelRequest, params: dict[str, Any], unit: str) -> str:
    """unit columns, best (the chosen start's outcome), level (0: entered, but its chain to its highest
    step is excluded), times (the conversion chain's reach times, `level` of them), bk (its bucket's
    value), listed (it is in a bucket). `unit`: "person"; "event", each step-1 event (counting
    totals); "period", a person and the period of a start (trends); "value", a person and a value of
    a step-1 event (all_events). Each group reduces its starts to its units in the row; a person's
    held-value groups are then merged by unit."""
    groups = groups_sql(request, params, unit)
    period = period_index_sql(request, request.interval, "best.1")
    if unit == "event":
        tagged = "arrayFlatten(arrayMap(r -> arrayMap(k -> (k, r), r.8), results))"
    elif unit == "value":
        values = "arrayDistinct(arrayFlatten(arrayMap(r -> r.8, results)))"
        per_value = f"arrayMap(w -> (w, {best_of('arrayFilter(r -> has(r.8, w), results)')}), {values})"
        alone = "arrayMap(w -> (w, results[1]), arrayDistinct(results[1].8))"
        tagged = f"if(length(results) = 1, {alone}, {per_value})"
    elif unit == "period":
        of = period_index_sql(request, request.interval, "r.1")
        periods = f"arrayDistinct(arrayMap(r -> {of}, results))"
        per_period = f"arrayMap(q -> (q, {best_of(f'arrayFilter(r -> {of} = q, results)')}), {periods})"
        alone = f"[({period_index_sql(request, request.interval, 'results[1].1')}, results[1])]"
        tagged = f"if(length(results) = 1, {alone}, {per_period})"
    else:
        tagged = f"if(empty(results), [], [(0, {best_of('results')})])"
    units = f"""
        SELECT person, distinct_id, first_bk, hv, unit.1 AS tag, unit.2 AS best
        FROM ({groups}) ARRAY JOIN {tagged} AS unit"""
    if request.hold_constant and unit != "event":  # one unit from several held values
        units = f"""
            SELECT person, any(distinct_id) AS distinct_id, any(first_bk) AS first_bk, tag,
                   argMin(best, {sort_key("best")}) AS best
            FROM ({units}) GROUP BY person, tag"""
    rule = "all_events" if unit == "value" else request.breakdown_attribution
    own = "tag" if unit in ("event", "value") else "first_bk"
    bucket = {"first_touch": own, "last_touch": "best.6", "step": "best.7", "all_events": "tag"}[rule]
    if request.breakdown is None:
        bucket = NO_BREAKDOWN_KEY
    listed = f"best.2 > {request.breakdown_attribution_step or 0}" if rule == "step" else "1"
    return f"""
        SELECT person, distinct_id, {period} AS period, best, if(best.3, best.2, 0) AS level,
               arraySlice(best.4, 1, level) AS times, {bucket} AS bk, toUInt8({listed}) AS listed
        FROM ({units})"""
