use super::{CheckFn, Ctx, Resource};
use crate::auth::Tenant;
use crate::error::FieldError;
use crate::schema::{Field, Ty};
use crate::store::{Expect, WriteOp};
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

fn derive(doc: &mut Map<String, Value>) {
    doc.entry("status")
        .or_insert_with(|| Value::String("enabled".into()));
}

fn check<'a>(
    ctx: &'a Ctx<'a>,
    doc: &'a Map<String, Value>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<FieldError>> + Send + 'a>> {
    Box::pin(async move {
        let mut errors = Vec::new();
        if let Some(Value::Array(events)) = doc.get("enabledEvents") {
            if events.is_empty() {
                errors.push(FieldError::new(
                    "enabledEvents",
                    "must list at least one event type, `*` or a wildcard such as `patient.*`",
                ));
            }
            for (i, e) in events.iter().enumerate() {
                let e = e.as_str().unwrap_or_default();
                if !crate::webhooks::valid_pattern(e) {
                    errors.push(FieldError::new(format!("enabledEvents[{i}]"), format!("`{e}` is not an event type, `*` or `resource.*` (test.event cannot be subscribed)")));
                }
            }
        }
        if let Some(Value::Object(headers)) = doc.get("headers") {
            for name in headers.keys() {
                let lower = name.to_ascii_lowercase();
                if !name
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
            }
            for (name, v) in headers {
                if v.as_str().is_some_and(|v| v.contains(['\r', '\n'])) {
                    errors.push(FieldError::new(
                        format!("headers.{name}"),
                        "must not contain line breaks",
                    ));
                }
            }
        }
        if let Some(url) = doc.get("url").and_then(Value::as_str) {
            if let Err(why) =
                crate::webhooks::deliver::destination(url, ctx.tenant.livemode()).await
            {
                errors.push(FieldError::new("url", why));
            }
        }
        errors
    })
}

const CHECK: CheckFn = check;

/// The signing secret lives apart from the endpoint, so that reading an
/// endpoint never reveals it.
fn extras(tenant: &Tenant, id: &str) -> (Vec<WriteOp>, Map<String, Value>) {
    let secret = crate::webhooks::new_secret();
    let op = WriteOp::Put {
        tenant: tenant.key(),
        kind: crate::webhooks::SECRETS_KIND,
        id: id.to_string(),
        doc: json!({"id": id, "secrets": [{"secret": secret}], "version": 1}),
        expect: Expect::Absent,
    };
    let mut extra = Map::new();
    extra.insert("secret".into(), Value::String(secret));
    (vec![op], extra)
}

pub static RESOURCE: Resource = Resource {
    path: "webhook-endpoints",
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
            "Extra headers sent with every delivery (e.g. an Authorization header).",
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
    derive: Some(derive),
    search_fields: &["url", "description"],
    description: "A URL that receives signed events.",
    actions: &["reveal-secret", "roll-secret", "test", "enable"],
    sublists: &["deliveries"],
    check: Some(CHECK),
    create_extras: Some(extras),
    ..Resource::CRUD
};
