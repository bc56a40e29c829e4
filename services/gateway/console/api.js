// The public API as the console calls it: the key from sessionStorage as a Bearer token,
// and over WebSocket as the subprotocol `bearer.<key>` (a browser cannot set headers on a
// WebSocket, and a key never goes into a URL).

const KEY = "engine.apiKey";
const SUBPROTOCOL = "engine.v1";

export const TERMINAL = new Set(["confirmed", "failed", "cancelled", "expired"]);
export const STATUSES = [
  "pending", "open", "routing", "building", "submitted", "confirmed", "failed", "cancelled", "expired",
];

export function apiKey() {
  return sessionStorage.getItem(KEY);
}

export function keep(key) {
  sessionStorage.setItem(KEY, key);
}

export function forget() {
  sessionStorage.removeItem(KEY);
}

/** A 4xx or 5xx answer: `{error, detail, field?}` as the API sent it. */
export class ApiFailure extends Error {
  constructor(status, body) {
    super(body?.detail || `HTTP ${status}`);
    this.status = status;
    this.error = body?.error || "error";
    this.field = body?.field || null;
    this.body = body;
  }
}

export async function call(method, path, body, key = apiKey()) {
  const headers = { Authorization: `Bearer ${key}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store",
  });
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { error: "not_json", detail: text.slice(0, 200) };
  }
  if (!response.ok) {
    if (response.status === 401) window.dispatchEvent(new CustomEvent("engine:unauthorized"));
    throw new ApiFailure(response.status, data);
  }
  return data;
}

/**
 * Follow a stream: `onMessage(json)` for each message, `onClose(code, reason)` once.
 * Returns a function that closes it.
 */
export function follow(path, onMessage, onClose = () => {}) {
  const url = new URL(path, window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(url, [SUBPROTOCOL, `bearer.${apiKey()}`]);
  let closedByUs = false;
  socket.addEventListener("message", (event) => onMessage(JSON.parse(event.data)));
  socket.addEventListener("close", (event) => {
    if (event.code === 4401) window.dispatchEvent(new CustomEvent("engine:unauthorized"));
    if (!closedByUs) onClose(event.code, event.reason);
  });
  return () => {
    closedByUs = true;
    // Closing a socket still connecting aborts its handshake, which the browser reports as
    // an error: let it open, then close it.
    if (socket.readyState === WebSocket.CONNECTING) socket.addEventListener("open", () => socket.close(1000));
    else socket.close(1000);
  };
}
