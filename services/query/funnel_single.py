"""The closed form of the funnel search for a person with at most one row per step (most persons of
most funnels; unordered: and no row matching two steps): such a person has one possible chain, their
step rows in step order, so no search is needed. The chain is the longest prefix that fits the mode
and the window (ordered: each step later than the one before; strict: and no other step event in
between; unordered: all within the window of the earliest); an exclusion excludes it by the rule used
everywhere (funnel_chains, README), tested on the exclusion events' times. Everything comes from
aggregates of the person's GROUP BY, computed for every person at the cost of a few aggregate
functions; the general search (funnel_chains) runs only for the other persons. Not used with
hold_constant (a person's rows split by held value)."""

from __future__ import annotations

from services.query.funnel_models import FunnelRequest
from services.query.funnel_sql import NO_BREAKDOWN_KEY
from services.query.funnel_windows import window_end_sql
from services.query.properties import KEY_TYPE


def result_sql(s: str, level: str, survived: str, reach: str, times: str, keys: tuple[str, str, str]) -> str:
    """One start's outcome, typed alike on both paths: (start, plain level, survived, reach times, step
    times, value on the last step reached, value on the attribution step, values of the step-1 events
    at the start)."""
    last, step, starting = keys
    return (
        f"(toUInt64({s}), toUInt8({level}), toUInt8({survived}), CAST({reach} AS Array(UInt64)), "
        f"CAST({times} AS Array(UInt64)), CAST({last} AS {KEY_TYPE}), CAST({step} AS {KEY_TYPE}), "
        f"CAST({starting} AS Array({KEY_TYPE})))"
    )


def needs_keys(request: FunnelRequest, unit: str) -> tuple[bool, bool, bool]:
    """Which values the units need: on the last step reached, on the attribution step, on step 1."""
    rule = request.breakdown_attribution if request.breakdown is not None else None
    return rule == "last_touch", rule == "step", unit in ("event", "value")


def single_aggregates(request: FunnelRequest, unit: str) -> list[str]:
    """Per step j: m{j}, its row's time; c{j}, its rows; k{j}, its row's value (when needed). Per
    exclusion i: x{i}, its events' times."""
    last, step, starting = needs_keys(request, unit)
    columns = []
    for j in range(1, len(request.steps) + 1):
        columns += [f"minIf(ts, bitTest(mask, {j - 1})) AS m{j}", f"countIf(bitTest(mask, {j - 1})) AS c{j}"]
        if last or (step and j == (request.breakdown_attribution_step or 0) + 1) or (starting and j == 1):
            columns.append(f"anyIf(bk, bitTest(mask, {j - 1})) AS k{j}")
    columns += [f"groupArrayIf(ts, bitTest(xm, {i})) AS x{i}" for i in range(len(request.exclusions))]
    if request.mode == "unordered":  # a row matching two steps is one event for one of them: searched
        columns.append("countIf(bitCount(mask) > 1) AS shared")
    return columns


def fits(request: FunnelRequest, j: int) -> str:
    """The chain's step j (2..n) follows its step j - 1 by the mode's rule."""
    n, end = len(request.steps), window_end_sql(request, "m1")
    if request.mode == "unordered":
        times = ", ".join(f"m{i}" for i in range(1, j + 1))
        return f"greatest({times}) <= {window_end_sql(request, f'least({times})')}"
    rule = f"m{j} > m{j - 1} AND m{j} <= {end}"
    if request.mode == "strict":  # no other step event strictly between the two
        others = [
            f"NOT (c{i} > 0 AND m{i} > m{j - 1} AND m{i} < m{j})"
            for i in range(1, n + 1)
            if i not in (j - 1, j)
        ]
        rule = " AND ".join([rule, *others])
    return rule


def single_columns(request: FunnelRequest) -> list[str]:
    """single (at most one row per step), ok{j} (the chain reaches step j), single_level, its step
    times, start (entry) and reach times, computed from single_aggregates."""
    n = len(request.steps)
    alone = [f"c{j} <= 1" for j in range(1, n + 1)] + (["shared = 0"] if request.mode == "unordered" else [])
    columns = [" AND ".join(alone) + " AS single", "c1 > 0 AS ok1"]
    columns += [f"ok{j - 1} AND c{j} > 0 AND {fits(request, j)} AS ok{j}" for j in range(2, n + 1)]
    columns.append(" + ".join(f"toUInt8(ok{j})" for j in range(1, n + 1)) + " AS single_level")
    columns.append(
        f"arraySlice([{', '.join(f'm{j}' for j in range(1, n + 1))}], 1, single_level) AS single_times"
    )
    if request.mode == "unordered":
        columns.append("if(single_level > 0, arrayMin(single_times), 0) AS single_start")
        columns.append(
            "arrayMap(j -> if(j = 1, single_start, arrayMax(arraySlice(single_times, 1, j))), "
            "range(1, single_level + 1)) AS single_reach"
        )
    else:
        columns += ["m1 AS single_start", "single_times AS single_reach"]
    return columns


def single_survived(request: FunnelRequest) -> str:
    """No exclusion event inside the chain's span (or, short of to_step, before its window ends)."""
    terms = ["single_level > 0"]
    end = window_end_sql(request, "single_start")
    for i, x in enumerate(request.exclusions):
        until = f"if(single_level > {x.to_step}, single_reach[{x.to_step + 1}], {end} + 1)"
        inside = f"arrayExists(t -> t > single_reach[{x.from_step + 1}] AND t < {until}, x{i})"
        terms.append(f"(single_level <= {x.from_step} OR NOT {inside})")
    return " AND ".join(terms)


def single_results(request: FunnelRequest, unit: str) -> str:
    """The person's one outcome in funnel_chains' result type (none without a step-1 row)."""
    n = len(request.steps)
    last, step, starting = needs_keys(request, unit)
    k = (request.breakdown_attribution_step or 0) + 1
    keys = (
        f"[{', '.join(f'k{j}' for j in range(1, n + 1))}][single_level]" if last else NO_BREAKDOWN_KEY,
        f"if(single_level >= {k}, k{k}, {NO_BREAKDOWN_KEY})" if step else NO_BREAKDOWN_KEY,
        "[k1]" if starting else "[]",
    )
    outcome = result_sql(
        "single_start", "single_level", single_survived(request), "single_reach", "single_times", keys
    )
    return f"if(single_level > 0, [{outcome}], [])"
