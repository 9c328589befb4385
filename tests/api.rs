//! The API over HTTP against the real server on a random port.

use bytes::Bytes;
use hub::api::Config;
use hub_tests::*;
use serde_json::Value;

#[both_stores]
async fn health_and_openapi_need_no_key() {
    let s = TestServer::start().await;
    let h = s.http.send("GET", "/health", None, None, &[]).await;
    h.expect(200);
    assert_eq!(h.body["status"], "ok");
    let doc = s.http.send("GET", "/openapi.json", None, None, &[]).await;
    doc.expect(200);
    assert_eq!(doc.body["openapi"], "3.1.0");
    // Every route of the table is in the document, with its method (but
    // the dashboard's and the reference's static files, which are no API
    // operation).
    for route in hub::api::routes() {
        if route.op.is_static() {
            assert!(doc.body["paths"][route.path].is_null(), "{}", route.path);
            continue;
        }
        let op = &doc.body["paths"][route.path][route.method.as_str().to_ascii_lowercase()];
        assert_eq!(
            op["operationId"], route.name,
            "{} {}",
            route.method, route.path
        );
    }
    assert!(doc.body["components"]["schemas"]["Patient"]["properties"]["fullName"].is_object());
    assert!(
        doc.body["components"]["schemas"]["PatientCreate"]["properties"]["referralName"]
            .is_object()
    );
}

/// Every CRUD route of every resource, through one lifecycle each.
#[both_stores]
async fn every_resource_route_works() {
    let s = TestServer::start().await;
    let org = s.org("Crud Clinic", true).await;
    let key = org.test.secret.as_str();
    let (clinic, status, referral) = reference_data(&s.http, key).await;
    let cases: Vec<(&str, Value, Value)> = vec![
        (
            "clinics",
            json!({"name": "York", "address": {"line1": "1 High St", "city": "York", "postcode": "YO1 7HH", "country": "gbr"}, "timeZone": "Europe/London", "phone": "+441904000000", "email": "york@example.com"}),
            json!({"name": "York Minster"}),
        ),
        (
            "practitioners",
            json!({"fullName": "Dr Ada Lovelace", "email": "ada@example.com", "clinicIds": [clinic], "role": "audiologist"}),
            json!({"role": "ENT consultant"}),
        ),
        (
            "referral-sources",
            json!({"name": "Facebook"}),
            json!({"name": "Instagram"}),
        ),
        (
            "patient-statuses",
            json!({"name": "Lapsed", "order": 9}),
            json!({"order": 10}),
        ),
        (
            "patients",
            json!({"fullName": "John Smith", "primaryPhoneNumber": "07123456789", "primaryClinicId": clinic, "statusId": status, "referralId": referral, "tracking": {}, "dob": "1985-07-12", "age": 41}),
            json!({"notes": "Prefers mornings"}),
        ),
    ];
    for (path, create, patch) in cases {
        let c = s.http.post(&format!("/v1/{path}"), key, &create).await;
        c.expect(201);
        let id = c.id();
        assert_eq!(c.body["version"], 1, "{path}");
        assert_eq!(c.header("etag"), Some("\"1\""));
        assert_eq!(c.body["livemode"], false);
        assert!(
            is_ms_timestamp(&c.body["createdAt"]),
            "{}",
            c.body["createdAt"]
        );
        assert!(is_ms_timestamp(&c.body["updatedAt"]));
        let g = s.http.get(&format!("/v1/{path}/{id}"), key).await;
        g.expect(200);
        assert_eq!(g.body, c.body, "{path}: get returns what create returned");
        let l = s.http.get(&format!("/v1/{path}"), key).await;
        l.expect(200);
        assert!(l.ids().contains(&id), "{path}: list shows the new object");
        let u = s.http.patch(&format!("/v1/{path}/{id}"), key, &patch).await;
        u.expect(200);
        assert_eq!(u.body["version"], 2);
        for (k, v) in patch.as_object().unwrap() {
            assert_eq!(&u.body[k], v, "{path}.{k} updated");
        }
        assert_eq!(u.body["createdAt"], c.body["createdAt"]);
        let d = s.http.delete(&format!("/v1/{path}/{id}"), key).await;
        d.expect(200);
        assert_eq!(d.body["id"], id.as_str());
        s.http
            .get(&format!("/v1/{path}/{id}"), key)
            .await
            .expect_error(404, "NOT_FOUND");
        s.http
            .delete(&format!("/v1/{path}/{id}"), key)
            .await
            .expect_error(404, "NOT_FOUND");
    }
}

#[both_stores]
async fn patient_field_groups_resolve_names_and_validate() {
    let s = TestServer::start().await;
    let org = s.org("Groups", true).await;
    let key = org.test.secret.as_str();
    let (clinic, status, referral) = reference_data(&s.http, key).await;
    // Names resolve case-insensitively to ids.
    let p = s
        .http
        .post(
            "/v1/patients",
            key,
            &patient_body("Ann", "LEEDS", "active", "gOOgle"),
        )
        .await;
    p.expect(201);
    assert_eq!(p.body["primaryClinicId"], clinic.as_str());
    assert_eq!(p.body["statusId"], status.as_str());
    assert_eq!(p.body["referralId"], referral.as_str());
    assert!(p.body.get("primaryClinicName").is_none());
    assert_eq!(p.body["membershipStatus"], "inactive");
    // Unknown names list the valid ones.
    let bad = s
        .http
        .post(
            "/v1/patients",
            key,
            &patient_body("Ann", "Leeds", "Nope", "Google"),
        )
        .await;
    bad.expect_error(400, "INVALID_PARAMETERS");
    let err = &bad.body["errors"][0];
    assert_eq!(err["field"], "statusName");
    assert!(err["message"].as_str().unwrap().contains("Active"), "{err}");
    // Both forms, or neither: 400 naming the field.
    let mut both = patient_body("Ann", "Leeds", "Active", "Google");
    both["referralId"] = json!(referral);
    let r = s.http.post("/v1/patients", key, &both).await;
    r.expect_error(400, "INVALID_PARAMETERS");
    assert_eq!(r.body["errors"][0]["field"], "referralName");
    let mut neither = patient_body("Ann", "Leeds", "Active", "Google");
    neither.as_object_mut().unwrap().remove("referralName");
    let r = s.http.post("/v1/patients", key, &neither).await;
    assert_eq!(r.body["errors"][0]["field"], "referralId");
    // An id of the right shape that does not exist.
    let mut ghost = patient_body("Ann", "Leeds", "Active", "Google");
    ghost.as_object_mut().unwrap().remove("primaryClinicName");
    ghost["primaryClinicId"] = json!(hub::ids::new_id("cli"));
    let r = s.http.post("/v1/patients", key, &ghost).await;
    r.expect_error(400, "INVALID_PARAMETERS");
    assert_eq!(r.body["errors"][0]["field"], "primaryClinicId");
    // PATCH with the other form replaces the stored id.
    let s2 = s
        .http
        .post("/v1/patient-statuses", key, &json!({"name": "Lapsed"}))
        .await
        .id();
    let u = s
        .http
        .patch(
            &format!("/v1/patients/{}", p.id()),
            key,
            &json!({"statusName": "lapsed"}),
        )
        .await;
    u.expect(200);
    assert_eq!(u.body["statusId"], s2.as_str());
    // Nothing was stored by the refused requests.
    let all = s.http.get("/v1/patients?$total=true", key).await;
    assert_eq!(all.body["total"], 1);
}

