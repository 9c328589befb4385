//! Webhooks end to end inside the hub: a real receiver on 127.0.0.1 checks
//! every delivery with the official `stripe` and `standardwebhooks` Python
//! libraries (installed by scripts/test.sh into .venv).

use hub::webhooks::deliver::DeliveryConfig;
use hub::webhooks::RetrySchedule;
use hub_tests::*;
use serde_json::Value;
use std::time::Duration;

fn fast(schedule: &str) -> DeliveryConfig {
    DeliveryConfig {
        timeout: Duration::from_secs(1),
        schedule: RetrySchedule::parse(schedule).unwrap(),
        ..Default::default()
    }
}

async fn server(schedule: &str) -> TestServer {
    TestServer::start_full(
        hub::api::Config {
            rate_limits: hub::auth::ratelimit::Limits::OFF,
            ..Default::default()
        },
        fast(schedule),
    )
    .await
}

async fn endpoint(s: &TestServer, key: &str, url: String, events: &[&str]) -> (String, String) {
    let r = s.http.post("/v1/webhook-endpoints", key, &json!({"url": url, "enabledEvents": events, "headers": {"X-Custom-Auth": "Bearer partner-token"}, "description": "test receiver"})).await;
    r.expect(201);
    let secret = r.body["secret"]
        .as_str()
        .expect("secret on create")
        .to_string();
    assert!(secret.starts_with("whsec_"));
    (r.id(), secret)
}

fn of_event<'a>(log: &'a [Value], path: &str, event: &str) -> Vec<&'a Value> {
    log.iter()
        .filter(|e| e["path"] == path && e["eventId"] == event)
        .collect()
}

