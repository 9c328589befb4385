//! What a store derives from an object to answer lists without reading the
//! whole collection (DynamoDB: items of the table written in the object's
//! own transaction; the embedded store needs none of it).
//!
//! - lookup entries `X#{tenant}#{kind}#{field}={value}` / `{order}`: one per
//!   value of each equality lookup, ordered by id (creation) or by the
//!   lookup's date then id;
//! - directory entries `O#{tenant}#{kind}#{field}` / `{sort key}\u{1}{id}`:
//!   the objects in the order of a string field (`fullName`, `name`);
//! - postings `S#{tenant}#{kind}#{stem}` / `{id}`: the inverted index of
//!   `$search`, one per distinct stem (at most `MAX_INDEX_STEMS`);
//! - counts, per tenant and kind: `*` (every object) and `{field}={value}`
//!   for each counted lookup.
//!
//! Entries hold keys only (and the id); a list reads a page of them, then
//! the objects themselves by key.

use super::{KindSpec, Lookup};
use crate::query::search;
use serde_json::Value;
use std::collections::BTreeSet;

/// Separates a sort key from the id that ends it; below every character a
/// key holds (characters under U+0003 are escaped).
pub const SEP: char = '\u{1}';
/// Directory sort keys are cut here (DynamoDB sort keys hold 1 KB); ties
/// of the cut key are read as one group.
pub const MAX_SORT_BYTES: usize = 600;
/// Values longer than this are not indexed (a lookup of one is refused
/// past the list bound, as any unserved filter).
pub const MAX_VALUE_BYTES: usize = 900;
/// Counter shards per count: concurrent writes spread over them.
pub const SHARDS: u64 = 8;

pub fn lookup_pk(tenant: &str, kind: &str, field: &str, value: &str) -> String {
    format!("X#{tenant}#{kind}#{field}={value}")
}

pub fn directory_pk(tenant: &str, kind: &str, field: &str) -> String {
    format!("O#{tenant}#{kind}#{field}")
}

pub fn posting_pk(tenant: &str, kind: &str, stem: &str) -> String {
    format!("S#{tenant}#{kind}#{stem}")
}

pub fn counter_pk(tenant: &str, kind: &str) -> String {
    format!("C#{tenant}#{kind}")
}

/// The counter key of a counted lookup's value (`*` is every object).
pub fn count_key(field: &str, value: &str) -> String {
    format!("{field}={}", escape(value))
}

pub const ALL: &str = "*";

/// A count's shard item: `{key}\u{1}{shard}`.
pub fn counter_sk(key: &str, shard: u64) -> String {
    format!("{key}{SEP}{shard}")
}

/// The shard of an object's count under `key` (a write of several objects
/// moves each counter on its first object's): spread over the shards by
/// the object's id, but for a reference that guards deletes (`restrict`),
/// whose count of each referenced object stays in shard 0, one item a
/// delete is conditional on (`WriteOp::Unreferenced`).
pub fn shard_for(spec: &KindSpec, key: &str, id: &str) -> u64 {
    let guarding = spec.lookups.iter().any(|l| {
        l.guards
            && key
                .strip_prefix(l.field)
                .is_some_and(|rest| rest.starts_with('='))
    });
    if guarding {
        0
    } else {
        shard_of(id)
    }
}

/// The shard an object's counts go to (FNV-1a of its id).
pub fn shard_of(id: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in id.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h % SHARDS
}

/// Characters below U+0003 written as U+0002 and a digit, which keeps the
/// order of strings and leaves U+0001 free as the separator.
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if (c as u32) < 3 {
            out.push('\u{2}');
            out.push(char::from(b'0' + c as u8));
        } else {
            out.push(c);
        }
    }
    out
}

/// The order of a string field as a key: missing (or not a string) first,
/// then strings in their own (byte) order — the evaluation's order for a
/// string field. Cut at `MAX_SORT_BYTES`.
pub fn sort_key(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => {
            let mut k = String::from("1");
            for c in escape(s).chars() {
                if k.len() + c.len_utf8() > MAX_SORT_BYTES {
                    break;
                }
                k.push(c);
            }
            k
        }
        _ => "0".into(),
    }
}

/// The sort key of an entry ordered by a date field: `{value}#{id}` (a
/// missing date first).
pub fn dated_key(doc: &Value, field: &str, id: &str) -> String {
    let v = doc.get(field).and_then(Value::as_str).unwrap_or_default();
    format!("{v}#{id}")
}

