//! Packages: what a studio sells — memberships (for a number of days),
//! session packs (a number of visits) and intro offers (both).

use super::{Change, Ctx, Resource, Rules, Verb};
use crate::domain::MAX_SAFE_INTEGER;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::schema::{Field, Ty};
use crate::store::Lookup;
use async_trait::async_trait;
use serde_json::{json, Value};

pub const TYPES: &[&str] = &["membership", "sessionPack", "introOffer"];

struct PackageRules;

#[async_trait]
impl Rules for PackageRules {
    async fn check(&self, _ctx: &Ctx<'_>, change: &mut Change<'_>) -> ApiResult<()> {
        if change.verb == Verb::Delete {
            return Ok(());
        }
        let kind = change
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let mut errors = Vec::new();
        let needs_sessions = kind == "sessionPack" || kind == "introOffer";
        let needs_days = kind == "membership" || kind == "introOffer";
        if needs_sessions && change.get("sessions").is_none() {
            errors.push(FieldError::new(
                "sessions",
                format!("is required for a {kind}"),
            ));
        }
        if !needs_sessions && change.get("sessions").is_some() {
            errors.push(FieldError::new(
                "sessions",
                "a membership has no sessions: it covers every visit while it lasts",
            ));
        }
        if needs_days && change.get("durationDays").is_none() {
            errors.push(FieldError::new(
                "durationDays",
                format!("is required for a {kind}"),
            ));
        }
        if !errors.is_empty() {
            return Err(ApiError::fields(errors));
        }
        change.new.entry("active").or_insert(Value::Bool(true));
        Ok(())
    }
}

/// What each type needs: a membership `durationDays` and no `sessions`, a
/// session pack `sessions`, an intro offer both.
fn schema_rules(s: &mut Value, create: bool) {
    if !create {
        // A patch is checked against the merged package, which a patch
        // schema cannot see.
        return;
    }
    crate::schema::all_of(
        s,
        json!([
            {"if": {"properties": {"type": {"const": "membership"}}},
             "then": {"required": ["durationDays"], "properties": {"sessions": false}}},
            {"if": {"properties": {"type": {"const": "sessionPack"}}},
             "then": {"required": ["sessions"]}},
            {"if": {"properties": {"type": {"const": "introOffer"}}},
             "then": {"required": ["sessions", "durationDays"]}},
        ]),
    );
}

pub static RESOURCE: Resource = Resource {
    path: "packages",
    object: "package",
    label: "package",
    prefix: "pkg",
    fields: &[
        Field::new("name", Ty::Str, "What it is called, e.g. `10-class pass`.").required(),
        Field::new(
            "type",
            Ty::Enum(TYPES),
            "`membership` (durationDays), `sessionPack` (sessions, optionally durationDays) or `introOffer` (both).",
        )
        .required(),
        Field::new("category", Ty::Str, "A grouping of your own (`Yoga`, `Hearing care`)."),
        Field::new("description", Ty::Text, "What it includes."),
        Field::new(
            "price",
            Ty::Int {
                min: 0,
                max: MAX_SAFE_INTEGER,
            },
            "In the currency's smallest unit.",
        )
        .required(),
        Field::new("currency", Ty::Currency, "ISO 4217 code.").required(),
        Field::new(
            "sessions",
            Ty::Int {
                min: 1,
                max: 10_000,
            },
            "Visits included (session packs and intro offers).",
        ),
        Field::new(
            "durationDays",
            Ty::Int { min: 1, max: 3_660 },
            "Days it lasts from purchase (memberships and intro offers; optional for session packs).",
        ),
        Field::new("active", Ty::Bool, "On sale (default true)."),
        Field::new(
            "metadata",
            Ty::Metadata,
            "Up to 50 string keys and values for your own use.",
        ),
    ],
    search_fields: &["name", "category", "description"],
    description: "A membership, session pack or intro offer a patient can buy.",
    lookups: &[Lookup::eq("type").counted()],
    rules: &PackageRules,
    schema_rules: Some(schema_rules),
    ..Resource::CRUD
};
