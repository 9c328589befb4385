//! The AWS Lambda side: non-generic runners that every function binary
//! calls (so a change here relinks quickly), and the handlers they run —
//! the same `App`, fan-out and delivery code as `hub serve`, over DynamoDB
//! and SQS. Payloads are handled as JSON: API Gateway HTTP API (payload
//! format 2.0), DynamoDB stream batches, SQS batches with
//! `ReportBatchItemFailures`.

use crate::api::{App, Config, Request, Response};
use crate::queue::{sqs::SqsQueue, DynQueue, Queue};
use crate::store::{dynamodb::DynamoStore, DynStore, EventRecord, Store};
use crate::webhooks::deliver::{self, DeliveryConfig, Outcome};
use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Value};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// An HTTP API (2.0) event → the hub's request.
pub fn http_request(event: &Value) -> Result<Request, String> {
    let method = event["requestContext"]["http"]["method"]
        .as_str()
        .ok_or("no requestContext.http.method")?;
    let method = http::Method::from_bytes(method.as_bytes()).map_err(|_| "bad method")?;
    let path = event["rawPath"].as_str().ok_or("no rawPath")?.to_string();
    let query = event["rawQueryString"].as_str().unwrap_or("").to_string();
    let mut headers = http::HeaderMap::new();
    if let Some(h) = event["headers"].as_object() {
        for (k, v) in h {
            if let (Ok(name), Some(Ok(value))) = (
                http::HeaderName::from_bytes(k.as_bytes()),
                v.as_str().map(http::HeaderValue::from_str),
            ) {
                headers.append(name, value);
            }
        }
    }
    let body = match event["body"].as_str() {
        None => Bytes::new(),
        Some(b) if event["isBase64Encoded"].as_bool() == Some(true) => Bytes::from(
            base64::engine::general_purpose::STANDARD
                .decode(b)
                .map_err(|_| "body is not base64")?,
        ),
        Some(b) => Bytes::from(b.to_string()),
    };
    let secure = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_none_or(|p| p.eq_ignore_ascii_case("https"));
    Ok(Request {
        method,
        path,
        query,
        headers,
        body,
        secure,
    })
}

/// The hub's response → an HTTP API (2.0) result.
pub fn http_response(r: Response) -> Value {
    let mut headers = serde_json::Map::new();
    for (k, v) in r.headers {
        headers.insert(k.to_string(), Value::String(v));
    }
    json!({
        "statusCode": r.status,
        "headers": headers,
        "body": String::from_utf8_lossy(&r.body),
        "isBase64Encoded": false,
    })
}

pub async fn handle_http(app: &Arc<App>, event: Value) -> Value {
    match http_request(&event) {
        Ok(req) => http_response(app.handle(req).await),
        Err(why) => {
            crate::log::error("lambda", &format!("unusable API Gateway event: {why}"));
            http_response(crate::api::error_response(
                &crate::error::ApiError::internal(),
            ))
        }
    }
}

fn attr_s<'a>(image: &'a Value, name: &str) -> Option<&'a str> {
    image[name]["S"].as_str()
}

/// A DynamoDB stream batch → deliveries enqueued. Only inserts of event
/// items count. On a failure the batch reports that record, so Lambda
/// retries from it (records after it are not processed now).
pub async fn handle_stream(store: &dyn Store, queue: &dyn Queue, event: &Value) -> Value {
    let mut failures = Vec::new();
    for record in event["Records"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let image = &record["dynamodb"]["NewImage"];
        if record["eventName"] != "INSERT"
            || attr_s(image, "kind") != Some(crate::webhooks::EVENTS_KIND)
        {
            continue;
        }
        let seq = record["dynamodb"]["SequenceNumber"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let parsed = attr_s(image, "doc").and_then(|d| serde_json::from_str::<Value>(d).ok());
        let (Some(envelope), Some(tenant)) = (parsed, attr_s(image, "tenant")) else {
            crate::log::error("fanout", "stream record without an event document; skipped");
            continue;
        };
        let ev = EventRecord {
            id: envelope["id"].as_str().unwrap_or_default().to_string(),
            tenant: tenant.to_string(),
            event_type: envelope["type"].as_str().unwrap_or_default().to_string(),
            created_at_ms: envelope["createdAt"]
                .as_str()
                .and_then(crate::time::parse_timestamp)
                .unwrap_or(0),
            envelope,
        };
        if let Err(e) =
            crate::webhooks::fanout::fan_out(store, queue, std::slice::from_ref(&ev)).await
        {
            crate::log::error("fanout", &e.to_string());
            failures.push(json!({"itemIdentifier": seq}));
            break;
        }
    }
    json!({"batchItemFailures": failures})
}

/// An SQS batch → one attempt per message. A retry sets the message's
/// visibility to the back-off delay and reports it failed (it stays queued);
/// the last failed attempt reports it failed with no delay, so the redrive
/// policy (maxReceiveCount = attempts) moves it to the dead-letter queue.
pub async fn handle_sqs(
    store: &dyn Store,
    queue: &dyn Queue,
    cfg: &DeliveryConfig,
    event: &Value,
) -> Value {
    let mut failures = Vec::new();
    for record in event["Records"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let id = record["messageId"].as_str().unwrap_or_default().to_string();
        let handle = record["receiptHandle"].as_str().unwrap_or_default();
        let count: u32 = record["attributes"]["ApproximateReceiveCount"]
            .as_str()
            .and_then(|c| c.parse().ok())
            .unwrap_or(1);
        let Some(body) = record["body"]
            .as_str()
            .and_then(|b| serde_json::from_str::<Value>(b).ok())
        else {
            crate::log::error("delivery", "unreadable queue message dropped");
            continue;
        };
        let failed = match deliver::attempt(store, cfg, &body, count).await {
            Ok(Outcome::Delivered) | Ok(Outcome::Dropped) => false,
            Ok(Outcome::Retry(d)) => {
                if let Err(e) = queue.change_visibility(handle, d).await {
                    crate::log::error("delivery", &e.to_string());
                }
                true
            }
            Ok(Outcome::Dead) => {
                let _ = queue.change_visibility(handle, Duration::ZERO).await;
                true
            }
            Err(e) => {
                crate::log::error("delivery", &e.to_string());
                true
            }
        };
        if failed {
            failures.push(json!({"itemIdentifier": id}));
        }
    }
    json!({"batchItemFailures": failures})
}

/// What every function reads from its environment, once per cold start.
pub struct Deployment {
    pub store: DynStore,
    pub queue: Option<DynQueue>,
    pub config: Config,
    pub delivery: DeliveryConfig,
}

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("the environment variable {name} is not set"))
}

