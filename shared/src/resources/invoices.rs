//! Invoices: every rule of one lives here — totals computed from the line
//! items, the lifecycle (draft → open, then a status that follows the
//! balance; void), sequential numbers with no gap, and the balance that
//! payments, refunds and credit notes move (`apply`, which their own
//! modules call in the same atomic write as their change).
//!
//! Money is integers in the currency's minor unit, never a float: line
//! amounts and taxes are computed in 128-bit integers, rounded half away
//! from zero, and every sum is refused past 2^53 − 1 (exact in JavaScript).
//!
//! Numbers: a counter item per tenant (`invoice-counters`, id `invoices`)
//! holds the next number. Finalizing reads it and writes its next version
//! in the same atomic write as the invoice, conditional on the version read:
//! of two concurrent finalizations one commits, the other runs again and
//! takes the following number. No gap, no repeat, on both stores.

use super::{Change, Ctx, Resource, Rules, Verb};
use crate::domain::MAX_SAFE_INTEGER;
use crate::error::{ApiError, ApiResult};
use crate::query::{Filter, ListQuery, Op as QOp};
use crate::schema::{Field, Ty};
use crate::store::{Expect, Lookup, WriteOp};
use async_trait::async_trait;
use serde_json::{json, Map, Value};

pub const STATUSES: &[&str] = &["draft", "open", "partiallyPaid", "paid", "void"];
pub const COUNTERS_KIND: &str = "invoice-counters";

const MONEY: Ty = Ty::Int {
    min: 0,
    max: MAX_SAFE_INTEGER,
};

static LINE_ITEM: Ty = Ty::Object(&[
    Field::new("description", Ty::Str, "What was sold (1–500 characters).").required(),
    Field::new(
        "quantity",
        Ty::Int {
            min: 1,
            max: 1_000_000,
        },
        "How many (1–1,000,000).",
    )
    .required(),
    Field::new(
        "unitAmount",
        MONEY,
        "Price of one, in the currency's smallest unit.",
    )
    .required(),
    Field::new(
        "taxRateBps",
        Ty::Int {
            min: 0,
            max: 10_000,
        },
        "Tax rate in basis points (2000 = 20 %); default 0.",
    ),
    Field::new("amount", MONEY, "quantity × unitAmount.").read_only(),
    Field::new(
        "tax",
        MONEY,
        "amount × taxRateBps / 10,000, rounded half away from zero.",
    )
    .read_only(),
]);

/// `n × d / 10,000` rounded half away from zero (n ≥ 0).
fn tax_of(amount: i128, bps: i128) -> i128 {
    (amount * bps * 2 + 10_000) / 20_000
}

fn int(v: Option<&Value>) -> i64 {
    v.and_then(Value::as_i64).unwrap_or(0)
}

/// The status a finalized invoice has for its balance.
pub fn status_for(total: i64, balance: i64) -> &'static str {
    if balance == 0 {
        "paid"
    } else if balance < total {
        "partiallyPaid"
    } else {
        "open"
    }
}

fn money(amount: i64, currency: &str) -> String {
    let exp = crate::domain::currencies::exponent(currency).unwrap_or(2);
    if exp == 0 {
        return format!("{amount} {currency}");
    }
    let unit = 10i64.pow(exp);
    let sign = if amount < 0 { "-" } else { "" };
    let a = amount.abs();
    format!(
        "{sign}{}.{:0width$} {currency}",
        a / unit,
        a % unit,
        width = exp as usize
    )
}

/// Compute line amounts and taxes and the totals; refuse sums past 2^53 − 1.
fn totals(new: &mut Map<String, Value>) -> ApiResult<()> {
    let mut lines = new
        .get("lineItems")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if lines.is_empty() {
        return Err(ApiError::field(
            "lineItems",
            "must have at least one line (at most 100)",
        ));
    }
    let (mut subtotal, mut tax) = (0i128, 0i128);
    for (i, line) in lines.iter_mut().enumerate() {
        let q = int(line.get("quantity")) as i128;
        let u = int(line.get("unitAmount")) as i128;
        let bps = int(line.get("taxRateBps")) as i128;
        let amount = q * u;
        let t = tax_of(amount, bps);
        if amount > MAX_SAFE_INTEGER as i128 {
            return Err(ApiError::field(
                format!("lineItems[{i}]"),
                format!("quantity × unitAmount is more than {MAX_SAFE_INTEGER}"),
            ));
        }
        subtotal += amount;
        tax += t;
        if let Value::Object(m) = line {
            m.entry("taxRateBps").or_insert(json!(0));
            m.insert("amount".into(), json!(amount as i64));
            m.insert("tax".into(), json!(t as i64));
        }
    }
    let total = subtotal + tax;
    if total > MAX_SAFE_INTEGER as i128 {
        return Err(ApiError::field(
            "lineItems",
            format!("the total is more than {MAX_SAFE_INTEGER}"),
        ));
    }
    new.insert("lineItems".into(), Value::Array(lines));
    new.insert("subtotal".into(), json!(subtotal as i64));
    new.insert("tax".into(), json!(tax as i64));
    new.insert("total".into(), json!(total as i64));
    Ok(())
}

