//! Messages: an outbound SMS or email the hub records and hands to an
//! external sender (`message.outbound`); the sender reports back by PATCHing
//! its status (`queued → sent → delivered`, `queued|sent → failed`).

use super::{Change, Ctx, Resource, Rules, Verb};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::schema::{Field, Ty};
use crate::store::Lookup;
use async_trait::async_trait;
use serde_json::{json, Value};

const SMS_MAX_CHARS: usize = 1_600;
const EMAIL_MAX_BYTES: usize = 256 * 1024;

fn next(from: &str) -> &'static [&'static str] {
    match from {
        "queued" => &["sent", "delivered", "failed"],
        "sent" => &["delivered", "failed"],
        _ => &[],
    }
}

/// E.164: a `+`, then 8 to 15 digits, the first not 0.
fn e164(s: &str) -> bool {
    s.strip_prefix('+').is_some_and(|d| {
        (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
    })
}

struct MessageRules;

#[async_trait]
impl Rules for MessageRules {
    async fn check(&self, _ctx: &Ctx<'_>, change: &mut Change<'_>) -> ApiResult<()> {
        if change.verb == Verb::Delete {
            return Ok(());
        }
        if change.verb == Verb::Update {
            for (f, _) in change.patch.into_iter().flatten() {
                if change.changed(f) && !["status", "metadata"].contains(&f.as_str()) {
                    return Err(ApiError::conflict(format!(
                        "A message is recorded as sent for: its `{f}` cannot change (only its status)."
                    )));
                }
            }
            let from = change
                .was("status")
                .and_then(Value::as_str)
                .unwrap_or("queued")
                .to_string();
            let to = change
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if from != to && !next(&from).contains(&to.as_str()) {
                return Err(ApiError::conflict(format!(
                    "This message is `{from}` and cannot become `{to}`{}.",
                    match next(&from) {
                        [] => " (it is final)".to_string(),
                        n => format!(": it may become {}", n.join(", ")),
                    }
                )));
            }
            return Ok(());
        }
        let mut errors = Vec::new();
        let channel = change
            .get("channel")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let to = change
            .get("to")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let body = change
            .get("body")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        match channel.as_str() {
            "sms" => {
                if !e164(&to) {
                    errors.push(FieldError::new(
                        "to",
                        "an SMS goes to an E.164 number such as +447700900123",
                    ));
                }
                if change.get("subject").is_some() {
                    errors.push(FieldError::new("subject", "an SMS has no subject"));
                }
                if body.chars().count() > SMS_MAX_CHARS {
                    errors.push(FieldError::new(
                        "body",
                        format!("an SMS body is plain text of at most {SMS_MAX_CHARS} characters"),
                    ));
                }
            }
            _ => {
                if !crate::domain::valid_email(&to) {
                    errors.push(FieldError::new("to", "an email goes to an email address"));
                }
                if change.get("subject").is_none() {
                    errors.push(FieldError::new("subject", "is required for an email"));
                }
                if body.len() > EMAIL_MAX_BYTES {
                    errors.push(FieldError::new(
                        "body",
                        format!("an email body is HTML of at most {EMAIL_MAX_BYTES} bytes"),
                    ));
                }
            }
        }
        if !errors.is_empty() {
            return Err(ApiError::fields(errors));
        }
        let status = change
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("queued")
            .to_string();
        if status != "queued" {
            return Err(ApiError::field("status", "a new message is `queued`"));
        }
        change.new.insert("status".into(), json!("queued"));
        change.verbs.push("outbound");
        Ok(())
    }
}

/// By channel: an SMS goes to an E.164 number, has no subject and at most
/// 1,600 characters; an email goes to an address and has a subject. A new
/// message is `queued`.
fn schema_rules(s: &mut Value, create: bool) {
    if !create {
        return;
    }
    crate::schema::only(s, "status", &["queued"]);
    crate::schema::all_of(
        s,
        json!([
            {"if": {"properties": {"channel": {"const": "sms"}}},
             "then": {"properties": {
                 "to": {"pattern": "^\\+[1-9][0-9]{7,14}$", "description": "E.164, e.g. +447700900123", "examples": ["+447700900123"]},
                 "subject": false,
                 "body": {"maxLength": SMS_MAX_CHARS}}},
             "else": {"required": ["subject"], "properties": {
                 "to": {"format": "email", "maxLength": 254, "examples": ["patient@example.com"]},
                 "body": {"description": format!("HTML of at most {EMAIL_MAX_BYTES} bytes")}}}},
        ]),
    );
}

pub static RESOURCE: Resource = Resource {
    path: "messages",
    object: "message",
    label: "message",
    prefix: "msg",
    fields: &[
        Field::new("channel", Ty::Enum(&["sms", "email"]), "How it is sent.").required(),
        Field::new("to", Ty::Str, "E.164 number (SMS) or email address (email).").required(),
        Field::new("from", Ty::Str, "Sender id or address."),
        Field::new("subject", Ty::Str, "Email only, required there."),
        Field::new(
            "body",
            Ty::LongText(256 * 1024),
            "Plain text up to 1,600 characters (SMS) or HTML up to 256 KB (email).",
        )
        .required(),
        Field::new("patientId", Ty::Ref("patients"), "Who it is for.").restrict(),
        Field::new(
            "status",
            Ty::Enum(&["queued", "sent", "delivered", "failed"]),
            "`queued` when recorded; the external sender PATCHes `sent`, `delivered` or `failed`.",
        ),
        Field::new(
            "metadata",
            Ty::Metadata,
            "Up to 50 string keys and values for your own use.",
        ),
    ],
    search_fields: &["subject", "body"],
    description: "An outbound SMS or email, recorded and emitted (`message.outbound`) for an external sender.",
    lookups: &[Lookup::eq("patientId"), Lookup::eq("status").counted()],
    rules: &MessageRules,
    schema_rules: Some(schema_rules),
    events: &["outbound"],
    patient_field: Some("patientId"),
    ..Resource::CRUD
};
