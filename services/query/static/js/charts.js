// The charts, drawn by uPlot (vendor/uplot): sparklines, daily lines and the live events-per-minute bars.
// Every chart has a table beside it (visible, or for screen readers only), so canvas is never the
// only way to read a number.

import uPlot from "../vendor/uplot/uPlot.esm.js";

const INK = "#1b2733";
const MUTED = "#5b6876";
const GRID = "#e3e8ee";
const SERIES = "#0b5cad"; // blue: readable by every kind of colour vision against the white panel

function sized(el, height, makeOptions, data) {
  const width = Math.max(el.clientWidth, 120);
  const chart = new uPlot({ ...makeOptions(width), width, height }, data, el);
  const observer = new ResizeObserver(() => {
    const next = Math.max(el.clientWidth, 120);
    if (next !== chart.width) chart.setSize({ width: next, height });
  });
  observer.observe(el);
  return { chart, destroy: () => (observer.disconnect(), chart.destroy()) };
}

const seconds = (iso) => Date.parse(`${iso}T00:00:00Z`) / 1000;

/** A small line without axes: the shape of a metric over its days. */
export function sparkline(el, points) {
  const data = [points.map((p) => seconds(p.date)), points.map((p) => p.value)];
  return sized(el, 40, () => ({
    legend: { show: false },
    cursor: { show: false },
    select: { show: false },
    axes: [{ show: false }, { show: false }],
    scales: { x: { time: true }, y: { range: (u, min, max) => (min === max ? [min - 1, max + 1] : [min, max]) } },
    series: [{}, { stroke: SERIES, width: 2, fill: "rgba(11, 92, 173, 0.12)", points: { show: false } }],
  }), data);
}

const axis = (values) => ({ stroke: MUTED, grid: { stroke: GRID, width: 1 }, ticks: { stroke: GRID, width: 1 }, font: "12px system-ui, sans-serif", values });

/** A daily series with axes: days along x (UTC), the value up y. */
export function dailyLine(el, points, { label = "value", format = String } = {}) {
  const data = [points.map((p) => seconds(p.date)), points.map((p) => p.value)];
  return sized(el, 220, () => ({
    legend: { show: false },
    scales: { x: { time: true } },
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
    axes: [axis(), { ...axis((u, ticks) => ticks.map(format)), size: 70 }],
    series: [{}, { label, stroke: SERIES, width: 2, points: { show: points.length < 40 } }],
  }), data);
}

/** Bars of events per minute, the last `minutes` minutes (local clock). Returns {update(times, counts)}. */
export function minuteBars(el) {
  const bars = uPlot.paths.bars({ size: [0.8, 40] });
  const { chart, destroy } = sized(el, 160, () => ({
    legend: { show: false },
    // Half a minute of room each side, so the first and last bars are drawn whole.
    scales: { x: { time: true, range: (u, min, max) => [min - 30, max + 30] }, y: { range: (u, min, max) => [0, Math.max(5, max)] } },
    axes: [axis(), { ...axis(), size: 50 }],
    series: [{}, { label: "events", stroke: SERIES, fill: SERIES, paths: bars, points: { show: false } }],
  }), [[], []]);
  return { update: (times, counts) => chart.setData([times, counts]), destroy };
}

export { INK };
