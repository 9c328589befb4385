//! The DynamoDB store: one table, keys `PK`/`SK`, two overloaded GSIs, and
//! index entries kept as items of the table itself.
//!
//! - objects: `PK = T#{tenant}#{kind}` (tenant `org#mode`, or `org` for
//!   organization records), `SK = id`; attributes `doc` (the JSON document),
//!   `version`, `kind`, and for expiring kinds `expiresAt` (TTL). The tenant
//!   leads every partition key, so isolation is structural (and IAM
//!   `dynamodb:LeadingKeys` can enforce it). Ids are ULIDs whose time is the
//!   object's `createdAt`, so the base table also serves `createdAt` order
//!   and ranges, and `id` lookups and ranges.
//! - derived items (`super::derived`), written in the object's own
//!   transaction and read with strong consistency: lookup entries
//!   (`X#…`: every reference field and the declared lookups such as a
//!   patient's phone, email and barcode), the directory (`O#…`: `fullName`,
//!   `name` order), the postings of `$search` (`S#…`, one per distinct stem)
//!   and counters (`C#…`, sharded, `ADD`ed in the transaction). Entries hold
//!   keys only: a list reads a page of them, then those objects by key
//!   (`BatchGetItem`). A write reads the object's stored version first (the
//!   transaction is conditional on it) to know which entries to remove.
//! - `GSI3` (`G3PK`/`G3SK`): `G3PK = T#{tenant}#{kind}`,
//!   `G3SK = {updatedAt}#{id}`: lists sorted by, or ranged on, `updatedAt`
//!   (the sync query). `GSI6` (`G6PK`/`G6SK`): `{date}#{id}` of a kind's own
//!   date (`startAt`, `issuedAt`). Both are eventually consistent.
//! - uniqueness claims (names, key hashes: the auth lookup): `PK = U#{scope}`,
//!   `SK = value` → tenant, kind, id; read with `GetItem`.
//!
//! Every `WriteTx` is one `TransactWriteItems` with a condition per item
//! (absent, or at the version read). Events are items of kind `events`
//! written in the same transaction; DynamoDB Streams carries their inserts
//! to the fan-out Lambda, so there is no outbox to poll here.
//!
//! Lists never `Scan`. The planner picks what serves the query: an id
//! equality, a lookup's entries, the postings of a search's terms, the
//! directory, `updatedAt` or date order (GSIs), or the table's id order.
//! When the source's order is the query's order it reads only as far as the
//! page needs (cursors carry the last item's key position, from which the
//! next page's key condition starts). Otherwise (another sort, relevance)
//! it reads the source's whole key range and evaluates there. Counts of a
//! whole collection or of one counted equality come from the counters.
//! Either way a list reads at most `list_bound` items, past which it is
//! refused (400) with advice naming what the indexes serve. The full filter
//! is always evaluated on what is read, with the same code as the embedded
//! store, so the indexes only decide how much is read.

use super::derived::{self, Derived};
use super::*;
use crate::query::search::Postings;
use crate::query::{eval, index::Index, Filter, Op};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, ConsumedCapacity, Delete,
    GlobalSecondaryIndex, KeySchemaElement, KeyType, KeysAndAttributes, Projection, ProjectionType,
    Put, ReturnConsumedCapacity, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification, TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

/// Items one list may read by default; past it the query is refused (400)
/// rather than reading a whole tenant.
pub const DEFAULT_LIST_BOUND: usize = 5_000;
/// Reference-data reads (`Store::all`: a tenant's clinics, endpoints…).
pub const MAX_ALL_ITEMS: usize = 20_000;
/// DynamoDB sort keys hold at most 1 KB: longer values are not put in an
/// equality index (a lookup of one reads the base table instead), never
/// narrow a key condition, and no id or claim key is ever that long.
const MAX_KEY_BYTES: usize = 1024;

/// `{updatedAt}#{id}` per kind.
const UPDATED_INDEX: (&str, &str, &str) = ("GSI3", "G3PK", "G3SK");
/// `{value}#{id}` of a kind's own ordering field (`startAt`, `issuedAt`).
const ORDERED_INDEX: (&str, &str, &str) = ("GSI6", "G6PK", "G6SK");

/// Every GSI of the table. (Tables made before the lookup entries also had
/// `GSI1`, `GSI2`, `GSI4` and `GSI5`; nothing reads them any more.)
pub const INDEXES: [(&str, &str, &str); 2] = [UPDATED_INDEX, ORDERED_INDEX];

/// DynamoDB's limit on the items of one `TransactWriteItems`.
pub const MAX_TRANSACTION_ITEMS: usize = 100;

/// The sort key of an entry ordered by a field: `{value}#{id}` (a missing
/// value sorts first, as Feathers sorts it).
fn ordered_key(doc: &Value, field: &str, id: &str) -> String {
    derived::dated_key(doc, field, id)
}

pub struct DynamoStore {
    client: Client,
    table: String,
    kinds: Kinds,
    list_bound: usize,
    /// Capacity units consumed so far, in thousandths (reads, writes).
    read_milli: AtomicU64,
    write_milli: AtomicU64,
    /// Items lists have read (entries, objects, postings, counters).
    items: AtomicU64,
    /// Items transactions have written (objects, events, claims, entries,
    /// counters).
    written: AtomicU64,
}

type Item = HashMap<String, AttributeValue>;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn obj_pk(tenant: &str, kind: &str) -> String {
    format!("T#{tenant}#{kind}")
}

/// How long a write whose every attempt failed transiently reads back
/// whether one of them was applied after all, before answering 503 (the
/// 25 s operation timeout plus this stays under API Gateway's 29 s).
const READ_BACK: std::time::Duration = std::time::Duration::from_secs(2);

/// An SDK error as the store reports it: throttling and transient failures
/// that outlasted the client's retries ([`crate::aws::retry_config`]) are
/// `Unavailable` (503 with `Retry-After`), anything else `Backend` (500).
fn backend<E: std::fmt::Debug>(e: E) -> StoreError {
    let text = format!("{e:?}");
    let short: String = text.chars().take(500).collect();
    if transient(&text) {
        StoreError::Unavailable(short)
    } else {
        StoreError::Backend(short)
    }
}

/// Whether an SDK error (its `Debug` text: the error's variant and code)
/// is one DynamoDB's own advice says to retry: throttling, a 5xx, a
/// timeout, a connection that failed or broke.
fn transient(debug: &str) -> bool {
    const MARKS: [&str; 10] = [
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "StatusCode(500)",
        "StatusCode(503)",
        "TimeoutError",
        "DispatchFailure",
        "ResponseError",
    ];
    MARKS.iter().any(|m| debug.contains(m))
}

fn doc_of(item: &Item) -> Result<Doc, StoreError> {
    match item.get("doc") {
        Some(AttributeValue::S(text)) => serde_json::from_str(text)
            .map(Arc::new)
            .map_err(|e| StoreError::Backend(format!("corrupt document: {e}"))),
        _ => Err(StoreError::Backend("item without a document".into())),
    }
}

fn str_attr(item: &Item, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    }
}

/// Whether an item is past its TTL (DynamoDB deletes such items lazily:
/// until then they are filtered out wherever they are read).
fn expired(item: &Item, now_secs: i64) -> bool {
    matches!(item.get("expiresAt"), Some(AttributeValue::N(exp)) if exp.parse::<i64>().is_ok_and(|e| e <= now_secs))
}

/// The item of a unique claim.
fn claim_item(scope: &str, value: &str, target: &UniqueTarget) -> Item {
    HashMap::from([
        ("PK".to_string(), s(format!("U#{scope}"))),
        ("SK".to_string(), s(claim_key(value))),
        ("tenant".to_string(), s(target.tenant.clone())),
        ("kind".to_string(), s(target.kind.clone())),
        ("id".to_string(), s(target.id.clone())),
    ])
}

/// The sort key of a uniqueness claim: the value itself, or for values
/// DynamoDB could not hold as a key (empty, long) a digest of it.
fn claim_key(value: &str) -> String {
    if !value.is_empty() && value.len() <= MAX_KEY_BYTES && !value.starts_with("sha256:") {
        return value.to_string();
    }
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(value.as_bytes());
    let hex = crate::ids::hex(&digest);
    format!("sha256:{hex}")
}

fn id_of(doc: &Value) -> &str {
    doc.get("id").and_then(Value::as_str).unwrap_or_default()
}

/// The value a sort key reads (plain traversal; null is missing).
fn group_value(doc: &Value, path: &[String]) -> Option<Value> {
    let mut cur = doc;
    for seg in path {
        cur = cur.as_object()?.get(seg.as_str())?;
    }
    (!cur.is_null()).then(|| cur.clone())
}

/// Items a list may still read.
struct Budget {
    kind: String,
    bound: usize,
    left: usize,
    advice: String,
}

impl Budget {
    fn new(kind: &str, bound: usize, advice: String) -> Budget {
        Budget {
            kind: kind.to_string(),
            bound,
            left: bound,
            advice,
        }
    }

    fn take(&mut self) -> StoreResult<()> {
        if self.left == 0 {
            return Err(StoreError::TooLarge {
                kind: self.kind.clone(),
                bound: self.bound,
                advice: self.advice.clone(),
            });
        }
        self.left -= 1;
        Ok(())
    }
}

/// What a reader's `each` wants after a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// The next one.
    More,
    /// Only the rest of the current group of ties (the page is full).
    Ties,
    /// Nothing more.
    Stop,
}

/// A reader's page sizes once only ties are wanted: small, doubling (a
/// group of ties is seldom long).
#[derive(Default)]
struct Ties(Option<usize>);

impl Ties {
    /// Note what `each` said; true to stop.
    fn heed(&mut self, f: Flow) -> bool {
        if f == Flow::Ties && self.0.is_none() {
            self.0 = Some(4);
        }
        f == Flow::Stop
    }

    /// The next page's size: `grown` while filling, else the ties' size.
    fn page(&mut self, grown: usize) -> usize {
        match &mut self.0 {
            None => grown,
            Some(n) => {
                *n = (*n * 2).min(1000);
                *n
            }
        }
    }

    /// How many objects to fetch at once.
    fn chunk(&self, filling: usize) -> usize {
        self.0.map_or(filling, |n| n.min(filling))
    }
}

