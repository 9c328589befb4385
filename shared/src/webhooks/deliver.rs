//! One delivery attempt: the code the embedded worker and the AWS delivery
//! Lambda both run. Loads the event and endpoint, checks the destination,
//! signs afresh, POSTs with a timeout, reads at most 64 KiB of the answer,
//! and records the attempt and the endpoint's run of failures atomically.
//! Connections to receivers are kept alive and reused ([`Connections`]).

use super::*;
use crate::auth::{Mode, Tenant};
use crate::domain::{parse_url, Url};
use crate::store::{Conflict, Doc, DocJson, DocKey, Expect, Store, StoreError, WriteOp, WriteTx};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// A 2xx within this time is a success.
    pub timeout: Duration,
    pub schedule: RetrySchedule,
    /// The TLS client for https endpoints.
    pub tls: Arc<tokio_rustls::rustls::ClientConfig>,
    /// Idle connections to receivers, shared by the clones of this config.
    pub connections: Arc<Connections>,
}

impl Default for DeliveryConfig {
    /// 30 s, the default schedule, and Mozilla's roots plus
    /// `HUB_WEBHOOK_CA_FILE` when set.
    fn default() -> Self {
        let extra = std::env::var_os("HUB_WEBHOOK_CA_FILE").map(std::path::PathBuf::from);
        let tls = crate::tls::client_config(extra.as_deref()).unwrap_or_else(|e| {
            crate::log::error("delivery", &format!("HUB_WEBHOOK_CA_FILE ignored: {e}"));
            crate::tls::client_config(None).expect("the built-in roots load")
        });
        DeliveryConfig {
            timeout: Duration::from_secs(30),
            schedule: RetrySchedule::default(),
            tls,
            connections: Default::default(),
        }
    }
}

/// Idle keep-alive connections to receivers, each kept for the URL's scheme,
/// host and port and the address it was opened to. A delivery takes one
/// only to an address that its own resolution checked (a live-mode host is
/// resolved and judged at every delivery, as before), and only within
/// [`IDLE_FOR`] of its last answer; a receiver that closed a connection
/// meanwhile costs a new one (see [`post`]).
#[derive(Default)]
pub struct Connections {
    idle: Mutex<Idle>,
}

/// Per destination, its idle connections with when each last answered.
type Idle = HashMap<ConnKey, Vec<(SendRequest<Full<Bytes>>, Instant)>>;

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connections").finish_non_exhaustive()
    }
}

/// An idle connection is not reused after this long: below the 5 s
/// keep-alive of common servers (Node's), so a receiver seldom closes one
/// just as it is reused.
const IDLE_FOR: Duration = Duration::from_secs(4);
/// Idle connections kept per destination, and in all.
const IDLE_PER_DESTINATION: usize = 32;
const IDLE_MAX: usize = 256;

#[derive(Clone, PartialEq, Eq, Hash)]
struct ConnKey {
    https: bool,
    host: String,
    port: u16,
    addr: SocketAddr,
}

impl ConnKey {
    fn new(u: &Url, addr: SocketAddr) -> ConnKey {
        ConnKey {
            https: u.https,
            host: u.host.clone(),
            port: u.port,
            addr,
        }
    }
}

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, Idle> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The most recently used idle connection to `key`, if one is fresh.
    fn take(&self, key: &ConnKey) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.lock();
        let list = idle.get_mut(key)?;
        let mut found = None;
        while let Some((sender, since)) = list.pop() {
            if since.elapsed() < IDLE_FOR && !sender.is_closed() {
                found = Some(sender);
                break;
            }
        }
        if list.is_empty() {
            idle.remove(key);
        }
        found
    }

    /// Keep a connection that answered in full, if there is room.
    fn put(&self, key: ConnKey, sender: SendRequest<Full<Bytes>>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.lock();
        let mut total: usize = idle.values().map(Vec::len).sum();
        if total >= IDLE_MAX {
            // Drop what is stale everywhere (a dropped sender closes its
            // connection), then look again.
            idle.retain(|_, list| {
                list.retain(|(s, t)| t.elapsed() < IDLE_FOR && !s.is_closed());
                !list.is_empty()
            });
            total = idle.values().map(Vec::len).sum();
            if total >= IDLE_MAX {
                return;
            }
        }
        let list = idle.entry(key).or_default();
        list.retain(|(s, t)| t.elapsed() < IDLE_FOR && !s.is_closed());
        if list.len() < IDLE_PER_DESTINATION {
            list.push((sender, Instant::now()));
        }
    }

    /// Idle connections held (for tests).
    pub fn idle(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }
}