/// The string values at a dotted path (each element of an array).
pub fn strings_at(doc: &Value, field: &str) -> Vec<String> {
    let mut cur = doc;
    for seg in field.split('.') {
        match cur.as_object().and_then(|m| m.get(seg)) {
            Some(v) => cur = v,
            None => return Vec::new(),
        }
    }
    match cur {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => {
            let mut out: Vec<String> = items
                .iter()
                .filter_map(|i| i.as_str().map(String::from))
                .collect();
            out.sort();
            out.dedup();
            out
        }
        _ => Vec::new(),
    }
}

/// The indexable values of a lookup in a document.
pub fn lookup_values(doc: &Value, l: &Lookup) -> Vec<String> {
    strings_at(doc, l.field)
        .into_iter()
        .filter(|v| !v.is_empty() && v.len() <= MAX_VALUE_BYTES)
        .collect()
}

/// Everything an object derives: entries (partition, sort key) and the
/// counts it is in.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Derived {
    pub entries: BTreeSet<(String, String)>,
    pub counts: BTreeSet<String>,
}

pub fn derive(spec: &KindSpec, tenant: &str, doc: &Value) -> Derived {
    let mut d = Derived::default();
    let id = doc.get("id").and_then(Value::as_str).unwrap_or_default();
    let kind = spec.kind;
    for l in spec.lookups {
        for v in lookup_values(doc, l) {
            let sk = match l.range {
                Some(r) => dated_key(doc, r, id),
                None => id.to_string(),
            };
            if l.counted {
                d.counts.insert(count_key(l.field, &v));
            }
            d.entries.insert((lookup_pk(tenant, kind, l.field, &v), sk));
        }
    }
    for f in spec.sorted {
        let sk = format!("{}{SEP}{id}", sort_key(doc.get(*f)));
        d.entries.insert((directory_pk(tenant, kind, f), sk));
    }
    if !spec.search.is_empty() {
        for stem in search::index_stems(doc, spec.search) {
            d.entries
                .insert((posting_pk(tenant, kind, &stem), id.to_string()));
        }
    }
    if spec.counted {
        d.counts.insert(ALL.to_string());
    }
    d
}

/// The id an entry's sort key ends with.
pub fn entry_id(sk: &str) -> &str {
    let tail = sk.rsplit(SEP).next().unwrap_or(sk);
    tail.rsplit('#').next().unwrap_or(tail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sort_keys_keep_the_evaluations_order() {
        let vals = [
            None,
            Some(json!("")),
            Some(json!("Ann")),
            Some(json!("Ann\u{0}")),
            Some(json!("Ann\u{1}")),
            Some(json!("Ann\u{2}")),
            Some(json!("Ann\u{3}")),
            Some(json!("Anna")),
            Some(json!("anna")),
            Some(json!("Ånna")),
        ];
        for w in vals.windows(2) {
            let (a, b) = (sort_key(w[0].as_ref()), sort_key(w[1].as_ref()));
            assert!(
                format!("{a}{SEP}id_9") < format!("{b}{SEP}id_0"),
                "{:?} < {:?}",
                w[0],
                w[1]
            );
            assert_eq!(
                crate::query::eval::compare(w[0].as_ref(), w[1].as_ref()),
                std::cmp::Ordering::Less
            );
        }
        assert!(sort_key(Some(&json!("x".repeat(5000)))).len() <= MAX_SORT_BYTES);
    }

    #[test]
    fn entries_of_a_patient() {
        static LOOKUPS: &[Lookup] = &[
            Lookup::eq("primaryClinicId").counted(),
            Lookup::eq("primaryPhoneNumber"),
            Lookup::eq("tags"),
        ];
        let spec = KindSpec {
            lookups: LOOKUPS,
            search: &["fullName"],
            sorted: &["fullName"],
            counted: true,
            ..KindSpec::plain("patients")
        };
        let doc = json!({"id": "pat_1", "fullName": "Ann Lee", "primaryClinicId": "cli_1",
            "primaryPhoneNumber": "+441", "tags": ["b", "a", "b"]});
        let d = derive(&spec, "org#test", &doc);
        let pks: Vec<&str> = d.entries.iter().map(|(p, _)| p.as_str()).collect();
        assert!(pks.contains(&"X#org#test#patients#primaryClinicId=cli_1"));
        assert!(pks.contains(&"X#org#test#patients#tags=a"));
        assert!(pks.contains(&"X#org#test#patients#tags=b"));
        assert!(pks.contains(&"S#org#test#patients#ann"));
        assert!(pks.contains(&"O#org#test#patients#fullName"));
        assert_eq!(d.entries.len(), 7);
        assert_eq!(
            d.counts.iter().cloned().collect::<Vec<_>>(),
            vec!["*".to_string(), "primaryClinicId=cli_1".to_string()]
        );
        for (_, sk) in &d.entries {
            assert_eq!(entry_id(sk), "pat_1");
        }
    }
}
