//! The FHIR R4 facade over HTTP: each mapping field by field against
//! `/v1`, the appointment status mapping, paging, both id forms, errors as
//! OperationOutcome, keys, modes and tenancy. (tests/fhir/validate.py
//! validates what it serves against the FHIR R4 models.)

use hub_tests::*;
use serde_json::Value;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

/// Midnight UTC `days` from today.
fn day(days: i64) -> i64 {
    (hub::time::now_ms() / DAY + days) * DAY
}

fn fhir_id(id: &Value) -> String {
    id.as_str().unwrap().replace('_', "-")
}

/// GET a FHIR path; asserts the status and the media type.
async fn fhir(s: &TestServer, path: &str, key: Option<&str>, status: u16) -> Value {
    let r = s
        .http
        .send("GET", &format!("/fhir/R4{path}"), key, None, &[])
        .await;
    assert_eq!(r.status, status, "GET /fhir/R4{path}: {}", r.body);
    assert_eq!(
        r.header("content-type"),
        Some("application/fhir+json"),
        "{path}"
    );
    if status >= 400 {
        r.expect(status);
        assert_eq!(r.body["resourceType"], "OperationOutcome", "{}", r.body);
    }
    r.body
}

/// A FHIR read by both id forms: the same resource.
async fn read_both(s: &TestServer, kind: &str, id: &Value, key: &str) -> Value {
    let a = fhir(s, &format!("/{kind}/{}", fhir_id(id)), Some(key), 200).await;
    let b = fhir(
        s,
        &format!("/{kind}/{}", id.as_str().unwrap()),
        Some(key),
        200,
    )
    .await;
    assert_eq!(a, b);
    assert_eq!(a["resourceType"], kind);
    assert_eq!(a["id"], fhir_id(id));
    assert_eq!(a["identifier"][0]["value"], *id);
    assert_eq!(a["identifier"][0]["system"], "urn:practice-hub:id");
    a
}

fn reference(kind: &str, id: &Value) -> Value {
    json!({"reference": format!("{kind}/{}", fhir_id(id))})
}

fn money(minor: &Value) -> Value {
    json!({"value": minor.as_f64().unwrap() / 100.0, "currency": "GBP"})
}

struct Data {
    key: String,
    live: String,
    status: String,
    referral: String,
    clinic: Value,
    practitioner: Value,
    aty: Value,
    patient: Value,
}

async fn data(s: &TestServer) -> Data {
    let org = s.org("FHIR Clinic", true).await;
    let key = org.test.secret.clone();
    let h = &s.http;
    let (_, status, referral) = reference_data(h, &key).await;
    let clinic = h
        .post(
            "/v1/clinics",
            &key,
            &json!({"name": "Harley Street", "timeZone": "Europe/London", "phone": "+442070000000",
                    "email": "harley@example.com",
                    "address": {"line1": "1 Harley St", "line2": "Floor 2", "city": "London", "region": "Greater London", "postcode": "W1G 9QD", "country": "GBR"}}),
        )
        .await;
    clinic.expect(201);
    let cid = clinic.body["id"].clone();
    let days = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    let hours: Vec<Value> = days
        .iter()
        .map(|d| json!({"clinicId": cid, "day": d, "start": "09:00", "end": "17:00"}))
        .collect();
    let practitioner = h
        .post(
            "/v1/practitioners",
            &key,
            &json!({"fullName": "Dr Ada Byron", "email": "ada@example.com", "role": "audiologist",
                    "clinicIds": [cid], "workingHours": hours}),
        )
        .await;
    practitioner.expect(201);
    let aty = h
        .post(
            "/v1/appointment-types",
            &key,
            &json!({"name": "Hearing test", "durationMinutes": 30, "price": 4500, "currency": "GBP"}),
        )
        .await;
    aty.expect(201);
    let patient = h
        .post(
            "/v1/patients",
            &key,
            &json!({"title": "Mrs", "fullName": "Mary Ann Evans", "primaryPhoneNumber": "+447700900123",
                    "secondaryPhoneNumber": "+447700900456", "emailAddress": "mary@example.com",
                    "dob": "1950-11-22", "gender": "Female", "tracking": {},
                    "primaryClinicId": cid, "statusId": &status, "referralId": &referral,
                    "medicalNumber": "943 476 5919", "barcodeId": "B-1234",
                    "address": {"line1": "2 Cheyne Walk", "city": "London", "region": "Greater London", "postcode": "SW3 5QX", "country": "GBR"},
                    "emergencyContacts": [{"name": "Isaac Evans", "phone": "+447700900789", "email": "isaac@example.com"}]}),
        )
        .await;
    patient.expect(201);
    Data {
        key,
        live: org.live.secret.clone(),
        status,
        referral,
        clinic: clinic.body,
        practitioner: practitioner.body,
        aty: aty.body,
        patient: patient.body,
    }
}

