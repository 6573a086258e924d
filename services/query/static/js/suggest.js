// Suggestions for the inputs: event names seen in the range (/stats) for funnel steps and cohort events;
// event and property names from schema discovery for trends.

import { api } from "./api.js";
import { h } from "./dom.js";

export async function suggestEventNames(datalist, range, signal) {
  try {
    const stats = await api("/api/v1/analytics/stats", { query: { start_date: range.start, end_date: range.end }, signal });
    datalist.replaceChildren(...stats.by_event.map((e) => h("option", { value: e.event })));
  } catch {
    // Suggestions only: the form works without them, and the results panel reports real failures.
  }
}

/** Event names from schema discovery (the most frequent first), with "$all" for any event. */
export async function suggestEvents(datalist, signal) {
  try {
    const found = await api("/api/v1/analytics/events", { query: { limit: 200 }, signal });
    datalist.replaceChildren(h("option", { value: "$all" }, "Any event"), ...found.events.map((e) => h("option", { value: e.event })));
  } catch {
    // Suggestions only, as above.
  }
}

/** Property names from schema discovery, added to `datalist`: event properties as they are, person
 * properties (`source: "person"`, a scan of the events' persons, so asked for only when wanted) as
 * "person.<name>"; `numeric` keeps those seen as numbers (what sum, avg, ... can use). */
export async function suggestProperties(datalist, { source = "event", numeric = false, signal } = {}) {
  try {
    const found = await api("/api/v1/analytics/properties", { query: { source, limit: 200 }, signal });
    const usable = found.properties.filter((p) => !numeric || p.type === "number" || (p.kinds?.number ?? 0) > 0);
    datalist.append(...usable.map((p) => h("option", { value: source === "person" ? `person.${p.property}` : p.property })));
  } catch {
    // Suggestions only, as above.
  }
}
