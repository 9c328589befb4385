// The client against a real `hub serve`: resources and their methods,
// pagination, idempotency keys, retries after Retry-After, errors, and
// webhook verification of real deliveries (both header schemes, a rolled
// secret's two signatures).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import { PracticeHub, PracticeHubError, verifyWebhook, WebhookVerificationError, RESOURCE_NAMES } from "../dist/index.js";
import { startHub } from "./hub.mjs";

let hub;
let client;
before(async () => {
  hub = await startHub();
  client = new PracticeHub({ apiKey: hub.secretKey, baseUrl: hub.baseUrl });
});
after(async () => {
  await hub?.stop();
});

const patientBody = (name) => ({
  fullName: name,
  primaryPhoneNumber: "07123 456789",
  primaryClinicName: "St. Mungo's Clinic – London",
  statusName: "patient created",
  referralName: "google",
  tracking: {},
});

test("a property per resource of the OpenAPI document, in camelCase", async () => {
  const doc = await (await fetch(`${hub.baseUrl}/openapi.json`)).json();
  const segments = new Set(
    Object.keys(doc.paths)
      .map((p) => p.match(/^\/v1\/([a-z-]+)/)?.[1])
      .filter((s) => s && s !== "organization"),
  );
  for (const seg of segments) {
    const name = seg.replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    assert.ok(RESOURCE_NAMES.includes(name), `${seg} → ${name}`);
    assert.equal(typeof client[name].list, "function", name);
  }
  for (const name of ["patients", "appointmentTypes", "webhookEndpoints", "creditNotes", "checkIns"]) {
    for (const m of ["create", "retrieve", "update", "del", "list"]) {
      assert.equal(typeof client[name][m], "function", `${name}.${m}`);
    }
  }
  assert.equal(typeof client.webhookEndpoints.rollSecret, "function");
  assert.equal(typeof client.events.redeliver, "function");
  assert.equal(typeof client.apiKeys.roll, "function");
  assert.equal((await client.organization()).object, "organization");
});

test("create, retrieve, update, del", async () => {
  const p = await client.patients.create(patientBody("Ada Client"));
  assert.match(p.id, /^pat_/);
  assert.equal((await client.patients.retrieve(p.id)).fullName, "Ada Client");
  const changed = await client.patients.update(p.id, { notes: "Prefers mornings" }, { ifMatch: p.version });
  assert.equal(changed.notes, "Prefers mornings");
  assert.equal(changed.version, p.version + 1);
  // A stale If-Match: 412.
  await assert.rejects(client.patients.update(p.id, { notes: "x" }, { ifMatch: p.version }), (e) => e.status === 412);
  const gone = await client.patients.del(p.id);
  assert.equal(gone.id, p.id);
  await assert.rejects(client.patients.retrieve(p.id), (e) => {
    assert.ok(e instanceof PracticeHubError);
    assert.equal(e.status, 404);
    assert.equal(e.type, "NOT_FOUND");
    assert.match(e.eventId, /[0-9a-f-]{8,}/);
    return true;
  });
});

test("list iterates over every page", async () => {
  const made = [];
  for (let i = 0; i < 7; i++) made.push((await client.referralSources.create({ name: `Paged source ${i}` })).id);
  const seen = [];
  for await (const r of client.referralSources.list({ id: { $in: made.slice(0, 6) }, $limit: 2, $sort: { name: 1 } })) {
    seen.push(r.id);
  }
  assert.deepEqual(seen, made.slice(0, 6));
  const all = [];
  for await (const r of client.referralSources.list({ $limit: 3 })) all.push(r.id);
  for (const id of made) assert.ok(all.includes(id));
  const page = await client.referralSources.list({ $limit: 2 }).firstPage();
  assert.equal(page.data.length, 2);
  assert.ok(page.next);
});

