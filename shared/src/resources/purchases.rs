//! Purchases of packages, and every rule of a patient's membership: its
//! status (`active ↔ suspended`, `cancelled`; `expired` only by time), the
//! patient's derived `membershipStatus` and its `patient.statusChanged`
//! event, written in the same atomic write as whatever changed it (a
//! purchase, a suspension, a cancellation, the last session used, an
//! expiry), and the expiry job.
//!
//! Expiry: a purchase that can expire has an item in a hub-wide partition
//! (`purchase-expiries`, tenant `system`, id `{expiresAt}#{tenant}#{id}`),
//! so the job reads only what is due, in order, without scanning tenants.
//! It is written and removed in the same atomic write as the purchase.
//! Check-ins never use a purchase past its `expiresAt`, even before the
//! job has run.

use super::{engine, packages, Change, Ctx, Publishable, Resource, Rules, Verb};
use crate::auth::Tenant;
use crate::domain::MAX_SAFE_INTEGER;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::query::{Filter, ListQuery, Op as QOp};
use crate::schema::{Field, Ty};
use crate::store::{Expect, Lookup, Store, WriteOp};
use crate::time::{format_ms, parse_timestamp};
use async_trait::async_trait;
use serde_json::{json, Map, Value};

pub const STATUSES: &[&str] = &["active", "suspended", "expired", "cancelled"];
pub const EXPIRIES_KIND: &str = "purchase-expiries";
/// The hub-wide tenant of the expiry index.
pub const SYSTEM: &str = "system";
const DAY_MS: i64 = 86_400_000;

fn ms(v: Option<&Value>) -> Option<i64> {
    v.and_then(Value::as_str).and_then(parse_timestamp)
}

fn str_of(v: Option<&Value>) -> &str {
    v.and_then(Value::as_str).unwrap_or_default()
}

/// Is a purchase usable at `at`: active, bought by then, not expired?
pub fn usable(p: &Value, at: i64) -> bool {
    p["status"] == "active"
        && ms(p.get("purchasedAt")).is_none_or(|b| b <= at)
        && ms(p.get("expiresAt")).is_none_or(|e| e > at)
}

/// Does it still give visits: a membership, or sessions left?
fn has_visits(p: &Value) -> bool {
    p["packageType"] == "membership" || p["sessionsRemaining"].as_i64().unwrap_or(0) > 0
}

/// The membership status purchases give a patient at `now`.
pub fn membership_status(purchases: &[Value], now: i64) -> &'static str {
    let live = |p: &&Value| usable(p, now) && has_visits(p);
    if purchases
        .iter()
        .filter(live)
        .any(|p| p["packageType"] != "introOffer")
    {
        "activePackage"
    } else if purchases.iter().any(|p| live(&p)) {
        "introOffer"
    } else if purchases.iter().any(|p| {
        p["status"] == "suspended"
            && p["packageType"] == "membership"
            && ms(p.get("expiresAt")).is_none_or(|e| e > now)
    }) {
        "suspendedMembership"
    } else {
        "inactive"
    }
}

/// The purchases that give visits now, as the status event lists them.
fn active_packages(purchases: &[Value], now: i64) -> Vec<Value> {
    purchases
        .iter()
        .filter(|p| usable(p, now) && has_visits(p))
        .map(|p| {
            json!({"purchaseId": p["id"], "packageId": p["packageId"], "name": p["packageName"],
                   "type": p["packageType"], "expiresAt": p.get("expiresAt").cloned().unwrap_or(Value::Null),
                   "sessionsRemaining": p.get("sessionsRemaining").cloned().unwrap_or(Value::Null)})
        })
        .collect()
}

