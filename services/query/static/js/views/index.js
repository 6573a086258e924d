// Every insight type the dashboard can draw and save, and what a saved insight's link and range are.

import { addDays, rangeParams, todayIn } from "../range.js";
import events from "./events.js";
import funnel from "./funnel.js";
import metric from "./metric.js";
import retention from "./retention.js";

export const VIEWS = { events, metric, funnel, retention };
export const TYPE_NAMES = { events: "Top events", metric: "Metric", funnel: "Funnel", retention: "Retention" };

/** The range a saved insight covers now: its last N days from today, or its fixed days. */
export function savedRange(insight) {
  const timezone = insight.timezone || "UTC";
  const spec = insight.date_range;
  if (spec.last_days) {
    const end = todayIn(timezone);
    return { preset: `${spec.last_days}d`, start: addDays(end, 1 - spec.last_days), end, timezone, lastDays: spec.last_days, label: `Last ${spec.last_days} days` };
  }
  return { preset: "custom", start: spec.start_date, end: spec.end_date, timezone, label: `${spec.start_date} – ${spec.end_date}` };
}

/** The page that shows a saved insight, with its query and range in the URL. */
export function insightHref(insight) {
  const view = VIEWS[insight.type];
  const params = new URLSearchParams();
  const entries = { ...view.toParams(insight.query), ...rangeParams(savedRange(insight)) };
  for (const [name, value] of Object.entries(entries)) {
    for (const item of Array.isArray(value) ? value : [value]) if (item !== null && item !== undefined) params.append(name, item);
  }
  const text = params.toString();
  return `${view.page}${text ? `?${text}` : ""}`;
}