#[both_stores]
async fn validation_names_every_bad_field_and_stores_nothing() {
    let s = TestServer::start().await;
    let org = s.org("Validation", true).await;
    let key = org.test.secret.as_str();
    reference_data(&s.http, key).await;
    let mut body = patient_body("", "Leeds", "Active", "Google");
    body["primaryPhoneNumber"] = json!("call me");
    body["emailAddress"] = json!("not-an-email");
    body["dob"] = json!("1985-02-30");
    body["age"] = json!(-1);
    body["address"] = json!({"country": "XXX"});
    body["tracking"] = json!("web");
    body["metadata"] = json!({"k": 5});
    body["colour"] = json!("blue");
    body["id"] = json!("pat_mine");
    let r = s.http.post("/v1/patients", key, &body).await;
    r.expect_error(400, "INVALID_PARAMETERS");
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for f in [
        "fullName",
        "primaryPhoneNumber",
        "emailAddress",
        "dob",
        "age",
        "address.country",
        "tracking",
        "metadata.k",
        "colour",
        "id",
    ] {
        assert!(fields.contains(&f), "{f} not reported in {fields:?}");
    }
    // Required tracking.
    let mut no_tracking = patient_body("Ann", "Leeds", "Active", "Google");
    no_tracking.as_object_mut().unwrap().remove("tracking");
    let r = s.http.post("/v1/patients", key, &no_tracking).await;
    assert_eq!(r.body["errors"][0]["field"], "tracking");
    // Bad time zone and country on a clinic.
    let r = s
        .http
        .post(
            "/v1/clinics",
            key,
            &json!({"name": "X", "timeZone": "Mars/Base", "address": {"country": "UK"}}),
        )
        .await;
    r.expect_error(400, "INVALID_PARAMETERS");
    assert_eq!(r.body["errors"].as_array().unwrap().len(), 2);
    // Metadata bounds.
    let many: serde_json::Map<String, Value> =
        (0..51).map(|i| (format!("k{i}"), json!("v"))).collect();
    let r = s
        .http
        .post("/v1/clinics", key, &json!({"name": "X", "metadata": many}))
        .await;
    r.expect_error(400, "INVALID_PARAMETERS");
    // Not an object.
    s.http
        .post("/v1/clinics", key, &json!([1, 2]))
        .await
        .expect_error(400, "INVALID_PARAMETERS");
    let all = s.http.get("/v1/patients?$limit=0", key).await;
    assert_eq!(all.body["total"], 0);
    let clinics = s.http.get("/v1/clinics?$limit=0", key).await;
    assert_eq!(clinics.body["total"], 1);
}

#[both_stores]
async fn every_error_type_has_the_envelope() {
    let s = TestServer::start().await;
    let org = s.org("Errors", true).await;
    let key = org.test.secret.as_str();
    // 404 unknown route, 405 wrong method (with Allow).
    s.http
        .get("/v1/nothing", key)
        .await
        .expect_error(404, "NOT_FOUND");
    s.http
        .send("GET", "/nowhere", None, None, &[])
        .await
        .expect_error(404, "NOT_FOUND");
    let r = s
        .http
        .send("PUT", "/v1/patients", Some(key), None, &[])
        .await;
    r.expect_error(405, "METHOD_NOT_SUPPORTED");
    assert!(r.header("allow").unwrap().contains("POST"));
    // 401: none, malformed, unknown.
    s.http
        .send("GET", "/v1/patients", None, None, &[])
        .await
        .expect_error(401, "AUTH_ERROR");
    s.http
        .send(
            "GET",
            "/v1/patients",
            None,
            None,
            &[("authorization", "Basic abc")],
        )
        .await
        .expect_error(401, "AUTH_ERROR");
    s.http
        .get("/v1/patients", "sk_test_nope")
        .await
        .expect_error(401, "AUTH_ERROR");
    s.http
        .get("/v1/patients", &format!("sk_test_{}", "A".repeat(40)))
        .await
        .expect_error(401, "AUTH_ERROR");
    // 400 malformed JSON, 415 content type, 413 body too large.
    s.http
        .send(
            "POST",
            "/v1/clinics",
            Some(key),
            Some(Bytes::from_static(b"{\"name\": ")),
            &[],
        )
        .await
        .expect_error(400, "INVALID_PARAMETERS");
    s.http
        .send(
            "POST",
            "/v1/clinics",
            Some(key),
            Some(Bytes::from_static(b"name=x")),
            &[("content-type", "application/x-www-form-urlencoded")],
        )
        .await
        .expect_error(415, "INVALID_CONTENT_TYPE");
    s.http
        .send(
            "POST",
            "/v1/clinics",
            Some(key),
            Some(Bytes::from_static(b"{}")),
            &[("content-type", "text/plain")],
        )
        .await
        .expect_error(415, "INVALID_CONTENT_TYPE");
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(1024 * 1024 + 10));
    s.http
        .send(
            "POST",
            "/v1/clinics",
            Some(key),
            Some(Bytes::from(big)),
            &[],
        )
        .await
        .expect_error(413, "PAYLOAD_TOO_LARGE");
    // 409 unique name (case-insensitive), 412 If-Match.
    s.http
        .post("/v1/referral-sources", key, &json!({"name": "Google"}))
        .await
        .expect(201);
    let dup = s
        .http
        .post("/v1/referral-sources", key, &json!({"name": "GOOGLE"}))
        .await;
    dup.expect_error(409, "CONFLICT");
    assert_eq!(dup.body["errors"][0]["field"], "name");
    let c = s.http.post("/v1/clinics", key, &json!({"name": "A"})).await;
    let r = s
        .http
        .send(
            "PATCH",
            &format!("/v1/clinics/{}", c.id()),
            Some(key),
            Some(Bytes::from_static(b"{\"name\":\"B\"}")),
            &[("if-match", "\"7\"")],
        )
        .await;
    r.expect_error(412, "PRECONDITION_FAILED");
    // 403 publishable key beyond its rights.
    s.http
        .get("/v1/patients", &org.test.publishable)
        .await
        .expect_error(403, "PERMISSIONS_ERROR");
    // 400 query errors name the culprit.
    let r = s.http.get("/v1/patients?shoeSize=9", key).await;
    r.expect_error(400, "INVALID_PARAMETERS");
    assert!(r.body["message"].as_str().unwrap().contains("shoeSize"));
    let r = s.http.get("/v1/patients?age[$near]=3", key).await;
    r.expect_error(400, "INVALID_PARAMETERS");
    assert!(r.body["message"].as_str().unwrap().contains("$near"));
    s.http
        .get("/v1/patients?age=old", key)
        .await
        .expect_error(400, "INVALID_PARAMETERS");
    s.http
        .get("/v1/patients?$limit=-1", key)
        .await
        .expect_error(400, "INVALID_PARAMETERS");
    s.http
        .get("/v1/patients?$sort[age]=up", key)
        .await
        .expect_error(400, "INVALID_PARAMETERS");
    // The error kinds all have distinct names and the documented statuses.
    for k in hub::error::ErrorKind::ALL {
        assert!(k.status() >= 400);
    }
}

