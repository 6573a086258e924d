// Retention: the cohorts of the range (daily, weekly or monthly) as a heatmap, with the events that
// start a cohort and that count as a return.

import { h, panel } from "../dom.js";
import { saveButton, savedNotice } from "../save.js";
import { suggestEventNames } from "../suggest.js";
import retention, { PERIOD_TYPES } from "../views/retention.js";
import { runInsight } from "../views/run.js";

export default {
  title: "Retention",
  render({ main, params, range, signal, setParams }) {
    const query = retention.fromParams(params);
    const notices = h("div", { class: "notices" });
    const form = cohortForm(query, (next) => setParams(retention.toParams(next)));
    const results = panel("Cohorts", { className: "retention-results" });
    results.tools.append(saveButton(() => ({ type: "retention", name: retention.defaultName(query), query, range }), (saved) => notices.replaceChildren(savedNotice(saved))));
    main.append(h("h1", {}, "Retention"), notices, form.section, results.section);
    suggestEventNames(form.datalist, range, signal);
    runInsight(retention, query, range, { body: results.body, tools: results.tools, signal, name: `retention ${query.period_type}` });
  },
};

function cohortForm(query, onSubmit) {
  const { section, body } = panel("Cohorts of", { className: "retention-form" });
  const datalist = h("datalist", { id: "retention-events" });
  const period = h("select", { id: "retention-period", name: "period" }, Object.entries(PERIOD_TYPES).map(([value, unit]) => h("option", { value, selected: value === query.period_type }, `${unit}s`)));
  const eventInput = (id, value) => h("input", { id, type: "text", value: value || "", list: "retention-events", placeholder: "any event", autocomplete: "off", maxlength: 200 });
  const start = eventInput("retention-start", query.start_event);
  const back = eventInput("retention-return", query.return_event);
  const form = h(
    "form",
    { class: "form" },
    datalist,
    h(
      "div",
      { class: "form-row" },
      h("div", { class: "field" }, h("label", { for: "retention-period" }, "Period"), period),
      h("div", { class: "field" }, h("label", { for: "retention-start" }, "Cohort by first"), start),
      h("div", { class: "field" }, h("label", { for: "retention-return" }, "Returning with"), back),
    ),
    h("p", { class: "note" }, "Each row is the users whose first such event fell in that period; each cell, the share of them active again k periods later."),
    h("button", { type: "submit", class: "button primary" }, "Calculate"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    onSubmit({ period_type: period.value, start_event: start.value.trim() || null, return_event: back.value.trim() || null });
  });
  body.append(form);
  return { section, datalist };
}
