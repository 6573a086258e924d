// Overview: the ETL metrics as cards (value, change against the day before, a 30-day sparkline), the
// live active users and events per minute, and the top events of the range.

import { api } from "../api.js";
import { minuteBars, sparkline } from "../charts.js";
import { csvButton, csvName } from "../csv.js";
import { h, panel, showContent, showEmpty, showError, showLoading } from "../dom.js";
import { change, count, day, metricValue, plural } from "../format.js";
import { live, statusText } from "../live.js";
import { addDays, todayIn } from "../range.js";
import { openSaveDialog, saveButton, savedNotice } from "../save.js";
import events from "../views/events.js";
import { metricLabel, metricUnit } from "../views/metrics.js";
import { runInsight } from "../views/run.js";

const SPARKLINE_DAYS = 30;

export default {
  title: "Overview",
  defaultRange: "7d",
  liveEvents: () => null,
  render({ main, range, signal }) {
    const notices = h("div", { class: "notices" });
    const metrics = panel("Key metrics", { className: "metrics" });
    const livePanel = panel("Live", { className: "live-summary" });
    const top = panel(`Top events · ${range.label}`, { className: "top" });
    const onSaved = (saved) => notices.replaceChildren(savedNotice(saved));
    top.tools.append(saveButton(() => ({ type: "events", name: "Top events", query: { limit: 10 }, range }), onSaved));
    main.append(h("h1", {}, "Overview"), notices, metrics.section, h("div", { class: "columns" }, livePanel.section, top.section));
    showMetrics(metrics, range, signal, onSaved);
    showLive(livePanel, signal);
    runInsight(events, { limit: 10 }, range, { body: top.body, tools: top.tools, signal, name: "top events" });
  },
};

async function showMetrics(metrics, range, signal, onSaved) {
  showLoading(metrics.body);
  let overview, known;
  try {
    [overview, known] = await Promise.all([api("/api/v1/analytics/overview", { signal }), api("/api/v1/analytics/metrics", { signal })]);
  } catch (error) {
    if (error.name !== "AbortError") showError(metrics.body, error, () => showMetrics(metrics, range, signal, onSaved));
    return;
  }
  if (!overview.date) {
    showEmpty(metrics.body, "No daily metrics yet. They are computed for each UTC day that has ended: every night at 00:00 UTC, at start-up for recent days, or when an admin key runs POST /api/v1/analytics/etl/run.");
    markReady();
    return;
  }
  const end = [range.end, addDays(todayIn("UTC"), -1)].sort()[0];
  const start = addDays(end, 1 - SPARKLINE_DAYS);
  const series = {};
  const cards = known.metrics.map((m) => card(m, overview.metrics[m.name], { start, end, signal, series, range, onSaved }));
  const note = h("p", { class: "note" }, `${day(overview.date)} (the latest day computed) against the day before; lines show ${day(start)} – ${day(end)}.`);
  showContent(metrics.body, note, h("div", { class: "cards" }, cards));
  metrics.tools.replaceChildren(
    csvButton(csvName("metrics", overview.date), () => ({
      header: ["metric", "date", "value", "previous", "change_pct"],
      rows: known.metrics.map((m) => [m.name, overview.date, overview.metrics[m.name]?.value ?? null, overview.metrics[m.name]?.previous ?? null, overview.metrics[m.name]?.change_pct ?? null]),
    }), "Cards CSV"),
    csvButton(csvName("metrics daily", start, end), () => ({
      header: ["metric", "date", "value"],
      rows: Object.entries(series).flatMap(([name, points]) => points.map((p) => [name, p.date, p.value])),
    }), "Daily CSV"),
  );
  markReady();
}

