// One list of the API as a table: the query language behind a filter box,
// cursor paging (`next`/`prev` → `$after`/`$before`), errors with their
// message and eventId, and optionally refreshing itself.

import { api, enc } from "./api.js";
import { h, fill, table, errorBox, field, timeText, announce } from "./ui.js";

const PAGING = new Set(["$after", "$before"]);

/** The `$select` fields of a query string, in order. */
export function selectedFields(params) {
  const out = [];
  for (const [k, v] of params) {
    if (/^\$select(\[\d*\])?$/.test(k) && v) out.push(...v.split(",").filter(Boolean));
  }
  return out;
}

/**
 * pagedList({path, caption, columns: params => [{label, value}], base: () =>
 * [[k, v]], defaultSort: ["$sort[createdAt]", "-1"], filter: true,
 * refreshEvery: ms, empty, onChange: page => …}) → {el, reload(), dispose()}.
 */
export function pagedList(opts) {
  const {
    path,
    caption,
    columns,
    base = () => [],
    defaultSort = null,
    filter = true,
    placeholder = "e.g. fullName=John Smith&$sort[createdAt]=-1&$limit=25",
    refreshEvery = 0,
    empty = "Nothing matches.",
  } = opts;
  let filterText = opts.initialFilter || "";
  let cursor = null; // {param, value}
  let last = null; // the last page's data, as JSON text
  let seq = 0; // the latest request; answers to older ones are dropped
  let pending = 0;
  let timer = null;

  const results = h("div", { class: "results", "aria-live": "polite" });
  const requestLine = h("p", { class: "request-line" });
  const updated = h("span", { class: "hint" });
  const count = h("span", { class: "count" });
  const prev = h("button", { type: "button", class: "secondary", disabled: true }, "← Previous");
  const next = h("button", { type: "button", class: "secondary", disabled: true }, "Next →");
  const pager = h("div", { class: "pager", role: "group", "aria-label": `${caption} pages` }, prev, count, next, updated);
  let prevCursor = null;
  let nextCursor = null;
  prev.addEventListener("click", () => {
    if (prevCursor) {
      cursor = { param: "$before", value: prevCursor };
      reload();
    }
  });
  next.addEventListener("click", () => {
    if (nextCursor) {
      cursor = { param: "$after", value: nextCursor };
      reload();
    }
  });

  const el = h("section", { class: "list", "aria-label": caption });
  if (filter) {
    const input = h("input", {
      type: "search",
      name: "filter",
      value: filterText,
      placeholder,
      autocomplete: "off",
      spellcheck: "false",
      class: "filter-input",
    });
    const form = h(
      "form",
      { class: "filter", role: "search", novalidate: true },
      field(
        "Filter",
        input,
        "The API's query language: field=value, field[$gt]=…, field[$in][]=…, $search=words, $sort[field]=-1, $limit=25, $select[]=field",
      ),
      h("div", { class: "buttons" }, h("button", { type: "submit" }, "Apply"), h("button", { type: "button", class: "secondary", onclick: () => {
        input.value = "";
        filterText = "";
        cursor = null;
        reload();
      } }, "Clear")),
    );
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      filterText = input.value.trim();
      cursor = null;
      reload();
    });
    el.append(form);
  }
  el.append(requestLine, results, pager);

  function params() {
    const p = new URLSearchParams(filterText.replace(/^\?/, ""));
    for (const k of [...p.keys()]) if (PAGING.has(k)) p.delete(k);
    for (const [k, v] of base()) p.append(k, v);
    if (defaultSort && ![...p.keys()].some((k) => k.startsWith("$sort"))) p.append(defaultSort[0], defaultSort[1]);
    return p;
  }

  /** The query string, with `$`, `[` and `]` left readable. */
  function queryString(p) {
    const e = (s) => enc(s).replace(/%24/g, "$").replace(/%5B/gi, "[").replace(/%5D/gi, "]");
    return [...p].map(([k, v]) => `${e(k)}=${e(v)}`).join("&");
  }

  async function reload({ quiet = false } = {}) {
    if (quiet && pending) return;
    seq += 1;
    const mine = seq;
    pending += 1;
    const p = params();
    let query = queryString(p);
    if (cursor) query += `${query ? "&" : ""}${cursor.param}=${enc(cursor.value)}`;
    fill(requestLine, h("span", { class: "sr-only" }, "Request: "), h("code", {}, `GET ${path}${query ? `?${query}` : ""}`));
    if (!quiet) results.setAttribute("aria-busy", "true");
    try {
      const page = await api("GET", path, { query });
      if (mine !== seq) return;
      const text = JSON.stringify(page.data);
      prevCursor = page.prev || null;
      nextCursor = page.next || null;
      prev.disabled = !prevCursor;
      next.disabled = !nextCursor;
      const shown = page.data.length;
      count.textContent = page.total !== undefined && page.total !== null ? `${shown} of ${page.total}` : `${shown} shown`;
      if (text !== last || !quiet) {
        last = text;
        fill(results, table({ caption, columns: columns(p), rows: page.data, empty }));
        if (!quiet) announce(`${caption}: ${shown} shown`);
        if (opts.onChange) opts.onChange(page);
      }
      if (refreshEvery) {
        fill(updated, "Refreshes itself · updated ", timeText(new Date().toISOString()));
      }
      if (opts.onPage) opts.onPage(page);
    } catch (err) {
      if (mine !== seq) return;
      last = null;
      prev.disabled = true;
      next.disabled = true;
      count.textContent = "";
      fill(results, errorBox(err));
    } finally {
      pending -= 1;
      if (mine === seq) results.removeAttribute("aria-busy");
    }
  }

  if (refreshEvery) {
    timer = setInterval(() => {
      if (!document.hidden && !cursor && el.isConnected) reload({ quiet: true });
    }, refreshEvery);
  }

  return {
    el,
    reload,
    dispose() {
      clearInterval(timer);
    },
  };
}
