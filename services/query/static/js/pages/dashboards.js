// Dashboards: named arrangements of saved insights. The list creates them; a dashboard's own page
// (its link can be shared with anyone holding a read key) draws each tile with one request, in the
// tile's saved range unless the query bar sets one for all of them.

import { api } from "../api.js";
import { h, panel, showContent, showEmpty, showError, showLoading, table } from "../dom.js";
import { plural } from "../format.js";
import { TYPE_NAMES, VIEWS, insightHref, savedRange } from "../views/index.js";
import { runInsight } from "../views/run.js";
import { deleteButton } from "./insights.js";

export const dashboardList = {
  title: "Dashboards",
  rangeApplies: false,
  rangeNote: "Each dashboard tile keeps its own date range.",
  render({ main, signal, navigate }) {
    const body = h("div", { class: "panel" });
    main.append(h("h1", {}, "Dashboards"), createForm(navigate), body);
    listDashboards(body, signal);
  },
};

function createForm(navigate) {
  const name = h("input", { id: "new-dashboard-name", type: "text", required: true, maxlength: 200, autocomplete: "off" });
  const error = h("p", { class: "form-error", role: "alert" });
  const form = h("form", { class: "panel form inline-form", id: "new-dashboard" }, h("label", { for: "new-dashboard-name" }, "New dashboard"), name, h("button", { type: "submit", class: "button primary" }, "Create"), error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const created = await api("/api/v1/dashboards", { method: "POST", body: { name: name.value, tiles: [] } });
      navigate(`/dashboards/${created.id}`);
    } catch (failure) {
      error.textContent = failure.message;
    }
  });
  return form;
}

async function listDashboards(body, signal) {
  showLoading(body);
  let listed;
  try {
    listed = await api("/api/v1/dashboards", { signal });
  } catch (error) {
    if (error.name !== "AbortError") showError(body, error, () => listDashboards(body, signal));
    return;
  }
  if (!listed.dashboards.length) return showEmpty(body, "No dashboards yet. Create one above, then add saved insights to it.");
  const rows = listed.dashboards.map((d) => [
    { scope: "row", children: [h("a", { href: `/dashboards/${d.id}`, "data-link": true, class: "dashboard-link" }, d.name)] },
    { class: "num", text: String(d.tiles) },
    new Date(d.updated_at).toLocaleString(),
    { children: [d.can_edit ? deleteButton(`/api/v1/dashboards/${d.id}`, d.name, () => listDashboards(body, signal)) : h("span", { class: "muted" }, "made by another key")] },
  ]);
  showContent(body, table({ caption: plural(listed.dashboards.length, "dashboard"), head: ["Name", { text: "Tiles", scope: "col", class: "num" }, "Changed", "Actions"], rows, className: "dashboards-table" }));
}

export const dashboardPage = {
  title: "Dashboard",
  defaultRange: null,
  render({ main, id, range, signal, navigate }) {
    const heading = h("h1", {}, "Dashboard");
    const body = h("div", { class: "dashboard" });
    main.append(heading, body);
    openDashboard({ id, range, signal, navigate, heading, body });
  },
};

async function openDashboard(ctx) {
  const { id, signal, heading, body } = ctx;
  showLoading(body);
  let dashboard;
  try {
    dashboard = await api(`/api/v1/dashboards/${encodeURIComponent(id)}`, { signal });
  } catch (error) {
    if (error.name === "AbortError") return;
    if (error.status === 404 || error.status === 422) return showEmpty(body, "This dashboard does not exist, or it was deleted.", h("a", { href: "/dashboards", "data-link": true }, "All dashboards"));
    return showError(body, error, () => openDashboard(ctx));
  }
  heading.textContent = dashboard.name;
  document.title = `${dashboard.name} · Analytics`;
  const save = async (tiles, name = dashboard.name) => {
    await api(`/api/v1/dashboards/${dashboard.id}`, { method: "PUT", body: { name, tiles: tiles.map(({ insight_id, width }) => ({ insight_id, width })) } });
    ctx.navigate(location.pathname + location.search, { replace: true });
  };
  const grid = h("div", { class: "tiles" });
  showContent(body, toolbar(dashboard, save), dashboard.can_edit ? await addTileForm(dashboard, save, signal) : null, grid);
  if (!dashboard.tiles.length) grid.append(h("p", { class: "state empty" }, dashboard.can_edit ? "No tiles yet: add a saved insight above." : "This dashboard has no tiles yet."));
  dashboard.tiles.forEach((tile, index) => grid.append(tileElement(dashboard, tile, index, save, ctx)));
}

