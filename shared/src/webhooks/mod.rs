//! Webhooks: the event catalog, subscriptions, signing secrets and
//! signatures, the retry schedule, SSRF address checks, and the delivery
//! code shared by `hub serve` and the AWS delivery Lambda.

pub mod deliver;
pub mod fanout;
pub mod worker;

use crate::auth::Tenant;
use crate::store::{EventRecord, Expect, WriteOp, WriteTx};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use std::net::IpAddr;
use std::time::Duration;

pub const TEST_EVENT: &str = "test.event";
pub const ENDPOINTS_KIND: &str = "webhook-endpoints";
pub const SECRETS_KIND: &str = "webhook-secrets";
pub const STATE_KIND: &str = "webhook-endpoint-state";
pub const DELIVERIES_KIND: &str = "webhook-deliveries";
pub const EVENTS_KIND: &str = "events";
/// Consecutive failed attempts, across events, that disable an endpoint.
pub const DISABLE_AFTER: u64 = 50;
/// Response bodies are read up to this many bytes.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Events are kept 30 days; older ones are treated as gone.
pub const EVENT_TTL_MS: i64 = 30 * 24 * 3_600_000;

/// An event envelope (SPEC §6) for the outbox.
pub fn event(tenant: &Tenant, event_type: String, data: Value) -> EventRecord {
    let (id, now) = crate::ids::new_id_at("evt");
    let envelope = serde_json::json!({
        "id": id,
        "object": "event",
        "type": event_type,
        "createdAt": crate::time::format_ms(now),
        "livemode": tenant.livemode(),
        "organizationId": tenant.org,
        "data": data,
    });
    EventRecord {
        id,
        tenant: tenant.key(),
        event_type,
        created_at_ms: now,
        envelope,
    }
}

/// One write: the ops plus each event, both in the outbox and as a
/// queryable `events` object (`GET /v1/events`).
pub fn with_events(mut ops: Vec<WriteOp>, events: Vec<EventRecord>) -> WriteTx {
    for e in &events {
        ops.push(WriteOp::Put {
            tenant: e.tenant.clone(),
            kind: EVENTS_KIND,
            id: e.id.clone(),
            doc: e.envelope.clone(),
            expect: Expect::Absent,
        });
    }
    WriteTx { ops, events }
}

/// The changed fields' values before a change (Stripe's
/// `previous_attributes`): every top-level field whose value differs, with
/// `null` for one that was absent. Bookkeeping (`updatedAt`, `version`) is
/// left out.
pub fn previous_attributes(old: &Value, new: &Value) -> Value {
    let empty = serde_json::Map::new();
    let o = old.as_object().unwrap_or(&empty);
    let n = new.as_object().unwrap_or(&empty);
    let mut out = serde_json::Map::new();
    for (k, v) in o {
        if matches!(k.as_str(), "updatedAt" | "version") {
            continue;
        }
        if n.get(k) != Some(v) {
            out.insert(k.clone(), v.clone());
        }
    }
    for k in n.keys() {
        if !o.contains_key(k) && !matches!(k.as_str(), "updatedAt" | "version") {
            out.insert(k.clone(), Value::Null);
        }
    }
    Value::Object(out)
}

/// Is `pattern` a valid subscription: `*`, `resource.*` or a type of the
/// catalog?
pub fn valid_pattern(catalog: &[String], pattern: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_suffix(".*") {
        Some(prefix) => catalog.iter().any(|t| t.split('.').next() == Some(prefix)),
        None => catalog.iter().any(|t| t == pattern),
    }
}

/// Does a subscription list cover this event type? (`test.event` is never
/// subscribable: it goes only to the endpoint it is sent to.)
pub fn subscribed(enabled: &[String], event_type: &str) -> bool {
    if event_type == TEST_EVENT {
        return false;
    }
    enabled.iter().any(|p| {
        p == "*"
            || p == event_type
            || p.strip_suffix(".*")
                .is_some_and(|prefix| event_type.split('.').next() == Some(prefix))
    })
}

