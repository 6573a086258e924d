// Top events of the range: GET /api/v1/analytics/stats.

import { h, showContent, table } from "../dom.js";
import { count } from "../format.js";

export default {
  type: "events",
  title: "Top events",
  page: "/",
  request: (query, range) => ({
    path: "/api/v1/analytics/stats",
    query: { start_date: range.start, end_date: range.end },
  }),
  isEmpty: (data) => data.events === 0,
  emptyText: (query, range) => `No events between ${range.start} and ${range.end}.`,
  defaultName: () => "Top events",
  toParams: () => ({}),
  fromParams: () => ({ limit: 10 }),

  table(data) {
    return {
      header: ["event", "events", "unique_users"],
      rows: data.by_event.map((e) => [e.event, e.count, e.unique_users]),
    };
  },

  render(el, data, { query }) {
    const top = data.by_event.slice(0, query.limit || 10);
    const most = Math.max(1, ...top.map((e) => e.count));
    const rows = top.map((e) => [
      e.event,
      {
        class: "num bar-cell",
        dataset: { value: e.count },
        children: [h("span", { class: "bar", "aria-hidden": "true", dataset: { share: Math.round((e.count / most) * 100) } }), h("span", { class: "bar-text" }, count(e.count))],
      },
      { class: "num", text: count(e.unique_users), dataset: { value: e.unique_users } },
    ]);
    const summary = h(
      "p",
      { class: "summary" },
      h("strong", { class: "total-events", dataset: { value: data.events } }, count(data.events)),
      " events from ",
      h("strong", { class: "total-users", dataset: { value: data.unique_users } }, count(data.unique_users)),
      " users",
      data.by_event.length > top.length ? ` · top ${top.length} of ${data.by_event.length} events` : "",
    );
    showContent(el, summary, table({ caption: "Events by name", head: ["Event", { text: "Events", scope: "col", class: "num" }, { text: "Unique users", scope: "col", class: "num" }], rows, className: "top-events" }));
    sizeBars(el);
    return this.table(data);
  },
};

/** Bar widths come from data-share through the CSSOM (no inline style attributes under our CSP). */
export function sizeBars(el) {
  el.querySelectorAll(".bar[data-share]").forEach((bar) => {
    bar.style.width = `${bar.dataset.share}%`;
  });
}