#[both_stores]
async fn live_requests_over_http_need_tls_when_required() {
    let s = TestServer::start_with(Config {
        require_tls: true,
        ..Default::default()
    })
    .await;
    let org = s.org("Tls", true).await;
    s.http
        .get("/v1/patients", &org.live.secret)
        .await
        .expect_error(426, "SECURITY_ERROR");
    // Behind a TLS-terminating proxy, and in test mode, it is accepted.
    s.http
        .send(
            "GET",
            "/v1/patients",
            Some(&org.live.secret),
            None,
            &[("x-forwarded-proto", "https")],
        )
        .await
        .expect(200);
    s.http
        .get("/v1/patients", &org.test.secret)
        .await
        .expect(200);
}

#[both_stores]
async fn modes_and_organizations_are_isolated() {
    let s = TestServer::start().await;
    let a = s.org("A", true).await;
    let b = s.org("B", true).await;
    reference_data(&s.http, &a.test.secret).await;
    let p = s
        .http
        .post(
            "/v1/patients",
            &a.test.secret,
            &patient_body("Ann", "Leeds", "Active", "Google"),
        )
        .await;
    p.expect(201);
    let path = format!("/v1/patients/{}", p.id());
    for other in [&a.live.secret, &b.test.secret, &b.live.secret] {
        s.http
            .get(&path, other)
            .await
            .expect_error(404, "NOT_FOUND");
        s.http
            .patch(&path, other, &json!({"notes": "x"}))
            .await
            .expect_error(404, "NOT_FOUND");
        s.http
            .delete(&path, other)
            .await
            .expect_error(404, "NOT_FOUND");
        let l = s.http.get("/v1/patients?$total=true", other).await;
        l.expect(200);
        assert_eq!(l.body["total"], 0);
        let l = s.http.get("/v1/clinics", other).await;
        assert!(l.ids().is_empty());
    }
    // A live object is refused as a reference from test mode.
    let live_clinic = s
        .http
        .post("/v1/clinics", &a.live.secret, &json!({"name": "Live"}))
        .await
        .id();
    let mut body = patient_body("Ann", "Leeds", "Active", "Google");
    body.as_object_mut().unwrap().remove("primaryClinicName");
    body["primaryClinicId"] = json!(live_clinic);
    s.http
        .post("/v1/patients", &a.test.secret, &body)
        .await
        .expect_error(400, "INVALID_PARAMETERS");
    // And names resolve only within the tenant.
    s.http
        .post(
            "/v1/patients",
            &b.test.secret,
            &patient_body("Bob", "Leeds", "Active", "Google"),
        )
        .await
        .expect_error(400, "INVALID_PARAMETERS");
    assert_eq!(s.http.get(&path, &a.test.secret).await.body["version"], 1);
}

/// A publishable key (a web form, the booking widget: docs/widget.md) may
/// leave out the status and the referral source, which it cannot list: the
/// first pipeline stage and the `Website` source. Secret keys may not.
#[both_stores]
async fn publishable_patient_creates_default_status_and_referral() {
    let s = TestServer::start().await;
    let org = s.org("Defaults", true).await;
    let (sk, pk) = (org.test.secret.as_str(), org.test.publishable.as_str());
    let (clinic, active, _google) = reference_data(&s.http, sk).await;
    let visitor = json!({"fullName": "Web Visitor", "primaryPhoneNumber": "07700 900123",
        "emailAddress": "web@example.com", "primaryClinicId": clinic, "tracking": {}});
    // No `Website` source yet: a 400 that says what is missing.
    let r = s.http.post("/v1/patients", pk, &visitor).await;
    r.expect_error(400, "INVALID_PARAMETERS");
    assert_eq!(r.body["errors"].as_array().unwrap().len(), 1, "{}", r.body);
    assert_eq!(r.body["errors"][0]["field"], "referralId");
    assert!(r.body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("`Website`"));
    let website = s
        .http
        .post("/v1/referral-sources", sk, &json!({"name": "website"}))
        .await;
    website.expect(201);
    let first = s
        .http
        .post(
            "/v1/patient-statuses",
            sk,
            &json!({"name": "New enquiry", "order": 0}),
        )
        .await;
    first.expect(201);
    let p = s.http.post("/v1/patients", pk, &visitor).await;
    p.expect(201);
    assert_eq!(p.body["statusId"], first.id().as_str());
    assert_eq!(p.body["referralId"], website.id().as_str());
    // What the key gives wins.
    let mut named = visitor.clone();
    named["statusName"] = json!("active");
    named["referralName"] = json!("Google");
    let p = s.http.post("/v1/patients", pk, &named).await;
    p.expect(201);
    assert_eq!(p.body["statusId"], active.as_str());
    assert_ne!(p.body["referralId"], website.id().as_str());
    // A secret key still gives one of each pair.
    let r = s.http.post("/v1/patients", sk, &visitor).await;
    r.expect_error(400, "INVALID_PARAMETERS");
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["referralId", "statusId"]);
}

#[both_stores]
async fn publishable_keys_only_create_patients_and_work_from_browsers() {
    let s = TestServer::start().await;
    let org = s.org("Widget", true).await;
    reference_data(&s.http, &org.test.secret).await;
    let pk = org.test.publishable.as_str();
    let origin = [("origin", "https://clinic.example.com")];
    let body = Bytes::from(patient_body("Web Form", "Leeds", "Active", "Google").to_string());
    let r = s
        .http
        .send("POST", "/v1/patients", Some(pk), Some(body), &origin)
        .await;
    r.expect(201);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        r.headers
            .get_all("access-control-allow-origin")
            .iter()
            .count(),
        1
    );
    let id = r.id();
    for (method, path) in [
        ("GET", format!("/v1/patients/{id}")),
        ("GET", "/v1/patients".into()),
        ("DELETE", format!("/v1/patients/{id}")),
        ("GET", "/v1/clinics".into()),
    ] {
        let r = s.http.send(method, &path, Some(pk), None, &origin).await;
        r.expect_error(403, "PERMISSIONS_ERROR");
        assert_eq!(
            r.header("access-control-allow-origin"),
            Some("*"),
            "errors readable by the browser"
        );
    }
    s.http
        .post("/v1/clinics", pk, &json!({"name": "X"}))
        .await
        .expect_error(403, "PERMISSIONS_ERROR");
    s.http
        .patch(&format!("/v1/patients/{id}"), pk, &json!({"notes": "x"}))
        .await
        .expect_error(403, "PERMISSIONS_ERROR");
    // Preflight.
    let pre = s
        .http
        .send(
            "OPTIONS",
            "/v1/patients",
            None,
            None,
            &[
                ("origin", "https://clinic.example.com"),
                ("access-control-request-method", "POST"),
            ],
        )
        .await;
    assert_eq!(pre.status, 204);
    for name in [
        "access-control-allow-origin",
        "access-control-allow-methods",
        "access-control-allow-headers",
    ] {
        assert_eq!(
            pre.headers.get_all(name).iter().count(),
            1,
            "{name} exactly once (a browser refuses multiple values)"
        );
    }
    assert_eq!(pre.header("access-control-allow-origin"), Some("*"));
    assert!(pre
        .header("access-control-allow-headers")
        .unwrap()
        .contains("Authorization"));
    // Secret keys get no CORS grant: they must not be used from browsers.
    let r = s
        .http
        .send("GET", "/v1/patients", Some(&org.test.secret), None, &origin)
        .await;
    r.expect(200);
    assert!(r.header("access-control-allow-origin").is_none());
}

