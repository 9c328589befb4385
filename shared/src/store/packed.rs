//! Packed documents: how the embedded store's mirror keeps every object.
//!
//! A parsed `serde_json::Value` spends several allocations per member (the
//! key, the string, the map's table), about seven times its JSON text for a
//! patient. A packed document is one allocation holding the value in a
//! compact binary form that the list engine reads in place (it implements
//! [`View`]), that serialises to exactly the JSON text `serde_json` writes
//! for the value, and that parses back to the same value.
//!
//! Every value starts with a tag byte:
//! - `0` null, `1` false, `2` true;
//! - `3` a non-negative integer, then its varint;
//! - `4` a negative integer `i`, then the varint of `!i`;
//! - `5` a float, then its 8 bytes (little-endian);
//! - `6` a string, `7` an array, `8` an object: then the varint length in
//!   bytes of what follows — the UTF-8 text; the elements one after the
//!   other; the members, each a varint key length, the key, the value.
//!
//! Readers check every length, so a malformed document reads as ending
//! early, never as a panic.

use crate::query::view::{Document, Scalar, View};
use serde_json::{Map, Number, Value};
use std::collections::HashMap;
use std::sync::Arc;

const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const UINT: u8 = 3;
const NEG: u8 = 4;
const FLOAT: u8 = 5;
const STR: u8 = 6;
const ARR: u8 = 7;
const OBJ: u8 = 8;

/// A document in packed form (cheap to clone: one shared allocation).
#[derive(Clone)]
pub struct Packed(Arc<[u8]>);

impl Packed {
    pub fn new(v: &Value) -> Packed {
        let mut out = Vec::with_capacity(512);
        encode(v, &mut out);
        // Copied into an allocation of exactly its size.
        Packed(Arc::from(out))
    }

    pub fn node(&self) -> Node<'_> {
        Node(&self.0)
    }

    pub fn to_value(&self) -> Value {
        self.node().to_value()
    }

    /// The JSON text `serde_json` writes for the value.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.len() + self.0.len() / 2 + 16);
        self.node().write_json(&mut out);
        out
    }

    /// Bytes held.
    pub fn size(&self) -> usize {
        self.0.len()
    }
}

impl Document for Packed {
    type Root<'a> = Node<'a>;
    fn root(&self) -> Node<'_> {
        self.node()
    }
}

/// The parsed form of recently read packed documents, so a document read on
/// every request (an API key, an organization, a webhook endpoint) is
/// parsed once, not on every read. Keyed by the packed document's
/// allocation, which the entry holds: a document rewritten is a new
/// allocation, so an entry never goes stale, and one no longer read ages
/// out. Two generations: a document parsed joins the young one; when that
/// is full it becomes the old one and the old one is dropped, so a
/// document read all the time is parsed again at most once per turnover.
/// Hits take only a read lock.
pub struct ParsedCache {
    gens: std::sync::RwLock<[Generation; 2]>,
    per_gen: usize,
}

/// Parsed documents by the address of their packed form (held, so the
/// address is not reused while the entry lives).
type Generation = HashMap<usize, (Packed, Arc<Value>)>;

impl ParsedCache {
    /// At most `capacity` parsed documents held.
    pub fn new(capacity: usize) -> ParsedCache {
        ParsedCache {
            gens: Default::default(),
            per_gen: (capacity / 2).max(1),
        }
    }

    pub fn parsed(&self, p: &Packed) -> Arc<Value> {
        let key = p.0.as_ptr() as usize;
        {
            let gens = self.gens.read().unwrap_or_else(|e| e.into_inner());
            if let Some((_, v)) = gens[0].get(&key).or_else(|| gens[1].get(&key)) {
                return v.clone();
            }
        }
        // Parsed outside the lock.
        let v = Arc::new(p.to_value());
        let mut gens = self.gens.write().unwrap_or_else(|e| e.into_inner());
        if gens[0].len() >= self.per_gen {
            gens[1] = std::mem::take(&mut gens[0]);
        }
        gens[0].insert(key, (p.clone(), v.clone()));
        v
    }
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn varint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut n = 0u64;
    let mut shift = 0u32;
    loop {
        let byte = *b.get(*pos)?;
        *pos += 1;
        if shift >= 64 {
            return None;
        }
        n |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(n);
        }
        shift += 7;
    }
}

