//! Appointments: every rule of a booking lives here — its lifecycle, the
//! practitioner who cannot be in two places at once, the clinic they must
//! work at, the slots a booking widget may take — and the availability view.
//!
//! No double booking, on both stores and under concurrency: DynamoDB cannot
//! compare time ranges across items in a transaction, so each practitioner
//! has a guard item per UTC day (`appointment-guards`, id
//! `{practitionerId}#{YYYY-MM-DD}`) listing the bookings (id, start, end)
//! that touch that day. A write that books, moves, cancels or deletes an
//! appointment reads the guards of every day its old and new times touch,
//! checks the new time against their bookings, and writes each guard's next
//! version in the same atomic write as the appointment, conditional on the
//! version it read. Of two concurrent bookings one commits; the other's
//! condition fails, the engine runs it again on fresh reads, and it meets
//! the first booking (409). An appointment crossing midnight (UTC, so
//! daylight-saving changes do not matter) is in both days' guards.

use super::{engine, BoxFuture, Change, Ctx, Publishable, Resource, Rules, Verb, View};
use crate::domain::parse_local_time;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::query::{Filter, ListQuery, Op as QOp};
use crate::schema::{Field, Ty};
use crate::store::{Expect, Lookup, WriteOp};
use crate::time::{format_ms, parse_timestamp};
use async_trait::async_trait;
use serde_json::{json, Map, Value};

pub const STATUSES: &[&str] = &[
    "scheduled",
    "confirmed",
    "arrived",
    "completed",
    "cancelled",
    "noShow",
];

/// Guard items: a practitioner's bookings per UTC day.
pub const GUARDS_KIND: &str = "appointment-guards";
const DAY_MS: i64 = 86_400_000;
/// The longest appointment.
const MAX_LENGTH_MS: i64 = DAY_MS;
/// Fields that may still change once an appointment is final.
const FINAL_FIELDS: &[&str] = &["notes", "customData", "metadata"];
/// Fields that make the booking: changed only while scheduled or confirmed.
const BOOKING_FIELDS: &[&str] = &[
    "patientId",
    "practitionerId",
    "clinicId",
    "appointmentTypeId",
    "startAt",
    "endAt",
];

/// Where a status may go next.
fn next_statuses(from: &str) -> &'static [&'static str] {
    match from {
        "scheduled" => &["confirmed", "arrived", "cancelled", "noShow"],
        "confirmed" => &["arrived", "cancelled", "noShow"],
        "arrived" => &["completed"],
        _ => &[],
    }
}