#[both_stores]
async fn concurrent_patches_lose_no_update() {
    let s = TestServer::start().await;
    let org = s.org("Race", true).await;
    let key = org.test.secret.clone();
    let c = s
        .http
        .post("/v1/clinics", &key, &json!({"name": "Busy"}))
        .await
        .id();
    let n = 40;
    let mut tasks = Vec::new();
    for i in 0..n {
        let http = s.http.clone();
        let key = key.clone();
        let path = format!("/v1/clinics/{c}");
        tasks.push(tokio::spawn(async move {
            http.patch(
                &path,
                &key,
                &json!({"metadata": {format!("k{i}"): format!("v{i}")}}),
            )
            .await
        }));
    }
    for t in tasks {
        t.await.unwrap().expect(200);
    }
    let g = s.http.get(&format!("/v1/clinics/{c}"), &key).await;
    let meta = g.body["metadata"].as_object().unwrap();
    assert_eq!(meta.len(), n, "every concurrent PATCH kept: {meta:?}");
    assert_eq!(g.body["version"], n as u64 + 1);
    assert_eq!(g.header("etag"), Some(format!("\"{}\"", n + 1).as_str()));
}

/// A delete racing creates of objects that point at it (messages refer to
/// their patient, `restrict`): either the delete wins and every racing
/// create is refused, or a create wins and the delete answers 409 — never a
/// deleted patient with messages pointing at it.
#[both_stores]
async fn references_stay_whole_when_deletes_race_creates() {
    let s = TestServer::start().await;
    let org = s.org("Orphans", true).await;
    let key = org.test.secret.clone();
    let (clinic, status, referral) = reference_data(&s.http, &key).await;
    let (mut deleted, mut refused) = (0, 0);
    for round in 0..24 {
        let p = s
            .http
            .post(
                "/v1/patients",
                &key,
                &json!({"fullName": format!("P {round}"), "primaryPhoneNumber": "07700 900123",
                        "tracking": {}, "primaryClinicId": clinic, "statusId": status,
                        "referralId": referral}),
            )
            .await
            .id();
        let mut tasks = Vec::new();
        for i in 0..4 {
            let http = s.http.clone();
            let (key, p) = (key.clone(), p.clone());
            // Staggered differently each round, so the delete runs before,
            // between and after the creates (which way each round goes
            // changes nothing in what must hold).
            let wait = std::time::Duration::from_millis((round % 5) * 6 * (i + 1));
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                let body = json!({"channel": "sms", "to": "+447700900123",
                    "body": format!("hello {i}"), "patientId": p});
                http.post("/v1/messages", &key, &body).await.status
            }));
        }
        let del = {
            let http = s.http.clone();
            let (key, p) = (key.clone(), p.clone());
            let wait = std::time::Duration::from_millis((round % 4) * 4);
            tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                http.delete(&format!("/v1/patients/{p}"), &key).await.status
            })
        };
        let mut created = 0;
        for t in tasks {
            match t.await.unwrap() {
                201 => created += 1,
                400 | 404 | 409 | 422 => {}
                other => panic!("a racing create answered {other}"),
            }
        }
        let messages = s
            .http
            .get(&format!("/v1/messages?patientId={p}&$limit=0"), &key)
            .await
            .expect(200)
            .body["total"]
            .as_u64()
            .unwrap();
        assert_eq!(messages, created, "round {round}: every 201 is stored");
        match del.await.unwrap() {
            200 => {
                deleted += 1;
                assert_eq!(
                    messages, 0,
                    "round {round}: a deleted patient has {messages} messages"
                );
                s.http
                    .get(&format!("/v1/patients/{p}"), &key)
                    .await
                    .expect(404);
            }
            409 => {
                refused += 1;
                assert!(messages > 0, "round {round}: 409 with nothing referring");
                s.http
                    .get(&format!("/v1/patients/{p}"), &key)
                    .await
                    .expect(200);
            }
            other => panic!("the racing delete answered {other}"),
        }
    }
    eprintln!("deleted {deleted}, refused {refused}");
    assert_eq!(deleted + refused, 24);
}

#[both_stores]
async fn if_match_makes_writes_conditional() {
    let s = TestServer::start().await;
    let org = s.org("Etag", true).await;
    let key = org.test.secret.as_str();
    let c = s.http.post("/v1/clinics", key, &json!({"name": "A"})).await;
    let path = format!("/v1/clinics/{}", c.id());
    let etag = c.header("etag").unwrap().to_string();
    let body = || Some(Bytes::from_static(b"{\"name\":\"B\"}"));
    let ok = s
        .http
        .send("PATCH", &path, Some(key), body(), &[("if-match", &etag)])
        .await;
    ok.expect(200);
    // The old ETag no longer matches: 412, and nothing changes.
    let stale = s
        .http
        .send(
            "PATCH",
            &path,
            Some(key),
            Some(Bytes::from_static(b"{\"name\":\"C\"}")),
            &[("if-match", &etag)],
        )
        .await;
    stale.expect_error(412, "PRECONDITION_FAILED");
    assert_eq!(s.http.get(&path, key).await.body["name"], "B");
    s.http
        .send("DELETE", &path, Some(key), None, &[("if-match", &etag)])
        .await
        .expect_error(412, "PRECONDITION_FAILED");
    let cur = ok.header("etag").unwrap().to_string();
    s.http
        .send("DELETE", &path, Some(key), None, &[("if-match", &cur)])
        .await
        .expect(200);
    // A PATCH that changes nothing keeps the version.
    let c = s
        .http
        .post("/v1/clinics", key, &json!({"name": "Same"}))
        .await;
    let u = s
        .http
        .patch(
            &format!("/v1/clinics/{}", c.id()),
            key,
            &json!({"name": "Same"}),
        )
        .await;
    assert_eq!(u.body["version"], 1);
}

