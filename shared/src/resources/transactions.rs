//! Transactions: a payment or a refund against an invoice. Every create or
//! delete moves the invoice's balance in the same atomic write (through
//! `invoices::apply`, which holds the invoice's rules) and emits its
//! `invoice.updated` (and `invoice.paid` when the balance reaches zero).

use super::invoices::{self, Movement};
use super::{engine, Change, Ctx, Resource, Rules, Verb};
use crate::domain::MAX_SAFE_INTEGER;
use crate::error::{ApiError, ApiResult};
use crate::schema::{Field, Ty};
use crate::store::Lookup;
use async_trait::async_trait;
use serde_json::Value;

/// Fields that may change after a transaction is recorded.
const MUTABLE: &[&str] = &["reference", "occurredAt", "metadata"];

/// Move the invoice a money document (transaction or credit note) refers to
/// by `m`, in the same write as `change`; checks the currency.
pub(super) async fn move_invoice(
    ctx: &Ctx<'_>,
    change: &mut Change<'_>,
    m: Movement,
    what: &str,
) -> ApiResult<()> {
    let doc = change.old.filter(|_| change.verb == Verb::Delete);
    let invoice_id = match doc {
        Some(d) => d["invoiceId"].as_str().unwrap_or_default().to_string(),
        None => change
            .get("invoiceId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
    };
    let invoice = engine::get(ctx, &invoices::RESOURCE, &invoice_id).await?;
    if change.verb == Verb::Create {
        // Default: the invoice's currency; one given must be it.
        if change.get("currency").is_none() {
            change
                .new
                .insert("currency".into(), invoice["currency"].clone());
        }
        let currency = change.get("currency").and_then(Value::as_str);
        if currency != invoice["currency"].as_str() {
            return Err(ApiError::field(
                "currency",
                format!(
                    "must be the invoice's currency, {}",
                    invoice["currency"].as_str().unwrap_or_default()
                ),
            ));
        }
    }
    let changes = invoices::apply(&invoice, m, what)?;
    let paid = invoices::settled(&invoice, &changes);
    let after = engine::update_other(
        ctx,
        &invoices::RESOURCE,
        &invoice,
        changes,
        change.now_ms,
        change,
    );
    if paid {
        change
            .events
            .push(ctx.event(&invoices::RESOURCE, "paid", &after));
    }
    Ok(())
}

struct TransactionRules;

#[async_trait]
impl Rules for TransactionRules {
    async fn check(&self, ctx: &Ctx<'_>, change: &mut Change<'_>) -> ApiResult<()> {
        match change.verb {
            Verb::Update => {
                for (f, _) in change.patch.into_iter().flatten() {
                    if change.changed(f) && !MUTABLE.contains(&f.as_str()) {
                        return Err(ApiError::conflict(format!(
                            "A recorded transaction's `{f}` cannot change (only {}): delete it and record another.",
                            MUTABLE.join(", ")
                        )));
                    }
                }
                Ok(())
            }
            verb => {
                let doc = if verb == Verb::Delete {
                    change
                        .old
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default()
                } else {
                    change
                        .new
                        .entry("occurredAt")
                        .or_insert_with(|| Value::String(crate::time::format_ms(change.now_ms)));
                    change.new.clone()
                };
                let amount = doc.get("amount").and_then(Value::as_i64).unwrap_or(0);
                let refund = doc.get("type").and_then(Value::as_str) == Some("refund");
                let sign = if verb == Verb::Delete { -1 } else { 1 };
                let m = if refund {
                    Movement {
                        refunded: sign * amount,
                        ..Default::default()
                    }
                } else {
                    Movement {
                        paid: sign * amount,
                        ..Default::default()
                    }
                };
                let what = match (verb, refund) {
                    (Verb::Delete, true) => "deleting this refund",
                    (Verb::Delete, false) => "deleting this payment",
                    (_, true) => "a refund",
                    (_, false) => "a payment",
                };
                move_invoice(ctx, change, m, what).await
            }
        }
    }
}

pub static RESOURCE: Resource = Resource {
    path: "transactions",
    object: "transaction",
    label: "transaction",
    prefix: "txn",
    fields: &[
        Field::new(
            "invoiceId",
            Ty::Ref("invoices"),
            "The invoice it pays or refunds.",
        )
        .required()
        .restrict(),
        Field::new(
            "type",
            Ty::Enum(&["payment", "refund"]),
            "A payment (at most the balance) or a refund (at most what was paid net of refunds).",
        )
        .required(),
        Field::new(
            "amount",
            Ty::Int {
                min: 1,
                max: MAX_SAFE_INTEGER,
            },
            "In the currency's smallest unit (> 0).",
        )
        .required(),
        Field::new(
            "currency",
            Ty::Currency,
            "The invoice's (the default; another is refused).",
        ),
        Field::new(
            "method",
            Ty::Enum(&["card", "cash", "bankTransfer", "other"]),
            "How it was paid.",
        )
        .required(),
        Field::new(
            "reference",
            Ty::Str,
            "A card terminal's or bank's reference.",
        ),
        Field::new(
            "occurredAt",
            Ty::Timestamp,
            "When it happened (default: now).",
        ),
        Field::new(
            "metadata",
            Ty::Metadata,
            "Up to 50 string keys and values for your own use.",
        ),
    ],
    search_fields: &["reference"],
    description:
        "A payment or refund against an invoice; it moves the invoice's balance in the same write.",
    lookups: &[Lookup::ranged("invoiceId", "occurredAt")],
    ordered_by: Some("occurredAt"),
    rules: &TransactionRules,
    ..Resource::CRUD
};
