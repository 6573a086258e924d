// Funnels: POST /api/v1/analytics/funnel, drawn as horizontal bars with counts, conversion and
// drop-off and the median time from the previous step, and a table per breakdown value; each step's name
// can open the persons at it (pages/funnel_persons.js). The time to convert is views/funnel_time.js.

import { h, showContent, table } from "../dom.js";
import { count, elapsed, percent } from "../format.js";
import { sizeBars } from "./events.js";

export const DEFAULT_WINDOW_SECONDS = 14 * 86400;
export const DEFAULT_WINDOW = { value: 14, unit: "day" };
export const MODES = { ordered: "In order", strict: "Strictly in order", unordered: "In any order" };
// The API's window units and their letters in the URL (`window=30m`, `window=2mo`).
export const WINDOW_UNITS = { minute: "m", hour: "h", day: "d", week: "w", month: "mo" };
const UNIT_SECONDS = { week: 604800, day: 86400, hour: 3600, minute: 60 };

/** "14d" -> {value: 14, unit: "day"}; "2mo" -> months; a plain number (or "90s") is seconds, kept as
 * {seconds} when no unit divides it; null when unreadable. */
export function parseWindow(text) {
  const match = /^(\d+)(mo|[wdhms]?)$/.exec(text ?? "");
  if (!match || Number(match[1]) < 1) return null;
  const unit = Object.keys(WINDOW_UNITS).find((u) => WINDOW_UNITS[u] === match[2]);
  return unit ? { value: Number(match[1]), unit } : windowFromSeconds(Number(match[1]));
}

/** {value: 2, unit: "week"} -> "2w". */
export function windowParam(window) {
  return window.seconds ? String(window.seconds) : `${window.value}${WINDOW_UNITS[window.unit]}`;
}

/** Seconds as the largest unit that divides them, or {seconds} when none does. */
export function windowFromSeconds(seconds) {
  const unit = Object.keys(UNIT_SECONDS).find((u) => seconds % UNIT_SECONDS[u] === 0);
  return unit ? { value: seconds / UNIT_SECONDS[unit], unit } : { seconds };
}

/** A query's window, whichever form it has (a saved insight keeps both; `window` wins when set). */
export function windowOf(query) {
  if (query.window) return query.window;
  return windowFromSeconds(query.window_seconds || DEFAULT_WINDOW_SECONDS);
}

const isDefaultWindow = (w) => w.unit !== "month" && !w.seconds && w.value * UNIT_SECONDS[w.unit] === DEFAULT_WINDOW_SECONDS;
export const windowText = (w) => (w.seconds ? `${w.seconds} seconds` : `${w.value} ${w.unit}${w.value === 1 ? "" : "s"}`);

/** The funnel request for a query: the window in one form only (both given is a 422). */
export function funnelBody(query, range) {
  const body = { ...query, start_date: range.start, end_date: range.end, timezone: range.timezone };
  const window = windowOf(query);
  delete body.window;
  delete body.window_seconds;
  if (window.seconds) body.window_seconds = window.seconds;
  else body.window = { value: window.value, unit: window.unit };
  return body;
}

const filtered = (list) => (list ?? []).some((s) => (s.filters?.length ?? 0) > 0);
// What the readable URL form cannot hold: filters, and the API options the page has no field for.
const needsJson = (query) =>
  (query.filters?.length ?? 0) > 0 ||
  filtered(query.steps) ||
  filtered(query.exclusions) ||
  (query.hold_constant?.length ?? 0) > 0 ||
  (query.counting && query.counting !== "persons") ||
  (query.breakdown_attribution && query.breakdown_attribution !== "first_touch") ||
  (query.breakdown !== null && query.breakdown !== undefined && typeof query.breakdown !== "string");
const stepName = (step) => (typeof step === "string" ? step : step.event);

/** "refund:0:2" (event, 0-based from and to step) <-> {event, from_step, to_step}. */
const exclusionParam = (e) => `${e.event}:${e.from_step}:${e.to_step}`;
function parseExclusion(text) {
  const match = /^(.+):(\d+):(\d+)$/.exec(text);
  return match ? { event: match[1], filters: [], from_step: Number(match[2]), to_step: Number(match[3]) } : null;
}

export default {
  type: "funnel",
  title: "Funnel",
  page: "/funnel",
  request: (query, range) => ({ path: "/api/v1/analytics/funnel", method: "POST", body: funnelBody(query, range) }),
  isEmpty: (data) => data.total_entries === 0,
  emptyText: (query, range) =>
    `Nobody did “${stepName(query.steps[0])}” between ${range.start} and ${range.end}, so the funnel has no entries.`,
  defaultName: (query) => query.steps.map(stepName).join(" → "),

  /** The URL form: readable step/window/mode/breakdown/exclude, or the whole query as JSON when it
   * has what those cannot say (filters, the options the page has no field for). */
  toParams(query) {
    if (needsJson(query)) return { q: JSON.stringify(query) };
    const window = windowOf(query);
    return {
      step: query.steps.map(stepName),
      window: isDefaultWindow(window) ? null : windowParam(window),
      mode: query.mode && query.mode !== "ordered" ? query.mode : null,
      breakdown: query.breakdown || null,
      exclude: (query.exclusions ?? []).map(exclusionParam),
    };
  },

  fromParams(params) {
    if (params.get("q")) {
      try {
        return JSON.parse(params.get("q"));
      } catch {
        return { steps: [] };
      }
    }
    const query = { steps: params.getAll("step").filter(Boolean).map((event) => ({ event, filters: [] })) };
    const window = parseWindow(params.get("window")) || DEFAULT_WINDOW;
    if (window.seconds) query.window_seconds = window.seconds;
    else query.window = window;
    query.mode = MODES[params.get("mode")] ? params.get("mode") : "ordered";
    if (params.get("breakdown")) query.breakdown = params.get("breakdown");
    const exclusions = params.getAll("exclude").map(parseExclusion).filter(Boolean);
    if (exclusions.length) query.exclusions = exclusions;
    return query;
  },

  table(data) {
    const row = (name, s, k) => [name, k + 1, s.step, s.count, s.conversion_rate, s.drop_off, s.median_conversion_seconds ?? "", s.average_conversion_seconds ?? ""];
    const rows = data.funnel.map((s, k) => row("all", s, k));
    for (const bucket of data.breakdown || []) {
      bucket.funnel.forEach((s, k) => rows.push(row(bucket.other ? "Other" : bucket.value ?? "(none)", s, k)));
    }
    const header = ["breakdown", "step_number", "step", "users", "conversion_rate", "drop_off", "median_conversion_seconds", "average_conversion_seconds"];
    return { header, rows };
  },

  /** `display.onStep(k, name)`, when given, makes each step's name a button (the persons at it). */
  render(el, data, { query, compact, display = {} }) {
    const sections = [summary(data, query), bars(data, display.onStep)];
    if (!compact) sections.push(stepsTable(data));
    if (data.breakdown) sections.push(breakdownTable(data, query, compact));
    showContent(el, ...sections);
    sizeBars(el);
    return this.table(data);
  },
};