/// What to do with the queue message after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Delivered,
    /// Try again after this delay.
    Retry(Duration),
    /// The last attempt failed.
    Dead,
    /// Nothing to deliver (event expired, endpoint deleted or disabled).
    Dropped,
}

/// Check a webhook URL for a mode: live mode needs https and a host whose
/// every address is public. Test mode accepts any http(s) URL.
pub async fn destination(url: &str, live: bool) -> Result<Url, String> {
    let u = parse_url(url).ok_or("must be an absolute http:// or https:// URL")?;
    if live {
        if !u.https {
            return Err("live-mode endpoints must use https".into());
        }
        resolve(&u, true).await?;
    }
    Ok(u)
}

/// Resolve a destination; with `protect`, refuse forbidden addresses.
pub async fn resolve(u: &Url, protect: bool) -> Result<Vec<SocketAddr>, String> {
    let addrs: Vec<SocketAddr> = match tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::lookup_host((u.host.as_str(), u.port)),
    )
    .await
    {
        Ok(Ok(a)) => a.collect(),
        Ok(Err(_)) | Err(_) => return Err(format!("the host `{}` cannot be resolved", u.host)),
    };
    if addrs.is_empty() {
        return Err(format!("the host `{}` has no address", u.host));
    }
    if protect {
        for a in &addrs {
            if let Some(class) = forbidden_ip(a.ip()) {
                return Err(format!(
                    "`{}` resolves to a {class} address, which live-mode webhooks may not reach",
                    u.host
                ));
            }
        }
    }
    Ok(addrs)
}

pub struct Answer {
    pub status: u16,
    pub retry_after: Option<Duration>,
}

/// An HTTP/1.1 connection over an established stream.
async fn handshake<S>(stream: S) -> Result<SendRequest<Full<Bytes>>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake: {e}"))?;
    // Ends when the receiver closes the connection or the sender is dropped.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Why an exchange failed, and whether the request certainly never left
/// (the connection was found closed before it was written).
struct Failed {
    why: String,
    unsent: bool,
}

impl From<Failed> for String {
    fn from(f: Failed) -> String {
        f.why
    }
}

/// One exchange on a connection; the connection comes back when it can
/// carry another (the answer read to its end, and not closing).
async fn exchange(
    mut sender: SendRequest<Full<Bytes>>,
    u: &Url,
    headers: &[(String, String)],
    body: Bytes,
) -> Result<(Answer, Option<SendRequest<Full<Bytes>>>), Failed> {
    sender.ready().await.map_err(|e| Failed {
        why: format!("connection: {e}"),
        unsent: true,
    })?;
    let default_port = if u.https { 443 } else { 80 };
    let host = if u.port == default_port {
        u.host.clone()
    } else {
        format!("{}:{}", u.host, u.port)
    };
    let mut req = hyper::Request::builder()
        .method("POST")
        .uri(u.path.as_str())
        .header("host", host);
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let req = req.body(Full::new(body)).map_err(|e| Failed {
        why: format!("request: {e}"),
        unsent: false,
    })?;
    let resp = sender.send_request(req).await.map_err(|e| Failed {
        unsent: e.is_canceled(),
        why: format!("sending: {e}"),
    })?;
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let closing = resp
        .headers()
        .get(hyper::header::CONNECTION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("close"));
    // Read at most 64 KiB of the answer, then stop (and drop the connection).
    let mut body = resp.into_body();
    let mut read = 0usize;
    let mut whole = false;
    loop {
        match body.frame().await {
            None => {
                whole = true;
                break;
            }
            Some(Ok(f)) => {
                if let Ok(d) = f.into_data() {
                    read += d.len();
                    if read >= MAX_RESPONSE_BYTES {
                        break;
                    }
                }
            }
            Some(Err(_)) => break,
        }
    }
    let answer = Answer {
        status,
        retry_after,
    };
    Ok((answer, (whole && !closing).then_some(sender)))
}

