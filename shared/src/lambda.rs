//! The AWS Lambda side: the one binary's `main` (the function named in
//! `HUB_FUNCTION`), its runners, and the handlers they run —
//! the same `App`, fan-out and delivery code as `hub serve`, over DynamoDB
//! and SQS. API route functions run on `lambda_http`, so an API Gateway
//! REST API (payload 1.0), HTTP API (2.0), Function URL or Application Load
//! Balancer event all reach the one `App`, with repeated headers and query
//! values, cookies and base64 bodies both ways. The stream fan-out and the
//! delivery function take typed events (`aws_lambda_events`) and report
//! partial batch failures.
//!
//! Each function builds one tokio runtime: the clients warmed at init are
//! the ones that serve.

use crate::api::{App, Config, Request, Response};
use crate::queue::{sqs::SqsQueue, DynQueue, Queue};
use crate::store::{dynamodb::DynamoStore, DynStore, EventRecord, Store};
use crate::webhooks::deliver::{self, DeliveryConfig, Outcome};
use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use bytes::Bytes;
pub use lambda_http::Body;
use lambda_http::RequestExt;
use serde::Deserialize;
use serde_json::{json, Value};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// The stage name API Gateway may put in front of the path (a named stage;
/// `$default` adds nothing).
fn stage(req: &lambda_http::Request) -> Option<String> {
    use lambda_http::request::RequestContext;
    match req.request_context_ref()? {
        RequestContext::ApiGatewayV1(c) => c.stage.clone(),
        RequestContext::ApiGatewayV2(c) => c.stage.clone(),
        _ => None,
    }
    .filter(|s| !s.is_empty() && s != "$default")
}

/// A `lambda_http` request (any of the event shapes) → the hub's request.
pub fn http_request(req: lambda_http::Request) -> Request {
    let mut path = req.uri().path().to_string();
    if let Some(stage) = stage(&req) {
        let prefix = format!("/{stage}");
        if path.starts_with(&format!("{prefix}/")) {
            path.drain(..prefix.len());
        }
    }
    let query = req.uri().query().unwrap_or("").to_string();
    let (parts, body) = req.into_parts();
    let body = match body {
        Body::Empty => Bytes::new(),
        Body::Text(t) => Bytes::from(t),
        Body::Binary(b) => Bytes::from(b),
        _ => Bytes::new(),
    };
    // Behind API Gateway and Function URLs the client spoke HTTPS; an ALB
    // says which in X-Forwarded-Proto.
    let secure = parts
        .headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_none_or(|p| p.eq_ignore_ascii_case("https"));
    Request {
        method: parts.method,
        path,
        query,
        headers: parts.headers,
        body,
        secure,
    }
}

/// Bodies a client reads as text; anything else goes back base64-encoded.
fn is_text(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else {
        return true;
    };
    let media = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    media.starts_with("text/")
        || matches!(
            media.as_str(),
            "application/json" | "application/javascript" | "application/xml" | "image/svg+xml"
        )
        || media.ends_with("+json")
        || media.ends_with("+xml")
}

/// The hub's response → a `lambda_http` response (each repeated header
/// kept; `lambda_http` shapes it for the event's origin).
pub fn http_response(r: Response) -> http::Response<Body> {
    let mut builder = http::Response::builder().status(r.status);
    let mut text = true;
    for (name, value) in &r.headers {
        if name.eq_ignore_ascii_case("content-type") {
            text = is_text(Some(value));
        }
        builder = builder.header(*name, value.as_str());
    }
    let body = if r.body.is_empty() {
        Body::Empty
    } else if text {
        match String::from_utf8(r.body.to_vec()) {
            Ok(s) => Body::Text(s),
            Err(e) => Body::Binary(e.into_bytes()),
        }
    } else {
        Body::Binary(r.body.to_vec())
    };
    builder.body(body).unwrap_or_else(|_| {
        let mut resp = http::Response::new(Body::Text("{\"name\":\"UNKNOWN_ERROR\"}".into()));
        *resp.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
        resp
    })
}

/// One API request: the Lambda request id is the request's id (its
/// `Request-Id`, its log line's `requestId`, an error's `eventId`).
pub async fn handle_http(app: &Arc<App>, req: lambda_http::Request) -> http::Response<Body> {
    let id = req.lambda_context_ref().map(|c| c.request_id.clone());
    let id = id.filter(|i| !i.is_empty());
    http_response(app.handle_with_id(http_request(req), id).await)
}

