//! Clinical records and memberships over HTTP: audiogram rules, packages,
//! purchases and the patient's membership status (one `patient.statusChanged`
//! per change), check-ins that use sessions under concurrency and mark
//! today's appointment arrived, expiry by the job, messages, and the third
//! reference document's six event kinds verified by a receiver.

use hub_tests::*;
use serde_json::Value;
use std::time::Duration;

const DAY: i64 = 86_400_000;

fn iso(ms: i64) -> String {
    hub::time::format_ms(ms)
}

struct Studio {
    key: String,
    clinic: String,
    patient: String,
}

async fn studio(s: &TestServer) -> Studio {
    let org = s.org("Studio", true).await;
    let key = org.test.secret.clone();
    let patient = new_patient(&s.http, &key, "Member One").await;
    let p = s.http.get(&format!("/v1/patients/{patient}"), &key).await;
    assert_eq!(p.body["membershipStatus"], "inactive");
    let clinic = p.body["primaryClinicId"].as_str().unwrap().to_string();
    Studio {
        key,
        clinic,
        patient,
    }
}

async fn package(s: &TestServer, key: &str, body: Value) -> String {
    let r = s.http.post("/v1/packages", key, &body).await;
    r.expect(201);
    r.id()
}

async fn status(s: &TestServer, st: &Studio) -> String {
    s.http
        .get(&format!("/v1/patients/{}", st.patient), &st.key)
        .await
        .body["membershipStatus"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn status_changes(s: &TestServer, st: &Studio) -> Vec<Value> {
    let r = s
        .http
        .get("/v1/events?type=patient.statusChanged&$limit=100", &st.key)
        .await;
    r.expect(200);
    // Oldest first (creation order).
    r.body["data"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audiograms_are_checked_point_by_point() {
    audiograms_on(&TestServer::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audiograms_are_checked_point_by_point_dynamodb() {
    audiograms_on(&dynamo::server().await).await;
}

async fn audiograms_on(s: &TestServer) {
    let st = studio(s).await;
    let pt = |f: i64, t: i64, c: &str| json!({"frequencyHz": f, "thresholdDb": t, "conduction": c});
    let right = json!([
        pt(500, 20, "air"),
        pt(1000, 25, "air"),
        pt(2000, 35, "air"),
        pt(4000, 50, "air"),
        pt(1000, 15, "bone")
    ]);
    let ok = s
        .http
        .post(
            "/v1/hearing-tests",
            &st.key,
            &json!({"patientId": st.patient, "type": "diagnostic", "right": right, "left": [pt(500, 10, "air")]}),
        )
        .await;
    ok.expect(201);
    assert_eq!(ok.body["pureToneAverage"]["right"], 32.5);
    assert!(
        ok.body["pureToneAverage"].get("left").is_none(),
        "not all four points"
    );
    assert!(ok.body["testedAt"].is_string());
    for (bad, field) in [
        (pt(550, 20, "air"), "right[3].frequencyHz"),
        (pt(500, 22, "air"), "right[3].thresholdDb"),
        (pt(500, 125, "air"), "right[3].thresholdDb"),
        (pt(500, -15, "air"), "right[3].thresholdDb"),
        (pt(500, 20, "wire"), "right[3].conduction"),
        (pt(1000, 20, "air"), "right[3]"),
    ] {
        let pts = json!([
            pt(250, 20, "air"),
            pt(1000, 25, "air"),
            pt(2000, 30, "bone"),
            bad
        ]);
        let r = s
            .http
            .post(
                "/v1/hearing-tests",
                &st.key,
                &json!({"patientId": st.patient, "type": "screening", "right": pts}),
            )
            .await;
        r.expect_error(400, "INVALID_PARAMETERS");
        assert_eq!(r.body["errors"][0]["field"], field, "{}", r.body);
    }
    let r = s
        .http
        .post(
            "/v1/hearing-tests",
            &st.key,
            &json!({"patientId": st.patient, "type": "eyes"}),
        )
        .await;
    assert_eq!(r.body["errors"][0]["field"], "type");
    // Recomputed on update.
    let u = s
        .http
        .patch(
            &format!("/v1/hearing-tests/{}", ok.id()),
            &st.key,
            &json!({"left": [pt(500, 10, "air"), pt(1000, 10, "air"), pt(2000, 20, "air"), pt(4000, 20, "air")]}),
        )
        .await;
    u.expect(200);
    assert_eq!(u.body["pureToneAverage"]["left"], 15.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_status_follows_purchases_one_event_per_change() {
    membership_on(&TestServer::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_status_follows_purchases_one_event_per_change_dynamodb() {
    membership_on(&dynamo::server().await).await;
}

async fn membership_on(s: &TestServer) {
    let st = studio(s).await;
    let h = &s.http;
    // Packages: their rules.
    let r = h
        .post(
            "/v1/packages",
            &st.key,
            &json!({"name": "Pack", "type": "sessionPack", "price": 100, "currency": "GBP"}),
        )
        .await;
    r.expect_error(400, "INVALID_PARAMETERS");
    assert_eq!(r.body["errors"][0]["field"], "sessions");
    let r = h
        .post("/v1/packages", &st.key, &json!({"name": "Gold", "type": "membership", "price": 100, "currency": "GBP", "sessions": 4}))
        .await;
    assert_eq!(r.body["errors"][0]["field"], "sessions");
    let intro = package(s, &st.key, json!({"name": "Intro", "type": "introOffer", "price": 0, "currency": "GBP", "sessions": 2, "durationDays": 14})).await;
    let gold = package(s, &st.key, json!({"name": "Gold", "type": "membership", "price": 9_900, "currency": "GBP", "durationDays": 30, "category": "Gym"})).await;
    let pack = package(s, &st.key, json!({"name": "One class", "type": "sessionPack", "price": 1_500, "currency": "GBP", "sessions": 1})).await;

    // An intro offer.
    let p1 = h
        .post(
            "/v1/purchases",
            &st.key,
            &json!({"patientId": st.patient, "packageId": intro}),
        )
        .await;
    p1.expect(201);
    assert_eq!(p1.body["sessionsRemaining"], 2);
    assert_eq!(p1.body["amount"], 0);
    assert_eq!(p1.body["status"], "active");
    assert_eq!(status(s, &st).await, "introOffer");
    // A membership on top: active package.
    let p2 = h
        .post(
            "/v1/purchases",
            &st.key,
            &json!({"patientId": st.patient, "packageId": gold}),
        )
        .await;
    p2.expect(201);
    assert_eq!(p2.body["amount"], 9_900);
    let exp = hub::time::parse_timestamp(p2.body["expiresAt"].as_str().unwrap()).unwrap();
    let bought = hub::time::parse_timestamp(p2.body["purchasedAt"].as_str().unwrap()).unwrap();
    assert_eq!(exp - bought, 30 * DAY);
    assert_eq!(status(s, &st).await, "activePackage");
    // Cancel the intro: still active (the membership); no event.
    let before = status_changes(s, &st).await.len();
    h.patch(
        &format!("/v1/purchases/{}", p1.id()),
        &st.key,
        &json!({"status": "cancelled"}),
    )
    .await
    .expect(200);
    assert_eq!(
        status_changes(s, &st).await.len(),
        before,
        "no change, no event"
    );
    // Suspend the membership: suspended.
    h.patch(
        &format!("/v1/purchases/{}", p2.id()),
        &st.key,
        &json!({"status": "suspended"}),
    )
    .await
    .expect(200);
    assert_eq!(status(s, &st).await, "suspendedMembership");
    // Only active ↔ suspended and cancelled; expired only by time.
    h.patch(
        &format!("/v1/purchases/{}", p2.id()),
        &st.key,
        &json!({"status": "expired"}),
    )
    .await
    .expect_error(409, "CONFLICT");
    h.patch(
        &format!("/v1/purchases/{}", p1.id()),
        &st.key,
        &json!({"status": "active"}),
    )
    .await
    .expect_error(409, "CONFLICT");
    h.patch(
        &format!("/v1/purchases/{}", p2.id()),
        &st.key,
        &json!({"amount": 1}),
    )
    .await
    .expect_error(409, "CONFLICT");
    h.patch(
        &format!("/v1/purchases/{}", p2.id()),
        &st.key,
        &json!({"status": "active"}),
    )
    .await
    .expect(200);
    assert_eq!(status(s, &st).await, "activePackage");
    h.patch(
        &format!("/v1/purchases/{}", p2.id()),
        &st.key,
        &json!({"status": "cancelled"}),
    )
    .await
    .expect(200);
    assert_eq!(status(s, &st).await, "inactive");
    // One session: the last one used makes the patient inactive.
    let p3 = h
        .post(
            "/v1/purchases",
            &st.key,
            &json!({"patientId": st.patient, "packageId": pack}),
        )
        .await;
    p3.expect(201);
    assert_eq!(status(s, &st).await, "activePackage");
    let c = h
        .post(
            "/v1/check-ins",
            &st.key,
            &json!({"patientId": st.patient, "clinicId": st.clinic}),
        )
        .await;
    c.expect(201);
    assert_eq!(c.body["valid"], true);
    assert_eq!(c.body["purchaseId"], p3.id().as_str());
    assert_eq!(
        c.body["messages"],
        json!(["valid check-in with alerts", "last session used"])
    );
    assert_eq!(status(s, &st).await, "inactive");
    // Exactly one statusChanged per change, in order, with what changed.
    let changes = status_changes(s, &st).await;
    let seq: Vec<(&str, &str)> = changes
        .iter()
        .map(|e| {
            (
                e["data"]["previousMembershipStatus"].as_str().unwrap(),
                e["data"]["membershipStatus"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seq,
        vec![
            ("inactive", "introOffer"),
            ("introOffer", "activePackage"),
            ("activePackage", "suspendedMembership"),
            ("suspendedMembership", "activePackage"),
            ("activePackage", "inactive"),
            ("inactive", "activePackage"),
            ("activePackage", "inactive"),
        ]
    );
    let with_pack = &changes[5]["data"];
    assert_eq!(with_pack["patient"]["id"], st.patient.as_str());
    assert_eq!(
        with_pack["activePackages"][0]["purchaseId"],
        p3.id().as_str()
    );
    // A purchase of a package past its days is not usable; an invalid check-in is recorded.
    let c = h
        .post(
            "/v1/check-ins",
            &st.key,
            &json!({"patientId": st.patient, "clinicId": st.clinic}),
        )
        .await;
    c.expect(201);
    assert_eq!(c.body["valid"], false);
    assert_eq!(
        c.body["messages"],
        json!(["invalid check-in – no valid membership"])
    );
    // Deleting the used check-in gives its session back.
    let first = h
        .get(
            &format!("/v1/check-ins?patientId={}&valid=true", st.patient),
            &st.key,
        )
        .await
        .ids()[0]
        .clone();
    h.delete(&format!("/v1/check-ins/{first}"), &st.key)
        .await
        .expect(200);
    let p = h.get(&format!("/v1/purchases/{}", p3.id()), &st.key).await;
    assert_eq!(p.body["sessionsRemaining"], 1);
    assert_eq!(status(s, &st).await, "activePackage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_check_ins_use_the_last_session_once() {
    check_ins_on(&TestServer::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_check_ins_use_the_last_session_once_dynamodb() {
    check_ins_on(&dynamo::server().await).await;
}

async fn check_ins_on(s: &TestServer) {
    let st = studio(s).await;
    let pack = package(s, &st.key, json!({"name": "Last one", "type": "sessionPack", "price": 1_500, "currency": "GBP", "sessions": 1})).await;
    let p = s
        .http
        .post(
            "/v1/purchases",
            &st.key,
            &json!({"patientId": st.patient, "packageId": pack}),
        )
        .await;
    p.expect(201);
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (h, key, body) = (
            s.http.clone(),
            st.key.clone(),
            json!({"patientId": st.patient, "clinicId": st.clinic}),
        );
        tasks.push(tokio::spawn(async move {
            h.post("/v1/check-ins", &key, &body).await
        }));
    }
    let mut valid = 0;
    for t in tasks {
        let r = t.await.unwrap();
        r.expect(201);
        if r.body["valid"] == true {
            valid += 1;
            assert_eq!(r.body["purchaseId"], p.id().as_str());
        }
    }
    assert_eq!(valid, 1, "exactly one check-in used the last session");
    let after = s
        .http
        .get(&format!("/v1/purchases/{}", p.id()), &st.key)
        .await;
    assert_eq!(after.body["sessionsRemaining"], 0);
    assert_eq!(status(s, &st).await, "inactive");
    assert_eq!(
        s.http.get("/v1/check-ins?$limit=0", &st.key).await.body["total"],
        10,
        "invalid check-ins are recorded too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_in_marks_todays_appointment_arrived() {
    arrival_on(&TestServer::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_in_marks_todays_appointment_arrived_dynamodb() {
    arrival_on(&dynamo::server().await).await;
}

async fn arrival_on(s: &TestServer) {
    let st = studio(s).await;
    let h = &s.http;
    let prc = h
        .post(
            "/v1/practitioners",
            &st.key,
            &json!({"fullName": "Coach", "clinicIds": [st.clinic]}),
        )
        .await
        .id();
    let aty = h
        .post(
            "/v1/appointment-types",
            &st.key,
            &json!({"name": "Class", "durationMinutes": 60, "price": 0, "currency": "GBP"}),
        )
        .await
        .id();
    // In an hour (same local day, unless it is nearly midnight: then now).
    let now = hub::time::now_ms();
    let start = if (now % DAY) < 22 * 3_600_000 {
        now + 3_600_000
    } else {
        now - 60_000
    };
    let a = h
        .post(
            "/v1/appointments",
            &st.key,
            &json!({"patientId": st.patient, "practitionerId": prc, "clinicId": st.clinic,
                    "appointmentTypeId": aty, "startAt": iso(start), "status": "confirmed"}),
        )
        .await;
    a.expect(201);
    let c = h
        .post(
            "/v1/check-ins",
            &st.key,
            &json!({"patientId": st.patient, "clinicId": st.clinic}),
        )
        .await;
    c.expect(201);
    assert_eq!(
        c.body["valid"], true,
        "an appointment that day makes it valid"
    );
    assert_eq!(c.body["appointmentId"], a.id().as_str());
    assert!(c.body.get("purchaseId").is_none());
    let after = h
        .get(&format!("/v1/appointments/{}", a.id()), &st.key)
        .await;
    assert_eq!(after.body["status"], "arrived");
    let ev = h.get("/v1/events?type=appointment.arrived", &st.key).await;
    assert_eq!(ev.body["data"][0]["data"]["id"], a.id().as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_expiry_job_expires_and_emits_the_change() {
    expiry_on(TestServer::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_expiry_job_expires_and_emits_the_change_dynamodb() {
    expiry_on(dynamo::server().await).await;
}

/// The job in another process over the same data directory (a second `hub
/// serve`) sees purchases this one sold, though no request reaches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_expiry_job_of_another_process_expires_purchases() {
    let s = TestServer::start().await;
    let other = s.another_process_store();
    expiry_with(s, other).await;
}

async fn expiry_on(s: TestServer) {
    let store = s.store.clone();
    expiry_with(s, store).await;
}

async fn expiry_with(s: TestServer, job_store: hub::store::DynStore) {
    let job = tokio::spawn(hub::resources::purchases::expiry_loop(
        job_store,
        Duration::from_millis(100),
    ));
    let st = studio(&s).await;
    let gold = package(&s, &st.key, json!({"name": "Day pass", "type": "membership", "price": 500, "currency": "GBP", "durationDays": 1})).await;
    // Bought long ago, ending in two seconds.
    let now = hub::time::now_ms();
    let p = s
        .http
        .post(
            "/v1/purchases",
            &st.key,
            &json!({"patientId": st.patient, "packageId": gold, "purchasedAt": iso(now - DAY), "expiresAt": iso(now + 2_000)}),
        )
        .await;
    p.expect(201);
    assert_eq!(status(&s, &st).await, "activePackage");
    // Check-ins never use it past its expiresAt, even before the job runs.
    let mut expired = false;
    for _ in 0..200 {
        let g = s
            .http
            .get(&format!("/v1/purchases/{}", p.id()), &st.key)
            .await;
        if g.body["status"] == "expired" {
            expired = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    job.abort();
    assert!(expired, "the job expired the purchase");
    assert_eq!(status(&s, &st).await, "inactive");
    let changes = status_changes(&s, &st).await;
    assert_eq!(changes.len(), 2);
    assert_eq!(
        changes[1]["data"]["previousMembershipStatus"],
        "activePackage"
    );
    assert_eq!(changes[1]["data"]["membershipStatus"], "inactive");
    // The user cannot undo it.
    s.http
        .patch(
            &format!("/v1/purchases/{}", p.id()),
            &st.key,
            &json!({"status": "active"}),
        )
        .await
        .expect_error(409, "CONFLICT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_recorded_and_handed_off() {
    let s = TestServer::start().await;
    let st = studio(&s).await;
    let h = &s.http;
    let field = |r: &Resp| {
        r.body["errors"][0]["field"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let sms = h
        .post("/v1/messages", &st.key, &json!({"channel": "sms", "to": "+447700900123", "body": "See you at 10", "patientId": st.patient}))
        .await;
    sms.expect(201);
    assert_eq!(sms.body["status"], "queued");
    let r = h
        .post(
            "/v1/messages",
            &st.key,
            &json!({"channel": "sms", "to": "07700 900123", "body": "x"}),
        )
        .await;
    assert_eq!(field(&r), "to");
    let r = h
        .post(
            "/v1/messages",
            &st.key,
            &json!({"channel": "sms", "to": "+447700900123", "body": "x".repeat(1601)}),
        )
        .await;
    assert_eq!(field(&r), "body");
    let r = h
        .post(
            "/v1/messages",
            &st.key,
            &json!({"channel": "email", "to": "a@example.com", "body": "<p>x</p>"}),
        )
        .await;
    assert_eq!(field(&r), "subject");
    let email = h
        .post("/v1/messages", &st.key, &json!({"channel": "email", "to": "a@example.com", "subject": "Your results", "body": format!("<p>{}</p>", "y".repeat(200_000))}))
        .await;
    email.expect(201);
    let outbound = h
        .get("/v1/events?type=message.outbound&$limit=0", &st.key)
        .await;
    assert_eq!(outbound.body["total"], 2);
    let url = format!("/v1/messages/{}", sms.id());
    h.patch(&url, &st.key, &json!({"status": "sent"}))
        .await
        .expect(200);
    h.patch(&url, &st.key, &json!({"status": "queued"}))
        .await
        .expect_error(409, "CONFLICT");
    h.patch(&url, &st.key, &json!({"body": "changed"}))
        .await
        .expect_error(409, "CONFLICT");
    h.patch(&url, &st.key, &json!({"status": "delivered"}))
        .await
        .expect(200);
    h.patch(&url, &st.key, &json!({"status": "failed"}))
        .await
        .expect_error(409, "CONFLICT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_studio_documents_six_event_kinds_arrive_verified() {
    let rx = Receiver::start();
    let s = TestServer::with_fast_webhooks().await;
    let org = s.org("Studio hooks", true).await;
    let key = org.test.secret.clone();
    let h = &s.http;
    let ep = h
        .post(
            "/v1/webhook-endpoints",
            &key,
            &json!({"url": format!("{}/studio", rx.base),
                    "enabledEvents": ["patient.created", "patient.updated", "patient.statusChanged",
                                      "package.purchased", "checkIn.created", "message.outbound"]}),
        )
        .await;
    ep.expect(201);
    rx.secrets("/studio", &[ep.body["secret"].as_str().unwrap()])
        .await;
    let (clinic, st, r) = reference_data(h, &key).await;
    let p = h
        .post(
            "/v1/patients",
            &key,
            &json!({"fullName": "Account Created", "primaryPhoneNumber": "07700 900123", "tracking": {"source": "studio"},
                    "primaryClinicId": clinic, "statusId": st, "referralId": r}),
        )
        .await
        .id();
    h.patch(
        &format!("/v1/patients/{p}"),
        &key,
        &json!({"notes": "Client updated"}),
    )
    .await
    .expect(200);
    let pack = package(&s, &key, json!({"name": "5 classes", "type": "sessionPack", "price": 5_000, "currency": "GBP", "sessions": 5})).await;
    h.post(
        "/v1/purchases",
        &key,
        &json!({"patientId": p, "packageId": pack}),
    )
    .await
    .expect(201);
    h.post(
        "/v1/check-ins",
        &key,
        &json!({"patientId": p, "clinicId": clinic}),
    )
    .await
    .expect(201);
    h.post(
        "/v1/messages",
        &key,
        &json!({"channel": "sms", "to": "+447700900123", "body": "Welcome!", "patientId": p}),
    )
    .await
    .expect(201);
    let kinds = [
        "patient.created",
        "patient.updated",
        "patient.statusChanged",
        "package.purchased",
        "checkIn.created",
        "message.outbound",
    ];
    let log = rx
        .wait("the six kinds", |l| {
            kinds.iter().all(|k| l.iter().any(|e| e["type"] == *k))
        })
        .await;
    for e in &log {
        assert!(
            kinds.contains(&e["type"].as_str().unwrap()),
            "only subscribed kinds: {e}"
        );
        assert_eq!(e["stripe"], json!([true]), "{e}");
        assert_eq!(e["standard"], json!([true]), "{e}");
    }
    let purchased = log
        .iter()
        .find(|e| e["type"] == "package.purchased")
        .unwrap();
    assert_eq!(purchased["body"]["data"]["packageName"], "5 classes");
    assert_eq!(
        purchased["body"]["data"]["patient"]["fullName"],
        "Account Created"
    );
    let changed = log
        .iter()
        .find(|e| e["type"] == "patient.statusChanged")
        .unwrap();
    assert_eq!(changed["body"]["data"]["membershipStatus"], "activePackage");
    let checkin = log.iter().find(|e| e["type"] == "checkIn.created").unwrap();
    assert_eq!(checkin["body"]["data"]["valid"], true);
}
