"""The general funnel search, exact for every option: one pass per chain start over the person's rows.

Rows are the person's events in the range matching a step or an exclusion, sorted by time. With
hold_constant a person's rows are searched once per held value (the steps of that value; exclusion
events whatever their value; in strict mode every step event still breaks a run). For each start
(a step-1 moment; unordered: any step moment) one arrayFold walks the rows up to the end of the start's
window, a moment (one millisecond) at a time:

* ordered / strict: per level a mask bit says a chain from this start reaches it and is still
  *alive* (may be extended). A step-j row extends an alive level-(j-1) chain of an earlier moment.
  An exclusion event at time T kills the alive chains that reached its from_step before T and not
  its to_step (levels from_step+1..to_step): none of them can reach to_step without the event
  strictly inside, and a chain left there is excluded by the partial rule (the event falls in its
  window). A chain reaching from_step at T itself survives, one reaching to_step at T counts. Every
  future exclusion event kills every alive chain inside its span alike, so one chain per level is
  enough: the first created since the last kill, which has the earliest steps (the conversion chain's
  rule). Strict mode also ends, at every moment with any step event, the chains it does not extend
  (they stay *clean*, counted, but cannot grow). The plain level (exclusions ignored) is tracked too.
* unordered: the first moment of each step from the start (a row may be several steps: the one place
  that rule lives is `unordered_seen`); an exclusion event after the start kills the start unless
  every step already happened.

Per start: the plain level L, whether a chain reaching L survived, its step times. Per unit (a
person, a step-1 event, a person and entry period, a person and value) the start with the highest
L, then a surviving chain, then the earliest completion, the latest start, the earliest steps, the
smallest held value: its level (0 when its chain did not survive) and times. Cost: the rows of each
start's window, per start; see docs/performance.md.
"""

from __future__ import annotations

from typing import Any

from services.query.filters import all_filters_sql
from services.query.funnel_models import FunnelRequest, PropertyRef
from services.query.funnel_sql import NO_BREAKDOWN_KEY, key_sql, step_mask_sql
from services.query.funnel_windows import period_index_sql, window_end_sql
from shared.contracts.storage import EVENTS_TABLE, PERSON, RANGE_FILTER

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
    return key_sql(name, ref.source)


def rows_sql(request: FunnelRequest, params: dict[str, Any]) -> str:
    """person, user_id, ts, mask (steps), kb / kc (levels an exclusion event kills), hk (held values),
    bk (breakdown value) of every event in the range matching a step or an exclusion."""
    steps = [(s.event, s.filters) for s in request.steps]
    kills_before, kills_created = ["toUInt32(0)"], ["toUInt32(0)"]
    for i, (x, (before, created)) in enumerate(
        zip(request.exclusions, exclusion_masks(request), strict=True)
    ):
        params[f"x{i}"] = x.event
        matched = f"(event = {{x{i}:String}} AND {all_filters_sql(x.filters, f'x{i}f', params)})"
        kills_before.append(f"if({matched}, {before}, 0)")
        kills_created.append(f"if({matched}, {created}, 0)")
    held = [property_key(ref, f"h{i}", params) for i, ref in enumerate(request.hold_constant)]
    breakdown = NO_BREAKDOWN_KEY
    if request.breakdown is not None:
        breakdown = property_key(request.breakdown, "breakdown", params)
    params["events"] = sorted({s.event for s in request.steps} | {x.event for x in request.exclusions})
    return f"""
        SELECT {PERSON} AS person, user_id, toUInt64(toUnixTimestamp64Milli(timestamp)) AS ts,
               toUInt32({step_mask_sql(steps, params)}) AS mask,
               {bit_or(kills_before)} AS kb, {bit_or(kills_created)} AS kc,
               {f"({', '.join(held)}, 0)" if held else "0"} AS hk, {breakdown} AS bk
        FROM {EVENTS_TABLE} FINAL
        WHERE {RANGE_FILTER} AND event IN {{events:Array(String)}}
          AND {all_filters_sql(request.filters, "gf", params)} AND (mask > 0 OR kb > 0)"""


def unordered_seen(seen: str, mask: str, ts: str, steps: int) -> str:
    """The first moment (+1; 0: not yet) of each step from the start, after a row: a row matching
    several steps counts for each of them (issue 14 may change this rule; it lives only here)."""
    return f"arrayMap((f, j) -> if(f = 0 AND bitTest({mask}, j - 1), {ts} + 1, f), {seen}, range(1, {steps + 1}))"


