//! The `hub` binary as a user runs it: `hub serve` in its own process,
//! `hub org create` beside it, a `kill -9` and a restart.

use hub_tests::*;
use std::process::Command;
use std::time::Duration;

const HUB: &str = env!("CARGO_BIN_EXE_hub");

/// Start `hub serve` on a free port; read the banner it prints.
fn serve(dir: &std::path::Path) -> Served {
    serve_with(dir, &[])
}

/// Start `hub serve` with extra arguments (e.g. a fast retry schedule).
fn serve_with(dir: &std::path::Path, extra: &[&str]) -> Served {
    serve_env(dir, extra, &[])
}

/// The same with extra environment variables.
fn serve_env(dir: &std::path::Path, extra: &[&str], env: &[(&str, &str)]) -> Served {
    Served::start(HUB, dir, extra, env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9_and_the_sandbox_keys_stay() {
    let dir = TempDir::new("kill9");
    let first = serve(dir.path());
    let http = Http::new(first.base.clone());
    let before = http.get("/v1/patients?$limit=0", &first.secret).await;
    before.expect(200);
    let sandbox_patients = before.body["total"].as_u64().unwrap();
    assert!(sandbox_patients >= 24, "sandbox loaded on first start");
    let mut ids = Vec::new();
    for i in 0..25 {
        let c = http
            .post(
                "/v1/clinics",
                &first.secret,
                &json!({"name": format!("Clinic {i}")}),
            )
            .await;
        c.expect(201);
        ids.push(c.id());
    }
    let patched = http
        .patch(
            &format!("/v1/clinics/{}", ids[0]),
            &first.secret,
            &json!({"name": "Renamed"}),
        )
        .await;
    patched.expect(200);
    let (secret, org) = (first.secret.clone(), first.org.clone());
    first.kill9();

    let second = serve(dir.path());
    assert_eq!(
        second.secret, secret,
        "the same sandbox and keys after restart"
    );
    assert_eq!(second.org, org);
    let http = Http::new(second.base.clone());
    for id in &ids {
        http.get(&format!("/v1/clinics/{id}"), &secret)
            .await
            .expect(200);
    }
    let g = http.get(&format!("/v1/clinics/{}", ids[0]), &secret).await;
    assert_eq!(g.body["name"], "Renamed");
    assert_eq!(g.body["version"], 2);
    let after = http.get("/v1/patients?$limit=0", &secret).await;
    assert_eq!(
        after.body["total"].as_u64().unwrap(),
        sandbox_patients,
        "the sandbox is not loaded twice"
    );
    second.kill9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn org_create_works_beside_a_running_server() {
    let dir = TempDir::new("orgcreate");
    let served = serve(dir.path());
    let out = Command::new(HUB)
        .args(["org", "create", "--name", "Hearing Co", "--json", "--data"])
        .arg(dir.path())
        .output()
        .expect("hub org create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let org = created["organizationId"].as_str().unwrap();
    assert!(org.starts_with("org_"));
    let keys = &created["keys"];
    for (mode, kind, prefix) in [
        ("test", "secret", "sk_test_"),
        ("test", "publishable", "pk_test_"),
        ("live", "secret", "sk_live_"),
        ("live", "publishable", "pk_live_"),
    ] {
        assert!(
            keys[mode][kind].as_str().unwrap().starts_with(prefix),
            "{created}"
        );
    }
    // The running server accepts the new keys at once and sees the sandbox.
    let http = Http::new(served.base.clone());
    let test_key = keys["test"]["secret"].as_str().unwrap();
    let r = http.get("/v1/patients?$limit=0", test_key).await;
    r.expect(200);
    assert!(r.body["total"].as_u64().unwrap() >= 24);
    let live = http
        .get(
            "/v1/patients?$limit=0",
            keys["live"]["secret"].as_str().unwrap(),
        )
        .await;
    assert_eq!(live.body["total"], 0);
    // --empty skips the sandbox; the plain form prints the keys for people.
    let out = Command::new(HUB)
        .args(["org", "create", "--name", "Bare", "--empty", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let sk = text
        .lines()
        .find(|l| l.contains("test secret key:"))
        .and_then(|l| l.split_whitespace().last())
        .unwrap()
        .to_string();
    let r = http.get("/v1/patients?$limit=0", &sk).await;
    assert_eq!(r.body["total"], 0);
    // Bad usage is a clear error, not a panic.
    let out = Command::new(HUB)
        .args(["org", "create", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--name"));
    served.kill9();
}

/// SIGTERM (what service managers and containers send) stops `hub serve`
/// as SIGINT does: it exits successfully, having written the log line of
/// every request it answered, the last one too (sent at once after it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_writes_every_request_line_before_exiting() {
    for run in 0..3 {
        let dir = TempDir::new("sigterm");
        let served = serve(dir.path());
        let http = Http::new(served.base.clone());
        let mut ids = Vec::new();
        for _ in 0..3 {
            let r = http.get("/v1/patients?$limit=1", &served.secret).await;
            r.expect(200);
            ids.push(r.header("request-id").expect("Request-Id").to_string());
        }
        let (clean, logs) = served.signal("TERM");
        assert!(
            clean,
            "run {run}: hub serve did not exit cleanly on SIGTERM:\n{logs}"
        );
        for id in &ids {
            assert!(
                logs.lines()
                    .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                    .any(|l| l["requestId"] == json!(id) && l["status"] == 200),
                "run {run}: request {id} not in the log:\n{logs}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_carry_error_ids_but_no_keys_or_patient_data() {
    let dir = TempDir::new("logs");
    let served = serve(dir.path());
    let http = Http::new(served.base.clone());
    let key = served.secret.clone();
    let mut body = patient_body(
        "Zebedee Quartermaine",
        "St. Mungo's Clinic – London",
        "Active",
        "Google",
    );
    body["emailAddress"] = json!("zebedee.private@example.com");
    body["medicalNumber"] = json!("999 888 7777");
    let created = http.post("/v1/patients", &key, &body).await;
    let failed = http
        .get("/v1/patients?fullName[$bogus]=Zebedee+Quartermaine", &key)
        .await;
    failed.expect_error(400, "INVALID_PARAMETERS");
    let unauth = http
        .get("/v1/patients", &format!("sk_test_{}", "Q".repeat(40)))
        .await;
    unauth.expect_error(401, "AUTH_ERROR");
    let publishable = served.publishable.clone();
    http.get("/v1/patients", &publishable)
        .await
        .expect_error(403, "PERMISSIONS_ERROR");
    let org = served.org.clone();
    let logs = served.stop();
    // One JSON line per request, under the id the response carried.
    let request_id = created
        .header("request-id")
        .expect("Request-Id")
        .to_string();
    let line: serde_json::Value = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["requestId"] == json!(request_id))
        .unwrap_or_else(|| panic!("request {request_id} not in logs:\n{logs}"));
    assert_eq!(line["level"], "info", "{line}");
    assert_eq!(line["status"], 201, "{line}");
    assert_eq!(line["method"], "POST", "{line}");
    assert_eq!(line["organizationId"], json!(org), "{line}");
    assert_eq!(line["mode"], "test", "{line}");
    assert!(
        line["route"].as_str().is_some_and(|r| !r.is_empty()),
        "{line}"
    );
    assert!(line["durationMs"].is_number(), "{line}");
    for e in [&failed, &unauth] {
        let id = e.body["eventId"].as_str().unwrap();
        let line = logs
            .lines()
            .find(|l| l.contains(id))
            .unwrap_or_else(|| panic!("eventId {id} not in logs:\n{logs}"));
        assert!(line.contains(e.body["name"].as_str().unwrap()), "{line}");
    }
    assert!(logs.lines().count() >= 4);
    for secret in [
        key.as_str(),
        publishable.as_str(),
        "QQQQQQQQ",
        "Zebedee",
        "Quartermaine",
        "zebedee.private",
        "999 888 7777",
    ] {
        assert!(
            !logs.contains(secret),
            "`{secret}` leaked into the logs:\n{logs}"
        );
    }
    created.expect(201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_pending_at_kill_9_are_made_after_restart() {
    let dir = TempDir::new("queue");
    // A port with nobody listening yet: deliveries fail and wait for a retry.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let first = serve_with(
        dir.path(),
        &[
            "--retry-schedule",
            "1s,1s,1s,1s,1s,1s,1s,1s,1s,1s",
            "--delivery-timeout",
            "2s",
        ],
    );
    let http = Http::new(first.base.clone());
    let key = first.secret.clone();
    let ep = http
        .post("/v1/webhook-endpoints", &key, &json!({"url": format!("http://127.0.0.1:{port}/ok"), "enabledEvents": ["clinic.created"]}))
        .await;
    ep.expect(201);
    let (ep_id, secret) = (ep.id(), ep.body["secret"].as_str().unwrap().to_string());
    let mut clinics = Vec::new();
    for i in 0..5 {
        clinics.push(
            http.post("/v1/clinics", &key, &json!({"name": format!("Queued {i}")}))
                .await
                .id(),
        );
    }
    // Wait (bounded) until every event has failed at least once: all are queued for retry.
    for _ in 0..600 {
        let rows = http
            .get(
                &format!("/v1/webhook-endpoints/{ep_id}/deliveries?$limit=100"),
                &key,
            )
            .await;
        let failed: std::collections::HashSet<String> = rows.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["eventId"].as_str().unwrap().to_string())
            .collect();
        if failed.len() == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.kill9();

    let rx = Receiver::start_on(port);
    rx.secrets("/ok", &[&secret]).await;
    let second = serve_with(
        dir.path(),
        &["--retry-schedule", "1s,1s,1s,1s,1s,1s,1s,1s,1s,1s"],
    );
    let log = rx
        .wait("every queued event after the restart", |l| {
            let names: std::collections::HashSet<&str> = l
                .iter()
                .filter_map(|e| e["body"]["data"]["name"].as_str())
                .collect();
            (0..5).all(|i| names.contains(format!("Queued {i}").as_str()))
        })
        .await;
    for e in &log {
        assert_eq!(e["stripe"], json!([true]), "{e}");
        assert_eq!(e["standard"], json!([true]), "{e}");
    }
    second.kill9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn org_create_works_against_dynamodb() {
    let endpoint = std::env::var("HUB_TEST_DYNAMODB_ENDPOINT").expect(
        "HUB_TEST_DYNAMODB_ENDPOINT is not set: run scripts/test.sh, which starts DynamoDB Local",
    );
    let client = hub::store::dynamodb::local_client(&endpoint, "us-east-1").await;
    let table = format!("hub-cli-{}", hub::ids::ulid().to_lowercase());
    let aws_env = [
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];
    // `hub table create` makes the table as the template does.
    let made = Command::new(HUB)
        .args([
            "table",
            "create",
            "--table",
            &table,
            "--endpoint-url",
            &endpoint,
        ])
        .envs(aws_env)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let described = client
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let t = described.table().unwrap();
    assert_eq!(
        t.global_secondary_indexes().len(),
        hub::store::dynamodb::INDEXES.len()
    );
    assert!(t.stream_specification().unwrap().stream_enabled());
    let out = Command::new(HUB)
        .args([
            "org",
            "create",
            "--name",
            "Cloud Clinic",
            "--json",
            "--empty",
            "--table",
            &table,
            "--endpoint-url",
            &endpoint,
        ])
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // `hub table backfill` (for tables made before the index entries) runs
    // over it, and again: idempotent.
    for _ in 0..2 {
        let filled = Command::new(HUB)
            .args([
                "table",
                "backfill",
                "--table",
                &table,
                "--endpoint-url",
                &endpoint,
            ])
            .envs(aws_env)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&filled.stdout);
        assert!(
            filled.status.success() && said.starts_with(&format!("backfilled {table}:")),
            "{said} {}",
            String::from_utf8_lossy(&filled.stderr)
        );
    }
    // The key works against the API over that table.
    let store = std::sync::Arc::new(hub::store::dynamodb::DynamoStore::new(
        client,
        table,
        hub::resources::kinds(),
    ));
    let s = TestServer::start_on(store).await;
    let r = s
        .http
        .get(
            "/v1/patients?$limit=0",
            created["keys"]["test"]["secret"].as_str().unwrap(),
        )
        .await;
    r.expect(200);
    assert_eq!(r.body["total"], 0);
}

/// What every AWS client of a test gets: a region, static test credentials,
/// and no instance metadata.
const AWS_ENV: [(&str, &str); 4] = [
    ("AWS_REGION", "us-east-1"),
    ("AWS_ACCESS_KEY_ID", "test"),
    ("AWS_SECRET_ACCESS_KEY", "test"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
];

/// `hub serve --table` over DynamoDB Local and moto under a load of writes,
/// killed with SIGKILL three times and started again: every acknowledged
/// write is there, every event is delivered to the receiver and verified
/// with both official libraries, the sandbox is loaded once and keeps its
/// keys, and `hub org create --table` works beside the running server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_mode_survives_kill_9_under_load_and_delivers_every_event() {
    let ddb = aws_endpoint("HUB_TEST_DYNAMODB_ENDPOINT");
    let sqs = aws_endpoint("HUB_TEST_SQS_ENDPOINT");
    let dir = TempDir::new("aws-kill9");
    let table = format!("hub-kill9-{}", hub::ids::ulid().to_lowercase());
    let args = [
        "--table",
        table.as_str(),
        "--endpoint-url",
        ddb.as_str(),
        "--sqs-endpoint-url",
        sqs.as_str(),
        "--retry-schedule",
        "1s,1s,1s,1s,1s,1s,1s,1s,1s,1s",
        "--delivery-timeout",
        "2s",
        // A message in hand at a kill is received again after 5 s (not 90).
        "--queue-visibility",
        "5s",
        "--stream-poll",
        "20ms",
    ];
    let rx = Receiver::start();
    let mut served = serve_env(dir.path(), &args, &AWS_ENV);
    let (secret, org) = (served.secret.clone(), served.org.clone());
    let mut http = Http::new(served.base.clone());
    let sandbox = http.get("/v1/patients?$limit=0", &secret).await;
    sandbox.expect(200);
    let sandbox_patients = sandbox.body["total"].as_u64().unwrap();
    assert!(
        sandbox_patients >= 24,
        "the sandbox is loaded into the table"
    );
    let ep = http
        .post(
            "/v1/webhook-endpoints",
            &secret,
            &json!({"url": format!("{}/ok", rx.base), "enabledEvents": ["clinic.created"]}),
        )
        .await;
    ep.expect(201);
    rx.secrets("/ok", &[ep.body["secret"].as_str().unwrap()])
        .await;
    // `hub org create` against the same table, beside the running server.
    let out = Command::new(HUB)
        .args(["org", "create", "--name", "Cloud Clinic", "--json"])
        .args(["--table", &table, "--endpoint-url", &ddb])
        .envs(AWS_ENV)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let cloud_key = created["keys"]["test"]["secret"].as_str().unwrap();
    let r = http.get("/v1/patients?$limit=0", cloud_key).await;
    r.expect(200);
    assert!(r.body["total"].as_u64().unwrap() >= 24, "its sandbox too");

    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    for round in 0..3 {
        // Eight writers, until the server dies under them.
        let mut writers = Vec::new();
        for w in 0..8 {
            let (http, key, acked) = (http.clone(), secret.clone(), acked.clone());
            writers.push(tokio::spawn(async move {
                for i in 0.. {
                    let body = json!({"name": format!("Crash {round}-{w}-{i}")});
                    match http.try_post("/v1/clinics", &key, &body).await {
                        Ok(r) if r.status == 201 => acked.lock().unwrap().push(r.id()),
                        Ok(r) => panic!("unexpected {}: {}", r.status, r.body),
                        Err(_) => return,
                    }
                }
            }));
        }
        let target = (round + 1) * 40;
        for _ in 0..600 {
            if acked.lock().unwrap().len() >= target {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(acked.lock().unwrap().len() >= target, "writes go through");
        served.kill9();
        for w in writers {
            w.await.unwrap();
        }
        served = serve_env(dir.path(), &args, &AWS_ENV);
        assert_eq!(served.secret, secret, "the same sandbox after a restart");
        assert_eq!(served.org, org);
        http = Http::new(served.base.clone());
    }
    // Every acknowledged write is there.
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 120);
    for id in &acked {
        http.get(&format!("/v1/clinics/{id}"), &secret)
            .await
            .expect(200);
    }
    // Every event of the load (of acknowledged writes, and of any write that
    // committed before its answer was lost) reaches the receiver, verified.
    // (The sandbox's clinics came before the endpoint: not for it.)
    let mut events = Vec::new();
    let mut query = "type=clinic.created&$limit=100".to_string();
    loop {
        let page = http.get(&format!("/v1/events?{query}"), &secret).await;
        page.expect(200);
        events.extend(
            page.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| {
                    e["data"]["name"]
                        .as_str()
                        .is_some_and(|n| n.starts_with("Crash "))
                })
                .map(|e| e["id"].as_str().unwrap().to_string()),
        );
        match page.body["next"].as_str() {
            Some(next) => query = format!("type=clinic.created&$limit=100&$after={next}"),
            None => break,
        }
    }
    assert!(events.len() >= acked.len(), "{} events", events.len());
    let log = rx
        .wait("every event after three kills", |l| {
            let seen: std::collections::HashSet<&str> = l
                .iter()
                .filter(|e| e["path"] == "/ok")
                .filter_map(|e| e["eventId"].as_str())
                .collect();
            events.iter().all(|e| seen.contains(e.as_str()))
        })
        .await;
    for e in log.iter().filter(|e| e["path"] == "/ok") {
        assert_eq!(e["stripe"], json!([true]), "{e}");
        assert_eq!(e["standard"], json!([true]), "{e}");
    }
    let after = http.get("/v1/patients?$limit=0", &secret).await;
    assert_eq!(
        after.body["total"].as_u64().unwrap(),
        sandbox_patients,
        "the sandbox is not loaded twice"
    );
    served.kill9();
}

/// `hub audit --data DIR`: a sandbox's derived values agree with its objects
/// (exit 0); one invoice's balance changed behind the hub's back is reported
/// by name (exit 1), and so is a guard item that lost its booking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_finds_a_corrupted_balance_and_guard() {
    use hub::store::{Expect, Store, WriteOp, WriteTx};
    let dir = TempDir::new("audit");
    let out = Command::new(HUB)
        .args(["org", "create", "--name", "Audited", "--json", "--data"])
        .arg(dir.path())
        .output()
        .expect("hub org create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tenant = format!("{}#test", created["organizationId"].as_str().unwrap());
    let audit = || {
        Command::new(HUB)
            .args(["audit", "--data"])
            .arg(dir.path())
            .output()
            .expect("hub audit")
    };
    let clean = audit();
    let text = String::from_utf8_lossy(&clean.stdout).to_string();
    assert!(
        clean.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&clean.stderr)
    );
    assert!(text.contains(": 0 differences"), "{text}");
    assert!(
        text.contains(" invoices") && text.contains(" appointment-guards"),
        "{text}"
    );

    let store =
        hub::store::embedded::EmbeddedStore::open(dir.path(), hub::resources::kinds()).unwrap();
    let invoices = store.all(&tenant, "invoices").await.unwrap();
    let invoice = invoices
        .iter()
        .find(|i| i["status"] == "open" || i["status"] == "partiallyPaid")
        .expect("the sandbox has an open invoice");
    let id = invoice["id"].as_str().unwrap().to_string();
    let mut doc = (**invoice).clone();
    doc["balance"] = json!(doc["balance"].as_i64().unwrap() + 1);
    let version = doc["version"].as_u64().unwrap();
    doc["version"] = json!(version + 1);
    let guards = store.all(&tenant, "appointment-guards").await.unwrap();
    let guard = guards
        .iter()
        .find(|g| g["bookings"].as_array().is_some_and(|b| !b.is_empty()))
        .expect("a guard with a booking");
    let gid = guard["id"].as_str().unwrap().to_string();
    let mut emptied = (**guard).clone();
    emptied["bookings"] = json!([]);
    emptied["version"] = json!(guard["version"].as_u64().unwrap() + 1);
    store
        .commit(WriteTx::of(vec![
            WriteOp::Put {
                tenant: tenant.clone(),
                kind: "invoices",
                id: id.clone(),
                doc,
                expect: Expect::Version(version),
            },
            WriteOp::Put {
                tenant: tenant.clone(),
                kind: "appointment-guards",
                id: gid.clone(),
                doc: emptied,
                expect: Expect::Version(guard["version"].as_u64().unwrap()),
            },
        ]))
        .await
        .unwrap();
    drop(store);

    let found = audit();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&found.stdout),
        String::from_utf8_lossy(&found.stderr)
    );
    assert_eq!(found.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!("invoices/{id} balance: stored")),
        "{text}"
    );
    assert!(
        text.contains(&format!("appointment-guards/{gid} bookings: stored []")),
        "{text}"
    );
    assert!(text.contains(": 2 differences"), "{text}");
}