/// One API Gateway / ALB / Function URL event (JSON) through exactly what
/// the runtime runs: `lambda_http` reads the event, the `App` answers, and
/// `lambda_http` shapes the result for the event's origin. For tests and
/// local tools.
pub async fn invoke_http(app: &Arc<App>, event: Value, request_id: &str) -> Result<Value, String> {
    use lambda_http::Service;
    let payload: lambda_http::request::LambdaRequest =
        serde_json::from_value(event).map_err(|e| format!("not an HTTP event: {e}"))?;
    let mut context = lambda_runtime::Context::default();
    context.request_id = request_id.to_string();
    let app = app.clone();
    let mut adapter =
        lambda_http::Adapter::from(lambda_http::service_fn(move |req: lambda_http::Request| {
            let app = app.clone();
            async move { Ok::<_, lambda_runtime::Error>(handle_http(&app, req).await) }
        }));
    let response = adapter
        .call(lambda_runtime::LambdaEvent::new(payload, context))
        .await
        .map_err(|e| e.to_string())?;
    serde_json::to_value(response).map_err(|e| e.to_string())
}

fn attr_s<'a>(image: &'a serde_dynamo::Item, name: &str) -> Option<&'a str> {
    match image.get(name)? {
        serde_dynamo::AttributeValue::S(s) => Some(s.as_str()),
        _ => None,
    }
}

/// Events of one stream batch fanned out at once (tenants read, and
/// `SendMessageBatch` calls made, concurrently): the fan-out keeps up with
/// a batch of 100 in a few round trips instead of 100 sequential ones.
pub const FANOUT_CONCURRENCY: usize = 16;
/// Deliveries of one queue batch posted at once (the mapping's `BatchSize`
/// is 10: all of them).
pub const DELIVERY_CONCURRENCY: usize = 10;

/// A DynamoDB stream batch → deliveries enqueued. Only inserts of event
/// items count. The batch's events are fanned out concurrently
/// ([`FANOUT_CONCURRENCY`]); when some fail, the batch reports the first
/// failed record, so Lambda retries from it (the records before it are
/// done; those after it that went out may go out again: the fan-out is at
/// least once, and a delivery already made is not made twice).
pub async fn handle_stream(
    store: &dyn Store,
    queue: &dyn Queue,
    event: &StreamEvent,
) -> DynamoDbEventResponse {
    let mut response = DynamoDbEventResponse::default();
    let mut events = Vec::new();
    let mut sequence = Vec::new();
    for record in &event.records {
        let image = &record.change.new_image;
        if record.event_name != "INSERT"
            || attr_s(image, "kind") != Some(crate::webhooks::EVENTS_KIND)
        {
            continue;
        }
        let parsed = attr_s(image, "doc").and_then(|d| serde_json::from_str::<Value>(d).ok());
        let (Some(envelope), Some(tenant)) = (parsed, attr_s(image, "tenant")) else {
            crate::log::error("fanout", "stream record without an event document; skipped");
            continue;
        };
        events.push(EventRecord {
            id: envelope["id"].as_str().unwrap_or_default().to_string(),
            tenant: tenant.to_string(),
            event_type: envelope["type"].as_str().unwrap_or_default().to_string(),
            created_at_ms: envelope["createdAt"]
                .as_str()
                .and_then(crate::time::parse_timestamp)
                .unwrap_or(0),
            envelope,
        });
        sequence.push(record.change.sequence_number.clone());
    }
    let results =
        crate::webhooks::fanout::fan_out_each(store, queue, &events, FANOUT_CONCURRENCY).await;
    if let Some((i, Err(e))) = results.iter().enumerate().find(|(_, r)| r.is_err()) {
        crate::log::error("fanout", &e.to_string());
        let mut failure = DynamoDbBatchItemFailure::default();
        failure.item_identifier = sequence[i].clone();
        response.batch_item_failures.push(failure);
    }
    response
}

/// What one message's attempt came to: whether it failed (stays queued).
async fn settle_message(
    queue: &dyn Queue,
    handle: &str,
    outcome: Result<Outcome, crate::store::StoreError>,
) -> bool {
    match outcome {
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
    }
}

