//! Webhook endpoints: where events are POSTed, and every rule of one —
//! subscriptions, destination checks, secrets kept apart from the endpoint,
//! custom header values write-only — plus the actions reveal-secret,
//! roll-secret, test and enable, and the deliveries sub-list.

use super::events::need_queue;
use super::{
    engine, webhook_deliveries, Action, BoxFuture, Change, Ctx, Reply, Resource, Retries, Rules,
    Shape, SubList, Verb,
};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::schema::{Field, Ty};
use crate::store::{Expect, WriteOp, WriteTx};
use crate::webhooks::{
    deliver, event as new_event, new_secret, with_events, SECRETS_KIND, STATE_KIND, TEST_EVENT,
};
use async_trait::async_trait;
use serde_json::{json, Map, Value};

static EVENT_TYPE: Ty = Ty::Str;

/// Headers a subscription may not set: they are the hub's own.
pub const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "user-agent",
    "connection",
    "transfer-encoding",
    "hub-signature",
    "hub-event",
    "hub-delivery",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

/// A header value as responses and events show it: its last four
/// characters at most, when it is long enough not to give itself away.
pub fn mask(value: &str) -> String {
    let n = value.chars().count();
    if n >= 16 {
        let tail: String = value.chars().skip(n - 4).collect();
        format!("****{tail}")
    } else {
        "****".into()
    }
}

fn masked(headers: &Map<String, Value>) -> Value {
    Value::Object(
        headers
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    Value::String(mask(v.as_str().unwrap_or_default())),
                )
            })
            .collect(),
    )
}

fn header_errors(headers: &Map<String, Value>, errors: &mut Vec<FieldError>) {
    for (name, v) in headers {
        let lower = name.to_ascii_lowercase();
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        {
            errors.push(FieldError::new(
                format!("headers.{name}"),
                "is not a valid header name",
            ));
        } else if RESERVED_HEADERS.contains(&lower.as_str()) {
            errors.push(FieldError::new(
                format!("headers.{name}"),
                "is set by the hub and cannot be overridden",
            ));
        }
        if v.as_str().is_some_and(|v| v.contains(['\r', '\n', '\0'])) {
            errors.push(FieldError::new(
                format!("headers.{name}"),
                "must not contain line breaks",
            ));
        }
    }
}

/// The endpoint's private record: signing secrets and header values.
async fn private(ctx: &Ctx<'_>, id: &str) -> ApiResult<Option<crate::store::Doc>> {
    Ok(ctx.store.get(&ctx.tenant.key(), SECRETS_KIND, id).await?)
}

struct EndpointRules;