function card(info, figures, { start, end, signal, series, range, onSaved }) {
  const unit = info.unit || metricUnit(info.name);
  const value = figures?.value ?? null;
  const pct = figures?.change_pct ?? null;
  const direction = pct > 0 ? "up" : pct < 0 ? "down" : "flat";
  const spark = h("div", { class: "spark", role: "img", "aria-label": `${metricLabel(info.name)}: loading the last ${SPARKLINE_DAYS} days` });
  const element = h(
    "article",
    { class: "card", dataset: { metric: info.name }, title: info.description },
    h("h3", { class: "card-title" }, metricLabel(info.name)),
    h("p", { class: "value", dataset: { value: value ?? "" } }, metricValue(value, unit)),
    h(
      "p",
      { class: `change ${direction}`, dataset: { change: pct ?? "" } },
      h("span", { "aria-hidden": "true" }, direction === "up" ? "▲ " : direction === "down" ? "▼ " : ""),
      change(pct),
      h("span", { class: "previous" }, figures?.previous === null || figures?.previous === undefined ? "" : ` vs ${metricValue(figures.previous, unit)}`),
    ),
    spark,
    h("button", {
      type: "button",
      class: "button quiet small",
      "aria-label": `Save ${metricLabel(info.name)} as an insight`,
      onclick: async () => {
        const saved = await openSaveDialog({ type: "metric", name: metricLabel(info.name), query: { metric: info.name }, range });
        if (saved) onSaved(saved);
      },
    }, "Save"),
  );
  api(`/api/v1/analytics/metrics/${encodeURIComponent(info.name)}`, { query: { start_date: start, end_date: end }, signal })
    .then((data) => {
      series[info.name] = data.points;
      const first = data.points[0];
      const last = data.points[data.points.length - 1];
      spark.setAttribute("aria-label", first ? `${metricLabel(info.name)} per day from ${first.date} to ${last.date}: from ${metricValue(first.value, unit)} to ${metricValue(last.value, unit)}` : "No days computed in this period");
      if (data.points.length) {
        const drawn = sparkline(spark, data.points);
        signal.addEventListener("abort", drawn.destroy);
      }
    })
    .catch((error) => {
      if (error.name !== "AbortError") spark.replaceChildren(h("span", { class: "spark-error" }, error.message));
    });
  return element;
}

/** The overview's first useful paint: its cards (or their empty state) are on screen. */
function markReady() {
  requestAnimationFrame(() => requestAnimationFrame(() => performance.mark("overview-ready")));
}

function showLive(livePanel, signal) {
  const status = h("p", { class: "live-status", dataset: { state: live.status.state } }, statusText(live.status));
  const users = h("p", { class: "big", id: "overview-active-users" }, live.activeUsers === null ? "–" : count(live.activeUsers));
  const chart = h("div", { class: "chart minute-chart", role: "img", "aria-label": "Events per minute, the last 30 minutes; the table below has the numbers" });
  const rows = h("tbody");
  const note = h("p", { class: "chart-note", role: "status" });
  livePanel.tools.append(csvButton("events-per-minute.csv", () => ({ header: ["minute", "events"], rows: minuteRows().map(([t, c]) => [t, c]) })));
  showContent(
    livePanel.body,
    status,
    h("div", { class: "live-figures" }, users, h("p", { class: "label" }, "users active in the last 5 minutes")),
    h("h3", { class: "minor" }, "Events per minute"),
    chart,
    note,
    h("details", { class: "chart-table" }, h("summary", {}, "Table"), h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Minute"), h("th", { scope: "col", class: "num" }, "Events"))), rows))),
  );
  const bars = minuteBars(chart);
  signal.addEventListener("abort", bars.destroy);
  const minuteRows = () => {
    const { times, counts } = live.minutes();
    return times.map((t, k) => [new Date(t * 1000).toISOString().slice(11, 16), counts[k]]);
  };
  const redraw = () => {
    const { times, counts } = live.minutes();
    bars.update(times, counts);
    const total = counts.reduce((a, b) => a + b, 0);
    const start = live.countingSince.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
    note.textContent = total ? `${plural(total, "event")} in the last 30 minutes, counted since ${start}.` : `No events yet; counting since ${start}.`;
    rows.replaceChildren(...minuteRows().slice(-10).reverse().map(([t, c]) => h("tr", {}, h("th", { scope: "row" }, t), h("td", { class: "num" }, count(c)))));
  };
  redraw();
  let pending = false;
  live.on("new_event", () => {
    if (pending) return;
    pending = true;
    setTimeout(() => ((pending = false), redraw()), 1000);
  }, signal);
  const timer = setInterval(redraw, 10000);
  signal.addEventListener("abort", () => clearInterval(timer));
  live.on("active_users", (n) => (users.textContent = count(n)), signal);
  live.on("status", (s) => ((status.textContent = statusText(s)), (status.dataset.state = s.state)), signal);
}
