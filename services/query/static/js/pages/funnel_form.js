// The funnel's form: 2-20 steps, the window (a value and the API's unit), the step order, a breakdown
// and exclusions (an event between two steps). Submitting gives the query; the page puts it in the URL.

import { h, panel } from "../dom.js";
import { DEFAULT_WINDOW, MODES, windowOf } from "../views/funnel.js";

export const MIN_STEPS = 2;
export const MAX_STEPS = 20;
const MAX_EXCLUSIONS = 10;
const UNIT_LABELS = [["minute", "minutes"], ["hour", "hours"], ["day", "days"], ["week", "weeks"], ["month", "months"]];

export function stepsForm(query, onSubmit) {
  const { section, body } = panel("Steps", { className: "funnel-form" });
  const datalist = h("datalist", { id: "event-names" });
  const list = h("ol", { class: "step-inputs" });
  const error = h("p", { class: "form-error", role: "alert" });
  const addButton = h("button", { type: "button", class: "button quiet", id: "add-step", onclick: () => addStep("", true) }, "Add step");
  const exclusions = exclusionsEditor(query.exclusions ?? [], () => list.children.length);

  const renumber = () => {
    [...list.children].forEach((item, k) => {
      item.querySelector("label").textContent = `Step ${k + 1}`;
      item.querySelector("input").id = `step-${k + 1}`;
      item.querySelector("label").htmlFor = `step-${k + 1}`;
      item.querySelector("button").setAttribute("aria-label", `Remove step ${k + 1}`);
      item.querySelector("button").disabled = list.children.length <= MIN_STEPS;
    });
    addButton.disabled = list.children.length >= MAX_STEPS;
    exclusions.renumber();
  };
  const addStep = (value, focus = false) => {
    const input = h("input", { type: "text", name: "step", value, list: "event-names", autocomplete: "off", required: true, maxlength: 200 });
    const item = h("li", { class: "step-input" }, h("label", {}, "Step"), input, h("button", { type: "button", class: "button quiet", onclick: () => (item.remove(), renumber()) }, "Remove"));
    list.append(item);
    renumber();
    if (focus) input.focus();
  };
  const steps = query.steps.map((s) => (typeof s === "string" ? s : s.event));
  while (steps.length < MIN_STEPS) steps.push("");
  steps.forEach((s) => addStep(s));

  const current = windowOf(query);
  const window = current.seconds ? { value: current.seconds / 60, unit: "minute" } : current;
  const windowValue = h("input", { type: "number", name: "window", id: "funnel-window", min: 1, step: 1, required: true, value: String(window.value ?? DEFAULT_WINDOW.value) });
  const windowUnit = h("select", { name: "unit", id: "funnel-window-unit", "aria-label": "Window unit" }, UNIT_LABELS.map(([u, label]) => h("option", { value: u, selected: u === window.unit }, label)));
  const mode = h("select", { name: "mode", id: "funnel-mode" }, Object.entries(MODES).map(([value, label]) => h("option", { value, selected: value === (query.mode || "ordered") }, label)));
  const breakdown = h("input", { type: "text", name: "breakdown", id: "funnel-breakdown", value: typeof query.breakdown === "string" ? query.breakdown : "", placeholder: "e.g. plan", autocomplete: "off", maxlength: 200 });
  const filtered = (query.filters?.length ?? 0) > 0 || [...query.steps, ...(query.exclusions ?? [])].some((s) => s.filters?.length);

  const form = h(
    "form",
    { class: "form" },
    datalist,
    list,
    addButton,
    h(
      "div",
      { class: "form-row" },
      h("div", { class: "field" }, h("label", { for: "funnel-window" }, "Conversion window"), h("div", { class: "inline" }, windowValue, windowUnit)),
      h("div", { class: "field" }, h("label", { for: "funnel-mode" }, "Step order"), mode),
      h("div", { class: "field" }, h("label", { for: "funnel-breakdown" }, "Break down by property"), breakdown),
    ),
    exclusions.fieldset,
    filtered ? h("p", { class: "note" }, "This funnel has property filters from its saved insight; calculating it again from this form leaves them out.") : null,
    error,
    h("button", { type: "submit", class: "button primary" }, "Calculate"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const names = [...list.querySelectorAll("input")].map((i) => i.value.trim());
    if (names.some((n) => !n)) return (error.textContent = "Every step needs an event name (or remove the empty step).");
    const value = Number(windowValue.value);
    if (!Number.isInteger(value) || value < 1) return (error.textContent = "The window must be a whole number of at least 1.");
    const excluded = exclusions.read(names.length);
    if (typeof excluded === "string") return (error.textContent = excluded);
    error.textContent = "";
    onSubmit({
      steps: names.map((name) => ({ event: name, filters: [] })),
      window: { value, unit: windowUnit.value },
      mode: mode.value,
      breakdown: breakdown.value.trim() || null,
      exclusions: excluded,
    });
  });
  body.append(form);
  return { section, datalist };
}