#[async_trait]
impl Rules for EndpointRules {
    async fn check(&self, ctx: &Ctx<'_>, change: &mut Change<'_>) -> ApiResult<()> {
        let key = ctx.tenant.key();
        if change.verb == Verb::Delete {
            for kind in [SECRETS_KIND, STATE_KIND] {
                change.ops.push(WriteOp::Delete {
                    tenant: key.clone(),
                    kind,
                    id: change.id.to_string(),
                    expect: Expect::Absent,
                });
            }
            return Ok(());
        }
        let mut errors = Vec::new();
        if let Some(Value::Array(events)) = change.get("enabledEvents") {
            if events.is_empty() {
                errors.push(FieldError::new(
                    "enabledEvents",
                    "must list at least one event type, `*` or a wildcard such as `patient.*`",
                ));
            }
            let catalog = super::event_catalog();
            for (i, e) in events.iter().enumerate() {
                let e = e.as_str().unwrap_or_default();
                if !crate::webhooks::valid_pattern(catalog, e) {
                    let hint = crate::domain::nearest(e, catalog.iter().map(String::as_str))
                        .map(|n| format!("; did you mean `{n}`?"))
                        .unwrap_or_default();
                    errors.push(FieldError::new(
                        format!("enabledEvents[{i}]"),
                        format!("`{e}` is not an event type, `*` or `resource.*` (test.event cannot be subscribed){hint}"),
                    ));
                }
            }
        }
        // Header values are write-only: the real ones live in the private
        // record, the endpoint shows them masked.
        let old_private = match change.verb {
            Verb::Update => private(ctx, change.id).await?,
            _ => None,
        };
        let headers_given = match change.verb {
            Verb::Create => true,
            _ => change.patch.is_some_and(|p| p.contains_key("headers")),
        };
        let real: Map<String, Value> = if change.verb == Verb::Create {
            change
                .get("headers")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default()
        } else {
            let mut real = old_private
                .as_ref()
                .and_then(|p| p["headers"].as_object().cloned())
                .unwrap_or_default();
            match change.patch.and_then(|p| p.get("headers")) {
                Some(Value::Object(p)) => {
                    for (k, v) in p {
                        match v {
                            Value::Null => {
                                real.remove(k);
                            }
                            v => {
                                real.insert(k.clone(), v.clone());
                            }
                        }
                    }
                }
                Some(Value::Null) => real.clear(),
                _ => {}
            }
            real
        };
        header_errors(&real, &mut errors);
        if let Some(url) = change.get("url").and_then(Value::as_str) {
            if change.verb == Verb::Create || change.changed("url") {
                if let Err(why) = deliver::destination(url, ctx.tenant.livemode()).await {
                    errors.push(FieldError::new("url", why));
                }
            }
        }
        if !errors.is_empty() {
            return Err(ApiError::fields(errors));
        }
        change.new.insert("headers".into(), masked(&real));
        let status = change
            .new
            .entry("status")
            .or_insert_with(|| Value::String("enabled".into()))
            .clone();
        if status == "enabled" {
            change.new.remove("disabledReason");
        }
        match change.verb {
            Verb::Create => {
                let secret = new_secret();
                change.ops.push(WriteOp::Put {
                    tenant: key,
                    kind: SECRETS_KIND,
                    id: change.id.to_string(),
                    doc: json!({"id": change.id, "secrets": [{"secret": secret}], "headers": real, "version": 1}),
                    expect: Expect::Absent,
                });
                change.extra.insert("secret".into(), Value::String(secret));
            }
            Verb::Update => {
                if headers_given {
                    let p = old_private.ok_or_else(ApiError::internal)?;
                    let v = p["version"].as_u64().unwrap_or(1);
                    let mut doc = (*p).clone();
                    doc["headers"] = Value::Object(real);
                    doc["version"] = json!(v + 1);
                    change.ops.push(WriteOp::Put {
                        tenant: key.clone(),
                        kind: SECRETS_KIND,
                        id: change.id.to_string(),
                        doc,
                        expect: Expect::Version(v),
                    });
                }
                if status == "enabled" && change.was("status") != Some(&status) {
                    // A fresh run of failures; events from before now (while
                    // it was disabled) are not delivered.
                    let state = ctx.store.get(&key, STATE_KIND, change.id).await?;
                    let (expect, v) = match &state {
                        Some(s) => {
                            let v = s["version"].as_u64().unwrap_or(1);
                            (Expect::Version(v), v + 1)
                        }
                        None => (Expect::Absent, 1),
                    };
                    change.ops.push(WriteOp::Put {
                        tenant: key,
                        kind: STATE_KIND,
                        id: change.id.to_string(),
                        doc: json!({"id": change.id, "consecutiveFailures": 0, "enabledAt": change.now_ms, "version": v}),
                        expect,
                    });
                }
            }
            Verb::Delete => {}
        }
        Ok(())
    }
}

static SECRET_FIELDS: &[Field] = &[
    Field::new("object", Ty::Str, "Always `webhookEndpointSecret`.").read_only(),
    Field::new("endpointId", Ty::Str, "The endpoint.").read_only(),
    Field::new("secret", Ty::Str, "The newest signing secret (`whsec_…`).").read_only(),
    Field::new(
        "headers",
        Ty::Metadata,
        "The custom headers' values, unmasked (reveal-secret only).",
    )
    .read_only(),
    Field::new(
        "previousSecretsExpireAt",
        Ty::Timestamp,
        "Until when the previous secrets still sign (roll-secret with an overlap).",
    )
    .read_only(),
];

