// Persons: search by the start of a distinct id or an email, then one person's page (person.js). The
// URL holds both: `/persons?q=ada` lists the matches, `&person=<id>` opens one of them.

import { api } from "../api.js";
import { h, panel, showContent, showEmpty, showError, showLoading, table } from "../dom.js";
import { plural } from "../format.js";
import { showPerson } from "./person.js";

export const SEARCH_LIMIT = 25;
const IDS_SHOWN = 3;

export default {
  title: "Persons",
  rangeApplies: false,
  rangeNote: "A person's page shows all of their events; the date range does not apply here.",
  render({ main, params, signal, setParams }) {
    const q = params.get("q") || "";
    const person = params.get("person");
    main.append(h("h1", {}, "Persons"), searchForm(q, (text) => setParams({ q: text, person: null })));
    if (person) {
      const back = personsHref(q);
      main.append(h("p", { class: "back" }, h("a", { href: back, "data-link": true, id: "back-to-results" }, q ? `← Persons matching “${q}”` : "← All persons")));
      showPerson(main, person, signal);
      return;
    }
    const results = panel(q ? `Matching “${q}”` : "All persons", { className: "person-results" });
    results.section.setAttribute("aria-labelledby", "person-results-title");
    results.heading.id = "person-results-title";
    main.append(results.section);
    search(results.body, q, signal);
  },
};

/** The page of the persons matching `q` (every person, in id order, when empty). */
export function personsHref(q, person = null) {
  const params = new URLSearchParams();
  if (q) params.set("q", q);
  if (person) params.set("person", person);
  const text = params.toString();
  return `/persons${text ? `?${text}` : ""}`;
}

function searchForm(q, onSearch) {
  const input = h("input", {
    id: "person-search",
    type: "search",
    name: "q",
    value: q,
    maxlength: 200,
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "anon-7, u-42, ada@example.com",
    "aria-describedby": "person-search-help",
  });
  const form = h(
    "form",
    { class: "panel form person-search", role: "search", "aria-label": "Persons" },
    h("label", { for: "person-search" }, "Find a person"),
    h("div", { class: "inline" }, input, h("button", { type: "submit", class: "button primary" }, "Search")),
    h("p", { class: "note", id: "person-search-help" }, "The start of one of their distinct ids or of their email. Empty lists everyone."),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    onSearch(input.value.trim());
  });
  return form;
}

async function search(body, q, signal) {
  showLoading(body, q ? `Searching for “${q}”…` : "Loading persons…");
  let found;
  try {
    found = await api("/api/v1/persons", { query: { search: q, limit: SEARCH_LIMIT }, signal });
  } catch (error) {
    if (error.name !== "AbortError") showError(body, error, () => search(body, q, signal));
    return;
  }
  if (!found.persons.length) {
    const text = q ? `No person has a distinct id or an email starting with “${q}”.` : "No persons yet: they appear once events arrive.";
    showEmpty(body, text, q ? h("p", {}, "Search is by the start of the text and case-sensitive.") : null);
    return;
  }
  const rows = found.persons.map((match) => [
    { scope: "row", children: [h("a", { href: personsHref(q, match.person_id), "data-link": true, class: "person-link" }, match.person_id)] },
    { class: "distinct-ids", children: [idsText(match.distinct_ids)] },
    match.email ?? { class: "muted", text: "–" },
  ]);
  const more = q ? "type more of the id or email to narrow them down" : "search to find the others";
  const caption = found.persons.length === SEARCH_LIMIT ? `The first ${SEARCH_LIMIT} persons by id; ${more}` : plural(found.persons.length, "person");
  showContent(body, table({ caption, head: ["Person", "Distinct ids", "Email"], rows, className: "persons-table" }));
}

/** "a-7, u-42" or "a-7, a-8, u-42 and 2 more". */
function idsText(ids) {
  const shown = ids.slice(0, IDS_SHOWN).join(", ");
  return ids.length > IDS_SHOWN ? `${shown} and ${ids.length - IDS_SHOWN} more` : shown;
}