def ordered_fold(steps: int, strict: bool) -> str:
    """The per-start fold over moments m = (ts, group mask, kb, kc, any-step mask) of ordered and
    strict funnels. State: 1 alive levels (may be extended), 2 their chains, 3 clean levels (reached
    and not killed), 4 their chains, 5 plain alive levels (exclusions ignored), 6 plain levels reached.
    Without strict, alive and clean coincide."""
    start = "toUInt32(m.1 = s)"
    made = f"bitAnd(bitAnd(bitOr(bitShiftLeft(acc.1, 1), {start}), m.2), bitNot(m.4))"
    plain_made = f"bitAnd(bitOr(bitShiftLeft(acc.5, 1), {start}), m.2)"
    chain = "if(j = 1, [m.1], arrayPushBack(acc.2[j - 1], m.1))"

    def keep(kept: str, chains: str) -> str:
        """The levels kept from before the moment with their chains, then the ones made at it."""
        return (
            f"arrayMap(j -> if(bitTest({kept}, j - 1), {chains}[j], if(bitTest({made}, j - 1), {chain}, "
            f"{EMPTY})), range(1, {steps + 1}))"
        )

    survivors = "bitAnd(acc.1, bitNot(m.3))"
    runs = f"if(m.5 > 0, toUInt32(0), {survivors})" if strict else survivors
    clean = "bitAnd(acc.3, bitNot(m.3))"
    plain = f"if(m.5 > 0, {plain_made}, acc.5)" if strict else f"bitOr(acc.5, {plain_made})"
    step = (
        f"(bitOr({runs}, {made}), {keep(runs, 'acc.2')}, bitOr({clean}, {made}), {keep(clean, 'acc.4')}, "
        f"{plain}, bitOr(acc.6, {plain_made}))"
    )
    chains = f"arrayResize([{EMPTY}], {steps})"
    initial = f"(toUInt32(0), {chains}, toUInt32(0), {chains}, toUInt32(0), toUInt32(0))"
    return f"arrayFold((acc, m) -> {step}, span, {initial})"


def ordered_start_sql() -> str:
    """From the fold's end state `f`: plain level, whether a chain reaching it is clean, its times."""
    return """bitCount(f.6) AS plain_level, plain_level > 0 AND bitTest(f.3, plain_level - 1) AS survived,
               f.4[plain_level] AS step_times, step_times AS reach"""


def unordered_fold(steps: int) -> str:
    """The per-start fold over moments for unordered funnels. State: 1 the first moment + 1 of each
    step (0: not yet), 2 killed: an exclusion event after the start before every step happened."""
    seen = unordered_seen("acc.1", "m.2", "m.1", steps)
    step = f"({seen}, acc.2 OR (m.3 > 0 AND m.1 > s AND has({seen}, 0)))"
    return f"arrayFold((acc, m) -> {step}, span, (arrayResize(emptyArrayUInt64(), {steps}), false))"


def unordered_start_sql(steps: int) -> str:
    return f"""if(has(f.1, 0), indexOf(f.1, 0) - 1, {steps}) AS plain_level,
               NOT f.2 AND plain_level > 0 AS survived,
               arrayMap(x -> toUInt64(x - 1), arraySlice(f.1, 1, plain_level)) AS step_times,
               arrayMap(j -> if(j = 1, s, toUInt64(arrayMax(arraySlice(step_times, 1, j)))), range(1, plain_level + 1))
                   AS reach"""


MOMENTS = """arrayMap(g -> (g[1].1, arrayReduce('groupBitOr', arrayMap(e -> e.2, g)),
                    arrayReduce('groupBitOr', arrayMap(e -> e.3, g)), arrayReduce('groupBitOr', arrayMap(e -> e.4, g)),
                    arrayReduce('groupBitOr', arrayMap(e -> e.5, g))),
              arraySplit((e, d) -> d != 0, arrayZip(tss, masks, arrayMap(e -> e.3, ev), arrayMap(e -> e.4, ev),
                                                      arrayMap(e -> e.2, ev)), arrayDifference(tss)))"""


def key_at(step: str, at: str) -> str:
    """The smallest breakdown value among the group's rows at `at` matching step `step`."""
    return f"arrayReduce('min', arrayMap(e -> e.6, arrayFilter(e -> e.1 = {at} AND e.5 = hv AND bitTest(e.2, {step} - 1), ev)))"