/// Recompute a patient's `membershipStatus` with `changed` (this write's
/// purchases in their new state; `None` for a deleted one, by id) in place
/// of their stored versions. When it changes, the patient's next version and
/// `patient.statusChanged` join `change`'s atomic write.
pub async fn restate(
    ctx: &Ctx<'_>,
    change: &mut Change<'_>,
    patient_id: &str,
    changed: &[(String, Option<Value>)],
) -> ApiResult<()> {
    let key = ctx.tenant.key();
    let Some(patient) = ctx.store.get(&key, "patients", patient_id).await? else {
        return Ok(());
    };
    let q = ListQuery {
        filter: Filter::Field {
            path: vec!["patientId".into()],
            op: QOp::Eq(Value::String(patient_id.to_string())),
        },
        limit: 100_000,
        ..Default::default()
    };
    let stored = ctx.store.list(&key, RESOURCE.path, &q).await?;
    let mut all: Vec<Value> = stored
        .docs()
        .iter()
        .filter(|p| !changed.iter().any(|(id, _)| p["id"] == id.as_str()))
        .map(|p| (**p).clone())
        .collect();
    all.extend(changed.iter().filter_map(|(_, p)| p.clone()));
    let now = change.now_ms;
    let status = membership_status(&all, now);
    let before = patient["membershipStatus"].as_str().unwrap_or("inactive");
    if status == before {
        return Ok(());
    }
    let patients = super::by_path("patients").ok_or_else(ApiError::internal)?;
    let mut fields = Map::new();
    fields.insert("membershipStatus".into(), json!(status));
    let after = engine::update_other(ctx, patients, &patient, fields, now, change);
    let slim = json!({"id": patient_id, "fullName": after["fullName"], "tracking": after.get("tracking").cloned().unwrap_or(Value::Null)});
    change.events.push(crate::webhooks::event(
        ctx.tenant,
        "patient.statusChanged".into(),
        json!({"object": "membershipStatusChange", "patient": slim, "membershipStatus": status,
               "previousMembershipStatus": before, "activePackages": active_packages(&all, now),
               "version": after["version"]}),
    ));
    Ok(())
}

/// A visit uses one of a purchase's sessions (`delta` −1), or a deleted
/// visit gives it back (+1): the purchase's next version and the patient's
/// status join `change`'s write. Returns the sessions left.
pub async fn use_session(
    ctx: &Ctx<'_>,
    change: &mut Change<'_>,
    purchase: &Value,
    delta: i64,
) -> ApiResult<i64> {
    let left = purchase["sessionsRemaining"].as_i64().unwrap_or(0) + delta;
    if left < 0 {
        return Err(ApiError::conflict("This purchase has no session left."));
    }
    let mut fields = Map::new();
    fields.insert("sessionsRemaining".into(), json!(left));
    let after = engine::update_other(ctx, &RESOURCE, purchase, fields, change.now_ms, change);
    let patient = str_of(purchase.get("patientId")).to_string();
    let id = str_of(purchase.get("id")).to_string();
    restate(ctx, change, &patient, &[(id, Some(after))]).await?;
    Ok(left)
}

fn expiry_id(tenant: &Tenant, id: &str, expires: &str) -> String {
    format!("{expires}#{}#{id}", tenant.key())
}

/// Keep the expiry index in step: an item while the purchase is active or
/// suspended with an `expiresAt`, none otherwise.
fn index_expiry(
    ctx: &Ctx<'_>,
    change: &mut Change<'_>,
    old: Option<&Value>,
    new: Option<&Map<String, Value>>,
) {
    let due = |status: Option<&Value>, expires: Option<&Value>| -> Option<String> {
        let s = status.and_then(Value::as_str)?;
        if s != "active" && s != "suspended" {
            return None;
        }
        expires.and_then(Value::as_str).map(String::from)
    };
    let before = old.and_then(|o| due(o.get("status"), o.get("expiresAt")));
    let after = new.and_then(|n| due(n.get("status"), n.get("expiresAt")));
    if before == after {
        return;
    }
    if let Some(e) = before {
        change.ops.push(WriteOp::Delete {
            tenant: SYSTEM.into(),
            kind: EXPIRIES_KIND,
            id: expiry_id(ctx.tenant, change.id, &e),
            expect: Expect::Absent,
        });
    }
    if let Some(e) = after {
        let id = expiry_id(ctx.tenant, change.id, &e);
        change.ops.push(WriteOp::Put {
            tenant: SYSTEM.into(),
            kind: EXPIRIES_KIND,
            id: id.clone(),
            doc: json!({"id": id, "tenant": ctx.tenant.key(), "purchaseId": change.id, "expiresAt": e, "version": 1}),
            expect: Expect::Absent,
        });
    }
}

