// Webhooks: endpoints with their status and failed attempts; create and
// edit (URL, an event picker built from the catalog with `*` and
// `resource.*`, custom headers); reveal and roll the signing secret; send a
// test event; the delivery log of an endpoint, refreshing itself; redeliver;
// disable, re-enable, delete.

import { api, enc } from "./api.js";
import { h, fill, errorBox, notice, field, busy, timeText, relative, badge, secretBox, confirmButton, nextId, announce } from "./ui.js";
import { eventCatalog, eventGroups } from "./schema.js";
import { pagedList } from "./list.js";

const BASE = "/v1/webhook-endpoints";
let justCreated = null; // {id, secret}: shown once on the new endpoint's page

/** A span that fills in with the endpoint's failed attempts. */
function failedAttempts(id) {
  const span = h("span", { class: "failures" }, "…");
  api("GET", `${BASE}/${enc(id)}/deliveries`, { query: "status[$in][]=failed&status[$in][]=dead&$limit=0" })
    .then((r) => {
      span.textContent = String(r.total);
      if (r.total > 0) span.classList.add("has-failures");
    })
    .catch(() => {
      span.textContent = "?";
    });
  return span;
}

/** Checkboxes for `*`, each `resource.*` and each type. */
function eventPicker(patterns, selected = []) {
  const { all, groups } = eventGroups(patterns);
  const chosen = new Set(selected);
  const boxes = [];
  const box = (value, label, cls) => {
    const id = nextId("ev");
    const input = h("input", { type: "checkbox", id, value, checked: chosen.has(value) });
    boxes.push(input);
    return { input, el: h("div", { class: `check ${cls || ""}` }, input, h("label", { for: id }, label)) };
  };
  const star = all ? box("*", "All events (*)", "check-all") : null;
  const groupEls = groups.map((g) => {
    const wild = g.wildcard ? box(g.wildcard, `All ${g.wildcard.slice(0, -2)} events (${g.wildcard})`, "check-group") : null;
    const types = g.types.map((t) => box(t, t, "check-type"));
    return { wild, types, el: h("div", { class: "event-group" }, wild ? wild.el : null, h("div", { class: "event-types" }, types.map((t) => t.el))) };
  });
  function sync() {
    const everything = star && star.input.checked;
    for (const g of groupEls) {
      if (g.wild) g.wild.input.disabled = everything;
      const covered = everything || (g.wild && g.wild.input.checked);
      for (const t of g.types) t.input.disabled = covered;
    }
  }
  for (const b of boxes) b.addEventListener("change", sync);
  sync();
  const el = h(
    "fieldset",
    { class: "events-picker" },
    h("legend", {}, "Events to send"),
    star ? star.el : null,
    h("div", { class: "event-groups" }, groupEls.map((g) => g.el)),
  );
  return {
    el,
    value() {
      if (star && star.input.checked) return ["*"];
      const out = [];
      for (const g of groupEls) {
        if (g.wild && g.wild.input.checked) out.push(g.wild.input.value);
        else for (const t of g.types) if (t.input.checked) out.push(t.input.value);
      }
      return out;
    },
  };
}

/**
 * Rows of custom header name and value. Header values are write-only (the
 * API shows them masked): existing headers start with an empty value that
 * means "unchanged", and only values typed in are sent.
 */
