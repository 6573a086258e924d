// Live: incoming events as a scrolling list (optionally only some event names), the active-users
// counter, whether the connection is up, and how many events the server had to drop for this tab.

import { csvButton } from "../csv.js";
import { h, panel } from "../dom.js";
import { clock, count, decimal } from "../format.js";
import { live, statusText } from "../live.js";
import { personsHref } from "./persons.js";

const MAX_ROWS = 200;

export default {
  title: "Live",
  rangeApplies: false,
  rangeNote: "Live shows events as they arrive; the date range does not apply here.",
  liveEvents: (params) => {
    const names = params.getAll("event").filter(Boolean);
    return names.length ? names : null;
  },
  render({ main, params, signal, setParams }) {
    const names = params.getAll("event").filter(Boolean);
    const received = [];
    let paused = false;

    const status = h("p", { class: "live-status", id: "live-status", role: "status", dataset: { state: live.status.state } }, statusText(live.status));
    const users = h("p", { class: "big", id: "live-active-users" }, live.activeUsers === null ? "–" : count(live.activeUsers));
    const dropped = h("p", { class: "dropped", id: "live-dropped", role: "status" }, droppedText(live.dropped));
    const now = panel("Now", { className: "live-now" });
    now.body.append(status, h("div", { class: "live-figures" }, users, h("p", { class: "label" }, "users active in the last 5 minutes")), dropped);

    const filterInput = h("input", { id: "live-filter", type: "text", value: names.join(", "), placeholder: "all events", autocomplete: "off" });
    const filter = h(
      "form",
      { class: "form inline-form" },
      h("label", { for: "live-filter" }, "Only events named (comma-separated)"),
      filterInput,
      h("button", { type: "submit", class: "button" }, "Apply"),
      names.length ? h("button", { type: "button", class: "button quiet", onclick: () => setParams({ event: null }) }, "Show all") : null,
    );
    filter.addEventListener("submit", (event) => {
      event.preventDefault();
      setParams({ event: filterInput.value.split(",").map((n) => n.trim()).filter(Boolean) });
    });

    const list = h("ol", { class: "live-list", id: "live-list", "aria-label": "Incoming events, newest first" });
    const waiting = h("p", { class: "state empty", id: "live-waiting" }, names.length ? `Waiting for ${names.join(", ")} events…` : "Waiting for events…");
    const pause = h("button", { type: "button", class: "button quiet", "aria-pressed": "false" }, "Pause");
    pause.addEventListener("click", () => {
      paused = !paused;
      pause.setAttribute("aria-pressed", String(paused));
      pause.textContent = paused ? "Resume" : "Pause";
    });
    const events = panel("Incoming events", { className: "live-events" });
    events.tools.append(pause, csvButton("live-events.csv", () => ({ header: ["timestamp", "event", "user_id", "amount"], rows: received.map((e) => [e.timestamp, e.event, e.user_id, e.amount ?? null]) })));
    events.body.append(filter, waiting, list);
    main.append(h("h1", {}, "Live"), h("div", { class: "columns live-columns" }, now.section, events.section));

    live.on("new_event", (event) => {
      received.unshift(event);
      received.length = Math.min(received.length, MAX_ROWS);
      if (paused) return;
      waiting.hidden = true;
      list.prepend(row(event));
      while (list.children.length > MAX_ROWS) list.lastElementChild.remove();
    }, signal);
    live.on("active_users", (n) => (users.textContent = count(n)), signal);
    live.on("dropped", (total) => (dropped.textContent = droppedText(total)), signal);
    live.on("status", (s) => ((status.textContent = statusText(s)), (status.dataset.state = s.state)), signal);
    live.on("server_error", (message) => (dropped.textContent = `The server refused a request: ${message.message}`), signal);
  },
};

function row(event) {
  return h(
    "li",
    { class: "live-event" },
    h("time", { datetime: event.timestamp, class: "when" }, clock(event.timestamp)),
    h("span", { class: "event" }, event.event),
    h("a", { class: "user", href: personsHref("", event.user_id), "data-link": true }, event.user_id),
    event.amount !== undefined ? h("span", { class: "amount" }, decimal(event.amount)) : null,
  );
}

function droppedText(total) {
  return total ? `${count(total)} events were not shown: the server drops what a tab cannot take in time.` : "No events dropped.";
}
