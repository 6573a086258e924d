// One person: who they are (GET /api/v1/persons/{id}: their distinct ids, properties, first and last
// seen) and their events, newest first, a page at a time (GET /api/v1/persons/{id}/events, following
// the answer's `next` cursor). Times are shown in UTC, as the API gives them.

import { api } from "../api.js";
import { csvButton, csvName } from "../csv.js";
import { h, panel, showContent, showEmpty, showError, showLoading, table } from "../dom.js";
import { clock, count, day, plural } from "../format.js";

export const EVENTS_PAGE = 25;
const PROPERTIES_SHOWN = 8;

/** Append the person of `distinctId` to `main`: their profile and their timeline, side by side. */
export function showPerson(main, distinctId, signal) {
  const profile = panel(h("span", {}, "Person ", h("span", { id: "person-id", class: "person-id" }, distinctId)), { className: "person-profile" });
  const timeline = panel("Events, newest first", { className: "person-timeline" });
  const area = h("div", { class: "columns person-columns", id: "person" }, profile.section, timeline.section);
  main.append(area);
  load({ area, profile, timeline, distinctId, signal });
}

async function load(view) {
  const { area, profile, timeline, distinctId, signal } = view;
  area.classList.remove("failed");
  timeline.section.hidden = false;
  showLoading(profile.body, "Loading the person…");
  showLoading(timeline.body, "Loading their events…");
  const events = eventsPage(distinctId, signal); // at once, beside the person's own request
  events.catch(() => {}); // awaited below, unless the person itself failed
  let person;
  try {
    person = await api(`/api/v1/persons/${encodeURIComponent(distinctId)}`, { signal });
  } catch (error) {
    if (error.name === "AbortError") return;
    area.classList.add("failed"); // one error, said once: the events would fail the same way
    timeline.section.hidden = true;
    showError(profile.body, error, () => load(view));
    return;
  }
  profile.section.querySelector("#person-id").textContent = person.person_id;
  showProfile(profile.body, person, distinctId);
  showTimeline(timeline, person, events, signal);
}

function showProfile(body, person, asked) {
  const facts = h(
    "dl",
    { class: "facts" },
    fact("First seen", "person-first-seen", moment(person.first_seen)),
    fact("Last seen", "person-last-seen", moment(person.last_seen)),
    fact("Events", "person-events-count", count(person.events), { value: person.events }),
  );
  const foundBy = asked !== person.person_id ? h("p", { class: "note", id: "person-found-by" }, `Found by ${asked}, one of their distinct ids.`) : null;
  const ids = h(
    "ul",
    { class: "id-list", id: "person-distinct-ids", "aria-labelledby": "person-ids-title" },
    person.distinct_ids.map((id, k) => h("li", { dataset: { id } }, h("code", {}, id), k === 0 ? h("span", { class: "muted" }, " (the person's key)") : null)),
  );
  showContent(body, foundBy, facts, h("h3", { class: "minor", id: "person-ids-title" }, plural(person.distinct_ids.length, "distinct id")), ids, h("h3", { class: "minor" }, "Properties"), properties(person.properties));
}

function fact(term, id, value, dataset = {}) {
  return h("div", { class: "fact" }, h("dt", {}, term), h("dd", { id, dataset }, value));
}

function properties(values) {
  const names = Object.keys(values);
  if (!names.length) return h("p", { class: "state empty", id: "person-no-properties" }, "No properties yet: identify calls and $set or $set_once on events set them.");
  const rows = names.map((name) => [name, { class: "value", text: shown(values[name]), dataset: { json: JSON.stringify(values[name]) } }]);
  return table({ caption: "Latest $set wins; $set_once keeps the first", head: ["Property", "Value"], rows, className: "person-properties" });
}

