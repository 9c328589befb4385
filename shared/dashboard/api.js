// The public API, on this origin, with the key the person pasted in. Keys
// live in this tab's sessionStorage only (gone when the tab closes); they
// are sent in the Authorization header of requests to /v1/ on this origin
// and nowhere else (the Content-Security-Policy's connect-src 'self' holds
// the page to that too). Nothing is ever logged.

const KEY_SHAPE = /^(sk|pk|rk)_(test|live)_[A-Za-z0-9]{8,200}$/;
const TYPES = { sk: "secret", pk: "publishable", rk: "restricted" };

/** {type, mode, prefix, last4} of a key, or null when it is not one. */
export function keyShape(key) {
  const m = KEY_SHAPE.exec(key || "");
  if (!m) return null;
  return { type: TYPES[m[1]], mode: m[2], prefix: `${m[1]}_${m[2]}`, last4: key.slice(-4) };
}

/** The key for display: "sk_test_…a1b2". */
export function redacted(key) {
  const s = keyShape(key);
  return s ? `${s.prefix}_…${s.last4}` : "";
}

export const session = {
  mode() {
    return sessionStorage.getItem("hub.mode") === "live" ? "live" : "test";
  },
  setMode(mode) {
    sessionStorage.setItem("hub.mode", mode === "live" ? "live" : "test");
  },
  key(mode = session.mode()) {
    return sessionStorage.getItem(`hub.key.${mode}`);
  },
  /** Keep a key under its own mode and switch to that mode. */
  setKey(key) {
    const s = keyShape(key);
    sessionStorage.setItem(`hub.key.${s.mode}`, key);
    session.setMode(s.mode);
  },
  /** Forget one mode's key (it stopped working). */
  drop(mode) {
    sessionStorage.removeItem(`hub.key.${mode}`);
  },
  forget() {
    for (const k of ["hub.key.test", "hub.key.live", "hub.mode"]) sessionStorage.removeItem(k);
  },
};

/** An error answered by the API (or met on the way). */
export class ApiError extends Error {
  constructor(status, body) {
    const b = body && typeof body === "object" ? body : {};
    super(typeof b.message === "string" ? b.message : `HTTP ${status}`);
    this.status = status;
    this.name = typeof b.name === "string" ? b.name : `HTTP_${status}`;
    this.eventId = typeof b.eventId === "string" ? b.eventId : null;
    this.errors = Array.isArray(b.errors) ? b.errors : [];
  }
}

/**
 * Call the API: api("GET", "/v1/patients", {query: "fullName=A"}).
 * Resolves to the JSON body; rejects with an ApiError.
 */
export async function api(method, path, { query = "", body, key } = {}) {
  if (!path.startsWith("/v1/")) throw new Error("the dashboard only calls /v1/ on this origin");
  const k = key || session.key();
  if (!k) throw new ApiError(0, { name: "NO_KEY", message: "Paste a key for this mode first." });
  const headers = { Authorization: `Bearer ${k}`, Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(query ? `${path}?${query}` : path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
      redirect: "error",
      referrerPolicy: "no-referrer",
    });
  } catch {
    throw new ApiError(0, { name: "NETWORK_ERROR", message: "The hub could not be reached." });
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const err = new ApiError(res.status, data);
    // The tab's own key stopped working (rolled, revoked): the shell asks
    // for another.
    if (res.status === 401 && !key) window.dispatchEvent(new CustomEvent("hub:unauthorized", { detail: err }));
    throw err;
  }
  return data;
}

let openapi = null;
/** The API's own OpenAPI document (no key needed), fetched once. */
export function openApi() {
  if (!openapi) {
    openapi = fetch("/openapi.json", { credentials: "omit", cache: "no-store" }).then(async (r) => {
      if (!r.ok) throw new ApiError(r.status, await r.json().catch(() => null));
      return r.json();
    });
    openapi.catch(() => {
      openapi = null;
    });
  }
  return openapi;
}

/** Encode a cursor or value for a query string. */
export const enc = encodeURIComponent;