/// What a source's sort key orders by.
#[derive(Debug, Clone, PartialEq)]
enum SkOrder {
    /// The id (creation order, and `createdAt`: ids carry their time).
    Id { prefix: Option<&'static str> },
    /// `{value}#{id}` of this (timestamp) field.
    Field(&'static str),
    /// `{sort key}\u{1}{id}` of this string field (the directory).
    Sorted(&'static str),
}

/// A partition of the table or of a GSI.
#[derive(Debug, Clone)]
struct Source {
    index: Option<&'static str>,
    pk_attr: &'static str,
    sk_attr: &'static str,
    pk: String,
    by: SkOrder,
    /// Its items are entries (keys and the object's id) of the objects in
    /// this partition, not objects.
    entries: Option<String>,
}

impl Source {
    fn base(tenant: &str, kind: &str, kinds: &Kinds) -> Source {
        Source {
            index: None,
            pk_attr: "PK",
            sk_attr: "SK",
            pk: obj_pk(tenant, kind),
            by: SkOrder::Id {
                prefix: kinds.prefix(kind),
            },
            entries: None,
        }
    }

    /// A partition of entries of the table, of objects of `tenant`'s `kind`.
    fn entries(tenant: &str, kind: &str, pk: String, by: SkOrder) -> Source {
        Source {
            index: None,
            pk_attr: "PK",
            sk_attr: "SK",
            pk,
            by,
            entries: Some(obj_pk(tenant, kind)),
        }
    }
}

/// A key range of a source (bounds inclusive; the evaluation is exact).
#[derive(Debug, Clone)]
struct Range {
    source: Source,
    lo: Option<String>,
    hi: Option<String>,
}

impl Range {
    fn raise_lo(&mut self, v: String) {
        if self.lo.as_ref().is_none_or(|cur| *cur < v) {
            self.lo = Some(v);
        }
    }

    fn lower_hi(&mut self, v: String) {
        if self.hi.as_ref().is_none_or(|cur| *cur > v) {
            self.hi = Some(v);
        }
    }

    fn empty(&self) -> bool {
        matches!((&self.lo, &self.hi), (Some(lo), Some(hi)) if lo > hi)
    }

    /// This range from a cursor's position on, reading in `reverse` (index
    /// descending) or not; the position's whole group of ties is kept.
    fn cut_at(
        &self,
        stream: &Stream,
        pos: Option<&crate::query::cursor::Position>,
        reverse: bool,
    ) -> Range {
        let mut r = self.clone();
        let Some(pos) = pos else {
            return r;
        };
        let first = pos.keys.first().and_then(|k| k.as_ref());
        let cut = match (&self.source.by, &stream.group) {
            (SkOrder::Id { .. }, None) => Some((pos.id.clone(), pos.id.clone())),
            (
                SkOrder::Id {
                    prefix: Some(prefix),
                },
                Some(_),
            ) => first
                .and_then(Value::as_str)
                .and_then(crate::time::parse_timestamp)
                .map(|ms| {
                    (
                        crate::ids::time_prefix(prefix, ms),
                        crate::ids::time_prefix(prefix, ms + 1),
                    )
                }),
            (SkOrder::Field(_), _) => first
                .and_then(Value::as_str)
                .map(|u| (u.to_string(), format!("{u}$"))),
            (SkOrder::Sorted(_), _) => {
                let k = derived::sort_key(first);
                Some((k.clone(), format!("{k}\u{2}")))
            }
            _ => None,
        };
        if let Some((start, end)) = cut {
            if reverse {
                r.lower_hi(end);
            } else {
                r.raise_lo(start);
            }
        }
        r
    }
}

/// A source whose order is the query's: read only as far as the page needs.
#[derive(Debug, Clone)]
struct Stream {
    /// The query's first sort key is descending.
    descending: bool,
    /// The first sort key when ties are possible (their group is completed).
    group: Option<Vec<String>>,
}

#[derive(Debug)]
struct Plan {
    range: Range,
    /// `None`: read the whole range, then evaluate.
    stream: Option<Stream>,
    /// Read these postings instead of the range (a search).
    postings: Option<Postings>,
    /// Read these partitions' like ranges merged with the range's (the
    /// other words' postings of an any-word search streamed in id order).
    also: Vec<Source>,
    /// The counter that answers the query's total.
    count: Option<String>,
    advice: String,
}

/// Does the filter hold an `$or` anywhere?
fn has_or(f: &Filter) -> bool {
    match f {
        Filter::And(fs) => fs.iter().any(has_or),
        Filter::Or(_) => true,
        Filter::Field { .. } => false,
    }
}

/// The counter that holds the number of matches, if one does: none or one
/// equality on a counted lookup, no search.
fn count_for(kind: &str, q: &ListQuery, kinds: &Kinds) -> Option<String> {
    let spec = kinds.get(kind)?;
    if q.search.is_some() || has_or(&q.filter) || q.position.is_some() {
        return None;
    }
    let mut clauses = Vec::new();
    conjuncts(&q.filter, &mut clauses);
    match clauses.as_slice() {
        [] => spec.counted.then(|| derived::ALL.to_string()),
        [(path, Op::Eq(Value::String(v)))] => spec
            .lookups
            .iter()
            .find(|l| l.counted && is_path(path, l.field))
            .filter(|_| !v.is_empty() && v.len() <= derived::MAX_VALUE_BYTES)
            .map(|l| derived::count_key(l.field, v)),
        _ => None,
    }
}

/// The conditions every match satisfies: the clauses of the top-level `And`s.
fn conjuncts<'q>(f: &'q Filter, out: &mut Vec<(&'q [String], &'q Op)>) {
    match f {
        Filter::And(fs) => fs.iter().for_each(|f| conjuncts(f, out)),
        Filter::Field { path, op } => out.push((path, op)),
        Filter::Or(_) => {}
    }
}

fn is_path(path: &[String], dotted: &str) -> bool {
    path.len() == dotted.split('.').count()
        && path.iter().zip(dotted.split('.')).all(|(a, b)| a == b)
}

/// A timestamp in its canonical stored form (anything else narrows nothing).
fn canonical_ms(v: &Value) -> Option<i64> {
    let s = v.as_str()?;
    let ms = crate::time::parse_timestamp(s)?;
    (crate::time::format_ms(ms) == s).then_some(ms)
}

impl SkOrder {
    /// Is this source's order the order the query's first sort key asks?
    fn serves(&self, q: &ListQuery) -> bool {
        let first = q.sort.first();
        match self {
            SkOrder::Id { prefix } => {
                first.is_none_or(|k| is_path(&k.path, "id"))
                    || (prefix.is_some() && first.is_some_and(|k| is_path(&k.path, "createdAt")))
            }
            SkOrder::Field(f) | SkOrder::Sorted(f) => first.is_some_and(|k| is_path(&k.path, f)),
        }
    }

    /// The field whose ties a page completes (none when ids order it).
    fn group(&self, q: &ListQuery) -> Option<Vec<String>> {
        match self {
            SkOrder::Id { .. } if q.sort.first().is_none_or(|k| is_path(&k.path, "id")) => None,
            SkOrder::Id { .. } => Some(vec!["createdAt".to_string()]),
            SkOrder::Field(f) | SkOrder::Sorted(f) => Some(vec![f.to_string()]),
        }
    }

    /// Do the clauses bound this order's key?
    fn narrowed_by(&self, clauses: &[(&[String], &Op)]) -> bool {
        let ranged = |op: &&Op| {
            matches!(
                op,
                Op::Eq(_) | Op::Gt(_) | Op::Gte(_) | Op::Lt(_) | Op::Lte(_)
            )
        };
        clauses.iter().any(|(path, op)| {
            ranged(op)
                && match self {
                    SkOrder::Id { prefix } => {
                        is_path(path, "id") || (prefix.is_some() && is_path(path, "createdAt"))
                    }
                    SkOrder::Field(f) => is_path(path, f),
                    SkOrder::Sorted(_) => false,
                }
        })
    }
}

impl Plan {
    fn new(tenant: &str, kind: &str, q: &ListQuery, kinds: &Kinds) -> Plan {
        let mut clauses = Vec::new();
        conjuncts(&q.filter, &mut clauses);
        let lookups = kinds.lookups(kind);
        let base = Source::base(tenant, kind, kinds);

        // Equalities on indexed fields: read only that value's items.
        let eqs: Vec<Source> = lookups
            .iter()
            .filter_map(|l| {
                clauses.iter().find_map(|(path, op)| match op {
                    Op::Eq(Value::String(v))
                        if is_path(path, l.field)
                            && !v.is_empty()
                            && v.len() <= derived::MAX_VALUE_BYTES =>
                    {
                        Some(Source::entries(
                            tenant,
                            kind,
                            derived::lookup_pk(tenant, kind, l.field, v),
                            match l.range {
                                Some(r) => SkOrder::Field(r),
                                None => base.by.clone(),
                            },
                        ))
                    }
                    _ => None,
                })
            })
            .collect();
        // An id equality (one the key can hold) is narrower than any lookup.
        let id_eq = clauses.iter().any(|(path, op)| {
            is_path(path, "id")
                && matches!(op, Op::Eq(Value::String(v)) if !v.is_empty() && v.len() <= MAX_KEY_BYTES)
        });
        let mut ordered = Vec::new();
        if kinds.by_updated(kind) {
            let (index, pk_attr, sk_attr) = UPDATED_INDEX;
            ordered.push(Source {
                index: Some(index),
                pk_attr,
                sk_attr,
                pk: obj_pk(tenant, kind),
                by: SkOrder::Field("updatedAt"),
                entries: None,
            });
        }
        if let Some(f) = kinds.ordered_by(kind) {
            let (index, pk_attr, sk_attr) = ORDERED_INDEX;
            ordered.push(Source {
                index: Some(index),
                pk_attr,
                sk_attr,
                pk: obj_pk(tenant, kind),
                by: SkOrder::Field(f),
                entries: None,
            });
        }
        let sorted = kinds.get(kind).map(|k| k.sorted).unwrap_or(&[]);
        for f in sorted {
            ordered.push(Source::entries(
                tenant,
                kind,
                derived::directory_pk(tenant, kind, f),
                SkOrder::Sorted(f),
            ));
        }
        // A search the inverted index serves reads its postings, unless an
        // id or a lookup picks fewer.
        let postings = match (&q.search, kinds.get(kind)) {
            (Some(search), Some(spec)) if !id_eq && eqs.is_empty() && !spec.search.is_empty() => {
                search.postings()
            }
            _ => None,
        };
        let count = count_for(kind, q, kinds);
        // The sources worth reading: an equality picks the items, so an
        // unkeyed order is no better than it.
        let keyed = id_eq || !eqs.is_empty();
        let candidates: Vec<Source> = if id_eq {
            vec![base.clone()]
        } else if !eqs.is_empty() {
            eqs
        } else {
            ordered.iter().cloned().chain([base.clone()]).collect()
        };
        let relevance = q.search.as_ref().is_some_and(|s| s.sort_by_relevance);
        let descending = q.sort.first().is_some_and(|k| k.descending);
        // A search in creation order without a total streams its words'
        // postings merged in id order, as far as its page goes.
        let mut postings = postings;
        let mut also = Vec::new();
        let mut candidates = candidates;
        if let Some(Postings::Any(stems)) = &postings {
            if !q.want_total && !relevance && base.by.serves(q) {
                let mut parts = stems.iter().map(|st| {
                    Source::entries(
                        tenant,
                        kind,
                        derived::posting_pk(tenant, kind, st),
                        base.by.clone(),
                    )
                });
                if let Some(first) = parts.next() {
                    candidates = vec![first];
                    also = parts.collect();
                    postings = None;
                }
            }
        }
        let can_stream = (!q.want_total || count.is_some()) && !relevance && postings.is_none();
        let streaming = candidates
            .iter()
            .find(|s| can_stream && s.by.serves(q))
            .cloned();
        let (source, stream) = match streaming {
            Some(src) => {
                let group = src.by.group(q);
                (src, Some(Stream { descending, group }))
            }
            None => {
                // Read one whole: the one the clauses narrow, else the first
                // (an equality) or the table.
                let src = candidates
                    .iter()
                    .find(|s| s.by.narrowed_by(&clauses))
                    .or(if keyed { candidates.first() } else { None })
                    .cloned()
                    .unwrap_or_else(|| base.clone());
                (src, None)
            }
        };

        // Narrow the key range with the filter's ranges on the source's key.
        let mut range = Range {
            source,
            lo: None,
            hi: None,
        };
        for (path, op) in &clauses {
            match range.source.by.clone() {
                SkOrder::Id { prefix } => {
                    if is_path(path, "id") {
                        // Key values must be non-empty and at most 1 KB.
                        let Some(v) = op_value(op)
                            .and_then(Value::as_str)
                            .filter(|v| !v.is_empty() && v.len() <= MAX_KEY_BYTES)
                        else {
                            continue;
                        };
                        match op {
                            Op::Eq(_) => {
                                range.raise_lo(v.to_string());
                                range.lower_hi(v.to_string());
                            }
                            Op::Gt(_) | Op::Gte(_) => range.raise_lo(v.to_string()),
                            Op::Lt(_) | Op::Lte(_) => range.lower_hi(v.to_string()),
                            _ => {}
                        }
                    } else if is_path(path, "createdAt") {
                        let (Some(prefix), Some(ms)) =
                            (prefix, op_value(op).and_then(canonical_ms))
                        else {
                            continue;
                        };
                        match op {
                            Op::Eq(_) => {
                                range.raise_lo(crate::ids::time_prefix(prefix, ms));
                                range.lower_hi(crate::ids::time_prefix(prefix, ms + 1));
                            }
                            Op::Gte(_) => range.raise_lo(crate::ids::time_prefix(prefix, ms)),
                            Op::Gt(_) => range.raise_lo(crate::ids::time_prefix(prefix, ms + 1)),
                            Op::Lt(_) => range.lower_hi(crate::ids::time_prefix(prefix, ms)),
                            Op::Lte(_) => range.lower_hi(crate::ids::time_prefix(prefix, ms + 1)),
                            _ => {}
                        }
                    }
                }
                SkOrder::Sorted(_) => {}
                SkOrder::Field(f) => {
                    if !is_path(path, f) {
                        continue;
                    }
                    let Some(v) = op_value(op).filter(|v| canonical_ms(v).is_some()) else {
                        continue;
                    };
                    let v = v.as_str().unwrap_or_default();
                    match op {
                        Op::Eq(_) => {
                            range.raise_lo(v.to_string());
                            range.lower_hi(format!("{v}$"));
                        }
                        Op::Gt(_) | Op::Gte(_) => range.raise_lo(v.to_string()),
                        Op::Lt(_) | Op::Lte(_) => range.lower_hi(format!("{v}$")),
                        _ => {}
                    }
                }
            }
        }

        let mut served: Vec<String> = lookups
            .iter()
            .map(|l| match l.range {
                Some(r) => format!("`{}=…` (with a `{r}` range or sort)", l.field),
                None => format!("`{}=…`", l.field),
            })
            .collect();
        served.push("a `createdAt` range".into());
        let mut sorts = vec!["`createdAt`".to_string()];
        for o in &ordered {
            match o.by {
                SkOrder::Field(f) => {
                    served.push(format!("a `{f}` range"));
                    sorts.push(format!("`{f}`"));
                }
                SkOrder::Sorted(f) => sorts.push(format!("`{f}`")),
                SkOrder::Id { .. } => {}
            }
        }
        if kinds.get(kind).is_some_and(|k| !k.search.is_empty()) {
            served.push("`$search` (in English, with a word to look for)".into());
        }
        let counted: Vec<String> = lookups
            .iter()
            .filter(|l| l.counted)
            .map(|l| format!("`{}=…`", l.field))
            .collect();
        let counts = if kinds.get(kind).is_some_and(|k| k.counted) {
            format!(
                " Totals (`$total`, `$limit=0`) are kept for the whole list{}; other totals count what they read.",
                if counted.is_empty() {
                    String::new()
                } else {
                    format!(" and for one of {}", counted.join(", "))
                }
            )
        } else {
            String::new()
        };
        let advice = format!(
            "Narrow it with a filter an index serves ({}), or sort by {} (or not at all) and page with `next`.{counts}",
            served.join(", "),
            sorts.join(" or ")
        );
        Plan {
            range,
            stream,
            postings,
            also,
            count,
            advice,
        }
    }
}

impl Plan {
    /// The ranges to read: the plan's, and its others' (`also`) with the
    /// same bounds, each passed through `cut`.
    fn ranges(&self, cut: impl Fn(&Range) -> Range) -> Vec<Range> {
        let mut out = vec![cut(&self.range)];
        for source in &self.also {
            out.push(cut(&Range {
                source: source.clone(),
                lo: self.range.lo.clone(),
                hi: self.range.hi.clone(),
            }));
        }
        out
    }
}

fn op_value(op: &Op) -> Option<&Value> {
    match op {
        Op::Eq(v) | Op::Gt(v) | Op::Gte(v) | Op::Lt(v) | Op::Lte(v) => Some(v),
        _ => None,
    }
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>, kinds: Kinds) -> DynamoStore {
        DynamoStore {
            client,
            table: table.into(),
            kinds,
            list_bound: DEFAULT_LIST_BOUND,
            read_milli: AtomicU64::new(0),
            write_milli: AtomicU64::new(0),
            items: AtomicU64::new(0),
            written: AtomicU64::new(0),
        }
    }

    /// How many items one list may read before it is refused.
    pub fn with_list_bound(mut self, bound: usize) -> DynamoStore {
        self.list_bound = bound.max(1);
        self
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Read and write capacity units consumed since the store was made, as
    /// DynamoDB reports them (`ReturnConsumedCapacity=TOTAL` on every call).
    pub fn consumed(&self) -> (f64, f64) {
        (
            self.read_milli.load(AtomicOrdering::Relaxed) as f64 / 1000.0,
            self.write_milli.load(AtomicOrdering::Relaxed) as f64 / 1000.0,
        )
    }

    fn count(&self, c: Option<&ConsumedCapacity>, write: bool) {
        let Some(units) = c.and_then(|c| c.capacity_units()) else {
            return;
        };
        let counter = if write {
            &self.write_milli
        } else {
            &self.read_milli
        };
        counter.fetch_add((units * 1000.0).round() as u64, AtomicOrdering::Relaxed);
    }

    /// Open the connection (one cheap call) so the first request does not pay
    /// for the TLS handshake, and fail now if the table is missing. A read of
    /// a key no item has (half a read unit), not `DescribeTable`: a data-plane
    /// call, answered as fast as any read, and not subject to the control
    /// plane's request limits when many functions start at once.
    pub async fn warm_up(&self) -> StoreResult<()> {
        self.client
            .get_item()
            .table_name(&self.table)
            .key("PK", AttributeValue::S("#warm-up".into()))
            .key("SK", AttributeValue::S("#warm-up".into()))
            .projection_expression("PK")
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    /// Create the table as `template.yaml` does (for development and tests).
    pub async fn create_table(client: &Client, table: &str) -> StoreResult<()> {
        Self::create_table_with(client, table, true).await
    }

    /// The table without its stream, for tests that deliver no webhooks:
    /// DynamoDB Local keeps a stream record of every item written, which
    /// makes each write up to 20 times dearer there (measured: 1,000 batched
    /// puts 0.24 s without a stream, 5.1 s with one).
    pub async fn create_table_without_stream(client: &Client, table: &str) -> StoreResult<()> {
        Self::create_table_with(client, table, false).await
    }

    async fn create_table_with(client: &Client, table: &str, stream: bool) -> StoreResult<()> {
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(backend)
        };
        let key = |name: &str, t: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(t)
                .build()
                .map_err(backend)
        };
        let mut create = client
            .create_table()
            .table_name(table)
            .attribute_definitions(attr("PK")?)
            .attribute_definitions(attr("SK")?)
            .key_schema(key("PK", KeyType::Hash)?)
            .key_schema(key("SK", KeyType::Range)?)
            .billing_mode(BillingMode::PayPerRequest);
        if stream {
            create = create.stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewImage)
                    .build()
                    .map_err(backend)?,
            );
        }
        for (index, pk, sk) in INDEXES {
            create = create
                .attribute_definitions(attr(pk)?)
                .attribute_definitions(attr(sk)?)
                .global_secondary_indexes(
                    GlobalSecondaryIndex::builder()
                        .index_name(index)
                        .key_schema(key(pk, KeyType::Hash)?)
                        .key_schema(key(sk, KeyType::Range)?)
                        .projection(
                            Projection::builder()
                                .projection_type(ProjectionType::All)
                                .build(),
                        )
                        .build()
                        .map_err(backend)?,
                );
        }
        create.send().await.map_err(backend)?;
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name("expiresAt")
                    .build()
                    .map_err(backend)?,
            )
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn get_item(&self, pk: String, sk: &str) -> StoreResult<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("PK", s(pk))
            .key("SK", s(sk))
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(backend)?;
        self.count(out.consumed_capacity(), false);
        Ok(out.item)
    }

    /// One page of a source's key range, in its order (or the reverse), from
    /// `start`: the live items (expired ones filtered: TTL deletion is lazy)
    /// and where the next page starts (`None`: the range is done).
    async fn query_page(
        &self,
        range: &Range,
        reverse: bool,
        size: usize,
        start: Option<Item>,
    ) -> StoreResult<(Vec<Item>, Option<Item>)> {
        let src = &range.source;
        let mut cond = format!("{} = :pk", src.pk_attr);
        match (&range.lo, &range.hi) {
            (Some(_), Some(_)) => {
                cond.push_str(&format!(" AND {} BETWEEN :lo AND :hi", src.sk_attr))
            }
            (Some(_), None) => cond.push_str(&format!(" AND {} >= :lo", src.sk_attr)),
            (None, Some(_)) => cond.push_str(&format!(" AND {} <= :hi", src.sk_attr)),
            (None, None) => {}
        }
        let mut req = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression(&cond)
            .expression_attribute_values(":pk", s(src.pk.clone()))
            .scan_index_forward(!reverse)
            .limit(size.clamp(1, 1000) as i32)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .set_exclusive_start_key(start);
        if let Some(lo) = &range.lo {
            req = req.expression_attribute_values(":lo", s(lo.clone()));
        }
        if let Some(hi) = &range.hi {
            req = req.expression_attribute_values(":hi", s(hi.clone()));
        }
        req = match src.index {
            Some(index) => req.index_name(index),
            None => req.consistent_read(true),
        };
        let page = req.send().await.map_err(backend)?;
        self.count(page.consumed_capacity(), false);
        self.items
            .fetch_add(page.items().len() as u64, AtomicOrdering::Relaxed);
        let now_secs = crate::time::now_ms() / 1000;
        let next = page.last_evaluated_key.filter(|k| !k.is_empty());
        let live = page
            .items
            .unwrap_or_default()
            .into_iter()
            .filter(|item| !expired(item, now_secs))
            .collect();
        Ok((live, next))
    }

    /// Read a source's key range in pages, in its order (or the reverse),
    /// calling `each` on every live item's document until it says stop.
    /// Counts every item read against `budget`; running out is `TooLarge`.
    /// Pages grow four-fold while `each` wants more, and restart small once
    /// it only wants the rest of a group of ties.
    async fn read_range(
        &self,
        range: &Range,
        reverse: bool,
        page_size: usize,
        budget: &mut Budget,
        mut each: impl FnMut(Doc) -> Flow,
    ) -> StoreResult<()> {
        if range.empty() {
            return Ok(());
        }
        let mut start = None;
        let mut size = page_size.clamp(2, 1000);
        let mut ties = Ties::default();
        loop {
            let (live, next) = self.query_page(range, reverse, size, start).await?;
            if let Some(objects) = &range.source.entries {
                // Entries are small; their objects are fetched a first
                // page's worth at a time, only as far as `each` goes (a
                // group of ties completed reads its ties, not the page).
                let ids: Vec<String> = live.iter().filter_map(|i| str_attr(i, "id")).collect();
                let mut at = 0;
                while at < ids.len() {
                    let n = ties.chunk(page_size.clamp(2, 100));
                    let chunk = &ids[at..(at + n).min(ids.len())];
                    at += chunk.len();
                    for d in self.fetch_docs(objects, chunk).await? {
                        budget.take()?;
                        if ties.heed(each(d)) {
                            return Ok(());
                        }
                    }
                }
            } else {
                for item in &live {
                    budget.take()?;
                    if ties.heed(each(doc_of(item)?)) {
                        return Ok(());
                    }
                }
            }
            match next {
                Some(k) => start = Some(k),
                None => return Ok(()),
            }
            size = ties.page((size * 4).min(1000));
        }
    }

    /// Read several ranges of entries whose sort keys are ids (the postings
    /// of a search's words) as one: merged in id order (or the reverse),
    /// each object once, its document fetched and given to `each` until it
    /// says stop. Reads about as far into each list as the merged order
    /// goes, so a page of an any-word search costs about its page, however
    /// common the words.
    async fn read_ranges(
        &self,
        ranges: &[Range],
        reverse: bool,
        page_size: usize,
        budget: &mut Budget,
        mut each: impl FnMut(Doc) -> Flow,
    ) -> StoreResult<()> {
        let objects = match ranges {
            [one] => return self.read_range(one, reverse, page_size, budget, each).await,
            [first, ..] => match &first.source.entries {
                Some(objects) => objects.clone(),
                None => return Err(StoreError::Backend("merged ranges must be entries".into())),
            },
            [] => return Ok(()),
        };
        struct Partition<'r> {
            range: &'r Range,
            ids: std::collections::VecDeque<String>,
            start: Option<Item>,
            done: bool,
            size: usize,
        }
        // Each list holds about its share of the merged order: pages of a
        // share of the page at first, doubling as a list is read on.
        let first_size = (2 * page_size / ranges.len()).clamp(4, 1000);
        let mut parts: Vec<Partition> = ranges
            .iter()
            .map(|range| Partition {
                range,
                ids: Default::default(),
                start: None,
                done: range.empty(),
                size: first_size,
            })
            .collect();
        let mut ties = Ties::default();
        let mut chunk: Vec<String> = Vec::new();
        loop {
            for p in parts.iter_mut() {
                // An empty page with more to come is read past.
                while p.ids.is_empty() && !p.done {
                    let (live, next) = self
                        .query_page(p.range, reverse, p.size, p.start.take())
                        .await?;
                    p.ids.extend(live.iter().filter_map(|i| str_attr(i, "id")));
                    p.done = next.is_none();
                    p.start = next;
                    p.size = ties.page((p.size * 2).min(1000));
                }
            }
            let heads = parts.iter().filter_map(|p| p.ids.front());
            let next = if reverse { heads.max() } else { heads.min() }.cloned();
            let flush = match &next {
                Some(id) => {
                    for p in parts.iter_mut() {
                        if p.ids.front() == Some(id) {
                            p.ids.pop_front();
                        }
                    }
                    chunk.push(id.clone());
                    chunk.len() >= ties.chunk(page_size.clamp(2, 100))
                }
                None => true,
            };
            if flush && !chunk.is_empty() {
                for d in self.fetch_docs(&objects, &chunk).await? {
                    budget.take()?;
                    if ties.heed(each(d)) {
                        return Ok(());
                    }
                }
                chunk.clear();
            }
            if next.is_none() {
                return Ok(());
            }
        }
    }

    /// Every document of a collection, in id (creation) order, up to `bound`.
    async fn read_collection(
        &self,
        tenant: &str,
        kind: &str,
        bound: usize,
    ) -> StoreResult<Vec<Doc>> {
        let range = Range {
            source: Source::base(tenant, kind, &self.kinds),
            lo: None,
            hi: None,
        };
        let mut budget = Budget::new(kind, bound, String::new());
        let mut out = Vec::new();
        self.read_range(&range, false, 1000, &mut budget, |d| {
            out.push(d);
            Flow::More
        })
        .await?;
        Ok(out)
    }

    /// A list: plan, read what the plan needs, evaluate (module docs).
    async fn plan_and_list(
        &self,
        tenant: &str,
        kind: &str,
        q: &ListQuery,
    ) -> StoreResult<ListPage> {
        let plan = Plan::new(tenant, kind, q, &self.kinds);
        let counted = match &plan.count {
            Some(key) if q.want_total || q.limit == 0 => {
                Some(self.counter(tenant, kind, key).await?)
            }
            _ => None,
        };
        if let (Some(total), 0) = (counted, q.limit) {
            return Ok(ListPage {
                data: Vec::new(),
                total: q.want_total.then_some(total),
                has_prev: false,
                has_next: false,
            });
        }
        let mut budget = Budget::new(kind, self.list_bound, plan.advice.clone());
        let admit = eval::Admit::new(q, q.search_fields);
        let mut docs: Vec<Doc> = Vec::new();
        let mut probe_found = false;
        match (&plan.stream, &plan.postings) {
            (None, Some(postings)) => {
                for d in self
                    .search_candidates(tenant, kind, postings, &mut budget)
                    .await?
                {
                    if admit.matches(&*d) {
                        docs.push(d);
                    }
                }
            }
            (None, None) => {
                // Read the whole range; the evaluation decides.
                self.read_range(&plan.range, false, 1000, &mut budget, |d| {
                    if admit.matches(&*d) {
                        docs.push(d);
                    }
                    Flow::More
                })
                .await?;
            }
            (Some(stream), _) => {
                let pos = q.position.as_ref();
                let reverse = stream.descending != pos.is_some_and(|p| p.before);
                let beyond = |d: &Value| match pos {
                    None => true,
                    Some(p) if p.before => admit.against(d, p) == Ordering::Less,
                    Some(p) => admit.against(d, p) == Ordering::Greater,
                };
                let need = q.skip.saturating_add(q.limit).saturating_add(1);
                let ranges = plan.ranges(|r| r.cut_at(stream, pos, reverse));
                let mut boundary: Option<Option<Value>> = None;
                // The directory groups ties by its (possibly cut) sort key.
                let sorted = matches!(plan.range.source.by, SkOrder::Sorted(_));
                let key_of = |d: &Value, path: &[String]| {
                    let v = group_value(d, path);
                    if sorted {
                        Some(Value::String(derived::sort_key(v.as_ref())))
                    } else {
                        v
                    }
                };
                let group = stream.group.as_deref();
                self.read_ranges(&ranges, reverse, need + 1, &mut budget, |d| {
                    if let (Some(b), Some(path)) = (&boundary, group) {
                        // Complete the last group of ties, then stop.
                        if key_of(&d, path) != *b {
                            return Flow::Stop;
                        }
                    }
                    if admit.matches(&*d) && beyond(&d) {
                        docs.push(d);
                        if docs.len() >= need && boundary.is_none() {
                            match group {
                                None => return Flow::Stop,
                                Some(path) => {
                                    boundary = docs.last().map(|l| key_of(l, path));
                                }
                            }
                        }
                    }
                    if boundary.is_some() {
                        Flow::Ties
                    } else {
                        Flow::More
                    }
                })
                .await?;
                if let Some(p) = pos {
                    // Is there a match on the other side of the cursor?
                    let back = plan.ranges(|r| r.cut_at(stream, pos, !reverse));
                    let mut probe_budget = Budget::new(kind, 1000, String::new());
                    let seen = self
                        .read_ranges(&back, !reverse, 2, &mut probe_budget, |d| {
                            let side = admit.against(&*d, p);
                            let other = if p.before {
                                side != Ordering::Less
                            } else {
                                side != Ordering::Greater
                            };
                            probe_found = other && admit.matches(&*d);
                            if probe_found {
                                Flow::Stop
                            } else {
                                Flow::More
                            }
                        })
                        .await;
                    // Past its own small bound the probe assumes there is one.
                    if matches!(seen, Err(StoreError::TooLarge { .. })) {
                        probe_found = true;
                    } else {
                        seen?;
                    }
                }
            }
        }
        // Creation order, as the evaluation expects of its input.
        docs.sort_by(|a, b| id_of(a).cmp(id_of(b)));
        let index = Index::new(docs);
        let r = eval::run(&index, q, q.search_fields);
        let mut page = ListPage {
            data: r
                .page
                .into_iter()
                .cloned()
                .map(super::Item::Parsed)
                .collect(),
            total: q.want_total.then_some(counted.unwrap_or(r.total)),
            has_prev: r.has_prev,
            has_next: r.has_next,
        };
        if let (Some(p), Some(_)) = (&q.position, &plan.stream) {
            let nonempty = !page.data.is_empty();
            let other_side = (probe_found || q.skip > 0) && nonempty;
            if p.before {
                page.has_next = other_side;
            } else {
                page.has_prev = other_side;
            }
        }
        Ok(page)
    }

    /// Items lists have read so far: entries, postings, objects, counters.
    pub fn items_read(&self) -> u64 {
        self.items.load(AtomicOrdering::Relaxed)
    }

    /// Items transactions have written so far.
    pub fn items_written(&self) -> u64 {
        self.written.load(AtomicOrdering::Relaxed)
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The kinds it was made with.
    pub fn kinds(&self) -> Kinds {
        self.kinds
    }

    /// The objects with these ids in partition `objects`, in this order (those
    /// gone or expired left out); strongly consistent `BatchGetItem`s.
    async fn fetch_docs(&self, objects: &str, ids: &[String]) -> StoreResult<Vec<Doc>> {
        let keys: Vec<(String, String)> = ids
            .iter()
            .map(|id| (objects.to_string(), id.clone()))
            .collect();
        let mut found = self.batch_get(&keys).await?;
        let mut out = Vec::with_capacity(ids.len());
        for key in &keys {
            if let Some(item) = found.remove(key) {
                out.push(doc_of(&item)?);
            }
        }
        Ok(out)
    }

    /// The live items at these keys (`PK`, `SK`), by key (those absent or
    /// expired left out): strongly consistent `BatchGetItem`s of up to 100
    /// keys, unprocessed keys asked again with a back-off.
    async fn batch_get(
        &self,
        keys: &[(String, String)],
    ) -> StoreResult<HashMap<(String, String), Item>> {
        let mut found = HashMap::with_capacity(keys.len());
        let now_secs = crate::time::now_ms() / 1000;
        let mut unique: Vec<&(String, String)> = keys.iter().collect();
        unique.sort();
        unique.dedup();
        for chunk in unique.chunks(100) {
            let mut keys: Vec<Item> = chunk
                .iter()
                .map(|(pk, sk)| {
                    HashMap::from([
                        ("PK".to_string(), s(pk.as_str())),
                        ("SK".to_string(), s(sk.as_str())),
                    ])
                })
                .collect();
            let mut tries = 0u32;
            while !keys.is_empty() {
                let ka = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut keys)))
                    .consistent_read(true)
                    .build()
                    .map_err(backend)?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, ka)
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send()
                    .await
                    .map_err(backend)?;
                for c in out.consumed_capacity() {
                    self.count(Some(c), false);
                }
                if let Some(items) = out.responses.as_ref().and_then(|r| r.get(&self.table)) {
                    self.items
                        .fetch_add(items.len() as u64, AtomicOrdering::Relaxed);
                    for item in items {
                        if expired(item, now_secs) {
                            continue;
                        }
                        if let (Some(pk), Some(sk)) = (str_attr(item, "PK"), str_attr(item, "SK")) {
                            found.insert((pk, sk), item.clone());
                        }
                    }
                }
                if let Some(rest) = out.unprocessed_keys.and_then(|mut u| u.remove(&self.table)) {
                    keys = rest.keys;
                    if !keys.is_empty() {
                        tries += 1;
                        if tries > 8 {
                            return Err(StoreError::Backend(
                                "BatchGetItem left keys unprocessed after 8 tries".into(),
                            ));
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(20 << tries.min(5)))
                            .await;
                    }
                }
            }
        }
        Ok(found)
    }

    /// The ids in a postings partition, in id order, each counted against
    /// `budget`.
    async fn posting_ids(&self, range: &Range, budget: &mut Budget) -> StoreResult<Vec<String>> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let (live, next) = self.query_page(range, false, 1000, start).await?;
            for item in &live {
                budget.take()?;
                out.extend(str_attr(item, "id"));
            }
            match next {
                Some(k) => start = Some(k),
                None => return Ok(out),
            }
        }
    }

    /// The candidates of a search: the objects in any of the postings
    /// (`Any`, when the whole result is needed: a total, relevance, another
    /// order), or in the shortest (`All`: the phrase words' rarest).
    async fn search_candidates(
        &self,
        tenant: &str,
        kind: &str,
        postings: &Postings,
        budget: &mut Budget,
    ) -> StoreResult<Vec<Doc>> {
        // A word's whole postings partition, in id order.
        let whole = |stem: &String| Range {
            source: Source::entries(
                tenant,
                kind,
                derived::posting_pk(tenant, kind, stem),
                SkOrder::Id { prefix: None },
            ),
            lo: None,
            hi: None,
        };
        let mut ids: Vec<String> = match postings {
            Postings::Any(stems) => {
                let mut all = Vec::new();
                for st in stems {
                    all.append(&mut self.posting_ids(&whole(st), budget).await?);
                }
                all
            }
            Postings::All(stems) => {
                // Read the lists side by side, a page of each in turn, each
                // page larger, until one is whole: that (rarest) list's
                // objects are the candidates, found after reading about as
                // far into every list as the rarest is long.
                let mut parts: Vec<(Range, Vec<String>, Option<Item>)> = stems
                    .iter()
                    .map(|st| (whole(st), Vec::new(), None))
                    .collect();
                let mut size = 100usize;
                'lists: loop {
                    for (range, ids, start) in parts.iter_mut() {
                        let (live, next) =
                            self.query_page(range, false, size, start.take()).await?;
                        for item in &live {
                            budget.take()?;
                            if let Some(id) = str_attr(item, "id") {
                                ids.push(id);
                            }
                        }
                        if next.is_none() {
                            break 'lists std::mem::take(ids);
                        }
                        *start = next;
                    }
                    size = (size * 4).min(1000);
                }
            }
        };
        ids.sort();
        ids.dedup();
        let objects = obj_pk(tenant, kind);
        self.fetch_docs(&objects, &ids).await
    }

    /// A counter's value: the sum of its shards (strongly consistent).
    async fn counter(&self, tenant: &str, kind: &str, key: &str) -> StoreResult<usize> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk AND begins_with(SK, :key)")
            .expression_attribute_values(":pk", s(derived::counter_pk(tenant, kind)))
            .expression_attribute_values(":key", s(format!("{key}{}", derived::SEP)))
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(backend)?;
        self.count(out.consumed_capacity(), false);
        self.items
            .fetch_add(out.items().len() as u64, AtomicOrdering::Relaxed);
        let mut total: i64 = 0;
        for item in out.items() {
            if let Some(AttributeValue::N(v)) = item.get("n") {
                total += v.parse::<i64>().unwrap_or(0);
            }
        }
        Ok(total.max(0) as usize)
    }

    /// The items that keep an object's entries and counters in step with a
    /// write: entries removed and added, counters moved (merged per item).
    fn derived_items(
        &self,
        tx: &WriteTx,
        before: &HashMap<(String, String), Option<Doc>>,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let mut entries_del: Vec<(String, String)> = Vec::new();
        let mut entries_put: Vec<(String, String, String, Option<i64>)> = Vec::new();
        // Per counter (its item key and count key): the shard this write
        // moves it on, and by how much. One shard per counter per write —
        // the first object's — whatever the number of objects: a counter is
        // the sum of its shards, so any shard holds a move as well as
        // another, and a batch of ten new deliveries updates one counter
        // item instead of up to eight.
        let mut counts: BTreeMap<(String, String), (u64, i64)> = BTreeMap::new();
        for op in &tx.ops {
            let (tenant, kind, id, new_doc) = match op {
                WriteOp::Put {
                    tenant,
                    kind,
                    id,
                    doc,
                    ..
                } => (tenant, *kind, id, Some(doc)),
                WriteOp::Delete {
                    tenant, kind, id, ..
                } => (tenant, *kind, id, None),
                _ => continue,
            };
            let Some(spec) = self.kinds.get(kind).filter(|k| k.derives()) else {
                continue;
            };
            let old = before
                .get(&(obj_pk(tenant, kind), id.clone()))
                .cloned()
                .flatten();
            let was = old
                .as_deref()
                .map(|d| derived::derive(spec, tenant, d))
                .unwrap_or_default();
            let now: Derived = new_doc
                .map(|d| derived::derive(spec, tenant, d))
                .unwrap_or_default();
            let expires = new_doc.and_then(|d| self.expires_at(kind, d));
            for e in was.entries.difference(&now.entries) {
                entries_del.push(e.clone());
            }
            for (pk, sk) in now.entries.difference(&was.entries) {
                entries_put.push((pk.clone(), sk.clone(), id.clone(), expires));
            }
            let cpk = derived::counter_pk(tenant, kind);
            let moves = was
                .counts
                .difference(&now.counts)
                .map(|k| (k, -1))
                .chain(now.counts.difference(&was.counts).map(|k| (k, 1)));
            for (k, delta) in moves {
                counts
                    .entry((cpk.clone(), k.clone()))
                    .or_insert_with(|| (derived::shard_for(spec, k, id), 0))
                    .1 += delta;
            }
        }
        let table = self.table.as_str();
        let b = || TransactWriteItem::builder();
        let mut out = Vec::new();
        for (pk, sk) in entries_del {
            let del = Delete::builder()
                .table_name(table)
                .key("PK", s(pk))
                .key("SK", s(sk))
                .build()
                .map_err(backend)?;
            out.push(b().delete(del).build());
        }
        for (pk, sk, id, expires) in entries_put {
            let mut put = Put::builder()
                .table_name(table)
                .item("PK", s(pk))
                .item("SK", s(sk))
                .item("id", s(id));
            if let Some(e) = expires {
                put = put.item("expiresAt", n(e));
            }
            out.push(b().put(put.build().map_err(backend)?).build());
        }
        for ((pk, key), (shard, delta)) in counts {
            if delta == 0 {
                continue;
            }
            let up = Update::builder()
                .table_name(table)
                .key("PK", s(pk))
                .key("SK", s(derived::counter_sk(&key, shard)))
                .update_expression("ADD n :d")
                .expression_attribute_values(":d", n(delta))
                .build()
                .map_err(backend)?;
            out.push(b().update(up).build());
        }
        Ok(out)
    }

    /// `WriteOp::Unreferenced` as a condition on the count of referrers
    /// (kept in shard 0 in the referrers' own writes): absent or zero. A
    /// field whose lookup does not guard gives no item (never the case for
    /// a `restrict` reference of a kind without a TTL).
    fn unreferenced_check(&self, op: &WriteOp) -> Result<Option<TransactWriteItem>, StoreError> {
        let WriteOp::Unreferenced {
            tenant,
            kind,
            field,
            value,
        } = op
        else {
            return Ok(None);
        };
        let counted = self
            .kinds
            .get(kind)
            .is_some_and(|k| k.lookups.iter().any(|l| l.field == *field && l.guards));
        if !counted {
            return Ok(None);
        }
        let key = derived::count_key(field, value);
        let check = ConditionCheck::builder()
            .table_name(self.table.as_str())
            .key("PK", s(derived::counter_pk(tenant, kind)))
            .key("SK", s(derived::counter_sk(&key, 0)))
            .condition_expression("attribute_not_exists(n) OR n <= :z")
            .expression_attribute_values(":z", n(0))
            .build()
            .map_err(backend)?;
        Ok(Some(
            TransactWriteItem::builder().condition_check(check).build(),
        ))
    }

    /// The TTL of an object of an expiring kind (seconds).
    fn expires_at(&self, kind: &str, doc: &Value) -> Option<i64> {
        let ttl = self.kinds.ttl_ms(kind)? / 1000;
        let created = doc
            .get("createdAt")
            .and_then(Value::as_str)
            .and_then(crate::time::parse_timestamp)
            .unwrap_or_else(crate::time::now_ms);
        Some(created / 1000 + ttl)
    }

    /// The stored objects a write changes, read (strongly) before it so their
    /// derived items can be removed: each at the version the write expects,
    /// else the write is a conflict now. A write without an expected version
    /// is made conditional on the one read (`expect` returned per op).
    async fn read_before(
        &self,
        tx: &WriteTx,
    ) -> StoreResult<(HashMap<(String, String), Option<Doc>>, Vec<Option<u64>>)> {
        let mut before = HashMap::new();
        let mut read_versions = vec![None; tx.ops.len()];
        for (i, op) in tx.ops.iter().enumerate() {
            let (tenant, kind, id, expect) = match op {
                WriteOp::Put {
                    tenant,
                    kind,
                    id,
                    expect: expect @ Expect::Version(_),
                    ..
                } => (tenant, *kind, id, *expect),
                WriteOp::Delete {
                    tenant,
                    kind,
                    id,
                    expect,
                } => (tenant, *kind, id, *expect),
                _ => continue,
            };
            if !self.kinds.get(kind).is_some_and(|k| k.derives()) {
                continue;
            }
            let doc = self.get(tenant, kind, id).await?;
            let version = doc.as_deref().map(version_of);
            if let (Expect::Version(v), Some(found)) = (expect, version) {
                if v != found {
                    return Err(StoreError::Conflict(conflict_for(op)));
                }
            }
            if matches!(expect, Expect::Version(_)) && doc.is_none() {
                return Err(StoreError::Conflict(conflict_for(op)));
            }
            read_versions[i] = version;
            before.insert((obj_pk(tenant, kind), id.clone()), doc);
        }
        Ok((before, read_versions))
    }

    /// The transaction item of an op; `read` is the version `read_before`
    /// found (a delete without an expected version is made conditional on
    /// it, so the entries removed are the ones it had).
    fn item_for(&self, op: &WriteOp, read: Option<u64>) -> Result<TransactWriteItem, StoreError> {
        let table = self.table.as_str();
        let b = TransactWriteItem::builder();
        Ok(match op {
            WriteOp::Put {
                tenant,
                kind,
                id,
                doc,
                expect,
            } => {
                let mut put = Put::builder()
                    .table_name(table)
                    .set_item(Some(self.object_item(tenant, kind, id, doc)));
                put = match expect {
                    // An item past its TTL but not yet deleted counts as absent.
                    Expect::Absent => put
                        .condition_expression("attribute_not_exists(PK) OR expiresAt <= :now")
                        .expression_attribute_values(":now", n(crate::time::now_ms() / 1000)),
                    Expect::Version(v) => put
                        .condition_expression("version = :v")
                        .expression_attribute_values(":v", n(*v as i64)),
                };
                b.put(put.build().map_err(backend)?).build()
            }
            WriteOp::Delete {
                tenant,
                kind,
                id,
                expect,
            } => {
                let mut del = Delete::builder()
                    .table_name(table)
                    .key("PK", s(obj_pk(tenant, kind)))
                    .key("SK", s(id.clone()));
                let derives = self.kinds.get(kind).is_some_and(|k| k.derives());
                match (*expect, read) {
                    (Expect::Version(v), _) | (_, Some(v)) => {
                        del = del
                            .condition_expression("version = :v")
                            .expression_attribute_values(":v", n(v as i64));
                    }
                    (Expect::Absent, None) if derives => {
                        del = del.condition_expression("attribute_not_exists(PK)");
                    }
                    _ => {}
                }
                b.delete(del.build().map_err(backend)?).build()
            }
            WriteOp::Check {
                tenant,
                kind,
                id,
                expect,
            } => {
                let check = ConditionCheck::builder()
                    .table_name(table)
                    .key("PK", s(obj_pk(tenant, kind)))
                    .key("SK", s(id.clone()));
                let check = match expect {
                    Expect::Absent => check.condition_expression("attribute_not_exists(PK)"),
                    Expect::Version(v) => check
                        .condition_expression("version = :v")
                        .expression_attribute_values(":v", n(*v as i64)),
                };
                b.condition_check(check.build().map_err(backend)?).build()
            }
            WriteOp::ClaimUnique {
                scope,
                value,
                target,
            } => b
                .put(
                    Put::builder()
                        .table_name(table)
                        .set_item(Some(claim_item(scope, value, target)))
                        .condition_expression("attribute_not_exists(PK) OR id = :id")
                        .expression_attribute_values(":id", s(target.id.clone()))
                        .build()
                        .map_err(backend)?,
                )
                .build(),
            // Written by commit as a condition on a counter.
            WriteOp::Unreferenced { .. } => {
                return Err(StoreError::Backend(
                    "an Unreferenced condition has no item of its own".into(),
                ))
            }
            WriteOp::ReleaseUnique { scope, value } => b
                .delete(
                    Delete::builder()
                        .table_name(table)
                        .key("PK", s(format!("U#{scope}")))
                        .key("SK", s(claim_key(value)))
                        .build()
                        .map_err(backend)?,
                )
                .build(),
        })
    }
}

