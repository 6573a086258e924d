// The funnel's time to convert: POST /api/v1/analytics/funnel with view=time_to_convert (one request),
// from the first step to the last, drawn as uPlot bars with the bins in a table beside them.

import { PALETTE, bucketChart } from "../charts.js";
import { h, showContent, table } from "../dom.js";
import { count, elapsed, exact } from "../format.js";
import { funnelBody } from "./funnel.js";

export const BINS = 20;

// Bins narrower than a minute would all read alike rounded ("2 h"): they are shown to the second.
const binLabel = (bin) => {
  const shown = bin.to_seconds - bin.from_seconds < 60 ? exact : elapsed;
  return `${shown(bin.from_seconds)} – ${shown(bin.to_seconds)}`;
};

export default {
  type: "funnel_time",
  title: "Time to convert",
  request(query, range) {
    const body = { ...funnelBody(query, range), view: "time_to_convert", bins: BINS };
    delete body.breakdown; // the views answer for everyone: a breakdown is a 422
    return { path: "/api/v1/analytics/funnel", method: "POST", body };
  },
  isEmpty: (data) => data.converted === 0,
  emptyText: () => "Nobody converted from the first step to the last, so there is no time to convert.",

  table: (data) => ({ header: ["from_seconds", "to_seconds", "count"], rows: data.bins.map((b) => [b.from_seconds, b.to_seconds, b.count]) }),

  render(el, data, { signal }) {
    const chart = h("div", { class: "time-chart", role: "img", "aria-label": `Histogram of the time from step ${data.from_step + 1} to step ${data.to_step + 1}; the table below has its numbers` });
    showContent(el, summary(data), chart, binsTable(data));
    const drawn = bucketChart(chart, data.bins.map(binLabel), [{ label: "conversions", values: data.bins.map((b) => b.count), color: PALETTE[0] }], {
      kind: "bar",
      short: (label) => label.split(" – ")[0],
      format: (v) => count(v),
    });
    signal?.addEventListener("abort", () => drawn.destroy());
    return this.table(data);
  },
};

function summary(data) {
  return h(
    "p",
    { class: "summary time-summary" },
    h("strong", { class: "time-converted", dataset: { value: data.converted } }, count(data.converted)),
    ` converted from step ${data.from_step + 1} to step ${data.to_step + 1}: median `,
    h("strong", { class: "time-median", dataset: { value: data.median_seconds ?? "" } }, elapsed(data.median_seconds)),
    ", average ",
    h("strong", { class: "time-average", dataset: { value: data.average_seconds ?? "" } }, elapsed(data.average_seconds)),
  );
}

function binsTable(data) {
  const num = (text) => ({ text, scope: "col", class: "num" });
  const rows = data.bins.map((b) => [
    { text: binLabel(b), scope: "row", dataset: { from: b.from_seconds, to: b.to_seconds } },
    { class: "num", text: count(b.count), dataset: { value: b.count } },
  ]);
  return h(
    "details",
    { class: "time-bins" },
    h("summary", {}, "The bins as a table"),
    table({ caption: "Time to convert", head: ["Time", num("Conversions")], rows, className: "time-table" }),
  );
}
