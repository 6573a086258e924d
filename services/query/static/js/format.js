// Numbers, percentages and days as the pages show them, in the browser's locale.

const whole = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const twoDecimals = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const upToTwo = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
const oneDecimal = new Intl.NumberFormat(undefined, { minimumFractionDigits: 1, maximumFractionDigits: 1 });

export const count = (value) => whole.format(value);
export const decimal = (value) => upToTwo.format(value);
/** "1 saved insight", "3 saved insights". */
export const plural = (n, noun) => `${count(n)} ${noun}${n === 1 ? "" : "s"}`;
/** A percentage the API gives with 2 decimals (45.5 -> "45.5%"). */
export const percent = (value) => `${upToTwo.format(value)}%`;

/** A metric by its unit: counts whole, money with 2 decimals, ratios (0..1) as percentages. */
export function metricValue(value, unit) {
  if (value === null || value === undefined) return "–";
  if (unit === "currency") return twoDecimals.format(value);
  if (unit === "ratio") return percent(value * 100);
  return Number.isInteger(value) ? count(value) : decimal(value);
}

/** The change against the day before: "+12.5%", "−9.8%", "no change", or "–" when undefined. */
export function change(pct) {
  if (pct === null || pct === undefined) return "–";
  if (pct === 0) return "no change";
  return `${pct > 0 ? "+" : "−"}${oneDecimal.format(Math.abs(pct))}%`;
}

/** "14 days", "2 hours", "30 minutes" for a window in seconds. */
export function duration(seconds) {
  const units = [["week", 604800], ["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]];
  for (const [name, size] of units) {
    if (seconds % size === 0) {
      const n = seconds / size;
      return `${count(n)} ${name}${n === 1 ? "" : "s"}`;
    }
  }
  return `${count(seconds)} seconds`;
}

/** A day "2023-03-07" as "7 Mar 2023". */
export function day(iso) {
  const date = new Date(`${iso}T00:00:00Z`);
  return date.toLocaleDateString(undefined, { day: "numeric", month: "short", year: "numeric", timeZone: "UTC" });
}

/** The time of day of an ISO timestamp in a time zone, "14:03:21". */
export function clock(iso, timeZone = "UTC") {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return date.toLocaleTimeString(undefined, { hour12: false, timeZone });
}