/// POST to one of the checked addresses (never a fresh DNS answer), over
/// TLS for https (the certificate is checked against the URL's host):
/// on a kept connection to one of them if there is one, else a new one.
/// A kept connection found closed before the request was written is
/// replaced by a new one for the same attempt; one that fails after (the
/// receiver may have read the request) fails the attempt, as a new
/// connection's failure does: one request per attempt, always.
async fn post(
    cfg: &DeliveryConfig,
    u: &Url,
    addrs: &[SocketAddr],
    headers: &[(String, String)],
    body: Bytes,
) -> Result<Answer, String> {
    let work = async {
        let kept = addrs.iter().find_map(|a| {
            let key = ConnKey::new(u, *a);
            cfg.connections.take(&key).map(|s| (key, s))
        });
        if let Some((key, sender)) = kept {
            match exchange(sender, u, headers, body.clone()).await {
                Ok((answer, again)) => {
                    if let Some(sender) = again {
                        cfg.connections.put(key, sender);
                    }
                    return Ok(answer);
                }
                Err(f) if !f.unsent => return Err(f.why),
                Err(_) => {}
            }
        }
        let (stream, addr) = crate::tls::connect_first(addrs).await?;
        let sender = if u.https {
            handshake(crate::tls::wrap(&cfg.tls, &u.host, stream).await?).await?
        } else {
            handshake(stream).await?
        };
        let (answer, again) = exchange(sender, u, headers, body).await?;
        if let Some(sender) = again {
            cfg.connections.put(ConnKey::new(u, addr), sender);
        }
        Ok(answer)
    };
    match tokio::time::timeout(cfg.timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "no response within {} s",
            cfg.timeout.as_secs_f64()
        )),
    }
}

fn tenant_of(key: &str) -> Option<Tenant> {
    let (org, mode) = key.split_once('#')?;
    let mode = match mode {
        "test" => Mode::Test,
        "live" => Mode::Live,
        _ => return None,
    };
    Some(Tenant::new(org, mode))
}

/// The queue message for one delivery of an event to an endpoint.
pub fn message(tenant: &str, event_id: &str, endpoint_id: &str) -> Value {
    json!({"tenant": tenant, "eventId": event_id, "endpointId": endpoint_id})
}

