// Trends: POST /api/v1/analytics/trends, the whole chart in one request (every series, breakdown
// value, compared period and formula), drawn as lines or bars with the table of every bucket under it.

import { PALETTE, bucketChart } from "../charts.js";
import { h, showContent, table } from "../dom.js";
import { count, decimal } from "../format.js";

export const MATHS = {
  total: "Total events",
  unique_persons: "Unique persons",
  dau: "Daily active persons (mean)",
  weekly_active: "Weekly active persons",
  monthly_active: "Monthly active persons",
  per_person_avg: "Events per person",
  sum: "Sum of",
  avg: "Average of",
  min: "Minimum of",
  max: "Maximum of",
  median: "Median of",
  p90: "90th percentile of",
  p95: "95th percentile of",
  p99: "99th percentile of",
};
export const PROPERTY_MATHS = new Set(["sum", "avg", "min", "max", "median", "p90", "p95", "p99"]);
export const INTERVALS = { hour: "Hour", day: "Day", week: "Week", month: "Month" };
export const MAX_SERIES = 10;
export const ALL_EVENTS = "$all";
const MAX_CHART_LINES = 12;
const LETTERS = "ABCDEFGHIJ";

/** A property as the API takes it: "plan" or "person.plan" -> {property, source}. */
export function propertyRef(text) {
  if (!text) return null;
  if (typeof text === "object") return { property: text.property, source: text.source || "event" };
  return text.startsWith("person.") && text.length > 7 ? { property: text.slice(7), source: "person" } : { property: text, source: "event" };
}

/** {property, source} (or the API's string form) as the form shows it: "plan" or "person.plan". */
export function propertyText(ref) {
  const r = propertyRef(ref);
  return r ? (r.source === "person" ? `person.${r.property}` : r.property) : "";
}

const hasExtras = (query) => (query.filters?.length ?? 0) > 0 || query.series.some((s) => (s.filters?.length ?? 0) > 0 || s.label);
const eventName = (event) => (event === ALL_EVENTS ? "any event" : event);

/** "Total events of signup", "Sum of amount of purchase". */
export function seriesName(series) {
  const math = MATHS[series.math || "total"] || series.math;
  const what = PROPERTY_MATHS.has(series.math) ? `${math} ${propertyText(series.property)}` : math;
  return `${what} · ${series.label || eventName(series.event)}`;
}

/** The URL form of one series, "math:property:event" (the property percent-encoded, the event the rest). */
function seriesParam(series) {
  return `${series.math || "total"}:${encodeURIComponent(propertyText(series.property))}:${series.event}`;
}

function parseSeries(text) {
  const match = /^([a-z0-9_]+):([^:]*):(.+)$/s.exec(text);
  if (!match || !MATHS[match[1]]) return null;
  let property = "";
  try {
    property = decodeURIComponent(match[2]);
  } catch {
    return null;
  }
  return { event: match[3], math: match[1], property: PROPERTY_MATHS.has(match[1]) ? propertyRef(property) : null, filters: [] };
}

const breakdownValue = (value) => (value === null || value === undefined ? "(not set)" : typeof value === "string" ? value : JSON.stringify(value));

/** The results as lines: each series (per breakdown value), its compared period, and the formula. */
export function linesOf(data, query) {
  const lines = [];
  const named = (base, result) => (query.breakdown ? `${base} · ${result.other ? "Other" : breakdownValue(result.breakdown_value)}` : base);
  data.results.forEach((result) => {
    const index = LETTERS.indexOf(result.series);
    const base = `${result.series}. ${seriesName({ ...(query.series[index] || {}), label: result.label })}`;
    lines.push({ kind: "series", letter: result.series, result, name: named(base, result), values: result.data, total: result.total, skipped: result.skipped ?? 0 });
    if (result.compare) {
      lines.push({ kind: "compare", letter: result.series, result, name: `${named(base, result)} (previous period)`, values: result.compare.data, labels: result.compare.labels, total: result.compare.total, skipped: result.compare.skipped ?? 0 });
    }
  });
  (data.formula || []).forEach((result) => {
    const base = `Formula ${result.formula}`;
    lines.push({ kind: "formula", letter: "", result, name: named(base, result), values: result.data, total: result.total, skipped: 0 });
    if (result.compare) lines.push({ kind: "formula-compare", letter: "", result, name: `${named(base, result)} (previous period)`, values: result.compare.data, labels: result.compare.labels, total: result.compare.total, skipped: 0 });
  });
  return lines;
}