#[both_stores]
async fn deliveries_verify_with_official_libraries_through_a_secret_roll() {
    let rx = Receiver::start();
    let s = server("300ms").await;
    let org = s.org("Hooks", true).await;
    let key = org.test.secret.as_str();
    reference_data(&s.http, key).await;
    let (ep, secret) = endpoint(&s, key, format!("{}/ok", rx.base), &["patient.*"]).await;
    rx.secrets("/ok", &[&secret]).await;
    // GET never shows the secret; reveal-secret does.
    let g = s
        .http
        .get(&format!("/v1/webhook-endpoints/{ep}"), key)
        .await;
    assert!(g.body.get("secret").is_none());
    assert_eq!(g.body["status"], "enabled");
    let rev = s
        .http
        .post(
            &format!("/v1/webhook-endpoints/{ep}/reveal-secret"),
            key,
            &json!({}),
        )
        .await;
    assert_eq!(rev.body["secret"], secret.as_str(), "{}", rev.body);

    let mut body = patient_body("Hook Patient", "Leeds", "Active", "Google");
    body["medicalNumber"] = json!("943 476 5919");
    let p = s.http.post("/v1/patients", key, &body).await.id();
    s.http
        .patch(&format!("/v1/patients/{p}"), key, &json!({"notes": "n"}))
        .await
        .expect(200);
    s.http
        .delete(&format!("/v1/patients/{p}"), key)
        .await
        .expect(200);
    // Not subscribed: a clinic event.
    s.http
        .post("/v1/clinics", key, &json!({"name": "Elsewhere"}))
        .await
        .expect(201);
    let log = rx
        .wait("three patient events", |l| {
            l.iter().filter(|e| e["path"] == "/ok").count() >= 3
        })
        .await;
    let got: Vec<&Value> = log.iter().filter(|e| e["path"] == "/ok").collect();
    let mut types: Vec<&str> = got.iter().map(|e| e["type"].as_str().unwrap()).collect();
    types.sort();
    assert_eq!(
        types,
        ["patient.created", "patient.deleted", "patient.updated"]
    );
    for e in &got {
        assert_eq!(e["stripe"], json!([true]), "stripe verifies {e}");
        assert_eq!(
            e["standard"],
            json!([true]),
            "standardwebhooks verifies {e}"
        );
        assert_eq!(e["custom"], "Bearer partner-token");
        assert_eq!(e["body"]["id"], e["eventId"]);
        assert_eq!(e["body"]["organizationId"], org.organization_id.as_str());
        assert!(
            e["body"]["data"].get("medicalNumber").is_none(),
            "sensitive field never leaves: {e}"
        );
        assert_eq!(e["body"]["data"]["fullName"], "Hook Patient");
    }
    // The attempts log matches what the receiver saw.
    let seen: Vec<String> = got
        .iter()
        .map(|e| e["delivery"].as_str().unwrap().to_string())
        .collect();
    // (Each attempt's row is written once the receiver has answered.)
    let logged = eventually("the three attempts in the log", || async {
        let r = s
            .http
            .get(
                &format!("/v1/webhook-endpoints/{ep}/deliveries?$limit=100"),
                key,
            )
            .await;
        (r.body["data"].as_array().map_or(0, Vec::len) >= 3).then_some(r)
    })
    .await;
    logged.expect(200);
    let rows = logged.body["data"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for r in rows {
        assert!(seen.contains(&r["id"].as_str().unwrap().to_string()), "{r}");
        assert_eq!(r["status"], "succeeded");
        assert_eq!(r["responseStatus"], 200);
        assert_eq!(r["attempt"], 1);
        assert!(r.get("nextRetryAt").is_none());
    }

    // Roll with an overlap: both secrets sign meanwhile.
    let rolled = s
        .http
        .post(
            &format!("/v1/webhook-endpoints/{ep}/roll-secret"),
            key,
            &json!({"overlapHours": 2}),
        )
        .await;
    rolled.expect(200);
    let new = rolled.body["secret"].as_str().unwrap().to_string();
    assert_ne!(new, secret);
    rx.secrets("/ok", &[&secret, &new]).await;
    let p2 = s
        .http
        .post(
            "/v1/patients",
            key,
            &patient_body("After Roll", "Leeds", "Active", "Google"),
        )
        .await;
    let ev = s
        .http
        .get(
            &format!("/v1/events?data.id={}&type=patient.created", p2.id()),
            key,
        )
        .await
        .ids()[0]
        .clone();
    let log = rx
        .wait("the event after the roll", |l| {
            !of_event(l, "/ok", &ev).is_empty()
        })
        .await;
    let e = of_event(&log, "/ok", &ev)[0];
    assert_eq!(
        e["stripe"],
        json!([true, true]),
        "old and new secret both verify: {e}"
    );
    assert_eq!(e["standard"], json!([true, true]));
    // Without overlap, only the newest signs.
    let rolled = s
        .http
        .post(
            &format!("/v1/webhook-endpoints/{ep}/roll-secret"),
            key,
            &json!({"overlapHours": 0}),
        )
        .await;
    let newest = rolled.body["secret"].as_str().unwrap().to_string();
    rx.secrets("/ok", &[&new, &newest]).await;
    let p3 = s
        .http
        .post(
            "/v1/patients",
            key,
            &patient_body("Second Roll", "Leeds", "Active", "Google"),
        )
        .await;
    let ev = s
        .http
        .get(&format!("/v1/events?data.id={}", p3.id()), key)
        .await
        .ids()[0]
        .clone();
    let log = rx
        .wait("the event after the second roll", |l| {
            !of_event(l, "/ok", &ev).is_empty()
        })
        .await;
    assert_eq!(
        of_event(&log, "/ok", &ev)[0]["stripe"],
        json!([false, true])
    );
    s.http
        .post(
            &format!("/v1/webhook-endpoints/{ep}/roll-secret"),
            key,
            &json!({"overlapHours": 25}),
        )
        .await
        .expect_error(400, "INVALID_PARAMETERS");
}

#[both_stores]
async fn failures_are_retried_until_delivered_or_dead_and_none_is_lost() {
    let rx = Receiver::start();
    let s = server("300ms,300ms").await;
    let org = s.org("Retries", true).await;
    let key = org.test.secret.as_str();
    let mut eps = Vec::new();
    for path in ["/flaky?n=2", "/fail", "/slow", "/reset", "/ratelimit"] {
        let (id, secret) =
            endpoint(&s, key, format!("{}{path}", rx.base), &["clinic.created"]).await;
        let bare = path.split('?').next().unwrap();
        rx.secrets(bare, &[&secret]).await;
        eps.push((bare, id));
    }
    let ev_clinic = s
        .http
        .post("/v1/clinics", key, &json!({"name": "Retry Clinic"}))
        .await
        .id();
    let ev = s
        .http
        .get(&format!("/v1/events?data.id={ev_clinic}"), key)
        .await
        .ids()[0]
        .clone();
    // Every endpoint ends delivered or dead: poll the attempts logs (bounded).
    let mut finals = std::collections::HashMap::new();
    let mut attempts_seen = Vec::new();
    for _ in 0..600 {
        finals.clear();
        attempts_seen.clear();
        for (path, id) in &eps {
            let rows = s
                .http
                .get(
                    &format!("/v1/webhook-endpoints/{id}/deliveries?$limit=100"),
                    key,
                )
                .await;
            let rows = rows.body["data"].as_array().cloned().unwrap_or_default();
            attempts_seen.push((
                *path,
                rows.iter().map(|r| r["status"].clone()).collect::<Vec<_>>(),
            ));
            if let Some(last) = rows
                .iter()
                .find(|r| r["status"] == "succeeded" || r["status"] == "dead")
            {
                finals.insert(
                    *path,
                    (last["status"].as_str().unwrap().to_string(), rows.clone()),
                );
            }
        }
        if finals.len() == eps.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        finals.len(),
        eps.len(),
        "every delivery ends delivered or dead: {:?}; attempts seen: {attempts_seen:?}; \
         the receiver's log: {} entries; the event: {}",
        finals.keys().collect::<Vec<_>>(),
        rx.log().await.len(),
        s.http.get(&format!("/v1/events/{ev}"), key).await.body
    );
    let status = |p: &str| finals[p].0.clone();
    assert_eq!(status("/flaky"), "succeeded");
    assert_eq!(status("/ratelimit"), "succeeded");
    for p in ["/fail", "/slow", "/reset"] {
        assert_eq!(status(p), "dead", "{p}");
    }
    let log = rx.log().await;
    for (path, _) in &eps {
        let rows = &finals[path].1;
        // Attempts are numbered 1..n, only the last lacks nextRetryAt.
        let mut attempts: Vec<u64> = rows
            .iter()
            .map(|r| r["attempt"].as_u64().unwrap())
            .collect();
        attempts.sort();
        let n = attempts.len() as u64;
        assert_eq!(attempts, (1..=n).collect::<Vec<_>>(), "{path}");
        for r in rows {
            let last = r["attempt"].as_u64() == Some(n);
            assert_eq!(r.get("nextRetryAt").is_none(), last, "{path}: {r}");
        }
        // What the receiver saw is what the log says: one request per attempt,
        // each signed afresh and verifiable.
        let seen = of_event(&log, path, &ev);
        assert_eq!(
            seen.len() as u64,
            n,
            "{path}: receiver saw {} requests, log has {n}",
            seen.len()
        );
        let mut ids: Vec<&str> = seen
            .iter()
            .map(|e| e["delivery"].as_str().unwrap())
            .collect();
        ids.sort();
        ids.dedup();
        assert_eq!(
            ids.len() as u64,
            n,
            "{path}: a new Hub-Delivery per attempt"
        );
        for e in seen {
            assert_eq!(e["stripe"], json!([true]), "{path} {e}");
            assert_eq!(e["standard"], json!([true]), "{path} {e}");
        }
    }
    assert_eq!(finals["/flaky"].1.len(), 3, "two failures then success");
    assert_eq!(finals["/fail"].1.len(), 3, "first attempt and two retries");
    let slow = &finals["/slow"].1[0];
    assert!(
        slow["error"]
            .as_str()
            .unwrap()
            .contains("no response within"),
        "{slow}"
    );
    assert!(finals["/reset"].1[0].get("responseStatus").is_none());
    let rl = &finals["/ratelimit"].1;
    let first = rl.iter().find(|r| r["attempt"] == 1).unwrap();
    assert_eq!(first["responseStatus"], 429);
    // Retry-After: 1 was honoured: the second request came at least 1 s later.
    let times: Vec<f64> = of_event(&log, "/ratelimit", &ev)
        .iter()
        .map(|e| e["at"].as_f64().unwrap())
        .collect();
    assert!(times[1] - times[0] >= 0.9, "{times:?}");
}

#[both_stores]
async fn fifty_consecutive_failures_disable_an_endpoint() {
    let rx = Receiver::start();
    let s = server("none").await;
    let org = s.org("Disable", true).await;
    let key = org.test.secret.as_str();
    let (ep, _) = endpoint(&s, key, format!("{}/fail", rx.base), &["referralSource.*"]).await;
    for i in 0..55 {
        s.http
            .post(
                "/v1/referral-sources",
                key,
                &json!({"name": format!("Source {i}")}),
            )
            .await
            .expect(201);
    }
    let mut status = Value::Null;
    for _ in 0..600 {
        status = s
            .http
            .get(&format!("/v1/webhook-endpoints/{ep}"), key)
            .await
            .body;
        if status["status"] == "disabled" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status["status"], "disabled", "{status}");
    assert!(status["disabledReason"].as_str().unwrap().contains("50"));
    // Attempts already under way when the 50th failed may still finish; after
    // that nothing more is attempted while disabled.
    let count = || async {
        let r = s
            .http
            .get(
                &format!("/v1/webhook-endpoints/{ep}/deliveries?$limit=0"),
                key,
            )
            .await;
        r.body["total"].as_u64().unwrap()
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let settled = count().await;
    assert!((50..=55).contains(&settled), "{settled}");
    let before = rx.log().await.len();
    s.http
        .post(
            "/v1/referral-sources",
            key,
            &json!({"name": "While disabled"}),
        )
        .await
        .expect(201);
    s.http
        .post(&format!("/v1/webhook-endpoints/{ep}/test"), key, &json!({}))
        .await
        .expect_error(409, "CONFLICT");
    // Enable: the reason goes, and deliveries resume.
    let en = s
        .http
        .post(
            &format!("/v1/webhook-endpoints/{ep}/enable"),
            key,
            &json!({}),
        )
        .await;
    en.expect(200);
    assert_eq!(en.body["status"], "enabled");
    assert!(en.body.get("disabledReason").is_none());
    s.http
        .post(&format!("/v1/webhook-endpoints/{ep}/test"), key, &json!({}))
        .await
        .expect(202);
    rx.wait("the test event after enabling", |l| {
        l.len() > before && l.iter().any(|e| e["type"] == "test.event")
    })
    .await;
    let log = rx.log().await;
    assert!(
        !log.iter()
            .any(|e| e["body"]["data"]["name"] == "While disabled"),
        "nothing delivered while disabled"
    );
    let now = eventually("the test event's attempt in the log", || async {
        let n = count().await;
        (n > settled).then_some(n)
    })
    .await;
    assert_eq!(now, settled + 1, "only the test event was attempted since");
}

#[both_stores]
async fn test_events_and_redelivery_reach_only_the_chosen_endpoint() {
    let rx = Receiver::start();
    let s = server("300ms").await;
    let org = s.org("Redeliver", true).await;
    let key = org.test.secret.as_str();
    let (a, sa) = endpoint(&s, key, format!("{}/ok?a", rx.base), &["*"]).await;
    let (b, _) = endpoint(&s, key, format!("{}/ok?b", rx.base), &["*"]).await;
    rx.secrets("/ok", &[&sa]).await;
    let t = s
        .http
        .post(&format!("/v1/webhook-endpoints/{a}/test"), key, &json!({}))
        .await;
    t.expect(202);
    assert_eq!(t.body["type"], "test.event");
    let test_id = t.id();
    let log = rx
        .wait("the test event", |l| {
            l.iter().any(|e| e["eventId"] == test_id.as_str())
        })
        .await;
    assert_eq!(
        log.iter()
            .filter(|e| e["eventId"] == test_id.as_str())
            .count(),
        1,
        "only endpoint a gets it"
    );
    // Redeliver a clinic event to b only, then to all subscribed.
    let c = s
        .http
        .post("/v1/clinics", key, &json!({"name": "Again"}))
        .await
        .id();
    let ev = s
        .http
        .get(&format!("/v1/events?data.id={c}"), key)
        .await
        .ids()[0]
        .clone();
    rx.wait("both endpoints", |l| {
        l.iter().filter(|e| e["eventId"] == ev.as_str()).count() >= 2
    })
    .await;
    let r = s
        .http
        .post(
            &format!("/v1/events/{ev}/redeliver"),
            key,
            &json!({"endpointId": b}),
        )
        .await;
    r.expect(202);
    assert_eq!(r.body["endpointIds"], json!([b]));
    rx.wait("the redelivery", |l| {
        l.iter().filter(|e| e["eventId"] == ev.as_str()).count() >= 3
    })
    .await;
    let r = s
        .http
        .post(&format!("/v1/events/{ev}/redeliver"), key, &json!({}))
        .await;
    assert_eq!(r.body["endpointIds"].as_array().unwrap().len(), 2);
    rx.wait("the redelivery to all", |l| {
        l.iter().filter(|e| e["eventId"] == ev.as_str()).count() >= 5
    })
    .await;
    s.http
        .post(
            &format!("/v1/events/{ev}/redeliver"),
            key,
            &json!({"endpointId": "we_nope"}),
        )
        .await
        .expect_error(400, "INVALID_PARAMETERS");
    s.http
        .post("/v1/events/evt_nope/redeliver", key, &json!({}))
        .await
        .expect_error(404, "NOT_FOUND");
    // Endpoints and events are for secret keys only.
    s.http
        .get("/v1/webhook-endpoints", &org.test.publishable)
        .await
        .expect_error(403, "PERMISSIONS_ERROR");
    s.http
        .get("/v1/events", &org.test.publishable)
        .await
        .expect_error(403, "PERMISSIONS_ERROR");
    // Events are read-only.
    s.http
        .send("DELETE", &format!("/v1/events/{ev}"), Some(key), None, &[])
        .await
        .expect_error(405, "METHOD_NOT_SUPPORTED");
}

#[both_stores]
async fn live_mode_refuses_unsafe_destinations() {
    let s = server("none").await;
    let org = s.org("Ssrf", true).await;
    let live = org.live.secret.as_str();
    let cases = [
        ("http://hooks.example.com/in", "https"),
        ("https://127.0.0.1/in", "loopback"),
        ("https://localhost:8443/in", "loopback"),
        ("https://10.1.2.3/in", "private"),
        ("https://172.16.5.4/in", "private"),
        ("https://192.168.0.10/in", "private"),
        ("https://169.254.169.254/latest/meta-data", "metadata"),
        ("https://100.64.1.1/in", "carrier-grade NAT"),
        ("https://224.0.0.251/in", "multicast"),
        ("https://[::1]/in", "loopback"),
        ("https://[fd00:ec2::254]/in", "metadata"),
        ("https://[fe80::1]/in", "link-local"),
    ];
    for (url, why) in cases {
        let r = s
            .http
            .post(
                "/v1/webhook-endpoints",
                live,
                &json!({"url": url, "enabledEvents": ["*"]}),
            )
            .await;
        r.expect_error(400, "INVALID_PARAMETERS");
        assert_eq!(r.body["errors"][0]["field"], "url");
        assert!(
            r.body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains(why),
            "{url}: {}",
            r.body
        );
    }
    // Test mode allows http to any host; bad patterns are refused in any mode.
    let test = org.test.secret.as_str();
    s.http
        .post(
            "/v1/webhook-endpoints",
            test,
            &json!({"url": "http://127.0.0.1:9/x", "enabledEvents": ["patient.created"]}),
        )
        .await
        .expect(201);
    for bad in [
        json!(["nothing.created"]),
        json!(["test.event"]),
        json!([]),
        json!(["patient.exploded"]),
    ] {
        s.http
            .post(
                "/v1/webhook-endpoints",
                test,
                &json!({"url": "http://127.0.0.1:9/x", "enabledEvents": bad}),
            )
            .await
            .expect_error(400, "INVALID_PARAMETERS");
    }
    let r = s.http.post("/v1/webhook-endpoints", test, &json!({"url": "http://127.0.0.1:9/x", "enabledEvents": ["*"], "headers": {"Hub-Signature": "forged"}})).await;
    r.expect_error(400, "INVALID_PARAMETERS");
    assert_eq!(r.body["errors"][0]["field"], "headers.Hub-Signature");
    s.http
        .post(
            "/v1/webhook-endpoints",
            test,
            &json!({"url": "ftp://x", "enabledEvents": ["*"]}),
        )
        .await
        .expect_error(400, "INVALID_PARAMETERS");
}

#[both_stores]
async fn https_endpoints_are_delivered_over_verified_tls() {
    let dir = TempDir::new("tls");
    // A private CA and a server certificate for 127.0.0.1 it signed.
    let (ca, ca_key) = (dir.path().join("ca.pem"), dir.path().join("ca.key"));
    let (cert, key_file, csr, ext) = (
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
        dir.path().join("leaf.csr"),
        dir.path().join("ext.cnf"),
    );
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let run = |cmd: &mut std::process::Command| {
        let out = cmd.output().expect("openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let openssl = || {
        let mut c = std::process::Command::new("openssl");
        c.env("OPENSSL_CONF", "/dev/null");
        c
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    run(openssl()
        .args(["req", "-x509"])
        .args(ec)
        .args(["-days", "1", "-subj", "/CN=Hub Test CA", "-keyout"])
        .arg(&ca_key)
        .arg("-out")
        .arg(&ca));
    run(openssl()
        .arg("req")
        .args(ec)
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(&key_file)
        .arg("-out")
        .arg(&csr));
    run(openssl()
        .args(["x509", "-req", "-days", "1", "-CAcreateserial", "-in"])
        .arg(&csr)
        .arg("-CA")
        .arg(&ca)
        .arg("-CAkey")
        .arg(&ca_key)
        .arg("-out")
        .arg(&cert)
        .arg("-extfile")
        .arg(&ext));
    let (rx, https) = Receiver::start_tls(&cert, &key_file);
    // A hub that trusts the receiver's certificate (a private CA)…
    let trusting = DeliveryConfig {
        tls: hub::tls::client_config(Some(&ca)).unwrap(),
        ..fast("none")
    };
    let s = TestServer::start_full(
        hub::api::Config {
            rate_limits: hub::auth::ratelimit::Limits::OFF,
            ..Default::default()
        },
        trusting,
    )
    .await;
    let org = s.org("Tls", true).await;
    let key = org.test.secret.as_str();
    let (ep, secret) = endpoint(&s, key, format!("{https}/ok"), &["clinic.created"]).await;
    rx.secrets("/ok", &[&secret]).await;
    let c = s
        .http
        .post("/v1/clinics", key, &json!({"name": "Over TLS"}))
        .await
        .id();
    let log = rx
        .wait("the https delivery", |l| {
            l.iter().any(|e| e["body"]["data"]["id"] == c.as_str())
        })
        .await;
    let e = log
        .iter()
        .find(|e| e["body"]["data"]["id"] == c.as_str())
        .unwrap();
    assert_eq!(e["stripe"], json!([true]));
    assert_eq!(e["standard"], json!([true]));
    let rows = eventually("the attempt in the log", || async {
        let r = s
            .http
            .get(&format!("/v1/webhook-endpoints/{ep}/deliveries"), key)
            .await;
        (!r.body["data"][0].is_null()).then_some(r)
    })
    .await;
    assert_eq!(rows.body["data"][0]["status"], "succeeded");
    // …and one with only the public roots: the self-signed certificate is refused.
    let strict = TestServer::start_full(
        hub::api::Config {
            rate_limits: hub::auth::ratelimit::Limits::OFF,
            ..Default::default()
        },
        fast("none"),
    )
    .await;
    let org = strict.org("Strict", true).await;
    let key = org.test.secret.as_str();
    let (ep, _) = endpoint(&strict, key, format!("{https}/ok"), &["clinic.created"]).await;
    strict
        .http
        .post("/v1/clinics", key, &json!({"name": "Untrusted"}))
        .await
        .expect(201);
    let mut row = Value::Null;
    for _ in 0..400 {
        let rows = strict
            .http
            .get(&format!("/v1/webhook-endpoints/{ep}/deliveries"), key)
            .await;
        if let Some(r) = rows.body["data"]
            .as_array()
            .and_then(|a| a.first())
            .cloned()
        {
            row = r;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(row["status"], "dead", "{row}");
    assert!(row["error"].as_str().unwrap().starts_with("TLS"), "{row}");
    assert!(!rx
        .log()
        .await
        .iter()
        .any(|e| e["body"]["data"]["name"] == "Untrusted"));
}

/// An event another process wrote into the data directory (a second `hub
/// serve`, a `hub` command) is delivered by this one's loops even when no
/// request reaches this one afterwards: the fan-out and the delivery read
/// the store as it is, not as this process last looked at it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_written_by_another_process_are_delivered() {
    let rx = Receiver::start();
    let s = server("300ms").await;
    let org = s.org("Neighbours", true).await;
    let key = org.test.secret.as_str();
    let (_, secret) = endpoint(
        &s,
        key,
        format!("{}/ok", rx.base),
        &["clinic.created", "patient.created"],
    )
    .await;
    rx.secrets("/ok", &[&secret]).await;
    // The other process: its own store over the same database file.
    let other = TestServer::start_on(s.another_process_store()).await;
    let clinic = other
        .http
        .post("/v1/clinics", key, &json!({"name": "Written Elsewhere"}))
        .await
        .id();
    let ev = other
        .http
        .get(&format!("/v1/events?data.id={clinic}"), key)
        .await
        .ids()[0]
        .clone();
    let log = rx
        .wait("the other process's event delivered", |log| {
            !of_event(log, "/ok", &ev).is_empty()
        })
        .await;
    let got = of_event(&log, "/ok", &ev)[0];
    assert_eq!(got["stripe"], json!([true]), "{got}");
    assert_eq!(got["standard"], json!([true]), "{got}");
}
