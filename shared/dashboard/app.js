// The dashboard's shell: the key form, the test/live switch (always
// visible; test mode colours the page), navigation between pages by the
// URL's fragment (#/webhooks/we_…), and the pages themselves.

import { session, keyShape, redacted, api, openApi } from "./api.js";
import { h, fill, errorBox, field, announce } from "./ui.js";
import overview from "./overview.js";
import keys from "./keys.js";
import webhooks from "./webhooks.js";
import events from "./events.js";
import data from "./data.js";

const PAGES = {
  overview: { title: "Overview", render: overview },
  keys: { title: "API keys", render: keys },
  webhooks: { title: "Webhooks", render: webhooks },
  events: { title: "Events", render: events },
  data: { title: "Data", render: data },
};

const organizations = new Map(); // key → organization, for this page's life
let current = null; // the page on screen: {dispose}
let renders = 0;

function route() {
  const m = /^#\/([a-z]+)(?:\/(.*))?$/.exec(window.location.hash);
  if (m && PAGES[m[1]]) return { page: m[1], rest: m[2] ? decodeURIComponent(m[2]) : "" };
  return { page: "overview", rest: "" };
}

export function go(hash) {
  if (window.location.hash === hash) render({ focus: true });
  else window.location.hash = hash;
}

async function organization(key) {
  if (!organizations.has(key)) organizations.set(key, await api("GET", "/v1/organization", { key }));
  return organizations.get(key);
}

function modeSwitch() {
  const mode = session.mode();
  const button = (m, label) =>
    h(
      "button",
      {
        type: "button",
        class: `mode-${m}`,
        "aria-pressed": String(mode === m),
        onclick: () => {
          if (session.mode() === m) return;
          session.setMode(m);
          announce(`${label} mode`);
          render({ focus: false });
        },
      },
      label,
    );
  return h("div", { class: "mode-switch", role: "group", "aria-label": "Mode" }, button("test", "Test"), button("live", "Live"));
}

function shell(org) {
  const mode = session.mode();
  document.body.classList.toggle("test-mode", mode === "test");
  document.body.classList.toggle("live-mode", mode === "live");
  const key = session.key();
  fill(
    document.getElementById("account"),
    org ? h("span", { class: "org-name" }, org.name) : null,
    key ? h("span", { class: "key-in-use" }, h("span", { class: "sr-only" }, "Key in use: "), redacted(key)) : null,
  );
  fill(document.getElementById("mode"), modeSwitch());
  const banner = document.getElementById("test-banner");
  banner.hidden = mode !== "test";
  const signout = document.getElementById("signout");
  signout.hidden = !session.key("test") && !session.key("live");
  const r = route();
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.getAttribute("href") === `#/${r.page}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

function keyForm(mode, error) {
  const input = h("input", {
    type: "password",
    name: "key",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
    class: "key-input",
  });
  const msg = h("div", { class: "form-message" });
  if (error) msg.append(errorBox(error));
  const submit = h("button", { type: "submit" }, "Use this key");
  const form = h(
    "form",
    { class: "key-form card", novalidate: true },
    h("h1", { tabindex: "-1" }, mode === "live" ? "Paste your live key" : "Paste your test key"),
    h(
      "p",
      {},
      mode === "live"
        ? "Live data is reached with a live secret key (sk_live_…). Test and live data are fully separate."
        : "The dashboard talks to this hub's public API with a secret key (sk_test_…). `hub serve` prints the sandbox's test keys when it starts; `hub org create` prints an organization's keys.",
    ),
    field(
      "Secret key",
      input,
      `sk_${mode}_… (or a restricted key with the "organization" permission, rk_${mode}_…). Kept in this browser tab only and sent only to this hub's API; closing the tab forgets it.`,
    ),
    h("div", { class: "buttons" }, submit),
    msg,
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const key = input.value.trim();
    msg.replaceChildren();
    const shape = keyShape(key);
    if (!shape) {
      msg.append(errorBox({ name: "Not a key", message: "A key looks like sk_test_ followed by 40 letters and digits." }));
      return;
    }
    if (shape.type === "publishable") {
      msg.append(errorBox({ name: "Publishable key", message: "A publishable key (pk_…) may only create patients from web forms; paste a secret key (sk_…) to use the dashboard." }));
      return;
    }
    submit.disabled = true;
    try {
      await organization(key);
      input.value = "";
      session.setKey(key);
      announce(`Using a ${shape.type} ${shape.mode} key`);
      render({ focus: true });
    } catch (err) {
      msg.append(errorBox(err));
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

async function render({ focus = false } = {}) {
  renders += 1;
  const mine = renders;
  if (current && current.dispose) current.dispose();
  current = null;
  const main = document.getElementById("main");
  const mode = session.mode();
  const key = session.key();
  shell(key ? organizations.get(key) : null);
  if (!key) {
    fill(main, keyForm(mode));
    if (focus) main.querySelector("h1").focus();
    return;
  }
  let org;
  let doc;
  try {
    [org, doc] = await Promise.all([organization(key), openApi()]);
  } catch (err) {
    if (mine !== renders) return;
    if (err.status === 401) {
      // The key no longer works (rolled, revoked): ask for another.
      session.drop(mode);
      organizations.delete(key);
      shell(null);
      fill(main, keyForm(mode, err));
    } else {
      fill(main, h("h1", { tabindex: "-1" }, "The hub did not answer"), errorBox(err));
    }
    return;
  }
  if (mine !== renders) return;
  shell(org);
  const r = route();
  const page = PAGES[r.page];
  document.title = `${page.title} · Practice Hub`;
  const view = await page.render({ doc, org, mode, key, rest: r.rest, go, refresh: () => render({ focus: false }) });
  if (mine !== renders) {
    if (view.dispose) view.dispose();
    return;
  }
  current = view;
  fill(main, view.el);
  if (focus) {
    const heading = main.querySelector("h1");
    if (heading) heading.focus();
  }
}

function start() {
  document.getElementById("signout").addEventListener("click", () => {
    session.forget();
    organizations.clear();
    announce("Keys forgotten");
    render({ focus: true });
  });
  document.querySelector(".skip").addEventListener("click", (e) => {
    e.preventDefault();
    const main = document.getElementById("main");
    (main.querySelector("h1") || main).focus();
  });
  window.addEventListener("hashchange", () => render({ focus: true }));
  window.addEventListener("hub:unauthorized", (e) => {
    const mode = session.mode();
    const key = session.key(mode);
    if (!key) return;
    session.drop(mode);
    organizations.delete(key);
    if (current && current.dispose) current.dispose();
    current = null;
    renders += 1;
    shell(null);
    fill(document.getElementById("main"), keyForm(mode, e.detail));
  });
  render({ focus: false });
}

start();