/// `whsec_` + base64 of 32 random bytes.
pub fn new_secret() -> String {
    format!("whsec_{}", B64.encode(crate::ids::random_bytes::<32>()))
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

/// The signature headers of one attempt, for every active secret:
/// `Hub-Signature: t=…,v1=…` (HMAC-SHA256 keyed with the whole secret over
/// `{t}.{body}`, Stripe's scheme) and Standard Webhooks' `webhook-signature:
/// v1,<base64>` (keyed with the base64 part of the secret over
/// `{id}.{t}.{body}`).
pub fn sign(secrets: &[String], event_id: &str, timestamp: i64, body: &[u8]) -> (String, String) {
    let t = timestamp.to_string();
    let mut hub = format!("t={t}");
    let mut std = Vec::new();
    for s in secrets {
        let mac = hmac(s.as_bytes(), &[t.as_bytes(), b".", body]);
        hub.push_str(",v1=");
        hub.push_str(&crate::ids::hex(&mac));
        let key = s
            .strip_prefix("whsec_")
            .and_then(|k| B64.decode(k).ok())
            .unwrap_or_else(|| s.as_bytes().to_vec());
        let mac = hmac(&key, &[event_id.as_bytes(), b".", t.as_bytes(), b".", body]);
        std.push(format!("v1,{}", B64.encode(mac)));
    }
    (hub, std.join(" "))
}

/// Delays between attempts: `1s,5s,30s`, `none` (one attempt), or the
/// default of five retries. At most 72 hours in total.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySchedule(pub Vec<Duration>);

impl Default for RetrySchedule {
    fn default() -> Self {
        RetrySchedule(
            [30, 120, 600, 3600, 6 * 3600]
                .iter()
                .map(|s| Duration::from_secs(*s))
                .collect(),
        )
    }
}

pub use crate::time::parse_duration;

impl RetrySchedule {
    pub fn parse(s: &str) -> Result<RetrySchedule, String> {
        if s.trim() == "none" {
            return Ok(RetrySchedule(Vec::new()));
        }
        let delays: Vec<Duration> = s
            .split(',')
            .map(|p| {
                parse_duration(p)
                    .ok_or_else(|| format!("`{p}` is not a delay such as 30s, 5m or 2h"))
            })
            .collect::<Result<_, _>>()?;
        if delays.len() > 25 {
            return Err("at most 25 retries".into());
        }
        if delays.iter().sum::<Duration>() > Duration::from_secs(72 * 3600) {
            return Err("the delays add up to more than 72 hours".into());
        }
        Ok(RetrySchedule(delays))
    }

    /// Total attempts: the first plus one per delay.
    pub fn attempts(&self) -> u32 {
        self.0.len() as u32 + 1
    }

    /// The delay after failed attempt `attempt` (1-based), with ±20 % jitter;
    /// `None` when it was the last.
    pub fn delay_after(&self, attempt: u32) -> Option<Duration> {
        let base = *self.0.get(attempt.checked_sub(1)? as usize)?;
        let r = u16::from_le_bytes(crate::ids::random_bytes::<2>()) as f64 / u16::MAX as f64;
        Some(base.mul_f64(0.8 + 0.4 * r))
    }
}

/// Addresses a live-mode webhook may never reach: loopback, private,
/// link-local, CGNAT, multicast, unspecified, broadcast, documentation and
/// cloud metadata ranges (IPv4 and IPv6, including mapped IPv4).
pub fn forbidden_ip(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_private() {
                Some("private")
            } else if o[0] == 169 && o[1] == 254 {
                Some("link-local or cloud metadata")
            } else if o[0] == 100 && (64..128).contains(&o[1]) {
                Some("carrier-grade NAT")
            } else if v4.is_multicast() {
                Some("multicast")
            } else if v4.is_unspecified() || v4.is_broadcast() || o[0] == 0 {
                Some("unspecified or broadcast")
            } else if o[0] >= 240 {
                Some("reserved")
            } else if (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || (o[0] == 198 && (o[1] == 18 || o[1] == 19))
            {
                Some("special-purpose")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            // An IPv4 address carried inside an IPv6 one is judged by itself:
            // mapped (::ffff:a.b.c.d), compatible (::a.b.c.d), NAT64
            // (64:ff9b::/96, and the local-use 64:ff9b:1::/48) and 6to4
            // (2002:aabb:ccdd::/48).
            let embedded = |hi: u16, lo: u16| {
                std::net::Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8)
            };
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_ip(IpAddr::V4(v4));
            }
            if s[..6] == [0; 6] && !v6.is_loopback() && !v6.is_unspecified() {
                return forbidden_ip(IpAddr::V4(embedded(s[6], s[7])));
            }
            if s[0] == 0x0064 && s[1] == 0xff9b && (s[2..6] == [0; 4] || s[2] == 0x0001) {
                return forbidden_ip(IpAddr::V4(embedded(s[6], s[7])));
            }
            if s[0] == 0x2002 {
                return forbidden_ip(IpAddr::V4(embedded(s[1], s[2])));
            }
            if s[0] == 0x2001 && s[1] == 0 {
                return Some("Teredo tunnel");
            }
            if s[0] == 0xfd00 && s[1] == 0x0ec2 {
                Some("cloud metadata")
            } else if v6.is_loopback() || v6.is_unspecified() {
                Some("loopback or unspecified")
            } else if (s[0] & 0xfe00) == 0xfc00 {
                Some("private (unique local)")
            } else if (s[0] & 0xffc0) == 0xfe80 {
                Some("link-local")
            } else if (s[0] & 0xff00) == 0xff00 {
                Some("multicast")
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions() {
        let e = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(subscribed(&e(&["*"]), "patient.created"));
        assert!(subscribed(&e(&["patient.*"]), "patient.deleted"));
        assert!(!subscribed(&e(&["patient.*"]), "patientStatus.created"));
        assert!(subscribed(&e(&["clinic.updated"]), "clinic.updated"));
        assert!(!subscribed(&e(&["*"]), TEST_EVENT));
        let catalog = e(&["patient.created", "patient.deleted", "clinic.created"]);
        let valid = |p: &str| valid_pattern(&catalog, p);
        assert!(valid("patient.*") && valid("clinic.created") && valid("*"));
        assert!(!valid("nothing.*") && !valid("patient.exploded") && !valid(TEST_EVENT));
    }

    #[test]
    fn schedules() {
        assert_eq!(RetrySchedule::parse("1s,5s,30s").unwrap().attempts(), 4);
        assert_eq!(RetrySchedule::parse("none").unwrap().attempts(), 1);
        assert!(RetrySchedule::parse("80h").is_err());
        assert!(RetrySchedule::parse("soon").is_err());
        let s = RetrySchedule::parse("10s").unwrap();
        let d = s.delay_after(1).unwrap();
        assert!(d >= Duration::from_secs(8) && d <= Duration::from_secs(12));
        assert_eq!(s.delay_after(2), None);
        assert_eq!(RetrySchedule::default().attempts(), 6);
    }

    #[test]
    fn address_classes() {
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "224.0.0.1",
            "0.0.0.0",
            "::1",
            "fc00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "fd00:ec2::254",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::a00:1",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "::127.0.0.1",
        ] {
            assert!(forbidden_ip(bad.parse().unwrap()).is_some(), "{bad}");
        }
        for ok in [
            "93.184.216.34",
            "2606:2800:220:1::1",
            "8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(forbidden_ip(ok.parse().unwrap()).is_none(), "{ok}");
        }
    }

    #[test]
    fn signatures_follow_both_schemes() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string();
        let (hub, std) = sign(
            std::slice::from_ref(&secret),
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert!(hub.starts_with("t=1614265330,v1="));
        // The Standard Webhooks specification's own example.
        assert_eq!(std, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