#[both_stores]
async fn lists_filter_sort_page_and_count() {
    let s = TestServer::start().await;
    let org = s.org("Lists", true).await;
    let key = org.test.secret.as_str();
    reference_data(&s.http, key).await;
    let people = [
        ("Cara", 30, "Leeds"),
        ("Abe", 50, "York"),
        ("Bea", 30, "Leeds"),
        ("Dan", 20, "Leeds"),
        ("Eve", 40, "Hull"),
    ];
    let mut ids = Vec::new();
    for (name, age, city) in people {
        let mut b = patient_body(name, "Leeds", "Active", "Google");
        b["age"] = json!(age);
        b["address"] = json!({"city": city});
        ids.push(s.http.post("/v1/patients", key, &b).await.id());
    }
    let names = |r: &Resp| -> Vec<String> {
        r.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["fullName"].as_str().unwrap().to_string())
            .collect()
    };
    // Creation order by default.
    let all = s.http.get("/v1/patients", key).await;
    assert_eq!(all.ids(), ids);
    assert_eq!(all.body["skip"], 0);
    assert_eq!(all.body["limit"], 10);
    assert!(all.body.get("total").is_none(), "total only when asked");
    // Equality (coerced by type), dotted path, sort, ties in creation order.
    let r = s
        .http
        .get("/v1/patients?address.city=Leeds&$sort[age]=1", key)
        .await;
    assert_eq!(names(&r), ["Dan", "Cara", "Bea"]);
    let r = s.http.get("/v1/patients?age=30&$total=true", key).await;
    assert_eq!(names(&r), ["Cara", "Bea"]);
    assert_eq!(r.body["total"], 2);
    // Two sort keys, descending.
    let r = s
        .http
        .get("/v1/patients?$sort[age]=-1&$sort[fullName]=1", key)
        .await;
    assert_eq!(names(&r), ["Abe", "Eve", "Bea", "Cara", "Dan"]);
    // Skip and limit after sorting; total counts every match.
    let r = s
        .http
        .get(
            "/v1/patients?$sort[fullName]=1&$skip=1&$limit=2&$total=true",
            key,
        )
        .await;
    assert_eq!(names(&r), ["Bea", "Cara"]);
    assert_eq!(r.body["total"], 5);
    assert_eq!(r.body["skip"], 1);
    assert_eq!(r.body["limit"], 2);
    // $limit=0 counts only; limits above 100 are clamped and shown.
    let r = s
        .http
        .get("/v1/patients?$limit=0&address.city=Leeds", key)
        .await;
    assert_eq!(r.body["total"], 3);
    assert!(r.ids().is_empty());
    let r = s.http.get("/v1/patients?$limit=500", key).await;
    assert_eq!(r.body["limit"], 100);
    // Operators beyond equality, $select on lists and gets (id always kept).
    let r = s
        .http
        .get("/v1/patients?age[$gte]=40&$sort[age]=1", key)
        .await;
    assert_eq!(names(&r), ["Eve", "Abe"]);
    let r = s
        .http
        .get("/v1/patients?age[$in]=20&age[$in]=50", key)
        .await;
    assert_eq!(names(&r), ["Abe", "Dan"]);
    let r = s
        .http
        .get("/v1/patients?$or[0][age]=20&$or[1][address.city]=Hull", key)
        .await;
    assert_eq!(names(&r), ["Dan", "Eve"]);
    let r = s
        .http
        .get("/v1/patients?$select[]=fullName&$limit=1", key)
        .await;
    assert_eq!(
        r.body["data"][0]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["id", "fullName"]
    );
    let g = s
        .http
        .get(&format!("/v1/patients/{}?$select[]=age", ids[0]), key)
        .await;
    assert_eq!(g.body, json!({"id": ids[0], "age": 30}));
    // Timestamps filter as RFC 3339 or Unix ms.
    let created = s
        .http
        .get(&format!("/v1/patients/{}", ids[2]), key)
        .await
        .body["createdAt"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s
        .http
        .get(
            &format!("/v1/patients?createdAt[$gte]={created}&$total=true"),
            key,
        )
        .await;
    assert!(r.body["total"].as_u64().unwrap() >= 3);
    let r = s.http.get("/v1/patients?createdAt[$lt]=0", key).await;
    assert!(r.ids().is_empty());
}

#[both_stores]
async fn sandbox_is_loaded_in_test_mode_only() {
    let s = TestServer::start().await;
    let org = s.org("St. Mungo's Clinic", false).await;
    let count = |path: &'static str, key: String| {
        let http = s.http.clone();
        async move {
            http.get(&format!("{path}?$limit=0"), &key).await.body["total"]
                .as_u64()
                .unwrap()
        }
    };
    assert!(count("/v1/clinics", org.test.secret.clone()).await >= 2);
    assert!(count("/v1/practitioners", org.test.secret.clone()).await >= 3);
    assert!(count("/v1/referral-sources", org.test.secret.clone()).await >= 3);
    assert!(count("/v1/patient-statuses", org.test.secret.clone()).await >= 3);
    assert!(
        count("/v1/patients", org.test.secret.clone()).await >= 24,
        "dozens of patients"
    );
    assert_eq!(count("/v1/patients", org.live.secret.clone()).await, 0);
    // Sandbox objects are ordinary objects: queryable and referenced consistently.
    let l = s
        .http
        .get("/v1/patients?$limit=100", &org.test.secret)
        .await;
    for p in l.body["data"].as_array().unwrap() {
        let clinic = p["primaryClinicId"].as_str().unwrap();
        s.http
            .get(&format!("/v1/clinics/{clinic}"), &org.test.secret)
            .await
            .expect(200);
    }
    let empty = s.org("Empty", true).await;
    assert_eq!(count("/v1/patients", empty.test.secret.clone()).await, 0);
}