/** The timeline's first page (already requested), then older pages on request. */
async function showTimeline(timeline, person, firstPage, signal) {
  const loaded = [];
  const list = h("ol", { class: "timeline", id: "person-events", "aria-label": `Events of ${person.person_id}, newest first` });
  const status = h("p", { class: "timeline-status", id: "person-events-status", role: "status" });
  const more = h("button", { type: "button", class: "button", id: "person-older" }, "Load older events");
  const error = h("div", { class: "timeline-error" });
  timeline.tools.replaceChildren(csvButton(csvName("events", person.person_id), () => eventsTable(loaded)));
  let next = null;

  const add = (page) => {
    const first = appendEvents(list, page.events);
    loaded.push(...page.events);
    next = page.next;
    more.hidden = !next;
    status.textContent = next ? `Showing the newest ${count(loaded.length)} of ${plural(person.events, "event")}.` : `All ${plural(loaded.length, "event")}.`;
    return first;
  };
  const older = async () => {
    more.disabled = true;
    more.textContent = "Loading…";
    error.replaceChildren();
    try {
      const page = await eventsPage(person.person_id, signal, next);
      add(page)?.focus(); // keyboard and screen-reader users carry on from the first older event
    } catch (failure) {
      if (failure.name !== "AbortError") showError(error, failure, older);
    } finally {
      more.disabled = false;
      more.textContent = "Load older events";
    }
  };
  more.addEventListener("click", older);

  let page;
  try {
    page = await firstPage;
  } catch (failure) {
    if (failure.name !== "AbortError") showError(timeline.body, failure, () => showTimeline(timeline, person, eventsPage(person.person_id, signal), signal));
    return;
  }
  if (!page.events.length) return showEmpty(timeline.body, "No events stored for this person.");
  add(page);
  showContent(timeline.body, list, status, error, more);
}

/** A page of the person's events, newest first, older than the cursor `before` (null: the newest). */
function eventsPage(distinctId, signal, before = null) {
  return api(`/api/v1/persons/${encodeURIComponent(distinctId)}/events`, { query: { limit: EVENTS_PAGE, before }, signal });
}

/** Add events to the list under their day's heading; returns the first one added. */
function appendEvents(list, events) {
  let first = null;
  for (const event of events) {
    const key = dayOf(event.timestamp);
    let group = list.lastElementChild;
    if (group?.dataset.day !== key) {
      group = h("li", { class: "timeline-day", dataset: { day: key } }, h("h3", { class: "day-title" }, day(key)), h("ol", { class: "day-events" }));
      list.append(group);
    }
    const item = eventItem(event);
    group.querySelector(".day-events").append(item);
    first ??= item;
  }
  return first;
}

function eventItem(event) {
  const names = Object.keys(event.properties);
  const pairs = names.slice(0, PROPERTIES_SHOWN).map((name) => `${name}: ${shown(event.properties[name])}`);
  if (names.length > PROPERTIES_SHOWN) pairs.push(`and ${names.length - PROPERTIES_SHOWN} more`);
  return h(
    "li",
    { class: "timeline-event", tabindex: "-1", dataset: { eventId: event.event_id } },
    h("time", { datetime: event.timestamp, class: "when" }, clock(event.timestamp, "UTC")),
    h("span", { class: "event" }, event.event),
    h("span", { class: "distinct-id" }, h("span", { class: "visually-hidden" }, "as "), event.distinct_id),
    pairs.length ? h("span", { class: "props" }, pairs.join(" · ")) : null,
  );
}

function eventsTable(events) {
  return {
    header: ["timestamp", "event", "distinct_id", "event_id", "properties"],
    rows: events.map((e) => [e.timestamp, e.event, e.distinct_id, e.event_id, JSON.stringify(e.properties)]),
  };
}

/** A property value as text: strings as they are, anything else as JSON. */
function shown(value) {
  return typeof value === "string" ? value : JSON.stringify(value);
}

function dayOf(iso) {
  return new Date(iso).toISOString().slice(0, 10);
}

/** "10 May 2023, 09:00:00 UTC" inside a <time>, or "–". */
function moment(iso) {
  if (!iso) return "–";
  return h("time", { datetime: iso }, `${day(dayOf(iso))}, ${clock(iso, "UTC")} UTC`);
}
