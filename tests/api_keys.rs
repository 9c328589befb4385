//! API keys as a resource (issue 14, SPEC §2), over HTTP on both stores:
//! restricted keys' permissions on every route, rolling with an overlap
//! (the clock moved by the test hook `hub::time::test_clock`, so hours pass
//! at once), revoking, standard keys that cannot be deleted, `lastUsedAt`
//! written at most once a minute, and no key in clear in any response
//! after the one that shows it, in any event or in any stored item.

use hub::store::dynamodb::DynamoStore;
use hub::store::DynStore;
use hub_tests::*;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// DynamoDB Local's endpoint; scripts/test.sh starts it and sets this.
fn dynamodb_endpoint() -> String {
    std::env::var("HUB_TEST_DYNAMODB_ENDPOINT").expect(
        "HUB_TEST_DYNAMODB_ENDPOINT is not set: run scripts/test.sh, which starts DynamoDB Local",
    )
}

async fn dynamodb() -> (Arc<DynamoStore>, String) {
    let client = hub::store::dynamodb::local_client(&dynamodb_endpoint(), "us-east-1").await;
    let table = format!("hub-keys-{}", hub::ids::ulid().to_lowercase());
    DynamoStore::create_table_without_stream(&client, &table)
        .await
        .unwrap();
    let store = DynamoStore::new(client, table.clone(), hub::resources::kinds());
    store.warm_up().await.unwrap();
    (Arc::new(store), table)
}

/// Every stored item of the store, as text: the embedded store's files, or
/// a scan of the DynamoDB table.
async fn stored_text(s: &TestServer, dynamo: Option<(&DynamoStore, &str)>) -> String {
    match dynamo {
        Some((d, table)) => {
            let mut out = String::new();
            let mut start = None;
            loop {
                let page = d
                    .client()
                    .scan()
                    .table_name(table)
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .unwrap();
                for item in page.items() {
                    out.push_str(&format!("{item:?}\n"));
                }
                start = page.last_evaluated_key().cloned();
                if start.is_none() {
                    break;
                }
            }
            assert!(out.contains("api-keys"), "the scan read the key records");
            out
        }
        None => {
            let mut out = String::new();
            for entry in std::fs::read_dir(s.dir.path()).unwrap().flatten() {
                if entry.path().is_file() {
                    let bytes = std::fs::read(entry.path()).unwrap();
                    out.push_str(&String::from_utf8_lossy(&bytes));
                }
            }
            assert!(
                out.contains("apiKey"),
                "the data files hold the key records"
            );
            out
        }
    }
}

fn minute_of(ts: &Value) -> i64 {
    let t = hub::time::parse_timestamp(ts.as_str().expect("a timestamp")).unwrap();
    assert_eq!(t % 60_000, 0, "to the minute: {ts}");
    t
}

fn assert_no_key(what: &str, text: &str, keys: &[String]) {
    for k in keys {
        assert!(!text.contains(k.as_str()), "{what} holds the key {k}");
    }
}

