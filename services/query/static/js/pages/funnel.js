// Funnel: the form (funnel_form.js), the conversion per step as bars and tables, the time to convert
// as a histogram (its own request), and the persons at a step when its name is clicked.

import { h, panel, showEmpty } from "../dom.js";
import { saveButton, savedNotice } from "../save.js";
import { suggestEventNames } from "../suggest.js";
import funnel from "../views/funnel.js";
import timeToConvert from "../views/funnel_time.js";
import { runInsight } from "../views/run.js";
import { MIN_STEPS, stepsForm } from "./funnel_form.js";
import { showStepPersons } from "./funnel_persons.js";

export default {
  title: "Funnel",
  render({ main, params, range, signal, setParams }) {
    const query = funnel.fromParams(params);
    const notices = h("div", { class: "notices" });
    const form = stepsForm(query, (next) => setParams({ ...funnel.toParams(next), q: null }));
    const results = panel("Conversion", { className: "funnel-results" });
    const persons = panel("Persons at a step", { className: "step-persons" });
    persons.section.hidden = true;
    const time = panel("Time to convert", { className: "time-results" });
    main.append(h("h1", {}, "Funnel"), notices, form.section, results.section, persons.section);
    suggestEventNames(form.datalist, range, signal);
    if (query.steps.length < MIN_STEPS) {
      showEmpty(results.body, "Choose at least two steps, then Calculate.");
      return;
    }
    main.append(time.section);
    results.tools.append(saveButton(() => ({ type: "funnel", name: funnel.defaultName(query), query, range }), (saved) => notices.replaceChildren(savedNotice(saved))));
    const onStep = (step, name) => showStepPersons(persons, query, range, { step, name, signal });
    runInsight(funnel, query, range, { body: results.body, tools: results.tools, signal, name: `funnel ${funnel.defaultName(query)}`, display: { onStep } });
    runInsight(timeToConvert, query, range, { body: time.body, tools: time.tools, signal, name: `time to convert ${funnel.defaultName(query)}` });
  },
};