/** Rows of (event, after step, before step); `stepCount()` is how many steps the form has now. */
function exclusionsEditor(initial, stepCount) {
  const rows = h("ol", { class: "exclusion-inputs" });
  const add = h("button", { type: "button", class: "button quiet", id: "add-exclusion", onclick: () => addRow({ event: "", from_step: 0, to_step: stepCount() - 1 }, true) }, "Add exclusion");
  const stepSelect = (label, selected) => {
    const select = h("select", { "aria-label": label });
    select.dataset.selected = selected;
    return select;
  };
  const fillSteps = (select, from) => {
    const chosen = Number(select.value || select.dataset.selected);
    select.replaceChildren(...Array.from({ length: stepCount() }, (_, k) => h("option", { value: k, selected: k === Math.min(chosen, stepCount() - 1) }, `step ${k + 1}`)).filter((_, k) => (from ? k < stepCount() - 1 : k > 0)));
  };
  const renumber = () => {
    [...rows.children].forEach((row, k) => {
      const [event, from, to] = row.querySelectorAll("input, select");
      event.setAttribute("aria-label", `Exclusion ${k + 1}: event`);
      from.setAttribute("aria-label", `Exclusion ${k + 1}: after step`);
      to.setAttribute("aria-label", `Exclusion ${k + 1}: before step`);
      fillSteps(from, true);
      fillSteps(to, false);
      row.querySelector("button").setAttribute("aria-label", `Remove exclusion ${k + 1}`);
    });
    add.disabled = rows.children.length >= MAX_EXCLUSIONS;
  };
  const addRow = (exclusion, focus = false) => {
    const event = h("input", { type: "text", class: "exclusion-event", value: exclusion.event, list: "event-names", autocomplete: "off", maxlength: 200, placeholder: "event" });
    const from = stepSelect("after step", exclusion.from_step);
    from.classList.add("exclusion-from");
    const to = stepSelect("before step", exclusion.to_step);
    to.classList.add("exclusion-to");
    const row = h("li", { class: "exclusion-input" }, event, h("span", { class: "between" }, "after"), from, h("span", { class: "between" }, "before"), to, h("button", { type: "button", class: "button quiet", onclick: () => (row.remove(), renumber(), add.focus()) }, "Remove"));
    rows.append(row);
    renumber();
    if (focus) event.focus();
  };
  initial.forEach((e) => addRow(e));
  const fieldset = h(
    "fieldset",
    { class: "exclusions" },
    h("legend", {}, "Exclusions"),
    h("p", { class: "hint" }, "Leave out a person's path when this event happens between the two steps."),
    rows,
    add,
  );
  /** The exclusions, 0-based as the API counts steps, or what is wrong with them. */
  const read = (steps) => {
    const found = [];
    for (const [k, row] of [...rows.children].entries()) {
      const [event, from, to] = row.querySelectorAll("input, select");
      const exclusion = { event: event.value.trim(), filters: [], from_step: Number(from.value), to_step: Number(to.value) };
      if (!exclusion.event) return `Exclusion ${k + 1} needs an event name (or remove it).`;
      if (exclusion.from_step >= exclusion.to_step || exclusion.to_step >= steps) return `Exclusion ${k + 1}: its first step must come before its second.`;
      found.push(exclusion);
    }
    return found;
  };
  return { fieldset, renumber, read };
}
