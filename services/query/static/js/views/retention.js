// Retention: GET /api/v1/analytics/cohort as a heatmap table. Each cell carries its percentage and
// count as text; the colour (a one-hue lightness ramp, readable with any colour vision, with a
// border-and-weight form for high-contrast modes in app.css) only repeats what the text says.

import { h, showContent, table } from "../dom.js";
import { count, percent } from "../format.js";

export const PERIOD_TYPES = { daily: "Day", weekly: "Week", monthly: "Month" };
export const MAX_PERIODS = 52;
const HEAT_STEPS = 8;

/** How many periods of the type the range touches (the cohorts shown), at most MAX_PERIODS. */
export function periodsIn(range, periodType) {
  const start = new Date(`${range.start}T00:00:00Z`);
  const end = new Date(`${range.end}T00:00:00Z`);
  let periods;
  if (periodType === "monthly") {
    periods = (end.getUTCFullYear() - start.getUTCFullYear()) * 12 + end.getUTCMonth() - start.getUTCMonth() + 1;
  } else if (periodType === "weekly") {
    const monday = (d) => d.getTime() - ((d.getUTCDay() + 6) % 7) * 86400000;
    periods = Math.round((monday(end) - monday(start)) / (7 * 86400000)) + 1;
  } else {
    periods = Math.round((end - start) / 86400000) + 1;
  }
  return Math.max(1, Math.min(MAX_PERIODS, periods));
}

export function heatClass(pct, users) {
  if (!users) return "heat-none";
  return `heat-${Math.min(HEAT_STEPS, Math.ceil(pct / (100 / HEAT_STEPS)))}`;
}

export default {
  type: "retention",
  title: "Retention",
  page: "/retention",
  request: (query, range) => ({
    path: "/api/v1/analytics/cohort",
    query: {
      period_type: query.period_type || "weekly",
      periods: periodsIn(range, query.period_type || "weekly"),
      end_date: range.end,
      start_event: query.start_event || null,
      return_event: query.return_event || null,
      timezone: range.timezone,
    },
  }),
  isEmpty: (data) => data.cohorts.every((c) => c.users === 0),
  emptyText: (query, range) => `No users started a cohort between ${range.start} and ${range.end}${query.start_event ? ` with “${query.start_event}”` : ""}.`,
  defaultName: (query) => `${PERIOD_TYPES[query.period_type || "weekly"]}ly retention`.replace("Dayly", "Daily") + (query.start_event ? ` after ${query.start_event}` : ""),
  toParams: (query) => ({
    period: query.period_type && query.period_type !== "weekly" ? query.period_type : null,
    start_event: query.start_event || null,
    return_event: query.return_event || null,
  }),
  fromParams: (params) => ({
    period_type: PERIOD_TYPES[params.get("period")] ? params.get("period") : "weekly",
    start_event: params.get("start_event") || null,
    return_event: params.get("return_event") || null,
  }),

  table(data) {
    const rows = [];
    for (const cohort of data.cohorts) {
      for (const point of cohort.data) rows.push([cohort.cohort_date, cohort.users, point.period, point.count, point.percentage]);
    }
    return { header: ["cohort", "users", "period", "count", "percentage"], rows };
  },

  render(el, data, { query, range, compact }) {
    const unit = PERIOD_TYPES[query.period_type || "weekly"];
    const periods = data.cohorts.length;
    const head = [
      { text: "Cohort", scope: "col" },
      { text: "Persons", scope: "col", class: "num" },
      ...Array.from({ length: periods }, (_, k) => ({ text: `${unit} ${k}`, scope: "col", class: "num" })),
    ];
    const rows = data.cohorts.map((cohort) => [
      { text: cohort.cohort_date, scope: "row" },
      { class: "num", text: count(cohort.users), dataset: { value: cohort.users } },
      ...Array.from({ length: periods }, (_, k) => cell(cohort, cohort.data[k], compact)),
    ]);
    const clipped = periodsIn(range, query.period_type || "weekly") === MAX_PERIODS;
    showContent(
      el,
      clipped ? h("p", { class: "note" }, `Showing the last ${MAX_PERIODS} cohorts of the range.`) : null,
      table({ caption: `${unit}ly cohorts: share of each cohort's users active in each ${unit.toLowerCase()} after`, head, rows, className: "heatmap" }),
      legend(),
    );
    return this.table(data);
  },
};

function cell(cohort, point, compact) {
  if (!point) return { class: "cell future", text: "", "aria-label": "not yet" };
  const children = [h("span", { class: "pct" }, percent(point.percentage))];
  if (!compact) children.push(h("span", { class: "count" }, count(point.count)));
  return {
    class: `num cell ${heatClass(point.percentage, cohort.users)}`,
    dataset: { period: point.period, count: point.count, percentage: point.percentage },
    title: `${count(point.count)} of ${count(cohort.users)} users`,
    children,
  };
}

function legend() {
  const steps = Array.from({ length: HEAT_STEPS + 1 }, (_, k) => h("span", { class: `swatch heat-${k}`, "aria-hidden": "true" }));
  return h("p", { class: "legend" }, h("span", {}, "0%"), h("span", { class: "swatches" }, steps), h("span", {}, "100%"), h("span", { class: "visually-hidden" }, "Darker cells mean a larger share of the cohort returned."));
}
