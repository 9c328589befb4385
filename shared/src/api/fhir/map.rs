//! Our objects → FHIR R4 resources, one function per type. Every function
//! takes the object as `/v1` shows it; docs/fhir.md has the table.

use super::{fhir_id, reference};
use serde_json::{json, Map, Value};

/// Our ids, as an identifier system.
pub const SYS_ID: &str = "urn:practice-hub:id";
pub const SYS_MEDICAL_NUMBER: &str = "urn:practice-hub:medical-number";
pub const SYS_BARCODE: &str = "urn:practice-hub:barcode";
pub const SYS_INVOICE_NUMBER: &str = "urn:practice-hub:invoice-number";
pub const SYS_APPOINTMENT_TYPE: &str = "urn:practice-hub:appointment-type";
pub const SYS_AUDIOGRAM: &str = "urn:practice-hub:audiogram";
pub const SYS_HEARING_TEST_TYPE: &str = "urn:practice-hub:hearing-test-type";
pub const LOINC: &str = "http://loinc.org";
pub const UCUM: &str = "http://unitsofmeasure.org";
/// LOINC "Pure tone threshold audiometry panel".
pub const LOINC_PANEL: &str = "89015-2";

/// LOINC codes of air-conduction hearing thresholds per ear and frequency,
/// as the LOINC table has them (the frequencies of the pure-tone average).
pub const LOINC_THRESHOLDS: &[(&str, i64, &str)] = &[
    ("left", 500, "89024-4"),
    ("left", 1000, "89016-0"),
    ("left", 2000, "89017-8"),
    ("left", 4000, "89018-6"),
    ("right", 500, "89028-5"),
    ("right", 1000, "89020-2"),
    ("right", 2000, "89019-4"),
    ("right", 4000, "89022-8"),
];

fn s<'a>(doc: &'a Value, field: &str) -> Option<&'a str> {
    doc.get(field)
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
}

fn put(out: &mut Map<String, Value>, key: &str, v: Option<Value>) {
    if let Some(v) = v {
        out.insert(key.into(), v);
    }
}

fn meta(doc: &Value) -> Value {
    json!({
        "versionId": doc["version"].as_u64().unwrap_or(1).to_string(),
        "lastUpdated": doc["updatedAt"],
    })
}

/// The common head of every resource: type, id, meta, our id as identifier.
fn head(kind: &str, doc: &Value) -> Map<String, Value> {
    let id = s(doc, "id").unwrap_or_default();
    let mut out = Map::new();
    out.insert("resourceType".into(), json!(kind));
    out.insert("id".into(), json!(fhir_id(id)));
    out.insert("meta".into(), meta(doc));
    out.insert(
        "identifier".into(),
        json!([{"use": "usual", "system": SYS_ID, "value": id}]),
    );
    out
}

/// A full name as a HumanName: the text as given, the last word as the
/// family name and the words before it as given names.
pub fn human_name(full: &str, prefix: Option<&str>) -> Value {
    let words: Vec<&str> = full.split_whitespace().collect();
    let mut n = json!({"use": "official", "text": full});
    if let Some((family, given)) = words.split_last() {
        n["family"] = json!(family);
        if !given.is_empty() {
            n["given"] = json!(given);
        }
    }
    if let Some(p) = prefix {
        n["prefix"] = json!([p]);
    }
    n
}

/// Our address → a FHIR Address (`region` → `state`, `postcode` → `postalCode`).
pub fn address(a: &Value) -> Option<Value> {
    let a = a.as_object()?;
    let get = |f: &str| a.get(f).and_then(Value::as_str).filter(|v| !v.is_empty());
    let mut out = Map::new();
    let lines: Vec<&str> = ["line1", "line2"].iter().filter_map(|f| get(f)).collect();
    if !lines.is_empty() {
        out.insert("line".into(), json!(lines));
    }
    for (ours, theirs) in [
        ("city", "city"),
        ("region", "state"),
        ("postcode", "postalCode"),
        ("country", "country"),
    ] {
        if let Some(v) = get(ours) {
            out.insert(theirs.into(), json!(v));
        }
    }
    (!out.is_empty()).then(|| Value::Object(out))
}

/// Our free-text gender → FHIR's administrative gender.
pub fn gender(g: &str) -> &'static str {
    match g.trim().to_ascii_lowercase().as_str() {
        "male" | "m" | "man" => "male",
        "female" | "f" | "woman" => "female",
        "" | "unknown" => "unknown",
        _ => "other",
    }
}

