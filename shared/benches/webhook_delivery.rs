//! Webhooks from write to verified delivery: 10,000 creates over HTTP (32 at
//! a time) against the whole hub (API, outbox, fan-out, durable queue,
//! delivery), each event POSTed to every subscribed endpoint — each its own
//! local receiver (its own port and secret, as an integration's CRM and
//! analytics services are) that checks its `Hub-Signature`. Reports
//! deliveries/s, writes/s and the latency from each write's acknowledgement
//! to each of its deliveries, and fails unless every event reached every
//! endpoint with a good signature. Run with `bench/webhooks.sh`.
//!
//! `HUB_BENCH_ENDPOINTS` sets how many endpoints subscribe to the event
//! (default 4 on the embedded store: an integration commonly has 2–4, and
//! with one the deliveries cannot outrun the writes; default 1 on the AWS
//! path, as its published figures were measured).
//!
//! With `HUB_BENCH_DYNAMODB_ENDPOINT` and `HUB_BENCH_SQS_ENDPOINT` set
//! (`bench/webhooks.sh --dynamodb`), the same over the AWS code path of
//! `hub serve --table`: DynamoDB Local, its stream read by the stream
//! poller (Lambda's 250 ms), the fan-out handler, moto's SQS long-polled by
//! the queue poller, the delivery handler. `HUB_BENCH_EVENTS` sets the count,
//! `HUB_BENCH_CONCURRENCY` the writers (32), `HUB_BENCH_RATE` paces the
//! writes (per second) so latency is measured below the pipeline's capacity,
//! `HUB_BENCH_OUT` names the results file in bench/results/.
//!
//! `HUB_BENCH_BACKLOG=1` (AWS path): the pollers start only once every
//! write is acknowledged, so the fan-out and delivery functions drain a
//! backlog without competing with the writes for DynamoDB Local; reports
//! that drain's deliveries/s (`drain_deliveries_per_sec`) from the pollers'
//! start to the last delivery.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hub::api::{App, Config};
use hub::queue::embedded::EmbeddedQueue;
use hub::store::embedded::EmbeddedStore;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Writers at once (`HUB_BENCH_CONCURRENCY`, default 32).
const CONCURRENCY: usize = 32;

/// Endpoints subscribed to the event on the embedded store
/// (`HUB_BENCH_ENDPOINTS`).
const ENDPOINTS: usize = 4;

/// First verified arrival of each (endpoint, event id).
type Seen = Arc<Mutex<HashMap<(usize, String), Instant>>>;

/// What the receivers count besides first arrivals.
#[derive(Default)]
struct Counts {
    bad_signatures: usize,
    /// Verified arrivals of a delivery already seen (at least once allows
    /// them; counted, not failed).
    repeats: usize,
}