#[both_stores]
async fn every_write_stores_its_event_without_sensitive_fields() {
    let s = TestServer::start().await;
    let org = s.org("Events", true).await;
    let key = org.test.secret.as_str();
    reference_data(&s.http, key).await;
    let mut body = patient_body("Secret Sam", "Leeds", "Active", "Google");
    body["medicalNumber"] = json!("943 476 5919");
    let p = s.http.post("/v1/patients", key, &body).await;
    p.expect(201);
    assert_eq!(
        p.body["medicalNumber"], "943 476 5919",
        "the API itself returns it"
    );
    let path = format!("/v1/patients/{}", p.id());
    s.http
        .patch(&path, key, &json!({"notes": "n"}))
        .await
        .expect(200);
    s.http.delete(&path, key).await.expect(200);
    // A refused write emits nothing.
    s.http
        .post("/v1/patients", key, &json!({"fullName": "X"}))
        .await
        .expect(400);
    // The events API shows what the outbox carried (and webhooks deliver).
    let pid = p.id();
    let listed = s
        .http
        .get(&format!("/v1/events?data.id={pid}&$limit=100"), key)
        .await;
    listed.expect(200);
    let mine: Vec<Value> = listed.body["data"].as_array().unwrap().clone();
    let types: Vec<&str> = mine.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["patient.created", "patient.updated", "patient.deleted"]
    );
    for env in &mine {
        assert!(env["id"].as_str().unwrap().starts_with("evt_"));
        assert_eq!(env["organizationId"], org.organization_id.as_str());
        assert_eq!(env["livemode"], false);
        assert!(is_ms_timestamp(&env["createdAt"]));
        assert!(
            env["data"].get("medicalNumber").is_none(),
            "sensitive field stripped: {env}"
        );
        assert_eq!(env["data"]["fullName"], "Secret Sam");
        let one = s
            .http
            .get(&format!("/v1/events/{}", env["id"].as_str().unwrap()), key)
            .await;
        assert_eq!(&one.body, env);
    }
    let all = s.http.get("/v1/events?$limit=100", key).await;
    let kinds: Vec<&str> = all.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    for t in [
        "clinic.created",
        "patientStatus.created",
        "referralSource.created",
    ] {
        assert!(kinds.contains(&t), "{t} in {kinds:?}");
    }
    // Another tenant sees none of them.
    let other = s.org("Other", true).await;
    let r = s.http.get("/v1/events?$limit=0", &other.test.secret).await;
    assert_eq!(r.body["total"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_reopening_the_store() {
    let dir = TempDir::new("reopen");
    let (key, id) = {
        let store: hub::store::DynStore = std::sync::Arc::new(
            hub::store::embedded::EmbeddedStore::open(dir.path(), hub::resources::kinds()).unwrap(),
        );
        let org = hub::org::create(store.as_ref(), "Durable", false)
            .await
            .unwrap();
        let app = hub::api::App::new(store, Config::default());
        let (addr, listener) = hub::serve::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let task = tokio::spawn(hub::serve::run(listener, app));
        let http = Http::new(format!("http://{addr}"));
        let c = http
            .post("/v1/clinics", &org.test.secret, &json!({"name": "Kept"}))
            .await;
        c.expect(201);
        task.abort();
        (org.test.secret, c.id())
    };
    let store: hub::store::DynStore = std::sync::Arc::new(
        hub::store::embedded::EmbeddedStore::open(dir.path(), hub::resources::kinds()).unwrap(),
    );
    let app = hub::api::App::new(store, Config::default());
    let (addr, listener) = hub::serve::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let task = tokio::spawn(hub::serve::run(listener, app));
    let http = Http::new(format!("http://{addr}"));
    let g = http.get(&format!("/v1/clinics/{id}"), &key).await;
    g.expect(200);
    assert_eq!(g.body["name"], "Kept");
    task.abort();
}

#[both_stores]
async fn rate_limits_answer_429_with_retry_after() {
    use hub::auth::ratelimit::{Limit, Limits};
    // A bucket of three that refills once in ~17 minutes: deterministic.
    let limits = Limits {
        test: Some(Limit {
            per_second: 0.001,
            burst: 3.0,
        }),
        live: None,
    };
    let s = TestServer::start_with(Config {
        rate_limits: limits,
        ..Default::default()
    })
    .await;
    let org = s.org("Limited", true).await;
    for remaining in [2, 1, 0] {
        let r = s.http.get("/v1/clinics", &org.test.secret).await;
        r.expect(200);
        assert_eq!(r.header("ratelimit-limit"), Some("3"));
        assert_eq!(
            r.header("ratelimit-remaining"),
            Some(remaining.to_string().as_str())
        );
    }
    let r = s.http.get("/v1/clinics", &org.test.secret).await;
    r.expect_error(429, "RATE_LIMIT_EXCEEDED");
    assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    // Buckets are per key; live mode here has no limit.
    s.http
        .get("/v1/clinics", &org.test.publishable)
        .await
        .expect_error(403, "PERMISSIONS_ERROR");
    for _ in 0..10 {
        s.http
            .get("/v1/clinics", &org.live.secret)
            .await
            .expect(200);
    }
}

/// A store that fails on demand, to reach the server-side error paths.
struct FailingStore {
    inner: hub::store::DynStore,
    mode: std::sync::atomic::AtomicU8,
    /// Commits still to cancel for contention (`Busy`: DynamoDB's
    /// `TransactionConflict`, nothing written).
    busy_commits: std::sync::atomic::AtomicU32,
}

impl FailingStore {
    /// An embedded store in `dir` holding one empty organization, with no
    /// failure set yet.
    async fn with_org(
        dir: &TempDir,
        name: &str,
    ) -> (std::sync::Arc<FailingStore>, hub::org::CreatedOrg) {
        let inner: hub::store::DynStore = std::sync::Arc::new(
            hub::store::embedded::EmbeddedStore::open(dir.path(), hub::resources::kinds()).unwrap(),
        );
        let org = hub::org::create(inner.as_ref(), name, true).await.unwrap();
        let failing = std::sync::Arc::new(FailingStore {
            inner,
            mode: Default::default(),
            busy_commits: Default::default(),
        });
        (failing, org)
    }
}

#[async_trait::async_trait]
impl hub::store::Store for FailingStore {
    async fn mark_dispatched(&self, ids: &[String]) -> hub::store::StoreResult<()> {
        self.inner.mark_dispatched(ids).await
    }
    async fn refresh(&self) -> hub::store::StoreResult<()> {
        match self.mode.load(std::sync::atomic::Ordering::SeqCst) {
            1 => Err(hub::store::StoreError::Busy),
            2 => Err(hub::store::StoreError::Backend("disk on fire".into())),
            3 => panic!("injected panic"),
            _ => self.inner.refresh().await,
        }
    }
    async fn get(
        &self,
        t: &str,
        k: &str,
        id: &str,
    ) -> hub::store::StoreResult<Option<hub::store::Doc>> {
        self.inner.get(t, k, id).await
    }
    async fn list(
        &self,
        t: &str,
        k: &str,
        q: &hub::query::ListQuery,
    ) -> hub::store::StoreResult<hub::store::ListPage> {
        self.inner.list(t, k, q).await
    }
    async fn all(&self, t: &str, k: &str) -> hub::store::StoreResult<Vec<hub::store::Doc>> {
        self.inner.all(t, k).await
    }
    async fn find_unique(
        &self,
        scope: &str,
        value: &str,
    ) -> hub::store::StoreResult<Option<hub::store::UniqueTarget>> {
        self.inner.find_unique(scope, value).await
    }
    async fn commit(&self, tx: hub::store::WriteTx) -> hub::store::StoreResult<()> {
        use std::sync::atomic::Ordering::SeqCst;
        let cancel = self
            .busy_commits
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if cancel {
            return Err(hub::store::StoreError::Busy);
        }
        self.inner.commit(tx).await
    }
    async fn pending_events(
        &self,
        limit: usize,
    ) -> hub::store::StoreResult<Vec<hub::store::EventRecord>> {
        self.inner.pending_events(limit).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_failures_are_lock_timeouts_or_500s_never_crashes() {
    hub::log::set_level(0);
    let dir = TempDir::new("failing");
    let (failing, org) = FailingStore::with_org(&dir, "Failing").await;
    let app = hub::api::App::new(failing.clone(), Config::default());
    let (addr, listener) = hub::serve::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let task = tokio::spawn(hub::serve::run(listener, app));
    let http = Http::new(format!("http://{addr}"));
    let set = |m: u8| failing.mode.store(m, std::sync::atomic::Ordering::SeqCst);
    set(1);
    http.get("/v1/clinics", &org.test.secret)
        .await
        .expect_error(429, "LOCK_TIMEOUT");
    set(2);
    let r = http.get("/v1/clinics", &org.test.secret).await;
    r.expect_error(500, "UNKNOWN_ERROR");
    assert!(
        !r.body["message"].as_str().unwrap().contains("fire"),
        "internals stay internal"
    );
    set(3);
    http.get("/v1/clinics", &org.test.secret)
        .await
        .expect_error(500, "UNKNOWN_ERROR");
    // The server is still there.
    set(0);
    http.get("/v1/clinics", &org.test.secret).await.expect(200);
    task.abort();
}

/// DynamoDB cancels a transaction that meets another on an item
/// (`TransactionConflict`, nothing written): every write a request makes
/// is sent again, never answered 429 while the conflict is passing. Each
/// write path below meets three cancelled commits in a row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_cancelled_for_contention_are_sent_again() {
    use std::sync::atomic::Ordering::SeqCst;
    let dir = TempDir::new("contention");
    let (failing, org) = FailingStore::with_org(&dir, "Contended").await;
    let s = TestServer::start_on(failing.clone()).await;
    let key = org.test.secret.as_str();
    let cancel = |n: u32| failing.busy_commits.store(n, SeqCst);
    let consumed = |what: &str| assert_eq!(failing.busy_commits.load(SeqCst), 0, "{what}");

    cancel(3);
    let c = s
        .http
        .post("/v1/clinics", key, &json!({"name": "Contended"}))
        .await;
    c.expect(201);
    consumed("a create");

    cancel(3);
    let body = Bytes::from(json!({"name": "Once"}).to_string());
    let first = s
        .http
        .send(
            "POST",
            "/v1/clinics",
            Some(key),
            Some(body.clone()),
            &[("idempotency-key", "contended-1")],
        )
        .await;
    first.expect(201);
    consumed("a create with an Idempotency-Key");
    let again = s
        .http
        .send(
            "POST",
            "/v1/clinics",
            Some(key),
            Some(body),
            &[("idempotency-key", "contended-1")],
        )
        .await;
    again.expect(201);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.id(), first.id());

    cancel(3);
    let ep = s
        .http
        .post(
            "/v1/webhook-endpoints",
            key,
            &json!({"url": "http://127.0.0.1:9/hook", "enabledEvents": ["clinic.*"]}),
        )
        .await;
    ep.expect(201);
    consumed("an endpoint create");

    cancel(3);
    let t = s
        .http
        .post(
            &format!("/v1/webhook-endpoints/{}/test", ep.id()),
            key,
            &json!({}),
        )
        .await;
    t.expect(202);
    consumed("a test event");
    let ev = t.body["id"].as_str().unwrap();
    s.http
        .get(&format!("/v1/events/{ev}"), key)
        .await
        .expect(200);

    cancel(3);
    s.http
        .patch(
            &format!("/v1/clinics/{}", c.id()),
            key,
            &json!({"name": "Still contended"}),
        )
        .await
        .expect(200);
    consumed("an update");
}

#[both_stores]
async fn cursor_paging_never_repeats_or_skips_under_concurrent_writes() {
    let s = TestServer::start().await;
    let org = s.org("Cursors", true).await;
    let key = org.test.secret.as_str();
    let mut original = Vec::new();
    for i in 0..30 {
        // Two sort keys with many ties, so the id must break them.
        let c = s.http.post("/v1/clinics", key, &json!({"name": format!("Clinic {}", i % 4), "metadata": {"n": format!("{}", i % 3)}})).await;
        original.push(c.id());
    }
    for query in [
        "$limit=4",
        "$limit=4&$sort[name]=-1&$sort[metadata.n]=1",
        "$limit=7&$sort[name]=1",
    ] {
        let mut seen: Vec<String> = Vec::new();
        let mut page = s.http.get(&format!("/v1/clinics?{query}"), key).await;
        page.expect(200);
        assert!(page.body["prev"].is_null(), "no prev on the first page");
        let mut extra = 0;
        loop {
            seen.extend(page.ids());
            // Meanwhile: create new objects and delete ones already seen.
            let c = s
                .http
                .post("/v1/clinics", key, &json!({"name": format!("New {extra}")}))
                .await;
            extra += 1;
            let victim = seen[seen.len() / 2].clone();
            if original.contains(&victim) {
                s.http.delete(&format!("/v1/clinics/{victim}"), key).await;
            }
            let _ = c;
            let Some(next) = page.body["next"].as_str().map(String::from) else {
                break;
            };
            let link = page.header("link").unwrap_or_default().to_string();
            assert!(
                link.contains("rel=\"next\"") && link.contains(&next),
                "{link}"
            );
            page = s
                .http
                .get(&format!("/v1/clinics?{query}&$after={next}"), key)
                .await;
            page.expect(200);
            assert!(page.body["prev"].is_string(), "later pages have prev");
        }
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), seen.len(), "{query}: no object twice");
        // Every object that existed throughout (not deleted) was seen.
        let listed_now: Vec<String> = {
            let all = s.http.get("/v1/clinics?$limit=100", key).await;
            all.ids()
        };
        for id in &original {
            if listed_now.contains(id) {
                assert!(seen.contains(id), "{query}: {id} skipped");
            }
        }
        // Deleted objects are gone from the original set for the next query.
        original.retain(|id| listed_now.contains(id));
    }
}

