//! Credit notes: an amount taken off an invoice's balance (at most the
//! balance), in the same atomic write as the invoice's next version;
//! deleting one gives it back.

use super::invoices::Movement;
use super::transactions::move_invoice;
use super::{Change, Ctx, Resource, Rules, Verb};
use crate::domain::MAX_SAFE_INTEGER;
use crate::error::{ApiError, ApiResult};
use crate::schema::{Field, Ty};
use crate::store::Lookup;
use async_trait::async_trait;
use serde_json::Value;

const MUTABLE: &[&str] = &["reason", "metadata"];

struct CreditNoteRules;

#[async_trait]
impl Rules for CreditNoteRules {
    async fn check(&self, ctx: &Ctx<'_>, change: &mut Change<'_>) -> ApiResult<()> {
        let amount = |d: Option<&Value>| d.and_then(Value::as_i64).unwrap_or(0);
        match change.verb {
            Verb::Update => {
                for (f, _) in change.patch.into_iter().flatten() {
                    if change.changed(f) && !MUTABLE.contains(&f.as_str()) {
                        return Err(ApiError::conflict(format!(
                            "A credit note's `{f}` cannot change (only {}): delete it and issue another.",
                            MUTABLE.join(", ")
                        )));
                    }
                }
                Ok(())
            }
            Verb::Create => {
                let credited = amount(change.get("amount"));
                let m = Movement {
                    credited,
                    ..Default::default()
                };
                move_invoice(ctx, change, m, "a credit note").await
            }
            Verb::Delete => {
                let credited = -amount(change.was("amount"));
                let m = Movement {
                    credited,
                    ..Default::default()
                };
                move_invoice(ctx, change, m, "deleting this credit note").await
            }
        }
    }
}

pub static RESOURCE: Resource = Resource {
    path: "credit-notes",
    object: "creditNote",
    label: "credit note",
    prefix: "cn",
    fields: &[
        Field::new("invoiceId", Ty::Ref("invoices"), "The invoice it credits.")
            .required()
            .restrict(),
        Field::new(
            "amount",
            Ty::Int {
                min: 1,
                max: MAX_SAFE_INTEGER,
            },
            "In the currency's smallest unit (> 0, at most the invoice's balance).",
        )
        .required(),
        Field::new(
            "currency",
            Ty::Currency,
            "The invoice's (the default; another is refused).",
        ),
        Field::new(
            "reason",
            Ty::Text,
            "Why (a goodwill gesture, a billing error…).",
        ),
        Field::new(
            "metadata",
            Ty::Metadata,
            "Up to 50 string keys and values for your own use.",
        ),
    ],
    search_fields: &["reason"],
    description: "An amount taken off an invoice's balance, in the same write as the invoice.",
    lookups: &[Lookup::eq("invoiceId")],
    rules: &CreditNoteRules,
    ..Resource::CRUD
};