fn encode(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.push(NULL),
        Value::Bool(b) => out.push(if *b { TRUE } else { FALSE }),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                out.push(UINT);
                put_varint(out, u);
            } else if let Some(i) = n.as_i64() {
                // Negative here (a non-negative one is a u64 above).
                out.push(NEG);
                put_varint(out, !i as u64);
            } else {
                out.push(FLOAT);
                out.extend_from_slice(&n.as_f64().unwrap_or(0.0).to_le_bytes());
            }
        }
        Value::String(s) => {
            out.push(STR);
            put_varint(out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        Value::Array(items) => container(out, ARR, |out| {
            for i in items {
                encode(i, out);
            }
        }),
        Value::Object(m) => container(out, OBJ, |out| {
            for (k, v) in m {
                put_varint(out, k.len() as u64);
                out.extend_from_slice(k.as_bytes());
                encode(v, out);
            }
        }),
    }
}

/// A tag, then the length of what `body` writes, then that.
fn container(out: &mut Vec<u8>, tag: u8, body: impl FnOnce(&mut Vec<u8>)) {
    out.push(tag);
    let start = out.len();
    body(out);
    let mut head = Vec::with_capacity(10);
    put_varint(&mut head, (out.len() - start) as u64);
    out.splice(start..start, head);
}

/// One value of a packed document, read in place. The slice starts at the
/// value's tag and may run past its end.
#[derive(Clone, Copy)]
pub struct Node<'a>(&'a [u8]);

impl<'a> Node<'a> {
    fn tag(self) -> u8 {
        self.0.first().copied().unwrap_or(NULL)
    }

    fn uint(self) -> Option<u64> {
        varint(self.0, &mut 1)
    }

    fn float(self) -> Option<f64> {
        let b: [u8; 8] = self.0.get(1..9)?.try_into().ok()?;
        Some(f64::from_le_bytes(b))
    }

    /// What follows a string's, array's or object's length.
    fn body(self) -> Option<&'a [u8]> {
        let mut pos = 1;
        let len = usize::try_from(varint(self.0, &mut pos)?).ok()?;
        self.0.get(pos..pos.checked_add(len)?)
    }

    /// The bytes the whole value takes.
    fn len(self) -> Option<usize> {
        match self.tag() {
            NULL | FALSE | TRUE => Some(1),
            UINT | NEG => {
                let mut pos = 1;
                varint(self.0, &mut pos)?;
                Some(pos)
            }
            FLOAT => (self.0.len() >= 9).then_some(9),
            STR | ARR | OBJ => {
                let mut pos = 1;
                let len = usize::try_from(varint(self.0, &mut pos)?).ok()?;
                let end = pos.checked_add(len)?;
                (end <= self.0.len()).then_some(end)
            }
            _ => None,
        }
    }

    fn neg(self) -> Option<i64> {
        let u = i64::try_from(self.uint()?).ok()?;
        Some(!u)
    }

    /// Append the JSON text `serde_json` writes for the value, byte for
    /// byte. Strings that need no escaping (nearly all) are copied as they
    /// are; numbers and the rest are written by `serde_json` itself.
    pub fn write_json(self, out: &mut Vec<u8>) {
        use std::io::Write;
        // Writing to a Vec cannot fail.
        match self.tag() {
            FALSE => out.extend_from_slice(b"false"),
            TRUE => out.extend_from_slice(b"true"),
            UINT => {
                let _ = write!(out, "{}", self.uint().unwrap_or_default());
            }
            NEG => {
                let _ = write!(out, "{}", self.neg().unwrap_or_default());
            }
            FLOAT => {
                let _ = serde_json::to_writer(out, &self.float().unwrap_or_default());
            }
            STR => write_str(self.body().unwrap_or_default(), out),
            ARR => {
                out.push(b'[');
                for (i, item) in self.items().into_iter().flatten().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    item.write_json(out);
                }
                out.push(b']');
            }
            OBJ => {
                out.push(b'{');
                for (i, (k, v)) in self.raw_entries().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_str(k, out);
                    out.push(b':');
                    v.write_json(out);
                }
                out.push(b'}');
            }
            _ => out.extend_from_slice(b"null"),
        }
    }

    fn raw_entries(self) -> RawEntries<'a> {
        RawEntries {
            rest: match self.tag() {
                OBJ => self.body().unwrap_or_default(),
                _ => &[],
            },
        }
    }
}

/// A string's JSON text: quoted, and escaped exactly as `serde_json` does
/// when it has a quote, a backslash or a control character.
fn write_str(b: &[u8], out: &mut Vec<u8>) {
    // Without short-circuiting, so the check runs many bytes at a time.
    let plain = b
        .iter()
        .fold(true, |ok, &c| ok & (c >= 0x20) & (c != b'"') & (c != b'\\'));
    if plain {
        out.reserve(b.len() + 2);
        out.push(b'"');
        out.extend_from_slice(b);
        out.push(b'"');
    } else {
        let _ = serde_json::to_writer(out, std::str::from_utf8(b).unwrap_or_default());
    }
}

