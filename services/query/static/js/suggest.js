// Event names seen in the range, offered as suggestions in the step and event inputs.

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