#[both_stores]
async fn cursors_go_back_and_refuse_forgery_and_other_queries() {
    let s = TestServer::start().await;
    let org = s.org("Back", true).await;
    let other = s.org("Other", true).await;
    let key = org.test.secret.as_str();
    for i in 0..9 {
        s.http
            .post("/v1/clinics", key, &json!({"name": format!("C{i}")}))
            .await
            .expect(201);
    }
    let all = s.http.get("/v1/clinics?$sort[name]=-1", key).await.ids();
    let p1 = s.http.get("/v1/clinics?$sort[name]=-1&$limit=4", key).await;
    let p2 = s
        .http
        .get(
            &format!(
                "/v1/clinics?$sort[name]=-1&$limit=4&$after={}",
                p1.body["next"].as_str().unwrap()
            ),
            key,
        )
        .await;
    assert_eq!(p2.ids(), all[4..8]);
    let back = s
        .http
        .get(
            &format!(
                "/v1/clinics?$sort[name]=-1&$limit=4&$before={}",
                p2.body["prev"].as_str().unwrap()
            ),
            key,
        )
        .await;
    assert_eq!(back.ids(), all[0..4], "prev returns the page before");
    assert!(back.body["prev"].is_null());
    let p3 = s
        .http
        .get(
            &format!(
                "/v1/clinics?$sort[name]=-1&$limit=4&$after={}",
                p2.body["next"].as_str().unwrap()
            ),
            key,
        )
        .await;
    assert_eq!(p3.ids(), all[8..9]);
    assert!(p3.body["next"].is_null(), "no next on the last page");
    let cursor = p1.body["next"].as_str().unwrap().to_string();
    // Other filters or sort, another tenant, a forged cursor: 400.
    for (q, k) in [
        (format!("$sort[name]=1&$after={cursor}"), key),
        (format!("$sort[name]=-1&name=C1&$after={cursor}"), key),
        (
            format!("$sort[name]=-1&$after={cursor}"),
            other.test.secret.as_str(),
        ),
        (format!("$sort[name]=-1&$after={}x", cursor), key),
        (
            "$sort[name]=-1&$after=bm90LWEtY3Vyc29y.AAAA".to_string(),
            key,
        ),
        (format!("$after={cursor}&$before={cursor}"), key),
    ] {
        let r = s.http.get(&format!("/v1/clinics?{q}"), k).await;
        r.expect_error(400, "INVALID_PARAMETERS");
    }
    // A different page size is fine with the same cursor.
    s.http
        .get(
            &format!("/v1/clinics?$sort[name]=-1&$limit=2&$after={cursor}"),
            key,
        )
        .await
        .expect(200);
}