/// Endpoint `n`'s receiver: its own listener, checking each delivery with
/// its own secret (set once the endpoint is created).
async fn receiver(
    n: usize,
    secret: Arc<Mutex<String>>,
    seen: Seen,
    counts: Arc<Mutex<Counts>>,
) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (secret, seen, counts) = (secret.clone(), seen.clone(), counts.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (secret, seen, counts) = (secret.clone(), seen.clone(), counts.clone());
                    async move {
                        let sig = req
                            .headers()
                            .get("hub-signature")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string();
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let t: i64 = sig
                            .split(',')
                            .next()
                            .and_then(|p| p.strip_prefix("t="))
                            .and_then(|t| t.parse().ok())
                            .unwrap_or(0);
                        let secret = secret.lock().unwrap().clone();
                        let (expected, _) = hub::webhooks::sign(&[secret], "", t, &body);
                        let ok = expected == sig;
                        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        match v["data"]["id"].as_str() {
                            Some(id) if ok => {
                                let now = Instant::now();
                                let first = match seen.lock().unwrap().entry((n, id.to_string())) {
                                    Entry::Vacant(e) => {
                                        e.insert(now);
                                        true
                                    }
                                    Entry::Occupied(_) => false,
                                };
                                if !first {
                                    counts.lock().unwrap().repeats += 1;
                                }
                            }
                            _ => counts.lock().unwrap().bad_signatures += 1,
                        }
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::from_static(b"ok"),
                        )))
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        hub::log::set_level(0);
        let events: usize = std::env::var("HUB_BENCH_EVENTS").ok().and_then(|n| n.parse().ok()).unwrap_or(10_000);
        let rate: Option<f64> = std::env::var("HUB_BENCH_RATE").ok().and_then(|n| n.parse().ok()).filter(|r: &f64| *r > 0.0);
        let endpoints: Option<usize> = std::env::var("HUB_BENCH_ENDPOINTS").ok().and_then(|n| n.parse().ok()).filter(|n| *n > 0);
        let writers: usize = std::env::var("HUB_BENCH_CONCURRENCY").ok().and_then(|n| n.parse().ok()).unwrap_or(CONCURRENCY);
        let dir = std::env::temp_dir().join(format!("hub-bench-webhooks-{}", hub::ids::ulid()));
        let aws = match (std::env::var("HUB_BENCH_DYNAMODB_ENDPOINT"), std::env::var("HUB_BENCH_SQS_ENDPOINT")) {
            (Ok(ddb), Ok(sqs)) => {
                let settings = hub::aws::local::QueueSettings { attempts: 6, visibility: hub::aws::local::QUEUE_VISIBILITY };
                let table = format!("bench-webhooks-{}", hub::ids::ulid().to_lowercase());
                let ddb = hub::aws::local_config(&ddb, "us-east-1").await;
                let sqs = hub::aws::local_config(&sqs, "us-east-1").await;
                Some(hub::aws::local::LocalAws::open(&ddb, &sqs, &table, settings).await.unwrap())
            }
            _ => None,
        };
        let backlog = aws.is_some() && std::env::var("HUB_BENCH_BACKLOG").is_ok_and(|v| v == "1");
        let (store, queue, mut _workers): (hub::store::DynStore, hub::queue::DynQueue, _) = match &aws {
            Some(aws) if backlog => (aws.dyn_store(), aws.dyn_queue(), Vec::new()),
            Some(aws) => (aws.dyn_store(), aws.dyn_queue(), aws.spawn_pollers(Default::default(), Default::default())),
            None => {
                let store: hub::store::DynStore = Arc::new(EmbeddedStore::open(&dir, hub::resources::kinds()).unwrap());
                let queue: hub::queue::DynQueue = Arc::new(EmbeddedQueue::open(&dir).unwrap());
                let workers = hub::webhooks::worker::spawn(store.clone(), queue.clone(), Default::default());
                (store, queue, workers)
            }
        };
        let config = Config { rate_limits: hub::auth::ratelimit::Limits::OFF, ..Default::default() };
        let app = App::with_queue(store.clone(), Some(queue), config);
        let (addr, listener) = hub::serve::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        tokio::spawn(hub::serve::run(listener, app));
        let endpoints = endpoints.unwrap_or(if aws.is_some() { 1 } else { ENDPOINTS });
        let org = hub::org::create(store.as_ref(), "Bench", true).await.unwrap();
        let key = org.test.secret.clone();
        let tenant = format!("{}#test", org.organization_id);

        let seen: Seen = Arc::new(Mutex::new(HashMap::new()));
        let counts = Arc::new(Mutex::new(Counts::default()));
        let mut receivers = Vec::new();
        for n in 0..endpoints {
            let secret = Arc::new(Mutex::new(String::new()));
            receivers.push((secret.clone(), receiver(n, secret, seen.clone(), counts.clone()).await));
        }

        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http::<Full<Bytes>>();
        let post = move |path: String, body: Value| {
            let client = client.clone();
            let key = key.clone();
            async move {
                // A 503 (the database overloaded; nothing written) is sent
                // again after its Retry-After, as a client does.
                let mut tries = 0;
                loop {
                    tries += 1;
                    let req = hyper::Request::post(format!("http://{addr}{path}"))
                        .header("authorization", format!("Bearer {key}"))
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from(body.to_string())))
                        .unwrap();
                    let resp = client.request(req).await.expect("request");
                    let status = resp.status();
                    let text = resp.into_body().collect().await.unwrap().to_bytes();
                    if status == hyper::StatusCode::SERVICE_UNAVAILABLE && tries < 5 {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                    assert!(status.is_success(), "{status}: {}", String::from_utf8_lossy(&text));
                    break serde_json::from_slice::<Value>(&text).unwrap();
                }
            }
        };
        for (secret, rx) in &receivers {
            let ep = post("/v1/webhook-endpoints".into(), json!({"url": format!("http://{rx}/hook"), "enabledEvents": ["clinic.created"]})).await;
            *secret.lock().unwrap() = ep["secret"].as_str().unwrap().to_string();
        }

        let acks: Arc<Mutex<HashMap<String, Instant>>> = Arc::new(Mutex::new(HashMap::new()));
        let started = Instant::now();
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..writers {
            let (post, acks, next) = (post.clone(), acks.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= events {
                        break;
                    }
                    // Paced: write i starts at i / rate seconds.
                    if let Some(rate) = rate {
                        tokio::time::sleep_until((started + Duration::from_secs_f64(i as f64 / rate)).into()).await;
                    }
                    let c = post("/v1/clinics".into(), json!({"name": format!("Clinic {i}")})).await;
                    acks.lock().unwrap().insert(c["id"].as_str().unwrap().to_string(), Instant::now());
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let writes_done = started.elapsed();
        let drain_started = Instant::now();
        if let (true, Some(aws)) = (backlog, &aws) {
            _workers = aws.spawn_pollers(Default::default(), Default::default());
        }
        let expected = events * endpoints;
        let deadline = Instant::now() + Duration::from_secs(120);
        while seen.lock().unwrap().len() < expected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let seen = seen.lock().unwrap().clone();
        if seen.len() < expected {
            // Why not: the failed attempts' errors (connection errors and
            // status codes, nothing of the events), counted.
            let mut why: HashMap<String, usize> = HashMap::new();
            for d in store.all(&tenant, hub::webhooks::DELIVERIES_KIND).await.unwrap_or_default() {
                if d["status"] != "succeeded" {
                    *why.entry(format!("{} {}", d["status"], d["error"])).or_default() += 1;
                }
            }
            eprintln!("{} of {expected} deliveries missing; failed attempts: {why:?}", expected - seen.len());
        }
        let acks = acks.lock().unwrap().clone();
        let counts = std::mem::take(&mut *counts.lock().unwrap());
        let last = seen.values().max().copied().unwrap_or(started);
        let total = last.duration_since(started).as_secs_f64();
        let mut lat: Vec<f64> = seen
            .iter()
            .filter_map(|((_, id), at)| acks.get(id).map(|ack| at.saturating_duration_since(*ack).as_secs_f64() * 1000.0))
            .collect();
        lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let pct = |p: f64| lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1))).copied().unwrap_or(f64::NAN);
        let out = json!({
            "store": if aws.is_some() { "dynamodb" } else { "embedded" }, "events": events, "endpoints": endpoints, "writers": writers, "paced_writes_per_sec": rate,
            "deliveries_expected": expected, "delivered_and_verified": seen.len(), "repeated_deliveries": counts.repeats, "bad_signatures": counts.bad_signatures,
            "writes_per_sec": events as f64 / writes_done.as_secs_f64(),
            "deliveries_per_sec": seen.len() as f64 / total,
            "drain_deliveries_per_sec": backlog.then(|| seen.len() as f64 / last.saturating_duration_since(drain_started).as_secs_f64()),
            "latency_ms": {"p50": pct(0.50), "p90": pct(0.90), "p99": pct(0.99), "max": lat.last().copied().unwrap_or(f64::NAN)},
        });
        println!("{out:#}");
        println!(
            "\n{} events × {} endpoints: {}/{} delivered and verified; {:.0} writes/s, {:.0} deliveries/s; write ack → receiver p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms  [targets ≥ 2,000 deliveries/s, p99 < 250 ms]",
            events, endpoints, seen.len(), expected, out["writes_per_sec"].as_f64().unwrap(), out["deliveries_per_sec"].as_f64().unwrap(), pct(0.5), pct(0.99), pct(1.0)
        );
        let results = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/results");
        let _ = std::fs::create_dir_all(&results);
        let name = std::env::var("HUB_BENCH_OUT").unwrap_or_else(|_| if aws.is_some() { "webhooks-dynamodb.json" } else { "webhooks.json" }.to_string());
        let _ = std::fs::write(results.join(name), format!("{out:#}\n"));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(counts.bad_signatures, 0, "every delivery's signature verifies");
        assert_eq!(seen.len(), expected, "every event delivered to every endpoint and verified");
    });
}