function summary(data, query) {
  const last = data.funnel[data.funnel.length - 1];
  return h(
    "p",
    { class: "summary" },
    h("strong", { class: "overall-conversion", dataset: { value: data.overall_conversion } }, percent(data.overall_conversion)),
    " converted: ",
    count(last.count),
    " of ",
    count(data.total_entries),
    ` persons, within ${windowText(windowOf(query))}, ${MODES[query.mode || "ordered"].toLowerCase()}`,
    exclusionsText(query),
  );
}

/** "; excluding refund between steps 1 and 3" (1-based, as the page shows steps). */
function exclusionsText(query) {
  const list = query.exclusions ?? [];
  if (!list.length) return "";
  const each = list.map((e) => h("span", { class: "exclusion", dataset: { event: e.event, from: e.from_step, to: e.to_step } }, `“${e.event}” between steps ${e.from_step + 1} and ${e.to_step + 1}`));
  return ["; excluding ", each.flatMap((node, k) => (k ? [", ", node] : [node]))];
}

const timeData = (s) => ({ median: s.median_conversion_seconds ?? "", average: s.average_conversion_seconds ?? "" });

function bars(data, onStep) {
  return h(
    "ol",
    { class: "funnel-bars", "aria-label": "Persons at each step" },
    data.funnel.map((s, k) =>
      h(
        "li",
        { class: "funnel-step" },
        onStep
          ? h("button", { type: "button", class: "step-name step-persons", "aria-label": `${k + 1}. ${s.step}: list its persons`, onclick: () => onStep(k, s.step) }, `${k + 1}. ${s.step}`)
          : h("span", { class: "step-name" }, `${k + 1}. ${s.step}`),
        h("span", { class: "track", "aria-hidden": "true" }, h("span", { class: "bar", dataset: { share: Math.max(0, Math.min(100, s.conversion_rate)) } })),
        h(
          "span",
          { class: "step-figures" },
          h("strong", {}, count(s.count)),
          ` persons · ${percent(s.conversion_rate)}`,
          k > 0 ? h("span", { class: "drop" }, ` · ${count(s.drop_off)} dropped`) : null,
          s.median_conversion_seconds !== null && s.median_conversion_seconds !== undefined
            ? h("span", { class: "step-time", dataset: timeData(s) }, ` · median ${elapsed(s.median_conversion_seconds)}`)
            : null,
        ),
      ),
    ),
  );
}

function stepsTable(data) {
  const rows = data.funnel.map((s, k) => [
    `${k + 1}. ${s.step}`,
    { class: "num", text: count(s.count), dataset: { value: s.count } },
    { class: "num", text: percent(s.conversion_rate), dataset: { value: s.conversion_rate } },
    { class: "num", text: k === 0 ? "–" : count(s.drop_off), dataset: { value: s.drop_off } },
    { class: "num median", text: elapsed(s.median_conversion_seconds), dataset: { value: s.median_conversion_seconds ?? "" } },
    { class: "num average", text: elapsed(s.average_conversion_seconds), dataset: { value: s.average_conversion_seconds ?? "" } },
  ]);
  const num = (text) => ({ text, scope: "col", class: "num" });
  const head = ["Step", num("Persons"), num("Conversion"), num("Dropped"), num("Median time"), num("Average time")];
  return table({ caption: "Steps (times from the step before)", head, rows, className: "funnel-table" });
}

function breakdownTable(data, query, compact) {
  const num = (text) => ({ text, scope: "col", class: "num" });
  const head = [`By ${query.breakdown}`, num("Entered"), ...(compact ? [] : data.funnel.slice(1).map((s, k) => num(`${k + 2}. ${s.step}`))), num("Conversion")];
  const rows = data.breakdown.map((b) => [
    b.other ? { text: "Other", scope: "row", class: "other" } : b.value === null ? { text: "(not set)", scope: "row", class: "none" } : { text: b.value, scope: "row" },
    { class: "num", text: count(b.total_entries), dataset: { value: b.total_entries } },
    ...(compact ? [] : b.funnel.slice(1).map((s) => ({ class: "num", text: `${count(s.count)} (${percent(s.conversion_rate)})`, dataset: { value: s.count } }))),
    { class: "num", text: percent(b.overall_conversion), dataset: { value: b.overall_conversion } },
  ]);
  return table({ caption: `Breakdown by ${query.breakdown}`, head, rows, className: "breakdown-table" });
}