fn reveal_secret<'a>(
    ctx: &'a Ctx<'a>,
    id: &'a str,
    _body: Map<String, Value>,
) -> BoxFuture<'a, ApiResult<Reply>> {
    Box::pin(async move {
        engine::get(ctx, &RESOURCE, id).await?;
        let p = private(ctx, id).await?.ok_or_else(ApiError::internal)?;
        let secret = deliver::active_secrets(&p)
            .last()
            .cloned()
            .ok_or_else(ApiError::internal)?;
        let headers = p.get("headers").cloned().unwrap_or_else(|| json!({}));
        Ok(Reply {
            once: &["secret", "headers"],
            ..Reply::new(
                200,
                json!({"object": "webhookEndpointSecret", "endpointId": id, "secret": secret, "headers": headers}),
            )
        })
    })
}

fn roll_secret<'a>(
    ctx: &'a Ctx<'a>,
    id: &'a str,
    body: Map<String, Value>,
) -> BoxFuture<'a, ApiResult<Reply>> {
    Box::pin(async move {
        engine::get(ctx, &RESOURCE, id).await?;
        let overlap = body
            .get("overlapHours")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let mut retries = Retries::new();
        loop {
            let current = private(ctx, id).await?.ok_or_else(ApiError::internal)?;
            let version = current["version"].as_u64().unwrap_or(1);
            let now = crate::time::now_ms();
            let expires = crate::time::format_ms(now + overlap * 3_600_000);
            let mut kept: Vec<Value> = Vec::new();
            if overlap > 0 {
                for s in deliver::active_secrets(&current) {
                    kept.push(json!({"secret": s, "expiresAt": expires}));
                }
            }
            let secret = new_secret();
            kept.push(json!({"secret": secret}));
            let mut doc = (*current).clone();
            doc["secrets"] = Value::Array(kept);
            doc["version"] = json!(version + 1);
            let op = WriteOp::Put {
                tenant: ctx.tenant.key(),
                kind: SECRETS_KIND,
                id: id.to_string(),
                doc,
                expect: Expect::Version(version),
            };
            let mut out =
                json!({"object": "webhookEndpointSecret", "endpointId": id, "secret": secret});
            if overlap > 0 {
                out["previousSecretsExpireAt"] = json!(expires);
            }
            let reply = Reply {
                once: &["secret"],
                ..Reply::new(200, out)
            };
            match ctx.commit(WriteTx::of(vec![op]), &reply).await {
                Ok(()) => return Ok(reply),
                Err(e) => retries.again(e, "webhook endpoint's secret").await?,
            }
        }
    })
}

fn send_test<'a>(
    ctx: &'a Ctx<'a>,
    id: &'a str,
    _body: Map<String, Value>,
) -> BoxFuture<'a, ApiResult<Reply>> {
    Box::pin(async move {
        let endpoint = engine::get(ctx, &RESOURCE, id).await?;
        if endpoint["status"] != "enabled" {
            return Err(ApiError::conflict(
                "This endpoint is disabled: enable it first (POST …/enable).",
            ));
        }
        let queue = need_queue(ctx)?;
        let key = ctx.tenant.key();
        let ev = new_event(
            ctx.tenant,
            TEST_EVENT.into(),
            json!({"object": "test", "endpointId": id, "message": "A test event from Practice Hub."}),
        );
        let envelope = ev.envelope.clone();
        // Stored for the events API, but not in the outbox: it goes to this
        // endpoint only.
        let mut tx = with_events(Vec::new(), vec![ev]);
        tx.events.clear();
        // New ids only: a write cancelled for contention is sent again.
        crate::store::commit_retrying(ctx.store, tx).await?;
        let id_of = envelope["id"].as_str().unwrap_or_default();
        queue
            .send(
                vec![deliver::message(&key, id_of, id)],
                std::time::Duration::ZERO,
            )
            .await?;
        Ok(Reply::new(202, envelope))
    })
}