function headersEditor(initial = {}) {
  const rows = h("div", { class: "header-rows" });
  const existing = new Set(Object.keys(initial || {}));
  let n = 0;
  function addRow(name = "", kept = false) {
    n += 1;
    const nameInput = h("input", { type: "text", value: name, autocomplete: "off", spellcheck: "false", "aria-label": `Header ${n} name`, placeholder: "X-Custom-Auth", class: "header-name" });
    const valueInput = h("input", { type: "text", value: "", autocomplete: "off", spellcheck: "false", "aria-label": `Header ${n} value`, placeholder: kept ? "(unchanged; hidden)" : "value", class: "header-value" });
    const row = h("div", { class: "header-row" }, nameInput, valueInput);
    row.append(h("button", { type: "button", class: "secondary small", "aria-label": `Remove header ${n}`, onclick: () => row.remove() }, "Remove"));
    rows.append(row);
    return nameInput;
  }
  for (const k of existing) addRow(k, true);
  const el = h(
    "fieldset",
    { class: "headers-editor" },
    h("legend", {}, "Custom headers"),
    h("p", { class: "hint" }, "Sent with every delivery, e.g. an Authorization header your receiver checks."),
    rows,
    h("button", { type: "button", class: "secondary small", onclick: () => addRow().focus() }, "Add header"),
  );
  return {
    el,
    /** Headers to send: new values, and names kept unchanged (`undefined`). */
    value() {
      const out = {};
      for (const row of rows.querySelectorAll(".header-row")) {
        const k = row.querySelector(".header-name").value.trim();
        const v = row.querySelector(".header-value").value;
        if (!k) continue;
        if (v === "" && existing.has(k)) out[k] = undefined;
        else out[k] = v;
      }
      return out;
    },
  };
}

/** The create / edit form; `submit(body)` resolves or throws an ApiError. */
function endpointForm(doc, initial, submitLabel, submit) {
  const { patterns } = eventCatalog(doc);
  const url = h("input", { type: "url", name: "url", required: true, value: initial.url || "", autocomplete: "off", spellcheck: "false", placeholder: "https://example.com/hooks" });
  const description = h("input", { type: "text", name: "description", value: initial.description || "", autocomplete: "off" });
  const picker = eventPicker(patterns, initial.enabledEvents || []);
  const headers = headersEditor(initial.headers);
  const msg = h("div", { class: "form-message" });
  const button = h("button", { type: "submit" }, submitLabel);
  const form = h(
    "form",
    { class: "endpoint-form card", novalidate: true },
    field("Endpoint URL", url, "Test mode allows http to any host; live mode needs a public https URL."),
    field("Description", description),
    picker.el,
    headers.el,
    h("div", { class: "buttons" }, button),
    msg,
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    busy(button, async () => {
      msg.replaceChildren();
      const body = { url: url.value.trim(), enabledEvents: picker.value(), headers: headers.value() };
      if (description.value.trim() || initial.description) body.description = description.value.trim() || null;
      try {
        await submit(body);
      } catch (err) {
        msg.append(errorBox(err));
      }
    });
  });
  return form;
}

async function listPage({ doc, go }, creating) {
  const list = pagedList({
    path: BASE,
    caption: "Webhook endpoints",
    filter: false,
    columns: () => [
      { label: "URL", value: (ep) => h("a", { href: `#/webhooks/${enc(ep.id)}`, class: "endpoint-url" }, ep.url) },
      { label: "Status", value: (ep) => badge(ep.status) },
      { label: "Events", value: (ep) => (ep.enabledEvents || []).join(", ") },
      { label: "Failed attempts", value: (ep) => failedAttempts(ep.id) },
      { label: "Created", value: (ep) => timeText(ep.createdAt) },
    ],
    empty: "No webhook endpoints in this mode yet.",
  });
  const formSlot = h("div");
  const add = h("button", { type: "button", "aria-expanded": String(creating) }, "Add an endpoint");
  function openForm() {
    add.setAttribute("aria-expanded", "true");
    fill(
      formSlot,
      h("h2", {}, "New endpoint"),
      endpointForm(doc, {}, "Create endpoint", async (body) => {
        const ep = await api("POST", BASE, { body });
        justCreated = { id: ep.id, secret: ep.secret };
        announce("Endpoint created");
        go(`#/webhooks/${enc(ep.id)}`);
      }),
    );
    formSlot.querySelector("input").focus();
  }
  add.addEventListener("click", () => {
    if (add.getAttribute("aria-expanded") === "true") {
      add.setAttribute("aria-expanded", "false");
      formSlot.replaceChildren();
    } else openForm();
  });
  const el = h(
    "div",
    { class: "page" },
    h("h1", { tabindex: "-1" }, "Webhooks"),
    h("p", { class: "hint" }, "Endpoints receive signed events (Hub-Signature and the Standard Webhooks headers)."),
    h("div", { class: "toolbar" }, add),
    formSlot,
    list.el,
  );
  await list.reload();
  if (creating) openForm();
  return { el, dispose: list.dispose };
}

