// CSV of the table under a chart: RFC 4180 quoting, raw numbers (not the locale's formatting), and text
// that a spreadsheet would run as a formula (=, +, -, @ first) prefixed with an apostrophe.

import { h } from "./dom.js";

export function csvText(header, rows) {
  return [header, ...rows].map((row) => row.map(csvCell).join(",")).join("\r\n") + "\r\n";
}

function csvCell(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") return String(value);
  let text = String(value);
  if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

export function downloadCsv(filename, header, rows) {
  const blob = new Blob([csvText(header, rows)], { type: "text/csv;charset=utf-8" });
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/** A "Download CSV" button; `table()` returns {header, rows} when clicked (null: nothing yet). */
export function csvButton(filename, table, label = "Download CSV") {
  return h(
    "button",
    {
      type: "button",
      class: "button quiet csv",
      onclick: () => {
        const data = table();
        if (data) downloadCsv(filename, data.header, data.rows);
      },
    },
    label,
  );
}

/** A file name from words: "funnel signup purchase 2023-01-01" -> "funnel-signup-purchase-2023-01-01.csv". */
export function csvName(...words) {
  const slug = words.join(" ").toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "");
  return `${slug.slice(0, 80) || "table"}.csv`;
}