/// `balance = total − amountPaid + amountRefunded − amountCredited`.
fn balance_of(doc: &Map<String, Value>) -> i64 {
    int(doc.get("total")) - int(doc.get("amountPaid")) + int(doc.get("amountRefunded"))
        - int(doc.get("amountCredited"))
}

/// A change of an invoice's money: what a payment, refund or credit note
/// (or its deletion) does to it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Movement {
    pub paid: i64,
    pub refunded: i64,
    pub credited: i64,
}

/// Check a movement against an invoice and return its changed fields (the
/// amounts, balance and status), for `engine::update_other`. Refuses (409,
/// with the figures) a draft or void invoice, a payment beyond the balance,
/// a refund beyond what was paid net of refunds, a credit beyond the
/// balance, and a reversal that would break either.
pub fn apply(invoice: &Value, m: Movement, what: &str) -> ApiResult<Map<String, Value>> {
    let id = invoice["id"].as_str().unwrap_or_default();
    let currency = invoice["currency"].as_str().unwrap_or_default();
    let status = invoice["status"].as_str().unwrap_or_default();
    if status == "draft" || status == "void" {
        return Err(ApiError::conflict(format!(
            "The invoice `{id}` is {status}: {what} needs an open invoice{}.",
            if status == "draft" {
                " (finalize it with `\"status\": \"open\"` first)"
            } else {
                ""
            }
        )));
    }
    let empty = Map::new();
    let doc = invoice.as_object().unwrap_or(&empty);
    let total = int(doc.get("total"));
    let paid = int(doc.get("amountPaid")) + m.paid;
    let refunded = int(doc.get("amountRefunded")) + m.refunded;
    let credited = int(doc.get("amountCredited")) + m.credited;
    let before = balance_of(doc);
    let balance = total - paid + refunded - credited;
    if m.paid > 0 && before == 0 {
        return Err(ApiError::conflict(format!(
            "The invoice `{id}` is paid in full: {what} of {} exceeds its balance of {}.",
            money(m.paid, currency),
            money(0, currency)
        )));
    }
    if paid - refunded < 0 {
        return Err(ApiError::conflict(format!(
            "{what} would leave the invoice `{id}` with more refunded ({}) than paid ({}).",
            money(refunded, currency),
            money(paid, currency)
        )));
    }
    if balance < 0 {
        return Err(ApiError::conflict(format!(
            "{what} exceeds the balance of the invoice `{id}`: {} is due, {} would leave {}.",
            money(before, currency),
            money(m.paid.max(m.credited).max(-m.refunded), currency),
            money(balance, currency)
        )));
    }
    if balance > total {
        return Err(ApiError::conflict(format!(
            "{what} would leave the invoice `{id}` owing {} on a total of {}.",
            money(balance, currency),
            money(total, currency)
        )));
    }
    let mut out = Map::new();
    out.insert("amountPaid".into(), json!(paid));
    out.insert("amountRefunded".into(), json!(refunded));
    out.insert("amountCredited".into(), json!(credited));
    out.insert("balance".into(), json!(balance));
    out.insert("status".into(), json!(status_for(total, balance)));
    Ok(out)
}

/// Did this movement settle the invoice (its balance reached 0)?
pub fn settled(before: &Value, after: &Map<String, Value>) -> bool {
    before["balance"].as_i64() != Some(0) && after.get("balance") == Some(&json!(0))
}

/// How many transactions and credit notes refer to an invoice.
async fn children(ctx: &Ctx<'_>, id: &str) -> ApiResult<(usize, usize)> {
    let mut counts = [0usize; 2];
    for (i, kind) in ["transactions", "credit-notes"].iter().enumerate() {
        let q = ListQuery {
            filter: Filter::Field {
                path: vec!["invoiceId".into()],
                op: QOp::Eq(Value::String(id.to_string())),
            },
            limit: 0,
            want_total: true,
            ..Default::default()
        };
        counts[i] = ctx
            .store
            .list(&ctx.tenant.key(), kind, &q)
            .await?
            .total
            .unwrap_or(0);
    }
    Ok((counts[0], counts[1]))
}