/// Cut the first value off `rest`.
fn split_value<'a>(rest: &mut &'a [u8]) -> Option<Node<'a>> {
    let len = Node(rest).len()?;
    let (value, tail) = rest.split_at(len);
    *rest = tail;
    Some(Node(value))
}

pub struct Items<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Items<'a> {
    type Item = Node<'a>;
    fn next(&mut self) -> Option<Node<'a>> {
        if self.rest.is_empty() {
            return None;
        }
        let v = split_value(&mut self.rest);
        if v.is_none() {
            self.rest = &[];
        }
        v
    }
}

/// Members with their keys as bytes (compared without a UTF-8 check).
struct RawEntries<'a> {
    rest: &'a [u8],
}

impl<'a> RawEntries<'a> {
    fn entry(&mut self) -> Option<(&'a [u8], Node<'a>)> {
        let mut pos = 0;
        let klen = usize::try_from(varint(self.rest, &mut pos)?).ok()?;
        let key = self.rest.get(pos..pos.checked_add(klen)?)?;
        let mut rest = &self.rest[pos + klen..];
        let v = split_value(&mut rest)?;
        self.rest = rest;
        Some((key, v))
    }
}

impl<'a> Iterator for RawEntries<'a> {
    type Item = (&'a [u8], Node<'a>);
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let e = self.entry();
        if e.is_none() {
            self.rest = &[];
        }
        e
    }
}

pub struct Entries<'a>(RawEntries<'a>);

impl<'a> Iterator for Entries<'a> {
    type Item = (&'a str, Node<'a>);
    fn next(&mut self) -> Option<Self::Item> {
        let (k, v) = self.0.next()?;
        Some((std::str::from_utf8(k).unwrap_or_default(), v))
    }
}