fn conflict_for(op: &WriteOp) -> Conflict {
    match op {
        WriteOp::Put {
            kind,
            id,
            expect: Expect::Absent,
            ..
        } => Conflict::Exists {
            kind: kind.to_string(),
            id: id.clone(),
        },
        WriteOp::Put { kind, id, .. }
        | WriteOp::Delete { kind, id, .. }
        | WriteOp::Check { kind, id, .. } => Conflict::Version {
            kind: kind.to_string(),
            id: id.clone(),
        },
        WriteOp::Unreferenced { kind, value, .. } => Conflict::Version {
            kind: kind.to_string(),
            id: value.clone(),
        },
        WriteOp::ClaimUnique { scope, value, .. } | WriteOp::ReleaseUnique { scope, value } => {
            Conflict::Unique {
                scope: scope.clone(),
                value: value.clone(),
            }
        }
    }
}

impl DynamoStore {
    /// Whether `tx` is already in the table: a write that puts an object
    /// carries a document no other write makes (an event with a new id, or
    /// an object with its new `version` and `updatedAt`), so finding that
    /// document, read consistently, means this very write was applied
    /// (transactions are all or nothing). An ambiguous write (applied, reply
    /// lost, retried) is resolved by this read, never by writing twice.
    async fn applied(&self, tx: &WriteTx) -> bool {
        let witness = tx
            .ops
            .iter()
            .filter_map(|op| match op {
                WriteOp::Put {
                    tenant,
                    kind,
                    id,
                    doc,
                    ..
                } => Some((tenant, *kind, id, doc)),
                _ => None,
            })
            .find(|(_, kind, _, doc)| {
                *kind == crate::webhooks::EVENTS_KIND || doc.get("updatedAt").is_some()
            });
        let Some((tenant, kind, id, doc)) = witness else {
            return false;
        };
        match self.get(tenant, kind, id).await {
            Ok(Some(stored)) => *stored == *doc,
            _ => false,
        }
    }
}