/// Take the next invoice number of the tenant, in the same write.
async fn next_number(ctx: &Ctx<'_>, change: &mut Change<'_>) -> ApiResult<String> {
    let key = ctx.tenant.key();
    let counter = ctx.store.get(&key, COUNTERS_KIND, "invoices").await?;
    let (n, expect, version) = match &counter {
        Some(c) => {
            let v = c["version"].as_u64().unwrap_or(1);
            (c["next"].as_u64().unwrap_or(1), Expect::Version(v), v + 1)
        }
        None => (1, Expect::Absent, 1),
    };
    change.ops.push(WriteOp::Put {
        tenant: key,
        kind: COUNTERS_KIND,
        id: "invoices".into(),
        doc: json!({"id": "invoices", "next": n + 1, "version": version}),
        expect,
    });
    Ok(format!("INV-{n:06}"))
}

const FROZEN: &[&str] = &["lineItems", "currency"];

struct InvoiceRules;

#[async_trait]
impl Rules for InvoiceRules {
    async fn check(&self, ctx: &Ctx<'_>, change: &mut Change<'_>) -> ApiResult<()> {
        let id = change.id.to_string();
        if change.verb == Verb::Delete {
            let (txns, notes) = children(ctx, &id).await?;
            if txns + notes > 0 {
                return Err(ApiError::conflict(format!(
                    "The invoice `{id}` has {txns} transaction(s) and {notes} credit note(s): it cannot be deleted; void it (`\"status\": \"void\"`) when nothing is paid net of refunds."
                )));
            }
            return Ok(());
        }
        let was = change
            .was("status")
            .and_then(Value::as_str)
            .map(String::from);
        let wanted = change
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("draft")
            .to_string();
        // Line items, totals: computed while a draft; frozen after.
        let finalized_before = was.as_deref().is_some_and(|s| s != "draft");
        totals(&mut change.new)?;
        if finalized_before {
            for f in FROZEN {
                if change.changed(f) {
                    return Err(ApiError::conflict(format!(
                        "The invoice `{id}` is finalized: `{f}` can no longer change (void it and issue another)."
                    )));
                }
            }
        }
        for f in ["amountPaid", "amountRefunded", "amountCredited"] {
            change.new.entry(f).or_insert(json!(0));
        }
        let total = int(change.get("total"));
        let balance = balance_of(&change.new);
        change.new.insert("balance".into(), json!(balance));
        let status: String = match (was.as_deref(), wanted.as_str()) {
            // A new invoice is a draft (default) or open.
            (None, "draft") => "draft".into(),
            (None, "open") => status_for(total, balance).into(),
            (None, other) => {
                return Err(ApiError::field(
                    "status",
                    format!("a new invoice is `draft` or `open`, not `{other}`"),
                ))
            }
            (Some("draft"), "draft") => "draft".into(),
            (Some("draft"), "open") => status_for(total, balance).into(),
            (Some("void"), "void") => "void".into(),
            (Some("void"), _) => {
                return Err(ApiError::conflict(format!(
                    "The invoice `{id}` is void: it cannot change status."
                )))
            }
            (Some(_), "void") => {
                let net = int(change.get("amountPaid")) - int(change.get("amountRefunded"));
                if was.as_deref() == Some("draft") {
                    return Err(ApiError::conflict(
                        "A draft invoice is not voided: delete it, or finalize it first.",
                    ));
                }
                if net != 0 {
                    return Err(ApiError::conflict(format!(
                        "The invoice `{id}` has {} paid net of refunds: refund it before voiding.",
                        money(net, str_of(change.get("currency")))
                    )));
                }
                "void".into()
            }
            // Finalized: the status follows the balance; asking for the
            // status it has is no change.
            (Some(from), to) => {
                let now = status_for(total, balance);
                if to != now && to != from {
                    return Err(ApiError::conflict(format!(
                        "The invoice `{id}` is `{from}`: its status follows its balance (`open`, `partiallyPaid`, `paid`); it may only become `void`."
                    )));
                }
                now.into()
            }
        };
        change.new.insert("status".into(), json!(status));
        let finalizing = status != "draft" && !finalized_before;
        if finalizing {
            let number = next_number(ctx, change).await?;
            change.new.insert("number".into(), json!(number));
            change
                .new
                .entry("issuedAt")
                .or_insert_with(|| json!(crate::time::format_ms(change.now_ms)));
        }
        if status == "draft" {
            change.new.remove("number");
        }
        // The invoice reached a zero balance (a total of 0 is paid at once).
        let paid_now = status == "paid" && was.as_deref() != Some("paid");
        if paid_now {
            change.verbs.push("paid");
        }
        if let Some(due) = change.get("dueAt").and_then(Value::as_str) {
            if change
                .get("issuedAt")
                .and_then(Value::as_str)
                .is_some_and(|i| due < i)
            {
                return Err(ApiError::field("dueAt", "must not be before `issuedAt`"));
            }
        }
        Ok(())
    }
}

