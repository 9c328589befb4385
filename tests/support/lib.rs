//! Black-box test support: the real server on a random port, a small HTTP
//! client, and helpers to run the `hub` binary.
//!
//! A test marked `#[both_stores]` (instead of `#[tokio::test]`) runs twice,
//! as `name::embedded` and `name::dynamodb`: every `TestServer` it starts is
//! `hub serve` over the embedded store, or over DynamoDB Local and moto's SQS
//! (a fresh table and queues, and the two pollers that stand in for Lambda's
//! event source mappings), as `hub serve --table` runs it.

use http_body_util::{BodyExt, Full};
use hub::api::{App, Config};
use hub::org::CreatedOrg;
use hub::store::embedded::EmbeddedStore;
use hub::store::DynStore;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

pub use bytes::Bytes;
pub use serde_json::json;

pub mod dynamo;
mod served;
pub use hub_test_macros::both_stores;
pub use served::Served;

/// The store (and queue) a `TestServer` runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `hub serve`: the embedded store and its durable queue.
    Embedded,
    /// `hub serve --table`: DynamoDB Local, moto's SQS and the pollers.
    DynamoDb,
}

tokio::task_local! {
    static BACKEND: Backend;
}

impl Backend {
    /// Run a test body with this backend for every server it starts.
    pub async fn scope<F: std::future::Future>(self, body: F) -> F::Output {
        BACKEND.scope(self, body).await
    }

    /// The backend of the running test (`Embedded` outside `#[both_stores]`).
    pub fn current() -> Backend {
        BACKEND.try_with(|b| *b).unwrap_or(Backend::Embedded)
    }
}

/// An endpoint scripts/test.sh exports; its absence fails the test loudly.
pub fn aws_endpoint(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: run scripts/test.sh, which starts DynamoDB Local and moto's \
             server and exports HUB_TEST_DYNAMODB_ENDPOINT and HUB_TEST_SQS_ENDPOINT"
        )
    })
}

/// Fast polling for tests: a shard is read every 20 ms; long polls of 20 s
/// return as soon as a message arrives. (Pass or fail never depends on it.)
pub fn test_polling() -> hub::aws::local::Polling {
    hub::aws::local::Polling {
        stream_interval: Duration::from_millis(20),
        ..Default::default()
    }
}

/// A fresh table, delivery queue and dead-letter queue on DynamoDB Local and
/// moto, as `hub serve --table` makes them (static test credentials).
pub async fn local_aws(tag: &str, attempts: u32) -> hub::aws::local::LocalAws {
    let ddb =
        hub::aws::local_config(&aws_endpoint("HUB_TEST_DYNAMODB_ENDPOINT"), "us-east-1").await;
    let sqs = hub::aws::local_config(&aws_endpoint("HUB_TEST_SQS_ENDPOINT"), "us-east-1").await;
    let table = format!("hub-{tag}-{}", hub::ids::ulid().to_lowercase());
    let settings = hub::aws::local::QueueSettings {
        attempts,
        visibility: hub::aws::local::QUEUE_VISIBILITY,
    };
    hub::aws::local::LocalAws::open(&ddb, &sqs, &table, settings)
        .await
        .unwrap_or_else(|e| panic!("the table and queues on DynamoDB Local and moto: {e}"))
}

/// A fresh temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("hub-test-{tag}-{}", hub::ids::ulid()));
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Value,
    pub raw: Bytes,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn id(&self) -> String {
        self.body["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no id in {}", self.body))
            .to_string()
    }
    /// The ids of a list response, in order.
    pub fn ids(&self) -> Vec<String> {
        self.body["data"]
            .as_array()
            .unwrap_or_else(|| panic!("not a list: {}", self.body))
            .iter()
            .map(|d| d["id"].as_str().unwrap().to_string())
            .collect()
    }
    /// Assert the status and, for errors, the envelope.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.body
        );
        if status >= 400 && self.body["resourceType"] == "OperationOutcome" {
            // The FHIR facade's errors: the same name, message and event id.
            let (name, message) = error_parts(&self.body);
            assert!(
                !name.is_empty() && !message.is_empty(),
                "OperationOutcome without details or diagnostics: {}",
                self.body
            );
            assert!(
                self.body["id"].as_str().is_some_and(|s| s.len() == 36),
                "OperationOutcome without the event id: {}",
                self.body
            );
            assert_eq!(
                self.header("content-type"),
                Some("application/fhir+json"),
                "{}",
                self.body
            );
        } else if status >= 400 {
            assert!(
                self.body["name"].is_string(),
                "error without name: {}",
                self.body
            );
            assert!(
                self.body["message"].is_string(),
                "error without message: {}",
                self.body
            );
            assert!(
                self.body["eventId"].as_str().is_some_and(|s| s.len() == 36),
                "error without eventId: {}",
                self.body
            );
        }
        self
    }
    #[track_caller]
    pub fn expect_error(&self, status: u16, name: &str) -> &Self {
        self.expect(status);
        assert_eq!(error_parts(&self.body).0, name, "body: {}", self.body);
        self
    }
}

