// Building DOM nodes from text, never from markup (event names and properties are user data), and the loading,
// empty and error states every panel shares.

/** An element: props set attributes, properties (`hidden`, `value`...), `class`, `text`, `dataset`
 * and `on<event>` listeners; children are nodes or text. */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  el.append(...nodes(children));
  return el;
}

function nodes(children) {
  return children
    .flat(Infinity)
    .filter((c) => c !== null && c !== undefined && c !== false)
    .map((c) => (c instanceof Node ? c : document.createTextNode(String(c))));
}

/** A titled panel: returns the section and the element its content goes in. */
export function panel(title, { actions = [], headingLevel = 2, className = "" } = {}) {
  const heading = h(`h${headingLevel}`, { class: "panel-title" }, title);
  const tools = h("div", { class: "panel-actions" }, actions);
  const body = h("div", { class: "panel-body" });
  const section = h("section", { class: `panel ${className}`.trim() }, h("header", { class: "panel-head" }, heading, tools), body);
  return { section, body, tools, heading };
}

export function showLoading(el, text = "Loading…") {
  el.setAttribute("aria-busy", "true");
  el.replaceChildren(h("p", { class: "state loading", role: "status" }, text));
}

export function showEmpty(el, text, ...extra) {
  el.removeAttribute("aria-busy");
  el.replaceChildren(h("div", { class: "state empty", role: "status" }, h("p", {}, text), ...extra));
}

/** An error in words, with a retry button when the caller can retry. */
export function showError(el, error, retry) {
  el.removeAttribute("aria-busy");
  const message = error?.message || String(error);
  el.replaceChildren(
    h(
      "div",
      { class: "state error", role: "alert" },
      h("p", {}, message),
      retry ? h("button", { type: "button", class: "button", onclick: retry }, "Try again") : null,
    ),
  );
}

export function showContent(el, ...children) {
  el.removeAttribute("aria-busy");
  el.replaceChildren(...nodes(children));
}

/** A table from a header row and rows of cells (a cell is text, a node, or {text, class, ...props}). */
export function table({ caption, head, rows, className = "" }) {
  const cell = (tag, value) => {
    if (value instanceof Node || typeof value !== "object" || value === null) return h(tag, {}, value ?? "");
    const { text, children = [], ...props } = value;
    return h(tag, props, text ?? "", children);
  };
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: className },
      caption ? h("caption", {}, caption) : null,
      h("thead", {}, h("tr", {}, head.map((c) => cell("th", typeof c === "object" ? c : { text: c, scope: "col" })))),
      h("tbody", {}, rows.map((row) => h("tr", {}, row.map((c, i) => cell(i === 0 ? "th" : "td", i === 0 && typeof c !== "object" ? { text: c, scope: "row" } : c))))),
    ),
  );
}
