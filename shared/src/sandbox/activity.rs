//! The sandbox's activity, relative to when the organization is created:
//! appointments over the past and coming four weeks in every status (none
//! overlapping, inside the practitioners' working hours), and the money of
//! the completed ones — invoices in every status with card and cash
//! payments, a refund and a credit note. Made through the same rules as
//! the API (lifecycle PATCHes, payments against balances), so the data is
//! what integrations would have produced. Deterministic but for the date.

use super::plan::{self, Rng};
use crate::error::{ApiError, ApiResult};
use crate::resources::{self, Ctx};
use serde_json::{json, Value};
use std::collections::HashMap;

const DAY_MS: i64 = 86_400_000;

fn id_of(ids: &HashMap<String, String>, key: &str) -> ApiResult<String> {
    ids.get(key).cloned().ok_or_else(|| {
        crate::log::error("sandbox", &format!("unresolved reference {key}"));
        ApiError::internal()
    })
}

async fn create(ctx: &Ctx<'_>, path: &str, body: Value) -> ApiResult<Value> {
    let res = resources::by_path(path).ok_or_else(ApiError::internal)?;
    let r = resources::create(ctx, res, body).await.inspect_err(|e| {
        let msg = format!("sandbox {path} refused: {}", e.message);
        crate::log::error("sandbox", &msg);
    })?;
    Ok(r.body)
}

async fn patch(ctx: &Ctx<'_>, path: &str, id: &str, body: Value) -> ApiResult<Value> {
    let res = resources::by_path(path).ok_or_else(ApiError::internal)?;
    let r = resources::update(ctx, res, id, body, None)
        .await
        .inspect_err(|e| {
            let msg = format!("sandbox {path} update refused: {}", e.message);
            crate::log::error("sandbox", &msg);
        })?;
    Ok(r.body)
}

/// `date` (days since the Unix epoch, London) at `hour:00` London time, UTC ms.
fn london(day: i64, hour: u32) -> Option<i64> {
    let tz = jiff::tz::TimeZone::get("Europe/London").ok()?;
    let date = jiff::civil::Date::constant(1970, 1, 1)
        .checked_add(jiff::Span::new().days(day))
        .ok()?;
    let dt = date.at(hour as i8, 0, 0, 0);
    Some(tz.to_timestamp(dt).ok()?.as_millisecond())
}

/// Today's date in London, as days since the epoch, and its weekday.
fn today(now_ms: i64) -> Option<(i64, i8)> {
    let tz = jiff::tz::TimeZone::get("Europe/London").ok()?;
    let t = jiff::Timestamp::from_millisecond(now_ms).ok()?;
    let date = tz.to_datetime(t).date();
    let epoch = jiff::civil::Date::constant(1970, 1, 1);
    let days = (date - epoch).get_days() as i64;
    Some((days, date.weekday().to_monday_zero_offset()))
}

struct Booked {
    id: String,
    patient: String,
    clinic: String,
    aty: usize,
    status: &'static str,
    start: i64,
}

/// Appointments over the past and coming four weeks.
async fn appointments(
    ctx: &Ctx<'_>,
    ids: &HashMap<String, String>,
    now_ms: i64,
    rng: &mut Rng,
) -> ApiResult<Vec<Booked>> {
    let Some((today, weekday)) = today(now_ms) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for offset in -28i64..=28 {
        let day = today + offset;
        let wd = (weekday as i64 + offset).rem_euclid(7) as i8;
        for p in 0..plan::practitioner_count() {
            // The first practitioner's today is the patient in the waiting room (below).
            if p == 0 && offset == 0 {
                continue;
            }
            let Some((clinic, _, open, close)) = plan::working_days(p)
                .into_iter()
                .find(|(_, d, _, _)| *d == wd)
            else {
                continue;
            };
            // About one working day in ten has an appointment (two,
            // sometimes), on distinct hours: a few dozen in all.
            let n = match rng.below(100) {
                0..=89 => 0,
                90..=97 => 1,
                _ => 2,
            };
            let mut hours: Vec<u32> = Vec::new();
            while hours.len() < n {
                let h = open + rng.below((close - open - 1) as usize) as u32;
                if !hours.contains(&h) {
                    hours.push(h);
                }
            }
            for hour in hours {
                let Some(start) = london(day, hour) else {
                    continue;
                };
                let aty = rng.below(plan::APPOINTMENT_TYPES.len());
                let patient = id_of(ids, &format!("patient:{}", 1 + rng.below(60)))?;
                let clinic_id = id_of(ids, &format!("clinic:{clinic}"))?;
                let roll = rng.below(100);
                let status: &'static str = if start + 3_600_000 < now_ms {
                    match roll {
                        0..=69 => "completed",
                        70..=79 => "noShow",
                        _ => "cancelled",
                    }
                } else if start <= now_ms {
                    "arrived"
                } else {
                    match roll {
                        0..=49 => "scheduled",
                        50..=84 => "confirmed",
                        _ => "cancelled",
                    }
                };
                let first = if status == "scheduled" {
                    "scheduled"
                } else {
                    "confirmed"
                };
                let body = json!({
                    "patientId": patient,
                    "practitionerId": id_of(ids, &format!("prac:{}", p + 1))?,
                    "clinicId": clinic_id,
                    "appointmentTypeId": id_of(ids, &format!("type:{}", plan::APPOINTMENT_TYPES[aty].0))?,
                    "startAt": crate::time::format_ms(start),
                    "status": first,
                    "location": format!("Room {}", 1 + rng.below(4)),
                });
                let apt = create(ctx, "appointments", body).await?;
                let id = apt["id"].as_str().unwrap_or_default().to_string();
                let steps: &[Value] = match status {
                    "completed" => &[json!({"status": "arrived"}), json!({"status": "completed"})],
                    "arrived" => &[json!({"status": "arrived"})],
                    "noShow" => &[json!({"status": "noShow"})],
                    "cancelled" => &[
                        json!({"status": "cancelled", "cancellationReason": "Patient asked to cancel"}),
                    ],
                    _ => &[],
                };
                for step in steps {
                    patch(ctx, "appointments", &id, step.clone()).await?;
                }
                out.push(Booked {
                    id,
                    patient,
                    clinic: clinic_id,
                    aty,
                    status,
                    start,
                });
            }
        }
    }
    // Someone has just arrived: a screening that began ten minutes ago.
    let start = (now_ms - 10 * 60_000) / 60_000 * 60_000;
    let (p, clinic) = (0, plan::working_days(0)[0].0);
    let patient = id_of(ids, "patient:1")?;
    let clinic_id = id_of(ids, &format!("clinic:{clinic}"))?;
    let body = json!({
        "patientId": patient,
        "practitionerId": id_of(ids, &format!("prac:{}", p + 1))?,
        "clinicId": clinic_id,
        "appointmentTypeId": id_of(ids, "type:screening")?,
        "startAt": crate::time::format_ms(start),
        "status": "confirmed",
        "notes": "Walked in early",
    });
    let apt = create(ctx, "appointments", body).await?;
    let id = apt["id"].as_str().unwrap_or_default().to_string();
    patch(ctx, "appointments", &id, json!({"status": "arrived"})).await?;
    Ok(out)
}