fn allowed_text(from: &str) -> String {
    match next_statuses(from) {
        [] => format!(
            "`{from}` is final: no status change is allowed, only {} may still change",
            FINAL_FIELDS
                .iter()
                .map(|f| format!("`{f}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        next => format!(
            "from `{from}` it may become {}",
            next.iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn ms_of(v: Option<&Value>) -> Option<i64> {
    v.and_then(Value::as_str).and_then(parse_timestamp)
}

fn str_of(v: Option<&Value>) -> &str {
    v.and_then(Value::as_str).unwrap_or_default()
}

/// The time an appointment holds its practitioner: (practitioner, start,
/// end), or `None` once cancelled.
fn holding(doc: &Map<String, Value>) -> Option<(String, i64, i64)> {
    if doc.get("status").and_then(Value::as_str) == Some("cancelled") {
        return None;
    }
    Some((
        str_of(doc.get("practitionerId")).to_string(),
        ms_of(doc.get("startAt"))?,
        ms_of(doc.get("endAt"))?,
    ))
}

/// The UTC days `[start, end)` touches, as `YYYY-MM-DD`.
fn days(start: i64, end: i64) -> Vec<String> {
    let first = start.div_euclid(DAY_MS);
    let last = (end - 1).max(start).div_euclid(DAY_MS);
    (first..=last)
        .map(|d| format_ms(d * DAY_MS)[..10].to_string())
        .collect()
}

fn hhmm(ms: i64) -> String {
    format_ms(ms)[11..16].to_string()
}

/// Read the guards of the old and the new time, move this appointment from
/// one to the other, and refuse a new time that overlaps another booking.
async fn guard(
    ctx: &Ctx<'_>,
    change: &mut Change<'_>,
    old: Option<(String, i64, i64)>,
    new: Option<(String, i64, i64)>,
) -> ApiResult<()> {
    if old == new {
        return Ok(());
    }
    let id = change.id.to_string();
    let mut ids: Vec<String> = Vec::new();
    for (p, s, e) in old.iter().chain(new.iter()) {
        for d in days(*s, *e) {
            let g = format!("{p}#{d}");
            if !ids.contains(&g) {
                ids.push(g);
            }
        }
    }
    let new_ids: Vec<String> = new
        .as_ref()
        .map(|(p, s, e)| {
            days(*s, *e)
                .into_iter()
                .map(|d| format!("{p}#{d}"))
                .collect()
        })
        .unwrap_or_default();
    let key = ctx.tenant.key();
    for gid in ids {
        let current = ctx.store.get(&key, GUARDS_KIND, &gid).await?;
        let (expect, version) = match &current {
            Some(g) => {
                let v = g["version"].as_u64().unwrap_or(1);
                (Expect::Version(v), v + 1)
            }
            None => (Expect::Absent, 1),
        };
        let mut bookings: Vec<Value> = current
            .as_ref()
            .and_then(|g| g["bookings"].as_array().cloned())
            .unwrap_or_default();
        bookings.retain(|b| b["id"] != id.as_str());
        if new_ids.contains(&gid) {
            let (p, s, e) = new.as_ref().ok_or_else(ApiError::internal)?;
            if let Some(clash) = bookings.iter().find(|b| {
                ms_of(b.get("startAt")).is_some_and(|bs| bs < *e)
                    && ms_of(b.get("endAt")).is_some_and(|be| *s < be)
            }) {
                let other = str_of(clash.get("id"));
                let mut err = ApiError::conflict(format!(
                    "The practitioner `{p}` already has appointment `{other}` from {} to {} (UTC) on {}, which overlaps {}–{}. Cancel or move it, or pick another time.",
                    hhmm(ms_of(clash.get("startAt")).unwrap_or(0)),
                    hhmm(ms_of(clash.get("endAt")).unwrap_or(0)),
                    &format_ms(ms_of(clash.get("startAt")).unwrap_or(0))[..10],
                    hhmm(*s),
                    hhmm(*e),
                ));
                err.errors.push(FieldError::new(
                    "startAt",
                    format!("overlaps appointment `{other}`"),
                ));
                return Err(err);
            }
            bookings.push(json!({"id": id, "startAt": format_ms(*s), "endAt": format_ms(*e)}));
        }
        change.ops.push(WriteOp::Put {
            tenant: key.clone(),
            kind: GUARDS_KIND,
            id: gid.clone(),
            doc: json!({"id": gid, "bookings": bookings, "version": version}),
            expect,
        });
    }
    Ok(())
}

async fn fetch(ctx: &Ctx<'_>, kind: &str, id: &str) -> ApiResult<Option<crate::store::Doc>> {
    Ok(ctx.store.get(&ctx.tenant.key(), kind, id).await?)
}

struct AppointmentRules;

#[async_trait]
impl Rules for AppointmentRules {
    async fn check(&self, ctx: &Ctx<'_>, change: &mut Change<'_>) -> ApiResult<()> {
        let old: Option<Map<String, Value>> = change.old.and_then(|o| o.as_object().cloned());
        if change.verb == Verb::Delete {
            let held = old.as_ref().and_then(holding);
            return guard(ctx, change, held, None).await;
        }
        let status = change
            .new
            .entry("status")
            .or_insert_with(|| Value::String("scheduled".into()))
            .as_str()
            .unwrap_or_default()
            .to_string();
        let was = old.as_ref().map(|o| str_of(o.get("status")).to_string());
        match &was {
            None if !["scheduled", "confirmed"].contains(&status.as_str()) => {
                return Err(ApiError::field(
                    "status",
                    format!("a new appointment is `scheduled` or `confirmed`, not `{status}`"),
                ));
            }
            None => {}
            Some(from) => {
                if *from != status && !next_statuses(from).contains(&status.as_str()) {
                    return Err(ApiError::conflict(format!(
                        "This appointment is `{from}` and cannot become `{status}`: {}.",
                        allowed_text(from)
                    )));
                }
                let movable = ["scheduled", "confirmed"].contains(&from.as_str());
                for (field, _) in change.patch.into_iter().flatten() {
                    let changed = change.get(field) != change.was(field);
                    if !changed || field == "status" {
                        continue;
                    }
                    let final_state = next_statuses(from).is_empty();
                    if final_state && !FINAL_FIELDS.contains(&field.as_str()) {
                        return Err(ApiError::conflict(format!(
                            "This appointment is `{from}`: {}.",
                            allowed_text(from)
                        )));
                    }
                    if !movable && BOOKING_FIELDS.contains(&field.as_str()) {
                        return Err(ApiError::conflict(format!(
                            "This appointment is `{from}`: `{field}` can only change while it is `scheduled` or `confirmed` (a reschedule)."
                        )));
                    }
                }
            }
        }
        let reason_given = change.get("cancellationReason").is_some()
            && (was.is_none() || change.changed("cancellationReason"));
        if reason_given && status != "cancelled" {
            return Err(ApiError::field(
                "cancellationReason",
                "is given only when cancelling (`\"status\": \"cancelled\"`)",
            ));
        }

        // Times: endAt defaults to the type's duration after startAt; a
        // move of startAt alone keeps the length.
        let start = ms_of(change.get("startAt"))
            .ok_or_else(|| ApiError::field("startAt", "is required"))?;
        let end_given =
            change.patch.is_none_or(|p| p.contains_key("endAt")) && change.get("endAt").is_some();
        let end = if end_given {
            ms_of(change.get("endAt")).ok_or_else(|| ApiError::field("endAt", "is required"))?
        } else if let (Some(os), Some(oe)) = (
            old.as_ref().and_then(|o| ms_of(o.get("startAt"))),
            old.as_ref().and_then(|o| ms_of(o.get("endAt"))),
        ) {
            start + (oe - os)
        } else {
            let aty_id = str_of(change.get("appointmentTypeId")).to_string();
            let aty = fetch(ctx, "appointment-types", &aty_id)
                .await?
                .ok_or_else(|| ApiError::field("appointmentTypeId", "no such appointment type"))?;
            start + aty["durationMinutes"].as_i64().unwrap_or(30) * 60_000
        };
        if end <= start {
            return Err(ApiError::field("endAt", "must be after `startAt`"));
        }
        if end - start > MAX_LENGTH_MS {
            return Err(ApiError::field(
                "endAt",
                "an appointment lasts at most 24 hours",
            ));
        }
        change
            .new
            .insert("endAt".into(), Value::String(format_ms(end)));

        // The practitioner must work at the clinic.
        let practitioner_id = str_of(change.get("practitionerId")).to_string();
        let clinic_id = str_of(change.get("clinicId")).to_string();
        if change.verb == Verb::Create
            || change.changed("practitionerId")
            || change.changed("clinicId")
        {
            let prc = fetch(ctx, "practitioners", &practitioner_id)
                .await?
                .ok_or_else(|| ApiError::field("practitionerId", "no such practitioner"))?;
            let works_there = prc["clinicIds"]
                .as_array()
                .is_some_and(|a| a.iter().any(|c| c == clinic_id.as_str()));
            if !works_there {
                return Err(ApiError::field(
                    "clinicId",
                    format!("the practitioner `{practitioner_id}` does not work at `{clinic_id}` (their `clinicIds`)"),
                ));
            }
        }

        // A booking widget (publishable key) may only take an offered slot.
        if ctx.publishable() && change.verb == Verb::Create {
            offered(ctx, change, start, end).await?;
        }

        // Events beyond `updated`: the status change, and a reschedule.
        if let Some(from) = &was {
            if *from != status {
                change.verbs.push(match status.as_str() {
                    "confirmed" => "confirmed",
                    "arrived" => "arrived",
                    "completed" => "completed",
                    "cancelled" => "cancelled",
                    _ => "noShow",
                });
            }
            let moved = ["startAt", "endAt", "practitionerId"]
                .iter()
                .any(|f| change.changed(f));
            if moved {
                change.verbs.push("rescheduled");
            }
        }
        let held_before = old.as_ref().and_then(holding);
        let held_after = holding(&change.new);
        guard(ctx, change, held_before, held_after).await
    }
}

/// The patient is here (a check-in): a scheduled or confirmed appointment
/// becomes `arrived` in the same write as `change`, with its events.
pub fn arrive(ctx: &Ctx<'_>, change: &mut Change<'_>, appointment: &Value) -> ApiResult<()> {
    let from = str_of(appointment.get("status"));
    if !next_statuses(from).contains(&"arrived") {
        return Err(ApiError::conflict(format!(
            "This appointment is `{from}` and cannot become `arrived`: {}.",
            allowed_text(from)
        )));
    }
    let mut fields = Map::new();
    fields.insert("status".into(), json!("arrived"));
    let after = engine::update_other(ctx, &RESOURCE, appointment, fields, change.now_ms, change);
    change.events.push(ctx.event(&RESOURCE, "arrived", &after));
    Ok(())
}

/// A publishable key books only a slot availability offers.
async fn offered(ctx: &Ctx<'_>, change: &Change<'_>, start: i64, end: i64) -> ApiResult<()> {
    let refuse = |why: &str| {
        Err(ApiError::conflict(format!(
            "This time is not offered for booking: {why}. Ask GET /v1/availability for the free slots."
        )))
    };
    let aty_id = str_of(change.get("appointmentTypeId"));
    let aty = fetch(ctx, "appointment-types", aty_id)
        .await?
        .ok_or_else(|| ApiError::field("appointmentTypeId", "no such appointment type"))?;
    if aty["bookableOnline"] == false {
        return refuse("this appointment type is not bookable online");
    }
    let duration = aty["durationMinutes"].as_i64().unwrap_or(0) * 60_000;
    if end - start != duration {
        return refuse("a booking lasts exactly the appointment type's duration");
    }
    let q = SlotQuery {
        duration,
        from: start,
        to: start + 1,
        practitioner: Some(str_of(change.get("practitionerId")).to_string()),
        clinic: Some(str_of(change.get("clinicId")).to_string()),
        step_ms: 5 * 60_000,
        exclude: Some(change.id.to_string()),
    };
    let found = slots(ctx, &q).await?;
    if found.iter().any(|s| s.start == start) {
        Ok(())
    } else {
        refuse("it is outside the practitioner's working hours, in their time off, in the past, or taken")
    }
}

/// One free slot.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Slot {
    pub start: i64,
    pub practitioner: String,
    pub end: i64,
    pub clinic: String,
}

pub struct SlotQuery {
    pub duration: i64,
    pub from: i64,
    pub to: i64,
    pub practitioner: Option<String>,
    pub clinic: Option<String>,
    pub step_ms: i64,
    /// An appointment not to count as busy (the one being booked).
    pub exclude: Option<String>,
}

/// The practitioner's busy times in a window: appointments not cancelled,
/// and time off.
async fn busy(
    ctx: &Ctx<'_>,
    prc: &Value,
    from: i64,
    to: i64,
) -> ApiResult<Vec<(i64, i64, String)>> {
    let id = str_of(prc.get("id"));
    let q = ListQuery {
        filter: Filter::And(vec![
            Filter::Field {
                path: vec!["practitionerId".into()],
                op: QOp::Eq(Value::String(id.to_string())),
            },
            Filter::Field {
                path: vec!["startAt".into()],
                op: QOp::Gte(Value::String(format_ms(from - MAX_LENGTH_MS))),
            },
            Filter::Field {
                path: vec!["startAt".into()],
                op: QOp::Lt(Value::String(format_ms(to))),
            },
            Filter::Field {
                path: vec!["status".into()],
                op: QOp::Ne(Value::String("cancelled".into())),
            },
        ]),
        sort: vec![crate::query::SortKey {
            path: vec!["startAt".into()],
            descending: false,
        }],
        limit: 100_000,
        ..Default::default()
    };
    let page = ctx
        .store
        .list(&ctx.tenant.key(), "appointments", &q)
        .await?;
    let mut out: Vec<(i64, i64, String)> = page
        .docs()
        .iter()
        .filter_map(|a| {
            Some((
                ms_of(a.get("startAt"))?,
                ms_of(a.get("endAt"))?,
                str_of(a.get("id")).to_string(),
            ))
        })
        .collect();
    for t in prc["timeOff"].as_array().into_iter().flatten() {
        if let (Some(s), Some(e)) = (ms_of(t.get("startAt")), ms_of(t.get("endAt"))) {
            out.push((s, e, String::new()));
        }
    }
    out.sort();
    Ok(out)
}

/// Free slots (the module's availability rules): every `step` from the
/// start of each working interval, the whole appointment inside the
/// interval, clear of time off and of appointments that are not cancelled
/// (at any clinic), starting in the future and within `[from, to)`.
pub async fn slots(ctx: &Ctx<'_>, q: &SlotQuery) -> ApiResult<Vec<Slot>> {
    let key = ctx.tenant.key();
    let practitioners: Vec<crate::store::Doc> = match &q.practitioner {
        Some(p) => fetch(ctx, "practitioners", p).await?.into_iter().collect(),
        None => ctx.store.all(&key, "practitioners").await?,
    };
    let clinics = ctx.store.all(&key, "clinics").await?;
    let now = crate::time::now_ms();
    let mut out = Vec::new();
    for prc in &practitioners {
        let hours: Vec<&Value> = prc["workingHours"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|h| q.clinic.as_deref().is_none_or(|c| h["clinicId"] == c))
                    .collect()
            })
            .unwrap_or_default();
        if hours.is_empty() {
            continue;
        }
        let mut taken = busy(ctx, prc, q.from, q.to + q.duration).await?;
        if let Some(x) = &q.exclude {
            taken.retain(|(_, _, id)| id != x);
        }
        let pid = str_of(prc.get("id")).to_string();
        for h in hours {
            let clinic_id = str_of(h.get("clinicId"));
            let tz_name = clinics
                .iter()
                .find(|c| c["id"] == clinic_id)
                .and_then(|c| c["timeZone"].as_str())
                .unwrap_or("UTC");
            let Ok(tz) = jiff::tz::TimeZone::get(tz_name) else {
                continue;
            };
            let (Some(start_min), Some(end_min)) = (
                h["start"].as_str().and_then(parse_local_time),
                h["end"].as_str().and_then(parse_local_time),
            ) else {
                continue;
            };
            let day = super::practitioners::DAYS
                .iter()
                .position(|d| h["day"] == *d)
                .unwrap_or(7) as i8;
            for (ws, we) in occurrences(&tz, day, start_min, end_min, q.from, q.to) {
                let mut t = ws;
                while t + q.duration <= we {
                    if t >= q.from && t < q.to && t > now {
                        let e = t + q.duration;
                        let clear = !taken.iter().any(|(bs, be, _)| *bs < e && t < *be);
                        if clear {
                            out.push(Slot {
                                start: t,
                                practitioner: pid.clone(),
                                end: e,
                                clinic: clinic_id.to_string(),
                            });
                        }
                    }
                    t += q.step_ms;
                }
            }
        }
    }
    out.sort();
    out.dedup_by(|a, b| a.start == b.start && a.practitioner == b.practitioner);
    Ok(out)
}

/// The instants `[start, end)` of a weekly interval (weekday, minutes of
/// the local day) in a time zone, for every such day around `[from, to)`.
fn occurrences(
    tz: &jiff::tz::TimeZone,
    weekday: i8,
    start_min: u32,
    end_min: u32,
    from: i64,
    to: i64,
) -> Vec<(i64, i64)> {
    let local = |ms: i64| {
        jiff::Timestamp::from_millisecond(ms)
            .ok()
            .map(|t| tz.to_datetime(t).date())
    };
    let (Some(mut day), Some(last)) = (local(from - DAY_MS), local(to + DAY_MS)) else {
        return Vec::new();
    };
    let at = |d: jiff::civil::Date, minute: u32| -> Option<i64> {
        let (d, minute) = if minute >= 24 * 60 {
            (d.tomorrow().ok()?, minute - 24 * 60)
        } else {
            (d, minute)
        };
        let dt = d.at((minute / 60) as i8, (minute % 60) as i8, 0, 0);
        Some(tz.to_timestamp(dt).ok()?.as_millisecond())
    };
    let mut out = Vec::new();
    while day <= last {
        if day.weekday().to_monday_zero_offset() == weekday {
            if let (Some(s), Some(e)) = (at(day, start_min), at(day, end_min)) {
                out.push((s, e));
            }
        }
        match day.tomorrow() {
            Ok(d) => day = d,
            Err(_) => break,
        }
    }
    out
}

static SLOT_FIELDS: &[Field] = &[
    Field::new(
        "startAt",
        Ty::Timestamp,
        "When the appointment would start.",
    )
    .read_only(),
    Field::new("endAt", Ty::Timestamp, "When it would end.").read_only(),
    Field::new("practitionerId", Ty::Ref("practitioners"), "With whom.").read_only(),
    Field::new("clinicId", Ty::Ref("clinics"), "Where.").read_only(),
];

/// `GET /v1/availability`.
fn availability<'a>(
    ctx: &'a Ctx<'a>,
    params: Map<String, Value>,
) -> BoxFuture<'a, ApiResult<Value>> {
    Box::pin(async move {
        let from =
            ms_of(params.get("from")).ok_or_else(|| ApiError::field("from", "is required"))?;
        let to = ms_of(params.get("to")).ok_or_else(|| ApiError::field("to", "is required"))?;
        if to <= from {
            return Err(ApiError::field("to", "must be after `from`"));
        }
        if to - from > 31 * DAY_MS {
            return Err(ApiError::field(
                "to",
                "must be at most 31 days after `from`",
            ));
        }
        let aty_id = str_of(params.get("appointmentTypeId"));
        let aty = engine::get(ctx, &super::appointment_types::RESOURCE, aty_id)
            .await
            .map_err(|_| {
                ApiError::field(
                    "appointmentTypeId",
                    format!("no appointment type with id `{aty_id}` in this organization and mode"),
                )
            })?;
        if ctx.publishable() && aty["bookableOnline"] == false {
            return Err(ApiError::field(
                "appointmentTypeId",
                "this appointment type is not bookable online",
            ));
        }
        let q = SlotQuery {
            duration: aty["durationMinutes"].as_i64().unwrap_or(30) * 60_000,
            from,
            to,
            practitioner: params
                .get("practitionerId")
                .and_then(Value::as_str)
                .map(String::from),
            clinic: params
                .get("clinicId")
                .and_then(Value::as_str)
                .map(String::from),
            step_ms: params
                .get("slotMinutes")
                .and_then(Value::as_i64)
                .unwrap_or(15)
                * 60_000,
            exclude: None,
        };
        if let Some(p) = &q.practitioner {
            if fetch(ctx, "practitioners", p).await?.is_none() {
                return Err(ApiError::field(
                    "practitionerId",
                    format!("no practitioner with id `{p}` in this organization and mode"),
                ));
            }
        }
        let data: Vec<Value> = slots(ctx, &q)
            .await?
            .into_iter()
            .map(|s| {
                json!({"startAt": format_ms(s.start), "endAt": format_ms(s.end),
                       "practitionerId": s.practitioner, "clinicId": s.clinic})
            })
            .collect();
        Ok(json!({"object": "list", "data": data}))
    })
}