async function detailPage({ doc, go, refresh }, id) {
  let ep;
  try {
    ep = await api("GET", `${BASE}/${enc(id)}`);
  } catch (err) {
    return { el: h("div", { class: "page" }, h("h1", { tabindex: "-1" }, "Webhook endpoint"), errorBox(err), h("p", {}, h("a", { href: "#/webhooks" }, "All endpoints"))) };
  }
  const secretArea = h("div", { class: "secret-area" });
  const out = h("div", { class: "form-message", "aria-live": "polite" });
  const showSecret = (title, secret, note) => {
    fill(secretArea, secretBox(title, secret, note), h("button", { type: "button", class: "secondary small", onclick: () => secretArea.replaceChildren() }, "Hide secret"));
  };
  if (justCreated && justCreated.id === ep.id) {
    showSecret("Signing secret", justCreated.secret, "Verify each delivery's Hub-Signature with it. Reveal it again with “Reveal secret”.");
    justCreated = null;
  }
  const act = (button, fn) =>
    busy(button, async () => {
      out.replaceChildren();
      try {
        await fn();
      } catch (err) {
        out.append(errorBox(err));
      }
    });

  const failures = h("span", {});
  const log = pagedList({
    path: `${BASE}/${enc(ep.id)}/deliveries`,
    onChange: () => fill(failures, failedAttempts(ep.id)),
    caption: "Delivery log",
    defaultSort: ["$sort[createdAt]", "-1"],
    placeholder: "e.g. status=failed",
    refreshEvery: 2000,
    columns: () => [
      { label: "When", value: (d) => timeText(d.createdAt) },
      { label: "Event", value: (d) => h("span", {}, d.eventType || "", " ", h("a", { href: `#/events/${enc(d.eventId)}`, class: "mono" }, d.eventId)) },
      { label: "Attempt", value: (d) => d.attempt },
      { label: "Status", value: (d) => badge(d.status) },
      { label: "Response", value: (d) => (d.responseStatus === undefined || d.responseStatus === null ? "—" : String(d.responseStatus)) },
      { label: "Duration", value: (d) => (d.durationMs === undefined ? "—" : `${d.durationMs} ms`) },
      { label: "Error", value: (d) => d.error },
      { label: "Next retry", value: (d) => (d.nextRetryAt ? h("span", { class: "next-retry" }, timeText(d.nextRetryAt), ` (${relative(d.nextRetryAt)})`) : "—") },
      {
        label: "Action",
        value: (d) => {
          const b = h("button", { type: "button", class: "secondary small" }, "Redeliver");
          b.addEventListener("click", () =>
            act(b, async () => {
              await api("POST", `/v1/events/${enc(d.eventId)}/redeliver`, { body: { endpointId: ep.id } });
              out.append(notice(`Event ${d.eventId} queued for this endpoint again.`, "ok"));
              setTimeout(() => log.reload({ quiet: true }), 500);
            }),
          );
          return b;
        },
      },
    ],
    empty: "No delivery attempts yet. Send a test event.",
  });

  const testButton = h("button", { type: "button" }, "Send test event");
  testButton.addEventListener("click", () =>
    act(testButton, async () => {
      const ev = await api("POST", `${BASE}/${enc(ep.id)}/test`, { body: {} });
      out.append(notice(`Test event ${ev.id} sent; its delivery appears in the log below.`, "ok"));
      setTimeout(() => log.reload({ quiet: true }), 500);
    }),
  );
  const revealButton = h("button", { type: "button", class: "secondary" }, "Reveal secret");
  revealButton.addEventListener("click", () =>
    act(revealButton, async () => {
      const r = await api("POST", `${BASE}/${enc(ep.id)}/reveal-secret`, { body: {} });
      showSecret("Signing secret", r.secret);
    }),
  );
  const overlap = h("input", { type: "number", min: "0", max: "24", step: "1", value: "0", name: "overlapHours", class: "narrow" });
  const rollButton = h("button", { type: "submit", class: "secondary" }, "Roll secret");
  const rollForm = h("form", { class: "inline-form", novalidate: true }, field("Old secret keeps signing for (hours, 0–24)", overlap), rollButton);
  rollForm.addEventListener("submit", (e) => {
    e.preventDefault();
    act(rollButton, async () => {
      const r = await api("POST", `${BASE}/${enc(ep.id)}/roll-secret`, { body: { overlapHours: Number(overlap.value || 0) } });
      showSecret(
        "New signing secret",
        r.secret,
        r.previousSecretsExpireAt ? `The previous secret also signs until ${new Date(r.previousSecretsExpireAt).toLocaleString()}.` : "The previous secret no longer signs.",
      );
    });
  });
  const toggle = h("button", { type: "button", class: "secondary" }, ep.status === "disabled" ? "Enable" : "Disable");
  toggle.addEventListener("click", () =>
    act(toggle, async () => {
      if (ep.status === "disabled") await api("POST", `${BASE}/${enc(ep.id)}/enable`, { body: {} });
      else await api("PATCH", `${BASE}/${enc(ep.id)}`, { body: { status: "disabled" } });
      announce(ep.status === "disabled" ? "Endpoint enabled" : "Endpoint disabled");
      refresh();
    }),
  );
  const del = confirmButton("Delete", "Click again to delete", () =>
    act(del, async () => {
      await api("DELETE", `${BASE}/${enc(ep.id)}`);
      announce("Endpoint deleted");
      go("#/webhooks");
    }),
  );
  const editSlot = h("div");
  const edit = h("button", { type: "button", class: "secondary", "aria-expanded": "false" }, "Edit");
  edit.addEventListener("click", () => {
    if (edit.getAttribute("aria-expanded") === "true") {
      edit.setAttribute("aria-expanded", "false");
      editSlot.replaceChildren();
      return;
    }
    edit.setAttribute("aria-expanded", "true");
    fill(
      editSlot,
      endpointForm(doc, ep, "Save changes", async (body) => {
        const removed = Object.keys(ep.headers || {}).filter((k) => !(k in body.headers));
        for (const k of removed) body.headers[k] = null;
        // Unchanged (hidden) values are left out: the merge keeps them.
        for (const [k, v] of Object.entries(body.headers)) if (v === undefined) delete body.headers[k];
        await api("PATCH", `${BASE}/${enc(ep.id)}`, { body });
        announce("Endpoint saved");
        refresh();
      }),
    );
    editSlot.querySelector("input").focus();
  });

  const headerNames = Object.keys(ep.headers || {});
  const el = h(
    "div",
    { class: "page" },
    h("p", { class: "crumbs" }, h("a", { href: "#/webhooks" }, "Webhooks"), " / ", ep.id),
    h("h1", { tabindex: "-1", class: "endpoint-title" }, ep.url),
    h(
      "dl",
      { class: "pairs" },
      h("dt", {}, "Status"),
      h("dd", {}, badge(ep.status), ep.disabledReason ? ` ${ep.disabledReason}` : ""),
      h("dt", {}, "Id"),
      h("dd", {}, h("code", {}, ep.id)),
      h("dt", {}, "Description"),
      h("dd", {}, ep.description || "—"),
      h("dt", {}, "Events"),
      h("dd", {}, (ep.enabledEvents || []).join(", ")),
      h("dt", {}, "Custom headers"),
      h("dd", {}, headerNames.length ? `${headerNames.join(", ")} (values hidden)` : "—"),
      h("dt", {}, "Failed attempts"),
      h("dd", {}, failures),
      h("dt", {}, "Created"),
      h("dd", {}, timeText(ep.createdAt)),
    ),
    h("div", { class: "actions", role: "group", "aria-label": "Endpoint actions" }, testButton, revealButton, toggle, edit, del),
    rollForm,
    secretArea,
    out,
    editSlot,
    h("h2", {}, "Delivery log"),
    log.el,
  );
  await log.reload();
  return { el, dispose: log.dispose };
}

export default async function webhooks(ctx) {
  if (ctx.rest === "new") return listPage(ctx, true);
  if (ctx.rest) return detailPage(ctx, ctx.rest);
  return listPage(ctx, false);
}