#[async_trait]
impl Store for DynamoStore {
    async fn get(&self, tenant: &str, kind: &str, id: &str) -> StoreResult<Option<Doc>> {
        if id.is_empty() || id.len() > MAX_KEY_BYTES {
            // No such key is ever written (ids are ours), and DynamoDB
            // refuses empty or over-long key values.
            return Ok(None);
        }
        match self.get_item(obj_pk(tenant, kind), id).await? {
            Some(item) => {
                if expired(&item, crate::time::now_ms() / 1000) {
                    return Ok(None);
                }
                Ok(Some(doc_of(&item)?))
            }
            None => Ok(None),
        }
    }

    async fn get_many(&self, keys: &[DocKey]) -> StoreResult<Vec<Option<DocJson>>> {
        let wanted: Vec<Option<(String, String)>> = keys
            .iter()
            .map(|k| {
                (!k.id.is_empty() && k.id.len() <= MAX_KEY_BYTES)
                    .then(|| (obj_pk(&k.tenant, k.kind), k.id.clone()))
            })
            .collect();
        let asked: Vec<(String, String)> = wanted.iter().flatten().cloned().collect();
        let found = self.batch_get(&asked).await?;
        wanted
            .iter()
            .map(|k| match k.as_ref().and_then(|k| found.get(k)) {
                Some(item) => doc_of(item).map(|d| Some(DocJson::new(d))),
                None => Ok(None),
            })
            .collect()
    }

