// "Save insight": name it, keep its range relative (last N days, evaluated when opened) or fixed,
// and POST /api/v1/insights. Resolves to the saved insight, or null when cancelled.

import { api } from "./api.js";
import { h } from "./dom.js";

export function saveButton(getInsight, onSaved) {
  return h(
    "button",
    {
      type: "button",
      class: "button save",
      onclick: async () => {
        const draft = getInsight();
        if (!draft) return;
        const saved = await openSaveDialog(draft);
        if (saved) onSaved?.(saved);
      },
    },
    "Save insight",
  );
}

/** draft: {type, name, query, range} */
export function openSaveDialog(draft) {
  const dialog = document.getElementById("save-dialog");
  const form = document.getElementById("save-form");
  const error = document.getElementById("save-error");
  const relative = form.querySelector('[value="relative"]');
  form.elements.name.value = draft.name;
  error.textContent = "";
  relative.disabled = !draft.range.lastDays;
  relative.checked = Boolean(draft.range.lastDays);
  form.querySelector('[value="fixed"]').checked = !draft.range.lastDays;
  document.getElementById("save-relative-label").textContent = draft.range.lastDays
    ? `Last ${draft.range.lastDays} days, counted from the day it is opened`
    : "Relative (choose a preset range first)";
  document.getElementById("save-fixed-label").textContent = `Always ${draft.range.start} – ${draft.range.end}`;
  dialog.showModal();
  return new Promise((resolve) => {
    const controller = new AbortController();
    const finish = (value) => {
      controller.abort();
      if (dialog.open) dialog.close();
      resolve(value);
    };
    form.addEventListener(
      "submit",
      async (event) => {
        event.preventDefault();
        const body = {
          name: form.elements.name.value,
          type: draft.type,
          query: draft.query,
          date_range: relative.checked ? { last_days: draft.range.lastDays } : { start_date: draft.range.start, end_date: draft.range.end },
          timezone: draft.range.timezone || "UTC",
        };
        try {
          finish(await api("/api/v1/insights", { method: "POST", body }));
        } catch (failure) {
          error.textContent = failure.message;
        }
      },
      { signal: controller.signal },
    );
    document.getElementById("save-cancel").addEventListener("click", () => finish(null), { signal: controller.signal });
    dialog.addEventListener("cancel", () => finish(null), { signal: controller.signal });
  });
}

/** A status line saying what was saved, with a link to the saved insights. */
export function savedNotice(saved) {
  return h("p", { class: "notice", role: "status" }, `Saved “${saved.name}”. `, h("a", { href: "/insights", "data-link": true }, "See saved insights"), ".");
}