/// Clients built once per cold start; the DynamoDB connection is opened now.
pub async fn deployment() -> Result<Deployment, String> {
    let conf = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&conf),
        env("TABLE_NAME")?,
        crate::resources::kinds(),
    );
    store
        .warm_up()
        .await
        .map_err(|e| format!("DynamoDB: {e}"))?;
    let queue = std::env::var("QUEUE_URL")
        .ok()
        .map(|url| Arc::new(SqsQueue::new(aws_sdk_sqs::Client::new(&conf), url)) as DynQueue);
    let mut delivery = DeliveryConfig::default();
    if let Ok(s) = std::env::var("HUB_RETRY_SCHEDULE") {
        delivery.schedule = crate::webhooks::RetrySchedule::parse(&s)
            .map_err(|e| format!("HUB_RETRY_SCHEDULE: {e}"))?;
    }
    if let Ok(s) = std::env::var("HUB_DELIVERY_TIMEOUT") {
        delivery.timeout =
            crate::webhooks::parse_duration(&s).ok_or("HUB_DELIVERY_TIMEOUT: not a duration")?;
    }
    let cursor_key = std::env::var("CURSOR_KEY").ok().map(|k| {
        let digest = <sha2::Sha256 as sha2::Digest>::digest(k.as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(&digest);
        key
    });
    let config = Config {
        require_tls: std::env::var("REQUIRE_TLS").is_ok_and(|v| v == "true"),
        cursor_key,
        ..Config::default()
    };
    Ok(Deployment {
        store: Arc::new(store),
        queue,
        config,
        delivery,
    })
}

fn run<F, Fut>(handler: F) -> ExitCode
where
    F: Fn(Value) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Value> + Send + 'static,
{
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let handler = Arc::new(handler);
    let result = rt.block_on(lambda_runtime::run(lambda_runtime::service_fn(
        move |ev: lambda_runtime::LambdaEvent<Value>| {
            let handler = handler.clone();
            async move { Ok::<Value, lambda_runtime::Error>(handler(ev.payload).await) }
        },
    )));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lambda runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

fn boot() -> Option<Deployment> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    match rt.block_on(deployment()) {
        Ok(d) => Some(d),
        Err(e) => {
            crate::log::error("lambda", &e);
            None
        }
    }
}

/// The `main` of an API route function.
pub fn main_http(route: &'static str) -> ExitCode {
    let Some(d) = boot() else {
        return ExitCode::FAILURE;
    };
    let app = App::with_queue(d.store, d.queue, d.config);
    crate::log::info("lambda", &format!("route {route} ready"));
    run(move |event| {
        let app = app.clone();
        async move { handle_http(&app, event).await }
    })
}

/// The `main` of the stream fan-out function.
pub fn main_fanout() -> ExitCode {
    let Some(d) = boot() else {
        return ExitCode::FAILURE;
    };
    let Some(queue) = d.queue else {
        crate::log::error("lambda", "QUEUE_URL is required by the fan-out function");
        return ExitCode::FAILURE;
    };
    let store = d.store;
    run(move |event| {
        let (store, queue) = (store.clone(), queue.clone());
        async move { handle_stream(store.as_ref(), queue.as_ref(), &event).await }
    })
}

/// The `main` of the scheduled expiry function (EventBridge, every minute):
/// purchases past their `expiresAt` expire, and their patients' statuses
/// with them.
pub fn main_expiry() -> ExitCode {
    let Some(d) = boot() else {
        return ExitCode::FAILURE;
    };
    let store = d.store;
    run(move |_event| {
        let store = store.clone();
        async move { handle_expiry(store.as_ref()).await }
    })
}

/// One run of the expiry job; answers how many purchases expired.
pub async fn handle_expiry(store: &dyn Store) -> Value {
    match crate::resources::purchases::expire_due(store, crate::time::now_ms(), 1000).await {
        Ok(n) => json!({"expired": n}),
        Err(e) => {
            crate::log::error("expiry", &e.message);
            json!({"expired": 0, "error": e.kind.name()})
        }
    }
}

/// The `main` of the delivery function.
pub fn main_delivery() -> ExitCode {
    let Some(d) = boot() else {
        return ExitCode::FAILURE;
    };
    let Some(queue) = d.queue else {
        crate::log::error("lambda", "QUEUE_URL is required by the delivery function");
        return ExitCode::FAILURE;
    };
    let (store, cfg) = (d.store, Arc::new(d.delivery));
    run(move |event| {
        let (store, queue, cfg) = (store.clone(), queue.clone(), cfg.clone());
        async move { handle_sqs(store.as_ref(), queue.as_ref(), &cfg, &event).await }
    })
}