fn telecom(system: &str, value: Option<&str>, rank: Option<u32>) -> Option<Value> {
    let mut t = json!({"system": system, "value": value?});
    if let Some(r) = rank {
        t["rank"] = json!(r);
    }
    Some(t)
}

pub fn patient(doc: &Value) -> Value {
    let mut out = head("Patient", doc);
    if let Some(Value::Array(ids)) = out.get_mut("identifier") {
        if let Some(v) = s(doc, "medicalNumber") {
            ids.push(json!({"use": "official", "system": SYS_MEDICAL_NUMBER, "value": v}));
        }
        if let Some(v) = s(doc, "barcodeId") {
            ids.push(json!({"use": "secondary", "system": SYS_BARCODE, "value": v}));
        }
    }
    out.insert("active".into(), json!(true));
    put(
        &mut out,
        "name",
        s(doc, "fullName").map(|n| json!([human_name(n, s(doc, "title"))])),
    );
    let tel: Vec<Value> = [
        telecom("phone", s(doc, "primaryPhoneNumber"), Some(1)),
        telecom("phone", s(doc, "secondaryPhoneNumber"), Some(2)),
        telecom("email", s(doc, "emailAddress"), None),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !tel.is_empty() {
        out.insert("telecom".into(), json!(tel));
    }
    put(
        &mut out,
        "gender",
        s(doc, "gender").map(|g| json!(gender(g))),
    );
    put(&mut out, "birthDate", s(doc, "dob").map(|d| json!(d)));
    put(
        &mut out,
        "address",
        address(&doc["address"]).map(|a| json!([a])),
    );
    let contacts: Vec<Value> = doc["emergencyContacts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let tel: Vec<Value> = [
                telecom("phone", s(c, "phone"), None),
                telecom("email", s(c, "email"), None),
            ]
            .into_iter()
            .flatten()
            .collect();
            let mut contact = json!({
                "relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0131", "code": "C", "display": "Emergency Contact"}]}],
                "name": {"text": c["name"]},
            });
            if !tel.is_empty() {
                contact["telecom"] = json!(tel);
            }
            contact
        })
        .collect();
    if !contacts.is_empty() {
        out.insert("contact".into(), json!(contacts));
    }
    Value::Object(out)
}

pub fn practitioner(doc: &Value) -> Value {
    let mut out = head("Practitioner", doc);
    out.insert("active".into(), json!(true));
    put(
        &mut out,
        "name",
        s(doc, "fullName").map(|n| json!([human_name(n, None)])),
    );
    put(
        &mut out,
        "telecom",
        telecom("email", s(doc, "email"), None).map(|t| json!([t])),
    );
    put(
        &mut out,
        "qualification",
        s(doc, "role").map(|r| json!([{"code": {"text": r}}])),
    );
    Value::Object(out)
}

pub fn location(doc: &Value) -> Value {
    let mut out = head("Location", doc);
    out.insert("status".into(), json!("active"));
    out.insert("mode".into(), json!("instance"));
    put(&mut out, "name", s(doc, "name").map(|n| json!(n)));
    let tel: Vec<Value> = [
        telecom("phone", s(doc, "phone"), None),
        telecom("email", s(doc, "email"), None),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !tel.is_empty() {
        out.insert("telecom".into(), json!(tel));
    }
    put(&mut out, "address", address(&doc["address"]));
    put(
        &mut out,
        "extension",
        s(doc, "timeZone").map(|z| {
            json!([{"url": "http://hl7.org/fhir/StructureDefinition/timezone", "valueCode": z}])
        }),
    );
    Value::Object(out)
}

/// Our appointment status → FHIR's.
pub fn appointment_status(ours: &str) -> &'static str {
    match ours {
        "scheduled" | "confirmed" => "booked",
        "arrived" => "arrived",
        "completed" => "fulfilled",
        "cancelled" => "cancelled",
        "noShow" => "noshow",
        _ => "booked",
    }
}

fn service_type(aty_id: &str, name: Option<&str>) -> Value {
    let mut coding = json!({"system": SYS_APPOINTMENT_TYPE, "code": aty_id});
    if let Some(n) = name {
        coding["display"] = json!(n);
    }
    json!([{"coding": [coding]}])
}