/// Fields that change after purchase (besides the status).
const MUTABLE: &[&str] = &["status", "expiresAt", "notes", "metadata"];

struct PurchaseRules;

#[async_trait]
impl Rules for PurchaseRules {
    async fn check(&self, ctx: &Ctx<'_>, change: &mut Change<'_>) -> ApiResult<()> {
        let now = change.now_ms;
        let old = change.old.cloned();
        match change.verb {
            Verb::Delete => {
                let o = old.ok_or_else(ApiError::internal)?;
                index_expiry(ctx, change, Some(&o), None);
                let patient = str_of(o.get("patientId")).to_string();
                let id = change.id.to_string();
                restate(ctx, change, &patient, &[(id, None)]).await
            }
            Verb::Create => {
                let pkg_id = str_of(change.get("packageId")).to_string();
                let pkg = engine::get(ctx, &packages::RESOURCE, &pkg_id).await?;
                if pkg["active"] == false {
                    return Err(ApiError::conflict(format!(
                        "The package `{pkg_id}` is not on sale (`active` is false)."
                    )));
                }
                let status = str_of(change.get("status")).to_string();
                if !status.is_empty() && status != "active" {
                    return Err(ApiError::field(
                        "status",
                        format!("a new purchase is `active`, not `{status}`"),
                    ));
                }
                let n = &mut change.new;
                n.insert("status".into(), json!("active"));
                n.insert("packageName".into(), pkg["name"].clone());
                n.insert("packageType".into(), pkg["type"].clone());
                n.entry("amount").or_insert_with(|| pkg["price"].clone());
                n.entry("currency")
                    .or_insert_with(|| pkg["currency"].clone());
                n.entry("purchasedAt")
                    .or_insert_with(|| json!(format_ms(now)));
                let bought = ms(n.get("purchasedAt")).unwrap_or(now);
                if let Some(days) = pkg["durationDays"].as_i64() {
                    n.entry("expiresAt")
                        .or_insert_with(|| json!(format_ms(bought + days * DAY_MS)));
                }
                if let Some(s) = pkg["sessions"].as_i64() {
                    n.insert("sessionsRemaining".into(), json!(s));
                }
                if let Some(e) = ms(n.get("expiresAt")) {
                    if e <= bought {
                        return Err(ApiError::field("expiresAt", "must be after `purchasedAt`"));
                    }
                }
                change.verbs.push("package.purchased");
                let new = change.new.clone();
                index_expiry(ctx, change, None, Some(&new));
                let patient = str_of(change.get("patientId")).to_string();
                let id = change.id.to_string();
                let mut doc = Value::Object(new);
                doc["id"] = json!(id);
                restate(ctx, change, &patient, &[(id, Some(doc))]).await
            }
            Verb::Update => {
                let o = old.ok_or_else(ApiError::internal)?;
                for (f, _) in change.patch.into_iter().flatten() {
                    if change.changed(f) && !MUTABLE.contains(&f.as_str()) {
                        return Err(ApiError::conflict(format!(
                            "A purchase's `{f}` cannot change after it is made (only {}).",
                            MUTABLE.join(", ")
                        )));
                    }
                }
                let from = str_of(o.get("status")).to_string();
                let to = str_of(change.get("status")).to_string();
                if from != to {
                    let allowed = match (from.as_str(), to.as_str()) {
                        ("active", "suspended") | ("suspended", "active") => true,
                        ("active" | "suspended", "cancelled") => true,
                        // The hub itself (the expiry job), once it is due.
                        ("active" | "suspended", "expired") => {
                            ctx.key.is_none()
                                && ms(change.get("expiresAt")).is_some_and(|e| e <= now)
                        }
                        _ => false,
                    };
                    if !allowed {
                        let why = match from.as_str() {
                            "cancelled" | "expired" => format!("`{from}` is final"),
                            _ if to == "expired" => {
                                "a purchase expires only by time, at its `expiresAt`".into()
                            }
                            _ => format!(
                                "from `{from}` it may become `{}` or `cancelled`",
                                if from == "active" {
                                    "suspended"
                                } else {
                                    "active"
                                }
                            ),
                        };
                        return Err(ApiError::conflict(format!(
                            "This purchase is `{from}` and cannot become `{to}`: {why}."
                        )));
                    }
                }
                if ["cancelled", "expired"].contains(&from.as_str()) && change.changed("expiresAt")
                {
                    return Err(ApiError::conflict(format!(
                        "This purchase is `{from}`: its `expiresAt` no longer changes."
                    )));
                }
                if let (Some(e), Some(b)) =
                    (ms(change.get("expiresAt")), ms(change.get("purchasedAt")))
                {
                    if e <= b {
                        return Err(ApiError::fields(vec![FieldError::new(
                            "expiresAt",
                            "must be after `purchasedAt`",
                        )]));
                    }
                }
                let new = change.new.clone();
                index_expiry(ctx, change, Some(&o), Some(&new));
                let patient = str_of(o.get("patientId")).to_string();
                let id = change.id.to_string();
                let mut doc = Value::Object(new);
                doc["id"] = json!(id);
                restate(ctx, change, &patient, &[(id, Some(doc))]).await
            }
        }
    }
}

