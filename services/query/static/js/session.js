// The access key: kept for this tab only (sessionStorage), sent as a bearer token, and in a URL only
// as the live WebSocket's `token` (browsers cannot set headers on a WebSocket).

const STORAGE_KEY = "analytics.key";

export function currentKey() {
  return sessionStorage.getItem(STORAGE_KEY);
}

export function keepKey(key) {
  sessionStorage.setItem(STORAGE_KEY, key);
}

export function forgetKey() {
  sessionStorage.removeItem(STORAGE_KEY);
}