fn str_of(v: Option<&Value>) -> &str {
    v.and_then(Value::as_str).unwrap_or_default()
}

/// At least one line; a new invoice is a draft or open.
fn schema_rules(s: &mut Value, create: bool) {
    crate::schema::property(s, "lineItems")["minItems"] = json!(1);
    if create {
        crate::schema::only(s, "status", &["draft", "open"]);
    }
}

pub static RESOURCE: Resource = Resource {
    path: "invoices",
    object: "invoice",
    label: "invoice",
    prefix: "inv",
    fields: &[
        Field::new("patientId", Ty::Ref("patients"), "Who is billed.")
            .required()
            .restrict(),
        Field::new("clinicId", Ty::Ref("clinics"), "The issuing clinic.").restrict(),
        Field::new(
            "appointmentId",
            Ty::Ref("appointments"),
            "The appointment it bills.",
        )
        .restrict(),
        Field::new("currency", Ty::Currency, "ISO 4217 code; frozen once finalized.").required(),
        Field::new(
            "lineItems",
            Ty::Array(&LINE_ITEM, 100),
            "1 to 100 lines; frozen once finalized.",
        )
        .required(),
        Field::new(
            "issuedAt",
            Ty::Timestamp,
            "When it was issued (default: when finalized).",
        ),
        Field::new("dueAt", Ty::Timestamp, "When payment is due."),
        Field::new("notes", Ty::Text, "Free-text notes."),
        Field::new(
            "status",
            Ty::Enum(STATUSES),
            "`draft` (editable, deletable, no number) or `open` on create; PATCH `open` finalizes a draft, `void` voids an open invoice with nothing paid net of refunds. Otherwise it follows the balance: `open`, `partiallyPaid`, `paid`.",
        ),
        Field::new("number", Ty::Str, "INV-000001, …: sequential per organization and mode, given when finalized.").read_only(),
        Field::new("subtotal", MONEY, "Σ line amounts.").read_only(),
        Field::new("tax", MONEY, "Σ line taxes.").read_only(),
        Field::new("total", MONEY, "subtotal + tax.").read_only(),
        Field::new("amountPaid", MONEY, "Σ payments.").read_only(),
        Field::new("amountRefunded", MONEY, "Σ refunds.").read_only(),
        Field::new("amountCredited", MONEY, "Σ credit notes.").read_only(),
        Field::new(
            "balance",
            MONEY,
            "total − amountPaid + amountRefunded − amountCredited.",
        )
        .read_only(),
        Field::new(
            "metadata",
            Ty::Metadata,
            "Up to 50 string keys and values for your own use.",
        ),
    ],
    search_fields: &["notes", "number"],
    description: "A bill: line items, computed totals, and a balance that payments, refunds and credit notes move.",
    lookups: &[
        Lookup::ranged("patientId", "issuedAt"),
        Lookup::ranged("status", "issuedAt").counted(),
        Lookup::eq("number"),
        Lookup::eq("appointmentId"),
    ],
    ordered_by: Some("issuedAt"),
    rules: &InvoiceRules,
    schema_rules: Some(schema_rules),
    events: &["paid"],
    patient_field: Some("patientId"),
    ..super::Resource::CRUD
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tax_rounds_half_away_from_zero() {
        assert_eq!(tax_of(5, 1000), 1); // 0.5 → 1
        assert_eq!(tax_of(4, 1000), 0); // 0.4 → 0
        assert_eq!(tax_of(15, 1000), 2); // 1.5 → 2
        assert_eq!(tax_of(25, 1000), 3); // 2.5 → 3
        assert_eq!(tax_of(1999, 2000), 400); // 399.8 → 400
        assert_eq!(tax_of(1234, 0), 0);
    }

    #[test]
    fn money_is_written_with_its_exponent() {
        assert_eq!(money(123456, "GBP"), "1234.56 GBP");
        assert_eq!(money(5, "GBP"), "0.05 GBP");
        assert_eq!(money(1500, "JPY"), "1500 JPY");
        assert_eq!(money(1234, "BHD"), "1.234 BHD");
    }

    #[test]
    fn status_follows_the_balance() {
        assert_eq!(status_for(100, 100), "open");
        assert_eq!(status_for(100, 40), "partiallyPaid");
        assert_eq!(status_for(100, 0), "paid");
        assert_eq!(status_for(0, 0), "paid");
    }
}