/// Expire the purchases due by `now` (at most `limit`), each in its own
/// write with its patient's new status; returns how many expired.
pub async fn expire_due(store: &dyn Store, now: i64, limit: usize) -> ApiResult<usize> {
    // Not a request: catch up with what other processes wrote since the last one.
    store.refresh().await?;
    let q = ListQuery {
        filter: Filter::Field {
            path: vec!["id".into()],
            op: QOp::Lt(Value::String(format_ms(now + 1))),
        },
        limit,
        ..Default::default()
    };
    let due = store.list(SYSTEM, EXPIRIES_KIND, &q).await?;
    let mut n = 0;
    for item in &due.docs() {
        let (Some((org, mode)), Some(id)) = (
            item["tenant"].as_str().and_then(|t| t.split_once('#')),
            item["purchaseId"].as_str(),
        ) else {
            continue;
        };
        let mode = match mode {
            "live" => crate::auth::Mode::Live,
            _ => crate::auth::Mode::Test,
        };
        let tenant = Tenant::new(org, mode);
        let ctx = Ctx::new(store, &tenant);
        match engine::update(&ctx, &RESOURCE, id, json!({"status": "expired"}), None).await {
            Ok(_) => n += 1,
            // Gone or no longer due (cancelled, moved): drop the stale item.
            Err(_) => {
                let stale = WriteOp::Delete {
                    tenant: SYSTEM.into(),
                    kind: EXPIRIES_KIND,
                    id: item["id"].as_str().unwrap_or_default().to_string(),
                    expect: Expect::Absent,
                };
                crate::store::commit_retrying(store, crate::store::WriteTx::of(vec![stale]))
                    .await?;
            }
        }
    }
    Ok(n)
}

/// The expiry job of `hub serve`: every `every`, expire what is due.
pub async fn expiry_loop(store: crate::store::DynStore, every: std::time::Duration) {
    loop {
        match expire_due(store.as_ref(), crate::time::now_ms(), 500).await {
            Ok(0) => {}
            Ok(n) => crate::log::info("expiry", &format!("expired {n} purchases")),
            Err(e) => crate::log::error("expiry", &e.message),
        }
        tokio::time::sleep(every).await;
    }
}