/// An SQS batch → one attempt per message, up to [`DELIVERY_CONCURRENCY`]
/// at once. What the attempts read (each event, and each endpoint's object,
/// secrets and state) is read first in one batch read, and the successes
/// are recorded together in one write ([`deliver::record_all`]): a batch of
/// ten costs two DynamoDB calls, not fifty. A retry sets the message's
/// visibility to the back-off delay and reports it failed (it stays
/// queued); the last failed attempt reports it failed with no delay, so
/// the redrive policy (maxReceiveCount = attempts) moves it to the
/// dead-letter queue. Each failed message is reported; the others are
/// deleted by the mapping.
pub async fn handle_sqs(
    store: &dyn Store,
    queue: &dyn Queue,
    cfg: &DeliveryConfig,
    event: &SqsEvent,
) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    let bodies: Vec<Option<Value>> = event
        .records
        .iter()
        .map(|r| {
            let body = r.body.as_deref().and_then(|b| serde_json::from_str(b).ok());
            if body.is_none() {
                crate::log::error("delivery", "unreadable queue message dropped");
            }
            body
        })
        .collect();
    let msgs: Vec<&Value> = bodies.iter().flatten().collect();
    // A failed read fails every readable message: they come back.
    let reads = match store.refresh().await {
        Ok(()) => deliver::Reads::batch(store, &msgs).await,
        Err(e) => Err(e),
    };
    let reads = match reads {
        Ok(r) => r,
        Err(e) => {
            crate::log::error("delivery", &e.to_string());
            for (record, body) in event.records.iter().zip(&bodies) {
                if body.is_some() {
                    let mut failure = BatchItemFailure::default();
                    failure.item_identifier = record.message_id.clone().unwrap_or_default();
                    response.batch_item_failures.push(failure);
                }
            }
            return response;
        }
    };
    let permits = tokio::sync::Semaphore::new(DELIVERY_CONCURRENCY);
    let (permits, reads) = (&permits, &reads);
    let made = futures::future::join_all(event.records.iter().zip(&bodies).map(
        |(record, body)| async move {
            let Some(body) = body else {
                return Ok(None);
            };
            let count: u32 = record
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|c| c.parse().ok())
                .unwrap_or(1);
            let _permit = permits.acquire().await;
            deliver::make_from(store, cfg, reads, body, count).await
        },
    ))
    .await;
    let attempted: Vec<&deliver::Attempted> = made
        .iter()
        .filter_map(|m| m.as_ref().ok()?.as_ref())
        .collect();
    let mut recorded = deliver::record_all(store, &attempted).await.into_iter();
    for (record, made) in event.records.iter().zip(made) {
        let outcome = match made {
            Ok(None) => Ok(Outcome::Dropped),
            Ok(Some(a)) => match recorded.next() {
                Some(Ok(())) => Ok(a.outcome),
                Some(Err(e)) => Err(e),
                None => Err(crate::store::StoreError::Busy),
            },
            Err(e) => Err(e),
        };
        let handle = record.receipt_handle.as_deref().unwrap_or_default();
        if settle_message(queue, handle, outcome).await {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = record.message_id.clone().unwrap_or_default();
            response.batch_item_failures.push(failure);
        }
    }
    response
}

/// [`handle_stream`] for a batch as JSON (the local stream poller): read
/// exactly as Lambda reads it; a batch that does not read fails at its
/// first record.
pub async fn handle_stream_json(store: &dyn Store, queue: &dyn Queue, event: &Value) -> Value {
    match StreamEvent::deserialize(event) {
        Ok(ev) => json!(handle_stream(store, queue, &ev).await),
        Err(e) => {
            crate::log::error("fanout", &format!("unreadable stream batch: {e}"));
            let first = &event["Records"][0]["dynamodb"]["SequenceNumber"];
            json!({"batchItemFailures": [{"itemIdentifier": first}]})
        }
    }
}

