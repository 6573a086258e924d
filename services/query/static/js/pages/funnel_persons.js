// The persons at a funnel step: POST /api/v1/analytics/funnel/persons with the funnel's own body, those
// who converted there or dropped just before it, a page at a time through the API's cursor; each
// links to their page on Persons.

import { api } from "../api.js";
import { h, showEmpty, showError, showLoading } from "../dom.js";
import { count, plural } from "../format.js";
import { funnelBody } from "../views/funnel.js";
import { personsHref } from "./persons.js";

export const PAGE_SIZE = 25;

/** Fill `panel` ({section, body, heading}) with the persons at step `k` (0-based) of `query`. */
export function showStepPersons(panel, query, range, { step, name, status = "converted", signal }) {
  panel.section.hidden = false;
  panel.heading.textContent = `Persons at step ${step + 1}: ${name}`;
  const toggle = h("div", { class: "chart-kind person-status", role: "group", "aria-label": "Which persons" });
  const list = h("ul", { class: "step-persons-list", "aria-live": "polite" });
  const note = h("p", { class: "step-persons-status", role: "status" });
  const more = h("button", { type: "button", class: "button", id: "step-persons-more", hidden: true }, "Show more");
  const results = h("div", { class: "step-persons-results" });
  const choose = (next) => showStepPersons(panel, query, range, { step, name, status: next, signal });
  for (const [value, label] of [["converted", "Converted"], ["dropped", "Dropped"]]) {
    const disabled = value === "dropped" && step === 0; // nobody drops before the first step
    toggle.append(h("button", { type: "button", class: "button chip", dataset: { status: value }, "aria-pressed": String(value === status), disabled, onclick: () => choose(value) }, label));
  }
  panel.body.replaceChildren(toggle, results);
  panel.heading.tabIndex = -1;
  panel.heading.focus();

  let shown = 0;
  const load = async (cursor) => {
    const body = { ...funnelBody(query, range), step, status, limit: PAGE_SIZE, cursor };
    if (!cursor) showLoading(results);
    more.disabled = true;
    let page;
    try {
      page = await api("/api/v1/analytics/funnel/persons", { method: "POST", body, signal });
    } catch (error) {
      if (error.name !== "AbortError") showError(results, error, () => load(cursor));
      return;
    }
    if (!cursor && page.persons.length === 0) {
      return showEmpty(results, status === "converted" ? `Nobody reached step ${step + 1}.` : `Nobody dropped between step ${step} and step ${step + 1}.`);
    }
    if (!cursor) results.replaceChildren(list, note, more);
    results.removeAttribute("aria-busy");
    list.append(...page.persons.map(personItem));
    shown += page.persons.length;
    const what = status === "converted" ? `reached step ${step + 1}` : `dropped before step ${step + 1}`;
    note.textContent = page.next_cursor ? `The first ${count(shown)} persons who ${what}.` : `All ${plural(shown, "person")} who ${what}.`;
    more.hidden = !page.next_cursor;
    more.disabled = false;
    more.onclick = () => load(page.next_cursor);
    if (cursor) list.children[shown - page.persons.length]?.querySelector("a")?.focus();
  };
  load(null);
}

function personItem(person) {
  return h(
    "li",
    { class: "step-person", dataset: { personId: person.person_id, distinctId: person.distinct_id } },
    h("a", { href: personsHref("", person.person_id), "data-link": true, class: "step-person-link" }, person.person_id),
    person.distinct_id !== person.person_id ? h("span", { class: "distinct-id" }, ` as ${person.distinct_id}`) : null,
  );
}
