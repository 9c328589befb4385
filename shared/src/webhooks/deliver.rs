//! One delivery attempt: the code the embedded worker and the AWS delivery
//! Lambda both run. Loads the event and endpoint, checks the destination,
//! signs afresh, POSTs with a timeout, reads at most 64 KiB of the answer,
//! and records the attempt and the endpoint's run of failures atomically.

use super::*;
use crate::auth::{Mode, Tenant};
use crate::domain::{parse_url, Url};
use crate::store::{Conflict, Expect, Store, StoreError, WriteOp, WriteTx};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// A 2xx within this time is a success.
    pub timeout: Duration,
    pub schedule: RetrySchedule,
    /// The TLS client for https endpoints.
    pub tls: Arc<tokio_rustls::rustls::ClientConfig>,
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
        }
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

/// One HTTP/1.1 exchange over an established stream.
async fn exchange<S>(
    stream: S,
    u: &Url,
    headers: &[(String, String)],
    body: Bytes,
) -> Result<Answer, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
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
    let req = req
        .body(Full::new(body))
        .map_err(|e| format!("request: {e}"))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("sending: {e}"))?;
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    // Read at most 64 KiB of the answer, then stop.
    let mut body = resp.into_body();
    let mut read = 0usize;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Ok(d) = f.into_data() {
                    read += d.len();
                    if read >= MAX_RESPONSE_BYTES {
                        break;
                    }
                }
            }
            Err(_) => break,
        }
    }
    Ok(Answer {
        status,
        retry_after,
    })
}

/// POST to one of the checked addresses (never a fresh DNS answer), over
/// TLS for https (the certificate is checked against the URL's host).
async fn post(
    cfg: &DeliveryConfig,
    u: &Url,
    addrs: &[SocketAddr],
    headers: &[(String, String)],
    body: Bytes,
) -> Result<Answer, String> {
    let work = async {
        let mut last = String::from("no address");
        let mut stream = None;
        for a in addrs {
            match tokio::net::TcpStream::connect(a).await {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = format!("connect to {a}: {e}"),
            }
        }
        let stream = stream.ok_or(last)?;
        let _ = stream.set_nodelay(true);
        if u.https {
            let name = rustls_pki_types::ServerName::try_from(u.host.clone())
                .map_err(|_| format!("`{}` is not a valid TLS server name", u.host))?;
            let tls = tokio_rustls::TlsConnector::from(cfg.tls.clone())
                .connect(name, stream)
                .await
                .map_err(|e| format!("TLS: {e}"))?;
            exchange(tls, u, headers, body).await
        } else {
            exchange(stream, u, headers, body).await
        }
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

/// Make one attempt; `attempt` is 1 for the first.
pub async fn attempt(
    store: &dyn Store,
    cfg: &DeliveryConfig,
    msg: &Value,
    attempt: u32,
) -> Result<Outcome, StoreError> {
    let (Some(tenant_key), Some(event_id), Some(endpoint_id)) = (
        msg["tenant"].as_str(),
        msg["eventId"].as_str(),
        msg["endpointId"].as_str(),
    ) else {
        crate::log::error("delivery", "malformed queue message dropped");
        return Ok(Outcome::Dropped);
    };
    let Some(tenant) = tenant_of(tenant_key) else {
        return Ok(Outcome::Dropped);
    };
    // The event may have been committed a moment ago, by another process or
    // thread: a stale view would drop a delivery that is due.
    store.refresh().await?;
    let Some(event) = store.get(tenant_key, EVENTS_KIND, event_id).await? else {
        return Ok(Outcome::Dropped);
    };
    let Some(endpoint) = store.get(tenant_key, ENDPOINTS_KIND, endpoint_id).await? else {
        return Ok(Outcome::Dropped);
    };
    if endpoint["status"] != "enabled" {
        return Ok(Outcome::Dropped);
    }
    // Signing secrets and custom header values live apart from the endpoint.
    let private = store.get(tenant_key, SECRETS_KIND, endpoint_id).await?;
    let secrets = private.as_deref().map(active_secrets).unwrap_or_default();
    let body = Bytes::from(serde_json::to_vec(event.as_ref()).unwrap_or_default());
    // The attempt's `createdAt` is the instant in its id (when it began).
    let (delivery_id, started_ms) = crate::ids::new_id_at("del");
    let event_type = event["type"].as_str().unwrap_or_default().to_string();
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
    record_attempt(store, &tenant, endpoint_id, record, ok).await?;
    Ok(outcome)
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
            Err(StoreError::Conflict(Conflict::Version { .. } | Conflict::Exists { .. })) => {
                continue
            }
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Busy)
}
