"""The plain funnel with exclusions (ordered, a fixed window, persons, first-touch breakdown or none):
the general search's answer (funnel_chains) from a lighter per-person pass.

The general path gathers every row of every person into a sorted array of 8-tuples (the time, the
step and kill masks, held and breakdown values, the tie order), most of which only hold_constant and
the other attribution rules read, and most persons never search (funnel_single answers for a person
with at most one row per step). Here each person keeps only what this request reads:

* funnel_single's aggregates (per step the first time and the number of rows, per exclusion the
  times of its events) and the first-touch value, as the general path computes them;
* one UInt64 per (row, step it matches), or per exclusion-only row: `((ts * 32 + 31 - step) * 1024)
  + xm` (step 0 for a row matching no step; xm: the exclusions it matches, at most 10 bits), from which
  a person who does search gets back the rows the search reads, (ts, step mask, kill masks).

The outcome is then funnel_chains' own, term for term: `if(single, single_results, searched_sql)`
and `best_of`. It is the same answer because the search of an ordered funnel with a first-touch
bucket reads only each row's time, step mask and kill masks (funnel_chains.searched_sql: no held
value, no value on a later step, no tie), and those rows group into the same moments: a row matching
two steps becomes two rows of one millisecond, which the moments OR back together. A split row's
mask is its one step, so the per-step counts and first times are those of the rows matching each
step, as in funnel_chains.
"""

from __future__ import annotations

from typing import Any

from services.query.funnel_chains import best_of, exclusion_masks, rows_sql, searched_sql
from services.query.funnel_models import FunnelRequest
from services.query.funnel_single import single_aggregates, single_columns, single_survived
from services.query.funnel_sql import NO_BREAKDOWN_KEY, first_step_values_sql

XM_BITS = 1024  # 2 ** 10: at most 10 exclusions (funnel_models.FunnelRequest.exclusions)


def is_plain_excluding(request: FunnelRequest) -> bool:
    """A plain funnel (funnel_sql.is_plain) but for its exclusions."""
    return (
        bool(request.exclusions)
        and request.mode == "ordered"
        and not request.hold_constant
        and request.window_months is None
        and request.counting == "persons"
        and request.breakdown_attribution == "first_touch"
    )


def kill_mask(masks: list[int], xm: str) -> str:
    """The OR of the masks of the exclusions whose bit is set in `xm`."""
    terms = [f"bitTest({xm}, {i}) * {mask}" for i, mask in enumerate(masks)]
    return f"toUInt32({' + '.join(terms)})" if len(terms) == 1 else f"toUInt32(bitOr({', '.join(terms)}))"


def rows_of_keys(request: FunnelRequest) -> str:
    """The search's rows (ts, step mask, kills of earlier chains, kills of chains made at the moment)
    back from the person's sorted keys."""
    before = [span for span, _ in exclusion_masks(request)]
    created = [made for _, made in exclusion_masks(request)]
    parts = (
        f"intDiv(k, {32 * XM_BITS})",
        # step s (code 31 - s) has the mask 2 ** (s - 1); an exclusion-only row (code 31) none
        f"toUInt32(intDiv(bitShiftLeft(toUInt64(1), 31 - intDiv(k, {XM_BITS}) % 32), 2))",
        kill_mask(before, f"k % {XM_BITS}"),
        kill_mask(created, f"k % {XM_BITS}"),
    )
    return f"arrayMap(k -> ({', '.join(parts)}), arraySort(keys))"


def people_sql(request: FunnelRequest, params: dict[str, Any]) -> str:
    """One row per person with a step-1 event: first_bk, funnel_single's aggregates and their columns
    (`single` among them), and `keys` (see the module doc). The first-touch value comes from its own
    scan of the step-1 rows (funnel_sql.first_step_values_sql), its rows marked `valued`."""
    params["window"] = request.window_ms
    n = len(request.steps)
    rows = f"SELECT person, ts, mask, xm, bk, tie, 0 AS valued FROM ({rows_sql(unvalued(request), params)})"
    first_bk = NO_BREAKDOWN_KEY
    if request.breakdown is not None:
        values = first_step_values_sql(request, params)
        rows += f" UNION ALL SELECT person, ts, toUInt32(0), toUInt32(0), bk, tie, 1 FROM ({values})"
        first_bk = "argMinIf(bk, (ts, tie), valued = 1)"
    step = "if(mask = 0, 0, bitCount(mask - 1) + 1)"  # one step at most when the steps' events differ
    if len({s.event for s in request.steps}) < n:
        step = f"arrayJoin(if(mask = 0, [0], arrayFilter(j -> bitTest(mask, j - 1), range(1, {n + 1}))))"
    split = f"""
        SELECT person, ts, xm, bk, tie, valued, step,
               toUInt32(intDiv(bitShiftLeft(toUInt64(1), step), 2)) AS mask
        FROM (SELECT person, ts, xm, bk, tie, valued, {step} AS step FROM ({rows}))"""
    aggregates = ", ".join(single_aggregates(request, "person"))
    return f"""
        SELECT *, {", ".join(single_columns(request))}
        FROM (
            SELECT person, {first_bk} AS first_bk, {aggregates},
                   groupArrayIf(toUInt64((ts * 32 + 31 - step) * {XM_BITS} + xm), valued = 0) AS keys
            FROM ({split})
            GROUP BY person
            HAVING c1 > 0)"""


def unvalued(request: FunnelRequest) -> FunnelRequest:
    """The request without its breakdown: its rows carry no value (nor the tie order)."""
    return request.model_copy(update={"breakdown": None})


def excluding_units_sql(request: FunnelRequest, params: dict[str, Any]) -> str:
    """person, level (0: its chains to its highest step are all excluded), times (the conversion
    chain's), bk (the first-touch value), listed: the unit table of funnel_units for this request.

    A single person's outcome is funnel_single's (level if it survived, else 0; its step times); any
    other's is `best_of` the search's outcomes, computed inside the `if` branch that needs it: bound
    outside it, ClickHouse evaluates the search for every person (its result is read several times)."""
    searched = f"arrayMap(ev -> {searched_sql(request, 'person')}, [{rows_of_keys(request)}])[1]"
    best = f"arrayMap(results -> {best_of('results')}, [{searched}])[1]"
    found = f"arrayMap(b -> (toUInt8(if(b.3, b.2, 0)), b.4), [{best}])[1]"
    survived = single_survived(request)
    single = f"(toUInt8(if({survived}, single_level, 0)), CAST(single_times AS Array(UInt64)))"
    return f"""
        SELECT person, outcome.1 AS level, arraySlice(outcome.2, 1, level) AS times, first_bk AS bk,
               toUInt8(1) AS listed
        FROM (
            SELECT person, first_bk, if(single, {single}, {found}) AS outcome
            FROM (SELECT *, 0 AS hv FROM ({people_sql(request, params)})))"""