fn enable<'a>(
    ctx: &'a Ctx<'a>,
    id: &'a str,
    _body: Map<String, Value>,
) -> BoxFuture<'a, ApiResult<Reply>> {
    Box::pin(
        async move { engine::update(ctx, &RESOURCE, id, json!({"status": "enabled"}), None).await },
    )
}

/// At least one event pattern.
fn schema_rules(s: &mut Value, _create: bool) {
    crate::schema::property(s, "enabledEvents")["minItems"] = serde_json::json!(1);
}

pub static RESOURCE: Resource = Resource {
    path: crate::webhooks::ENDPOINTS_KIND,
    object: "webhookEndpoint",
    label: "webhook endpoint",
    prefix: "we",
    fields: &[
        Field::new(
            "url",
            Ty::Url,
            "Where events are POSTed. Live mode: https, and not to private or loopback addresses.",
        )
        .required(),
        Field::new("description", Ty::Text, "What this endpoint is for."),
        Field::new(
            "enabledEvents",
            Ty::Array(&EVENT_TYPE, 100),
            "Event types: exact (`patient.created`), `*`, or `patient.*`.",
        )
        .required(),
        Field::new(
            "headers",
            Ty::Metadata,
            "Extra headers sent with every delivery (e.g. an Authorization header). Write-only values: responses and events show them masked (`****` and at most the last four characters); reveal-secret shows them.",
        ),
        Field::new(
            "status",
            Ty::Enum(&["enabled", "disabled"]),
            "Disabled endpoints receive nothing.",
        ),
        Field::new(
            "disabledReason",
            Ty::Str,
            "Why the hub disabled the endpoint.",
        )
        .read_only(),
        Field::new(
            "metadata",
            Ty::Metadata,
            "Up to 50 string keys and values for your own use.",
        ),
    ],
    search_fields: &["url", "description"],
    description: "A URL that receives signed events.",
    rules: &EndpointRules,
    schema_rules: Some(schema_rules),
    created_extra: &[Field::new(
        "secret",
        Ty::Str,
        "The signing secret (`whsec_…`); shown again by reveal-secret. Left out of an idempotent replay.",
    )
    .read_only()],
    actions: &[
        Action {
            name: "reveal-secret",
            summary: "Show the newest signing secret and the custom headers' values.",
            body: &[],
            status: 200,
            response: Shape::Object {
                name: "WebhookEndpointSecret",
                fields: SECRET_FIELDS,
            },
            conflicts: false,
            run: reveal_secret,
        },
        Action {
            name: "roll-secret",
            summary: "Replace the signing secret; with `overlapHours`, the previous secrets keep signing (one `v1` each) until then.",
            body: &[Field::new(
                "overlapHours",
                Ty::Int { min: 0, max: 24 },
                "Hours the previous secrets keep signing (default 0).",
            )],
            status: 200,
            response: Shape::Object {
                name: "WebhookEndpointSecret",
                fields: SECRET_FIELDS,
            },
            conflicts: false,
            run: roll_secret,
        },
        Action {
            name: "test",
            summary: "Send a `test.event` to this endpoint only (queued: 202 with the event).",
            body: &[],
            status: 202,
            response: Shape::Event,
            conflicts: true,
            run: send_test,
        },
        Action {
            name: "enable",
            summary: "Enable the endpoint again: a fresh run of failures; events from while it was disabled are not sent.",
            body: &[],
            status: 200,
            response: Shape::Own,
            conflicts: false,
            run: enable,
        },
    ],
    sublists: &[SubList {
        name: "deliveries",
        resource: &webhook_deliveries::RESOURCE,
        field: "endpointId",
    }],
    ..Resource::CRUD
};