    async fn list(&self, tenant: &str, kind: &str, query: &ListQuery) -> StoreResult<ListPage> {
        self.plan_and_list(tenant, kind, query).await
    }

    async fn all(&self, tenant: &str, kind: &str) -> StoreResult<Vec<Doc>> {
        self.read_collection(tenant, kind, MAX_ALL_ITEMS).await
    }

    async fn find_unique(&self, scope: &str, value: &str) -> StoreResult<Option<UniqueTarget>> {
        let Some(item) = self
            .get_item(format!("U#{scope}"), &claim_key(value))
            .await?
        else {
            return Ok(None);
        };
        let get = |k: &str| match item.get(k) {
            Some(AttributeValue::S(v)) => Ok(v.clone()),
            _ => Err(StoreError::Backend(format!("unique claim without `{k}`"))),
        };
        Ok(Some(UniqueTarget {
            tenant: get("tenant")?,
            kind: get("kind")?,
            id: get("id")?,
        }))
    }

    async fn commit(&self, tx: WriteTx) -> StoreResult<()> {
        if tx.ops.is_empty() {
            return Ok(());
        }
        let (before, reads) = self.read_before(&tx).await?;
        // Each item with the op it is for (a cancellation reason names an
        // item by its position); derived items are for none.
        let mut items = Vec::with_capacity(tx.ops.len());
        let mut owners: Vec<Option<&WriteOp>> = Vec::with_capacity(tx.ops.len());
        for (op, read) in tx.ops.iter().zip(&reads) {
            if !matches!(op, WriteOp::Unreferenced { .. }) {
                items.push(self.item_for(op, *read)?);
                owners.push(Some(op));
            }
        }
        // The token makes the SDK's retries of this call idempotent on
        // DynamoDB (a retry after a reply was lost does not apply it twice).
        let token = crate::ids::ulid();
        let derived = self.derived_items(&tx, &before)?;
        owners.extend(derived.iter().map(|_| None));
        items.extend(derived);
        for op in &tx.ops {
            if let Some(check) = self.unreferenced_check(op)? {
                items.push(check);
                owners.push(Some(op));
            }
        }
        let n_items = items.len() as u64;
        if items.len() > MAX_TRANSACTION_ITEMS {
            return Err(StoreError::Backend(format!(
                "a transaction of {} items exceeds DynamoDB's {MAX_TRANSACTION_ITEMS}",
                items.len()
            )));
        }
        let sent = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .client_request_token(token)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        let result = match sent {
            Ok(out) => {
                for c in out.consumed_capacity() {
                    self.count(Some(c), true);
                }
                self.written.fetch_add(n_items, AtomicOrdering::Relaxed);
                Ok(())
            }
            Err(SdkError::ServiceError(e)) => match e.into_err() {
                TransactWriteItemsError::TransactionCanceledException(c) => {
                    let reasons = c.cancellation_reasons();
                    if let Some(i) = reasons
                        .iter()
                        .position(|r| r.code() == Some("ConditionalCheckFailed"))
                    {
                        if let Some(op) = owners.get(i).copied().flatten() {
                            // A retry of a write that was applied but whose
                            // reply was lost fails its own conditions: read
                            // back, and count it done if it is there.
                            if self.applied(&tx).await {
                                return Ok(());
                            }
                            return Err(StoreError::Conflict(conflict_for(op)));
                        }
                    }
                    if reasons
                        .iter()
                        .any(|r| r.code() == Some("TransactionConflict"))
                    {
                        return Err(StoreError::Busy);
                    }
                    Err(StoreError::Backend(format!(
                        "transaction cancelled: {:?}",
                        reasons.iter().map(|r| r.code()).collect::<Vec<_>>()
                    )))
                }
                TransactWriteItemsError::TransactionInProgressException(_) => Err(StoreError::Busy),
                other => Err(backend(other)),
            },
            Err(e) => Err(backend(e)),
        };
        match result {
            // Every attempt failed as DynamoDB failing does (throttled, a
            // 5xx, a timeout), but one may have been applied before its
            // answer was lost: read back (briefly: DynamoDB may still be
            // failing), and answer success if it was. Otherwise the 503.
            Err(StoreError::Unavailable(msg)) => {
                match tokio::time::timeout(READ_BACK, self.applied(&tx)).await {
                    Ok(true) => Ok(()),
                    _ => Err(StoreError::Unavailable(msg)),
                }
            }
            other => other,
        }
    }