/// An error's name and message, from `/v1`'s envelope or the FHIR facade's
/// OperationOutcome (`issue[0].details.text`, `issue[0].diagnostics`).
pub fn error_parts(body: &Value) -> (String, String) {
    let (name, message) = if body["resourceType"] == "OperationOutcome" {
        (
            &body["issue"][0]["details"]["text"],
            &body["issue"][0]["diagnostics"],
        )
    } else {
        (&body["name"], &body["message"])
    };
    (
        name.as_str().unwrap_or_default().to_string(),
        message.as_str().unwrap_or_default().to_string(),
    )
}

#[derive(Clone)]
pub struct Http {
    pub base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Http {
    pub fn new(base: String) -> Http {
        Http {
            base,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Send a request; `headers` may override the JSON content type.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Bytes>,
        headers: &[(&str, &str)],
    ) -> Resp {
        self.try_send(method, path, key, body, headers)
            .await
            .unwrap_or_else(|e| panic!("http request: {e}"))
    }

    /// POST that answers `Err` when the exchange fails (a server killed
    /// under load) instead of panicking.
    pub async fn try_post(&self, path: &str, key: &str, body: &Value) -> Result<Resp, String> {
        self.try_send(
            "POST",
            path,
            Some(key),
            Some(Bytes::from(body.to_string())),
            &[],
        )
        .await
    }

    /// Send a request; `Err` when the exchange fails (the server died).
    pub async fn try_send(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Bytes>,
        headers: &[(&str, &str)],
    ) -> Result<Resp, String> {
        let mut b = http::Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path));
        if let Some(k) = key {
            b = b.header("authorization", format!("Bearer {k}"));
        }
        if body.is_some()
            && !headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        {
            b = b.header("content-type", "application/json");
        }
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        let req = b
            .body(Full::new(body.unwrap_or_default()))
            .expect("request");
        let resp = self.client.request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let raw = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let body = if raw.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&raw).unwrap_or(Value::Null)
        };
        Ok(Resp {
            status,
            headers,
            body,
            raw,
        })
    }

    pub async fn get(&self, path: &str, key: &str) -> Resp {
        self.send("GET", path, Some(key), None, &[]).await
    }
    pub async fn post(&self, path: &str, key: &str, body: &Value) -> Resp {
        self.send(
            "POST",
            path,
            Some(key),
            Some(Bytes::from(body.to_string())),
            &[],
        )
        .await
    }
    pub async fn patch(&self, path: &str, key: &str, body: &Value) -> Resp {
        self.send(
            "PATCH",
            path,
            Some(key),
            Some(Bytes::from(body.to_string())),
            &[],
        )
        .await
    }
    pub async fn delete(&self, path: &str, key: &str) -> Resp {
        self.send("DELETE", path, Some(key), None, &[]).await
    }
}

/// The real HTTP server, in-process, on a random port, over a fresh
/// embedded store.
pub struct TestServer {
    pub http: Http,
    pub addr: SocketAddr,
    pub store: DynStore,
    pub queue: hub::queue::DynQueue,
    pub dir: TempDir,
    /// The table and queues when the backend is DynamoDB.
    pub aws: Option<Arc<hub::aws::local::LocalAws>>,
    task: tokio::task::JoinHandle<()>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    /// Without rate limits, so no test depends on how fast it runs (the
    /// rate-limit test configures its own).
    pub async fn start() -> TestServer {
        Self::start_with(Config {
            rate_limits: hub::auth::ratelimit::Limits::OFF,
            ..Config::default()
        })
        .await
    }

    pub async fn start_with(config: Config) -> TestServer {
        Self::start_full(config, hub::webhooks::deliver::DeliveryConfig::default()).await
    }