/// Invoices for completed appointments and hearing-aid sales: paid by card
/// or cash, in part, not yet; drafts, a void one, a refund, a credit note.
async fn money(ctx: &Ctx<'_>, booked: &[Booked]) -> ApiResult<()> {
    let mut n: u32 = 0;
    for b in booked.iter().filter(|b| b.status == "completed") {
        let (_, name, _, price) = plan::APPOINTMENT_TYPES[b.aty];
        let mut lines =
            vec![json!({"description": name, "quantity": 1, "unitAmount": price, "taxRateBps": 0})];
        if name == "Hearing aid fitting" {
            lines.push(json!({"description": "Hearing aid (pair)", "quantity": 2, "unitAmount": 89_500, "taxRateBps": 0}));
            lines.push(json!({"description": "Batteries (pack of 6)", "quantity": 2, "unitAmount": 499, "taxRateBps": 2000}));
        }
        if price == 0 && lines.len() == 1 {
            continue;
        }
        n += 1;
        let draft = n.is_multiple_of(9);
        let issued = crate::time::format_ms(b.start + 2 * 3_600_000);
        let due = crate::time::format_ms(b.start + 30 * DAY_MS);
        let mut body = json!({
            "patientId": b.patient, "clinicId": b.clinic, "appointmentId": b.id,
            "currency": "GBP", "lineItems": lines, "status": if draft { "draft" } else { "open" },
            "dueAt": due,
        });
        if !draft {
            body["issuedAt"] = json!(issued);
        }
        let inv = create(ctx, "invoices", body).await?;
        let id = inv["id"].as_str().unwrap_or_default().to_string();
        let total = inv["total"].as_i64().unwrap_or(0);
        if draft || total == 0 {
            continue;
        }
        let method = if n.is_multiple_of(3) { "cash" } else { "card" };
        let pay = |amount: i64, kind: &str, method: &str| {
            json!({"invoiceId": id, "type": kind, "amount": amount, "currency": "GBP",
                   "method": method, "occurredAt": issued})
        };
        match n % 7 {
            // Unpaid (open), or paid in part.
            0 => {}
            1 => {
                create(ctx, "transactions", pay(total / 2, "payment", method)).await?;
            }
            // Voided before anything was paid.
            2 if n < 8 => {
                patch(ctx, "invoices", &id, json!({"status": "void"})).await?;
            }
            // Paid, then partly refunded.
            3 if n < 12 => {
                create(ctx, "transactions", pay(total, "payment", "card")).await?;
                create(ctx, "transactions", pay(total / 4, "refund", "card")).await?;
            }
            // A goodwill credit, the rest paid.
            4 if n < 12 => {
                let credit = total / 10;
                create(
                    ctx,
                    "credit-notes",
                    json!({"invoiceId": id, "amount": credit, "currency": "GBP", "reason": "Goodwill: waited over an hour"}),
                )
                .await?;
                create(ctx, "transactions", pay(total - credit, "payment", method)).await?;
            }
            _ => {
                create(ctx, "transactions", pay(total, "payment", method)).await?;
            }
        }
    }
    Ok(())
}

/// Load the activity into a sandbox whose static plan is loaded (`ids`).
pub async fn load(ctx: &Ctx<'_>, ids: &HashMap<String, String>, now_ms: i64) -> ApiResult<()> {
    let mut rng = Rng(0xAC71_7177_5EED_0001);
    let booked = appointments(ctx, ids, now_ms, &mut rng).await?;
    money(ctx, &booked).await
}
