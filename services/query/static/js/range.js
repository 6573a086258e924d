// The date range and time zone every page shares: kept in the URL (`range=30d`, or `from`/`to` for
// custom days, and `tz`), resolved to inclusive days in the time zone, edited in the query bar.

export const PRESETS = { "7d": 7, "30d": 30, "90d": 90 };
export const MAX_DAYS = 366;
export const DEFAULT_TIMEZONE = "UTC";
const DAY = /^\d{4}-\d{2}-\d{2}$/;

/** Today's date in a time zone, "2023-03-07". */
export function todayIn(timeZone) {
  return new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" }).format(new Date());
}

export function addDays(iso, days) {
  const date = new Date(`${iso}T00:00:00Z`);
  date.setUTCDate(date.getUTCDate() + days);
  return date.toISOString().slice(0, 10);
}

export function daysBetween(start, end) {
  return Math.round((Date.parse(`${end}T00:00:00Z`) - Date.parse(`${start}T00:00:00Z`)) / 86400000) + 1;
}

function validDay(text) {
  return DAY.test(text ?? "") && !Number.isNaN(Date.parse(`${text}T00:00:00Z`)) && new Date(`${text}T00:00:00Z`).toISOString().startsWith(text);
}

/** The range the URL asks for, or the page's default preset; `error` says why custom days were refused.
 * With no default (a dashboard: each tile keeps its own range) and nothing in the URL: null. */
export function rangeOf(params, defaultPreset = "30d") {
  const timezone = params.get("tz") || DEFAULT_TIMEZONE;
  const today = todayIn(timezone);
  const from = params.get("from");
  const to = params.get("to");
  if (from || to) {
    const error = customError(from, to);
    if (!error) return { preset: "custom", start: from, end: to, timezone, label: `${from} – ${to}` };
    return { ...presetRange(defaultPreset || "30d", today, timezone), error };
  }
  const preset = params.get("range") || defaultPreset;
  if (!preset) return null;
  return presetRange(lastDaysOf(preset) ? preset : "30d", today, timezone);
}

/** "30d" -> 30 (any 1..MAX_DAYS, though the bar offers 7, 30 and 90); null when unreadable. */
export function lastDaysOf(preset) {
  const match = /^(\d{1,3})d$/.exec(preset ?? "");
  const days = match ? Number(match[1]) : 0;
  return days >= 1 && days <= MAX_DAYS ? days : null;
}

function presetRange(preset, today, timezone) {
  const days = lastDaysOf(preset);
  return { preset, start: addDays(today, 1 - days), end: today, timezone, label: `Last ${days} days`, lastDays: days };
}

export function customError(from, to) {
  if (!validDay(from) || !validDay(to)) return "Custom dates must be real days (YYYY-MM-DD).";
  if (to < from) return "The end of the range is before its start.";
  if (daysBetween(from, to) > MAX_DAYS) return `A range covers at most ${MAX_DAYS} days.`;
  return null;
}

/** The URL parameters of a range (for links and saved insights). */
export function rangeParams(range) {
  if (!range) return {};
  const params = range.preset === "custom" ? { from: range.start, to: range.end } : { range: range.preset };
  if (range.timezone && range.timezone !== DEFAULT_TIMEZONE) params.tz = range.timezone;
  return params;
}

/** Wire the query bar: `onChange(params)` gets the range's new URL parameters. */
export function setUpQueryBar(onChange) {
  const bar = document.getElementById("querybar");
  const custom = document.getElementById("custom-range");
  const customButton = bar.querySelector('[data-range="custom"]');
  bar.querySelectorAll("[data-range]").forEach((button) => {
    button.addEventListener("click", () => {
      if (button.dataset.range === "custom") {
        custom.hidden = !custom.hidden;
        customButton.setAttribute("aria-expanded", String(!custom.hidden));
        if (!custom.hidden) custom.elements.from.focus();
        return;
      }
      custom.hidden = true;
      customButton.setAttribute("aria-expanded", "false");
      onChange({ range: button.dataset.range, from: null, to: null });
    });
  });
  custom.addEventListener("submit", (event) => {
    event.preventDefault();
    const from = custom.elements.from.value;
    const to = custom.elements.to.value;
    const error = customError(from, to);
    if (error) {
      document.getElementById("range-label").textContent = error;
      return;
    }
    onChange({ range: null, from, to });
  });
  document.getElementById("timezone").addEventListener("change", (event) => {
    onChange({ tz: event.target.value === DEFAULT_TIMEZONE ? null : event.target.value });
  });
}

/** Show the page's range in the query bar (or hide the bar's range on pages without one). */
export function showRange(range, { applies = true, note = "" } = {}) {
  const bar = document.getElementById("querybar");
  bar.dataset.applies = String(applies);
  bar.querySelectorAll("[data-range]").forEach((button) => {
    button.disabled = !applies;
    button.setAttribute("aria-pressed", String(applies && range?.preset === button.dataset.range));
  });
  const custom = document.getElementById("custom-range");
  if (range?.preset === "custom") {
    custom.elements.from.value = range.start;
    custom.elements.to.value = range.end;
  } else if (range) {
    custom.elements.from.value ||= range.start;
    custom.elements.to.value ||= range.end;
  }
  if (!applies) custom.hidden = true;
  document.getElementById("timezone").value = range?.timezone || DEFAULT_TIMEZONE;
  const label = document.getElementById("range-label");
  if (!applies) label.textContent = note;
  else if (!range) label.textContent = note || "Each tile shows its own saved range";
  else label.textContent = `${range.error ? `${range.error} Showing: ` : ""}${range.start} – ${range.end} (${range.timezone})`;
}