#[both_stores]
async fn every_mapping_matches_v1_field_by_field() {
    let s = TestServer::start().await;
    let d = data(&s).await;
    let key = d.key.as_str();
    let h = &s.http;

    // Patient.
    let p = h
        .get(
            &format!("/v1/patients/{}", d.patient["id"].as_str().unwrap()),
            key,
        )
        .await
        .body;
    let f = read_both(&s, "Patient", &p["id"], key).await;
    assert_eq!(f["meta"]["versionId"], p["version"].to_string());
    assert_eq!(f["meta"]["lastUpdated"], p["updatedAt"]);
    assert_eq!(
        f["identifier"][1],
        json!({"use": "official", "system": "urn:practice-hub:medical-number", "value": p["medicalNumber"]})
    );
    assert_eq!(
        f["identifier"][2],
        json!({"use": "secondary", "system": "urn:practice-hub:barcode", "value": p["barcodeId"]})
    );
    assert_eq!(
        f["name"],
        json!([{"use": "official", "text": p["fullName"], "family": "Evans", "given": ["Mary", "Ann"], "prefix": [p["title"]]}])
    );
    assert_eq!(
        f["telecom"],
        json!([
            {"system": "phone", "value": p["primaryPhoneNumber"], "rank": 1},
            {"system": "phone", "value": p["secondaryPhoneNumber"], "rank": 2},
            {"system": "email", "value": p["emailAddress"]},
        ])
    );
    assert_eq!(f["gender"], "female");
    assert_eq!(f["birthDate"], p["dob"]);
    let a = &p["address"];
    assert_eq!(
        f["address"],
        json!([{"line": [a["line1"]], "city": a["city"], "state": a["region"], "postalCode": a["postcode"], "country": a["country"]}])
    );
    let c = &p["emergencyContacts"][0];
    assert_eq!(f["contact"][0]["name"]["text"], c["name"]);
    assert_eq!(
        f["contact"][0]["telecom"],
        json!([{"system": "phone", "value": c["phone"]}, {"system": "email", "value": c["email"]}])
    );
    assert_eq!(f["contact"][0]["relationship"][0]["coding"][0]["code"], "C");

    // Practitioner.
    let prc = &d.practitioner;
    let f = read_both(&s, "Practitioner", &prc["id"], key).await;
    assert_eq!(f["name"][0]["text"], prc["fullName"]);
    assert_eq!(f["name"][0]["family"], "Byron");
    assert_eq!(f["name"][0]["given"], json!(["Dr", "Ada"]));
    assert_eq!(
        f["telecom"],
        json!([{"system": "email", "value": prc["email"]}])
    );
    assert_eq!(f["qualification"][0]["code"]["text"], prc["role"]);

    // Location.
    let cli = &d.clinic;
    let f = read_both(&s, "Location", &cli["id"], key).await;
    assert_eq!(f["name"], cli["name"]);
    assert_eq!(f["status"], "active");
    let a = &cli["address"];
    assert_eq!(
        f["address"],
        json!({"line": [a["line1"], a["line2"]], "city": a["city"], "state": a["region"], "postalCode": a["postcode"], "country": a["country"]})
    );
    assert_eq!(
        f["telecom"],
        json!([{"system": "phone", "value": cli["phone"]}, {"system": "email", "value": cli["email"]}])
    );
    assert_eq!(f["extension"][0]["valueCode"], cli["timeZone"]);

    // Appointment.
    let start = day(2) + 10 * HOUR;
    let apt = h
        .post(
            "/v1/appointments",
            key,
            &json!({"patientId": p["id"], "practitionerId": prc["id"], "clinicId": cli["id"],
                    "appointmentTypeId": d.aty["id"], "startAt": hub::time::format_ms(start),
                    "status": "confirmed", "notes": "Bring hearing aids", "location": "Room 3"}),
        )
        .await;
    apt.expect(201);
    let apt = apt.body;
    let f = read_both(&s, "Appointment", &apt["id"], key).await;
    assert_eq!(f["status"], "booked");
    assert_eq!(f["start"], apt["startAt"]);
    assert_eq!(f["end"], apt["endAt"]);
    assert_eq!(f["created"], apt["createdAt"]);
    assert_eq!(f["comment"], apt["notes"]);
    assert_eq!(f["description"], apt["location"]);
    assert_eq!(
        f["serviceType"][0]["coding"][0],
        json!({"system": "urn:practice-hub:appointment-type", "code": apt["appointmentTypeId"]})
    );
    let actors: Vec<&Value> = f["participant"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["actor"])
        .collect();
    assert_eq!(
        actors,
        [
            &reference("Patient", &p["id"]),
            &reference("Practitioner", &prc["id"]),
            &reference("Location", &cli["id"])
        ]
    );

    // Slot: the same free slots as /v1/availability, read back by id.
    let (from, to) = (day(2), day(3));
    let avail = h
        .get(
            &format!(
                "/v1/availability?appointmentTypeId={}&from={from}&to={to}&$limit=100",
                d.aty["id"].as_str().unwrap()
            ),
            key,
        )
        .await;
    avail.expect(200);
    let q = format!(
        "/Slot?service-type={}&start=ge{}&start=lt{}&_count=100",
        fhir_id(&d.aty["id"]),
        hub::time::format_ms(from),
        hub::time::format_ms(to)
    );
    let b = fhir(&s, &q, Some(key), 200).await;
    let slots = b["entry"].as_array().unwrap();
    let want = avail.body["data"].as_array().unwrap();
    assert_eq!(slots.len(), want.len());
    assert_eq!(b["total"], want.len());
    // 09:00–17:00 every 15 minutes, less the booked half hour at 10:00.
    // (Starts at 09:45, 10:00 and 10:15 would overlap it.)
    assert_eq!(want.len(), 31 - 3);
    for (e, v) in slots.iter().zip(want) {
        let r = &e["resource"];
        assert_eq!(r["start"], v["startAt"]);
        assert_eq!(r["end"], v["endAt"]);
        assert_eq!(r["status"], "free");
        assert_eq!(r["schedule"]["reference"], "#schedule");
        assert_eq!(
            r["contained"][0]["actor"],
            json!([
                reference("Practitioner", &v["practitionerId"]),
                reference("Location", &v["clinicId"])
            ])
        );
        assert_eq!(r["serviceType"][0]["coding"][0]["display"], d.aty["name"]);
    }
    let first = &slots[0]["resource"];
    let again = fhir(
        &s,
        &format!("/Slot/{}", first["id"].as_str().unwrap()),
        Some(key),
        200,
    )
    .await;
    assert_eq!(&again, first);
    assert!(first["id"].as_str().unwrap().len() <= 64);

    // Observation: the audiogram.
    let ht = h
        .post(
            "/v1/hearing-tests",
            key,
            &json!({"patientId": p["id"], "practitionerId": prc["id"], "clinicId": cli["id"], "type": "diagnostic",
                    "testedAt": "2026-11-02T10:00:00.000Z", "notes": "Mild loss",
                    "left": [{"frequencyHz": 500, "thresholdDb": 20, "conduction": "air"},
                             {"frequencyHz": 1000, "thresholdDb": 25, "conduction": "air"},
                             {"frequencyHz": 2000, "thresholdDb": 30, "conduction": "air"},
                             {"frequencyHz": 4000, "thresholdDb": 45, "conduction": "air"},
                             {"frequencyHz": 1000, "thresholdDb": 15, "conduction": "bone"}],
                    "right": [{"frequencyHz": 8000, "thresholdDb": 60, "conduction": "air"}]}),
        )
        .await;
    ht.expect(201);
    let ht = ht.body;
    let f = read_both(&s, "Observation", &ht["id"], key).await;
    assert_eq!(f["status"], "final");
    assert_eq!(f["code"]["coding"][0]["system"], "http://loinc.org");
    assert_eq!(f["subject"], reference("Patient", &p["id"]));
    assert_eq!(
        f["performer"],
        json!([reference("Practitioner", &prc["id"])])
    );
    assert_eq!(f["effectiveDateTime"], ht["testedAt"]);
    assert_eq!(f["note"][0]["text"], ht["notes"]);
    assert_eq!(f["category"][1]["coding"][0]["code"], ht["type"]);
    let comps = f["component"].as_array().unwrap();
    // Six points and the left ear's pure-tone average (the right has none).
    assert_eq!(comps.len(), 7, "{comps:#?}");
    let mut i = 0;
    for ear in ["left", "right"] {
        for pt in ht[ear].as_array().unwrap() {
            let c = &comps[i];
            i += 1;
            let ours = format!(
                "{ear}-{}-{}",
                pt["conduction"].as_str().unwrap(),
                pt["frequencyHz"]
            );
            let codings = c["code"]["coding"].as_array().unwrap();
            assert_eq!(codings.last().unwrap()["code"], ours);
            assert_eq!(c["valueQuantity"]["value"], pt["thresholdDb"]);
            assert_eq!(c["valueQuantity"]["code"], "dB");
            assert_eq!(c["valueQuantity"]["system"], "http://unitsofmeasure.org");
            if ours == "left-air-1000" {
                assert_eq!(codings[0]["system"], "http://loinc.org");
                assert_eq!(codings[0]["code"], "89016-0");
            }
            if pt["conduction"] == "bone" {
                assert_eq!(
                    codings.len(),
                    1,
                    "no LOINC code claimed for bone conduction"
                );
            }
        }
    }
    assert_eq!(comps[6]["code"]["coding"][0]["code"], "left-pta");
    assert_eq!(
        comps[6]["valueQuantity"]["value"],
        ht["pureToneAverage"]["left"]
    );

    // Invoice: line items and totals in pounds.
    let inv = h
        .post(
            "/v1/invoices",
            key,
            &json!({"patientId": p["id"], "currency": "GBP", "status": "open", "notes": "Thank you",
                    "lineItems": [{"description": "Hearing aid batteries", "quantity": 3, "unitAmount": 1999, "taxRateBps": 2000},
                                  {"description": "Consultation", "quantity": 1, "unitAmount": 4500}]}),
        )
        .await;
    inv.expect(201);
    let inv = inv.body;
    let f = read_both(&s, "Invoice", &inv["id"], key).await;
    assert_eq!(f["status"], "issued");
    assert_eq!(f["subject"], reference("Patient", &p["id"]));
    assert_eq!(f["date"], inv["issuedAt"]);
    assert_eq!(f["identifier"][1]["value"], inv["number"]);
    assert_eq!(f["totalNet"], money(&inv["subtotal"]));
    assert_eq!(f["totalGross"], money(&inv["total"]));
    // 3 × 19.99 + 20 % tax (11.99) + 45.00.
    assert_eq!(f["totalGross"]["value"], json!(116.96));
    assert_eq!(f["note"][0]["text"], inv["notes"]);
    for (i, l) in inv["lineItems"].as_array().unwrap().iter().enumerate() {
        let fl = &f["lineItem"][i];
        assert_eq!(fl["sequence"], i + 1);
        assert_eq!(fl["chargeItemCodeableConcept"]["text"], l["description"]);
        assert_eq!(
            fl["priceComponent"],
            json!([{"type": "base", "factor": l["quantity"], "amount": money(&l["amount"])},
                   {"type": "tax", "amount": money(&l["tax"])}])
        );
    }
}

