// Overview: the organization, the mode and key in use, request counts
// (not counted by the hub yet: said so), the API's documents, webhook
// endpoints at a glance and the latest events.

import { api, keyShape, redacted } from "./api.js";
import { h, table, timeText, errorBox, badge } from "./ui.js";
import { resources } from "./schema.js";

function card(title, ...body) {
  return h("section", { class: "card", "aria-label": title }, h("h2", {}, title), ...body);
}

function dl(pairs) {
  return h(
    "dl",
    { class: "pairs" },
    pairs.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
  );
}

export default async function overview({ org, mode, key, doc }) {
  const shape = keyShape(key);
  const [hooks, recent] = await Promise.allSettled([
    api("GET", "/v1/webhook-endpoints", { query: "$limit=100" }),
    api("GET", "/v1/events", { query: "$sort[createdAt]=-1&$limit=5" }),
  ]);

  const hooksBody =
    hooks.status === "fulfilled"
      ? (() => {
          const list = hooks.value.data;
          const disabled = list.filter((e) => e.status === "disabled").length;
          const n = `${list.length}${hooks.value.next ? "+" : ""}`;
          return [
            h("p", { class: "big" }, n),
            h("p", {}, `endpoint${list.length === 1 ? "" : "s"} in ${mode} mode`, disabled ? [" ", badge(`${disabled} disabled`)] : ""),
            h("p", {}, h("a", { href: "#/webhooks" }, "Manage webhooks")),
          ];
        })()
      : [errorBox(hooks.reason)];

  const recentBody =
    recent.status === "fulfilled"
      ? [
          table({
            caption: "Recent events",
            columns: [
              { label: "Type", value: (e) => h("a", { href: `#/events/${encodeURIComponent(e.id)}` }, e.type) },
              { label: "When", value: (e) => timeText(e.createdAt) },
            ],
            rows: recent.value.data,
            empty: "No events yet.",
          }),
          h("p", {}, h("a", { href: "#/events" }, "All events")),
        ]
      : [errorBox(recent.reason)];

  const el = h(
    "div",
    { class: "page" },
    h("h1", { tabindex: "-1" }, "Overview"),
    h(
      "div",
      { class: "cards" },
      card(
        "Organization",
        dl([
          ["Name", org.name],
          ["Id", h("code", {}, org.id)],
          ["Created", timeText(org.createdAt)],
        ]),
      ),
      card(
        "Mode",
        h("p", { class: "big" }, mode === "test" ? "Test" : "Live"),
        h(
          "p",
          {},
          mode === "test"
            ? "Test objects exist only for test keys; test mode allows http webhook URLs and holds the sandbox clinic."
            : "Live objects exist only for live keys; live webhook URLs must be https and public.",
        ),
        dl([["Key in use", `${redacted(key)} (${shape.type})`]]),
      ),
      card(
        "Requests in the last hour",
        h("p", { class: "big" }, "Not available"),
        h(
          "p",
          { class: "hint" },
          "The hub does not count requests yet. Every request is one JSON log line (stderr of hub serve; CloudWatch on AWS) with its route, status, duration and eventId.",
        ),
      ),
      card("Webhook endpoints", ...hooksBody),
      card(
        "API",
        h("p", {}, h("a", { href: "/openapi.json" }, "OpenAPI document"), " (OpenAPI 3.1, generated from the route table)"),
        h(
          "ul",
          { class: "resource-links" },
          resources(doc).map((r) => h("li", {}, h("a", { href: `#/data/${r.path}` }, r.title))),
        ),
      ),
      card("Recent events", ...recentBody),
    ),
  );
  return { el };
}