pub fn appointment(doc: &Value) -> Value {
    let mut out = head("Appointment", doc);
    out.insert(
        "status".into(),
        json!(appointment_status(s(doc, "status").unwrap_or("scheduled"))),
    );
    put(
        &mut out,
        "serviceType",
        s(doc, "appointmentTypeId").map(|a| service_type(a, None)),
    );
    put(&mut out, "start", s(doc, "startAt").map(|v| json!(v)));
    put(&mut out, "end", s(doc, "endAt").map(|v| json!(v)));
    put(&mut out, "created", s(doc, "createdAt").map(|v| json!(v)));
    put(&mut out, "comment", s(doc, "notes").map(|v| json!(v)));
    put(
        &mut out,
        "description",
        s(doc, "location").map(|v| json!(v)),
    );
    put(
        &mut out,
        "cancelationReason",
        s(doc, "cancellationReason").map(|v| json!({"text": v})),
    );
    let participants: Vec<Value> = [
        ("patientId", "Patient"),
        ("practitionerId", "Practitioner"),
        ("clinicId", "Location"),
    ]
    .iter()
    .filter_map(|(f, t)| s(doc, f).map(|id| (id, *t)))
    .map(|(id, t)| json!({"actor": reference(t, id), "required": "required", "status": "accepted"}))
    .collect();
    out.insert("participant".into(), json!(participants));
    Value::Object(out)
}

/// A free slot: its id, the appointment type (its id and name), the
/// practitioner, the clinic and the times. The schedule is contained.
pub struct SlotIn<'a> {
    pub id: &'a str,
    pub aty_id: &'a str,
    pub aty_name: Option<&'a str>,
    pub practitioner: &'a str,
    pub clinic: &'a str,
    pub start: &'a str,
    pub end: &'a str,
}

pub fn slot(x: &SlotIn<'_>) -> Value {
    json!({
        "resourceType": "Slot",
        "id": x.id,
        "contained": [{
            "resourceType": "Schedule",
            "id": "schedule",
            "active": true,
            "serviceType": service_type(x.aty_id, x.aty_name),
            "actor": [reference("Practitioner", x.practitioner), reference("Location", x.clinic)],
        }],
        "serviceType": service_type(x.aty_id, x.aty_name),
        "schedule": {"reference": "#schedule"},
        "status": "free",
        "start": x.start,
        "end": x.end,
    })
}

fn threshold_code(ear: &str, conduction: &str, hz: i64) -> Value {
    let ear_text = if ear == "left" { "left" } else { "right" };
    let display = format!("Hearing threshold {ear_text} ear {conduction} conduction {hz} Hz");
    let mut coding = Vec::new();
    if conduction == "air" {
        if let Some((_, _, code)) = LOINC_THRESHOLDS
            .iter()
            .find(|(e, f, _)| *e == ear && *f == hz)
        {
            coding.push(json!({"system": LOINC, "code": code,
                "display": format!("Hearing threshold Ear-{ear_text} {hz} Hz [dB]")}));
        }
    }
    coding.push(json!({"system": SYS_AUDIOGRAM, "code": format!("{ear}-{conduction}-{hz}"), "display": display}));
    json!({"coding": coding, "text": display})
}

fn decibels(v: &Value) -> Value {
    json!({"value": v, "unit": "dB HL", "system": UCUM, "code": "dB"})
}