    /// Events travel by DynamoDB Streams, not by polling.
    async fn pending_events(&self, _limit: usize) -> StoreResult<Vec<EventRecord>> {
        Ok(Vec::new())
    }

    async fn mark_dispatched(&self, _ids: &[String]) -> StoreResult<()> {
        Ok(())
    }

    fn loads_in_bulk(&self) -> bool {
        true
    }

    /// The end state of `txs` as batched puts: each object still there at
    /// the end (events included, as the stream must carry them), its index
    /// entries, the unique claims still held, and each counter's total in
    /// its shard 0. No conditions: the tenants are new, nothing else writes
    /// to them yet.
    async fn load_fresh(&self, txs: Vec<WriteTx>) -> StoreResult<()> {
        type Obj = (String, &'static str, String, Value);
        let mut objects: BTreeMap<(String, String), Option<Obj>> = BTreeMap::new();
        let mut claims: BTreeMap<(String, String), Option<UniqueTarget>> = BTreeMap::new();
        for op in txs.into_iter().flat_map(|tx| tx.ops) {
            match op {
                WriteOp::Put {
                    tenant,
                    kind,
                    id,
                    doc,
                    ..
                } => {
                    let key = (obj_pk(&tenant, kind), id.clone());
                    objects.insert(key, Some((tenant, kind, id, doc)));
                }
                WriteOp::Delete {
                    tenant, kind, id, ..
                } => {
                    objects.insert((obj_pk(&tenant, kind), id), None);
                }
                WriteOp::ClaimUnique {
                    scope,
                    value,
                    target,
                } => {
                    claims.insert((scope, value), Some(target));
                }
                WriteOp::ReleaseUnique { scope, value } => {
                    claims.insert((scope, value), None);
                }
                WriteOp::Check { .. } | WriteOp::Unreferenced { .. } => {}
            }
        }
        let mut items = Vec::new();
        let mut counts: BTreeMap<(String, String), i64> = BTreeMap::new();
        for (tenant, kind, id, doc) in objects.into_values().flatten() {
            let item = self.object_item(&tenant, kind, &id, &doc);
            if let Some(spec) = self.kinds.get(kind).filter(|k| k.derives()) {
                let derived = derived::derive(spec, &tenant, &doc);
                for (pk, sk) in derived.entries {
                    let mut put = HashMap::from([
                        ("PK".to_string(), s(pk)),
                        ("SK".to_string(), s(sk)),
                        ("id".to_string(), s(id.clone())),
                    ]);
                    if let Some(e) = item.get("expiresAt") {
                        put.insert("expiresAt".into(), e.clone());
                    }
                    items.push(put);
                }
                for key in derived.counts {
                    *counts
                        .entry((derived::counter_pk(&tenant, kind), key))
                        .or_default() += 1;
                }
            }
            items.push(item);
        }
        for ((pk, key), total) in counts {
            items.push(HashMap::from([
                ("PK".to_string(), s(pk)),
                ("SK".to_string(), s(derived::counter_sk(&key, 0))),
                ("n".to_string(), n(total)),
            ]));
        }
        for ((scope, value), target) in claims {
            if let Some(t) = target {
                items.push(claim_item(&scope, &value, &t));
            }
        }
        let n_items = items.len() as u64;
        self.batch_put(items).await?;
        self.written.fetch_add(n_items, AtomicOrdering::Relaxed);
        Ok(())
    }
}

/// A client for a local endpoint (DynamoDB Local, moto) with static test
/// credentials: no credential chain, no instance metadata.
pub async fn local_client(endpoint: &str, region: &str) -> Client {
    Client::new(&crate::aws::local_config(endpoint, region).await)
}

/// What `DynamoStore::backfill` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Backfill {
    /// Objects read (this run; a resumed run starts where the last stopped).
    pub objects: u64,
    /// Entries written (puts are idempotent: an entry already there is
    /// written again unchanged).
    pub entries: u64,
    /// Counters set.
    pub counters: u64,
    /// The entries pass had already finished in an earlier run.
    pub resumed: bool,
}

