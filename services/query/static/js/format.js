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

/** A time between two events, to the second or its two largest units: "45 s", "3 min 20 s", "2 h 5 min",
 * "3 d 4 h"; "–" for none. */
export function elapsed(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 60) return `${decimal(seconds)} s`;
  const whole = Math.round(seconds);
  const parts = [["d", 86400], ["h", 3600], ["min", 60], ["s", 1]];
  const first = parts.findIndex(([, size]) => whole >= size);
  const [bigName, bigSize] = parts[first];
  const [smallName, smallSize] = parts[first + 1];
  const big = Math.floor(whole / bigSize);
  const small = Math.floor((whole % bigSize) / smallSize);
  return small ? `${count(big)} ${bigName} ${count(small)} ${smallName}` : `${count(big)} ${bigName}`;
}

/** Whole seconds in every unit they have: 7201 -> "2 h 1 s", 45 -> "45 s". */
export function exact(seconds) {
  let rest = Math.round(seconds);
  const parts = [];
  for (const [name, size] of [["d", 86400], ["h", 3600], ["min", 60], ["s", 1]]) {
    if (rest >= size) parts.push(`${count(Math.floor(rest / size))} ${name}`);
    rest %= size;
  }
  return parts.length ? parts.join(" ") : "0 s";
}