function toolbar(dashboard, save) {
  const link = `${location.origin}/dashboards/${dashboard.id}`;
  const status = h("span", { class: "muted", role: "status" });
  const field = h("input", { type: "text", readOnly: true, value: link, id: "share-link", class: "share-link", onfocus: (e) => e.target.select() });
  const copy = h("button", { type: "button", class: "button quiet", onclick: async () => {
    try {
      await navigator.clipboard.writeText(link);
      status.textContent = "Link copied.";
    } catch {
      field.select();
      status.textContent = "Select the link and copy it.";
    }
  } }, "Copy link");
  const tools = [h("label", { for: "share-link" }, "Share with anyone who has a read key"), field, copy, status];
  if (dashboard.can_edit) {
    const rename = h("button", { type: "button", class: "button quiet", onclick: () => {
      const name = window.prompt("Rename the dashboard", dashboard.name);
      if (name && name.trim()) save(dashboard.tiles, name.trim());
    } }, "Rename");
    tools.push(rename);
  }
  return h("div", { class: "panel toolbar" }, tools);
}

async function addTileForm(dashboard, save, signal) {
  let listed;
  try {
    listed = await api("/api/v1/insights", { signal });
  } catch (error) {
    return h("p", { class: "form-error", role: "alert" }, error.message);
  }
  if (!listed.insights.length) return h("p", { class: "note" }, "Save an insight first (Overview, Funnel or Retention), then add it here.");
  const choice = h("select", { id: "add-insight" }, listed.insights.map((i) => h("option", { value: i.id }, `${i.name} (${TYPE_NAMES[i.type] || i.type})`)));
  const width = h("select", { id: "add-width", "aria-label": "Tile width" }, h("option", { value: "half" }, "Half width"), h("option", { value: "full" }, "Full width"));
  const error = h("p", { class: "form-error", role: "alert" });
  const form = h("form", { class: "panel form inline-form", id: "add-tile" }, h("label", { for: "add-insight" }, "Add a saved insight"), choice, width, h("button", { type: "submit", class: "button primary" }, "Add"), error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await save([...dashboard.tiles, { insight_id: choice.value, width: width.value }]);
    } catch (failure) {
      error.textContent = failure.message;
    }
  });
  return form;
}

function tileElement(dashboard, tile, index, save, ctx) {
  const insight = tile.insight;
  const title = insight ? h("a", { href: insightHref(insight), "data-link": true }, insight.name) : "Deleted insight";
  const { section, body, tools } = panel(title, { headingLevel: 2, className: `tile ${tile.width}` });
  const move = (to) => {
    const tiles = [...dashboard.tiles];
    tiles.splice(to, 0, tiles.splice(index, 1)[0]);
    return save(tiles);
  };
  if (dashboard.can_edit) {
    const name = insight?.name || "deleted insight";
    tools.append(
      h("button", { type: "button", class: "button quiet small", disabled: index === 0, "aria-label": `Move ${name} earlier`, onclick: () => move(index - 1) }, "←"),
      h("button", { type: "button", class: "button quiet small", disabled: index === dashboard.tiles.length - 1, "aria-label": `Move ${name} later`, onclick: () => move(index + 1) }, "→"),
      h("button", { type: "button", class: "button quiet small", "aria-label": `Show ${name} at ${tile.width === "full" ? "half" : "full"} width`, onclick: () => save(dashboard.tiles.map((t, k) => (k === index ? { ...t, width: t.width === "full" ? "half" : "full" } : t))) }, tile.width === "full" ? "Half width" : "Full width"),
      h("button", { type: "button", class: "button quiet small danger", "aria-label": `Remove ${name} from the dashboard`, onclick: () => save(dashboard.tiles.filter((_, k) => k !== index)) }, "Remove"),
    );
  }
  if (!insight) {
    showEmpty(body, "This insight was deleted; remove the tile.");
    return section;
  }
  const view = VIEWS[insight.type];
  const range = ctx.range || savedRange(insight);
  section.querySelector(".panel-head").after(h("p", { class: "tile-meta" }, `${TYPE_NAMES[insight.type]} · ${range.label}`));
  runInsight(view, insight.query, range, { body, tools, signal: ctx.signal, compact: true, name: insight.name });
  return section;
}
