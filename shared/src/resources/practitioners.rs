//! Practitioners: who sees patients, where, and when they work.

use super::{Change, Ctx, Resource, Rules, Verb};
use crate::domain::parse_local_time;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::schema::{Field, Ty};
use crate::store::Lookup;
use async_trait::async_trait;
use serde_json::Value;

static CLINIC_ID: Ty = Ty::Ref("clinics");

pub const DAYS: &[&str] = &[
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

static WORKING_INTERVAL: Ty = Ty::Object(&[
    Field::new("clinicId", Ty::Ref("clinics"), "Where.").required(),
    Field::new("day", Ty::Enum(DAYS), "Day of the week.").required(),
    Field::new(
        "start",
        Ty::LocalTime,
        "From, HH:MM in the clinic's time zone.",
    )
    .required(),
    Field::new(
        "end",
        Ty::LocalTime,
        "Until, HH:MM in the clinic's time zone (after start; 24:00 ends the day).",
    )
    .required(),
]);

static TIME_OFF: Ty = Ty::Object(&[
    Field::new("startAt", Ty::Timestamp, "From.").required(),
    Field::new("endAt", Ty::Timestamp, "Until (after startAt).").required(),
    Field::new("reason", Ty::Str, "Holiday, training…"),
]);

struct PractitionerRules;

#[async_trait]
impl Rules for PractitionerRules {
    async fn check(&self, _ctx: &Ctx<'_>, change: &mut Change<'_>) -> ApiResult<()> {
        if change.verb == Verb::Delete {
            return Ok(());
        }
        let mut errors = Vec::new();
        let clinics: Vec<&str> = change
            .get("clinicIds")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let hours = change
            .get("workingHours")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        // (day, start, end, index) of every valid interval.
        let mut seen: Vec<(&str, u32, u32, usize)> = Vec::new();
        for (i, h) in hours.iter().enumerate() {
            let clinic = h["clinicId"].as_str().unwrap_or_default();
            if !clinics.contains(&clinic) {
                errors.push(FieldError::new(
                    format!("workingHours[{i}].clinicId"),
                    format!("`{clinic}` is not one of this practitioner's clinics (`clinicIds`)"),
                ));
            }
            let (Some(start), Some(end)) = (
                h["start"].as_str().and_then(parse_local_time),
                h["end"].as_str().and_then(parse_local_time),
            ) else {
                continue;
            };
            if start >= end {
                errors.push(FieldError::new(
                    format!("workingHours[{i}].end"),
                    "must be after `start`",
                ));
                continue;
            }
            let day = h["day"].as_str().unwrap_or_default();
            if let Some((_, s, e, j)) = seen
                .iter()
                .find(|(d, s, e, _)| *d == day && start < *e && *s < end)
            {
                errors.push(FieldError::new(
                    format!("workingHours[{i}]"),
                    format!(
                        "overlaps workingHours[{j}] ({day} {:02}:{:02}–{:02}:{:02})",
                        s / 60,
                        s % 60,
                        e / 60,
                        e % 60
                    ),
                ));
            }
            seen.push((day, start, end, i));
        }
        if let Some(Value::Array(off)) = change.get("timeOff") {
            for (i, t) in off.iter().enumerate() {
                if t["endAt"].as_str() <= t["startAt"].as_str() {
                    errors.push(FieldError::new(
                        format!("timeOff[{i}].endAt"),
                        "must be after `startAt`",
                    ));
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::fields(errors))
        }
    }
}

pub static RESOURCE: Resource = Resource {
    path: "practitioners",
    object: "practitioner",
    label: "practitioner",
    prefix: "prc",
    fields: &[
        Field::new("fullName", Ty::Str, "The practitioner's full name.").required(),
        Field::new("email", Ty::Email, "Email address."),
        Field::new(
            "clinicIds",
            Ty::Array(&CLINIC_ID, 100),
            "The clinics where they practise.",
        ),
        Field::new("role", Ty::Str, "Role, e.g. `audiologist`."),
        Field::new(
            "workingHours",
            Ty::Array(&WORKING_INTERVAL, 200),
            "When they work: per clinic and weekday, in the clinic's local time (daylight saving followed). Intervals of one day may not overlap.",
        ),
        Field::new(
            "timeOff",
            Ty::Array(&TIME_OFF, 500),
            "Absences: never offered for booking.",
        ),
        Field::new(
            "metadata",
            Ty::Metadata,
            "Up to 50 string keys and values for your own use.",
        ),
    ],
    search_fields: &["fullName", "email", "role"],
    description: "A member of staff who sees patients.",
    lookups: &[Lookup::eq("email")],
    rules: &PractitionerRules,
    ..Resource::CRUD
};