    /// The whole of `hub serve`: the API, and the webhook fan-out and
    /// delivery loops over the embedded queue; or, when the test runs on
    /// DynamoDB (`#[both_stores]`), the API over a fresh table and queues
    /// with the stream and queue pollers, as `hub serve --table`.
    pub async fn start_full(
        config: Config,
        delivery: hub::webhooks::deliver::DeliveryConfig,
    ) -> TestServer {
        quiet_but_errors();
        let dir = TempDir::new("srv");
        if Backend::current() == Backend::DynamoDb {
            let aws = local_aws("t", delivery.schedule.attempts()).await;
            let workers = aws.spawn_pollers(delivery, test_polling());
            let (store, queue) = (aws.dyn_store(), aws.dyn_queue());
            let mut s = Self::serve(store, queue, dir, config, workers).await;
            s.aws = Some(Arc::new(aws));
            return s;
        }
        let store: DynStore =
            Arc::new(EmbeddedStore::open(dir.path(), hub::resources::kinds()).expect("open store"));
        let queue: hub::queue::DynQueue =
            Arc::new(hub::queue::embedded::EmbeddedQueue::open(dir.path()).expect("open queue"));
        let workers = hub::webhooks::worker::spawn(store.clone(), queue.clone(), delivery);
        Self::serve(store, queue, dir, config, workers).await
    }

    /// The API over a given store (e.g. DynamoDB), without webhook delivery.
    pub async fn start_on(store: DynStore) -> TestServer {
        quiet_but_errors();
        let dir = TempDir::new("srv");
        let queue: hub::queue::DynQueue =
            Arc::new(hub::queue::embedded::EmbeddedQueue::open(dir.path()).expect("open queue"));
        let config = Config {
            rate_limits: hub::auth::ratelimit::Limits::OFF,
            ..Config::default()
        };
        Self::serve(store, queue, dir, config, Vec::new()).await
    }

    /// The API over `store` and `queue` on a random loopback port.
    async fn serve(
        store: DynStore,
        queue: hub::queue::DynQueue,
        dir: TempDir,
        config: Config,
        workers: Vec<tokio::task::JoinHandle<()>>,
    ) -> TestServer {
        let app = App::with_queue(store.clone(), Some(queue.clone()), config);
        let (addr, listener) = hub::serve::bind("127.0.0.1:0".parse().unwrap())
            .await
            .expect("bind");
        // As `hub serve` serves: connections handed to threads with a
        // runtime each (dropping the task stops them).
        let task = tokio::spawn(async move {
            let _ = hub::serve::run_per_thread(listener, app, Default::default(), 2).await;
        });
        TestServer {
            http: Http::new(format!("http://{addr}")),
            addr,
            store,
            queue,
            dir,
            aws: None,
            task,
            workers,
        }
    }

    /// What another process opening this server's data directory (a second
    /// `hub serve`, a `hub` command) works on: a store of its own over the
    /// same database file.
    pub fn another_process_store(&self) -> DynStore {
        Arc::new(
            EmbeddedStore::open(self.dir.path(), hub::resources::kinds())
                .expect("open the store a second time"),
        )
    }

    pub async fn org(&self, name: &str, empty: bool) -> CreatedOrg {
        hub::org::create(self.store.as_ref(), name, empty)
            .await
            .expect("create org")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
        for w in &self.workers {
            w.abort();
        }
    }
}

/// Only errors: the server's loops' (fan-out, delivery, store) and 5xx
/// request lines, which a failing test's captured output then shows.
fn quiet_but_errors() {
    hub::log::init_stdout();
    hub::log::set_level(hub::log::ERROR);
}

/// Ask until `check` answers `Some` (bounded: 30 s), and return that; for
/// what a server records just after the receiver saw it (a delivery's
/// attempt row is written when the receiver has answered).
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..600 {
        if let Some(v) = check().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("gave up waiting for {what}");
}

impl TestServer {
    /// The whole of `hub serve` with webhooks that retry fast (one retry
    /// after 200 ms, a 2 s timeout), for tests with a receiver.
    pub async fn with_fast_webhooks() -> TestServer {
        TestServer::start_full(
            Config {
                rate_limits: hub::auth::ratelimit::Limits::OFF,
                ..Config::default()
            },
            hub::webhooks::deliver::DeliveryConfig {
                timeout: Duration::from_secs(2),
                schedule: hub::webhooks::RetrySchedule::parse("200ms").unwrap(),
                ..Default::default()
            },
        )
        .await
    }
}