/** A bucket's label on the chart's axis: "25 Mar", "14:00", "Mar 2023". */
function shortLabel(label, interval) {
  const date = new Date(`${label.slice(0, 10)}T00:00:00Z`);
  if (interval === "hour") return label.slice(11, 16) === "00:00" ? date.toLocaleDateString(undefined, { day: "numeric", month: "short", timeZone: "UTC" }) : label.slice(11, 16);
  if (interval === "month") return date.toLocaleDateString(undefined, { month: "short", year: "numeric", timeZone: "UTC" });
  return date.toLocaleDateString(undefined, { day: "numeric", month: "short", timeZone: "UTC" });
}

const shown = (value) => (value === null || value === undefined ? "–" : Number.isInteger(value) ? count(value) : decimal(value));
const numCell = (value, props = {}) => ({ class: "num", text: shown(value), dataset: { value: value ?? "" }, ...props });

export default {
  type: "trends",
  title: "Trends",
  page: "/trends",
  request: (query, range) => ({
    path: "/api/v1/analytics/trends",
    method: "POST",
    body: { ...query, start_date: range.start, end_date: range.end, timezone: range.timezone },
  }),
  isEmpty: (data) => data.results.every((r) => r.data.every((v) => !v) && !r.total && !r.compare?.total && !r.skipped),
  emptyText: (query, range) =>
    `No ${query.series.map((s) => eventName(s.event)).join(", ")} events between ${range.start} and ${range.end} (${range.timezone}).`,
  defaultName: (query) => query.series.map(seriesName).join(", "),

  /** The URL form: one `series` per series, interval, breakdown, compare, formula; or the whole query
   * as JSON when it has filters or labels (the page has no editor for those yet). */
  toParams(query) {
    if (hasExtras(query)) return { q: JSON.stringify(query) };
    return {
      series: query.series.map(seriesParam),
      interval: query.interval && query.interval !== "day" ? query.interval : null,
      breakdown: propertyText(query.breakdown) || null,
      compare: query.compare || null,
      formula: query.formula || null,
    };
  },

  fromParams(params) {
    if (params.get("q")) {
      try {
        const query = JSON.parse(params.get("q"));
        if (Array.isArray(query.series)) return query;
      } catch {
        // An unreadable q: the default trend below.
      }
    }
    const series = params.getAll("series").map(parseSeries).filter(Boolean).slice(0, MAX_SERIES);
    return {
      series: series.length ? series : [{ event: ALL_EVENTS, math: "total", property: null, filters: [] }],
      interval: INTERVALS[params.get("interval")] ? params.get("interval") : "day",
      breakdown: propertyRef(params.get("breakdown")),
      compare: params.get("compare") === "previous_period" ? "previous_period" : null,
      formula: params.get("formula") || null,
      filters: [],
    };
  },

  table(data, query) {
    const rows = [];
    for (const line of linesOf(data, query)) {
      const labels = line.labels || line.result.labels;
      const period = line.kind.endsWith("compare") ? "previous" : "current";
      const bv = line.result.other ? "Other" : line.result.breakdown_value ?? null;
      labels.forEach((label, k) => rows.push([line.kind.startsWith("formula") ? "formula" : line.letter, line.name, bv, period, label, line.values[k] ?? null]));
    }
    return { header: ["series", "name", "breakdown_value", "period", "bucket", "value"], rows };
  },

  render(el, data, { query, compact, signal, display = {} }) {
    const lines = linesOf(data, query);
    const labels = data.results[0]?.labels || [];
    const chart = h("div", { class: "chart trend-chart", role: "img", "aria-label": `${lines.length === 1 ? lines[0].name : `${lines.length} lines`} per ${query.interval || "day"}; the numbers are in the table below` });
    const legendNote = lines.length > MAX_CHART_LINES ? h("p", { class: "chart-note" }, `The chart shows the first ${MAX_CHART_LINES} of ${lines.length} lines; the table has them all.`) : null;
    let drawn = null;
    const draw = (kind) => {
      drawn?.destroy();
      chart.replaceChildren();
      let colour = -1; // a period before takes its line's colour, dashed
      const charted = lines.slice(0, MAX_CHART_LINES).map((line) => {
        const dashed = line.kind.endsWith("compare");
        if (!dashed) colour += 1;
        return { label: line.name, values: line.values, dashed, color: PALETTE[Math.max(0, colour) % PALETTE.length] };
      });
      drawn = bucketChart(chart, labels, charted, { kind, short: (l) => shortLabel(l, query.interval || "day"), format: shown });
    };
    showContent(
      el,
      compact ? null : chartToggle(display.chart || "line", (kind) => (draw(kind), display.onChart?.(kind))),
      skippedNote(lines, query),
      chart,
      legendNote,
      compact ? totalsTable(lines, query) : bucketsTable(lines, labels, query),
    );
    draw(display.chart || "line");
    signal?.addEventListener("abort", () => drawn?.destroy());
    return this.table(data, query);
  },
};

