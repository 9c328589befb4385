// Events: the last 30 days, newest first, filtered by type (the catalog
// comes from the OpenAPI document) or by the query language; one event as
// JSON; redeliver to every subscribed endpoint or to one.

import { api } from "./api.js";
import { h, fill, jsonView, errorBox, notice, field, busy, timeText } from "./ui.js";
import { eventCatalog } from "./schema.js";
import { pagedList } from "./list.js";

export default async function events({ doc, rest }) {
  const { types } = eventCatalog(doc);
  const typeSelect = h(
    "select",
    { name: "type" },
    h("option", { value: "" }, "All types"),
    types.map((t) => h("option", { value: t }, t)),
  );

  const detail = h("section", { class: "detail", tabindex: "-1", "aria-label": "Event", hidden: true });

  async function redeliverForm(ev) {
    const select = h("select", { name: "endpoint" }, h("option", { value: "" }, "Every subscribed endpoint"));
    try {
      const eps = await api("GET", "/v1/webhook-endpoints", { query: "$limit=100" });
      for (const ep of eps.data) select.append(h("option", { value: ep.id }, `${ep.url} (${ep.id})`));
    } catch {
      // The list of endpoints is a convenience; "every subscribed" still works.
    }
    const out = h("div", { class: "form-message" });
    const button = h("button", { type: "submit" }, "Redeliver");
    const form = h("form", { class: "inline-form", novalidate: true }, field("Send again to", select), button, out);
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      busy(button, async () => {
        out.replaceChildren();
        try {
          const body = select.value ? { endpointId: select.value } : {};
          const r = await api("POST", `/v1/events/${encodeURIComponent(ev.id)}/redeliver`, { body });
          const n = r.endpointIds.length;
          out.append(
            notice(
              n
                ? `Queued for ${n} endpoint${n === 1 ? "" : "s"}: ${r.endpointIds.join(", ")}`
                : "No endpoint subscribes to this event type: pick one endpoint.",
              n ? "ok" : "warn",
            ),
          );
        } catch (err) {
          out.append(errorBox(err));
        }
      });
    });
    return form;
  }

  async function show(id) {
    detail.hidden = false;
    fill(detail, h("p", {}, "Loading…"));
    try {
      const ev = await api("GET", `/v1/events/${encodeURIComponent(id)}`);
      fill(
        detail,
        h("div", { class: "detail-head" }, h("h2", {}, ev.type), h("button", { type: "button", class: "secondary small", onclick: () => {
          detail.hidden = true;
        } }, "Close")),
        h("p", {}, h("code", {}, ev.id), " · ", timeText(ev.createdAt)),
        await redeliverForm(ev),
        jsonView(ev, `Event ${ev.id} as JSON`),
      );
    } catch (err) {
      fill(detail, errorBox(err));
    }
    detail.focus();
  }

  const list = pagedList({
    path: "/v1/events",
    caption: "Events",
    base: () => (typeSelect.value ? [["type", typeSelect.value]] : []),
    defaultSort: ["$sort[createdAt]", "-1"],
    placeholder: "e.g. data.id=pat_…&$limit=25",
    columns: () => [
      { label: "id", value: (e) => h("button", { type: "button", class: "link", onclick: () => show(e.id) }, e.id) },
      { label: "type", value: (e) => e.type },
      { label: "object", value: (e) => e.data && e.data.id },
      { label: "createdAt", value: (e) => timeText(e.createdAt) },
    ],
    empty: "No events match.",
  });
  typeSelect.addEventListener("change", () => list.reload());

  const el = h(
    "div",
    { class: "page" },
    h("h1", { tabindex: "-1" }, "Events"),
    h("p", { class: "hint" }, "Everything that happened in the last 30 days: the bodies of the webhooks."),
    h("div", { class: "toolbar" }, field("Event type", typeSelect)),
    h("div", { class: "split" }, list.el, detail),
  );
  await list.reload();
  if (rest) await show(rest);
  return { el, dispose: list.dispose };
}
