//! Identifiers: a type prefix plus a time-ordered unique part (a monotonic
//! ULID), and random secret tokens.

use std::sync::Mutex;

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Cryptographically secure random bytes.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // The OS generator failing is not recoverable in any meaningful way.
    getrandom::fill(&mut buf).expect("operating system random number generator");
    buf
}

struct UlidState {
    last_ms: u64,
    last_rand: u128,
}

static STATE: Mutex<UlidState> = Mutex::new(UlidState {
    last_ms: 0,
    last_rand: 0,
});

/// A monotonic ULID: 48 bits of milliseconds then 80 random bits; within one
/// millisecond the random part is incremented, so ids sort in creation order.
pub fn ulid() -> String {
    let now = crate::time::now_ms().max(0) as u64;
    let value: u128 = {
        let mut st = STATE.lock().unwrap_or_else(|e| e.into_inner());
        let mask: u128 = (1u128 << 80) - 1;
        if now <= st.last_ms && st.last_rand < mask {
            st.last_rand += 1;
        } else {
            let r = random_bytes::<10>();
            let mut v = 0u128;
            for b in r {
                v = (v << 8) | b as u128;
            }
            // Leave head-room so increments within a millisecond never overflow.
            st.last_rand = v >> 1;
            st.last_ms = now.max(st.last_ms);
        }
        ((st.last_ms as u128) << 80) | st.last_rand
    };
    let mut out = [0u8; 26];
    for (i, slot) in out.iter_mut().enumerate() {
        let shift = 125 - 5 * i as i32;
        let idx = if shift >= 0 { (value >> shift) & 31 } else { 0 };
        *slot = CROCKFORD[idx as usize];
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `prefix_` + ULID, e.g. `pat_01JD…`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", ulid())
}

/// `len` characters of base62 from the OS generator (≈5.95 bits each).
pub fn random_token(len: usize) -> String {
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for b in random_bytes::<64>() {
            // Rejection sampling keeps the distribution uniform.
            if b < 248 && out.len() < len {
                out.push(BASE62[(b % 62) as usize] as char);
            }
        }
    }
    out
}

/// Does `id` look like one of ours with the given prefix?
pub fn has_prefix(id: &str, prefix: &str) -> bool {
    id.len() == prefix.len() + 27
        && id.starts_with(prefix)
        && id.as_bytes()[prefix.len()] == b'_'
        && id[prefix.len() + 1..]
            .bytes()
            .all(|c| CROCKFORD.contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulids_are_ordered_and_unique() {
        let ids: Vec<String> = (0..2000).map(|_| new_id("pat")).collect();
        for w in ids.windows(2) {
            assert!(w[0] < w[1], "{} !< {}", w[0], w[1]);
        }
        assert!(has_prefix(&ids[0], "pat"));
        assert!(!has_prefix(&ids[0], "apt"));
        assert!(!has_prefix("pat_short", "pat"));
    }

    #[test]
    fn tokens_are_base62() {
        let t = random_token(40);
        assert_eq!(t.len(), 40);
        assert!(t.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(t, random_token(40));
    }
}