#[both_stores]
async fn statuses_paging_ids_errors_and_tenancy() {
    let s = TestServer::start().await;
    let d = data(&s).await;
    let key = d.key.as_str();
    let h = &s.http;

    // Appointment statuses, one appointment per status.
    let mut want = Vec::new();
    for (i, (ours, theirs)) in [
        ("scheduled", "booked"),
        ("confirmed", "booked"),
        ("arrived", "arrived"),
        ("completed", "fulfilled"),
        ("cancelled", "cancelled"),
        ("noShow", "noshow"),
    ]
    .iter()
    .enumerate()
    {
        let start = day(1) + 9 * HOUR + i as i64 * HOUR;
        let r = h
            .post(
                "/v1/appointments",
                key,
                &json!({"patientId": d.patient["id"], "practitionerId": d.practitioner["id"],
                        "clinicId": d.clinic["id"], "appointmentTypeId": d.aty["id"],
                        "startAt": hub::time::format_ms(start)}),
            )
            .await;
        r.expect(201);
        let id = r.id();
        let path: &[&str] = match *ours {
            "scheduled" => &[],
            "confirmed" => &["confirmed"],
            "arrived" => &["confirmed", "arrived"],
            "completed" => &["confirmed", "arrived", "completed"],
            "cancelled" => &["cancelled"],
            _ => &["noShow"],
        };
        for st in path {
            let mut body = json!({"status": st});
            if *st == "cancelled" {
                body["cancellationReason"] = json!("Unwell");
            }
            h.patch(&format!("/v1/appointments/{id}"), key, &body)
                .await
                .expect(200);
        }
        let v1 = h.get(&format!("/v1/appointments/{id}"), key).await.body;
        assert_eq!(v1["status"], *ours);
        let f = read_both(&s, "Appointment", &v1["id"], key).await;
        assert_eq!(f["status"], *theirs, "{ours}");
        if *ours == "cancelled" {
            assert_eq!(f["cancelationReason"]["text"], "Unwell");
        }
        want.push(f);
    }
    // Search by patient, practitioner and date: the day's six, in id order.
    let pat = fhir_id(&d.patient["id"]);
    let prc = fhir_id(&d.practitioner["id"]);
    let date = &hub::time::format_ms(day(1))[..10];
    for q in [
        format!("patient=Patient/{pat}"),
        format!("patient={pat}"),
        format!("practitioner=Practitioner/{prc}&date={date}"),
        format!(
            "date=ge{date}&date=lt{}",
            &hub::time::format_ms(day(2))[..10]
        ),
    ] {
        let b = fhir(&s, &format!("/Appointment?{q}&_count=100"), Some(key), 200).await;
        let got: Vec<&Value> = b["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| &e["resource"])
            .collect();
        assert_eq!(got, want.iter().collect::<Vec<_>>(), "{q}");
        assert_eq!(b["total"], 6);
    }
    let b = fhir(&s, &format!("/Appointment?date=lt{date}"), Some(key), 200).await;
    assert_eq!(b["total"], 0);
    assert!(b["entry"].as_array().unwrap().is_empty());

    // Paging: 7 patients by 3, `next` links, no total past one page.
    for i in 0..6 {
        h.post(
            "/v1/patients",
            key,
            &json!({"fullName": format!("Paged Patient {i}"), "primaryPhoneNumber": "07700 900123",
                    "tracking": {}, "primaryClinicId": d.clinic["id"], "statusId": d.status,
                    "referralId": d.referral}),
        )
        .await
        .expect(201);
    }
    let mut url = "/fhir/R4/Patient?_count=3".to_string();
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let r = h.get(&url, key).await;
        r.expect(200);
        pages += 1;
        let b = &r.body;
        assert_eq!(b["type"], "searchset");
        assert!(
            b["total"].is_null(),
            "total only when the result is one page"
        );
        for e in b["entry"].as_array().unwrap() {
            seen.push(e["resource"]["id"].as_str().unwrap().to_string());
            assert!(e["fullUrl"].as_str().unwrap().ends_with(&format!(
                "/fhir/R4/Patient/{}",
                e["resource"]["id"].as_str().unwrap()
            )));
        }
        let next = b["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next");
        match next {
            Some(l) => {
                let u = l["url"].as_str().unwrap();
                url = u[u.find("/fhir/").unwrap()..].to_string();
                assert!(url.contains("_count=3"), "{url}");
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 7);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 7);
    let all = fhir(&s, "/Patient", Some(key), 200).await;
    assert_eq!(all["total"], 7);

    // Patient search parameters.
    for (q, n) in [
        ("name=evans", 1),
        ("name=paged", 6),
        ("phone=%2B447700900456", 1),
        ("email=mary%40example.com", 1),
        ("identifier=943%20476%205919", 1),
        ("identifier=urn%3Apractice-hub%3Abarcode%7CB-1234", 1),
        ("identifier=urn%3Apractice-hub%3Amedical-number%7CB-1234", 0),
        (&format!("identifier={pat}"), 1),
    ] {
        let b = fhir(&s, &format!("/Patient?{q}"), Some(key), 200).await;
        assert_eq!(b["total"], n, "{q}: {b}");
    }

    // Errors, each an OperationOutcome with its status.
    let e = fhir(&s, "/Patient", None, 401).await;
    assert_eq!(e["issue"][0]["code"], "login");
    let e = fhir(&s, "/Patient/pat-01JD0NOTHERE0000000000000", Some(key), 404).await;
    assert_eq!(e["issue"][0]["code"], "not-found");
    // A patient's id through another type is no object of it.
    fhir(&s, &format!("/Practitioner/{pat}"), Some(key), 404).await;
    fhir(&s, "/Slot/not-a-slot", Some(key), 404).await;
    fhir(&s, "/Nothing", Some(key), 404).await;
    for q in [
        "/Patient?nickname=x",
        "/Patient?_count=0",
        "/Patient?_count=101",
        "/Patient?_page=forged",
        "/Appointment?date=tomorrow",
        "/Appointment?date=sa2026-01-01",
        "/Appointment?patient=Practitioner/prc-1",
        "/Invoice?status=paid",
        "/Slot",
        "/Slot?service-type=aty-nothing",
    ] {
        let e = fhir(&s, q, Some(key), 400).await;
        assert_eq!(e["issue"][0]["code"], "invalid", "{q}");
    }
    let r = h.post("/fhir/R4/Patient", key, &json!({})).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.body["resourceType"], "OperationOutcome");
    // Metadata needs no key.
    let cs = fhir(&s, "/metadata", None, 200).await;
    assert_eq!(cs["resourceType"], "CapabilityStatement");
    assert_eq!(cs["fhirVersion"], "4.0.1");
    let types: Vec<&str> = cs["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "Patient",
            "Practitioner",
            "Location",
            "Appointment",
            "Slot",
            "Observation",
            "Invoice"
        ]
    );

    // A restricted key needs read on the underlying resource.
    let rk = h
        .post(
            "/v1/api-keys",
            key,
            &json!({"type": "restricted", "permissions": {"clinics": "read", "appointments": "read"}}),
        )
        .await;
    rk.expect(201);
    let rk = rk.body["secret"].as_str().unwrap();
    let e = fhir(&s, "/Patient", Some(rk), 403).await;
    assert_eq!(e["issue"][0]["code"], "forbidden");
    fhir(&s, &format!("/Patient/{pat}"), Some(rk), 403).await;
    fhir(&s, "/Observation", Some(rk), 403).await;
    fhir(&s, "/Location", Some(rk), 200).await;
    fhir(&s, "/Appointment", Some(rk), 200).await;

    // Another organization's object, and the other mode's: 404.
    let other = s.org("Other", true).await;
    fhir(
        &s,
        &format!("/Patient/{pat}"),
        Some(&other.test.secret),
        404,
    )
    .await;
    let b = fhir(&s, "/Patient", Some(&other.test.secret), 200).await;
    assert_eq!(b["total"], 0);
    fhir(
        &s,
        &format!("/Appointment/{}", want[0]["id"].as_str().unwrap()),
        Some(&d.live),
        404,
    )
    .await;
    let b = fhir(&s, "/Patient", Some(&d.live), 200).await;
    assert_eq!(b["total"], 0);
}