/// A new patient (with a new clinic, status and referral source); its id.
pub async fn new_patient(http: &Http, key: &str, name: &str) -> String {
    let (clinic, status, referral) = reference_data(http, key).await;
    let r = http
        .post(
            "/v1/patients",
            key,
            &json!({"fullName": name, "primaryPhoneNumber": "07700 900123", "tracking": {},
                    "primaryClinicId": clinic, "statusId": status, "referralId": referral}),
        )
        .await;
    r.expect(201);
    r.id()
}

/// A valid patient body referring to reference data by name.
pub fn patient_body(name: &str, clinic: &str, status: &str, referral: &str) -> Value {
    json!({
        "fullName": name,
        "primaryPhoneNumber": "07700 900123",
        "emailAddress": "someone@example.com",
        "primaryClinicName": clinic,
        "statusName": status,
        "referralName": referral,
        "tracking": {"source": "google", "medium": "cpc"},
    })
}

/// Create one clinic, status and referral source; returns their ids.
pub async fn reference_data(http: &Http, key: &str) -> (String, String, String) {
    let c = http
        .post(
            "/v1/clinics",
            key,
            &json!({"name": "Leeds", "timeZone": "Europe/London"}),
        )
        .await;
    c.expect(201);
    let s = http
        .post(
            "/v1/patient-statuses",
            key,
            &json!({"name": "Active", "order": 1}),
        )
        .await;
    s.expect(201);
    let r = http
        .post("/v1/referral-sources", key, &json!({"name": "Google"}))
        .await;
    r.expect(201);
    (c.id(), s.id(), r.id())
}

/// RFC 3339 UTC with exactly three fractional digits.
pub fn is_ms_timestamp(v: &Value) -> bool {
    let Some(s) = v.as_str() else { return false };
    let b = s.as_bytes();
    b.len() == 24
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && b[23] == b'Z'
        && s.chars()
            .enumerate()
            .all(|(i, c)| [4, 7, 10, 13, 16, 19, 23].contains(&i) || c.is_ascii_digit())
}

/// The test webhook receiver (tests/webhooks/receiver.py): verifies every
/// delivery with the official Python libraries and logs it.
pub struct Receiver {
    child: Child,
    http: Http,
    pub base: String,
}

impl Receiver {
    pub fn start() -> Receiver {
        Self::start_on(0)
    }

    /// On a given port (0: any free one).
    pub fn start_on(port: u16) -> Receiver {
        Self::spawn(port, None).0
    }

    /// Also serving https with this certificate and key; returns the https base URL.
    pub fn start_tls(cert: &Path, key: &Path) -> (Receiver, String) {
        let (rx, tls) = Self::spawn(0, Some((cert, key)));
        (rx, tls.expect("https port"))
    }

    fn spawn(port: u16, tls: Option<(&Path, &Path)>) -> (Receiver, Option<String>) {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let python = std::env::var("HUB_PYTHON")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|_| root.join(".venv/bin/python"));
        assert!(
            python.exists(),
            "{} is missing: run scripts/test.sh, which installs the receiver's libraries",
            python.display()
        );
        let mut child = Command::new(python)
            .arg(root.join("tests/webhooks/receiver.py"))
            .arg(port.to_string())
            .args(
                tls.map(|(c, k)| vec![c.as_os_str().to_owned(), k.as_os_str().to_owned()])
                    .unwrap_or_default(),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the receiver");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).expect("receiver port");
        let base = format!("http://127.0.0.1:{}", line.trim());
        let tls_base = tls.map(|_| {
            let mut l = String::new();
            out.read_line(&mut l).expect("receiver https port");
            format!("https://127.0.0.1:{}", l.trim())
        });
        (
            Receiver {
                child,
                http: Http::new(base.clone()),
                base,
            },
            tls_base,
        )
    }

    pub async fn secrets(&self, path: &str, secrets: &[&str]) {
        let body = json!({"path": path, "secrets": secrets});
        let r = self
            .http
            .send(
                "POST",
                "/_secrets",
                None,
                Some(bytes::Bytes::from(body.to_string())),
                &[],
            )
            .await;
        assert_eq!(r.status, 204);
    }

