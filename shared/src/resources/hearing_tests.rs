//! Hearing tests: an audiogram per ear. Its rules: points on the standard
//! audiometric frequencies, thresholds from −10 to 120 dB HL in steps of 5,
//! one point per frequency and conduction in an ear; each ear's pure-tone
//! average (air conduction at 500, 1000, 2000 and 4000 Hz) computed.

use super::{Change, Ctx, Resource, Rules, Verb};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::schema::{Field, Ty};
use crate::store::Lookup;
use async_trait::async_trait;
use serde_json::{json, Value};

/// The standard audiometric frequencies (Hz).
pub const FREQUENCIES: &[i64] = &[125, 250, 500, 750, 1000, 1500, 2000, 3000, 4000, 6000, 8000];
/// The frequencies of the pure-tone average.
const PTA: [i64; 4] = [500, 1000, 2000, 4000];

static POINT: Ty = Ty::Object(&[
    Field::new(
        "frequencyHz",
        Ty::Int {
            min: 125,
            max: 8000,
        },
        "125, 250, 500, 750, 1000, 1500, 2000, 3000, 4000, 6000 or 8000.",
    )
    .required(),
    Field::new(
        "thresholdDb",
        Ty::Int { min: -10, max: 120 },
        "Hearing level in dB HL, −10 to 120 in steps of 5.",
    )
    .required(),
    Field::new("conduction", Ty::Enum(&["air", "bone"]), "air or bone.").required(),
]);

static PTA_FIELDS: &[Field] = &[
    Field::new(
        "left",
        Ty::Number {
            min: -10.0,
            max: 120.0,
        },
        "Left ear (when all four points exist).",
    )
    .read_only(),
    Field::new(
        "right",
        Ty::Number {
            min: -10.0,
            max: 120.0,
        },
        "Right ear (when all four points exist).",
    )
    .read_only(),
];

struct HearingTestRules;

#[async_trait]
impl Rules for HearingTestRules {
    async fn check(&self, _ctx: &Ctx<'_>, change: &mut Change<'_>) -> ApiResult<()> {
        if change.verb == Verb::Delete {
            return Ok(());
        }
        let mut errors = Vec::new();
        let mut pta = serde_json::Map::new();
        for ear in ["left", "right"] {
            let points = change
                .get(ear)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let mut seen: Vec<(i64, String, usize)> = Vec::new();
            for (i, p) in points.iter().enumerate() {
                let f = p["frequencyHz"].as_i64().unwrap_or(0);
                let t = p["thresholdDb"].as_i64().unwrap_or(0);
                let c = p["conduction"].as_str().unwrap_or_default().to_string();
                if !FREQUENCIES.contains(&f) {
                    errors.push(FieldError::new(
                        format!("{ear}[{i}].frequencyHz"),
                        format!("{f} Hz is not a standard audiometric frequency (125, 250, 500, 750, 1000, 1500, 2000, 3000, 4000, 6000, 8000)"),
                    ));
                }
                if t.rem_euclid(5) != 0 {
                    errors.push(FieldError::new(
                        format!("{ear}[{i}].thresholdDb"),
                        format!("{t} dB HL is not in steps of 5"),
                    ));
                }
                if let Some((_, _, j)) = seen.iter().find(|(sf, sc, _)| *sf == f && *sc == c) {
                    errors.push(FieldError::new(
                        format!("{ear}[{i}]"),
                        format!("repeats {ear}[{j}]: one point per frequency and conduction"),
                    ));
                }
                seen.push((f, c, i));
            }
            let air: Vec<i64> = PTA
                .iter()
                .filter_map(|f| {
                    points
                        .iter()
                        .find(|p| p["frequencyHz"] == *f && p["conduction"] == "air")
                        .and_then(|p| p["thresholdDb"].as_i64())
                })
                .collect();
            if air.len() == PTA.len() {
                let avg = air.iter().sum::<i64>() as f64 / PTA.len() as f64;
                pta.insert(ear.into(), json!(avg));
            }
        }
        if !errors.is_empty() {
            return Err(ApiError::fields(errors));
        }
        change
            .new
            .insert("pureToneAverage".into(), serde_json::Value::Object(pta));
        change
            .new
            .entry("testedAt")
            .or_insert_with(|| json!(crate::time::format_ms(change.now_ms)));
        Ok(())
    }
}

/// Points on the standard frequencies, thresholds in steps of 5 dB.
fn schema_rules(s: &mut Value, _create: bool) {
    for ear in ["left", "right"] {
        let point = &mut crate::schema::property(s, ear)["items"]["properties"];
        point["frequencyHz"]["enum"] = json!(FREQUENCIES);
        point["thresholdDb"]["multipleOf"] = json!(5);
    }
}

pub static RESOURCE: Resource = Resource {
    path: "hearing-tests",
    object: "hearingTest",
    label: "hearing test",
    prefix: "ht",
    fields: &[
        Field::new("patientId", Ty::Ref("patients"), "Whose hearing.")
            .required()
            .restrict(),
        Field::new("clinicId", Ty::Ref("clinics"), "Where.").restrict(),
        Field::new("practitionerId", Ty::Ref("practitioners"), "Who tested.").restrict(),
        Field::new("testedAt", Ty::Timestamp, "When (default: now)."),
        Field::new(
            "type",
            Ty::Enum(&["screening", "diagnostic", "followUp"]),
            "What kind of test.",
        )
        .required(),
        Field::new("notes", Ty::Text, "Clinical notes."),
        Field::new(
            "left",
            Ty::Array(&POINT, 22),
            "Left ear: points of the audiogram.",
        ),
        Field::new(
            "right",
            Ty::Array(&POINT, 22),
            "Right ear: points of the audiogram.",
        ),
        Field::new(
            "pureToneAverage",
            Ty::Object(PTA_FIELDS),
            "Each ear's average of its air-conduction thresholds at 500, 1000, 2000 and 4000 Hz, when all four exist.",
        )
        .read_only(),
        Field::new(
            "metadata",
            Ty::Metadata,
            "Up to 50 string keys and values for your own use.",
        ),
    ],
    search_fields: &["notes"],
    description: "An audiogram: hearing thresholds per ear, frequency and conduction.",
    lookups: &[Lookup::ranged("patientId", "testedAt")],
    ordered_by: Some("testedAt"),
    rules: &HearingTestRules,
    schema_rules: Some(schema_rules),
    patient_field: Some("patientId"),
    ..Resource::CRUD
};
