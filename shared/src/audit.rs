//! `hub audit` (issue 22): every derived value recomputed from the objects
//! it is derived from, and each difference reported. Derived values are
//! written in the same transaction as the objects they follow, so on a
//! sound store there is none; a difference is a lost or doubled write
//! (a fault the hub did not resolve), or a hand-edited item.
//!
//! Checked, per tenant (organization and mode):
//! - each patient's `membershipStatus` against their purchases
//!   ([`purchases::membership_status`] now; a patient with a purchase that
//!   passed its `expiresAt` in the last [`EXPIRY_GRACE_MS`] is skipped, as
//!   the expiry job may not have run yet);
//! - each finalized invoice's `amountPaid`, `amountRefunded`,
//!   `amountCredited` (the sums of its payments, refunds and credit notes),
//!   `balance` and `status`;
//! - the appointment guard items (one per practitioner and UTC day, listing
//!   the bookings that hold it) against the appointments that are not
//!   cancelled.

use crate::resources::{appointments::GUARDS_KIND, invoices, purchases};
use crate::store::{Store, StoreResult};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

const DAY_MS: i64 = 86_400_000;

/// A purchase that expired this recently may still await the expiry job.
pub const EXPIRY_GRACE_MS: i64 = 10 * 60 * 1000;

/// One derived value that is not what its objects say.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    pub tenant: String,
    pub kind: String,
    pub id: String,
    pub field: String,
    pub stored: Value,
    pub expected: Value,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}/{} {}: stored {}, expected {}",
            self.tenant, self.kind, self.id, self.field, self.stored, self.expected
        )
    }
}

fn ms(v: Option<&Value>) -> Option<i64> {
    v.and_then(Value::as_str)
        .and_then(crate::time::parse_timestamp)
}

fn int(v: Option<&Value>) -> i64 {
    v.and_then(Value::as_i64).unwrap_or(0)
}

/// What an audit looked at and what it found.
#[derive(Debug, Default)]
pub struct Report {
    /// Objects read, by kind.
    pub checked: BTreeMap<String, usize>,
    pub differences: Vec<Difference>,
}