    pub async fn log(&self) -> Vec<Value> {
        self.http
            .send("GET", "/_log", None, None, &[])
            .await
            .body
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Wait (bounded) until the log satisfies `done`.
    pub async fn wait(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        for _ in 0..600 {
            let log = self.log().await;
            if done(&log) {
                return log;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "gave up waiting for {what}; log: {:#}",
            Value::Array(self.log().await)
        );
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// SPEC §5's `Idempotency-Key` contract, over HTTP, for any store: replay
/// without a second write, 409 for another body or a concurrent twin, a
/// failed request frees its key, keys are per organization and mode.
pub async fn idempotency_contract(http: &Http, key: &str, other_key: &str) {
    let post = |body: Value, idem: String| {
        let http = http.clone();
        let key = key.to_string();
        async move {
            http.send(
                "POST",
                "/v1/patients",
                Some(&key),
                Some(Bytes::from(body.to_string())),
                &[("idempotency-key", idem.as_str())],
            )
            .await
        }
    };
    let count = |k: &str| {
        let http = http.clone();
        let k = k.to_string();
        async move {
            let r = http.get("/v1/patients?$limit=0", &k).await;
            r.body["total"].as_u64().unwrap()
        }
    };
    let events = || {
        let http = http.clone();
        let key = key.to_string();
        async move {
            let r = http.get("/v1/events?$limit=0", &key).await;
            r.body["total"].as_u64().unwrap()
        }
    };
    let k1 = format!("order-{}", hub::ids::ulid());
    let body = patient_body(
        "Idem Potent",
        "St. Mungo's Clinic – Leeds",
        "Active",
        "Google",
    );
    let (before, events_before) = (count(key).await, events().await);
    let first = post(body.clone(), k1.clone()).await;
    first.expect(201);
    assert_eq!(first.header("idempotent-replayed"), None);
    let again = post(body.clone(), k1.clone()).await;
    again.expect(201);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body, "the first response, again");
    assert_eq!(again.header("etag"), first.header("etag"));
    assert_eq!(count(key).await, before + 1, "one patient");
    assert_eq!(events().await, events_before + 1, "one event");
    // The same key with another body: 409, nothing written.
    let mut other = body.clone();
    other["fullName"] = json!("Someone Else");
    post(other, k1.clone()).await.expect_error(409, "CONFLICT");
    assert_eq!(count(key).await, before + 1);
    // Eight at once with a new key: one runs, the others replay it or 409.
    let k2 = format!("burst-{}", hub::ids::ulid());
    let mut tasks = Vec::new();
    for _ in 0..8 {
        tasks.push(tokio::spawn(post(body.clone(), k2.clone())));
    }
    let mut fresh = 0;
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            201 if r.header("idempotent-replayed").is_none() => fresh += 1,
            201 => {}
            409 => assert_eq!(r.body["name"], "CONFLICT"),
            other => panic!("unexpected {other}: {}", r.body),
        }
    }
    assert_eq!(fresh, 1, "exactly one of the twins ran");
    assert_eq!(count(key).await, before + 2);
    // A refused request frees its key for the corrected one.
    let k3 = format!("fix-{}", hub::ids::ulid());
    post(json!({"fullName": "No Phone"}), k3.clone())
        .await
        .expect_error(400, "INVALID_PARAMETERS");
    post(body.clone(), k3.clone()).await.expect(201);
    assert_eq!(count(key).await, before + 3);
    // A bad header is a 400 that writes nothing.
    post(body.clone(), "x".repeat(300))
        .await
        .expect_error(400, "INVALID_PARAMETERS");
    assert_eq!(count(key).await, before + 3);
    // Keys belong to one organization and mode.
    let other_before = count(other_key).await;
    let r = http
        .send(
            "POST",
            "/v1/referral-sources",
            Some(other_key),
            Some(Bytes::from(
                json!({"name": format!("Ref {k1}")}).to_string(),
            )),
            &[("idempotency-key", k1.as_str())],
        )
        .await;
    r.expect(201);
    assert_eq!(r.header("idempotent-replayed"), None);
    assert_eq!(count(other_key).await, other_before);
}

/// A small deterministic generator for randomised tests (splitmix64).
pub struct Rng(pub u64);

impl Rng {
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn chance(&mut self, pct: u64) -> bool {
        self.next() % 100 < pct
    }
    pub fn pick<T: Clone>(&mut self, v: &[T]) -> T {
        v[self.below(v.len())].clone()
    }
}
