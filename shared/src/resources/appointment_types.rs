//! Appointment types: what can be booked, for how long and at what price.

use super::{Change, Ctx, Publishable, Resource, Rules, Verb};
use crate::domain::MAX_SAFE_INTEGER;
use crate::error::{ApiError, ApiResult};
use crate::schema::{Field, Ty};
use crate::store::Lookup;
use async_trait::async_trait;
use serde_json::Value;

struct TypeRules;

#[async_trait]
impl Rules for TypeRules {
    async fn check(&self, _ctx: &Ctx<'_>, change: &mut Change<'_>) -> ApiResult<()> {
        if change.verb == Verb::Delete {
            return Ok(());
        }
        if let Some(d) = change.get("durationMinutes").and_then(Value::as_i64) {
            if d % 5 != 0 {
                return Err(ApiError::field(
                    "durationMinutes",
                    format!("must be a multiple of 5 minutes, got {d}"),
                ));
            }
        }
        change
            .new
            .entry("bookableOnline")
            .or_insert(Value::Bool(true));
        Ok(())
    }
}

/// `durationMinutes` in steps of 5.
fn schema_rules(s: &mut Value, _create: bool) {
    crate::schema::property(s, "durationMinutes")["multipleOf"] = serde_json::json!(5);
}

pub static RESOURCE: Resource = Resource {
    path: "appointment-types",
    object: "appointmentType",
    label: "appointment type",
    prefix: "aty",
    fields: &[
        Field::new(
            "name",
            Ty::Str,
            "Unique per organization and mode, ignoring case.",
        )
        .required(),
        Field::new("description", Ty::Text, "What happens in it."),
        Field::new(
            "durationMinutes",
            Ty::Int { min: 5, max: 720 },
            "Length in minutes: 5 to 720, a multiple of 5.",
        )
        .required(),
        Field::new(
            "price",
            Ty::Int {
                min: 0,
                max: MAX_SAFE_INTEGER,
            },
            "Price in the currency's smallest unit (pence, cents; yen are whole).",
        )
        .required(),
        Field::new("currency", Ty::Currency, "ISO 4217 code, e.g. `GBP`.").required(),
        Field::new(
            "bookableOnline",
            Ty::Bool,
            "Offered to booking widgets (publishable keys); default true.",
        ),
        Field::new(
            "metadata",
            Ty::Metadata,
            "Up to 50 string keys and values for your own use.",
        ),
    ],
    unique: &["name"],
    publishable: Publishable {
        read: true,
        create: false,
    },
    search_fields: &["name", "description"],
    description: "Something a patient can book: a hearing test, a fitting, a class.",
    lookups: &[Lookup::eq("name")],
    rules: &TypeRules,
    schema_rules: Some(schema_rules),
    ..Resource::CRUD
};
