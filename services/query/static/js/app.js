// The dashboard's shell: sign-in, navigation, and the router. The URL holds everything a page shows
// (path, query and range), so reload, back/forward and shared links all work.

import { ApiError, api, onUnauthorized } from "./api.js";
import { h } from "./dom.js";
import { live } from "./live.js";
import { PAGES, pageFor } from "./pages.js";
import { rangeOf, setUpQueryBar, showRange } from "./range.js";
import { currentKey, forgetKey, keepKey } from "./session.js";

const main = document.getElementById("main");
let current = null; // the rendered page's AbortController

/** Go to an in-app URL (push a history entry unless `replace`). */
export function navigate(href, { replace = false } = {}) {
  const url = new URL(href, location.origin);
  if (url.href !== location.href) history[replace ? "replaceState" : "pushState"](null, "", url);
  render({ focus: true });
}

/** Change some of the URL's parameters (null removes one; arrays repeat it) and show the result. */
export function setParams(changes, options = {}) {
  const params = new URLSearchParams(location.search);
  for (const [name, value] of Object.entries(changes)) {
    params.delete(name);
    for (const item of Array.isArray(value) ? value : [value]) {
      if (item !== null && item !== undefined && item !== "") params.append(name, item);
    }
  }
  const text = params.toString();
  navigate(`${location.pathname}${text ? `?${text}` : ""}`, options);
}

function render({ focus = false } = {}) {
  current?.abort();
  current = new AbortController();
  if (!currentKey()) return showSignIn();
  document.body.dataset.signedIn = "true";
  live.start();
  const { page, id } = pageFor(location.pathname);
  const params = new URLSearchParams(location.search);
  const range = rangeOf(params, page.defaultRange === undefined ? "30d" : page.defaultRange);
  showRange(range, { applies: page.rangeApplies !== false, note: page.rangeNote });
  live.subscribe(page.liveEvents ? page.liveEvents(params) : []);
  markNav(location.pathname);
  document.title = `${page.title} · Analytics`;
  main.replaceChildren();
  main.removeAttribute("aria-busy");
  page.render({ main, params, range, id, signal: current.signal, navigate, setParams });
  if (focus) main.focus({ preventScroll: false });
}

function buildNav() {
  const list = document.getElementById("nav");
  list.replaceChildren(
    ...PAGES.map((page) =>
      h("li", {}, h("a", { href: page.path, "data-link": true, dataset: { path: page.path } }, page.label, page.soon ? h("span", { class: "soon" }, " (soon)") : null)),
    ),
  );
}

function markNav(pathname) {
  document.querySelectorAll("#nav a").forEach((link) => {
    const path = link.dataset.path;
    const here = path === "/" ? pathname === "/" : pathname === path || pathname.startsWith(`${path}/`);
    if (here) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  });
}

function showSignIn(message = "") {
  document.body.dataset.signedIn = "false";
  document.title = "Sign in · Analytics";
  const error = h("p", { class: "form-error", id: "signin-error", role: "alert" }, message);
  const input = h("input", { type: "password", name: "key", id: "signin-key", required: true, autocomplete: "off", spellcheck: "false", "aria-describedby": "signin-help signin-error" });
  const form = h(
    "form",
    { class: "signin panel", id: "signin" },
    h("h1", {}, "Sign in"),
    h("p", { id: "signin-help" }, "Use a read or admin access key. It is kept for this browser tab only and sent only to this server."),
    h("label", { for: "signin-key" }, "Access key"),
    input,
    error,
    h("button", { type: "submit", class: "button primary" }, "Sign in"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = input.value.trim();
    error.textContent = "Checking…";
    try {
      await api("/api/v1/insights", { key });
    } catch (failure) {
      error.textContent = signInError(failure);
      input.focus();
      return;
    }
    keepKey(key);
    render({ focus: true });
  });
  main.replaceChildren(form);
  input.focus();
}

function signInError(failure) {
  if (!(failure instanceof ApiError)) return String(failure);
  if (failure.status === 401) return "This key is not known to the server. Check it and try again.";
  if (failure.status === 403) return "This is an ingest key: it can only send events. Sign in with a read or admin key.";
  return failure.message;
}

function signOut(message) {
  forgetKey();
  live.stop();
  current?.abort();
  showSignIn(message);
}

function followLinks(event) {
  const link = event.target.closest("a[href]");
  if (!link || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  if (link.target || link.hasAttribute("download")) return;
  const url = new URL(link.href);
  if (url.origin !== location.origin || url.pathname.startsWith("/api/") || url.pathname.startsWith("/docs")) return;
  event.preventDefault();
  navigate(url.href);
}

buildNav();
setUpQueryBar((changes) => setParams(changes));
document.addEventListener("click", followLinks);
document.getElementById("sign-out").addEventListener("click", () => signOut(""));
window.addEventListener("popstate", () => render({ focus: true }));
onUnauthorized(() => signOut("The server no longer accepts your key; sign in again."));
render();