const BACKFILL_PK: &str = "#backfill";

impl DynamoStore {
    /// Give a table made by an earlier version its lookup entries,
    /// directory, postings and counters: a one-time, resumable, idempotent
    /// pass. Entries are put page by page of a `Scan` of the objects, the
    /// position kept in a checkpoint item (`#backfill`) after each page, so
    /// a run stopped part-way resumes there. Counters are then recomputed
    /// from a count of every object and set (not added), so running it again
    /// gives the same values. Writes made during the counting pass may be
    /// counted twice or not at all: run it before the new version takes
    /// traffic (or again after).
    pub async fn backfill(&self, mut progress: impl FnMut(&str)) -> StoreResult<Backfill> {
        let mut report = Backfill::default();
        let checkpoint = self.get_item(BACKFILL_PK.into(), "entries").await?;
        let done = checkpoint
            .as_ref()
            .is_some_and(|i| matches!(i.get("done"), Some(AttributeValue::Bool(true))));
        let mut start: Option<Item> = checkpoint.as_ref().and_then(|i| {
            let pk = str_attr(i, "nextPK")?;
            let sk = str_attr(i, "nextSK")?;
            Some(HashMap::from([
                ("PK".to_string(), s(pk)),
                ("SK".to_string(), s(sk)),
            ]))
        });
        report.resumed = done;
        if !done {
            loop {
                let page = self
                    .client
                    .scan()
                    .table_name(&self.table)
                    .filter_expression("begins_with(PK, :t)")
                    .expression_attribute_values(":t", s("T#"))
                    .consistent_read(true)
                    .limit(500)
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(backend)?;
                let mut puts = Vec::new();
                for item in page.items() {
                    let Some((_, _, doc, d)) = self.derived_of(item)? else {
                        continue;
                    };
                    report.objects += 1;
                    let expires = item.get("expiresAt").cloned();
                    for (pk, sk) in d.entries {
                        let mut put = HashMap::from([
                            ("PK".to_string(), s(pk)),
                            ("SK".to_string(), s(sk)),
                            ("id".to_string(), s(id_of(&doc))),
                        ]);
                        if let Some(e) = &expires {
                            put.insert("expiresAt".into(), e.clone());
                        }
                        puts.push(put);
                    }
                }
                report.entries += puts.len() as u64;
                self.batch_put(puts).await?;
                let next = page.last_evaluated_key.filter(|k| !k.is_empty());
                let mut mark = Put::builder()
                    .table_name(&self.table)
                    .item("PK", s(BACKFILL_PK))
                    .item("SK", s("entries"))
                    .item("done", AttributeValue::Bool(next.is_none()));
                if let Some(k) = &next {
                    for (attr, name) in [("PK", "nextPK"), ("SK", "nextSK")] {
                        if let Some(v) = k.get(attr) {
                            mark = mark.item(name, v.clone());
                        }
                    }
                }
                let mark = mark.build().map_err(backend)?;
                self.client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(mark.item))
                    .send()
                    .await
                    .map_err(backend)?;
                progress(&format!(
                    "entries: {} objects read, {} entries written",
                    report.objects, report.entries
                ));
                match next {
                    Some(k) => start = Some(k),
                    None => break,
                }
            }
        }
        // Counters: count every object, then set each count (shard 0 holds
        // it, the others 0), and zero counters no object is in any more.
        let mut counts: BTreeMap<(String, String), i64> = BTreeMap::new();
        let mut existing: Vec<(String, String)> = Vec::new();
        let mut start: Option<Item> = None;
        let now_secs = crate::time::now_ms() / 1000;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(PK, :t) OR begins_with(PK, :c)")
                .expression_attribute_values(":t", s("T#"))
                .expression_attribute_values(":c", s("C#"))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(backend)?;
            for item in page.items() {
                let pk = str_attr(item, "PK").unwrap_or_default();
                if pk.starts_with("C#") {
                    existing.push((pk, str_attr(item, "SK").unwrap_or_default()));
                    continue;
                }
                if expired(item, now_secs) {
                    continue;
                }
                let Some((tenant, kind, _, d)) = self.derived_of(item)? else {
                    continue;
                };
                for key in d.counts {
                    *counts
                        .entry((derived::counter_pk(&tenant, &kind), key))
                        .or_default() += 1;
                }
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        let mut puts = Vec::new();
        let mut set: std::collections::BTreeSet<(String, String)> = Default::default();
        for ((pk, key), total) in &counts {
            for shard in 0..derived::SHARDS {
                let sk = derived::counter_sk(key, shard);
                set.insert((pk.clone(), sk.clone()));
                let value = if shard == 0 { *total } else { 0 };
                puts.push(HashMap::from([
                    ("PK".to_string(), s(pk.clone())),
                    ("SK".to_string(), s(sk)),
                    ("n".to_string(), n(value)),
                ]));
            }
        }
        for (pk, sk) in existing {
            if !set.contains(&(pk.clone(), sk.clone())) {
                puts.push(HashMap::from([
                    ("PK".to_string(), s(pk)),
                    ("SK".to_string(), s(sk)),
                    ("n".to_string(), n(0)),
                ]));
            }
        }
        report.counters = counts.len() as u64;
        self.batch_put(puts).await?;
        progress(&format!("counters: {} set", report.counters));
        Ok(report)
    }

