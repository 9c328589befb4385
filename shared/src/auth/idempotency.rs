//! `Idempotency-Key` on POST (SPEC §5): the same key with the same request
//! within 24 hours returns the first response again (`Idempotent-Replayed:
//! true`) and creates nothing; the same key with another request, or while
//! the first is still running: 409.
//!
//! A record per key (`idempotency-keys`, id = SHA-256 of the key, in the
//! caller's tenant) is claimed with a conditional write before the request
//! runs, so of two at once exactly one runs. The claim is a lease of a
//! minute. The request's response is stored in the record **in the same
//! atomic write as the request's effect**, conditioned on the claim's
//! version (`Claim::record_op`): after a crash the key either replays the
//! first response or was never used, and once the lease of a request that
//! died has passed, a retry claims the key afresh and runs. A request that
//! writes nothing (or whose effect is a queue message) stores its response
//! after the fact; one that fails frees the key for a corrected retry.
//!
//! Fields that are shown once (a new signing secret, a new API key) are
//! never stored: a replay leaves them out and says so in
//! `Idempotent-Omitted`.

use crate::error::{ApiError, ApiResult};
use crate::store::{Conflict, Expect, Store, StoreError, WriteOp, WriteTx};
use bytes::Bytes;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicBool, Ordering};

pub const KIND: &str = "idempotency-keys";
pub const TTL_MS: i64 = 24 * 3_600_000;
/// A claim whose request has not finished within this long (it died) is
/// free again: a minute, or `HUB_IDEMPOTENCY_LEASE` (e.g. `2s`, for tests).
pub fn lease_ms() -> i64 {
    static LEASE: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *LEASE.get_or_init(|| {
        std::env::var("HUB_IDEMPOTENCY_LEASE")
            .ok()
            .and_then(|s| crate::time::parse_duration(&s))
            .map(|d| (d.as_millis() as i64).clamp(100, 60_000))
            .unwrap_or(60_000)
    })
}
const MAX_KEY_LEN: usize = 255;
/// Response headers a replay carries again.
const KEPT_HEADERS: [&str; 3] = ["etag", "location", "link"];

fn hex(bytes: &[u8]) -> String {
    crate::ids::hex(bytes)
}

/// A claimed key: what to store once the request has run.
pub struct Claim {
    tenant: String,
    id: String,
    version: u64,
    fingerprint: String,
    created_at: String,
    recorded: AtomicBool,
}

/// A response as stored and replayed.
#[derive(Debug, Clone)]
pub struct Stored {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
}

/// What the key says before the request runs.
pub enum Before {
    /// Run the request, storing its response through the claim.
    Run(Claim),
    /// The first response, again.
    Replay(Stored),
}

impl Claim {
    /// The write that stores this response as the key's answer; it fails
    /// (a version conflict on this kind) if the claim was lost meanwhile.
    /// Top-level body fields in `omit` are not stored.
    pub fn record_op(
        &self,
        status: u16,
        headers: &[(&'static str, String)],
        body: &Value,
        omit: &[&str],
    ) -> WriteOp {
        let kept: Map<String, Value> = headers
            .iter()
            .filter(|(n, _)| KEPT_HEADERS.iter().any(|k| k.eq_ignore_ascii_case(n)))
            .map(|(n, v)| (n.to_ascii_lowercase(), Value::String(v.clone())))
            .collect();
        let mut stored = body.clone();
        let mut omitted = Vec::new();
        if let Value::Object(m) = &mut stored {
            for f in omit {
                if m.remove(*f).is_some() {
                    omitted.push(Value::String(f.to_string()));
                }
            }
        }
        WriteOp::Put {
            tenant: self.tenant.clone(),
            kind: KIND,
            id: self.id.clone(),
            doc: json!({
                "id": self.id, "object": "idempotencyKey", "state": "done",
                "fingerprint": self.fingerprint, "createdAt": self.created_at,
                "version": self.version + 1, "status": status,
                "headers": kept, "omitted": omitted,
                "body": stored.to_string(),
            }),
            expect: Expect::Version(self.version),
        }
    }

    /// The response is stored (it committed with the request's effect).
    pub fn mark_recorded(&self) {
        self.recorded.store(true, Ordering::Release);
    }

    pub fn recorded(&self) -> bool {
        self.recorded.load(Ordering::Acquire)
    }
}

/// Is this failed write's conflict the loss of an idempotency claim?
pub fn lost_claim(e: &StoreError) -> bool {
    matches!(e, StoreError::Conflict(Conflict::Version { kind, .. }) if kind == KIND)
}

pub fn in_progress() -> ApiError {
    ApiError::conflict(
        "A request with this Idempotency-Key is in progress; retry in a few seconds to get its response, or use a new key.",
    )
}

/// Check the header and claim the key (or find its stored response).
pub async fn begin(
    store: &dyn Store,
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
    let mut created_at = crate::time::format_ms(now);
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
            if rec["state"] == "done" {
                return Ok(Before::Replay(replay(&rec)));
            }
            let lease_until = rec["leaseUntil"].as_i64().unwrap_or(0);
            if lease_until > now {
                return Err(in_progress());
            }
            // The request holding the claim died: this one takes over (the
            // dead one can no longer store a response: its version is gone).
            created_at = rec["createdAt"]
                .as_str()
                .map(String::from)
                .unwrap_or(created_at);
        }
        expect = Expect::Version(current);
        version = current + 1;
    }
    let doc = json!({
        "id": id, "object": "idempotencyKey", "state": "pending", "fingerprint": fingerprint,
        "createdAt": created_at, "leaseUntil": now + lease_ms(), "version": version,
    });
    let claim = WriteOp::Put {
        tenant: tenant.to_string(),
        kind: KIND,
        id: id.clone(),
        doc,
        expect,
    };
    // Its condition is the whole decision: a claim cancelled for contention
    // (nothing written) is sent again as it is.
    match crate::store::commit_retrying(store, WriteTx::of(vec![claim])).await {
        Ok(()) => Ok(Before::Run(Claim {
            tenant: tenant.to_string(),
            id,
            version,
            fingerprint,
            created_at,
            recorded: AtomicBool::new(false),
        })),
        // Another request with this key got there first.
        Err(StoreError::Conflict(_)) => Err(in_progress()),
        Err(e) => Err(e.into()),
    }
}

fn replay(rec: &Value) -> Stored {
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
    let omitted: Vec<&str> = rec["omitted"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !omitted.is_empty() {
        headers.push(("idempotent-omitted", omitted.join(", ")));
    }
    Stored {
        status,
        headers,
        body,
    }
}

/// A request's successful answer, as `finish` stores it.
pub struct Answered<'a> {
    pub status: u16,
    pub headers: &'a [(&'static str, String)],
    pub body: &'a Value,
    /// Fields shown once, not stored.
    pub omit: &'a [&'a str],
}

/// After the request: unless its response was stored with its effect, keep
/// a 2xx response for replays; otherwise (`None`: it failed) free the key.
pub async fn finish(store: &dyn Store, claim: Claim, answer: Option<Answered<'_>>) {
    if claim.recorded() {
        return;
    }
    let op = match answer {
        Some(a) if (200..300).contains(&a.status) => {
            claim.record_op(a.status, a.headers, a.body, a.omit)
        }
        _ => WriteOp::Delete {
            tenant: claim.tenant,
            kind: KIND,
            id: claim.id,
            expect: Expect::Version(claim.version),
        },
    };
    if let Err(e) = crate::store::commit_retrying(store, WriteTx::of(vec![op])).await {
        // The key stays claimed until its lease ends.
        crate::log::error("idempotency", &e.to_string());
    }
}
