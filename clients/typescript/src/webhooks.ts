// Webhook verification: the hub signs every delivery twice, with
// `Hub-Signature: t=<unix>,v1=<hex>[,v1=<hex>]` (HMAC-SHA256 keyed with the
// whole `whsec_…` string over `"{t}.{body}"`, Stripe's scheme) and with the
// Standard Webhooks headers `webhook-id`, `webhook-timestamp`,
// `webhook-signature: v1,<base64> [v1,<base64>]` (keyed with the base64
// bytes after `whsec_`, over `"{id}.{timestamp}.{body}"`). While a rolled
// secret overlaps, each header carries one signature per secret.

import { createHmac, timingSafeEqual } from "node:crypto";
import { PracticeHubError } from "./client.js";

/** Headers as a fetch `Headers`, a Node `IncomingHttpHeaders` or a plain object. */
export type HeaderSource =
  | Headers
  | Record<string, string | string[] | undefined>
  | { get(name: string): string | null };

export interface VerifyOptions {
  /** How old (or how far in the future) a signature may be, in seconds (default 300). */
  toleranceSeconds?: number;
  /** The current time in Unix seconds (tests). */
  now?: number;
}

/** A webhook event envelope. */
export interface WebhookEvent<D = Record<string, unknown>> {
  id: string;
  object?: "event";
  type: string;
  createdAt: string;
  livemode: boolean;
  organizationId?: string;
  data: D;
  [key: string]: unknown;
}

/** Thrown by `verifyWebhook` for any signature that does not verify. */
export class WebhookVerificationError extends PracticeHubError {
  constructor(message: string) {
    super(400, "WEBHOOK_SIGNATURE_INVALID", message);
    this.name = "WebhookVerificationError";
  }
}

function header(headers: HeaderSource, name: string): string | undefined {
  if (typeof (headers as Headers).get === "function") {
    return (headers as Headers).get(name) ?? undefined;
  }
  const lower = name.toLowerCase();
  for (const [k, v] of Object.entries(headers as Record<string, string | string[] | undefined>)) {
    if (k.toLowerCase() === lower && v !== undefined) return Array.isArray(v) ? v.join(",") : v;
  }
  return undefined;
}

function same(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

function checkTime(timestamp: string, tolerance: number, now: number) {
  if (!/^\d+$/.test(timestamp)) throw new WebhookVerificationError("The signature's timestamp is not a number.");
  const age = now - Number(timestamp);
  if (Math.abs(age) > tolerance) {
    throw new WebhookVerificationError(
      `The signature's timestamp is ${Math.round(Math.abs(age))} s ${age > 0 ? "old" : "in the future"} (tolerance ${tolerance} s).`,
    );
  }
}

/**
 * Verify a delivery and answer its parsed event, or throw
 * `WebhookVerificationError`. `rawBody` is the exact bytes received (parse
 * nothing before). `secret` is the endpoint's `whsec_…`, or several (a
 * rolled secret and its successor). Either header scheme is accepted.
 */
export function verifyWebhook<D = Record<string, unknown>>(
  rawBody: string | Uint8Array,
  headers: HeaderSource,
  secret: string | string[],
  options: VerifyOptions = {},
): WebhookEvent<D> {
  const body = typeof rawBody === "string" ? Buffer.from(rawBody, "utf8") : Buffer.from(rawBody);
  const secrets = (Array.isArray(secret) ? secret : [secret]).filter((s) => typeof s === "string" && s !== "");
  if (secrets.length === 0) throw new TypeError("verifyWebhook: a signing secret (whsec_…) is required");
  const tolerance = options.toleranceSeconds ?? 300;
  const now = options.now ?? Math.floor(Date.now() / 1000);

  const hub = header(headers, "hub-signature");
  const swId = header(headers, "webhook-id");
  const swTs = header(headers, "webhook-timestamp");
  const swSig = header(headers, "webhook-signature");
  let verified = false;
  if (hub !== undefined) {
    let t: string | undefined;
    const v1: Buffer[] = [];
    for (const part of hub.split(",")) {
      const [k, v] = part.trim().split("=", 2);
      if (k === "t") t = v;
      else if (k === "v1" && v && /^[0-9a-f]+$/i.test(v)) v1.push(Buffer.from(v, "hex"));
    }
    if (t === undefined || v1.length === 0) throw new WebhookVerificationError("Hub-Signature has no `t=` or no `v1=`.");
    checkTime(t, tolerance, now);
    const signed = Buffer.concat([Buffer.from(`${t}.`), body]);
    verified = secrets.some((s) => {
      const mac = createHmac("sha256", s).update(signed).digest();
      return v1.some((sig) => same(sig, mac));
    });
  } else if (swId !== undefined && swTs !== undefined && swSig !== undefined) {
    checkTime(swTs, tolerance, now);
    const signed = Buffer.concat([Buffer.from(`${swId}.${swTs}.`), body]);
    const given = swSig
      .split(" ")
      .map((s) => s.trim().split(","))
      .filter(([v, sig]) => v === "v1" && sig)
      .map(([, sig]) => Buffer.from(sig, "base64"));
    verified = secrets.some((s) => {
      const key = Buffer.from(s.startsWith("whsec_") ? s.slice(6) : s, "base64");
      const mac = createHmac("sha256", key).update(signed).digest();
      return given.some((sig) => same(sig, mac));
    });
  } else {
    throw new WebhookVerificationError(
      "No signature: expected `Hub-Signature` or the `webhook-id`, `webhook-timestamp` and `webhook-signature` headers.",
    );
  }
  if (!verified) throw new WebhookVerificationError("No signature matches the secret.");
  let event: WebhookEvent<D>;
  try {
    event = JSON.parse(body.toString("utf8"));
  } catch {
    throw new WebhookVerificationError("The body is not JSON.");
  }
  return event;
}