    /// Put items 25 at a time, retrying what DynamoDB leaves unprocessed.
    async fn batch_put(&self, items: Vec<Item>) -> StoreResult<()> {
        use futures::stream::TryStreamExt;
        // Batches of 25 (BatchWriteItem's most), a few in flight at once.
        futures::stream::iter(items.chunks(25).map(Ok))
            .try_for_each_concurrent(4, |chunk| self.batch_put_one(chunk))
            .await
    }

    async fn batch_put_one(&self, chunk: &[Item]) -> StoreResult<()> {
        use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
        let mut reqs: Vec<WriteRequest> = chunk
            .iter()
            .map(|i| {
                PutRequest::builder()
                    .set_item(Some(i.clone()))
                    .build()
                    .map(|p| WriteRequest::builder().put_request(p).build())
                    .map_err(backend)
            })
            .collect::<Result<_, _>>()?;
        let mut tries = 0u32;
        while !reqs.is_empty() {
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.table, std::mem::take(&mut reqs))
                .send()
                .await
                .map_err(backend)?;
            if let Some(rest) = out
                .unprocessed_items
                .and_then(|mut u| u.remove(&self.table))
            {
                reqs = rest;
                if !reqs.is_empty() {
                    tries += 1;
                    if tries > 10 {
                        return Err(StoreError::Backend(
                            "BatchWriteItem left items unprocessed after 10 tries".into(),
                        ));
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20 << tries.min(6))).await;
                }
            }
        }
        Ok(())
    }
}

/// What `DynamoStore::audit_derived` found: index entries and counters
/// that do not agree with the objects.
#[derive(Debug, Default, Clone)]
pub struct DerivedAudit {
    /// Objects read.
    pub objects: u64,
    /// Entries read (lookups, directory, postings).
    pub entries: u64,
    /// Counts compared (one per counter key, over its shards).
    pub counters: u64,
    /// An entry an object needs and the table lacks: (partition, sort key).
    pub missing: Vec<(String, String)>,
    /// An entry no object needs: (partition, sort key).
    pub stray: Vec<(String, String)>,
    /// A count that is not the number of its objects: (counter partition,
    /// key, stored sum of its shards, objects counted).
    pub miscounted: Vec<(String, String, i64, i64)>,
}

impl DynamoStore {
    /// An object item's tenant, kind and what it derives (`None` for an item
    /// that is not an object of a kind with entries or counters).
    fn derived_of(&self, item: &Item) -> StoreResult<Option<(String, String, Doc, Derived)>> {
        let (Some(tenant), Some(kind)) = (str_attr(item, "tenant"), str_attr(item, "kind")) else {
            return Ok(None);
        };
        let Some(spec) = self.kinds.get(&kind).filter(|k| k.derives()) else {
            return Ok(None);
        };
        let doc = doc_of(item)?;
        let d = derived::derive(spec, &tenant, &doc);
        Ok(Some((tenant, kind, doc, d)))
    }

    /// Recompute every index entry and counter from the objects and compare
    /// with the table (`hub audit --table`): a `Scan` of the whole table, an
    /// operator's command (no function's role allows `Scan`). Items past
    /// their TTL that DynamoDB has not deleted yet count as gone.
    pub async fn audit_derived(&self) -> StoreResult<DerivedAudit> {
        use std::collections::BTreeSet;
        let now_secs = crate::time::now_ms() / 1000;
        let mut report = DerivedAudit::default();
        let mut expected: BTreeSet<(String, String)> = BTreeSet::new();
        let mut stored: BTreeSet<(String, String)> = BTreeSet::new();
        let mut counts: BTreeMap<(String, String), i64> = BTreeMap::new();
        let mut counted: BTreeMap<(String, String), i64> = BTreeMap::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(backend)?;
            for item in page.items() {
                if expired(item, now_secs) {
                    continue;
                }
                let pk = str_attr(item, "PK").unwrap_or_default();
                let sk = str_attr(item, "SK").unwrap_or_default();
                match pk.split('#').next().unwrap_or_default() {
                    "T" => {
                        let Some((tenant, kind, _, d)) = self.derived_of(item)? else {
                            continue;
                        };
                        report.objects += 1;
                        expected.extend(d.entries);
                        for key in d.counts {
                            *counted
                                .entry((derived::counter_pk(&tenant, &kind), key))
                                .or_default() += 1;
                        }
                    }
                    "X" | "O" | "S" => {
                        report.entries += 1;
                        stored.insert((pk, sk));
                    }
                    "C" => {
                        let key = sk
                            .rsplit_once(derived::SEP)
                            .map_or(sk.as_str(), |(k, _)| k)
                            .to_string();
                        let n = match item.get("n") {
                            Some(AttributeValue::N(v)) => v.parse::<i64>().unwrap_or(0),
                            _ => 0,
                        };
                        *counts.entry((pk, key)).or_default() += n;
                    }
                    _ => {}
                }
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        report.missing = expected.difference(&stored).cloned().collect();
        report.stray = stored.difference(&expected).cloned().collect();
        let keys: BTreeSet<&(String, String)> = counts.keys().chain(counted.keys()).collect();
        report.counters = keys.len() as u64;
        for k in keys {
            let have = counts.get(k).copied().unwrap_or(0);
            let want = counted.get(k).copied().unwrap_or(0);
            if have != want {
                report
                    .miscounted
                    .push((k.0.clone(), k.1.clone(), have, want));
            }
        }
        Ok(report)
    }
}

impl DynamoStore {
    /// Bulk-load objects as a version before the index entries wrote them:
    /// the object items only (`BatchWriteItem`, no events, no entries, no
    /// counters); `backfill` then derives the rest. For migrations, and for
    /// the tests and benchmarks of `backfill` and of lists at scale.
    pub async fn import(&self, tenant: &str, kind: &str, docs: &[Value]) -> StoreResult<()> {
        let items: Vec<Item> = docs
            .iter()
            .map(|doc| self.object_item(tenant, kind, id_of(doc), doc))
            .collect();
        self.batch_put(items).await
    }

    /// An object's item: its document, version, and the attributes the
    /// GSIs and the TTL read.
    fn object_item(&self, tenant: &str, kind: &str, id: &str, doc: &Value) -> Item {
        let version = doc.get("version").and_then(Value::as_i64).unwrap_or(1);
        let mut item = HashMap::from([
            ("PK".to_string(), s(obj_pk(tenant, kind))),
            ("SK".to_string(), s(id)),
            ("kind".to_string(), s(kind)),
            ("tenant".to_string(), s(tenant)),
            ("version".to_string(), n(version)),
            ("doc".to_string(), s(doc.to_string())),
        ]);
        if self.kinds.by_updated(kind) {
            let (_, pk, sk) = UPDATED_INDEX;
            item.insert(pk.into(), s(obj_pk(tenant, kind)));
            item.insert(sk.into(), s(ordered_key(doc, "updatedAt", id)));
        }
        if let Some(f) = self.kinds.ordered_by(kind) {
            let (_, pk, sk) = ORDERED_INDEX;
            item.insert(pk.into(), s(obj_pk(tenant, kind)));
            item.insert(sk.into(), s(ordered_key(doc, f, id)));
        }
        if let Some(e) = self.expires_at(kind, doc) {
            item.insert("expiresAt".into(), n(e));
        }
        item
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What outlasted the SDK's retries answers 503 (throttling, a 5xx, a
    /// timeout, a failed connection); anything else stays a 500.
    #[test]
    fn transient_errors_are_unavailable() {
        for text in [
            "ServiceError { source: ProvisionedThroughputExceededException(..) }",
            "ServiceError { source: ThrottlingException(..) }",
            "ServiceError { source: InternalServerError(..), raw: Response { status: StatusCode(500) } }",
            "TimeoutError(TimeoutError { source: .. })",
            "DispatchFailure(DispatchFailure { source: ConnectorError { kind: Io } })",
        ] {
            assert!(matches!(backend(text), StoreError::Unavailable(_)), "{text}");
        }
        for text in [
            "ServiceError { source: ValidationException(..) }",
            "ServiceError { source: ResourceNotFoundException(..) }",
        ] {
            assert!(matches!(backend(text), StoreError::Backend(_)), "{text}");
        }
    }
}
