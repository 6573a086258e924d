// The pages and their paths (services/query/web.py serves index.html at the same paths).

import { dashboardList, dashboardPage } from "./pages/dashboards.js";
import funnel from "./pages/funnel.js";
import insights from "./pages/insights.js";
import livePage from "./pages/live.js";
import overview from "./pages/overview.js";
import persons from "./pages/persons.js";
import retention from "./pages/retention.js";
import { notFound, soon } from "./pages/soon.js";

export const PAGES = [
  { path: "/", label: "Overview", page: overview },
  { path: "/trends", label: "Trends", soon: true, page: soon("Trends", "Trends of any event over time, with breakdowns and comparisons, are coming.") },
  { path: "/funnel", label: "Funnel", page: funnel },
  { path: "/retention", label: "Retention", page: retention },
  { path: "/live", label: "Live", page: livePage },
  { path: "/persons", label: "Persons", page: persons },
  { path: "/insights", label: "Saved insights", page: insights },
  { path: "/dashboards", label: "Dashboards", page: dashboardList },
];

export function pageFor(pathname) {
  const exact = PAGES.find((p) => p.path === pathname);
  if (exact) return { page: exact.page };
  const dashboard = /^\/dashboards\/([^/]+)$/.exec(pathname);
  if (dashboard) return { page: dashboardPage, id: decodeURIComponent(dashboard[1]) };
  return { page: notFound };
}