/// Every check for one tenant (`org#mode`) at `now`, added to `report`.
pub async fn tenant(
    store: &dyn Store,
    tenant: &str,
    now: i64,
    report: &mut Report,
) -> StoreResult<()> {
    let mut out = Vec::new();
    let mut read = |kind: &str, n: usize| {
        *report.checked.entry(kind.to_string()).or_default() += n;
    };
    let mut diff = |kind: &str, id: &str, field: &str, stored: Value, expected: Value| {
        if stored != expected {
            out.push(Difference {
                tenant: tenant.to_string(),
                kind: kind.to_string(),
                id: id.to_string(),
                field: field.to_string(),
                stored,
                expected,
            });
        }
    };

    // Membership statuses.
    let mut by_patient: HashMap<String, Vec<Value>> = HashMap::new();
    let all = store.all(tenant, "purchases").await?;
    read("purchases", all.len());
    for p in all {
        if let Some(pid) = p["patientId"].as_str() {
            by_patient
                .entry(pid.to_string())
                .or_default()
                .push((*p).clone());
        }
    }
    let all = store.all(tenant, "patients").await?;
    read("patients", all.len());
    for patient in all {
        let id = patient["id"].as_str().unwrap_or_default();
        let bought = by_patient.get(id).map(Vec::as_slice).unwrap_or_default();
        let pending = bought.iter().any(|p| {
            p["status"] == "active"
                && ms(p.get("expiresAt")).is_some_and(|e| e <= now && e > now - EXPIRY_GRACE_MS)
        });
        if pending {
            continue;
        }
        let expected = purchases::membership_status(bought, now);
        let stored = patient["membershipStatus"].as_str().unwrap_or("inactive");
        diff(
            "patients",
            id,
            "membershipStatus",
            json!(stored),
            json!(expected),
        );
    }

    // Invoices.
    let mut moved: HashMap<String, [i64; 3]> = HashMap::new();
    let all = store.all(tenant, "transactions").await?;
    read("transactions", all.len());
    for t in all {
        let Some(inv) = t["invoiceId"].as_str() else {
            continue;
        };
        let slot = if t["type"] == "refund" { 1 } else { 0 };
        moved.entry(inv.to_string()).or_default()[slot] += int(t.get("amount"));
    }
    let all = store.all(tenant, "credit-notes").await?;
    read("credit-notes", all.len());
    for c in all {
        if let Some(inv) = c["invoiceId"].as_str() {
            moved.entry(inv.to_string()).or_default()[2] += int(c.get("amount"));
        }
    }
    let all = store.all(tenant, "invoices").await?;
    read("invoices", all.len());
    for inv in all {
        let id = inv["id"].as_str().unwrap_or_default();
        let status = inv["status"].as_str().unwrap_or_default();
        let [paid, refunded, credited] = moved.get(id).copied().unwrap_or_default();
        for (field, expected) in [
            ("amountPaid", paid),
            ("amountRefunded", refunded),
            ("amountCredited", credited),
        ] {
            diff(
                "invoices",
                id,
                field,
                json!(int(inv.get(field))),
                json!(expected),
            );
        }
        if status == "draft" || status == "void" {
            continue;
        }
        let total = int(inv.get("total"));
        let balance = total - paid + refunded - credited;
        diff(
            "invoices",
            id,
            "balance",
            inv["balance"].clone(),
            json!(balance),
        );
        diff(
            "invoices",
            id,
            "status",
            json!(status),
            json!(invoices::status_for(total, balance)),
        );
    }

    // Appointment guards: practitioner#day → bookings sorted by id.
    let mut expected: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let all = store.all(tenant, "appointments").await?;
    read("appointments", all.len());
    for a in all {
        if a["status"] == "cancelled" {
            continue;
        }
        let (Some(s), Some(e)) = (ms(a.get("startAt")), ms(a.get("endAt"))) else {
            continue;
        };
        let p = a["practitionerId"].as_str().unwrap_or_default();
        let first = s.div_euclid(DAY_MS);
        let last = (e - 1).max(s).div_euclid(DAY_MS);
        for d in first..=last {
            let day = &crate::time::format_ms(d * DAY_MS)[..10];
            expected.entry(format!("{p}#{day}")).or_default().push(json!({
                "id": a["id"], "startAt": crate::time::format_ms(s), "endAt": crate::time::format_ms(e),
            }));
        }
    }
    let mut stored: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let all = store.all(tenant, GUARDS_KIND).await?;
    read(GUARDS_KIND, all.len());
    for g in all {
        let id = g["id"].as_str().unwrap_or_default().to_string();
        let bookings = g["bookings"].as_array().cloned().unwrap_or_default();
        stored.insert(id, bookings);
    }
    let sort = |v: &mut Vec<Value>| {
        v.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    };
    let mut ids: Vec<String> = expected.keys().chain(stored.keys()).cloned().collect();
    ids.sort();
    ids.dedup();
    for gid in ids {
        let mut want = expected.get(&gid).cloned().unwrap_or_default();
        let mut have = stored.get(&gid).cloned().unwrap_or_default();
        sort(&mut want);
        sort(&mut have);
        diff(GUARDS_KIND, &gid, "bookings", json!(have), json!(want));
    }
    report.differences.extend(out);
    Ok(())
}

/// Every tenant of every organization the store holds (test and live).
pub async fn run(store: &dyn Store, orgs: &[String], now: i64) -> StoreResult<Report> {
    let mut report = Report::default();
    for org in orgs {
        for mode in ["test", "live"] {
            tenant(store, &format!("{org}#{mode}"), now, &mut report).await?;
        }
    }
    Ok(report)
}

/// The organizations of a DynamoDB table: a `Scan` for their items (an
/// operator's command; no function's role allows `Scan`).
pub async fn dynamo_orgs(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> StoreResult<Vec<String>> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let mut orgs = Vec::new();
    let mut start = None;
    loop {
        let out = client
            .scan()
            .table_name(table)
            .filter_expression("#k = :k")
            .expression_attribute_names("#k", "kind")
            .expression_attribute_values(":k", AttributeValue::S(crate::org::ORGS_KIND.into()))
            .set_exclusive_start_key(start)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| crate::store::StoreError::Backend(format!("Scan: {e:?}")))?;
        for item in out.items() {
            if let Some(AttributeValue::S(t)) = item.get("tenant") {
                orgs.push(t.clone());
            }
        }
        match out.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => break,
        }
    }
    orgs.sort();
    orgs.dedup();
    Ok(orgs)
}
