//! The webhook routes beyond CRUD: reveal and roll secrets, send a test
//! event, re-enable, list an endpoint's delivery attempts, and redeliver
//! an event.

use super::*;
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::queue::Queue;
use crate::resources::{self, Ctx, Resource};
use crate::store::{Conflict, Expect, StoreError, WriteOp, WriteTx};
use serde_json::{json, Value};

fn need_queue(queue: Option<&dyn Queue>) -> ApiResult<&dyn Queue> {
    queue.ok_or_else(|| {
        ApiError::new(
            ErrorKind::Unknown,
            "Webhook delivery is not running in this deployment.",
        )
    })
}

/// `POST /v1/{path}/{id}/{action}`: returns status and body.
pub async fn run(
    ctx: &Ctx<'_>,
    queue: Option<&dyn Queue>,
    res: &Resource,
    action: &str,
    id: &str,
    body: Value,
) -> ApiResult<(u16, Value)> {
    let key = ctx.tenant.key();
    match (res.path, action) {
        (ENDPOINTS_KIND, "reveal-secret") => {
            resources::get(ctx, res, id).await?;
            let secrets = ctx
                .store
                .get(&key, SECRETS_KIND, id)
                .await?
                .map(|d| deliver::active_secrets(&d))
                .unwrap_or_default();
            let secret = secrets.last().cloned().ok_or_else(ApiError::internal)?;
            Ok((
                200,
                json!({"object": "webhookEndpointSecret", "endpointId": id, "secret": secret}),
            ))
        }
        (ENDPOINTS_KIND, "roll-secret") => {
            resources::get(ctx, res, id).await?;
            let overlap = match body.get("overlapHours") {
                None | Some(Value::Null) => 0,
                Some(v) => v.as_u64().filter(|h| *h <= 24).ok_or_else(|| {
                    ApiError::field("overlapHours", "must be an integer from 0 to 24")
                })?,
            };
            for _ in 0..16 {
                let current = ctx
                    .store
                    .get(&key, SECRETS_KIND, id)
                    .await?
                    .ok_or_else(ApiError::internal)?;
                let version = current["version"].as_u64().unwrap_or(1);
                let expires =
                    crate::time::format_ms(crate::time::now_ms() + overlap as i64 * 3_600_000);
                let mut kept: Vec<Value> = Vec::new();
                if overlap > 0 {
                    for s in deliver::active_secrets(&current) {
                        kept.push(json!({"secret": s, "expiresAt": expires}));
                    }
                }
                let secret = new_secret();
                kept.push(json!({"secret": secret}));
                let doc = json!({"id": id, "secrets": kept, "version": version + 1});
                let op = WriteOp::Put {
                    tenant: key.clone(),
                    kind: SECRETS_KIND,
                    id: id.to_string(),
                    doc,
                    expect: Expect::Version(version),
                };
                match ctx.store.commit(WriteTx::of(vec![op])).await {
                    Ok(()) => {
                        let mut out = json!({"object": "webhookEndpointSecret", "endpointId": id, "secret": secret});
                        if overlap > 0 {
                            out["previousSecretsExpireAt"] = json!(expires);
                        }
                        return Ok((200, out));
                    }
                    Err(StoreError::Conflict(Conflict::Version { .. })) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            Err(ApiError::new(
                ErrorKind::LockTimeout,
                "The secret is being rolled by another request; retry.",
            ))
        }
        (ENDPOINTS_KIND, "test") => {
            let endpoint = resources::get(ctx, res, id).await?;
            if endpoint["status"] != "enabled" {
                return Err(ApiError::conflict(
                    "This endpoint is disabled: enable it first (POST …/enable).",
                ));
            }
            let queue = need_queue(queue)?;
            let ev = resources::new_event(
                ctx.tenant,
                TEST_EVENT.into(),
                json!({"object": "test", "endpointId": id, "message": "A test event from Practice Hub."}),
            );
            let envelope = ev.envelope.clone();
            // Stored for the events API, but not in the outbox: it goes to this endpoint only.
            let op = WriteOp::Put {
                tenant: key.clone(),
                kind: EVENTS_KIND,
                id: ev.id.clone(),
                doc: envelope.clone(),
                expect: Expect::Absent,
            };
            ctx.store.commit(WriteTx::of(vec![op])).await?;
            queue
                .send(
                    vec![deliver::message(&key, &ev.id, id)],
                    std::time::Duration::ZERO,
                )
                .await?;
            Ok((202, envelope))
        }
        (ENDPOINTS_KIND, "enable") => {
            let doc = resources::update(ctx, res, id, json!({"status": "enabled"}), None).await?;
            let mut doc = (*doc).clone();
            if doc.get("disabledReason").is_some() {
                // A PATCH keeps server fields; clear the reason explicitly.
                let v = doc["version"].as_u64().unwrap_or(1);
                doc.as_object_mut().map(|m| m.remove("disabledReason"));
                doc["version"] = json!(v + 1);
                let op = WriteOp::Put {
                    tenant: key.clone(),
                    kind: ENDPOINTS_KIND,
                    id: id.to_string(),
                    doc: doc.clone(),
                    expect: Expect::Version(v),
                };
                ctx.store.commit(WriteTx::of(vec![op])).await?;
            }
            // A fresh start for the run of failures; events from before now
            // (while it was disabled) are not delivered.
            for _ in 0..16 {
                let state = ctx.store.get(&key, STATE_KIND, id).await?;
                let (expect, v) = match &state {
                    Some(s) => (
                        Expect::Version(s["version"].as_u64().unwrap_or(1)),
                        s["version"].as_u64().unwrap_or(1) + 1,
                    ),
                    None => (Expect::Absent, 1),
                };
                let doc = json!({"id": id, "consecutiveFailures": 0, "enabledAt": crate::time::now_ms(), "version": v});
                let op = WriteOp::Put {
                    tenant: key.clone(),
                    kind: STATE_KIND,
                    id: id.to_string(),
                    doc,
                    expect,
                };
                match ctx.store.commit(WriteTx::of(vec![op])).await {
                    Err(StoreError::Conflict(_)) => continue,
                    other => {
                        other?;
                        break;
                    }
                }
            }
            Ok((200, doc))
        }
        (EVENTS_KIND, "redeliver") => {
            let event = resources::get(ctx, res, id).await?;
            if expired(&event) {
                return Err(ApiError::not_found(res.label, id));
            }
            let queue = need_queue(queue)?;
            let endpoints = match body.get("endpointId") {
                None | Some(Value::Null) => {
                    let t = event["type"].as_str().unwrap_or_default();
                    fanout::subscribers(ctx.store, &key, t, None).await?
                }
                Some(Value::String(e)) => {
                    let ep = ctx.store.get(&key, ENDPOINTS_KIND, e).await?;
                    if ep.is_none() {
                        return Err(ApiError::field(
                            "endpointId",
                            format!(
                                "no webhook endpoint with id `{e}` in this organization and mode"
                            ),
                        ));
                    }
                    vec![e.clone()]
                }
                Some(_) => return Err(ApiError::field("endpointId", "must be a string")),
            };
            let msgs = endpoints
                .iter()
                .map(|e| deliver::message(&key, id, e))
                .collect();
            queue.send(msgs, std::time::Duration::ZERO).await?;
            Ok((
                202,
                json!({"object": "redelivery", "eventId": id, "endpointIds": endpoints}),
            ))
        }
        _ => Err(ApiError::internal()),
    }
}

/// Events are kept 30 days; older ones are treated as gone.
pub const EVENT_TTL_MS: i64 = 30 * 24 * 3_600_000;

pub fn expired(event: &Value) -> bool {
    event["createdAt"]
        .as_str()
        .and_then(crate::time::parse_timestamp)
        .is_some_and(|t| t < crate::time::now_ms() - EVENT_TTL_MS)
}
