// Funnel: pick 2-20 steps, the conversion window, the mode and a breakdown; the answer as bars and
// tables. (Exclusions, time to convert and the persons at a step join with the deeper funnel API.)

import { h, panel, showEmpty } from "../dom.js";
import { saveButton, savedNotice } from "../save.js";
import { suggestEventNames } from "../suggest.js";
import funnel, { DEFAULT_WINDOW_SECONDS, MODES } from "../views/funnel.js";
import { runInsight } from "../views/run.js";

const MIN_STEPS = 2;
const MAX_STEPS = 20;
const WINDOW_UNITS = [["m", "minutes", 60], ["h", "hours", 3600], ["d", "days", 86400], ["w", "weeks", 604800]];

export default {
  title: "Funnel",
  render({ main, params, range, signal, setParams }) {
    const query = funnel.fromParams(params);
    const notices = h("div", { class: "notices" });
    const form = stepsForm(query, (next) => setParams({ ...funnel.toParams(next), q: null }));
    const results = panel("Conversion", { className: "funnel-results" });
    main.append(h("h1", {}, "Funnel"), notices, form.section, results.section);
    suggestEventNames(form.datalist, range, signal);
    if (query.steps.length < MIN_STEPS) {
      showEmpty(results.body, "Choose at least two steps, then Calculate.");
      return;
    }
    results.tools.append(saveButton(() => ({ type: "funnel", name: funnel.defaultName(query), query, range }), (saved) => notices.replaceChildren(savedNotice(saved))));
    runInsight(funnel, query, range, { body: results.body, tools: results.tools, signal, name: `funnel ${funnel.defaultName(query)}` });
  },
};

function stepsForm(query, onSubmit) {
  const { section, body } = panel("Steps", { className: "funnel-form" });
  const datalist = h("datalist", { id: "event-names" });
  const list = h("ol", { class: "step-inputs" });
  const error = h("p", { class: "form-error", role: "alert" });
  const addButton = h("button", { type: "button", class: "button quiet", onclick: () => addStep("", true) }, "Add step");

  const renumber = () => {
    [...list.children].forEach((item, k) => {
      item.querySelector("label").textContent = `Step ${k + 1}`;
      item.querySelector("input").id = `step-${k + 1}`;
      item.querySelector("label").htmlFor = `step-${k + 1}`;
      item.querySelector("button").setAttribute("aria-label", `Remove step ${k + 1}`);
      item.querySelector("button").disabled = list.children.length <= MIN_STEPS;
    });
    addButton.disabled = list.children.length >= MAX_STEPS;
  };
  const addStep = (value, focus = false) => {
    const input = h("input", { type: "text", name: "step", value, list: "event-names", autocomplete: "off", required: true, maxlength: 200 });
    const item = h("li", { class: "step-input" }, h("label", {}, "Step"), input, h("button", { type: "button", class: "button quiet", onclick: () => (item.remove(), renumber()) }, "Remove"));
    list.append(item);
    renumber();
    if (focus) input.focus();
  };
  const steps = query.steps.map((s) => s.event);
  while (steps.length < MIN_STEPS) steps.push("");
  steps.forEach((s) => addStep(s));

  const seconds = query.window_seconds || DEFAULT_WINDOW_SECONDS;
  const [unit, , size] = [...WINDOW_UNITS].reverse().find(([, , s]) => seconds % s === 0) || WINDOW_UNITS[0];
  const windowValue = h("input", { type: "number", name: "window", id: "funnel-window", min: 1, step: 1, required: true, value: String(seconds / size) });
  const windowUnit = h("select", { name: "unit", "aria-label": "Window unit" }, WINDOW_UNITS.map(([u, label]) => h("option", { value: u, selected: u === unit }, label)));
  const mode = h("select", { name: "mode", id: "funnel-mode" }, Object.entries(MODES).map(([value, label]) => h("option", { value, selected: value === (query.mode || "ordered") }, label)));
  const breakdown = h("input", { type: "text", name: "breakdown", id: "funnel-breakdown", value: query.breakdown || "", placeholder: "e.g. plan", autocomplete: "off", maxlength: 200 });
  const filtered = (query.filters?.length ?? 0) > 0 || query.steps.some((s) => s.filters?.length);

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
    filtered ? h("p", { class: "note" }, "This funnel has property filters from its saved insight; calculating it again from this form leaves them out.") : null,
    error,
    h("button", { type: "submit", class: "button primary" }, "Calculate"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const names = [...list.querySelectorAll("input")].map((i) => i.value.trim());
    if (names.some((n) => !n)) return (error.textContent = "Every step needs an event name (or remove the empty step).");
    const factor = WINDOW_UNITS.find(([u]) => u === windowUnit.value)[2];
    const windowSeconds = Number(windowValue.value) * factor;
    if (!Number.isInteger(windowSeconds) || windowSeconds < 1) return (error.textContent = "The window must be a whole number of at least 1.");
    error.textContent = "";
    onSubmit({ steps: names.map((event) => ({ event, filters: [] })), window_seconds: windowSeconds, mode: mode.value, breakdown: breakdown.value.trim() || null });
  });
  body.append(form);
  return { section, datalist };
}
