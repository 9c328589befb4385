// API keys (the `/v1/api-keys` resource): prefix, last four, note, last
// use, status; create a restricted key with a permission grid; edit a
// key's note and permissions; roll with an overlap; revoke. Every new
// secret is shown once, with a copy button.

import { api, enc, session, keyShape } from "./api.js";
import { h, fill, errorBox, field, busy, timeText, badge, secretBox, confirmButton, table, announce } from "./ui.js";
import { createSchema, resources } from "./schema.js";

const BASE = "/v1/api-keys";

/** The resources a permission can name, and the levels, from the API's document. */
function permissionSpec(doc) {
  const perms = createSchema(doc, "api-keys")?.properties?.permissions;
  const props = perms?.properties;
  if (props && Object.keys(props).length) {
    return Object.entries(props).map(([name, s]) => ({ name, levels: s.enum || ["none", "read", "write"] }));
  }
  return resources(doc)
    .filter((r) => r.path !== "api-keys")
    .map((r) => ({ name: r.path, levels: ["none", "read", "write"] }));
}

/** A grid of radio buttons: one row per resource, none / read / write. */
function permissionGrid(spec, initial = {}) {
  const levels = [...new Set(spec.flatMap((s) => s.levels))];
  const rows = spec.map((s) => {
    const current = initial[s.name] || "none";
    return h(
      "tr",
      {},
      h("th", { scope: "row" }, s.name),
      levels.map((l) =>
        h(
          "td",
          {},
          s.levels.includes(l)
            ? h("input", { type: "radio", name: `perm-${s.name}`, value: l, checked: current === l, "aria-label": `${s.name}: ${l}` })
            : "",
        ),
      ),
    );
  });
  const el = h(
    "fieldset",
    { class: "permissions" },
    h("legend", {}, "Permissions"),
    h("p", { class: "hint" }, "read: list and get; write: everything else, and read."),
    h(
      "div",
      { class: "table-wrap" },
      h("table", {}, h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Resource"), levels.map((l) => h("th", { scope: "col" }, l)))), h("tbody", {}, rows)),
    ),
  );
  const level = (s) => el.querySelector(`input[name="perm-${CSS.escape(s.name)}"]:checked`)?.value || "none";
  return {
    el,
    /** The levels given (none is the default): a new key's permissions. */
    value() {
      const out = {};
      for (const s of spec) if (level(s) !== "none") out[s.name] = level(s);
      return out;
    },
    /** Every resource, `none` as null: a PATCH merges, so this replaces. */
    patch() {
      const out = {};
      for (const s of spec) out[s.name] = level(s) === "none" ? null : level(s);
      return out;
    },
  };
}

/** Is `k` the key record of the key this dashboard uses? */
function inUse(k) {
  const mine = keyShape(session.key());
  return Boolean(mine && k.prefix === mine.prefix && k.last4 === mine.last4);
}

export default async function keys({ doc }) {
  let list;
  try {
    list = await api("GET", BASE, { query: "$limit=100" });
  } catch (err) {
    return { el: h("div", { class: "page" }, h("h1", { tabindex: "-1" }, "API keys"), errorBox(err)) };
  }
  const spec = permissionSpec(doc);
  const out = h("div", { class: "form-message", "aria-live": "polite" });
  const secretArea = h("div", { class: "secret-area" });
  const showSecret = (title, secret, note) =>
    fill(secretArea, secretBox(title, secret, note || "Copy it now: the hub shows a key once and stores only its hash."));
  const act = (button, fn) =>
    busy(button, async () => {
      out.replaceChildren();
      try {
        await fn();
      } catch (err) {
        out.append(errorBox(err));
      }
    });
  const panel = h("div", { class: "key-panel" });

  function rollForm(k) {
    const hours = h("select", { name: "expiresInHours" }, Array.from({ length: 13 }, (_, i) => h("option", { value: String(i) }, i === 0 ? "0 (stops at once)" : `${i} h`)));
    const b = h("button", { type: "submit" }, "Roll key");
    const form = h("form", { class: "inline-form card", novalidate: true }, h("h2", {}, `Roll ${k.prefix}_…${k.last4}`), field("The old key keeps working for", hours), b);
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      act(b, async () => {
        const r = await api("POST", `${BASE}/${enc(k.id)}/roll`, { body: { expiresInHours: Number(hours.value) } });
        const secret = r.secret;
        let note = null;
        if (inUse(k) && keyShape(secret)) {
          session.setKey(secret);
          note = "This dashboard now uses the new key. Copy it now: it is shown once.";
        }
        panel.replaceChildren();
        showSecret("New key", secret, note);
        announce("Key rolled");
        await reload();
      });
    });
    return form;
  }

  function editForm(k) {
    const note = h("input", { type: "text", name: "note", value: k.note || "", autocomplete: "off" });
    const grid = k.type === "restricted" ? permissionGrid(spec, k.permissions || {}) : null;
    const b = h("button", { type: "submit" }, "Save");
    const form = h("form", { class: "card", novalidate: true }, h("h2", {}, `Edit ${k.prefix}_…${k.last4}`), field("Note", note), grid ? grid.el : null, h("div", { class: "buttons" }, b));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      act(b, async () => {
        const body = { note: note.value };
        if (grid) body.permissions = grid.patch();
        await api("PATCH", `${BASE}/${enc(k.id)}`, { body });
        panel.replaceChildren();
        announce("Key saved");
        await reload();
      });
    });
    return form;
  }

  const createButton = h("button", { type: "button", "aria-expanded": "false" }, "Create a restricted key");
  createButton.addEventListener("click", () => {
    if (createButton.getAttribute("aria-expanded") === "true") {
      createButton.setAttribute("aria-expanded", "false");
      panel.replaceChildren();
      return;
    }
    createButton.setAttribute("aria-expanded", "true");
    const note = h("input", { type: "text", name: "note", autocomplete: "off", placeholder: "Reporting tool" });
    const grid = permissionGrid(spec);
    const b = h("button", { type: "submit" }, "Create key");
    const form = h("form", { class: "card", novalidate: true }, h("h2", {}, "New restricted key"), field("Note", note), grid.el, h("div", { class: "buttons" }, b));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      act(b, async () => {
        const k = await api("POST", BASE, { body: { type: "restricted", note: note.value, permissions: grid.value() } });
        createButton.setAttribute("aria-expanded", "false");
        panel.replaceChildren();
        showSecret("New restricted key", k.secret);
        announce("Key created");
        await reload();
      });
    });
    fill(panel, form);
    note.focus();
  });

  function keyTable(rows) {
    return table({
      caption: "API keys",
      columns: [
        { label: "Key", value: (k) => h("code", {}, `${k.prefix}_…${k.last4}`) },
        { label: "Type", value: (k) => k.type },
        { label: "Note", value: (k) => k.note },
        { label: "Status", value: (k) => badge(k.status) },
        { label: "Last used", value: (k) => timeText(k.lastUsedAt) },
        { label: "Expires", value: (k) => timeText(k.expiresAt) },
        { label: "Created", value: (k) => timeText(k.createdAt) },
        {
          label: "Actions",
          value: (k) => {
            // Restricted keys are revoked at any time; a standard key only
            // once rolled (it has a replacement); a key that no longer
            // works can be removed from the list.
            const gone = k.status === "revoked";
            const roll =
              k.status === "active"
                ? h("button", { type: "button", class: "secondary small", onclick: () => {
                    fill(panel, rollForm(k));
                    panel.querySelector("select").focus();
                  } }, "Roll")
                : null;
            const edit = gone
              ? null
              : h("button", { type: "button", class: "secondary small", onclick: () => {
                  fill(panel, editForm(k));
                  panel.querySelector("input").focus();
                } }, "Edit");
            const canDelete = gone || k.type === "restricted" || k.status === "expiring";
            const label = gone ? "Remove" : k.status === "expiring" && k.type !== "restricted" ? "Revoke now" : "Revoke";
            const revoke = canDelete
              ? confirmButton(label, gone ? "Click again to remove" : "Click again to revoke", () =>
                  act(revoke, async () => {
                    await api("DELETE", `${BASE}/${enc(k.id)}`);
                    announce(gone ? "Key removed" : "Key revoked");
                    await reload();
                  }),
                )
              : null;
            if (revoke) revoke.classList.add("small");
            return h("span", { class: "row-actions" }, roll, edit, revoke, inUse(k) ? h("span", { class: "hint" }, " (this dashboard)") : null);
          },
        },
      ],
      rows,
      empty: "No keys.",
    });
  }
  const tableSlot = h("div", {}, keyTable(list.data));
  async function reload() {
    const fresh = await api("GET", BASE, { query: "$limit=100" });
    fill(tableSlot, keyTable(fresh.data));
  }
  const el = h(
    "div",
    { class: "page" },
    h("h1", { tabindex: "-1" }, "API keys"),
    h("p", { class: "hint" }, "Keys of this mode. A key is shown in full once, when it is created or rolled; only its hash is kept. Standard keys cannot be deleted: roll them."),
    h("div", { class: "toolbar" }, createButton),
    secretArea,
    out,
    panel,
    tableSlot,
  );
  return { el };
}
