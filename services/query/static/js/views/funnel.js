// Funnels: POST /api/v1/analytics/funnel, drawn as horizontal bars with counts, conversion and
// drop-off per step, and a table per breakdown value. The results are a list of sections so that the
// time-to-convert histogram, the time between steps and the persons at a step can join it.

import { h, showContent, table } from "../dom.js";
import { count, duration, percent } from "../format.js";
import { sizeBars } from "./events.js";

export const DEFAULT_WINDOW_SECONDS = 14 * 86400;
export const MODES = { ordered: "In order", strict: "Strictly in order", unordered: "In any order" };
const UNITS = { w: 604800, d: 86400, h: 3600, m: 60, s: 1 };

/** "14d" -> 1209600; a plain number is seconds; null when unreadable. */
export function parseWindow(text) {
  const match = /^(\d+)([wdhms]?)$/.exec(text ?? "");
  return match ? Number(match[1]) * UNITS[match[2] || "s"] : null;
}

/** 1209600 -> "2w"... the largest unit that divides it. */
export function windowParam(seconds) {
  const [unit, size] = Object.entries(UNITS).find(([, size]) => seconds % size === 0);
  return `${seconds / size}${unit}`;
}

const hasFilters = (query) => (query.filters?.length ?? 0) > 0 || query.steps.some((s) => (s.filters?.length ?? 0) > 0);
const stepName = (step) => (typeof step === "string" ? step : step.event);

export default {
  type: "funnel",
  title: "Funnel",
  page: "/funnel",
  request: (query, range) => ({
    path: "/api/v1/analytics/funnel",
    method: "POST",
    body: { ...query, start_date: range.start, end_date: range.end },
  }),
  isEmpty: (data) => data.total_entries === 0,
  emptyText: (query, range) =>
    `Nobody did “${stepName(query.steps[0])}” between ${range.start} and ${range.end}, so the funnel has no entries.`,
  defaultName: (query) => query.steps.map(stepName).join(" → "),

  /** The URL form: readable step/window/mode/breakdown, or the whole query as JSON when it has filters. */
  toParams(query) {
    if (hasFilters(query)) return { q: JSON.stringify(query) };
    return {
      step: query.steps.map(stepName),
      window: query.window_seconds && query.window_seconds !== DEFAULT_WINDOW_SECONDS ? windowParam(query.window_seconds) : null,
      mode: query.mode && query.mode !== "ordered" ? query.mode : null,
      breakdown: query.breakdown || null,
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
    query.window_seconds = parseWindow(params.get("window")) || DEFAULT_WINDOW_SECONDS;
    query.mode = MODES[params.get("mode")] ? params.get("mode") : "ordered";
    if (params.get("breakdown")) query.breakdown = params.get("breakdown");
    return query;
  },

  table(data) {
    const rows = data.funnel.map((s, k) => ["all", k + 1, s.step, s.count, s.conversion_rate, s.drop_off]);
    for (const bucket of data.breakdown || []) {
      bucket.funnel.forEach((s, k) => rows.push([bucket.other ? "Other" : bucket.value ?? "(none)", k + 1, s.step, s.count, s.conversion_rate, s.drop_off]));
    }
    return { header: ["breakdown", "step_number", "step", "users", "conversion_rate", "drop_off"], rows };
  },

  render(el, data, { query, compact }) {
    const sections = [summary(data, query), bars(data)];
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
    ` users, within ${duration(query.window_seconds || DEFAULT_WINDOW_SECONDS)}, ${MODES[query.mode || "ordered"].toLowerCase()}`,
  );
}

function bars(data) {
  return h(
    "ol",
    { class: "funnel-bars", "aria-label": "Users at each step" },
    data.funnel.map((s, k) =>
      h(
        "li",
        { class: "funnel-step" },
        h("span", { class: "step-name" }, `${k + 1}. ${s.step}`),
        h("span", { class: "track", "aria-hidden": "true" }, h("span", { class: "bar", dataset: { share: Math.max(0, Math.min(100, s.conversion_rate)) } })),
        h(
          "span",
          { class: "step-figures" },
          h("strong", {}, count(s.count)),
          ` users · ${percent(s.conversion_rate)}`,
          k > 0 ? h("span", { class: "drop" }, ` · ${count(s.drop_off)} dropped`) : null,
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
  ]);
  const num = (text) => ({ text, scope: "col", class: "num" });
  return table({ caption: "Steps", head: ["Step", num("Users"), num("Conversion"), num("Dropped")], rows, className: "funnel-table" });
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