pub static AVAILABILITY: View = View {
    path: "availability",
    summary: "Free slots of an appointment type (a booking page)",
    description: "Slots start every `slotMinutes` from the start of each working interval (in the clinic's time zone, daylight saving followed); a slot is offered when the whole appointment fits inside the interval, does not overlap the practitioner's time off or any of their appointments that are not cancelled (at any clinic), and starts in the future. Sorted by `startAt`, then `practitionerId`, and paged like every list: `$limit` (default 10, at most 100) and the `next`/`prev` cursors (`$after`, `$before`), which keep the other parameters. Publishable keys may read it and book an offered slot.",
    params: &[
        Field::new("appointmentTypeId", Ty::Ref("appointment-types"), "What to book (its duration).").required(),
        Field::new("from", Ty::Timestamp, "Window start (RFC 3339 or Unix ms).").required(),
        Field::new("to", Ty::Timestamp, "Window end, at most 31 days after `from`.").required(),
        Field::new("practitionerId", Ty::Ref("practitioners"), "Only this practitioner."),
        Field::new("clinicId", Ty::Ref("clinics"), "Only at this clinic."),
        Field::new("slotMinutes", Ty::Int { min: 5, max: 720 }, "Step between slot starts (default 15)."),
    ],
    item: SLOT_FIELDS,
    item_name: "Slot",
    order: &["startAt", "practitionerId"],
    access: "appointments",
    publishable: true,
    run: availability,
};