#[both_stores]
async fn search_finds_by_stem_phrase_and_exclusion() {
    let s = TestServer::start().await;
    let org = s.org("Search", true).await;
    let key = org.test.secret.as_str();
    reference_data(&s.http, key).await;
    for (name, notes) in [
        ("Ann Cats", "Owns two cats and a hearing aid"),
        ("Zoë Brown", "Coffee shop owner"),
        ("Bob Shop", "java developer"),
        ("Eve Hearing", "hearing hearing hearing"),
    ] {
        let mut b = patient_body(name, "Leeds", "Active", "Google");
        b["notes"] = json!(notes);
        s.http.post("/v1/patients", key, &b).await.expect(201);
    }
    let names = |r: &Resp| -> Vec<String> {
        r.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["fullName"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names(&s.http.get("/v1/patients?$search=cat", key).await),
        ["Ann Cats"]
    );
    assert_eq!(
        names(&s.http.get("/v1/patients?$search=zoe", key).await),
        ["Zoë Brown"]
    );
    assert_eq!(
        names(
            &s.http
                .get("/v1/patients?$search=%22coffee%20shop%22", key)
                .await
        ),
        ["Zoë Brown"]
    );
    assert_eq!(
        names(
            &s.http
                .get("/v1/patients?$search=java%20shop%20-coffee", key)
                .await
        ),
        ["Bob Shop"]
    );
    let r = s
        .http
        .get(
            "/v1/patients?$search[text]=hearing&$search[sortByRelevance]=true",
            key,
        )
        .await;
    assert_eq!(names(&r), ["Eve Hearing", "Ann Cats"]);
    let r = s
        .http
        .get(
            "/v1/patients?$search[text]=ZOE&$search[caseSensitive]=true",
            key,
        )
        .await;
    assert!(r.ids().is_empty());
    s.http
        .get("/v1/patients?$search[text]=x&$search[language]=xx", key)
        .await
        .expect_error(400, "INVALID_PARAMETERS");
    s.http
        .get("/v1/patients?$search[colour]=x", key)
        .await
        .expect_error(400, "INVALID_PARAMETERS");
    // Search combines with filters and counts.
    let r = s
        .http
        .get(
            "/v1/patients?$search=hearing&fullName[$ne]=Eve%20Hearing&$total=true",
            key,
        )
        .await;
    assert_eq!(names(&r), ["Ann Cats"]);
    assert_eq!(r.body["total"], 1);
}

#[both_stores]
async fn idempotency_keys_replay_and_conflict() {
    let s = TestServer::start().await;
    let org = s.org("Idempotent Clinic", false).await;
    let other = s.org("Other Clinic", true).await;
    idempotency_contract(&s.http, &org.test.secret, &other.test.secret).await;
}

/// The events list is bounded to 30 days by a window that moves every
/// millisecond; its cursors are bound to the query, not to that window.
#[both_stores]
async fn event_cursors_stay_valid_as_time_passes() {
    let s = TestServer::start().await;
    let org = s.org("Event Pages", true).await;
    let key = org.test.secret.as_str();
    for i in 0..5 {
        s.http
            .post("/v1/clinics", key, &json!({"name": format!("C{i}")}))
            .await
            .expect(201);
    }
    let all = s
        .http
        .get("/v1/events?type=clinic.created", key)
        .await
        .ids();
    assert_eq!(all.len(), 5);
    let first = s
        .http
        .get("/v1/events?type=clinic.created&$limit=2", key)
        .await;
    let next = first.body["next"].as_str().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let second = s
        .http
        .get(
            &format!("/v1/events?type=clinic.created&$limit=2&$after={next}"),
            key,
        )
        .await;
    second.expect(200);
    assert_eq!(second.ids(), all[2..4]);
}

/// What the README and docs/api.md show a newcomer running their examples
/// against the sandbox is what the sandbox answers: the Leeds list's
/// `total`, and the number and amounts of the invoice they create.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docs_show_what_the_sandbox_gives() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let api_md = std::fs::read_to_string(root.join("docs/api.md")).unwrap();
    // The shown answer: the first `# →` line after the command.
    let shown = |text: &str, command: &str| -> Value {
        let at = text
            .find(command)
            .unwrap_or_else(|| panic!("`{command}` not in the docs"));
        let line = text[at..]
            .lines()
            .find(|l| l.trim_start().starts_with("# →"))
            .unwrap();
        let json = line.split_once("# →").unwrap().1.replace(", …}", "}");
        let json = json.replace("[...]", "[]").replace("\"…\"", "\"\"");
        serde_json::from_str(json.trim()).unwrap_or_else(|e| panic!("{line}: {e}"))
    };
    let s = TestServer::start().await;
    let org = s.org("St. Mungo's Clinic", false).await;
    let key = org.test.secret.as_str();

    let leeds = "/patients?address.city=Leeds&\\$sort[fullName]=1&\\$limit=5&\\$total=true";
    let expected = shown(&readme, leeds);
    let r = s
        .http
        .get(&format!("/v1{}", leeds.replace('\\', "")), key)
        .await;
    r.expect(200);
    assert_eq!(r.body["total"], expected["total"], "README's Leeds total");
    assert_eq!(r.body["limit"], expected["limit"]);

    let expected = shown(&api_md, "curl -s -X POST $API/invoices");
    let patient = s.http.get("/v1/patients?$limit=1", key).await.ids()[0].clone();
    let invoice = s
        .http
        .post(
            "/v1/invoices",
            key,
            &json!({"patientId": patient, "currency": "GBP", "status": "open",
                "lineItems": [{"description": "Hearing aid", "quantity": 2, "unitAmount": 89500, "taxRateBps": 0},
                              {"description": "Batteries", "quantity": 1, "unitAmount": 499, "taxRateBps": 2000}]}),
        )
        .await;
    invoice.expect(201);
    for field in ["number", "subtotal", "tax", "total", "balance", "status"] {
        assert_eq!(
            invoice.body[field], expected[field],
            "docs/api.md's invoice {field}"
        );
    }
}
