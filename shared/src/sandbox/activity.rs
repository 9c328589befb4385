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

/// Audiograms: typical presbycusis, sloping with age, for a dozen patients.
async fn hearing(
    ctx: &Ctx<'_>,
    ids: &HashMap<String, String>,
    now_ms: i64,
    rng: &mut Rng,
) -> ApiResult<()> {
    const FREQS: [i64; 7] = [250, 500, 1000, 2000, 3000, 4000, 8000];
    for n in 0..12usize {
        let patient = id_of(ids, &format!("patient:{}", 2 + n * 4))?;
        let loss = 10 + 5 * rng.below(6) as i64;
        let ear = |rng: &mut Rng, shift: i64| -> Value {
            let mut pts: Vec<Value> = FREQS
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    let t = (loss + shift + 5 * (i as i64) * (1 + rng.below(2) as i64)).min(120);
                    json!({"frequencyHz": f, "thresholdDb": t - t.rem_euclid(5), "conduction": "air"})
                })
                .collect();
            pts.push(
                json!({"frequencyHz": 1000, "thresholdDb": loss.min(60), "conduction": "bone"}),
            );
            Value::Array(pts)
        };
        let kind = ["diagnostic", "screening", "followUp"][n % 3];
        let left = ear(rng, 0);
        let shift = 5 * rng.below(3) as i64;
        let right = ear(rng, shift);
        create(
            ctx,
            "hearing-tests",
            json!({
                "patientId": patient,
                "clinicId": id_of(ids, "clinic:london")?,
                "practitionerId": id_of(ids, "prac:2")?,
                "testedAt": crate::time::format_ms(now_ms - (3 + 9 * n as i64) * DAY_MS),
                "type": kind,
                "left": left, "right": right,
                "notes": "Pure-tone audiometry, standard protocol.",
            }),
        )
        .await?;
    }
    Ok(())
}

/// Memberships and visits: packages of each type, purchases in every
/// status, check-ins valid and not, and outbound messages.
async fn studio(ctx: &Ctx<'_>, ids: &HashMap<String, String>, now_ms: i64) -> ApiResult<()> {
    let gbp = |name: &str, kind: &str, price: i64, sessions: Option<i64>, days: Option<i64>| {
        let mut b = json!({"name": name, "type": kind, "price": price, "currency": "GBP", "category": "Hearing care"});
        if let Some(s) = sessions {
            b["sessions"] = json!(s);
        }
        if let Some(d) = days {
            b["durationDays"] = json!(d);
        }
        b
    };
    let annual = create(
        ctx,
        "packages",
        gbp(
            "Aftercare plan (annual)",
            "membership",
            12_000,
            None,
            Some(365),
        ),
    )
    .await?;
    let monthly = create(
        ctx,
        "packages",
        gbp(
            "Aftercare plan (monthly)",
            "membership",
            1_200,
            None,
            Some(30),
        ),
    )
    .await?;
    let pack = create(
        ctx,
        "packages",
        gbp(
            "Wax removal — 3 visits",
            "sessionPack",
            15_000,
            Some(3),
            None,
        ),
    )
    .await?;
    let intro = create(
        ctx,
        "packages",
        gbp("First hearing check", "introOffer", 0, Some(1), Some(30)),
    )
    .await?;
    let id = |v: &Value| v["id"].as_str().unwrap_or_default().to_string();
    let day = |d: i64| crate::time::format_ms(now_ms + d * DAY_MS);
    let patient = |n: usize| id_of(ids, &format!("patient:{n}"));
    let buy = |p: String, pkg: String, at: String, until: Option<String>| {
        let mut b = json!({"patientId": p, "packageId": pkg, "purchasedAt": at});
        if let Some(u) = until {
            b["expiresAt"] = json!(u);
        }
        b
    };
    // Active ones.
    create(
        ctx,
        "purchases",
        buy(patient(3)?, id(&annual), day(-100), None),
    )
    .await?;
    // A month that ends within the week (the check-in alerts), three visits.
    create(
        ctx,
        "purchases",
        buy(patient(7)?, id(&monthly), day(-25), None),
    )
    .await?;
    create(
        ctx,
        "purchases",
        buy(patient(11)?, id(&pack), day(-40), None),
    )
    .await?;
    create(
        ctx,
        "purchases",
        buy(patient(15)?, id(&intro), day(-2), None),
    )
    .await?;
    // Suspended, cancelled, and one past its end (expired below, as the job would).
    let paused = create(
        ctx,
        "purchases",
        buy(patient(19)?, id(&annual), day(-200), None),
    )
    .await?;
    patch(
        ctx,
        "purchases",
        &id(&paused),
        json!({"status": "suspended", "notes": "Travelling for three months"}),
    )
    .await?;
    let stopped = create(
        ctx,
        "purchases",
        buy(patient(23)?, id(&monthly), day(-10), None),
    )
    .await?;
    patch(
        ctx,
        "purchases",
        &id(&stopped),
        json!({"status": "cancelled"}),
    )
    .await?;
    create(
        ctx,
        "purchases",
        buy(patient(27)?, id(&monthly), day(-45), Some(day(-15))),
    )
    .await?;
    crate::resources::purchases::expire_due(ctx.store, now_ms, 100).await?;
    // Visits: a member, the last of a pack after two, someone without one.
    let clinic = id_of(ids, "clinic:london")?;
    let visit =
        |p: String, at: String| json!({"patientId": p, "clinicId": clinic, "checkedInAt": at});
    create(ctx, "check-ins", visit(patient(3)?, day(-1))).await?;
    create(ctx, "check-ins", visit(patient(7)?, day(-3))).await?;
    for d in [-30, -20, -5] {
        create(ctx, "check-ins", visit(patient(11)?, day(d))).await?;
    }
    create(ctx, "check-ins", visit(patient(31)?, day(-2))).await?;
    // Outbound messages: reminders and results, in every status.
    let sms = |p: String, body: &str| json!({"channel": "sms", "to": "+447700900123", "from": "StMungos", "body": body, "patientId": p});
    let m1 = create(
        ctx,
        "messages",
        sms(
            patient(3)?,
            "Reminder: your aftercare check is tomorrow at 10:00.",
        ),
    )
    .await?;
    patch(ctx, "messages", &id(&m1), json!({"status": "sent"})).await?;
    patch(ctx, "messages", &id(&m1), json!({"status": "delivered"})).await?;
    let m2 = create(
        ctx,
        "messages",
        sms(patient(7)?, "Your plan ends soon: renew at reception."),
    )
    .await?;
    patch(ctx, "messages", &id(&m2), json!({"status": "failed"})).await?;
    create(ctx, "messages", json!({
        "channel": "email", "to": "results@example.com", "from": "clinic@stmungos.example.com",
        "subject": "Your hearing test results", "patientId": patient(2)?,
        "body": "<p>Dear patient,</p><p>Your audiogram is attached to your record. Please book a follow-up.</p>",
    }))
    .await?;
    Ok(())
}

/// Load the activity into a sandbox whose static plan is loaded (`ids`).
pub async fn load(ctx: &Ctx<'_>, ids: &HashMap<String, String>, now_ms: i64) -> ApiResult<()> {
    let mut rng = Rng(0xAC71_7177_5EED_0001);
    let booked = appointments(ctx, ids, now_ms, &mut rng).await?;
    money(ctx, &booked).await?;
    hearing(ctx, ids, now_ms, &mut rng).await?;
    studio(ctx, ids, now_ms).await
}
