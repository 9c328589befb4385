//! Opaque, signed cursors for keyset paging. A cursor names a position in
//! the order of one query (sort-key values plus the id, which breaks ties
//! in creation order) and a direction. It is bound to the tenant, the
//! resource and the query's filters and sort: reused elsewhere it is a 400.

use crate::error::{ApiError, ApiResult};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Where a page starts: strictly after (or before) this position.
#[derive(Debug, Clone, PartialEq)]
pub struct Position {
    /// One value per sort key (`None` when the field was missing).
    pub keys: Vec<Option<Value>>,
    pub id: String,
    pub before: bool,
}

/// What a cursor is bound to.
pub struct Binding<'a> {
    pub tenant: &'a str,
    pub resource: &'a str,
    /// A fingerprint of the query's filters, search and sort.
    pub fingerprint: &'a str,
}

/// Fingerprint of everything that decides membership and order.
pub fn fingerprint(q: &super::ListQuery) -> String {
    let mut h = Sha256::new();
    h.update(format!("{:?}|{:?}|{:?}", q.filter, q.sort, q.search).as_bytes());
    crate::ids::hex(&h.finalize()[..12])
}

fn mac(key: &[u8], payload: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length.
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    m.update(payload);
    m.finalize().into_bytes()[..16].to_vec()
}

pub fn encode(key: &[u8], b: &Binding<'_>, pos: &Position) -> String {
    let payload = json!({
        "t": b.tenant, "r": b.resource, "q": b.fingerprint,
        "k": pos.keys, "i": pos.id, "d": if pos.before { "b" } else { "a" },
    })
    .to_string();
    let sig = mac(key, payload.as_bytes());
    format!("{}.{}", B64.encode(payload.as_bytes()), B64.encode(sig))
}

pub fn decode(key: &[u8], b: &Binding<'_>, cursor: &str, param: &str) -> ApiResult<Position> {
    let bad =
        |why: &str| ApiError::field(param, format!("is not a valid cursor for this list: {why}"));
    if cursor.len() > 8 * 1024 {
        return Err(bad("too long"));
    }
    let (payload, sig) = cursor.split_once('.').ok_or_else(|| bad("malformed"))?;
    let payload = B64.decode(payload).map_err(|_| bad("malformed"))?;
    let sig = B64.decode(sig).map_err(|_| bad("malformed"))?;
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    m.update(&payload);
    m.verify_truncated_left(&sig)
        .map_err(|_| bad("the signature does not match"))?;
    let v: Value = serde_json::from_slice(&payload).map_err(|_| bad("malformed"))?;
    if v["t"] != b.tenant || v["r"] != b.resource {
        return Err(bad("it belongs to another list"));
    }
    if v["q"] != b.fingerprint {
        return Err(bad(
            "it was issued for other filters or another sort; keep them unchanged while paging",
        ));
    }
    let keys = v["k"]
        .as_array()
        .ok_or_else(|| bad("malformed"))?
        .iter()
        .map(|k| (!k.is_null()).then(|| k.clone()))
        .collect();
    let id = v["i"].as_str().ok_or_else(|| bad("malformed"))?.to_string();
    let before = match v["d"].as_str() {
        Some("a") => false,
        Some("b") => true,
        _ => return Err(bad("malformed")),
    };
    Ok(Position { keys, id, before })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_tampering() {
        let key = b"k".repeat(32);
        let b = Binding {
            tenant: "org_1#test",
            resource: "patients",
            fingerprint: "abc",
        };
        let pos = Position {
            keys: vec![Some(json!("Ann")), None],
            id: "pat_1".into(),
            before: false,
        };
        let c = encode(&key, &b, &pos);
        assert_eq!(decode(&key, &b, &c, "$after").unwrap(), pos);
        // Another key, tenant, or query: refused.
        assert!(decode(b"other", &b, &c, "$after").is_err());
        let other = Binding {
            tenant: "org_2#test",
            ..b
        };
        assert!(decode(&key, &other, &c, "$after").is_err());
        let b = Binding {
            tenant: "org_1#test",
            resource: "patients",
            fingerprint: "xyz",
        };
        assert!(decode(&key, &b, &c, "$after").is_err());
        // A flipped character: refused.
        let b = Binding {
            tenant: "org_1#test",
            resource: "patients",
            fingerprint: "abc",
        };
        let mut bytes = c.into_bytes();
        bytes[3] = if bytes[3] == b'A' { b'B' } else { b'A' };
        assert!(decode(&key, &b, &String::from_utf8(bytes).unwrap(), "$after").is_err());
        assert!(decode(&key, &b, "garbage", "$after").is_err());
    }
}