/// Active signing secrets of an endpoint, newest first.
pub fn active_secrets(doc: &Value) -> Vec<String> {
    let now = crate::time::now_ms();
    doc["secrets"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|s| {
                    s["expiresAt"]
                        .as_str()
                        .and_then(crate::time::parse_timestamp)
                        .is_none_or(|e| e > now)
                })
                .filter_map(|s| s["secret"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Record an attempt made (none: the delivery was dropped) and say what to
/// do with its message.
pub async fn settle(store: &dyn Store, made: Option<Attempted>) -> Result<Outcome, StoreError> {
    match made {
        None => Ok(Outcome::Dropped),
        Some(made) => {
            made.record(store).await?;
            Ok(made.outcome)
        }
    }
}

/// An attempt made and not yet recorded.
pub struct Attempted {
    pub outcome: Outcome,
    tenant: Tenant,
    endpoint_id: String,
    record: Value,
    /// The endpoint's state (its run of failures) as read before the
    /// attempt; `None`: it had none.
    state: Option<Doc>,
}

impl Attempted {
    /// Did the receiver take it?
    pub fn delivered(&self) -> bool {
        self.outcome == Outcome::Delivered
    }

    /// Store the attempt (and the endpoint's run of failures) durably.
    pub async fn record(&self, store: &dyn Store) -> Result<(), StoreError> {
        record_attempt(
            store,
            &self.tenant,
            &self.endpoint_id,
            self.record.clone(),
            self.delivered(),
        )
        .await
    }
}

/// Record several attempts, each result in their order. Successes at
/// endpoints with no run of failures to reset (nearly all) are stored
/// together in one write — each touches nothing but its own new delivery
/// item, on condition that its endpoint's state is still the one read
/// before the attempt — and the others (or all, if that write fails) one
/// at a time as [`Attempted::record`] does.
pub async fn record_all(store: &dyn Store, made: &[&Attempted]) -> Vec<Result<(), StoreError>> {
    let mut results: Vec<Option<Result<(), StoreError>>> = vec![None; made.len()];
    let clean = |a: &Attempted| {
        a.delivered()
            && a.state
                .as_ref()
                .is_none_or(|s| s["consecutiveFailures"].as_u64().unwrap_or(0) == 0)
    };
    let plain: Vec<usize> = (0..made.len()).filter(|&i| clean(made[i])).collect();
    if !plain.is_empty() {
        let mut ops: Vec<WriteOp> = plain
            .iter()
            .map(|&i| WriteOp::Put {
                tenant: made[i].tenant.key(),
                kind: DELIVERIES_KIND,
                id: made[i].record["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                doc: made[i].record.clone(),
                expect: Expect::Absent,
            })
            .collect();
        let mut checked = std::collections::HashSet::new();
        for &i in &plain {
            let a = made[i];
            if checked.insert((a.tenant.key(), a.endpoint_id.as_str())) {
                ops.push(WriteOp::Check {
                    tenant: a.tenant.key(),
                    kind: STATE_KIND,
                    id: a.endpoint_id.clone(),
                    expect: match &a.state {
                        Some(s) => Expect::Version(crate::store::version_of(s)),
                        None => Expect::Absent,
                    },
                });
            }
        }
        if store.commit(WriteTx::of(ops)).await.is_ok() {
            for &i in &plain {
                results[i] = Some(Ok(()));
            }
        }
    }
    let mut out = Vec::with_capacity(made.len());
    for (a, r) in made.iter().zip(results) {
        out.push(match r {
            Some(r) => r,
            None => a.record(store).await,
        });
    }
    out
}

/// A queue message's tenant, event id and endpoint id.
fn parts(msg: &Value) -> Option<(&str, &str, &str)> {
    Some((
        msg["tenant"].as_str()?,
        msg["eventId"].as_str()?,
        msg["endpointId"].as_str()?,
    ))
}

/// What an attempt reads before it is made: the message's event (its
/// stored text) and its endpoint's object, secrets and state.
pub struct Reads(HashMap<DocKey, Read>);

enum Read {
    Json(DocJson),
    Doc(Doc),
}

/// The keys an attempt at `msg` reads.
fn keys_of(msg: &Value) -> Option<[DocKey; 4]> {
    let (tenant, event_id, endpoint_id) = parts(msg)?;
    Some([
        DocKey::new(tenant, EVENTS_KIND, event_id),
        DocKey::new(tenant, ENDPOINTS_KIND, endpoint_id),
        DocKey::new(tenant, SECRETS_KIND, endpoint_id),
        DocKey::new(tenant, STATE_KIND, endpoint_id),
    ])
}

impl Reads {
    /// For a batch of messages at once: one strongly consistent read
    /// (`BatchGetItem` on DynamoDB) of every event and every endpoint's
    /// object, secrets and state.
    pub async fn batch(store: &dyn Store, msgs: &[&Value]) -> Result<Reads, StoreError> {
        let mut keys: Vec<DocKey> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for key in msgs.iter().filter_map(|m| keys_of(m)).flatten() {
            if seen.insert(key.clone()) {
                keys.push(key);
            }
        }
        let found = store.get_many(&keys).await?;
        Ok(Reads(
            keys.into_iter()
                .zip(found)
                .filter_map(|(k, d)| Some((k, Read::Json(d?))))
                .collect(),
        ))
    }

    /// For one message: its event's text and the endpoint's documents as
    /// the store keeps them parsed.
    pub async fn one(store: &dyn Store, msg: &Value) -> Result<Reads, StoreError> {
        let mut found = HashMap::new();
        if let Some([event, rest @ ..]) = keys_of(msg) {
            if let Some(e) = store.get_json(&event.tenant, event.kind, &event.id).await? {
                found.insert(event, Read::Json(e));
            }
            for key in rest {
                if let Some(d) = store.get(&key.tenant, key.kind, &key.id).await? {
                    found.insert(key, Read::Doc(d));
                }
            }
        }
        Ok(Reads(found))
    }

    /// The text read at this key (`None`: absent, or not read).
    fn json(&self, tenant: &str, kind: &'static str, id: &str) -> Option<DocJson> {
        match self.0.get(&DocKey::new(tenant, kind, id))? {
            Read::Json(j) => Some(j.clone()),
            Read::Doc(d) => Some(DocJson::new(d.clone())),
        }
    }

    /// The document read at this key (`None`: absent, or not read).
    fn doc(&self, tenant: &str, kind: &'static str, id: &str) -> Result<Option<Doc>, StoreError> {
        match self.0.get(&DocKey::new(tenant, kind, id)) {
            None => Ok(None),
            Some(Read::Json(j)) => j.doc().map(Some),
            Some(Read::Doc(d)) => Ok(Some(d.clone())),
        }
    }
}

/// Make one attempt without recording it: `None` when there is nothing to
/// deliver (the event expired, the endpoint was deleted or disabled, or the
/// message is malformed). The store should be fresh enough to hold the
/// message's event: the caller refreshes it once the message is received
/// (an event not found is looked for again after reading every commit).
pub async fn make(
    store: &dyn Store,
    cfg: &DeliveryConfig,
    msg: &Value,
    attempt: u32,
) -> Result<Option<Attempted>, StoreError> {
    let reads = Reads::one(store, msg).await?;
    make_from(store, cfg, &reads, msg, attempt).await
}

/// [`make`] with what it reads already read ([`Reads::batch`], for a batch
/// of messages at once).
pub async fn make_from(
    store: &dyn Store,
    cfg: &DeliveryConfig,
    reads: &Reads,
    msg: &Value,
    attempt: u32,
) -> Result<Option<Attempted>, StoreError> {
    let Some((tenant_key, event_id, endpoint_id)) = parts(msg) else {
        crate::log::error("delivery", "malformed queue message dropped");
        return Ok(None);
    };
    let Some(tenant) = tenant_of(tenant_key) else {
        return Ok(None);
    };
    // With its stored text: the body is not serialised again.
    let event = match reads.json(tenant_key, EVENTS_KIND, event_id) {
        Some(e) => e,
        None => {
            // Not in this process's view yet: the message was sent after
            // its event was committed, so look at every commit (the fan-out
            // can read an outbox row before its writer announced it).
            store.refresh_committed().await?;
            let Some(e) = store.get_json(tenant_key, EVENTS_KIND, event_id).await? else {
                return Ok(None);
            };
            e
        }
    };
    let Some(endpoint) = reads.doc(tenant_key, ENDPOINTS_KIND, endpoint_id)? else {
        return Ok(None);
    };
    if endpoint["status"] != "enabled" {
        return Ok(None);
    }
    // Signing secrets and custom header values live apart from the endpoint.
    let private = reads.doc(tenant_key, SECRETS_KIND, endpoint_id)?;
    let state = reads.doc(tenant_key, STATE_KIND, endpoint_id)?;
    let secrets = private.as_deref().map(active_secrets).unwrap_or_default();
    let body = event.json.clone();
    // Only the type is read from the event: the rest of its text is skipped,
    // not parsed.
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(rename = "type")]
        event_type: String,
    }
    let event_type = serde_json::from_slice::<Head>(&body)
        .map(|h| h.event_type)
        .unwrap_or_default();
    // The attempt's `createdAt` is the instant in its id (when it began).
    let (delivery_id, started_ms) = crate::ids::new_id_at("del");
    let timestamp = crate::time::now_ms() / 1000;
    let (hub_sig, std_sig) = sign(&secrets, event_id, timestamp, &body);
    let mut headers: Vec<(String, String)> = Vec::new();
    if let Some(custom) = private.as_ref().and_then(|p| p["headers"].as_object()) {
        for (k, v) in custom {
            if let Some(v) = v.as_str() {
                headers.push((k.clone(), v.to_string()));
            }
        }
    }
    headers.extend([
        ("content-type".to_string(), "application/json".to_string()),
        ("user-agent".into(), "PracticeHub-Webhooks/1.0".into()),
        ("hub-signature".into(), hub_sig),
        ("webhook-id".into(), event_id.to_string()),
        ("webhook-timestamp".into(), timestamp.to_string()),
        ("webhook-signature".into(), std_sig),
        ("hub-event".into(), event_type.clone()),
        ("hub-delivery".into(), delivery_id.clone()),
    ]);
    let started = Instant::now();
    let url = endpoint["url"].as_str().unwrap_or_default();
    let result = match parse_url(url) {
        None => Err("the endpoint URL is invalid".to_string()),
        Some(u) => {
            let protect = tenant.livemode();
            if tenant.livemode() && !u.https {
                Err("live-mode endpoints must use https".to_string())
            } else {
                match resolve(&u, protect).await {
                    Ok(addrs) => post(cfg, &u, &addrs, &headers, body).await,
                    Err(e) => Err(e),
                }
            }
        }
    };
    let duration = started.elapsed().as_millis() as i64;
    let (ok, status, error, retry_after) = match &result {
        Ok(a) if (200..300).contains(&a.status) => (true, Some(a.status), None, None),
        Ok(a) => (
            false,
            Some(a.status),
            Some(format!("the endpoint answered {}", a.status)),
            if a.status == 429 || a.status == 503 {
                a.retry_after
            } else {
                None
            },
        ),
        Err(e) => (false, None, Some(e.clone()), None),
    };
    let outcome = if ok {
        Outcome::Delivered
    } else {
        match cfg.schedule.delay_after(attempt) {
            Some(d) => Outcome::Retry(match retry_after {
                // A receiver's Retry-After is honoured between 1 s and 1 h.
                Some(ra) => ra.clamp(Duration::from_secs(1), Duration::from_secs(3600)),
                None => d,
            }),
            None => Outcome::Dead,
        }
    };
    let now = crate::time::now_ms();
    let mut record = json!({
        "id": delivery_id, "object": "webhookDelivery", "endpointId": endpoint_id, "eventId": event_id,
        "eventType": event_type, "attempt": attempt,
        "status": match outcome { Outcome::Delivered => "succeeded", Outcome::Dead => "dead", _ => "failed" },
        "durationMs": duration, "livemode": tenant.livemode(),
        "createdAt": crate::time::format_ms(started_ms), "updatedAt": crate::time::format_ms(now), "version": 1,
    });
    if let Some(s) = status {
        record["responseStatus"] = json!(s);
    }
    if let Some(e) = &error {
        record["error"] = json!(e);
    }
    if let Outcome::Retry(d) = &outcome {
        record["nextRetryAt"] = json!(crate::time::format_ms(now + d.as_millis() as i64));
    }
    Ok(Some(Attempted {
        outcome,
        tenant,
        endpoint_id: endpoint_id.to_string(),
        record,
        state,
    }))
}

/// Store the attempt and update the endpoint's run of consecutive failures
/// in one write; the 50th failure in a row disables the endpoint.
async fn record_attempt(
    store: &dyn Store,
    tenant: &Tenant,
    endpoint_id: &str,
    record: Value,
    ok: bool,
) -> Result<(), StoreError> {
    let key = tenant.key();
    let delivery_id = record["id"].as_str().unwrap_or_default().to_string();
    for _ in 0..16 {
        let state = store.get(&key, STATE_KIND, endpoint_id).await?;
        let (failures, expect) = match &state {
            Some(s) => (
                s["consecutiveFailures"].as_u64().unwrap_or(0),
                Expect::Version(s["version"].as_u64().unwrap_or(1)),
            ),
            None => (0, Expect::Absent),
        };
        // A success after a success leaves the run of failures at 0: the
        // state is not written, so a healthy endpoint's deliveries do not
        // all contend for that one item (over DynamoDB, a transaction each).
        let unchanged = ok && failures == 0;
        let failures = if ok { 0 } else { failures + 1 };
        let version = match expect {
            Expect::Version(v) => v + 1,
            Expect::Absent => 1,
        };
        let mut ops = vec![
            WriteOp::Put {
                tenant: key.clone(),
                kind: DELIVERIES_KIND,
                id: delivery_id.clone(),
                doc: record.clone(),
                expect: Expect::Absent,
            },
            WriteOp::Put {
                tenant: key.clone(),
                kind: STATE_KIND,
                id: endpoint_id.to_string(),
                doc: json!({
                    "id": endpoint_id, "consecutiveFailures": failures, "version": version,
                    "enabledAt": state.as_ref().and_then(|s| s["enabledAt"].as_i64()),
                }),
                expect,
            },
        ];
        if unchanged {
            ops.pop();
        }
        let mut events = Vec::new();
        if failures == DISABLE_AFTER {
            if let Some(ep) = store.get(&key, ENDPOINTS_KIND, endpoint_id).await? {
                if ep["status"] == "enabled" {
                    let mut doc = (*ep).clone();
                    let v = doc["version"].as_u64().unwrap_or(1);
                    doc["status"] = json!("disabled");
                    doc["disabledReason"] = json!(format!(
                        "{DISABLE_AFTER} consecutive failed delivery attempts"
                    ));
                    doc["version"] = json!(v + 1);
                    doc["updatedAt"] = json!(crate::time::format_ms(crate::time::now_ms()));
                    let mut data = doc.clone();
                    data["previousAttributes"] = previous_attributes(&ep, &doc);
                    events.push(event(tenant, "webhookEndpoint.updated".into(), data));
                    ops.push(WriteOp::Put {
                        tenant: key.clone(),
                        kind: ENDPOINTS_KIND,
                        id: endpoint_id.to_string(),
                        doc,
                        expect: Expect::Version(v),
                    });
                }
            }
        }
        let tx: WriteTx = with_events(ops, events);
        match store.commit(tx).await {
            Ok(()) => return Ok(()),
            // Its own new id already there: this attempt was recorded
            // already (a write applied whose answer was lost, or a batch
            // write of it that failed after applying).
            Err(StoreError::Conflict(Conflict::Exists { kind, id }))
                if kind == DELIVERIES_KIND && id == delivery_id =>
            {
                return Ok(())
            }
            // The state moved meanwhile, or the write was cancelled for
            // contention (nothing written): read it again and retry, rather
            // than have the queue send the attempt again.
            Err(
                StoreError::Conflict(Conflict::Version { .. } | Conflict::Exists { .. })
                | StoreError::Busy,
            ) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Busy)
}
