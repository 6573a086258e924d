// One ETL metric's daily series: GET /api/v1/analytics/metrics/{metric}.

import { dailyLine } from "../charts.js";
import { h, showContent, table } from "../dom.js";
import { metricValue } from "../format.js";
import { metricLabel, metricUnit } from "./metrics.js";

export default {
  type: "metric",
  title: "Metric",
  page: "/",
  request: (query, range) => ({
    path: `/api/v1/analytics/metrics/${encodeURIComponent(query.metric)}`,
    query: { start_date: range.start, end_date: range.end },
  }),
  isEmpty: (data) => data.points.length === 0,
  emptyText: (query, range) =>
    `No daily snapshots of ${metricLabel(query.metric)} between ${range.start} and ${range.end}. They appear after the ETL has run for those days.`,
  defaultName: (query) => metricLabel(query.metric),
  toParams: () => ({}),
  fromParams: () => ({}),

  table(data) {
    return { header: ["date", data.metric], rows: data.points.map((p) => [p.date, p.value]) };
  },

  render(el, data, { query, signal }) {
    const unit = metricUnit(query.metric);
    const format = (v) => metricValue(v, unit);
    const chart = h("div", { class: "chart", role: "img", "aria-label": `${metricLabel(query.metric)} per day; the values are in the table below` });
    const rows = data.points.map((p) => [p.date, { class: "num", text: format(p.value), dataset: { value: p.value } }]);
    showContent(
      el,
      chart,
      h("details", { class: "chart-table" }, h("summary", {}, "Table"), table({ caption: `${metricLabel(query.metric)} by day`, head: ["Day", { text: "Value", scope: "col", class: "num" }], rows, className: "metric-series" })),
    );
    const drawn = dailyLine(chart, data.points, { label: metricLabel(query.metric), format });
    signal?.addEventListener("abort", drawn.destroy);
    return this.table(data);
  },
};
