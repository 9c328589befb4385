//! Identifiers: a type prefix plus a time-ordered unique part (a monotonic
//! ULID), and random secret tokens.

use std::sync::Mutex;

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Lower-case hexadecimal of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

/// Cryptographically secure random bytes.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // The OS generator failing is not recoverable in any meaningful way.
    getrandom::fill(&mut buf).expect("operating system random number generator");
    buf
}

/// 16 bytes for identifiers that must be unique but need not be secret
/// (request ids): a per-thread counter, seeded from the OS once, through a
/// bijective mix (splitmix64) — distinct for 2^64 draws on a thread, no
/// system call per draw.
pub fn unique_bytes() -> [u8; 16] {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<Option<(u64, u64)>> = const { Cell::new(None) };
    }
    fn mix(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    STATE.with(|cell| {
        let (counter, key) = cell.get().unwrap_or_else(|| {
            let seed = random_bytes::<16>();
            let word = |i: usize| {
                let mut w = [0u8; 8];
                w.copy_from_slice(&seed[i..i + 8]);
                u64::from_le_bytes(w)
            };
            (word(0), word(8))
        });
        let counter = counter.wrapping_add(0x9e37_79b9_7f4a_7c15);
        cell.set(Some((counter, key)));
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&mix(counter).to_le_bytes());
        out[8..].copy_from_slice(&mix(counter ^ key).to_le_bytes());
        out
    })
}

struct UlidState {
    last_ms: u64,
    last_rand: u128,
}

static STATE: Mutex<UlidState> = Mutex::new(UlidState {
    last_ms: 0,
    last_rand: 0,
});

/// The next monotonic ULID value: 48 bits of milliseconds then 80 random
/// bits; within one millisecond the random part is incremented, so ids sort
/// in creation order.
fn next_ulid() -> u128 {
    let now = crate::time::now_ms().max(0) as u64;
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
}

/// The first `chars` Crockford characters of a 128-bit ULID value.
fn encode(value: u128, chars: usize) -> String {
    (0..chars)
        .map(|i| {
            let shift = 125 - 5 * i as i32;
            let idx = if shift >= 0 { (value >> shift) & 31 } else { 0 };
            CROCKFORD[idx as usize] as char
        })
        .collect()
}

/// A monotonic ULID (26 characters).
pub fn ulid() -> String {
    encode(next_ulid(), 26)
}

/// `prefix_` + ULID, e.g. `pat_01JD…`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", ulid())
}

/// A new id and the millisecond it carries. Objects take that instant as
/// their `createdAt`, so creation order, id order and `createdAt` order agree
/// (the DynamoDB store serves `createdAt` sorts and ranges from its keys).
pub fn new_id_at(prefix: &str) -> (String, i64) {
    let v = next_ulid();
    (format!("{prefix}_{}", encode(v, 26)), (v >> 80) as i64)
}

/// The millisecond in an id made by `new_id`, if it is one.
pub fn time_of(id: &str) -> Option<i64> {
    let (_, ulid) = id.rsplit_once('_')?;
    if ulid.len() != 26 {
        return None;
    }
    let mut v: u64 = 0;
    for c in ulid.bytes().take(10) {
        let d = CROCKFORD.iter().position(|&x| x == c)? as u64;
        v = (v << 5) | d;
    }
    // 10 characters hold 50 bits; the top two are zero in a valid ULID.
    i64::try_from(v).ok()
}

/// The start (`pat_` + 10 characters) of every id minted in millisecond
/// `ms`: those ids sort at or after it and before the next millisecond's.
pub fn time_prefix(prefix: &str, ms: i64) -> String {
    let ms = ms.clamp(0, (1i64 << 48) - 1) as u128;
    format!("{prefix}_{}", encode(ms << 80, 10))
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
    fn ids_carry_their_millisecond() {
        let (id, ms) = new_id_at("pat");
        assert_eq!(time_of(&id), Some(ms));
        let start = time_prefix("pat", ms);
        let next = time_prefix("pat", ms + 1);
        assert!(start.as_str() <= id.as_str() && id.as_str() < next.as_str());
        assert_eq!(time_of("pat_x"), None);
        assert_eq!(time_of(&format!("{start}0000000000000000")), Some(ms));
    }

    #[test]
    fn tokens_are_base62() {
        let t = random_token(40);
        assert_eq!(t.len(), 40);
        assert!(t.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(t, random_token(40));
    }
}