/// A new appointment is `scheduled` or `confirmed`, so it has no
/// `cancellationReason` yet.
fn schema_rules(s: &mut Value, create: bool) {
    if create {
        crate::schema::only(s, "status", &["scheduled", "confirmed"]);
        s["properties"]["cancellationReason"] = json!(false);
    }
}

pub static RESOURCE: Resource = Resource {
    path: "appointments",
    object: "appointment",
    label: "appointment",
    prefix: "apt",
    fields: &[
        Field::new("patientId", Ty::Ref("patients"), "The patient.")
            .required()
            .restrict(),
        Field::new("practitionerId", Ty::Ref("practitioners"), "With whom; they must work at the clinic.")
            .required()
            .restrict(),
        Field::new("clinicId", Ty::Ref("clinics"), "Where.")
            .required()
            .restrict(),
        Field::new("appointmentTypeId", Ty::Ref("appointment-types"), "What is booked.")
            .required()
            .restrict(),
        Field::new("startAt", Ty::Timestamp, "When it starts.").required(),
        Field::new(
            "endAt",
            Ty::Timestamp,
            "When it ends (after startAt, at most 24 hours later); default: startAt plus the type's duration.",
        ),
        Field::new(
            "status",
            Ty::Enum(STATUSES),
            "scheduled → confirmed → arrived → completed; scheduled|confirmed → cancelled|noShow. New appointments are scheduled (default) or confirmed.",
        ),
        Field::new("location", Ty::Str, "Room or address within the clinic."),
        Field::new("notes", Ty::Text, "Free-text notes."),
        Field::new("customData", Ty::Json, "Free-form data of your own."),
        Field::new(
            "cancellationReason",
            Ty::Text,
            "Why it was cancelled (given with `\"status\": \"cancelled\"`).",
        ),
        Field::new(
            "metadata",
            Ty::Metadata,
            "Up to 50 string keys and values for your own use.",
        ),
    ],
    publishable: Publishable {
        read: false,
        create: true,
    },
    search_fields: &["notes", "location"],
    description: "A booking of a patient with a practitioner at a clinic, with a lifecycle.",
    lookups: &[
        Lookup::ranged("practitionerId", "startAt"),
        Lookup::ranged("patientId", "startAt"),
        Lookup::ranged("clinicId", "startAt"),
        Lookup::ranged("status", "startAt").counted(),
    ],
    ordered_by: Some("startAt"),
    rules: &AppointmentRules,
    schema_rules: Some(schema_rules),
    events: &[
        "confirmed",
        "arrived",
        "completed",
        "cancelled",
        "noShow",
        "rescheduled",
    ],
    patient_field: Some("patientId"),
    ..Resource::CRUD
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_cover_midnight() {
        let s = parse_timestamp("2026-03-28T23:30:00.000Z").unwrap();
        assert_eq!(days(s, s + 3_600_000), vec!["2026-03-28", "2026-03-29"]);
        assert_eq!(days(s, s + 1_800_000), vec!["2026-03-28"]);
    }

    #[test]
    fn working_day_starts_at_nine_local_across_dst() {
        let tz = jiff::tz::TimeZone::get("Europe/London").unwrap();
        let from = parse_timestamp("2026-03-27T00:00:00.000Z").unwrap();
        let to = parse_timestamp("2026-04-01T00:00:00.000Z").unwrap();
        // Friday before and Monday after the change (29 March 2026).
        let fri = occurrences(&tz, 4, 9 * 60, 17 * 60, from, to);
        assert!(fri
            .iter()
            .any(|(s, _)| format_ms(*s) == "2026-03-27T09:00:00.000Z"));
        let mon = occurrences(&tz, 0, 9 * 60, 17 * 60, from, to);
        assert!(mon
            .iter()
            .any(|(s, _)| format_ms(*s) == "2026-03-30T08:00:00.000Z"));
    }

    #[test]
    fn lifecycle() {
        assert!(next_statuses("scheduled").contains(&"confirmed"));
        assert!(next_statuses("confirmed").contains(&"arrived"));
        assert!(!next_statuses("confirmed").contains(&"scheduled"));
        assert_eq!(next_statuses("arrived"), &["completed"]);
        assert!(next_statuses("completed").is_empty());
        assert!(next_statuses("noShow").is_empty());
    }
}
