//! The contract of `hub serve` as a process: idempotency keys through a
//! `kill -9`, a private data directory, and connections that never finish
//! their headers.

use hub_tests::*;
use std::time::Duration;

const HUB: &str = env!("CARGO_BIN_EXE_hub");

/// Requests with Idempotency-Keys in flight at a `kill -9`: after a restart
/// each key, retried as a client would, either replays its first response
/// or runs once — one patient per key, never two, and never stuck.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_survive_kill_9_exactly_once() {
    let dir = TempDir::new("idem-kill9");
    let env = [("HUB_IDEMPOTENCY_LEASE", "1s")];
    let first = Served::start(HUB, dir.path(), &["--log", "off"], &env);
    let key = first.secret.clone();
    let http = Http::new(first.base.clone());
    let tag = hub::ids::ulid();
    // Reference data by id: the sandbox's.
    let clinic = http.get("/v1/clinics?$limit=1", &key).await.ids()[0].clone();
    let status = http.get("/v1/patient-statuses?$limit=1", &key).await.ids()[0].clone();
    let referral = http.get("/v1/referral-sources?$limit=1", &key).await.ids()[0].clone();
    let name_tag = tag.clone();
    let body = move |i: usize| {
        json!({
            "fullName": format!("Crash {name_tag} {i}"),
            "primaryPhoneNumber": "07700 900123",
            "primaryClinicId": clinic,
            "statusId": status,
            "referralId": referral,
            "tracking": {},
        })
    };
    const N: usize = 150;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..N {
        let (http, key, b, done) = (http.clone(), key.clone(), body(i), done.clone());
        tasks.push(tokio::spawn(async move {
            let idem = format!("crash-{i}");
            let r = http
                .try_send(
                    "POST",
                    "/v1/patients",
                    Some(&key),
                    Some(Bytes::from(b.to_string())),
                    &[("idempotency-key", idem.as_str())],
                )
                .await
                .ok();
            done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            r
        }));
    }
    // Kill while some requests are done, some running, some not started.
    while done.load(std::sync::atomic::Ordering::SeqCst) < N / 4 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    first.kill9();
    let mut before = Vec::new();
    for t in tasks {
        before.push(t.await.unwrap());
    }
    let second = Served::start(HUB, dir.path(), &["--log", "off"], &env);
    let http = Http::new(second.base.clone());
    let (mut replayed, mut fresh) = (0, 0);
    for (i, earlier) in before.iter().enumerate() {
        let idem = format!("crash-{i}");
        let mut answer = None;
        // A claim whose request died is free after its lease (1 s here).
        for _ in 0..400 {
            let r = http
                .send(
                    "POST",
                    "/v1/patients",
                    Some(&key),
                    Some(Bytes::from(body(i).to_string())),
                    &[("idempotency-key", idem.as_str())],
                )
                .await;
            if r.status == 409 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            answer = Some(r);
            break;
        }
        let r = answer.unwrap_or_else(|| panic!("key {i} stayed in progress"));
        r.expect(201);
        if r.header("idempotent-replayed") == Some("true") {
            replayed += 1;
        } else {
            fresh += 1;
        }
        if let Some(e) = earlier.as_ref().filter(|e| e.status == 201) {
            assert_eq!(r.header("idempotent-replayed"), Some("true"), "key {i}");
            assert_eq!(r.body, e.body, "key {i}: the first response, again");
        }
    }
    // Exactly one patient per key.
    let list = http
        .get(&format!("/v1/patients?$search=%22{tag}%22&$limit=0"), &key)
        .await;
    list.expect(200);
    assert_eq!(list.body["total"], N, "one patient per key");
    eprintln!("after the kill: {replayed} replayed, {fresh} ran afresh");
    assert_eq!(replayed + fresh, N);
    second.kill9();
}

/// The data directory is private: 0700, and every file in it 0600.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let parent = TempDir::new("modes");
    let dir = parent.path().join("data");
    let served = Served::start(HUB, &dir, &["--log", "off"], &[]);
    let http = Http::new(served.base.clone());
    http.post("/v1/clinics", &served.secret, &json!({"name": "Private"}))
        .await
        .expect(201);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700, "the data directory");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        assert_eq!(mode(&p), 0o600, "{}", p.display());
        files += 1;
    }
    assert!(
        files >= 4,
        "database, its WAL and index, sandbox keys, cursor key"
    );
    served.kill9();
}

/// Thousands of connections that never finish their headers do not stop
/// `hub serve` answering, and each is closed after the header timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_are_closed_and_do_not_block() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = TempDir::new("slowloris");
    let served = Served::start(
        HUB,
        dir.path(),
        &["--log", "off", "--header-timeout", "2s"],
        &[],
    );
    let addr = served.base.trim_start_matches("http://").to_string();
    const N: usize = 2000;
    let mut hanging = Vec::with_capacity(N);
    for i in 0..N {
        let mut s = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        if i % 2 == 0 {
            // Headers begun, never finished.
            s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .await
                .unwrap();
        }
        hanging.push(s);
    }
    // Meanwhile the server answers at once.
    let http = Http::new(served.base.clone());
    let r = http.get("/v1/clinics?$limit=1", &served.secret).await;
    r.expect(200);
    // An idle keep-alive connection is closed too.
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    hanging.push(idle);
    // Every hanging connection is closed by the server (EOF), well within a
    // generous bound.
    let closed = tokio::time::timeout(Duration::from_secs(60), async {
        let mut n = 0;
        for mut s in hanging {
            let mut buf = [0u8; 4096];
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => continue,
                }
            }
            n += 1;
        }
        n
    })
    .await
    .expect("the server closes half-open and idle connections");
    assert_eq!(closed, N + 1);
    // On a new connection: the client's pooled one (from the list above)
    // was idle past the header timeout too, and the server closing it may
    // cross this request on the wire.
    Http::new(served.base.clone())
        .get("/health", &served.secret)
        .await
        .expect(200);
    served.kill9();
}
