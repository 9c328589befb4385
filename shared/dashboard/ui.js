// DOM helpers. Every value from the API becomes a Text node or an attribute
// value, never markup: there is no HTML parsing anywhere in the dashboard
// (the Content-Security-Policy's Trusted Types would refuse it anyway).

let uid = 0;
/** A unique id for label/control pairs. */
export function nextId(prefix = "f") {
  uid += 1;
  return `${prefix}-${uid}`;
}

/**
 * h("button", {class: "x", onclick: fn}, "text", node, [more]) builds an
 * element. Strings become text nodes. `href` must be a same-page route
 * ("#/…") or a path on this origin ("/…").
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "value") el.value = v;
    else if (k === "checked") el.checked = Boolean(v);
    else {
      if (k === "href" && !/^(#|\/(?!\/))/.test(String(v))) {
        throw new Error("links stay on this origin");
      }
      el.setAttribute(k, v === true ? "" : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.append(c);
    else el.append(document.createTextNode(String(c)));
  }
}

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** Announce a message to screen readers (and show it briefly). */
export function announce(message) {
  const region = document.getElementById("status");
  if (!region) return;
  region.textContent = "";
  // A new text node so assistive technology reads it again.
  setTimeout(() => {
    region.textContent = message;
  }, 30);
}

/** An error from the API: its name, message, field errors and eventId. */
export function errorBox(err) {
  const box = h(
    "div",
    { class: "error", role: "alert" },
    h("p", { class: "error-title" }, h("strong", {}, err.name || "Error"), err.status ? ` (HTTP ${err.status})` : ""),
    h("p", { class: "error-message" }, err.message || "Something went wrong."),
  );
  if (Array.isArray(err.errors) && err.errors.length) {
    box.append(
      h(
        "ul",
        { class: "error-fields" },
        err.errors.map((e) => h("li", {}, h("code", {}, String(e.field ?? "")), ": ", String(e.message ?? ""))),
      ),
    );
  }
  if (err.eventId) {
    box.append(h("p", { class: "error-event" }, "eventId: ", h("code", { class: "event-id" }, err.eventId)));
  }
  return box;
}

/** A short success note. */
export function notice(text, kind = "info") {
  return h("p", { class: `notice notice-${kind}`, role: kind === "warn" ? "alert" : "status" }, text);
}

/** Pretty JSON as text, with a copy button. */
export function jsonView(value, label = "JSON") {
  const text = JSON.stringify(value, null, 2);
  return h(
    "div",
    { class: "json" },
    h("div", { class: "json-bar" }, h("span", {}, label), copyButton(text, "Copy JSON")),
    h("pre", { class: "json-text", tabindex: "0", "aria-label": label }, text),
  );
}

/** A button that copies `text` to the clipboard. */
export function copyButton(text, label = "Copy") {
  const b = h("button", { type: "button", class: "secondary small" }, label);
  b.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(text);
      b.textContent = "Copied";
      announce("Copied to the clipboard");
    } catch {
      b.textContent = "Select and copy by hand";
    }
    setTimeout(() => {
      b.textContent = label;
    }, 2000);
  });
  return b;
}

/** A secret shown once: monospace, selectable, with a copy button. */
export function secretBox(title, secret, note) {
  return h(
    "div",
    { class: "secret", role: "region", "aria-label": title },
    h("p", {}, h("strong", {}, title)),
    h("p", {}, h("code", { class: "secret-value", tabindex: "0" }, secret), " ", copyButton(secret)),
    note ? h("p", { class: "hint" }, note) : null,
  );
}

/** "2026-11-23 15:04:05" in local time, with the ISO value as a tooltip. */
export function timeText(ts) {
  if (!ts) return "—";
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return String(ts);
  const pad = (n) => String(n).padStart(2, "0");
  const text = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return h("time", { datetime: String(ts), title: String(ts) }, text);
}

/** "in 59 min", "3 s ago". */
export function relative(ts) {
  const t = new Date(ts).getTime();
  if (Number.isNaN(t)) return "";
  const s = Math.round((t - Date.now()) / 1000);
  const abs = Math.abs(s);
  const unit = abs < 90 ? `${abs} s` : abs < 5400 ? `${Math.round(abs / 60)} min` : abs < 129600 ? `${Math.round(abs / 3600)} h` : `${Math.round(abs / 86400)} d`;
  return s >= 0 ? `in ${unit}` : `${unit} ago`;
}

/** Any JSON value as short text for a table cell. */
export function cellText(v) {
  if (v === undefined || v === null || v === "") return "—";
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (typeof v === "object") {
    const s = JSON.stringify(v);
    return s.length > 80 ? `${s.slice(0, 79)}…` : s;
  }
  const s = String(v);
  return s.length > 80 ? `${s.slice(0, 79)}…` : s;
}

/** A status badge: "enabled", "failed", … */
export function badge(text) {
  return h("span", { class: `badge badge-${String(text).replace(/[^a-z]/gi, "")}` }, String(text));
}

/**
 * A table. columns: [{label, value: row => string|Node}], rows: objects.
 * Wide tables scroll sideways inside their own box (readable at 360 px).
 */
export function table({ caption, columns, rows, empty = "Nothing here yet." }) {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h(
    "div",
    { class: "table-wrap", tabindex: "0", role: "region", "aria-label": caption || "table" },
    // Explicit roles keep the table's semantics when narrow screens show
    // each row as a card (display: block).
    h(
      "table",
      { role: "table", class: "data-table" },
      caption ? h("caption", { class: "sr-only" }, caption) : null,
      h("thead", {}, h("tr", { role: "row" }, columns.map((c) => h("th", { scope: "col", role: "columnheader" }, c.label)))),
      h(
        "tbody",
        {},
        rows.map((r) =>
          h(
            "tr",
            { role: "row" },
            columns.map((c) => {
              const v = c.value(r);
              return h("td", { role: "cell", "data-label": c.label }, v instanceof Node ? v : cellText(v));
            }),
          ),
        ),
      ),
    ),
  );
}

/** A labelled form control. */
export function field(label, control, hint) {
  const id = control.id || nextId();
  control.id = id;
  let hintEl = null;
  if (hint) {
    hintEl = h("span", { class: "hint", id: `${id}-hint` }, hint);
    control.setAttribute("aria-describedby", `${id}-hint`);
  }
  return h("div", { class: "field" }, h("label", { for: id }, label), control, hintEl);
}

/** A button that asks for a second click before it acts. */
export function confirmButton(label, confirmLabel, action) {
  const b = h("button", { type: "button", class: "danger" }, label);
  let armed = false;
  let timer = null;
  b.addEventListener("click", async () => {
    if (!armed) {
      armed = true;
      b.textContent = confirmLabel;
      timer = setTimeout(() => {
        armed = false;
        b.textContent = label;
      }, 5000);
      return;
    }
    clearTimeout(timer);
    armed = false;
    b.textContent = label;
    await action();
  });
  return b;
}

/** Run an async action from a button: disabled while it runs. */
export async function busy(button, fn) {
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    return await fn();
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}