/// [`handle_sqs`] for a batch as JSON (the local queue poller); a batch
/// that does not read fails whole.
pub async fn handle_sqs_json(
    store: &dyn Store,
    queue: &dyn Queue,
    cfg: &DeliveryConfig,
    event: &Value,
) -> Value {
    match SqsEvent::deserialize(event) {
        Ok(ev) => json!(handle_sqs(store, queue, cfg, &ev).await),
        Err(e) => {
            crate::log::error("delivery", &format!("unreadable queue batch: {e}"));
            let ids: Vec<Value> = event["Records"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|r| json!({"itemIdentifier": r["messageId"]}))
                .collect();
            json!({"batchItemFailures": ids})
        }
    }
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
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(crate::aws::http::client())
        .retry_config(crate::aws::retry_config())
        .timeout_config(crate::aws::timeout_config())
        .load()
        .await;
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

/// The one runtime of a function: init (clients, warm-up) and every
/// invocation run on it, so the connections opened at init are reused.
fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            crate::log::error("lambda", &format!("runtime: {e}"));
            None
        }
    }
}

fn exit(result: Result<(), lambda_runtime::Error>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            crate::log::error("lambda", &format!("lambda runtime: {e}"));
            ExitCode::FAILURE
        }
    }
}

async fn boot() -> Option<Deployment> {
    match deployment().await {
        Ok(d) => Some(d),
        Err(e) => {
            crate::log::error("lambda", &e);
            None
        }
    }
}

/// A JSON-event function (stream, queue, schedule) on the runtime.
async fn run_json<E, R, F, Fut>(handler: F) -> Result<(), lambda_runtime::Error>
where
    E: serde::de::DeserializeOwned + Send + 'static,
    R: serde::Serialize + Send + 'static,
    F: Fn(E) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = R> + Send + 'static,
{
    let handler = Arc::new(handler);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |ev: lambda_runtime::LambdaEvent<E>| {
            let handler = handler.clone();
            async move { Ok::<R, lambda_runtime::Error>(handler(ev.payload).await) }
        },
    ))
    .await
}

/// The environment variable each function of the one Lambda build names
/// itself in (the template sets it): a route's name (`patients-list`) or
/// one of [`crate::deploy::FANOUT`], [`crate::deploy::DELIVERY`],
/// [`crate::deploy::EXPIRY`].
pub const FUNCTION_ENV: &str = "HUB_FUNCTION";

/// What one function of the build runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// An API route (also `/health`, `/openapi.json`, the dashboard's).
    Http(&'static str),
    Fanout,
    Delivery,
    Expiry,
}

/// The function a `HUB_FUNCTION` value names; the error is the log line
/// an unknown or missing name stops the function with.
pub fn function(name: Option<&str>) -> Result<Function, String> {
    use crate::deploy::{DELIVERY, EXPIRY, FANOUT};
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return Err(format!(
            "{FUNCTION_ENV} is not set: the template names each function's route in it \
             (e.g. patients-list, or {FANOUT}, {DELIVERY}, {EXPIRY}); stopping"
        ));
    };
    match name {
        FANOUT => return Ok(Function::Fanout),
        DELIVERY => return Ok(Function::Delivery),
        EXPIRY => return Ok(Function::Expiry),
        _ => {}
    }
    if let Some(r) = crate::api::routes().iter().find(|r| r.name == name) {
        return Ok(Function::Http(r.name));
    }
    let names = crate::deploy::functions();
    let hint = crate::domain::nearest(name, names.iter().map(String::as_str))
        .map(|n| format!("; did you mean `{n}`?"))
        .unwrap_or_default();
    Err(format!(
        "{FUNCTION_ENV}=`{name}` names no function of this build (a route's name, or \
         {FANOUT}, {DELIVERY}, {EXPIRY}){hint}; the template and the build are out of step \
         (`hub generate`, then build and deploy again); stopping"
    ))
}

/// The `main` of every function of the one Lambda build: the function
/// named by `HUB_FUNCTION`, checked before anything else starts (an
/// unknown name is one error log line and a failed init).
pub fn main() -> ExitCode {
    crate::log::init_lambda();
    let name = std::env::var(FUNCTION_ENV).ok();
    match function(name.as_deref()) {
        Ok(Function::Http(route)) => main_http(route),
        Ok(Function::Fanout) => main_fanout(),
        Ok(Function::Delivery) => main_delivery(),
        Ok(Function::Expiry) => main_expiry(),
        Err(e) => {
            crate::log::error("lambda", &e);
            crate::log::flush();
            ExitCode::FAILURE
        }
    }
}

