//! The fan-out step: events from the outbox → one queue message per
//! subscribed, enabled endpoint of the event's tenant.

use super::*;
use crate::queue::Queue;
use crate::store::{EventRecord, Store, StoreResult};
use serde_json::Value;

/// Endpoints of a tenant that should receive an event type. With
/// `happened_at`, only endpoints that existed and were enabled at that time
/// (an endpoint never receives events from before its creation or from
/// while it was disabled).
pub async fn subscribers(
    store: &dyn Store,
    tenant: &str,
    event_type: &str,
    happened_at: Option<i64>,
) -> StoreResult<Vec<String>> {
    let mut out = Vec::new();
    for id in subscribed_now(store, tenant, event_type).await? {
        if let Some(t) = happened_at {
            let Some(ep) = store.get(tenant, ENDPOINTS_KIND, &id).await? else {
                continue;
            };
            let created = ep["createdAt"]
                .as_str()
                .and_then(crate::time::parse_timestamp)
                .unwrap_or(0);
            let enabled = match store.get(tenant, STATE_KIND, &id).await? {
                Some(s) => s["enabledAt"].as_i64().unwrap_or(0),
                None => 0,
            };
            if created > t || enabled > t {
                continue;
            }
        }
        out.push(id);
    }
    Ok(out)
}

async fn subscribed_now(
    store: &dyn Store,
    tenant: &str,
    event_type: &str,
) -> StoreResult<Vec<String>> {
    Ok(store
        .all(tenant, ENDPOINTS_KIND)
        .await?
        .iter()
        .filter(|ep| ep["status"] == "enabled")
        .filter(|ep| {
            let enabled: Vec<String> = ep["enabledEvents"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default();
            subscribed(&enabled, event_type)
        })
        .filter_map(|ep| ep["id"].as_str().map(String::from))
        .collect())
}

/// Enqueue the deliveries of a batch of events.
pub async fn fan_out(
    store: &dyn Store,
    queue: &dyn Queue,
    events: &[EventRecord],
) -> StoreResult<usize> {
    // The batch came from the outbox itself: see at least the writes that
    // put it there (and the endpoints created before them).
    store.refresh().await?;
    let mut messages = Vec::new();
    for ev in events {
        for endpoint in
            subscribers(store, &ev.tenant, &ev.event_type, Some(ev.created_at_ms)).await?
        {
            messages.push(deliver::message(&ev.tenant, &ev.id, &endpoint));
        }
    }
    let n = messages.len();
    if n > 0 {
        queue.send(messages, std::time::Duration::ZERO).await?;
    }
    Ok(n)
}

/// An endpoint as the fan-out of one batch sees it: read once per tenant
/// and batch, not once per event.
struct Subscriber {
    id: String,
    events: Vec<String>,
    created: i64,
    enabled_at: i64,
}

/// Enabled endpoints of a tenant with what [`subscribers`] checks, read the
/// way it reads them.
async fn subscribers_of(store: &dyn Store, tenant: &str) -> StoreResult<Vec<Subscriber>> {
    let mut out = Vec::new();
    for ep in store.all(tenant, ENDPOINTS_KIND).await? {
        if ep["status"] != "enabled" {
            continue;
        }
        let Some(id) = ep["id"].as_str() else {
            continue;
        };
        let Some(fresh) = store.get(tenant, ENDPOINTS_KIND, id).await? else {
            continue;
        };
        let created = fresh["createdAt"]
            .as_str()
            .and_then(crate::time::parse_timestamp)
            .unwrap_or(0);
        let enabled_at = match store.get(tenant, STATE_KIND, id).await? {
            Some(s) => s["enabledAt"].as_i64().unwrap_or(0),
            None => 0,
        };
        let events = ep["enabledEvents"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        out.push(Subscriber {
            id: id.to_string(),
            events,
            created,
            enabled_at,
        });
    }
    Ok(out)
}

/// Messages per `SendMessageBatch` call.
const SQS_BATCH: usize = 10;

/// The fan-out of a stream batch, each event's result in the batch's order
/// (how many deliveries it enqueued, or why not). The same deliveries as
/// [`fan_out`] of each event alone, but concurrent: each tenant's endpoints
/// are read once for the batch (up to `concurrency` tenants at once), and
/// the messages go out in `SendMessageBatch` calls of up to ten, packed from
/// consecutive events, up to `concurrency` calls at once. An event fails
/// with its tenant's read or its call; the others are unaffected.
pub async fn fan_out_each(
    store: &dyn Store,
    queue: &dyn Queue,
    events: &[EventRecord],
    concurrency: usize,
) -> Vec<StoreResult<usize>> {
    use std::collections::HashMap;
    let permits = tokio::sync::Semaphore::new(concurrency.max(1));
    let permits = &permits;
    if events.is_empty() {
        return Vec::new();
    }
    if let Err(e) = store.refresh().await {
        return events.iter().map(|_| Err(e.clone())).collect();
    }
    let mut tenants: Vec<&str> = events.iter().map(|e| e.tenant.as_str()).collect();
    tenants.sort_unstable();
    tenants.dedup();
    let reads: Vec<_> = tenants
        .into_iter()
        .map(|t| async move {
            let _permit = permits.acquire().await;
            (t, subscribers_of(store, t).await)
        })
        .collect();
    let loaded: HashMap<&str, StoreResult<Vec<Subscriber>>> =
        futures::future::join_all(reads).await.into_iter().collect();
    // Each event's messages, or its tenant's error.
    let mut results: Vec<StoreResult<usize>> = Vec::with_capacity(events.len());
    let mut messages: Vec<Vec<Value>> = Vec::with_capacity(events.len());
    for ev in events {
        match &loaded[ev.tenant.as_str()] {
            Err(e) => {
                results.push(Err(e.clone()));
                messages.push(Vec::new());
            }
            Ok(subs) => {
                let m: Vec<Value> = subs
                    .iter()
                    .filter(|s| subscribed(&s.events, &ev.event_type))
                    .filter(|s| s.created <= ev.created_at_ms && s.enabled_at <= ev.created_at_ms)
                    .map(|s| deliver::message(&ev.tenant, &ev.id, &s.id))
                    .collect();
                results.push(Ok(m.len()));
                messages.push(m);
            }
        }
    }
    // Consecutive events packed into calls of up to ten messages (an event
    // with more than ten is a call of its own, which the queue splits).
    let mut groups: Vec<(Vec<usize>, Vec<Value>)> = Vec::new();
    for (i, m) in messages.into_iter().enumerate() {
        if m.is_empty() {
            continue;
        }
        match groups.last_mut() {
            Some((idx, body)) if body.len() + m.len() <= SQS_BATCH => {
                idx.push(i);
                body.extend(m);
            }
            _ => groups.push((vec![i], m)),
        }
    }
    let sends: Vec<_> = groups
        .into_iter()
        .map(|(idx, body)| async move {
            let _permit = permits.acquire().await;
            (idx, queue.send(body, std::time::Duration::ZERO).await)
        })
        .collect();
    let sent = futures::future::join_all(sends).await;
    for (idx, r) in sent {
        if let Err(e) = r {
            for i in idx {
                results[i] = Err(e.clone());
            }
        }
    }
    results
}
