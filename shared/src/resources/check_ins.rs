//! Check-ins: a visit, judged by the hub. Its rules: it is valid when the
//! patient has a purchase covering it (an unexpired active membership
//! first, else the session pack or intro offer expiring soonest, which uses
//! one session) or an appointment at that clinic that local day (which
//! becomes `arrived`); all of it — the check-in, the purchase's next
//! version, the appointment's, the patient's new membership status — in one
//! atomic write. An invalid check-in is recorded too.

use super::{appointments, purchases, Change, Ctx, Resource, Rules, Verb};
use crate::error::{ApiError, ApiResult};
use crate::query::{Filter, ListQuery, Op as QOp};
use crate::schema::{Field, Ty};
use crate::store::Lookup;
use crate::time::{format_ms, parse_timestamp};
use async_trait::async_trait;
use serde_json::{json, Value};

const WEEK_MS: i64 = 7 * 86_400_000;

fn ms(v: Option<&Value>) -> Option<i64> {
    v.and_then(Value::as_str).and_then(parse_timestamp)
}

fn str_of(v: Option<&Value>) -> &str {
    v.and_then(Value::as_str).unwrap_or_default()
}

async fn by_patient(ctx: &Ctx<'_>, kind: &str, patient: &str) -> ApiResult<Vec<crate::store::Doc>> {
    let q = ListQuery {
        filter: Filter::Field {
            path: vec!["patientId".into()],
            op: QOp::Eq(Value::String(patient.to_string())),
        },
        limit: 100_000,
        ..Default::default()
    };
    Ok(ctx.store.list(&ctx.tenant.key(), kind, &q).await?.docs())
}

/// The local day of an instant in a clinic's time zone, as `YYYY-MM-DD`.
fn local_day(tz: &jiff::tz::TimeZone, at: i64) -> Option<String> {
    let t = jiff::Timestamp::from_millisecond(at).ok()?;
    Some(tz.to_datetime(t).date().to_string())
}

struct CheckInRules;

#[async_trait]
impl Rules for CheckInRules {
    async fn check(&self, ctx: &Ctx<'_>, change: &mut Change<'_>) -> ApiResult<()> {
        match change.verb {
            Verb::Update => {
                for (f, _) in change.patch.into_iter().flatten() {
                    if change.changed(f) && !["notes", "metadata"].contains(&f.as_str()) {
                        return Err(ApiError::conflict(format!(
                            "A check-in is a record: its `{f}` cannot change (only notes and metadata)."
                        )));
                    }
                }
                Ok(())
            }
            // Deleting a check-in gives back the session it used.
            Verb::Delete => {
                let old = change.old.cloned().unwrap_or_default();
                let Some(pid) = old.get("purchaseId").and_then(Value::as_str) else {
                    return Ok(());
                };
                let Some(p) = ctx.store.get(&ctx.tenant.key(), "purchases", pid).await? else {
                    return Ok(());
                };
                if p["sessionsRemaining"].is_i64() {
                    purchases::use_session(ctx, change, &p, 1).await?;
                }
                Ok(())
            }
            Verb::Create => check_in(ctx, change).await,
        }
    }
}