test("errors carry status, type, message, eventId and the invalid fields", async () => {
  await assert.rejects(client.patients.create({ fullName: "" }), (e) => {
    assert.ok(e instanceof PracticeHubError);
    assert.equal(e.status, 400);
    assert.equal(e.type, "INVALID_PARAMETERS");
    assert.ok(e.message.length > 0);
    assert.ok(e.eventId);
    assert.ok(e.errors.some((f) => f.field === "fullName"), JSON.stringify(e.errors));
    assert.ok(e.errors.some((f) => f.field === "primaryPhoneNumber"));
    return true;
  });
  const bad = new PracticeHub({ apiKey: "sk_test_nope", baseUrl: hub.baseUrl });
  await assert.rejects(bad.patients.retrieve("pat_x"), (e) => e.status === 401 && e.type === "AUTH_ERROR" && /cut short/.test(e.message));
});

test("every POST carries an Idempotency-Key; a given one replays the first response", async () => {
  const seen = [];
  const spy = new PracticeHub({
    apiKey: hub.secretKey,
    baseUrl: hub.baseUrl,
    fetch: (url, init) => {
      seen.push({ method: init.method, key: init.headers["Idempotency-Key"] });
      return fetch(url, init);
    },
  });
  const a = await spy.referralSources.create({ name: "Keyed source" });
  const b = await spy.referralSources.create({ name: "Keyed source 2" });
  assert.equal(seen.length, 2);
  assert.ok(seen.every((s) => s.method === "POST" && typeof s.key === "string" && s.key.length >= 16));
  assert.notEqual(seen[0].key, seen[1].key);
  assert.notEqual(a.id, b.id);
  const first = await spy.referralSources.create({ name: "Once only" }, { idempotencyKey: "ts-client-once" });
  const again = await spy.referralSources.create({ name: "Once only" }, { idempotencyKey: "ts-client-once" });
  assert.equal(again.id, first.id);
  assert.equal(seen.at(-1).key, "ts-client-once");
  // Reads carry none.
  await spy.referralSources.retrieve(first.id);
  assert.equal(seen.at(-1).key, undefined);
});

test("429 and 503 are retried after Retry-After with the same Idempotency-Key", async () => {
  const attempts = [];
  let failures = [429, 503];
  const flaky = new PracticeHub({
    apiKey: hub.secretKey,
    baseUrl: hub.baseUrl,
    fetch: async (url, init) => {
      attempts.push({ at: Date.now(), key: init.headers["Idempotency-Key"] });
      const status = failures.shift();
      if (status) {
        return new Response(JSON.stringify({ name: "TOO_MANY_REQUESTS", message: "slow down", eventId: "e" }), {
          status,
          headers: { "Retry-After": "1", "Content-Type": "application/json" },
        });
      }
      return fetch(url, init);
    },
  });
  const t0 = Date.now();
  const r = await flaky.referralSources.create({ name: "Retried source" });
  assert.match(r.id, /^ref_|^rs_|_/);
  assert.equal(attempts.length, 3);
  assert.ok(attempts.every((a) => a.key === attempts[0].key), "one key across retries");
  assert.ok(attempts[1].at - attempts[0].at >= 950, "waited Retry-After");
  assert.ok(Date.now() - t0 >= 1900);
  // Past maxRetries the error is thrown.
  failures = [429, 429];
  const impatient = new PracticeHub({
    apiKey: hub.secretKey,
    baseUrl: hub.baseUrl,
    maxRetries: 1,
    fetch: async (url, init) => {
      const status = failures.shift();
      if (status) return new Response("{}", { status, headers: { "Retry-After": "0" } });
      return fetch(url, init);
    },
  });
  await assert.rejects(impatient.referralSources.create({ name: "Never" }), (e) => e.status === 429);
});

test("a real 429 from the hub's rate limit is retried", async () => {
  const limited = await startHub(["--rate-limit", "2,2"]);
  try {
    const c = new PracticeHub({ apiKey: limited.secretKey, baseUrl: limited.baseUrl, maxRetries: 10 });
    const all = await Promise.all(Array.from({ length: 8 }, () => c.clinics.list({ $limit: 1 }).firstPage()));
    assert.equal(all.length, 8);
  } finally {
    await limited.stop();
  }
});