/// The scenario, on one store.
async fn keys_scenario(s: &TestServer, dynamo: Option<(&DynamoStore, &str)>) {
    let h = &s.http;
    let org = s.org("Keys Clinic", true).await;
    let sk = org.test.secret.clone();
    let pk = org.test.publishable.clone();
    let live = org.live.secret.clone();
    let mut issued: Vec<String> = vec![
        sk.clone(),
        pk.clone(),
        live.clone(),
        org.live.publishable.clone(),
    ];
    let started = hub::time::now_ms();
    reference_data(h, &sk).await;
    let patient = h
        .post(
            "/v1/patients",
            &sk,
            &patient_body("Ada Reader", "Leeds", "Active", "Google"),
        )
        .await;
    patient.expect(201);
    let patient = patient.id();

    // The standard keys are in the list: never the key, never its hash.
    let list = h.get("/v1/api-keys", &sk).await;
    list.expect(200);
    let keys = list.body["data"].as_array().unwrap().clone();
    assert_eq!(
        keys.len(),
        2,
        "this mode's two standard keys: {}",
        list.body
    );
    for k in &keys {
        assert_eq!(k["object"], "apiKey");
        assert_eq!(k["mode"], "test");
        assert_eq!(k["status"], "active");
        assert!(k["expiresAt"].is_null());
        assert!(k.get("hash").is_none() && k.get("secret").is_none(), "{k}");
        assert!(k["id"].as_str().unwrap().starts_with("key_"));
    }
    let secret_rec = keys.iter().find(|k| k["type"] == "secret").unwrap().clone();
    let publishable_rec = keys
        .iter()
        .find(|k| k["type"] == "publishable")
        .unwrap()
        .clone();
    assert_eq!(secret_rec["prefix"], "sk_test");
    assert_eq!(secret_rec["last4"], sk[sk.len() - 4..]);
    assert_eq!(publishable_rec["prefix"], "pk_test");
    assert_eq!(publishable_rec["last4"], pk[pk.len() - 4..]);
    let sk_id = secret_rec["id"].as_str().unwrap().to_string();
    let pk_id = publishable_rec["id"].as_str().unwrap().to_string();
    // Used: to the minute, between the first request and now.
    let got = h.get(&format!("/v1/api-keys/{sk_id}"), &sk).await;
    got.expect(200);
    let used = minute_of(&got.body["lastUsedAt"]);
    assert!(used >= started - started % 60_000 && used <= hub::time::now_ms());
    assert!(got.header("etag").is_some());

    // Only a secret key of the same mode manages keys.
    h.get("/v1/api-keys", &pk)
        .await
        .expect_error(403, "PERMISSIONS_ERROR");
    h.get(&format!("/v1/api-keys/{sk_id}"), &live)
        .await
        .expect_error(404, "NOT_FOUND");
    let live_list = h.get("/v1/api-keys", &live).await;
    live_list.expect(200);
    assert!(live_list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|k| k["mode"] == "live" && k["prefix"].as_str().unwrap().ends_with("_live")));

    // Bad permissions: 400 naming each, nothing stored.
    for (perms, field) in [
        (json!({"patient": "read"}), "permissions.patient"),
        (json!({"patients": "admin"}), "permissions.patients"),
        (json!({"api-keys": "read"}), "permissions.api-keys"),
    ] {
        let r = h
            .post(
                "/v1/api-keys",
                &sk,
                &json!({"type": "restricted", "permissions": perms}),
            )
            .await;
        r.expect_error(400, "INVALID_PARAMETERS");
        assert_eq!(r.body["errors"][0]["field"], field, "{}", r.body);
    }
    let r = h
        .post("/v1/api-keys", &sk, &json!({"type": "secret", "note": "x"}))
        .await;
    r.expect_error(400, "INVALID_PARAMETERS");
    assert_eq!(r.body["errors"][0]["field"], "type");
    let count = h.get("/v1/api-keys?$limit=0", &sk).await;
    assert_eq!(count.body["total"], 2, "nothing stored");

    // A restricted key reading patients: its secret shown once.
    let created = h
        .post(
            "/v1/api-keys",
            &sk,
            &json!({"type": "restricted", "note": "Reporting", "permissions": {"patients": "read"}}),
        )
        .await;
    created.expect(201);
    let rk = created.body["secret"].as_str().unwrap().to_string();
    issued.push(rk.clone());
    assert!(rk.starts_with("rk_test_"), "{rk}");
    let rk_id = created.id();
    assert_eq!(created.body["type"], "restricted");
    assert_eq!(created.body["prefix"], "rk_test");
    assert_eq!(created.body["last4"], rk[rk.len() - 4..]);
    assert_eq!(created.body["permissions"], json!({"patients": "read"}));
    assert_eq!(created.body["status"], "active");
    assert!(created.body["lastUsedAt"].is_null());
    assert!(created.body.get("hash").is_none());

    h.get("/v1/patients", &rk).await.expect(200);
    let one = h.get(&format!("/v1/patients/{patient}"), &rk).await;
    one.expect(200);
    assert_eq!(one.body["fullName"], "Ada Reader");
    let denied = h
        .post("/v1/patients", &rk, &json!({"fullName": "No Write"}))
        .await;
    denied.expect_error(403, "PERMISSIONS_ERROR");
    let msg = denied.body["message"].as_str().unwrap();
    assert!(
        msg.contains("`write`") && msg.contains("`patients`"),
        "{msg}"
    );
    for path in [
        "/v1/clinics",
        "/v1/appointments",
        "/v1/webhook-endpoints",
        "/v1/events",
        "/v1/api-keys",
    ] {
        h.get(path, &rk)
            .await
            .expect_error(403, "PERMISSIONS_ERROR");
    }
    // The organization needs its own permission: neither this key nor a
    // restricted key with no permissions at all may read it; one holding
    // `organization: read` may (and gets nothing else).
    let denied = h.get("/v1/organization", &rk).await;
    denied.expect_error(403, "PERMISSIONS_ERROR");
    let msg = denied.body["message"].as_str().unwrap();
    assert!(
        msg.contains("`read`") && msg.contains("`organization`"),
        "{msg}"
    );
    let bare = h
        .post(
            "/v1/api-keys",
            &sk,
            &json!({"type": "restricted", "note": "Nothing"}),
        )
        .await;
    bare.expect(201);
    assert_eq!(bare.body["permissions"], json!({}));
    let bare_id = bare.id();
    let bare = bare.body["secret"].as_str().unwrap().to_string();
    issued.push(bare.clone());
    h.get("/v1/organization", &bare)
        .await
        .expect_error(403, "PERMISSIONS_ERROR");
    h.patch(
        &format!("/v1/api-keys/{bare_id}"),
        &sk,
        &json!({"permissions": {"organization": "read"}}),
    )
    .await
    .expect(200);
    let org_read = h.get("/v1/organization", &bare).await;
    org_read.expect(200);
    assert_eq!(org_read.body["object"], "organization");
    h.get("/v1/patients", &bare)
        .await
        .expect_error(403, "PERMISSIONS_ERROR");
    h.delete(&format!("/v1/api-keys/{bare_id}"), &sk)
        .await
        .expect(200);
    // Its use is recorded, to the minute.
    let rec = h.get(&format!("/v1/api-keys/{rk_id}"), &sk).await;
    minute_of(&rec.body["lastUsedAt"]);
    let version = rec.body["version"].clone();

    // At most once a minute: many uses in a row write it once per minute
    // they span (DynamoDB counts the writes).
    if let Some((d, _)) = dynamo {
        let (_, w0) = d.consumed();
        let first = hub::time::now_ms() / 60_000;
        for _ in 0..20 {
            h.get(&format!("/v1/patients/{patient}"), &rk)
                .await
                .expect(200);
        }
        let minutes = (hub::time::now_ms() / 60_000 - first) as f64;
        let (_, w1) = d.consumed();
        // A touch is one transactional put of one small item: 2 units.
        assert!(
            w1 - w0 <= 2.0 * minutes,
            "{} write units for 20 uses within {minutes} new minutes",
            w1 - w0
        );
    }
    let rec = h.get(&format!("/v1/api-keys/{rk_id}"), &sk).await;
    assert_eq!(
        rec.body["version"], version,
        "a use is not a change of the key"
    );

    // write implies read; a PATCH merges permissions and keeps the key.
    let p = h
        .patch(
            &format!("/v1/api-keys/{rk_id}"),
            &sk,
            &json!({"note": "Booking", "permissions": {"patients": "write", "clinics": "read"}}),
        )
        .await;
    p.expect(200);
    assert_eq!(
        p.body["permissions"],
        json!({"patients": "write", "clinics": "read"})
    );
    assert_eq!(p.body["note"], "Booking");
    let made = h
        .post(
            "/v1/patients",
            &rk,
            &patient_body("Written By Rk", "Leeds", "Active", "Google"),
        )
        .await;
    made.expect(201);
    h.get("/v1/patients", &rk).await.expect(200);
    h.get("/v1/clinics", &rk).await.expect(200);
    h.post("/v1/clinics", &rk, &json!({"name": "Nope"}))
        .await
        .expect_error(403, "PERMISSIONS_ERROR");
    h.patch(
        &format!("/v1/api-keys/{rk_id}"),
        &sk,
        &json!({"permissions": {"clinics": null, "invented": "read"}}),
    )
    .await
    .expect_error(400, "INVALID_PARAMETERS");
    h.patch(
        &format!("/v1/api-keys/{sk_id}"),
        &sk,
        &json!({"permissions": {"patients": "read"}}),
    )
    .await
    .expect_error(400, "INVALID_PARAMETERS");
    h.patch(
        &format!("/v1/api-keys/{rk_id}"),
        &sk,
        &json!({"type": "secret"}),
    )
    .await
    .expect_error(400, "INVALID_PARAMETERS");
    let noted = h
        .patch(
            &format!("/v1/api-keys/{sk_id}"),
            &sk,
            &json!({"note": "In the server's vault"}),
        )
        .await;
    noted.expect(200);
    assert!(noted.body.get("permissions").is_none(), "{}", noted.body);

    // Roll with an hour's overlap: both keys work.
    let rolled = h
        .post(
            &format!("/v1/api-keys/{rk_id}/roll"),
            &sk,
            &json!({"expiresInHours": 1}),
        )
        .await;
    rolled.expect(200);
    let rk2 = rolled.body["secret"].as_str().unwrap().to_string();
    issued.push(rk2.clone());
    let rk2_id = rolled.id();
    assert_ne!(rk2_id, rk_id);
    assert_eq!(rolled.body["permissions"], p.body["permissions"]);
    assert_eq!(rolled.body["note"], "Booking");
    assert_eq!(rolled.body["last4"], rk2[rk2.len() - 4..]);
    h.get("/v1/patients", &rk).await.expect(200);
    h.get("/v1/patients", &rk2).await.expect(200);
    let old = h.get(&format!("/v1/api-keys/{rk_id}"), &sk).await;
    assert_eq!(old.body["status"], "expiring");
    let exp = hub::time::parse_timestamp(old.body["expiresAt"].as_str().unwrap()).unwrap();
    let hour = 3_600_000;
    assert!(
        (exp - hub::time::now_ms() - hour).abs() < 120_000,
        "{}",
        old.body
    );
    // An expiring key is not rolled again.
    h.post(&format!("/v1/api-keys/{rk_id}/roll"), &sk, &json!({}))
        .await
        .expect_error(409, "CONFLICT");
    h.post(
        &format!("/v1/api-keys/{rk2_id}/roll"),
        &sk,
        &json!({"expiresInHours": 13}),
    )
    .await
    .expect_error(400, "INVALID_PARAMETERS");

    // Roll with 0 hours: the old key gets 401 at once.
    let rolled = h
        .post(
            &format!("/v1/api-keys/{rk2_id}/roll"),
            &sk,
            &json!({"expiresInHours": 0}),
        )
        .await;
    rolled.expect(200);
    let rk3 = rolled.body["secret"].as_str().unwrap().to_string();
    issued.push(rk3.clone());
    let rk3_id = rolled.id();
    h.get("/v1/patients", &rk2)
        .await
        .expect_error(401, "AUTH_ERROR");
    h.get("/v1/patients", &rk3).await.expect(200);
    h.get("/v1/patients", &rk).await.expect(200);
    let gone = h.get(&format!("/v1/api-keys/{rk2_id}"), &sk).await;
    assert_eq!(gone.body["status"], "revoked");

    // A standard key: not deleted (409: roll it); rolled with an overlap,
    // the old one can be deleted, and then stops at once.
    h.delete(&format!("/v1/api-keys/{sk_id}"), &sk)
        .await
        .expect_error(409, "CONFLICT");
    h.delete(&format!("/v1/api-keys/{pk_id}"), &sk)
        .await
        .expect_error(409, "CONFLICT");
    let rolled = h
        .post(
            &format!("/v1/api-keys/{pk_id}/roll"),
            &sk,
            &json!({"expiresInHours": 2}),
        )
        .await;
    rolled.expect(200);
    let pk2 = rolled.body["secret"].as_str().unwrap().to_string();
    issued.push(pk2.clone());
    assert!(pk2.starts_with("pk_test_"));
    assert_eq!(rolled.body["type"], "publishable");
    h.get("/v1/organization", &pk)
        .await
        .expect_error(403, "PERMISSIONS_ERROR");
    h.delete(&format!("/v1/api-keys/{pk_id}"), &sk)
        .await
        .expect(200);
    h.get("/v1/organization", &pk)
        .await
        .expect_error(401, "AUTH_ERROR");

    // Idempotent create: a replay leaves the secret out, and says so.
    let idem = format!("key-{}", hub::ids::ulid());
    let body = Bytes::from(json!({"type": "restricted", "note": "Once"}).to_string());
    let first = h
        .send(
            "POST",
            "/v1/api-keys",
            Some(&sk),
            Some(body.clone()),
            &[("idempotency-key", idem.as_str())],
        )
        .await;
    first.expect(201);
    issued.push(first.body["secret"].as_str().unwrap().to_string());
    let again = h
        .send(
            "POST",
            "/v1/api-keys",
            Some(&sk),
            Some(body),
            &[("idempotency-key", idem.as_str())],
        )
        .await;
    again.expect(201);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.header("idempotent-omitted"), Some("secret"));
    assert!(again.body.get("secret").is_none());
    assert_eq!(again.body["id"], first.body["id"]);

    // The clock moves past the hour of the first roll: the old key is
    // refused, its replacement works.
    hub::time::test_clock::advance(Duration::from_secs(2 * 3600 + 60));
    h.get("/v1/patients", &rk)
        .await
        .expect_error(401, "AUTH_ERROR");
    h.get("/v1/patients", &rk3).await.expect(200);
    let old = h.get(&format!("/v1/api-keys/{rk_id}"), &sk).await;
    assert_eq!(old.body["status"], "revoked", "{}", old.body);

    // Revoking a restricted key: 401 at once, and it is gone.
    let revoked = h.delete(&format!("/v1/api-keys/{rk3_id}"), &sk).await;
    revoked.expect(200);
    assert_eq!(revoked.body["id"], rk3_id);
    h.get("/v1/patients", &rk3)
        .await
        .expect_error(401, "AUTH_ERROR");
    h.get(&format!("/v1/api-keys/{rk3_id}"), &sk)
        .await
        .expect_error(404, "NOT_FOUND");
    h.get("/v1/patients", &sk).await.expect(200);

    // Events about keys, never with a key or its hash.
    let events = h.get("/v1/events?$limit=100", &sk).await;
    events.expect(200);
    let types: Vec<&str> = events.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["type"].as_str())
        .filter(|t| t.starts_with("apiKey."))
        .collect();
    for t in ["apiKey.created", "apiKey.updated", "apiKey.deleted"] {
        assert!(types.contains(&t), "{t} in {types:?}");
    }
    for e in events.body["data"].as_array().unwrap() {
        if e["type"].as_str().unwrap().starts_with("apiKey.") {
            assert!(e["data"].get("secret").is_none() && e["data"].get("hash").is_none());
        }
    }
    assert_no_key("the events", &String::from_utf8_lossy(&events.raw), &issued);
    let all = h.get("/v1/api-keys?$limit=100", &sk).await;
    assert_no_key("the key list", &String::from_utf8_lossy(&all.raw), &issued);
    assert!(!String::from_utf8_lossy(&all.raw).contains("\"hash\""));
    // No stored item holds a key in clear.
    let stored = stored_text(s, dynamo).await;
    assert_no_key("the store", &stored, &issued);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_on_the_embedded_store() {
    let s = TestServer::start().await;
    keys_scenario(&s, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_on_dynamodb() {
    let (dynamo, table) = dynamodb().await;
    let s = TestServer::start_on(dynamo.clone() as DynStore).await;
    keys_scenario(&s, Some((&dynamo, &table))).await;
}

/// A Delete without a version condition deletes, on both stores (the
/// private records of keys and webhook endpoints go with them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unconditional_deletes_delete_on_both_stores() {
    use hub::store::{Expect, WriteOp, WriteTx};
    let s = TestServer::start().await;
    let (dynamo, _) = dynamodb().await;
    for store in [s.store.clone(), dynamo as DynStore] {
        let put = WriteOp::Put {
            tenant: "org_x#test".into(),
            kind: "api-key-hashes",
            id: "key_x".into(),
            doc: json!({"id": "key_x", "version": 1}),
            expect: Expect::Absent,
        };
        store.commit(WriteTx::of(vec![put])).await.unwrap();
        assert!(store
            .get("org_x#test", "api-key-hashes", "key_x")
            .await
            .unwrap()
            .is_some());
        let del = WriteOp::Delete {
            tenant: "org_x#test".into(),
            kind: "api-key-hashes",
            id: "key_x".into(),
            expect: Expect::Absent,
        };
        store.commit(WriteTx::of(vec![del.clone()])).await.unwrap();
        assert!(store
            .get("org_x#test", "api-key-hashes", "key_x")
            .await
            .unwrap()
            .is_none());
        // Deleting what is not there is no error either.
        store.commit(WriteTx::of(vec![del])).await.unwrap();
    }
}

/// A restricted key with these permissions (one per set of permissions).
async fn restricted_key(
    http: &Http,
    sk: &str,
    perms: Value,
    made: &mut std::collections::HashMap<String, String>,
) -> String {
    let tag = perms.to_string();
    if let Some(k) = made.get(&tag) {
        return k.clone();
    }
    let r = http
        .post(
            "/v1/api-keys",
            sk,
            &json!({"type": "restricted", "permissions": perms}),
        )
        .await;
    r.expect(201);
    let k = r.body["secret"].as_str().unwrap().to_string();
    made.insert(tag, k.clone());
    k
}

/// Every route of the route table, on both runtimes (`hub serve`'s HTTP
/// and a Lambda function's API Gateway event, the same `App`): a
/// restricted key allowed exactly the route's resource and level is not
/// refused (2xx, or a 4xx that is not 403), and one allowed everything but
/// that gets 403 naming the resource and the level. A route without a
/// permission fails here, unless it is one of the few that need none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_checks_its_permission() {
    use hub::auth::Level;
    // Routes that need no key at all.
    const NO_PERMISSION: &[&str] = &[
        "health",
        "openapi",
        "dashboard",
        "dashboard-files",
        "docs",
        "docs-files",
        "widget",
        "fhir-metadata",
    ];
    let s = TestServer::start().await;
    let org = s.org("Walk Clinic", true).await;
    let sk = org.test.secret.clone();
    let lambda_app = hub::api::App::new(
        s.store.clone(),
        hub::api::Config {
            rate_limits: hub::auth::ratelimit::Limits::OFF,
            ..Default::default()
        },
    );
    let resources = hub::resources::api_keys::permission_resources();
    let mut keys: std::collections::HashMap<String, String> = Default::default();
    let level_name = |l: Level| match l {
        Level::Read => "read",
        Level::Write => "write",
    };
    let samples = hub::deploy::sample_events();
    let mut walked = 0;
    for route in hub::api::routes() {
        let (_, event) = samples
            .iter()
            .find(|(n, _)| n == route.name)
            .unwrap_or_else(|| panic!("no sample event for {}", route.name));
        // Both runtimes answer one request: HTTP and a Lambda event.
        let call = |key: String| {
            let mut ev = event.clone();
            ev["headers"]["authorization"] = json!(format!("Bearer {key}"));
            let http = s.http.clone();
            let app = lambda_app.clone();
            async move {
                let path = match ev["rawQueryString"].as_str().unwrap_or_default() {
                    "" => ev["rawPath"].as_str().unwrap().to_string(),
                    q => format!("{}?{q}", ev["rawPath"].as_str().unwrap()),
                };
                let body = ev["body"].as_str().map(|b| Bytes::from(b.to_string()));
                let method = ev["requestContext"]["http"]["method"]
                    .as_str()
                    .unwrap()
                    .to_string();
                let over_http = http.send(&method, &path, Some(&key), body, &[]).await;
                let lambda = hub::lambda::invoke_http(&app, ev, "api-keys-walk")
                    .await
                    .unwrap();
                let lambda_status = lambda["statusCode"].as_u64().unwrap() as u16;
                let lambda_body: Value =
                    serde_json::from_str(lambda["body"].as_str().unwrap()).unwrap_or(Value::Null);
                (over_http, lambda_status, lambda_body)
            }
        };
        let Some(access) = route.access() else {
            assert!(
                NO_PERMISSION.contains(&route.name),
                "the route {} {} needs no permission: give it one (Route::access)",
                route.method,
                route.path
            );
            continue;
        };
        walked += 1;
        let level = level_name(access.level);
        // Everything but this resource at this level.
        let below = match access.level {
            Level::Write => "read",
            Level::Read => "none",
        };
        let mut all_but = serde_json::Map::new();
        for r in resources {
            all_but.insert(r.to_string(), json!("write"));
        }
        if access.resource != "api-keys" {
            assert!(
                resources.contains(&access.resource),
                "{}: `{}` is not a permission a key can hold",
                route.name,
                access.resource
            );
            all_but.insert(access.resource.to_string(), json!(below));
            let exact =
                restricted_key(&s.http, &sk, json!({access.resource: level}), &mut keys).await;
            let (r, ls, lb) = call(exact).await;
            assert!(
                r.status != 403 && r.status != 401 && r.status < 500,
                "{} with `{}: {level}` over HTTP: {} {}",
                route.name,
                access.resource,
                r.status,
                r.body
            );
            assert!(
                ls != 403 && ls != 401 && ls < 500,
                "{} with `{}: {level}` as a Lambda event: {ls} {lb}",
                route.name,
                access.resource
            );
        }
        let other = restricted_key(&s.http, &sk, Value::Object(all_but), &mut keys).await;
        let (r, ls, lb) = call(other).await;
        r.expect_error(403, "PERMISSIONS_ERROR");
        assert_eq!(ls, 403, "{} as a Lambda event: {lb}", route.name);
        assert_eq!(error_parts(&lb).0, "PERMISSIONS_ERROR");
        let msg = error_parts(&r.body).1;
        if access.resource == "api-keys" {
            assert!(msg.contains("secret key"), "{msg}");
        } else {
            assert!(
                msg.contains(&format!("`{level}`"))
                    && msg.contains(&format!("`{}`", access.resource)),
                "{}: {msg}",
                route.name
            );
        }
        // A secret key is never refused a route.
        let (r, ls, _) = call(sk.clone()).await;
        assert!(r.status != 403 && ls != 403, "{}: {}", route.name, r.body);
    }
    assert!(walked > 40, "walked {walked} routes");
}