def starts_sql(request: FunnelRequest, params: dict[str, Any]) -> str:
    """One row per (person, held value, start) with the start's outcome: plain_level, survived, reach
    (the chain's reach times), step_times (its step times), s, start_keys (the breakdown values of the
    step-1 events at the start), last_key / step_key (values on the chain), first_bk, distinct_id."""
    steps = len(request.steps)
    params["window"] = request.window_ms
    if request.window_months is not None:
        params["window_months"] = request.window_months
    unordered = request.mode == "unordered"
    fold = unordered_fold(steps) if unordered else ordered_fold(steps, request.mode == "strict")
    outcome = unordered_start_sql(steps) if unordered else ordered_start_sql()
    starts = "m > 0" if unordered else "bitTest(m, 0)"  # a moment of this group's steps / its step 1
    k = (request.breakdown_attribution_step or 0) + 1
    return f"""
        SELECT person, distinct_id, first_bk, hv, s, {period_index_sql(request.interval, "s")} AS period,
               plain_level, survived, reach, step_times,
               arrayMap(e -> e.6, arrayFilter(e -> e.1 = s AND e.5 = hv AND bitTest(e.2, 0), ev)) AS start_keys,
               if(plain_level > 0, {key_at("plain_level", "step_times[plain_level]")}, {NO_BREAKDOWN_KEY})
                   AS last_key,
               if(plain_level >= {k}, {key_at(str(k), f"step_times[{k}]")}, {NO_BREAKDOWN_KEY}) AS step_key
        FROM (
            SELECT *, moment_ts[p] AS s, arrayCount(t -> t <= {window_end_sql(request, "s")}, moment_ts) AS until,
                   arraySlice(moments, p, until - p + 1) AS span, {fold} AS f, {outcome}
            FROM (
                SELECT person, distinct_id, first_bk, ev, hv, moments, arrayMap(m -> m.1, moments) AS moment_ts,
                       arrayFilter((i, m) -> {starts}, arrayEnumerate(moments), arrayMap(m -> m.2, moments)) AS starts
                FROM (
                    SELECT person, distinct_id, first_bk, ev, hv, arrayMap(e -> e.1, ev) AS tss,
                           arrayMap(e -> if(e.5 = hv, e.2, 0), ev) AS masks, {MOMENTS} AS moments
                    FROM (
                        SELECT person, min(user_id) AS distinct_id,
                               minIf((ts, bk), bitTest(mask, 0)).2 AS first_bk,
                               arraySort(groupArray((ts, mask, kb, kc, hk, bk))) AS ev
                        FROM ({rows_sql(request, params)})
                        GROUP BY person)
                    ARRAY JOIN arrayDistinct(arrayMap(e -> e.5, arrayFilter(e -> e.2 > 0, ev))) AS hv))
            ARRAY JOIN starts AS p)"""


BEST = (
    "argMin((plain_level, survived, reach, last_key, step_key), "
    "(-toInt64(plain_level), NOT survived, reach[plain_level], -toInt64(s), step_times, hv))"
)
UNITS = {
    "person": ("person", "person, any(distinct_id) AS distinct_id"),
    "period": ("person, period", "person, period"),
    "value": ("person, w", "person, w"),
}


def units_sql(request: FunnelRequest, params: dict[str, Any], unit: str) -> str:
    """unit columns, best, level (0: entered, but its chain to its highest step is excluded), times
    (the conversion chain's reach times, `level` of them), bk (its bucket's value), listed (it is in a
    bucket). `unit`: "person"; "event", each step-1 event (counting totals); "period", a person and
    the period of a start (trends); "value", a person and a value of a step-1 event (all_events)."""
    starts = starts_sql(request, params)
    if unit == "event":
        source, group, head = (
            f"({starts}) ARRAY JOIN start_keys AS own_key",
            "",
            "person, period, distinct_id",
        )
        best, first_touch = "(plain_level, survived, reach, last_key, step_key)", "own_key"
    else:
        value_split = " ARRAY JOIN arrayDistinct(start_keys) AS w" if unit == "value" else ""
        keys, head = UNITS[unit]
        source, group, best, first_touch = (
            f"({starts}){value_split}",
            f" GROUP BY {keys}",
            BEST,
            "any(first_bk)",
        )
    rule = "all_events" if unit == "value" else request.breakdown_attribution
    bucket = {"first_touch": first_touch, "last_touch": "best.4", "step": "best.5", "all_events": "w"}[rule]
    if request.breakdown is None:
        bucket = NO_BREAKDOWN_KEY
    listed = f"best.1 > {request.breakdown_attribution_step or 0}" if rule == "step" else "1"
    return f"""
        SELECT {head}, {best} AS best, if(best.2, best.1, 0) AS level, arraySlice(best.3, 1, level) AS times,
               {bucket} AS bk, toUInt8({listed}) AS listed
        FROM {source}{group}"""
