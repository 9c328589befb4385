//! Scheduling over HTTP: appointment types, working hours, availability
//! (daylight saving included), the appointment lifecycle, no double booking
//! under concurrency, booking widgets with publishable keys, deletes refused
//! while appointments refer, lists by practitioner and time.

use hub_tests::*;
use serde_json::Value;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

fn iso(ms: i64) -> String {
    hub::time::format_ms(ms)
}

fn ms(v: &Value) -> i64 {
    hub::time::parse_timestamp(v.as_str().unwrap()).unwrap()
}

/// Midnight UTC `days` from today.
fn day(days: i64) -> i64 {
    (hub::time::now_ms() / DAY + days) * DAY
}

struct Clinic {
    key: String,
    publishable: String,
    london: String,
    new_york: String,
    /// Works every day 09:00–17:00 in London.
    prc: String,
    /// Works every day 09:00–17:00 in New York.
    prc_ny: String,
    /// 30 minutes.
    aty: String,
    patient: String,
}

async fn clinic(s: &TestServer) -> Clinic {
    let org = s.org("Scheduling", true).await;
    let key = org.test.secret.clone();
    let h = &s.http;
    let london = h
        .post(
            "/v1/clinics",
            &key,
            &json!({"name": "London", "timeZone": "Europe/London"}),
        )
        .await
        .id();
    let new_york = h
        .post(
            "/v1/clinics",
            &key,
            &json!({"name": "New York", "timeZone": "America/New_York"}),
        )
        .await
        .id();
    let every_day = |clinic: &str| -> Value {
        let days = [
            "monday",
            "tuesday",
            "wednesday",
            "thursday",
            "friday",
            "saturday",
            "sunday",
        ];
        Value::Array(
            days.iter()
                .map(|d| json!({"clinicId": clinic, "day": d, "start": "09:00", "end": "17:00"}))
                .collect(),
        )
    };
    let prc = h
        .post(
            "/v1/practitioners",
            &key,
            &json!({"fullName": "Dr London", "clinicIds": [london], "workingHours": every_day(&london)}),
        )
        .await;
    prc.expect(201);
    let prc_ny = h
        .post(
            "/v1/practitioners",
            &key,
            &json!({"fullName": "Dr New York", "clinicIds": [new_york], "workingHours": every_day(&new_york)}),
        )
        .await;
    prc_ny.expect(201);
    let aty = h
        .post(
            "/v1/appointment-types",
            &key,
            &json!({"name": "Hearing test", "durationMinutes": 30, "price": 4500, "currency": "GBP"}),
        )
        .await;
    aty.expect(201);
    assert_eq!(aty.body["bookableOnline"], true, "default");
    let (c, st, r) = reference_data(h, &key).await;
    let patient = h
        .post(
            "/v1/patients",
            &key,
            &json!({"fullName": "Pat Booker", "primaryPhoneNumber": "07700 900123", "tracking": {},
                    "primaryClinicId": c, "statusId": st, "referralId": r}),
        )
        .await;
    patient.expect(201);
    Clinic {
        key,
        publishable: org.test.publishable.clone(),
        london,
        new_york,
        prc: prc.id(),
        prc_ny: prc_ny.id(),
        aty: aty.id(),
        patient: patient.id(),
    }
}

