// The one way the pages reach the server: our public HTTP API with the tab's key; errors in words.

import { currentKey } from "./session.js";

export class ApiError extends Error {
  constructor(status, code, message, details = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

const listeners = { unauthorized: [] };

/** Called when the server stops accepting the tab's key (401), whatever page asked. */
export function onUnauthorized(callback) {
  listeners.unauthorized.push(callback);
}

/** A JSON request: `query` becomes the query string (arrays repeat the name), `body` the JSON body. */
export async function api(path, { method = "GET", query = {}, body, signal, key = currentKey() } = {}) {
  const url = new URL(path, location.origin);
  for (const [name, value] of Object.entries(query)) {
    for (const item of Array.isArray(value) ? value : [value]) {
      if (item !== null && item !== undefined && item !== "") url.searchParams.append(name, item);
    }
  }
  const headers = { Accept: "application/json" };
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, { method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "network", "The server could not be reached. Check that it is running, then try again.");
  }
  const payload = await response.json().catch(() => ({}));
  if (response.ok) return payload;
  const error = new ApiError(response.status, payload.error || "http_error", describe(response, payload), payload.details);
  if (response.status === 401 && key === currentKey()) listeners.unauthorized.forEach((callback) => callback(error));
  throw error;
}

/** What went wrong, for people: the server's own message, with what to do about it. */
export function describe(response, payload) {
  const said = payload.message ? sentence(String(payload.message)) : "";
  switch (response.status) {
    case 401:
      return "This key is not accepted: it is unknown to the server (or was removed).";
    case 403:
      return said || "This key may not do that.";
    case 404:
      return said || "Not found.";
    case 422:
      return `The request was not valid. ${said}`.trim();
    case 429:
      return `Too many requests with this key; try again in ${response.headers.get("Retry-After") || "a few"} seconds.`;
    case 503:
      return said || "The analytics store is unavailable; try again shortly.";
    case 504:
      return said || "The query took too long and was cancelled; narrow the date range.";
    default:
      return said ? `The server failed. ${said}` : `The server answered ${response.status}.`;
  }
}

/** "invalid end_date" -> "Invalid end_date." */
function sentence(text) {
  const trimmed = text.trim();
  const capital = trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}