/// The `main` of an API route function (and of `/health`, `/openapi.json`
/// and the dashboard's).
fn main_http(route: &'static str) -> ExitCode {
    let Some(rt) = runtime() else {
        return ExitCode::FAILURE;
    };
    exit(rt.block_on(async move {
        let Some(d) = boot().await else {
            return Err("init failed".into());
        };
        let app = App::with_queue(d.store, d.queue, d.config);
        crate::log::info("lambda", &format!("route {route} ready"));
        lambda_http::run(lambda_http::service_fn(move |req: lambda_http::Request| {
            let app = app.clone();
            async move { Ok::<_, lambda_runtime::Error>(handle_http(&app, req).await) }
        }))
        .await
    }))
}

/// The `main` of the stream fan-out function.
fn main_fanout() -> ExitCode {
    let Some(rt) = runtime() else {
        return ExitCode::FAILURE;
    };
    exit(rt.block_on(async move {
        let Some(d) = boot().await else {
            return Err("init failed".into());
        };
        let Some(queue) = d.queue else {
            return Err("QUEUE_URL is required by the fan-out function".into());
        };
        let store = d.store;
        run_json(move |event: StreamEvent| {
            let (store, queue) = (store.clone(), queue.clone());
            async move { handle_stream(store.as_ref(), queue.as_ref(), &event).await }
        })
        .await
    }))
}