async fn check_in(ctx: &Ctx<'_>, change: &mut Change<'_>) -> ApiResult<()> {
    let now = change.now_ms;
    let at = change
        .new
        .entry("checkedInAt")
        .or_insert_with(|| json!(format_ms(now)))
        .clone();
    let at = ms(Some(&at)).unwrap_or(now);
    let patient = str_of(change.get("patientId")).to_string();
    let clinic = str_of(change.get("clinicId")).to_string();
    let mut messages: Vec<String> = Vec::new();
    let mut alerts: Vec<String> = Vec::new();

    // The purchase it uses: a membership first, else the pack that ends soonest.
    let bought: Vec<Value> = by_patient(ctx, "purchases", &patient)
        .await?
        .iter()
        .map(|p| (**p).clone())
        .filter(|p| purchases::usable(p, at))
        .collect();
    let membership = bought
        .iter()
        .filter(|p| p["packageType"] == "membership")
        .min_by_key(|p| ms(p.get("expiresAt")).unwrap_or(i64::MAX));
    let pack = bought
        .iter()
        .filter(|p| {
            p["packageType"] != "membership" && p["sessionsRemaining"].as_i64().unwrap_or(0) > 0
        })
        .min_by_key(|p| {
            (
                ms(p.get("expiresAt")).unwrap_or(i64::MAX),
                p["id"].as_str().unwrap_or_default().to_string(),
            )
        });
    let mut used = None;
    if let Some(m) = membership {
        used = Some(m["id"].clone());
        if ms(m.get("expiresAt")).is_some_and(|e| e - at <= WEEK_MS) {
            alerts.push(format!(
                "membership ends within 7 days ({})",
                &str_of(m.get("expiresAt"))[..10]
            ));
        }
    } else if let Some(p) = pack {
        used = Some(p["id"].clone());
        if purchases::use_session(ctx, change, p, -1).await? == 0 {
            alerts.push("last session used".into());
        }
    }

    // An appointment of the patient's at this clinic that local day arrives.
    let tz_name = ctx
        .store
        .get(&ctx.tenant.key(), "clinics", &clinic)
        .await?
        .and_then(|c| c["timeZone"].as_str().map(String::from))
        .unwrap_or_else(|| "UTC".into());
    let tz = jiff::tz::TimeZone::get(&tz_name).unwrap_or(jiff::tz::TimeZone::UTC);
    let today = local_day(&tz, at);
    let mut visit = None;
    for a in by_patient(ctx, "appointments", &patient).await? {
        let waiting = a["status"] == "scheduled" || a["status"] == "confirmed";
        if waiting
            && a["clinicId"] == clinic.as_str()
            && ms(a.get("startAt")).and_then(|s| local_day(&tz, s)) == today
        {
            visit = Some(a);
            break;
        }
    }
    if let Some(a) = &visit {
        appointments::arrive(ctx, change, a)?;
    }

    let valid = used.is_some() || visit.is_some();
    if valid && alerts.is_empty() {
        messages.push("valid check-in".into());
    } else if valid {
        messages.push("valid check-in with alerts".into());
        messages.extend(alerts);
    } else {
        messages.push("invalid check-in – no valid membership".into());
    }
    let n = &mut change.new;
    n.insert("valid".into(), json!(valid));
    if let Some(u) = used {
        n.insert("purchaseId".into(), u);
    }
    if let Some(a) = visit {
        n.insert("appointmentId".into(), a["id"].clone());
    }
    n.insert("messages".into(), json!(messages));
    Ok(())
}

pub static RESOURCE: Resource = Resource {
    path: "check-ins",
    object: "checkIn",
    label: "check-in",
    prefix: "chk",
    fields: &[
        Field::new("patientId", Ty::Ref("patients"), "Who came in.")
            .required()
            .restrict(),
        Field::new("clinicId", Ty::Ref("clinics"), "Where.")
            .required()
            .restrict(),
        Field::new("checkedInAt", Ty::Timestamp, "When (default: now)."),
        Field::new(
            "valid",
            Ty::Bool,
            "A purchase covers it, or an appointment that day.",
        )
        .read_only(),
        Field::new(
            "purchaseId",
            Ty::Ref("purchases"),
            "The purchase it used (a session of a pack is used up).",
        )
        .read_only()
        .restrict(),
        Field::new(
            "appointmentId",
            Ty::Ref("appointments"),
            "The appointment it arrived for.",
        )
        .read_only(),
        Field::new(
            "messages",
            Ty::Array(&Ty::Str, 10),
            "`valid check-in`, `valid check-in with alerts` and the alerts, or `invalid check-in – no valid membership`.",
        )
        .read_only(),
        Field::new("notes", Ty::Text, "Free-text notes."),
        Field::new(
            "metadata",
            Ty::Metadata,
            "Up to 50 string keys and values for your own use.",
        ),
    ],
    search_fields: &["notes"],
    description: "A visit, validated against the patient's purchases and appointments.",
    lookups: &[
        Lookup::ranged("patientId", "checkedInAt"),
        Lookup::ranged("clinicId", "checkedInAt"),
    ],
    ordered_by: Some("checkedInAt"),
    rules: &CheckInRules,
    patient_field: Some("patientId"),
    ..Resource::CRUD
};
