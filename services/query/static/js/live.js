// The live WebSocket (/ws/analytics/live), one per tab: reconnects by itself with a growing back-off,
// says whether it is connected, counts what the server dropped, and keeps events per minute.
// Pages listen with `live.on(type, callback, signal)`; the listener goes when the page's signal aborts.

import { currentKey } from "./session.js";

const MAX_BACKOFF_SECONDS = 30;
const MINUTES_KEPT = 30;

class LiveConnection {
  constructor() {
    this.socket = null;
    this.status = { state: "idle", retryIn: 0 };
    this.activeUsers = null;
    this.dropped = 0;
    this.events = null; // subscription: null = every event
    this.perMinute = new Map(); // minute start (ms) -> events received or dropped
    this.countingSince = new Date();
    this.targets = new EventTarget();
    this.attempt = 0;
    this.timer = null;
  }

  on(type, callback, signal) {
    const listener = (event) => callback(event.detail);
    this.targets.addEventListener(type, listener, { signal });
  }

  emit(type, detail) {
    this.targets.dispatchEvent(new CustomEvent(type, { detail }));
  }

  setStatus(state, retryIn = 0) {
    this.status = { state, retryIn };
    this.emit("status", this.status);
  }

  /** Open the socket unless it is open or opening. */
  start() {
    if (this.socket || !currentKey()) return;
    clearTimeout(this.timer);
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const url = `${scheme}//${location.host}/ws/analytics/live?token=${encodeURIComponent(currentKey())}`;
    this.setStatus(this.attempt ? "reconnecting" : "connecting");
    const socket = new WebSocket(url);
    this.socket = socket;
    socket.addEventListener("open", () => {
      this.attempt = 0;
      this.setStatus("connected");
      this.send({ type: "subscribe", events: this.events });
    });
    socket.addEventListener("message", (message) => this.receive(message.data));
    socket.addEventListener("close", () => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.retryLater();
    });
  }

  retryLater() {
    if (!currentKey()) return this.setStatus("idle");
    this.attempt += 1;
    const delay = Math.min(MAX_BACKOFF_SECONDS, 2 ** (this.attempt - 1)) * (0.8 + Math.random() * 0.4);
    this.setStatus("disconnected", Math.ceil(delay));
    this.timer = setTimeout(() => this.start(), delay * 1000);
  }

  /** Close for good (signing out). */
  stop() {
    clearTimeout(this.timer);
    const socket = this.socket;
    this.socket = null;
    socket?.close();
    this.attempt = 0;
    this.activeUsers = null;
    this.setStatus("idle");
  }

  send(message) {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  /** Only these event names from now on (null: all, []: counts only); per-minute counts restart. */
  subscribe(events) {
    const next = events && events.length ? [...events] : events === null ? null : [];
    if (JSON.stringify(next) === JSON.stringify(this.events)) return;
    this.events = next;
    this.perMinute.clear();
    this.countingSince = new Date();
    this.send({ type: "subscribe", events: this.events });
  }

  receive(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    if (message.type === "active_users") {
      this.activeUsers = message.count;
      this.emit("active_users", message.count);
    } else if (message.type === "new_event") {
      this.countMinute(1);
      this.emit("new_event", message);
    } else if (message.type === "dropped") {
      this.dropped += message.count;
      this.countMinute(message.count);
      this.emit("dropped", this.dropped);
    } else if (message.type === "error") {
      this.emit("server_error", message);
    }
  }

  countMinute(n) {
    const minute = Math.floor(Date.now() / 60000) * 60000;
    this.perMinute.set(minute, (this.perMinute.get(minute) || 0) + n);
    for (const key of this.perMinute.keys()) if (key < minute - MINUTES_KEPT * 60000) this.perMinute.delete(key);
  }

  /** The last MINUTES_KEPT minutes (unix seconds) with their counts, zeros included. */
  minutes() {
    const now = Math.floor(Date.now() / 60000) * 60000;
    const times = [];
    const counts = [];
    for (let k = MINUTES_KEPT - 1; k >= 0; k -= 1) {
      const minute = now - k * 60000;
      times.push(minute / 1000);
      counts.push(this.perMinute.get(minute) || 0);
    }
    return { times, counts };
  }
}

export const live = new LiveConnection();

/** The connection's state in words. */
export function statusText(status) {
  switch (status.state) {
    case "connected":
      return "Connected";
    case "connecting":
      return "Connecting…";
    case "reconnecting":
      return "Reconnecting…";
    case "disconnected":
      return `Disconnected; reconnecting in ${status.retryIn} s`;
    default:
      return "Not connected";
  }
}