impl Clinic {
    fn booking(&self, start: i64) -> Value {
        json!({"patientId": self.patient, "practitionerId": self.prc, "clinicId": self.london,
               "appointmentTypeId": self.aty, "startAt": iso(start)})
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_data_is_validated() {
    schedule_data_is_validated_on(&TestServer::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_data_is_validated_dynamodb() {
    schedule_data_is_validated_on(&dynamo::server().await).await;
}

async fn schedule_data_is_validated_on(s: &TestServer) {
    let c = clinic(s).await;
    let h = &s.http;
    let field = |r: &Resp| {
        r.body["errors"][0]["field"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let r = h
        .post(
            "/v1/appointment-types",
            &c.key,
            &json!({"name": "Odd", "durationMinutes": 7, "price": 1, "currency": "GBP"}),
        )
        .await;
    r.expect_error(400, "INVALID_PARAMETERS");
    assert_eq!(field(&r), "durationMinutes");
    let r = h
        .post(
            "/v1/appointment-types",
            &c.key,
            &json!({"name": "Odd", "durationMinutes": 30, "price": 1, "currency": "XYZ"}),
        )
        .await;
    assert_eq!(field(&r), "currency");
    let r = h
        .post(
            "/v1/appointment-types",
            &c.key,
            &json!({"name": "hearing TEST", "durationMinutes": 30, "price": 1, "currency": "GBP"}),
        )
        .await;
    r.expect_error(409, "CONFLICT");
    // Working hours at a clinic they do not work at, and overlapping ones.
    let r = h
        .patch(
            &format!("/v1/practitioners/{}", c.prc),
            &c.key,
            &json!({"workingHours": [{"clinicId": c.new_york, "day": "monday", "start": "09:00", "end": "12:00"}]}),
        )
        .await;
    r.expect_error(400, "INVALID_PARAMETERS");
    assert_eq!(field(&r), "workingHours[0].clinicId");
    let r = h
        .patch(
            &format!("/v1/practitioners/{}", c.prc),
            &c.key,
            &json!({"workingHours": [
                {"clinicId": c.london, "day": "monday", "start": "09:00", "end": "12:00"},
                {"clinicId": c.london, "day": "monday", "start": "11:30", "end": "13:00"}]}),
        )
        .await;
    assert_eq!(field(&r), "workingHours[1]", "{}", r.body);
    let r = h
        .patch(
            &format!("/v1/practitioners/{}", c.prc),
            &c.key,
            &json!({"workingHours": [{"clinicId": c.london, "day": "monday", "start": "12:00", "end": "09:00"}]}),
        )
        .await;
    assert_eq!(field(&r), "workingHours[0].end");
    let r = h
        .patch(
            &format!("/v1/practitioners/{}", c.prc),
            &c.key,
            &json!({"workingHours": [{"clinicId": c.london, "day": "monday", "start": "9am", "end": "17:00"}]}),
        )
        .await;
    assert_eq!(field(&r), "workingHours[0].start");
    // Appointments: the practitioner must work at the clinic; times in order.
    let start = day(2) + 10 * HOUR;
    let mut b = c.booking(start);
    b["clinicId"] = json!(c.new_york);
    let r = h.post("/v1/appointments", &c.key, &b).await;
    r.expect_error(400, "INVALID_PARAMETERS");
    assert_eq!(field(&r), "clinicId");
    let mut b = c.booking(start);
    b["endAt"] = json!(iso(start - HOUR));
    assert_eq!(
        field(&h.post("/v1/appointments", &c.key, &b).await),
        "endAt"
    );
    let mut b = c.booking(start);
    b["status"] = json!("completed");
    assert_eq!(
        field(&h.post("/v1/appointments", &c.key, &b).await),
        "status"
    );
    let mut b = c.booking(start);
    b["cancellationReason"] = json!("no");
    assert_eq!(
        field(&h.post("/v1/appointments", &c.key, &b).await),
        "cancellationReason"
    );
    // Defaults: scheduled, the type's duration.
    let a = h.post("/v1/appointments", &c.key, &c.booking(start)).await;
    a.expect(201);
    assert_eq!(a.body["status"], "scheduled");
    assert_eq!(ms(&a.body["endAt"]) - start, 30 * 60_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transition_is_legal_or_a_409_saying_what_is() {
    every_transition_is_legal_or_a_409_saying_what_is_on(&TestServer::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transition_is_legal_or_a_409_saying_what_is_dynamodb() {
    every_transition_is_legal_or_a_409_saying_what_is_on(&dynamo::server().await).await;
}

async fn every_transition_is_legal_or_a_409_saying_what_is_on(s: &TestServer) {
    let c = clinic(s).await;
    let h = &s.http;
    let statuses = [
        "scheduled",
        "confirmed",
        "arrived",
        "completed",
        "cancelled",
        "noShow",
    ];
    let legal: &[(&str, &[&str])] = &[
        (
            "scheduled",
            &["confirmed", "arrived", "cancelled", "noShow"],
        ),
        ("confirmed", &["arrived", "cancelled", "noShow"]),
        ("arrived", &["completed"]),
        ("completed", &[]),
        ("cancelled", &[]),
        ("noShow", &[]),
    ];
    // The path from a new appointment to each status.
    let path = |to: &str| -> Vec<&'static str> {
        match to {
            "scheduled" => vec![],
            "confirmed" => vec!["confirmed"],
            "arrived" => vec!["confirmed", "arrived"],
            "completed" => vec!["arrived", "completed"],
            "cancelled" => vec!["confirmed", "cancelled"],
            _ => vec!["noShow"],
        }
    };
    let mut slot = day(3);
    let fresh = |h: Http, c_key: String, body: Value| async move {
        let r = h.post("/v1/appointments", &c_key, &body).await;
        r.expect(201);
        r.id()
    };
    for (from, allowed) in legal {
        for to in statuses {
            slot += HOUR;
            let id = fresh(h.clone(), c.key.clone(), c.booking(slot)).await;
            for step in path(from) {
                let r = h
                    .patch(
                        &format!("/v1/appointments/{id}"),
                        &c.key,
                        &json!({"status": step}),
                    )
                    .await;
                r.expect(200);
                assert_eq!(r.body["status"], step);
            }
            if to == *from {
                continue;
            }
            let r = h
                .patch(
                    &format!("/v1/appointments/{id}"),
                    &c.key,
                    &json!({"status": to}),
                )
                .await;
            if allowed.contains(&to) {
                r.expect(200);
                assert_eq!(r.body["status"], to);
            } else {
                r.expect_error(409, "CONFLICT");
                let m = r.body["message"].as_str().unwrap();
                assert!(m.contains(&format!("`{from}`")), "{m}");
                for a in *allowed {
                    assert!(m.contains(&format!("`{a}`")), "{m} lists {a}");
                }
                let g = h.get(&format!("/v1/appointments/{id}"), &c.key).await;
                assert_eq!(g.body["status"], *from, "unchanged");
            }
        }
    }
    // Final: notes and customData may change, the time may not.
    slot += HOUR;
    let id = fresh(h.clone(), c.key.clone(), c.booking(slot)).await;
    for step in ["arrived", "completed"] {
        h.patch(
            &format!("/v1/appointments/{id}"),
            &c.key,
            &json!({"status": step}),
        )
        .await
        .expect(200);
    }
    h.patch(
        &format!("/v1/appointments/{id}"),
        &c.key,
        &json!({"notes": "went well", "customData": {"a": 1}}),
    )
    .await
    .expect(200);
    h.patch(
        &format!("/v1/appointments/{id}"),
        &c.key,
        &json!({"startAt": iso(slot + DAY)}),
    )
    .await
    .expect_error(409, "CONFLICT");
    // Arrived: not movable either.
    slot += HOUR;
    let id = fresh(h.clone(), c.key.clone(), c.booking(slot)).await;
    h.patch(
        &format!("/v1/appointments/{id}"),
        &c.key,
        &json!({"status": "arrived"}),
    )
    .await
    .expect(200);
    let r = h
        .patch(
            &format!("/v1/appointments/{id}"),
            &c.key,
            &json!({"startAt": iso(slot + DAY)}),
        )
        .await;
    r.expect_error(409, "CONFLICT");
    // Cancelling takes a reason.
    slot += HOUR;
    let id = fresh(h.clone(), c.key.clone(), c.booking(slot)).await;
    let r = h
        .patch(
            &format!("/v1/appointments/{id}"),
            &c.key,
            &json!({"status": "cancelled", "cancellationReason": "Patient unwell"}),
        )
        .await;
    r.expect(200);
    assert_eq!(r.body["cancellationReason"], "Patient unwell");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_practitioner_is_never_double_booked_under_concurrency() {
    a_practitioner_is_never_double_booked_under_concurrency_on(&TestServer::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_practitioner_is_never_double_booked_under_concurrency_dynamodb() {
    a_practitioner_is_never_double_booked_under_concurrency_on(&dynamo::server().await).await;
}

async fn a_practitioner_is_never_double_booked_under_concurrency_on(s: &TestServer) {
    let c = clinic(s).await;
    let start = day(4) + 10 * HOUR;
    // 20 at once, each overlapping the others: exactly one wins.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (h, key) = (s.http.clone(), c.key.clone());
        let mut body = c.booking(start + (i % 5) * 5 * 60_000);
        body["notes"] = json!(format!("try {i}"));
        tasks.push(tokio::spawn(async move {
            h.post("/v1/appointments", &key, &body).await
        }));
    }
    let mut won = Vec::new();
    let mut lost = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            201 => won.push(r.id()),
            409 => lost.push(r),
            other => panic!("unexpected {other}: {}", r.body),
        }
    }
    assert_eq!(won.len(), 1, "exactly one booking");
    for r in &lost {
        assert_eq!(r.body["name"], "CONFLICT");
        assert!(
            r.body["message"].as_str().unwrap().contains(&won[0]),
            "names the clash: {}",
            r.body
        );
    }
    // 10 reschedules onto one free slot: exactly one moves.
    let target = day(4) + 14 * HOUR;
    let mut ids = Vec::new();
    for i in 0..10 {
        let r = s
            .http
            .post("/v1/appointments", &c.key, &c.booking(day(5) + i * HOUR))
            .await;
        r.expect(201);
        ids.push(r.id());
    }
    let mut tasks = Vec::new();
    for id in &ids {
        let (h, key, id) = (s.http.clone(), c.key.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            h.patch(
                &format!("/v1/appointments/{id}"),
                &key,
                &json!({"startAt": iso(target)}),
            )
            .await
        }));
    }
    let mut moved = 0;
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            200 => {
                moved += 1;
                assert_eq!(ms(&r.body["startAt"]), target);
                assert_eq!(
                    ms(&r.body["endAt"]),
                    target + 30 * 60_000,
                    "keeps its length"
                );
            }
            409 => assert_eq!(r.body["name"], "CONFLICT"),
            other => panic!("unexpected {other}: {}", r.body),
        }
    }
    assert_eq!(moved, 1, "exactly one reschedule");
    // Crossing midnight: a booking to 00:30 blocks one at 00:00 the next day.
    let late = day(6) + 23 * HOUR + 30 * 60_000;
    let mut b = c.booking(late);
    b["endAt"] = json!(iso(late + HOUR));
    s.http
        .post("/v1/appointments", &c.key, &b)
        .await
        .expect(201);
    s.http
        .post("/v1/appointments", &c.key, &c.booking(day(7)))
        .await
        .expect_error(409, "CONFLICT");
    // Another practitioner is free at the same time.
    let mut other = c.booking(start);
    other["practitionerId"] = json!(c.prc_ny);
    other["clinicId"] = json!(c.new_york);
    s.http
        .post("/v1/appointments", &c.key, &other)
        .await
        .expect(201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_frees_the_slot() {
    cancelling_frees_the_slot_on(&TestServer::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_frees_the_slot_dynamodb() {
    cancelling_frees_the_slot_on(&dynamo::server().await).await;
}

async fn cancelling_frees_the_slot_on(s: &TestServer) {
    let c = clinic(s).await;
    let h = &s.http;
    let start = day(3) + 11 * HOUR;
    let a = h.post("/v1/appointments", &c.key, &c.booking(start)).await;
    a.expect(201);
    h.post("/v1/appointments", &c.key, &c.booking(start))
        .await
        .expect_error(409, "CONFLICT");
    let offered = |r: &Resp| -> Vec<i64> {
        r.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| ms(&x["startAt"]))
            .collect()
    };
    let q = format!(
        "/v1/availability?appointmentTypeId={}&practitionerId={}&from={}&to={}",
        c.aty,
        c.prc,
        start - HOUR,
        start + HOUR
    );
    let r = h.get(&q, &c.key).await;
    r.expect(200);
    assert!(
        !offered(&r).contains(&start),
        "a booked slot is not offered"
    );
    h.patch(
        &format!("/v1/appointments/{}", a.id()),
        &c.key,
        &json!({"status": "cancelled"}),
    )
    .await
    .expect(200);
    assert!(
        offered(&h.get(&q, &c.key).await).contains(&start),
        "offered again"
    );
    h.post("/v1/appointments", &c.key, &c.booking(start))
        .await
        .expect(201);
}

/// The next UTC instant at which `tz` changes offset, more than two days ahead.
fn next_transition(tz: &str) -> i64 {
    let tz = jiff::tz::TimeZone::get(tz).unwrap();
    let now = jiff::Timestamp::from_millisecond(hub::time::now_ms() + 2 * DAY).unwrap();
    tz.following(now)
        .next()
        .unwrap()
        .timestamp()
        .as_millisecond()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn availability_follows_local_time_across_daylight_saving() {
    availability_follows_local_time_across_daylight_saving_on(&TestServer::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn availability_follows_local_time_across_daylight_saving_dynamodb() {
    availability_follows_local_time_across_daylight_saving_on(&dynamo::server().await).await;
}

async fn availability_follows_local_time_across_daylight_saving_on(s: &TestServer) {
    let c = clinic(s).await;
    for (prc, zone) in [(&c.prc, "Europe/London"), (&c.prc_ny, "America/New_York")] {
        let change = next_transition(zone);
        let from = change - 3 * DAY;
        let to = change + 4 * DAY;
        let r = s
            .http
            .get(
                &format!(
                    "/v1/availability?appointmentTypeId={}&practitionerId={prc}&from={}&to={}&slotMinutes=60&$limit=100",
                    c.aty,
                    iso(from),
                    to
                ),
                &c.key,
            )
            .await;
        r.expect(200);
        let tz = jiff::tz::TimeZone::get(zone).unwrap();
        let mut firsts: std::collections::BTreeMap<String, String> = Default::default();
        for slot in r.body["data"].as_array().unwrap() {
            let t = jiff::Timestamp::from_millisecond(ms(&slot["startAt"])).unwrap();
            let local = tz.to_datetime(t);
            firsts
                .entry(local.date().to_string())
                .or_insert_with(|| local.time().to_string());
            assert_eq!(slot["practitionerId"], prc.as_str());
            assert_eq!(ms(&slot["endAt"]) - ms(&slot["startAt"]), 30 * 60_000);
        }
        assert!(firsts.len() >= 6, "{zone}: a week of days: {firsts:?}");
        for (date, first) in &firsts {
            assert!(
                first.starts_with("09:00"),
                "{zone} {date} starts at {first}"
            );
        }
        // 09:00–17:00 hourly with 30 minutes each: 8 slots every day.
        let per_day = r.body["data"].as_array().unwrap().len() / firsts.len();
        assert_eq!(per_day, 8, "{zone}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn booked_time_off_and_past_are_never_offered() {
    booked_time_off_and_past_are_never_offered_on(&TestServer::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn booked_time_off_and_past_are_never_offered_dynamodb() {
    booked_time_off_and_past_are_never_offered_on(&dynamo::server().await).await;
}

async fn booked_time_off_and_past_are_never_offered_on(s: &TestServer) {
    let c = clinic(s).await;
    let h = &s.http;
    let now = hub::time::now_ms();
    let q = |from: i64, to: i64| {
        format!(
            "/v1/availability?appointmentTypeId={}&practitionerId={}&from={}&to={}&$limit=100",
            c.aty, c.prc, from, to
        )
    };
    // The past: a window from yesterday offers nothing before now.
    let r = h.get(&q(now - DAY, now + DAY), &c.key).await;
    r.expect(200);
    for slot in r.body["data"].as_array().unwrap() {
        assert!(ms(&slot["startAt"]) > now, "{slot}");
    }
    // Time off: the whole of day 8 (UTC).
    h.patch(
        &format!("/v1/practitioners/{}", c.prc),
        &c.key,
        &json!({"timeOff": [{"startAt": iso(day(8)), "endAt": iso(day(9)), "reason": "Training"}]}),
    )
    .await
    .expect(200);
    let booked = day(9) + 12 * HOUR;
    h.post("/v1/appointments", &c.key, &c.booking(booked))
        .await
        .expect(201);
    let r = h.get(&q(day(7), day(10)), &c.key).await;
    r.expect(200);
    let starts: Vec<i64> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| ms(&x["startAt"]))
        .collect();
    assert!(!starts.is_empty());
    for t in &starts {
        assert!(
            !(day(8) - 30 * 60_000 < *t && *t < day(9)),
            "time off offered: {}",
            iso(*t)
        );
        assert!(
            !(booked - 30 * 60_000 < *t && *t < booked + 30 * 60_000),
            "booked offered: {}",
            iso(*t)
        );
    }
    let mut sorted = starts.clone();
    sorted.sort();
    assert_eq!(starts, sorted, "sorted by startAt");
    // Bad windows.
    h.get(&q(day(10), day(9)), &c.key)
        .await
        .expect_error(400, "INVALID_PARAMETERS");
    h.get(&q(day(1), day(40)), &c.key)
        .await
        .expect_error(400, "INVALID_PARAMETERS");
    let r = h
        .get(
            &format!(
                "/v1/availability?appointmentTypeId={}&from={}&to={}&colour=red",
                c.aty,
                day(1),
                day(2)
            ),
            &c.key,
        )
        .await;
    r.expect_error(400, "INVALID_PARAMETERS");
    assert_eq!(r.body["errors"][0]["field"], "colour");
}

/// Availability pages like every list: `$limit` (default 10, at most
/// 100), `next`/`prev` cursors and a `Link` header. Walking the pages gives
/// exactly the one long page, in order; a slot booked between two pages
/// neither shifts nor repeats the rest; Previous returns the page before;
/// a cursor is refused with other parameters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn availability_pages_with_cursors() {
    let s = TestServer::start().await;
    let c = clinic(&s).await;
    let h = &s.http;
    // Both practitioners, two days: more than one page of everything.
    let base = format!(
        "/v1/availability?appointmentTypeId={}&from={}&to={}&slotMinutes=30",
        c.aty,
        iso(day(3)),
        iso(day(5))
    );
    let key_of = |x: &Value| {
        (
            x["startAt"].as_str().unwrap().to_string(),
            x["practitionerId"].as_str().unwrap().to_string(),
        )
    };
    let all = h.get(&format!("{base}&$limit=100"), &c.key).await;
    all.expect(200);
    assert_eq!(all.body["limit"], 100);
    let slots = all.body["data"].as_array().unwrap().clone();
    let all: Vec<(String, String)> = slots.iter().map(key_of).collect();
    assert!(all.len() > 30 && all.len() < 100, "{} slots", all.len());
    let first = h.get(&base, &c.key).await;
    first.expect(200);
    assert_eq!(first.body["limit"], 10, "the default page");
    assert_eq!(first.body["data"].as_array().unwrap().len(), 10);
    assert!(first.body["prev"].is_null());
    let next = first.body["next"].as_str().unwrap().to_string();
    let link = first.header("link").unwrap().to_string();
    assert!(
        link.contains("rel=\"next\"") && link.contains(&format!("$after={next}")),
        "{link}"
    );
    assert!(!link.contains("rel=\"prev\""), "{link}");
    // Seven at a time to the end; a slot of the next page is booked meanwhile.
    let mut walked = Vec::new();
    let mut pages = Vec::new();
    let mut url = format!("{base}&$limit=7");
    let mut booked = None;
    loop {
        let r = h.get(&url, &c.key).await;
        r.expect(200);
        let page: Vec<(String, String)> = r.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(key_of)
            .collect();
        assert!(page.len() <= 7);
        walked.extend(page.clone());
        pages.push((url.clone(), page));
        let Some(next) = r.body["next"].as_str() else {
            break;
        };
        if pages.len() == 2 && booked.is_none() {
            // Book the first slot the next page would show.
            let i = walked.len();
            let mut body = c.booking(ms(&slots[i]["startAt"]));
            body["practitionerId"] = slots[i]["practitionerId"].clone();
            body["clinicId"] = slots[i]["clinicId"].clone();
            h.post("/v1/appointments", &c.key, &body).await.expect(201);
            booked = Some(all[i].clone());
        }
        url = format!("{base}&$limit=7&$after={next}");
    }
    let booked = booked.expect("more than two pages");
    let expected: Vec<(String, String)> = all.iter().filter(|k| **k != booked).cloned().collect();
    assert_eq!(
        walked, expected,
        "every free slot once, in order, the booked one gone"
    );
    // Previous from the third page is the second again.
    let third = h.get(&pages[2].0, &c.key).await;
    let prev = third.body["prev"].as_str().unwrap();
    let back = h
        .get(&format!("{base}&$limit=7&$before={prev}"), &c.key)
        .await;
    back.expect(200);
    let back: Vec<(String, String)> = back.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(key_of)
        .collect();
    assert_eq!(back, pages[1].1);
    // More than 100 is clamped; a cursor of other parameters is refused.
    let many = h.get(&format!("{base}&$limit=500"), &c.key).await;
    assert_eq!(many.body["limit"], 100);
    let other = h
        .get(
            &format!("{base}&practitionerId={}&$after={next}", c.prc),
            &c.key,
        )
        .await;
    other.expect_error(400, "INVALID_PARAMETERS");
    assert_eq!(other.body["errors"][0]["field"], "$after");
    h.get(&format!("{base}&$limit=x"), &c.key)
        .await
        .expect_error(400, "INVALID_PARAMETERS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_widget_books_only_offered_slots() {
    a_booking_widget_books_only_offered_slots_on(&TestServer::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_widget_books_only_offered_slots_dynamodb() {
    a_booking_widget_books_only_offered_slots_on(&dynamo::server().await).await;
}

async fn a_booking_widget_books_only_offered_slots_on(s: &TestServer) {
    let c = clinic(s).await;
    let h = &s.http;
    let pk = c.publishable.as_str();
    let r = h
        .get(
            &format!(
                "/v1/availability?appointmentTypeId={}&practitionerId={}&from={}&to={}",
                c.aty,
                c.prc,
                day(2),
                day(3)
            ),
            pk,
        )
        .await;
    r.expect(200);
    let first = r.body["data"][0].clone();
    let start = ms(&first["startAt"]);
    // Publishable keys read appointment types too, but not appointments.
    h.get("/v1/appointment-types", pk).await.expect(200);
    h.get("/v1/appointments", pk)
        .await
        .expect_error(403, "PERMISSIONS_ERROR");
    let booked = h.post("/v1/appointments", pk, &c.booking(start)).await;
    booked.expect(201);
    // Taken now; and a time outside the working hours is not offered.
    h.post("/v1/appointments", pk, &c.booking(start))
        .await
        .expect_error(409, "CONFLICT");
    let night = day(2) + 3 * HOUR;
    h.post("/v1/appointments", pk, &c.booking(night))
        .await
        .expect_error(409, "CONFLICT");
    let mut longer = c.booking(start + 2 * HOUR);
    longer["endAt"] = json!(iso(start + 4 * HOUR));
    h.post("/v1/appointments", pk, &longer)
        .await
        .expect_error(409, "CONFLICT");
    // A secret key may book outside the hours (a clinic's own diary).
    h.post("/v1/appointments", &c.key, &c.booking(night))
        .await
        .expect(201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_are_refused_while_appointments_refer() {
    deletes_are_refused_while_appointments_refer_on(&TestServer::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_are_refused_while_appointments_refer_dynamodb() {
    deletes_are_refused_while_appointments_refer_on(&dynamo::server().await).await;
}

async fn deletes_are_refused_while_appointments_refer_on(s: &TestServer) {
    let c = clinic(s).await;
    let h = &s.http;
    let a1 = h
        .post("/v1/appointments", &c.key, &c.booking(day(2) + 10 * HOUR))
        .await
        .id();
    let a2 = h
        .post("/v1/appointments", &c.key, &c.booking(day(2) + 11 * HOUR))
        .await
        .id();
    for path in [
        format!("/v1/patients/{}", c.patient),
        format!("/v1/practitioners/{}", c.prc),
        format!("/v1/clinics/{}", c.london),
        format!("/v1/appointment-types/{}", c.aty),
    ] {
        let r = h.delete(&path, &c.key).await;
        r.expect_error(409, "CONFLICT");
        assert!(
            r.body["message"]
                .as_str()
                .unwrap()
                .contains("2 appointments"),
            "{}",
            r.body
        );
        h.get(&path, &c.key).await.expect(200);
    }
    h.delete(&format!("/v1/appointments/{a1}"), &c.key)
        .await
        .expect(200);
    let r = h
        .delete(&format!("/v1/patients/{}", c.patient), &c.key)
        .await;
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("1 appointment refers"),
        "{}",
        r.body
    );
    h.delete(&format!("/v1/appointments/{a2}"), &c.key)
        .await
        .expect(200);
    h.delete(&format!("/v1/patients/{}", c.patient), &c.key)
        .await
        .expect(200);
    // A deleted appointment frees its time.
    h.get(
        &format!(
            "/v1/availability?appointmentTypeId={}&practitionerId={}&from={}&to={}",
            c.aty,
            c.prc,
            day(2),
            day(3)
        ),
        &c.key,
    )
    .await
    .expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_by_practitioner_and_time() {
    lists_by_practitioner_and_time_on(&TestServer::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_by_practitioner_and_time_dynamodb() {
    lists_by_practitioner_and_time_on(&dynamo::server().await).await;
}

async fn lists_by_practitioner_and_time_on(s: &TestServer) {
    let c = clinic(s).await;
    let h = &s.http;
    let mut ids = Vec::new();
    for i in [5, 1, 3, 2, 4] {
        let r = h
            .post("/v1/appointments", &c.key, &c.booking(day(2) + i * HOUR))
            .await;
        r.expect(201);
        ids.push((i, r.id()));
    }
    ids.sort();
    let r = h
        .get(
            &format!(
                "/v1/appointments?practitionerId={}&startAt[$gte]={}&startAt[$lt]={}&$sort[startAt]=1",
                c.prc,
                iso(day(2) + 2 * HOUR),
                iso(day(2) + 5 * HOUR)
            ),
            &c.key,
        )
        .await;
    r.expect(200);
    let want: Vec<String> = ids
        .iter()
        .filter(|(i, _)| (2..5).contains(i))
        .map(|(_, id)| id.clone())
        .collect();
    assert_eq!(r.ids(), want);
    let r = h
        .get(
            &format!(
                "/v1/appointments?patientId={}&status=scheduled&$sort[startAt]=-1&$limit=2",
                c.patient
            ),
            &c.key,
        )
        .await;
    assert_eq!(r.ids(), vec![ids[4].1.clone(), ids[3].1.clone()]);
    assert!(r.body["next"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bookings_whole_life_arrives_verified() {
    let rx = Receiver::start();
    let s = TestServer::with_fast_webhooks().await;
    let c = clinic(&s).await;
    let h = &s.http;
    let ep = h
        .post(
            "/v1/webhook-endpoints",
            &c.key,
            &json!({"url": format!("{}/apt", rx.base), "enabledEvents": ["appointment.*"]}),
        )
        .await;
    ep.expect(201);
    rx.secrets("/apt", &[ep.body["secret"].as_str().unwrap()])
        .await;
    let start = day(2) + 10 * HOUR;
    let a = h.post("/v1/appointments", &c.key, &c.booking(start)).await;
    a.expect(201);
    let id = a.id();
    let url = format!("/v1/appointments/{id}");
    h.patch(&url, &c.key, &json!({"status": "confirmed"}))
        .await
        .expect(200);
    h.patch(&url, &c.key, &json!({"startAt": iso(start + HOUR)}))
        .await
        .expect(200);
    h.patch(&url, &c.key, &json!({"status": "arrived"}))
        .await
        .expect(200);
    h.patch(&url, &c.key, &json!({"status": "completed"}))
        .await
        .expect(200);
    let wanted = [
        "appointment.created",
        "appointment.confirmed",
        "appointment.rescheduled",
        "appointment.arrived",
        "appointment.completed",
    ];
    let log = rx
        .wait("the booking's life", |l| {
            wanted.iter().all(|w| l.iter().any(|e| e["type"] == *w))
                && l.iter()
                    .filter(|e| e["type"] == "appointment.updated")
                    .count()
                    == 4
        })
        .await;
    for e in &log {
        assert_eq!(e["stripe"], json!([true]), "{e}");
        assert_eq!(e["standard"], json!([true]), "{e}");
        assert_eq!(e["body"]["data"]["id"], id.as_str());
        assert_eq!(
            e["body"]["data"]["patient"]["id"],
            c.patient.as_str(),
            "slim patient reference"
        );
        assert_eq!(e["body"]["data"]["patient"]["fullName"], "Pat Booker");
        assert!(e["body"]["data"]["version"].is_u64());
    }
    let updates: Vec<&Value> = log
        .iter()
        .filter(|e| e["type"] == "appointment.updated")
        .collect();
    let prev: Vec<&Value> = updates
        .iter()
        .map(|e| &e["body"]["data"]["previousAttributes"])
        .collect();
    assert!(prev.iter().any(|p| p["status"] == "scheduled"), "{prev:?}");
    assert!(
        prev.iter().any(|p| p["startAt"] == iso(start).as_str()),
        "{prev:?}"
    );
    assert!(prev.iter().any(|p| p["status"] == "arrived"), "{prev:?}");
    // Versions let a receiver order them.
    let mut versions: Vec<u64> = updates
        .iter()
        .map(|e| e["body"]["data"]["version"].as_u64().unwrap())
        .collect();
    versions.sort();
    assert_eq!(versions, vec![2, 3, 4, 5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_has_a_diary_and_books() {
    let s = TestServer::start().await;
    let org = s.org("Sandbox diary", false).await;
    let key = org.test.secret.as_str();
    let h = &s.http;
    let count = |q: String| {
        let h = h.clone();
        let key = key.to_string();
        async move {
            let r = h.get(&q, &key).await;
            r.expect(200);
            r.body["total"].as_u64().unwrap()
        }
    };
    for st in [
        "scheduled",
        "confirmed",
        "arrived",
        "completed",
        "cancelled",
        "noShow",
    ] {
        assert!(
            count(format!("/v1/appointments?status={st}&$limit=0")).await > 0,
            "{st}"
        );
    }
    let now = hub::time::now_ms();
    let past = count(format!(
        "/v1/appointments?startAt[$lt]={}&$limit=0",
        iso(now)
    ))
    .await;
    let future = count(format!(
        "/v1/appointments?startAt[$gt]={}&$limit=0",
        iso(now)
    ))
    .await;
    assert!(past > 5 && future > 5, "{past} past, {future} coming");
    let outside = count(format!(
        "/v1/appointments?$or[0][startAt][$lt]={}&$or[1][startAt][$gt]={}&$limit=0",
        iso(now - 29 * DAY),
        iso(now + 29 * DAY)
    ))
    .await;
    assert_eq!(outside, 0, "within four weeks either way");
    for st in ["draft", "open", "partiallyPaid", "paid", "void"] {
        assert!(
            count(format!("/v1/invoices?status={st}&$limit=0")).await > 0,
            "{st}"
        );
    }
    assert!(count("/v1/transactions?type=refund&$limit=0".into()).await > 0);
    assert!(count("/v1/transactions?method=cash&$limit=0".into()).await > 0);
    assert!(count("/v1/credit-notes?$limit=0".into()).await > 0);
    assert!(count("/v1/invoices?appointmentId[$exists]=true&$limit=0".into()).await > 0);
    // Working hours for everyone; the types of a hearing clinic.
    let prcs = h.get("/v1/practitioners?$limit=100", key).await;
    for p in prcs.body["data"].as_array().unwrap() {
        assert!(
            !p["workingHours"].as_array().unwrap().is_empty(),
            "{}",
            p["fullName"]
        );
    }
    assert!(count("/v1/appointment-types?$limit=0".into()).await >= 5);
    // Clinical records and memberships.
    assert!(count("/v1/hearing-tests?$limit=0".into()).await >= 10);
    for t in ["membership", "sessionPack", "introOffer"] {
        assert!(
            count(format!("/v1/packages?type={t}&$limit=0")).await > 0,
            "{t}"
        );
    }
    for st in ["active", "suspended", "expired", "cancelled"] {
        assert!(
            count(format!("/v1/purchases?status={st}&$limit=0")).await > 0,
            "{st}"
        );
    }
    for v in ["true", "false"] {
        assert!(
            count(format!("/v1/check-ins?valid={v}&$limit=0")).await > 0,
            "valid={v}"
        );
    }
    for st in ["queued", "delivered", "failed"] {
        assert!(
            count(format!("/v1/messages?status={st}&$limit=0")).await > 0,
            "{st}"
        );
    }
    for ms in [
        "activePackage",
        "introOffer",
        "suspendedMembership",
        "inactive",
    ] {
        assert!(
            count(format!("/v1/patients?membershipStatus={ms}&$limit=0")).await > 0,
            "{ms}"
        );
    }
    // Live mode has none of it.
    assert_eq!(
        h.get("/v1/appointments?$limit=0", &org.live.secret)
            .await
            .body["total"],
        0
    );
}