/// The `main` of the scheduled expiry function (EventBridge, every minute):
/// purchases past their `expiresAt` expire, and their patients' statuses
/// with them.
fn main_expiry() -> ExitCode {
    let Some(rt) = runtime() else {
        return ExitCode::FAILURE;
    };
    exit(rt.block_on(async move {
        let Some(d) = boot().await else {
            return Err("init failed".into());
        };
        let store = d.store;
        run_json(move |_event: Value| {
            let store = store.clone();
            async move { handle_expiry(store.as_ref()).await }
        })
        .await
    }))
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
fn main_delivery() -> ExitCode {
    let Some(rt) = runtime() else {
        return ExitCode::FAILURE;
    };
    exit(rt.block_on(async move {
        let Some(d) = boot().await else {
            return Err("init failed".into());
        };
        let Some(queue) = d.queue else {
            return Err("QUEUE_URL is required by the delivery function".into());
        };
        let (store, cfg) = (d.store, Arc::new(d.delivery));
        run_json(move |event: SqsEvent| {
            let (store, queue, cfg) = (store.clone(), queue.clone(), cfg.clone());
            async move { handle_sqs(store.as_ref(), queue.as_ref(), &cfg, &event).await }
        })
        .await
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Expect, WriteOp, WriteTx};
    use std::sync::Mutex;

    /// A queue that records what is sent and refuses any call carrying
    /// the event `bad`.
    #[derive(Default)]
    struct Recorder {
        sent: Mutex<Vec<Value>>,
        calls: Mutex<usize>,
    }

    #[async_trait::async_trait]
    impl Queue for Recorder {
        async fn send(
            &self,
            bodies: Vec<Value>,
            _delay: Duration,
        ) -> crate::store::StoreResult<()> {
            *self.calls.lock().unwrap() += 1;
            if bodies.iter().any(|b| b["eventId"] == "bad") {
                return Err(crate::store::StoreError::Unavailable("refused".into()));
            }
            self.sent.lock().unwrap().extend(bodies);
            Ok(())
        }
        async fn receive(
            &self,
            _max: usize,
            _visibility: Duration,
        ) -> crate::store::StoreResult<Vec<crate::queue::Received>> {
            Ok(Vec::new())
        }
        async fn delete(&self, _handle: &str) -> crate::store::StoreResult<()> {
            Ok(())
        }
        async fn change_visibility(&self, _h: &str, _d: Duration) -> crate::store::StoreResult<()> {
            Ok(())
        }
    }

    fn record(seq: usize, tenant: &str, id: &str) -> Value {
        let doc =
            json!({"id": id, "type": "patient.created", "createdAt": "2026-01-01T00:00:00.000Z"});
        json!({
            "eventID": format!("e{seq}"), "eventName": "INSERT", "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1", "eventVersion": "1.1",
            "dynamodb": {
                "SequenceNumber": format!("{seq:05}"), "SizeBytes": 1, "StreamViewType": "NEW_IMAGE",
                "Keys": {"PK": {"S": "x"}, "SK": {"S": id}},
                "NewImage": {"kind": {"S": "events"}, "tenant": {"S": tenant}, "doc": {"S": doc.to_string()}},
            },
            "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/s",
        })
    }

    /// 25 events of two tenants fanned out in one batch: every subscribed
    /// endpoint gets each event once, in few SendMessageBatch calls; when
    /// one event's call fails, the batch reports the first record of that
    /// call.
    #[tokio::test]
    async fn a_batch_fans_out_concurrently_and_reports_its_first_failure() {
        let dir = std::env::temp_dir().join(format!("hub-fanout-{}", crate::ids::ulid()));
        let store =
            crate::store::embedded::EmbeddedStore::open(&dir, crate::resources::kinds()).unwrap();
        let mut ops = Vec::new();
        for (tenant, ep) in [
            ("org_a#test", "we_1"),
            ("org_a#test", "we_2"),
            ("org_b#test", "we_3"),
        ] {
            ops.push(WriteOp::Put {
                tenant: tenant.into(),
                kind: crate::webhooks::ENDPOINTS_KIND,
                id: ep.into(),
                doc: json!({"id": ep, "status": "enabled", "enabledEvents": ["patient.*"],
                            "createdAt": "2025-01-01T00:00:00.000Z", "version": 1}),
                expect: Expect::Absent,
            });
        }
        store.commit(WriteTx::of(ops)).await.unwrap();
        let records: Vec<Value> = (0..25)
            .map(|i| {
                let tenant = if i % 2 == 0 {
                    "org_a#test"
                } else {
                    "org_b#test"
                };
                record(i, tenant, &format!("evt_{i}"))
            })
            .collect();
        let queue = Recorder::default();
        let out = handle_stream_json(&store, &queue, &json!({"Records": records})).await;
        assert_eq!(out, json!({"batchItemFailures": []}));
        let sent = queue.sent.lock().unwrap().clone();
        // 13 events of org_a to two endpoints, 12 of org_b to one.
        assert_eq!(sent.len(), 13 * 2 + 12);
        let mut pairs: Vec<String> = sent
            .iter()
            .map(|m| format!("{}>{}", m["eventId"], m["endpointId"]))
            .collect();
        pairs.sort();
        pairs.dedup();
        assert_eq!(pairs.len(), 38, "each delivery once");
        // Packed from consecutive events, whole events per call: 9 + 9 + 9
        // + 9 + 2 messages, not 25 calls.
        assert_eq!(*queue.calls.lock().unwrap(), 5);

        let mut records = records;
        records[7] = record(7, "org_b#test", "bad");
        let queue = Recorder::default();
        let out = handle_stream_json(&store, &queue, &json!({"Records": records})).await;
        // Event 7 went out in the call of events 6 to 11: the batch reports
        // the first of them, and Lambda retries from there (6 to 11 again,
        // and those after).
        assert_eq!(
            out,
            json!({"batchItemFailures": [{"itemIdentifier": "00006"}]})
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A request's log line is written within its invocation: by the time
    /// `lambda_http` has the response (and the runtime posts it, after which
    /// the environment may be frozen), the line is out, on the Lambda
    /// subscriber, which writes and flushes in place.
    #[test]
    fn the_request_line_is_written_before_the_invocation_ends() {
        let dir = std::env::temp_dir().join(format!("hub-lambda-log-{}", crate::ids::ulid()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = crate::store::embedded::EmbeddedStore::open(&dir, crate::resources::kinds())
            .expect("open store");
        let app = App::new(Arc::new(store), Config::default());
        let events = crate::deploy::sample_events();
        let event = |name: &str| {
            events
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, e)| e.clone())
                .unwrap()
        };
        for (route, request_id, status) in [
            ("health", "lambda-req-health", 200),
            ("patients-list", "lambda-req-patients", 401),
        ] {
            let (answer, written) = crate::log::capture_lambda(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(invoke_http(&app, event(route), request_id))
                    .unwrap()
            });
            assert_eq!(answer["statusCode"], status, "{answer}");
            let line = written
                .lines()
                .find(|l| l.contains(&format!("requestId={request_id}")))
                .unwrap_or_else(|| {
                    panic!("no line for {route} by the end of its invocation: {written:?}")
                });
            assert!(line.contains(&format!("status={status}")), "{line}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