function chartToggle(current, onChange) {
  const buttons = Object.entries({ line: "Line", bar: "Bars" }).map(([kind, text]) =>
    h("button", { type: "button", class: "button chip small", dataset: { chart: kind }, "aria-pressed": String(kind === current) }, text),
  );
  buttons.forEach((button) =>
    button.addEventListener("click", () => {
      buttons.forEach((b) => b.setAttribute("aria-pressed", String(b === button)));
      onChange(button.dataset.chart);
    }),
  );
  return h("div", { class: "chart-kind", role: "group", "aria-label": "Chart type" }, buttons);
}

/** Said when a property math met values that are not numbers (the API skips and counts them). */
function skippedNote(lines, query) {
  const skipped = lines.filter((line) => line.skipped > 0);
  if (!skipped.length) return null;
  return h(
    "ul",
    { class: "skipped-note note", role: "note" },
    skipped.map((line) => {
      const series = query.series[LETTERS.indexOf(line.letter)];
      return h("li", { dataset: { series: line.letter, skipped: line.skipped } }, `${line.name}: ${count(line.skipped)} ${line.skipped === 1 ? "value" : "values"} of ${propertyText(series?.property)} skipped (not a number).`);
    }),
  );
}

function rowHead(line) {
  const classes = { compare: "compare-row", "formula-compare": "compare-row formula-row", formula: "formula-row", series: "" };
  return { text: line.name, scope: "row", class: classes[line.kind] };
}

function rowProps(line) {
  return { dataset: { kind: line.kind, series: line.letter, breakdown: line.result.other ? "Other" : JSON.stringify(line.result.breakdown_value ?? null) } };
}

function bucketsTable(lines, labels, query) {
  const anySkipped = lines.some((line) => line.skipped > 0);
  const head = [
    { text: "Series", scope: "col" },
    { text: "Total", scope: "col", class: "num" },
    ...(anySkipped ? [{ text: "Skipped", scope: "col", class: "num" }] : []),
    ...labels.map((label) => ({ text: label, scope: "col", class: "num", dataset: { label } })),
  ];
  const rows = lines.map((line) => [
    rowHead(line),
    numCell(line.total, { class: "num total" }),
    ...(anySkipped ? [numCell(line.skipped, { class: "num skipped" })] : []),
    ...labels.map((label, k) => numCell(line.values[k], { class: "num bucket", title: line.labels?.[k] })),
  ]);
  return withRowData(table({ caption: `Per ${query.interval || "day"}${query.breakdown ? `, by ${propertyText(query.breakdown)}` : ""}`, head, rows, className: "trends-table" }), lines);
}

function totalsTable(lines, query) {
  const shownLines = lines.filter((line) => !line.kind.endsWith("compare"));
  const compared = Boolean(query.compare);
  const head = [{ text: "Series", scope: "col" }, { text: "Total", scope: "col", class: "num" }, ...(compared ? [{ text: "Previous period", scope: "col", class: "num" }] : [])];
  const rows = shownLines.map((line) => [rowHead(line), numCell(line.total, { class: "num total" }), ...(compared ? [numCell(line.result.compare?.total)] : [])]);
  return withRowData(table({ caption: "Totals", head, rows, className: "trends-totals" }), shownLines);
}

/** Each row says what it is (its kind, series letter and breakdown value) for readers of the DOM. */
function withRowData(wrap, lines) {
  wrap.querySelectorAll("tbody tr").forEach((tr, k) => Object.assign(tr.dataset, rowProps(lines[k]).dataset));
  return wrap;
}