/** A receiver on a free port that keeps every delivery's raw body and headers. */
async function receiver() {
  const got = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      got.push({ body: Buffer.concat(chunks), headers: req.headers });
      res.writeHead(200).end("ok");
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${server.address().port}/hook`, got, close: () => server.close() };
}

async function waitFor(what, check) {
  for (let i = 0; i < 300; i++) {
    const v = check();
    if (v) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

test("verifyWebhook: both header schemes, a rolled secret, tolerance, tampering", async () => {
  const rx = await receiver();
  try {
    const ep = await client.webhookEndpoints.create({ url: rx.url, enabledEvents: ["referralSource.created"] });
    const secret = ep.secret;
    assert.match(secret, /^whsec_/);
    const made = await client.referralSources.create({ name: "Signed source" });
    const d = await waitFor("a delivery", () => rx.got.find((g) => g.body.includes(made.id)));
    assert.ok(d.headers["hub-signature"] && d.headers["webhook-signature"]);

    const event = verifyWebhook(d.body, d.headers, secret);
    assert.equal(event.type, "referralSource.created");
    assert.equal(event.data.id, made.id);
    // Either scheme alone.
    const { "hub-signature": hubSig, ...standard } = d.headers;
    assert.equal(verifyWebhook(d.body, standard, secret).id, event.id);
    const { "webhook-signature": _s, ...stripeOnly } = d.headers;
    assert.equal(verifyWebhook(d.body.toString("utf8"), new Headers(stripeOnly), secret).id, event.id);
    // A wrong secret, a changed body, an old signature, no signature.
    assert.throws(() => verifyWebhook(d.body, d.headers, "whsec_" + Buffer.from("nope").toString("base64")), WebhookVerificationError);
    assert.throws(() => verifyWebhook(d.body.toString().replace("Signed", "Forged"), d.headers, secret), WebhookVerificationError);
    assert.throws(() => verifyWebhook(d.body.toString().replace("Signed", "Forged"), standard, secret), WebhookVerificationError);
    const later = Number(d.headers["webhook-timestamp"]) + 600;
    assert.throws(() => verifyWebhook(d.body, d.headers, secret, { now: later }), /old/);
    assert.throws(() => verifyWebhook(d.body, standard, secret, { now: later }), /old/);
    assert.equal(verifyWebhook(d.body, d.headers, secret, { now: later, toleranceSeconds: 700 }).id, event.id);
    assert.throws(() => verifyWebhook(d.body, {}, secret), /No signature/);

    // A rolled secret: both sign while they overlap, either verifies.
    const rolled = await client.webhookEndpoints.rollSecret(ep.id, { overlapHours: 1 });
    const newSecret = rolled.secret;
    assert.ok(newSecret && newSecret !== secret, JSON.stringify(rolled));
    const second = await client.referralSources.create({ name: "Signed twice" });
    const d2 = await waitFor("a delivery after the roll", () => rx.got.find((g) => g.body.includes(second.id)));
    assert.equal((d2.headers["hub-signature"].match(/v1=/g) ?? []).length, 2);
    assert.equal(d2.headers["webhook-signature"].split(" ").length, 2);
    const { "hub-signature": _h, ...standard2 } = d2.headers;
    const { "webhook-signature": _w, ...stripe2 } = d2.headers;
    for (const s of [secret, newSecret, [newSecret, "whsec_b3RoZXI="]]) {
      assert.equal(verifyWebhook(d2.body, standard2, s).data.id, second.id);
      assert.equal(verifyWebhook(d2.body, stripe2, s).data.id, second.id);
    }
  } finally {
    rx.close();
  }
});

test("the package builds as ESM with its types", () => {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url)));
  assert.equal(pkg.name, "@practice-hub/client");
  assert.equal(pkg.type, "module");
  const dts = readFileSync(new URL("../dist/index.d.ts", import.meta.url), "utf8");
  assert.match(dts, /class PracticeHub/);
});