impl<'a> View<'a> for Node<'a> {
    type Items = Items<'a>;
    type Entries = Entries<'a>;

    fn scalar(self) -> Scalar<'a> {
        match self.tag() {
            FALSE => Scalar::Bool(false),
            TRUE => Scalar::Bool(true),
            UINT => Scalar::Num(self.uint().map_or(f64::NAN, |u| u as f64)),
            NEG => Scalar::Num(self.neg().map_or(f64::NAN, |i| i as f64)),
            FLOAT => Scalar::Num(self.float().unwrap_or(f64::NAN)),
            STR => Scalar::Str(
                self.body()
                    .and_then(|b| std::str::from_utf8(b).ok())
                    .unwrap_or_default(),
            ),
            ARR => Scalar::Array,
            OBJ => Scalar::Object,
            _ => Scalar::Null,
        }
    }

    fn get(self, key: &str) -> Option<Self> {
        self.raw_entries()
            .find(|(k, _)| *k == key.as_bytes())
            .map(|(_, v)| v)
    }

    fn items(self) -> Option<Items<'a>> {
        (self.tag() == ARR).then(|| Items {
            rest: self.body().unwrap_or_default(),
        })
    }

    fn entries(self) -> Option<Entries<'a>> {
        (self.tag() == OBJ).then(|| Entries(self.raw_entries()))
    }

    fn to_value(self) -> Value {
        match self.tag() {
            FALSE => Value::Bool(false),
            TRUE => Value::Bool(true),
            UINT => self.uint().map_or(Value::Null, Value::from),
            NEG => self.neg().map_or(Value::Null, Value::from),
            FLOAT => self
                .float()
                .and_then(Number::from_f64)
                .map_or(Value::Null, Value::Number),
            STR => Value::String(self.as_str().unwrap_or_default().to_string()),
            ARR => Value::Array(
                self.items()
                    .into_iter()
                    .flatten()
                    .map(Node::to_value)
                    .collect(),
            ),
            OBJ => {
                let entries: Vec<_> = self.entries().into_iter().flatten().collect();
                let mut m = Map::with_capacity(entries.len());
                for (k, v) in entries {
                    m.insert(k.to_string(), v.to_value());
                }
                Value::Object(m)
            }
            _ => Value::Null,
        }
    }

    fn as_u64(self) -> Option<u64> {
        (self.tag() == UINT).then(|| self.uint()).flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::index::tests::Rng;
    use serde_json::json;

    fn value(rng: &mut Rng, depth: u32) -> Value {
        let strings = [
            "",
            "Leeds",
            "é ü \" \\ \n \u{1F600}",
            "a string longer than one hundred and twenty-seven bytes, so that its length takes two bytes of varint: \
             more words, more words, more words",
        ];
        match rng.next(if depth > 3 { 7 } else { 9 }) {
            0 => Value::Null,
            1 => Value::Bool(rng.next(2) == 0),
            2 => json!(rng.next(1 << 40)),
            3 => json!(-(rng.next(1 << 40) as i64) - 1),
            4 => [
                json!(u64::MAX),
                json!(i64::MIN),
                json!(0.1),
                json!(-2.5e300),
                json!(1e-7),
            ][rng.next(5) as usize]
                .clone(),
            5 => json!(rng.next(1000) as f64 / 7.0),
            6 => json!(strings[rng.next(4) as usize]),
            7 => Value::Array((0..rng.next(5)).map(|_| value(rng, depth + 1)).collect()),
            _ => Value::Object(
                (0..rng.next(6))
                    .map(|i| {
                        (
                            format!("k{i}{}", strings[rng.next(3) as usize]),
                            value(rng, depth + 1),
                        )
                    })
                    .collect(),
            ),
        }
    }

    /// Every part of a view agrees with the parsed value's.
    fn agree(p: Node<'_>, v: &Value) {
        assert_eq!(p.scalar(), v.scalar());
        match v {
            Value::Array(a) => {
                let items: Vec<_> = p.items().unwrap().collect();
                assert_eq!(items.len(), a.len());
                for (x, y) in items.into_iter().zip(a) {
                    agree(x, y);
                }
            }
            Value::Object(m) => {
                let entries: Vec<_> = p.entries().unwrap().collect();
                assert_eq!(entries.len(), m.len());
                for ((k, x), (kk, y)) in entries.into_iter().zip(m) {
                    assert_eq!(k, kk);
                    agree(x, y);
                    agree(p.get(k).unwrap(), y);
                }
                assert!(p.get("no such key").is_none());
            }
            _ => {
                assert!(p.items().is_none() && p.entries().is_none() && p.get("k0").is_none());
            }
        }
    }

    #[test]
    fn round_trips_and_reads_like_the_parsed_value() {
        for seed in 1..300u64 {
            let mut rng = Rng::seeded(seed);
            let v = value(&mut rng, 0);
            let p = Packed::new(&v);
            assert_eq!(p.to_value(), v, "seed {seed}");
            assert_eq!(p.to_json(), serde_json::to_vec(&v).unwrap(), "seed {seed}");
            agree(p.node(), &v);
        }
    }

    #[test]
    fn a_patient_packs_smaller_than_its_text() {
        let v = json!({"id": "pat_01KBXR6M7B3FJ9SG9SPQ1F3W2E", "object": "patient", "fullName": "Ann Smith",
            "address": {"line1": "1 High Street", "city": "Leeds"}, "age": 40, "version": 3});
        let p = Packed::new(&v);
        assert!(p.size() < serde_json::to_vec(&v).unwrap().len());
        assert_eq!(crate::store::version_in(p.node()), 3);
        assert_eq!(p.node().get("age").and_then(View::as_u64), Some(40));
    }

    #[test]
    fn the_cache_parses_a_document_once_and_forgets_old_ones() {
        let cache = ParsedCache::new(4);
        let a = Packed::new(&json!({"a": 1}));
        let first = cache.parsed(&a);
        assert!(Arc::ptr_eq(&first, &cache.parsed(&a)));
        // The same value packed again is another document: parsed afresh.
        let a2 = Packed::new(&json!({"a": 1}));
        assert!(!Arc::ptr_eq(&first, &cache.parsed(&a2)));
        // One turnover later it is in the old generation: still kept.
        cache.parsed(&Packed::new(&json!({"b": 0})));
        assert!(Arc::ptr_eq(&first, &cache.parsed(&a)));
        // Two turnovers later it is gone, and parsed again.
        let mut others = Vec::new();
        for i in 0..4 {
            let p = Packed::new(&json!({"c": i}));
            cache.parsed(&p);
            others.push(p);
        }
        assert!(!Arc::ptr_eq(&first, &cache.parsed(&a)));
        assert_eq!(*cache.parsed(&a), json!({"a": 1}));
        let gens = cache.gens.read().unwrap();
        assert!(gens[0].len() + gens[1].len() <= 4);
    }

    #[test]
    fn malformed_bytes_read_as_ending_early() {
        let v = json!({"a": [1, "two", {"three": 3.5}], "b": "x"});
        let full = Packed::new(&v);
        for cut in 0..full.size() {
            let p = Node(&full.0[..cut]);
            // Any answer, but no panic.
            let _ = p.to_value();
            p.write_json(&mut Vec::new());
            let _ = p.get("b");
        }
        let junk = [
            8u8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1,
        ];
        assert_eq!(Node(&junk).to_value(), json!({}));
    }
}
