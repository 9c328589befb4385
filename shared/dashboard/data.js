// Data: every resource the API lists (from its OpenAPI document) as a
// table, with the query language behind a filter box, cursor paging and a
// JSON view of one object.

import { api } from "./api.js";
import { h, fill, jsonView, errorBox, timeText } from "./ui.js";
import { resources, columns, pick } from "./schema.js";
import { pagedList, selectedFields } from "./list.js";

/** A table column for a field of `schema`; `open` makes the id a button. */
export function column(schema, name, open) {
  const s = (schema.properties || {})[name] || {};
  return {
    label: name,
    value: (row) => {
      const v = pick(row, name);
      if (name === "id" && open) {
        return h("button", { type: "button", class: "link", onclick: () => open(row) }, String(v));
      }
      if (s.format === "date-time" && v) return timeText(v);
      return v;
    },
  };
}

export default async function data({ doc, rest }) {
  const all = resources(doc);
  const [path, openId] = rest.split("/");
  const res = all.find((r) => r.path === path) || all.find((r) => r.path === "patients") || all[0];
  if (!res) return { el: h("div", { class: "page" }, h("h1", { tabindex: "-1" }, "Data"), h("p", {}, "The API lists no resources.")) };

  const detail = h("section", { class: "detail", tabindex: "-1", "aria-label": `${res.title}: one object`, hidden: true });
  async function show(id) {
    detail.hidden = false;
    fill(detail, h("p", {}, "Loading…"));
    try {
      const obj = await api("GET", `/v1/${res.path}/${encodeURIComponent(id)}`);
      fill(
        detail,
        h("div", { class: "detail-head" }, h("h2", {}, id), h("button", { type: "button", class: "secondary small", onclick: () => {
          detail.hidden = true;
        } }, "Close")),
        jsonView(obj, `${res.title} ${id} as JSON`),
      );
    } catch (err) {
      fill(detail, errorBox(err));
    }
    detail.focus();
  }

  const list = pagedList({
    path: `/v1/${res.path}`,
    caption: res.title,
    columns: (params) => columns(res.schema, selectedFields(params)).map((name) => column(res.schema, name, (row) => show(row.id))),
    empty: `No ${res.title.toLowerCase()} match.`,
  });

  const el = h(
    "div",
    { class: "page" },
    h("h1", { tabindex: "-1" }, `Data: ${res.title}`),
    h(
      "nav",
      { class: "tabs", "aria-label": "Resources" },
      h(
        "ul",
        {},
        all.map((r) =>
          h("li", {}, h("a", { href: `#/data/${r.path}`, "aria-current": r.path === res.path ? "page" : null }, r.title)),
        ),
      ),
    ),
    res.description ? h("p", { class: "hint" }, res.description) : null,
    h("div", { class: "split" }, list.el, detail),
  );
  await list.reload();
  if (openId) await show(openId);
  return { el, dispose: list.dispose };
}