pub fn observation(doc: &Value) -> Value {
    let mut out = head("Observation", doc);
    out.insert("status".into(), json!("final"));
    let mut category = vec![json!({"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
        "code": "exam", "display": "Exam"}]})];
    if let Some(t) = s(doc, "type") {
        category.push(json!({"coding": [{"system": SYS_HEARING_TEST_TYPE, "code": t}]}));
    }
    out.insert("category".into(), json!(category));
    out.insert(
        "code".into(),
        json!({"coding": [{"system": LOINC, "code": LOINC_PANEL, "display": "Pure tone threshold audiometry panel"}],
               "text": "Audiogram"}),
    );
    put(
        &mut out,
        "subject",
        s(doc, "patientId").map(|p| reference("Patient", p)),
    );
    put(
        &mut out,
        "effectiveDateTime",
        s(doc, "testedAt").map(|v| json!(v)),
    );
    put(&mut out, "issued", s(doc, "createdAt").map(|v| json!(v)));
    put(
        &mut out,
        "performer",
        s(doc, "practitionerId").map(|p| json!([reference("Practitioner", p)])),
    );
    put(
        &mut out,
        "note",
        s(doc, "notes").map(|n| json!([{"text": n}])),
    );
    let mut components = Vec::new();
    for ear in ["left", "right"] {
        for p in doc[ear].as_array().into_iter().flatten() {
            let hz = p["frequencyHz"].as_i64().unwrap_or_default();
            let conduction = p["conduction"].as_str().unwrap_or("air");
            components.push(json!({
                "code": threshold_code(ear, conduction, hz),
                "valueQuantity": decibels(&p["thresholdDb"]),
            }));
        }
    }
    for ear in ["left", "right"] {
        let v = &doc["pureToneAverage"][ear];
        if v.is_number() {
            let text = format!("Pure-tone average {ear} ear (500, 1000, 2000, 4000 Hz, air)");
            components.push(json!({
                "code": {"coding": [{"system": SYS_AUDIOGRAM, "code": format!("{ear}-pta"), "display": text}], "text": text},
                "valueQuantity": decibels(v),
            }));
        }
    }
    if !components.is_empty() {
        out.insert("component".into(), json!(components));
    }
    Value::Object(out)
}

/// Our invoice status → FHIR's.
pub fn invoice_status(ours: &str) -> &'static str {
    match ours {
        "draft" => "draft",
        "open" | "partiallyPaid" => "issued",
        "paid" => "balanced",
        "void" => "cancelled",
        _ => "draft",
    }
}

/// FHIR's invoice status → ours (for search).
pub fn invoice_statuses(fhir: &str) -> Option<&'static [&'static str]> {
    Some(match fhir {
        "draft" => &["draft"],
        "issued" => &["open", "partiallyPaid"],
        "balanced" => &["paid"],
        "cancelled" => &["void"],
        "entered-in-error" => &[],
        _ => return None,
    })
}

/// An amount in the currency's smallest unit → FHIR Money in its units.
pub fn money(minor: &Value, currency: &str) -> Value {
    let exp = crate::domain::currencies::exponent(currency).unwrap_or(2);
    let n = minor.as_i64().unwrap_or(0);
    let value = if exp == 0 {
        json!(n)
    } else {
        // Exact in decimal text: 1999 GBP → 19.99.
        let div = 10i64.pow(exp);
        let text = format!(
            "{}{}.{:0width$}",
            if n < 0 { "-" } else { "" },
            (n / div).abs(),
            (n % div).abs(),
            width = exp as usize
        );
        text.parse::<serde_json::Number>()
            .map(Value::Number)
            .unwrap_or(json!(n as f64 / div as f64))
    };
    json!({"value": value, "currency": currency})
}

pub fn invoice(doc: &Value) -> Value {
    let mut out = head("Invoice", doc);
    let currency = s(doc, "currency").unwrap_or("GBP");
    if let (Some(n), Some(Value::Array(ids))) = (s(doc, "number"), out.get_mut("identifier")) {
        ids.push(json!({"use": "official", "system": SYS_INVOICE_NUMBER, "value": n}));
    }
    out.insert(
        "status".into(),
        json!(invoice_status(s(doc, "status").unwrap_or("draft"))),
    );
    put(
        &mut out,
        "subject",
        s(doc, "patientId").map(|p| reference("Patient", p)),
    );
    put(
        &mut out,
        "recipient",
        s(doc, "patientId").map(|p| reference("Patient", p)),
    );
    put(&mut out, "date", s(doc, "issuedAt").map(|v| json!(v)));
    let lines: Vec<Value> = doc["lineItems"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, l)| {
            json!({
                "sequence": i + 1,
                "chargeItemCodeableConcept": {"text": l["description"]},
                "priceComponent": [
                    {"type": "base", "factor": l["quantity"], "amount": money(&l["amount"], currency)},
                    {"type": "tax", "amount": money(&l["tax"], currency)},
                ],
            })
        })
        .collect();
    if !lines.is_empty() {
        out.insert("lineItem".into(), json!(lines));
    }
    if doc.get("subtotal").is_some_and(Value::is_number) {
        out.insert("totalNet".into(), money(&doc["subtotal"], currency));
    }
    if doc.get("total").is_some_and(Value::is_number) {
        out.insert("totalGross".into(), money(&doc["total"], currency));
    }
    put(
        &mut out,
        "note",
        s(doc, "notes").map(|n| json!([{"text": n}])),
    );
    Value::Object(out)
}
