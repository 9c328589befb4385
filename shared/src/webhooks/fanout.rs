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
