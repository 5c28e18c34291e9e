// Talking to the gateway's API from the pages: the team key, JSON requests with OpenAI-shaped
// errors, and server-sent events read from a fetch() body (EventSource cannot send the key).

const KEY_NAME = "belle.apiKey";

export function getKey() {
  return sessionStorage.getItem(KEY_NAME) || localStorage.getItem(KEY_NAME);
}

export function saveKey(key, remember) {
  clearKey();
  (remember ? localStorage : sessionStorage).setItem(KEY_NAME, key);
}

export function clearKey() {
  sessionStorage.removeItem(KEY_NAME);
  localStorage.removeItem(KEY_NAME);
}

export class ApiError extends Error {
  constructor(status, message, { param = null, code = null, type = null } = {}) {
    super(message);
    this.status = status;
    this.param = param;
    this.code = code;
    this.type = type;
  }

  describe() {
    const where = this.param ? ` (${this.param})` : "";
    return this.status ? `${this.message}${where} [HTTP ${this.status}]` : `${this.message}${where}`;
  }
}

export function apiErrorFrom(status, body) {
  const e = (body && body.error) || {};
  const message = e.message || `the server answered HTTP ${status}`;
  return new ApiError(status, message, { param: e.param, code: e.code, type: e.type });
}

/** Send one request; returns the Response, or throws ApiError (network failures included).
 *  A 401 on a stored key means it was revoked: back to the sign-in page, unless `login` is set. */
export async function request(path, { method = "GET", body, signal, key = getKey(), login = false, accept } = {}) {
  const headers = {};
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (accept) headers.Accept = accept;
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, `the gateway cannot be reached (${err.message})`);
  }
  if (response.ok) return response;
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    // not JSON (a proxy's error page): the status says enough
  }
  const error = apiErrorFrom(response.status, payload);
  if (response.status === 401 && !login) {
    clearKey();
    const next = encodeURIComponent(location.pathname.split("/").pop() + location.search);
    location.assign(`index.html?expired=1&next=${next}`);
  }
  throw error;
}

/** JSON of a successful request (null for 204). */
export async function api(path, options) {
  const response = await request(path, options);
  return response.status === 204 ? null : response.json();
}

/** The events of a text/event-stream body, as {event, data, id}, in order. Comments are skipped;
 *  several data lines of one event are joined with "\n" as the SSE format says. */
export async function* sseEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let event = { event: "message", data: [], id: null };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
      // A "\r" at the very end may be the first half of "\r\n": keep it for the next chunk.
      const cut = !done && buffer.endsWith("\r") ? buffer.length - 1 : buffer.length;
      const lines = buffer.slice(0, cut).split(/\r\n|\r|\n/);
      buffer = lines.pop() + buffer.slice(cut);
      if (done && buffer) {
        lines.push(buffer);
        buffer = "";
      }
      for (const line of lines) {
        if (line === "") {
          if (event.data.length) yield { event: event.event, data: event.data.join("\n"), id: event.id };
          event = { event: "message", data: [], id: null };
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "data") event.data.push(value);
        else if (field === "event") event.event = value;
        else if (field === "id") event.id = value;
      }
      if (done) {
        if (event.data.length) yield { event: event.event, data: event.data.join("\n"), id: event.id };
        return;
      }
    }
  } finally {
    reader.releaseLock();
  }
}