/// A new purchase is `active`.
fn schema_rules(s: &mut Value, create: bool) {
    if create {
        crate::schema::only(s, "status", &["active"]);
    }
}

pub static RESOURCE: Resource = Resource {
    path: "purchases",
    object: "purchase",
    label: "purchase",
    prefix: "pur",
    fields: &[
        Field::new("patientId", Ty::Ref("patients"), "Who bought it.")
            .required()
            .restrict(),
        Field::new("packageId", Ty::Ref("packages"), "What was bought.")
            .required()
            .restrict(),
        Field::new("packageName", Ty::Str, "The package's name when bought.").read_only(),
        Field::new(
            "packageType",
            Ty::Enum(packages::TYPES),
            "The package's type.",
        )
        .read_only(),
        Field::new(
            "amount",
            Ty::Int {
                min: 0,
                max: MAX_SAFE_INTEGER,
            },
            "Paid, in the currency's smallest unit (default: the package's price).",
        ),
        Field::new("currency", Ty::Currency, "Default: the package's."),
        Field::new("purchasedAt", Ty::Timestamp, "When (default: now)."),
        Field::new(
            "expiresAt",
            Ty::Timestamp,
            "When it ends (default: purchasedAt plus the package's durationDays).",
        ),
        Field::new(
            "sessionsRemaining",
            Ty::Int {
                min: 0,
                max: 10_000,
            },
            "Visits left (session packs and intro offers); each valid check-in uses one.",
        )
        .read_only(),
        Field::new(
            "status",
            Ty::Enum(STATUSES),
            "active ↔ suspended, → cancelled; `expired` only by time.",
        ),
        Field::new("notes", Ty::Text, "Free-text notes."),
        Field::new(
            "metadata",
            Ty::Metadata,
            "Up to 50 string keys and values for your own use.",
        ),
    ],
    publishable: Publishable {
        read: false,
        create: false,
    },
    search_fields: &["notes", "packageName"],
    description: "A patient's purchase of a package; it drives the patient's membershipStatus.",
    lookups: &[
        Lookup::ranged("patientId", "purchasedAt"),
        Lookup::eq("packageId"),
        Lookup::eq("status").counted(),
    ],
    rules: &PurchaseRules,
    schema_rules: Some(schema_rules),
    events: &["package.purchased"],
    patient_field: Some("patientId"),
    ..Resource::CRUD
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_from_purchases() {
        let now = 1_000_000;
        let m = |status: &str, kind: &str, sessions: i64, expires: i64| {
            json!({"status": status, "packageType": kind, "sessionsRemaining": sessions,
                   "expiresAt": format_ms(expires)})
        };
        assert_eq!(membership_status(&[], now), "inactive");
        assert_eq!(
            membership_status(&[m("active", "membership", 0, now + 1)], now),
            "activePackage"
        );
        assert_eq!(
            membership_status(&[m("active", "membership", 0, now)], now),
            "inactive"
        );
        assert_eq!(
            membership_status(&[m("active", "sessionPack", 0, now + 9)], now),
            "inactive"
        );
        assert_eq!(
            membership_status(&[m("active", "introOffer", 2, now + 9)], now),
            "introOffer"
        );
        assert_eq!(
            membership_status(
                &[
                    m("active", "introOffer", 2, now + 9),
                    m("active", "sessionPack", 1, now + 9)
                ],
                now
            ),
            "activePackage"
        );
        assert_eq!(
            membership_status(&[m("suspended", "membership", 0, now + 9)], now),
            "suspendedMembership"
        );
        assert_eq!(
            membership_status(
                &[
                    m("suspended", "membership", 0, now + 9),
                    m("active", "introOffer", 1, now + 9)
                ],
                now
            ),
            "introOffer"
        );
    }
}
