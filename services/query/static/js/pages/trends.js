// Trends: 1-10 series (an event or any event, and a math), the interval, a breakdown, the period
// before and a formula; the answer as lines or bars with every bucket in the table under them.

import { h, panel } from "../dom.js";
import { saveButton, savedNotice } from "../save.js";
import { suggestEvents, suggestProperties } from "../suggest.js";
import trends, { ALL_EVENTS, INTERVALS, MATHS, MAX_SERIES, PROPERTY_MATHS, propertyRef, propertyText } from "../views/trends.js";
import { runInsight } from "../views/run.js";

const LETTERS = "ABCDEFGHIJ";
const MAX_NAME = 200;

export default {
  title: "Trends",
  render({ main, params, range, signal, setParams }) {
    const query = trends.fromParams(params);
    const notices = h("div", { class: "notices" });
    const form = trendForm(query, signal, (next) => setParams({ ...trends.toParams(next), q: null }));
    const results = panel("Trend", { className: "trend-results" });
    const name = trends.defaultName(query).slice(0, MAX_NAME);
    results.tools.append(saveButton(() => ({ type: "trends", name, query, range }), (saved) => notices.replaceChildren(savedNotice(saved))));
    main.append(h("h1", {}, "Trends"), notices, form, results.section);
    const display = { chart: params.get("chart") === "bar" ? "bar" : "line", onChart: keepChartInUrl };
    runInsight(trends, query, range, { body: results.body, tools: results.tools, signal, name: `trend ${name}`, display });
  },
};

/** The chart's kind changes only the drawing, not the answer: the URL follows without a new request. */
function keepChartInUrl(kind) {
  const url = new URL(location.href);
  if (kind === "bar") url.searchParams.set("chart", "bar");
  else url.searchParams.delete("chart");
  history.replaceState(null, "", url);
}

function trendForm(query, signal, onSubmit) {
  const { section, body } = panel("Series", { className: "trend-form" });
  const events = h("datalist", { id: "trend-events" });
  const numeric = h("datalist", { id: "trend-numeric-properties" });
  const properties = h("datalist", { id: "trend-properties" });
  suggestEvents(events, signal);
  suggestProperties(numeric, { numeric: true, signal });
  suggestProperties(properties, { signal });
  let askedPersons = false;
  const personSuggestions = () => {
    if (askedPersons) return;
    askedPersons = true; // person properties are a scan of the events' persons: only when wanted
    suggestProperties(numeric, { source: "person", numeric: true, signal });
    suggestProperties(properties, { source: "person", signal });
  };

  const list = h("ol", { class: "series-inputs" });
  const error = h("p", { class: "form-error", role: "alert" });
  const addButton = h("button", { type: "button", class: "button quiet", id: "add-series", onclick: () => addSeries({ event: "", math: "total" }, true) }, "Add series");
  const renumber = () => {
    [...list.children].forEach((item, k) => {
      const letter = LETTERS[k];
      item.querySelector(".series-letter").textContent = letter;
      item.querySelector(".series-event").setAttribute("aria-label", `Series ${letter}: event`);
      item.querySelector(".series-math").setAttribute("aria-label", `Series ${letter}: math`);
      item.querySelector(".series-property").setAttribute("aria-label", `Series ${letter}: numeric property`);
      const remove = item.querySelector(".remove-series");
      remove.setAttribute("aria-label", `Remove series ${letter}`);
      remove.disabled = list.children.length <= 1;
    });
    addButton.disabled = list.children.length >= MAX_SERIES;
  };
  const addSeries = (series, focus = false) => {
    const event = h("input", { type: "text", class: "series-event", value: series.event || "", list: "trend-events", autocomplete: "off", required: true, maxlength: 200, placeholder: `${ALL_EVENTS} for any event` });
    const math = h("select", { class: "series-math" }, Object.entries(MATHS).map(([value, label]) => h("option", { value, selected: value === (series.math || "total") }, label)));
    const property = h("input", { type: "text", class: "series-property", value: propertyText(series.property), list: "trend-numeric-properties", autocomplete: "off", maxlength: 207, placeholder: "e.g. amount", onfocus: personSuggestions });
    const showProperty = () => {
      property.hidden = !PROPERTY_MATHS.has(math.value);
      property.required = !property.hidden;
    };
    math.addEventListener("change", showProperty);
    showProperty();
    const item = h(
      "li",
      { class: "series-input" },
      h("span", { class: "series-letter", "aria-hidden": "true" }),
      event,
      math,
      property,
      h("button", { type: "button", class: "button quiet remove-series", onclick: () => (item.remove(), renumber()) }, "Remove"),
    );
    list.append(item);
    renumber();
    if (focus) event.focus();
  };
  query.series.forEach((s) => addSeries(s));

  const interval = h("select", { id: "trend-interval", name: "interval" }, Object.entries(INTERVALS).map(([value, label]) => h("option", { value, selected: value === (query.interval || "day") }, label)));
  const breakdown = h("input", { type: "text", id: "trend-breakdown", value: propertyText(query.breakdown), list: "trend-properties", placeholder: "e.g. plan or person.plan", autocomplete: "off", maxlength: 207, onfocus: personSuggestions });
  const compare = h("input", { type: "checkbox", id: "trend-compare", checked: query.compare === "previous_period" });
  const formula = h("input", { type: "text", id: "trend-formula", value: query.formula || "", placeholder: "e.g. A / B", autocomplete: "off", maxlength: 200, "aria-describedby": "trend-formula-help" });
  const extras = (query.filters?.length ?? 0) > 0 || query.series.some((s) => s.filters?.length || s.label);

  const form = h(
    "form",
    { class: "form", "aria-label": "Trend query" },
    events,
    numeric,
    properties,
    list,
    addButton,
    h(
      "div",
      { class: "form-row" },
      h("div", { class: "field" }, h("label", { for: "trend-interval" }, "Interval"), interval),
      h("div", { class: "field" }, h("label", { for: "trend-breakdown" }, "Break down by property"), breakdown),
      h("div", { class: "field" }, h("label", { for: "trend-formula" }, "Formula"), formula, h("span", { class: "hint", id: "trend-formula-help" }, "Series letters with + - * / and parentheses, e.g. (A + B) / C")),
      h("div", { class: "field checkbox" }, h("label", {}, compare, " Compare with the period before")),
    ),
    extras ? h("p", { class: "note" }, "This trend has property filters or series labels from its saved insight; calculating it again from this form leaves them out.") : null,
    error,
    h("button", { type: "submit", class: "button primary" }, "Calculate"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const series = [...list.children].map((item) => ({
      event: item.querySelector(".series-event").value.trim(),
      math: item.querySelector(".series-math").value,
      property: PROPERTY_MATHS.has(item.querySelector(".series-math").value) ? propertyRef(item.querySelector(".series-property").value.trim()) : null,
      filters: [],
    }));
    if (series.some((s) => !s.event)) return (error.textContent = `Every series needs an event name (or ${ALL_EVENTS} for any event), or remove it.`);
    if (series.some((s) => PROPERTY_MATHS.has(s.math) && !s.property)) return (error.textContent = "Sum, average, minimum, maximum and the percentiles need a numeric property.");
    error.textContent = "";
    onSubmit({
      series,
      interval: interval.value,
      breakdown: propertyRef(breakdown.value.trim()),
      compare: compare.checked ? "previous_period" : null,
      formula: formula.value.trim() || null,
      filters: [],
    });
  });
  body.append(form);
  return section;
}
