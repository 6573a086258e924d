// Saved insights: every insight saved with any key, opened on its page with its query and range.

import { api } from "../api.js";
import { h, showContent, showEmpty, showError, showLoading, table } from "../dom.js";
import { plural } from "../format.js";
import { TYPE_NAMES, insightHref, savedRange } from "../views/index.js";

export default {
  title: "Saved insights",
  rangeApplies: false,
  rangeNote: "Each saved insight keeps its own date range.",
  render({ main, signal, navigate }) {
    const body = h("div", { class: "panel" });
    main.append(h("h1", {}, "Saved insights"), body);
    load(body, signal, navigate);
  },
};

async function load(body, signal, navigate) {
  showLoading(body);
  let listed;
  try {
    listed = await api("/api/v1/insights", { signal });
  } catch (error) {
    if (error.name !== "AbortError") showError(body, error, () => load(body, signal, navigate));
    return;
  }
  if (!listed.insights.length) {
    showEmpty(body, "No saved insights yet. Use “Save insight” on the Overview, Funnel or Retention page, then arrange them on a dashboard.");
    return;
  }
  const rows = listed.insights.map((insight) => [
    { scope: "row", children: [h("a", { href: insightHref(insight), "data-link": true, class: "insight-link" }, insight.name)] },
    TYPE_NAMES[insight.type] || insight.type,
    savedRange(insight).label,
    new Date(insight.updated_at).toLocaleString(),
    { children: [insight.can_edit ? deleteButton(`/api/v1/insights/${insight.id}`, insight.name, () => load(body, signal, navigate)) : h("span", { class: "muted" }, "saved by another key")] },
  ]);
  showContent(body, table({ caption: plural(listed.insights.length, "saved insight"), head: ["Name", "Type", "Range", "Changed", "Actions"], rows, className: "insights-table" }));
}

/** A delete button that asks once more before it deletes (no modal prompt). */
export function deleteButton(path, name, done) {
  let armed = false;
  let timer;
  const error = h("span", { class: "form-error", role: "alert" });
  const button = h("button", { type: "button", class: "button quiet danger", "aria-label": `Delete ${name}` }, "Delete");
  button.addEventListener("click", async () => {
    if (!armed) {
      armed = true;
      button.textContent = "Confirm delete";
      timer = setTimeout(() => ((armed = false), (button.textContent = "Delete")), 6000);
      return;
    }
    clearTimeout(timer);
    button.disabled = true;
    try {
      await api(path, { method: "DELETE" });
      done();
    } catch (failure) {
      button.disabled = false;
      error.textContent = failure.message;
    }
  });
  return h("span", { class: "delete" }, button, error);
}
