// The ETL metrics' short labels and units (the API's /metrics list has the long descriptions).

export const METRICS = {
  dau: { label: "Daily active users", unit: "users" },
  wau: { label: "Weekly active users", unit: "users" },
  mau: { label: "Monthly active users", unit: "users" },
  new_users: { label: "New users", unit: "users" },
  events: { label: "Events", unit: "events" },
  revenue: { label: "Revenue", unit: "currency" },
  arpu: { label: "Revenue per active user", unit: "currency" },
  stickiness: { label: "Stickiness (DAU / MAU)", unit: "ratio" },
  mrr: { label: "Monthly recurring revenue", unit: "currency" },
  active_subscriptions: { label: "Active subscriptions", unit: "subscriptions" },
  churned_subscriptions: { label: "Churned subscriptions", unit: "subscriptions" },
};

export function metricLabel(name) {
  return METRICS[name]?.label || name.replaceAll("_", " ");
}

export function metricUnit(name, fallback = "") {
  return METRICS[name]?.unit || fallback;
}
