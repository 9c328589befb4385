//! `Idempotency-Key` on POST (SPEC §5): the same key with the same request
//! within 24 hours returns the first response again (`Idempotent-Replayed:
//! true`) and creates nothing; the same key with another request, or while
//! the first is still running: 409.
//!
//! A record per key (`idempotency-keys`, id = SHA-256 of the key, in the
//! caller's tenant) is claimed with a create-if-absent before the request
//! runs, so of two at once exactly one runs. A 2xx response is then stored
//! in the record; any other outcome releases the key, so a corrected request
//! may use it again. Were the process to stop between the write and storing
//! the response, the key stays claimed and answers 409 until it expires:
//! never a second write.

use super::Response;
use crate::error::{ApiError, ApiResult};
use crate::store::{Expect, StoreError, WriteOp, WriteTx};
use bytes::Bytes;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const KIND: &str = "idempotency-keys";
pub const TTL_MS: i64 = 24 * 3_600_000;
const MAX_KEY_LEN: usize = 255;
/// Response headers a replay carries again.
const KEPT_HEADERS: [&str; 3] = ["etag", "location", "link"];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A claimed key: what to do once the request has run.
pub struct Claim {
    tenant: String,
    id: String,
    version: u64,
    fingerprint: String,
    created_at: String,
}

/// What the key says before the request runs.
pub enum Before {
    /// Run the request, then `finish` the claim.
    Run(Claim),
    /// The first response, again.
    Replay(Response),
}

/// Check the header and claim the key (or find its stored response).
pub async fn begin(
    store: &dyn crate::store::Store,
    tenant: &str,
    raw_key: &str,
    method: &str,
    path: &str,
    body: &Bytes,
) -> ApiResult<Before> {
    if raw_key.is_empty()
        || raw_key.len() > MAX_KEY_LEN
        || !raw_key.bytes().all(|b| (0x20..0x7f).contains(&b))
    {
        return Err(ApiError::field(
            "Idempotency-Key",
            format!("must be 1 to {MAX_KEY_LEN} printable ASCII characters"),
        ));
    }
    let id = hex(&Sha256::digest(raw_key.as_bytes()));
    let mut h = Sha256::new();
    h.update(method.as_bytes());
    h.update(b" ");
    h.update(path.as_bytes());
    h.update(b"\n");
    h.update(body);
    let fingerprint = hex(&h.finalize());
    let now = crate::time::now_ms();
    let existing = store.get(tenant, KIND, &id).await?;
    let mut expect = Expect::Absent;
    let mut version = 1;
    if let Some(rec) = existing {
        let created = rec["createdAt"]
            .as_str()
            .and_then(crate::time::parse_timestamp)
            .unwrap_or(0);
        let current = rec["version"].as_u64().unwrap_or(1);
        if created > now - TTL_MS {
            if rec["fingerprint"] != fingerprint.as_str() {
                return Err(ApiError::conflict(
                    "This Idempotency-Key was already used with another request (a different route or body); use a new key.",
                ));
            }
            if rec["state"] != "done" {
                return Err(in_progress());
            }
            return Ok(Before::Replay(replay(&rec)));
        }
        // Expired: the key is free again.
        expect = Expect::Version(current);
        version = current + 1;
    }
    let created_at = crate::time::format_ms(now);
    let doc = json!({
        "id": id, "object": "idempotencyKey", "state": "pending", "fingerprint": fingerprint,
        "createdAt": created_at, "version": version,
    });
    let claim = WriteOp::Put {
        tenant: tenant.to_string(),
        kind: KIND,
        id: id.clone(),
        doc,
        expect,
    };
    match store.commit(WriteTx::of(vec![claim])).await {
        Ok(()) => Ok(Before::Run(Claim {
            tenant: tenant.to_string(),
            id,
            version,
            fingerprint,
            created_at,
        })),
        // Another request with this key got there first.
        Err(StoreError::Conflict(_)) => Err(in_progress()),
        Err(e) => Err(e.into()),
    }
}

fn in_progress() -> ApiError {
    ApiError::conflict(
        "A request with this Idempotency-Key is in progress (or was interrupted); retry later to get its response, or use a new key.",
    )
}

fn replay(rec: &Value) -> Response {
    let status = rec["status"].as_u64().unwrap_or(200) as u16;
    let body = Bytes::from(rec["body"].as_str().unwrap_or_default().to_string());
    let mut headers: Vec<(&'static str, String)> =
        vec![("content-type", "application/json".to_string())];
    if let Some(stored) = rec["headers"].as_object() {
        for name in KEPT_HEADERS {
            if let Some(v) = stored.get(name).and_then(Value::as_str) {
                headers.push((name, v.to_string()));
            }
        }
    }
    headers.push(("idempotent-replayed", "true".to_string()));
    Response {
        status,
        headers,
        body,
    }
}

/// After the request: keep a 2xx response for replays; otherwise free the key.
pub async fn finish(store: &dyn crate::store::Store, claim: Claim, result: &ApiResult<Response>) {
    let op = match result {
        Ok(resp) if (200..300).contains(&resp.status) => {
            let headers: serde_json::Map<String, Value> = resp
                .headers
                .iter()
                .filter(|(n, _)| KEPT_HEADERS.iter().any(|k| k.eq_ignore_ascii_case(n)))
                .map(|(n, v)| (n.to_ascii_lowercase(), Value::String(v.clone())))
                .collect();
            WriteOp::Put {
                tenant: claim.tenant,
                kind: KIND,
                id: claim.id.clone(),
                doc: json!({
                    "id": claim.id, "object": "idempotencyKey", "state": "done",
                    "fingerprint": claim.fingerprint, "createdAt": claim.created_at,
                    "version": claim.version + 1, "status": resp.status,
                    "headers": headers,
                    "body": String::from_utf8_lossy(&resp.body),
                }),
                expect: Expect::Version(claim.version),
            }
        }
        _ => WriteOp::Delete {
            tenant: claim.tenant,
            kind: KIND,
            id: claim.id,
            expect: Expect::Version(claim.version),
        },
    };
    if let Err(e) = store.commit(WriteTx::of(vec![op])).await {
        // The request's own write stands; the key stays claimed (409 on reuse).
        crate::log::error("idempotency", &e.to_string());
    }
}
