//! The DynamoDB store: one table, keys `PK`/`SK`, three overloaded GSIs.
//!
//! - objects: `PK = T#{tenant}#{kind}` (tenant `org#mode`, or `org` for
//!   organization records), `SK = id`; attributes `doc` (the JSON document),
//!   `version`, `kind`, and for events `expiresAt` (TTL, 30 days). The tenant
//!   leads every partition key, so isolation is structural (and IAM
//!   `dynamodb:LeadingKeys` can enforce it). Ids are ULIDs whose time is the
//!   object's `createdAt`, so the base table also serves `createdAt` order
//!   and ranges, and `id` lookups and ranges.
//! - `GSI1`/`GSI2` (`G1PK`/`G1SK`, `G2PK`/`G2SK`): equality lookups on up to
//!   two fields per kind (`LOOKUPS`), `G·PK = T#{tenant}#{kind}#{field}={value}`,
//!   `G·SK = id`, so "this clinic's patients" or "this endpoint's deliveries"
//!   read only their own items, in creation order.
//! - `GSI3` (`G3PK`/`G3SK`): `G3PK = T#{tenant}#{kind}`,
//!   `G3SK = {updatedAt}#{id}`: lists sorted by, or ranged on, `updatedAt`
//!   (the sync query: `updatedAt[$gt]=…&$sort[updatedAt]=1`).
//! - uniqueness claims (names, key hashes: the auth lookup): `PK = U#{scope}`,
//!   `SK = value` → tenant, kind, id; read with `GetItem`.
//!
//! Every `WriteTx` is one `TransactWriteItems` with a condition per item
//! (absent, or at the version read). Events are items of kind `events`
//! written in the same transaction; DynamoDB Streams carries their inserts
//! to the fan-out Lambda, so there is no outbox to poll here.
//!
//! Lists never `Scan`. The planner picks the key or index that serves the
//! query: an equality lookup, `id`/`createdAt` ranges and order (base
//! table), `updatedAt` ranges and order (`GSI3`). When the source's order is
//! the query's order it reads only as far as the page needs (cursors carry
//! the last item's key position, from which the next page's key condition
//! starts; within a request pages follow `LastEvaluatedKey`). Otherwise
//! (another sort, relevance, `$total`) it reads the source's whole key range
//! and evaluates there. Either way a list reads at most `list_bound` items,
//! past which it is refused (400) with advice naming what the indexes serve.
//! The full filter is always evaluated on what is read, with the same code as
//! the embedded store, so the indexes only decide how much is read.
//! GSI reads are eventually consistent (DynamoDB offers nothing else there);
//! the base table is read with strong consistency.

use super::*;
use crate::query::{eval, index::Index, Filter, Op};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, ConsumedCapacity, Delete,
    GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType, Put,
    ReturnConsumedCapacity, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification, TransactWriteItem,
};
use aws_sdk_dynamodb::Client;
use std::cmp::Ordering;
use std::collections::HashMap;
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

/// The equality GSIs, as (index, partition attribute, sort attribute).
/// The equality GSIs, by slot: a kind's `lookups` take them in order.
const EQ_INDEXES: [(&str, &str, &str); 4] = [
    ("GSI1", "G1PK", "G1SK"),
    ("GSI2", "G2PK", "G2SK"),
    ("GSI4", "G4PK", "G4SK"),
    ("GSI5", "G5PK", "G5SK"),
];
/// `{updatedAt}#{id}` per kind.
const UPDATED_INDEX: (&str, &str, &str) = ("GSI3", "G3PK", "G3SK");
/// `{value}#{id}` of a kind's own ordering field (`startAt`, `issuedAt`).
const ORDERED_INDEX: (&str, &str, &str) = ("GSI6", "G6PK", "G6SK");

/// Every GSI of the table.
pub const INDEXES: [(&str, &str, &str); 6] = [
    EQ_INDEXES[0],
    EQ_INDEXES[1],
    UPDATED_INDEX,
    EQ_INDEXES[2],
    EQ_INDEXES[3],
    ORDERED_INDEX,
];

/// The sort key of an entry ordered by a field: `{value}#{id}` (a missing
/// value sorts first, as Feathers sorts it).
fn ordered_key(doc: &Value, field: &str, id: &str) -> String {
    let v = doc.get(field).and_then(Value::as_str).unwrap_or_default();
    format!("{v}#{id}")
}

pub struct DynamoStore {
    client: Client,
    table: String,
    kinds: Kinds,
    list_bound: usize,
    /// Capacity units consumed so far, in thousandths (reads, writes).
    read_milli: AtomicU64,
    write_milli: AtomicU64,
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

/// What a source's sort key orders by.
#[derive(Debug, Clone, PartialEq)]
enum SkOrder {
    /// The id (creation order, and `createdAt`: ids carry their time).
    Id { prefix: Option<&'static str> },
    /// `{value}#{id}` of this (timestamp) field.
    Field(&'static str),
}

/// A partition of the table or of a GSI.
#[derive(Debug, Clone)]
struct Source {
    index: Option<&'static str>,
    pk_attr: &'static str,
    sk_attr: &'static str,
    pk: String,
    by: SkOrder,
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
    advice: String,
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
            SkOrder::Field(f) => first.is_some_and(|k| is_path(&k.path, f)),
        }
    }

    /// The field whose ties a page completes (none when ids order it).
    fn group(&self, q: &ListQuery) -> Option<Vec<String>> {
        match self {
            SkOrder::Id { .. } if q.sort.first().is_none_or(|k| is_path(&k.path, "id")) => None,
            SkOrder::Id { .. } => Some(vec!["createdAt".to_string()]),
            SkOrder::Field(f) => Some(vec![f.to_string()]),
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
            .zip(EQ_INDEXES)
            .filter_map(|(l, (index, pk_attr, sk_attr))| {
                clauses.iter().find_map(|(path, op)| match op {
                    Op::Eq(Value::String(v))
                        if is_path(path, l.field) && v.len() <= MAX_KEY_BYTES =>
                    {
                        Some(Source {
                            index: Some(index),
                            pk_attr,
                            sk_attr,
                            pk: format!("{}#{}={v}", obj_pk(tenant, kind), l.field),
                            by: match l.range {
                                Some(r) => SkOrder::Field(r),
                                None => base.by.clone(),
                            },
                        })
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
            });
        }
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
        let can_stream = !q.want_total && !relevance;
        let descending = q.sort.first().is_some_and(|k| k.descending);
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
            if let SkOrder::Field(f) = o.by {
                served.push(format!("a `{f}` range"));
                sorts.push(format!("`{f}`"));
            }
        }
        let advice = format!(
            "Narrow it with a filter an index serves ({}), or sort by {} (or not at all) and page with `next`.",
            served.join(", "),
            sorts.join(" or ")
        );
        Plan {
            range,
            stream,
            advice,
        }
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
            .billing_mode(BillingMode::PayPerRequest)
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewImage)
                    .build()
                    .map_err(backend)?,
            );
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

    /// Read a source's key range in pages, in its order (or the reverse),
    /// calling `each` on every live item's document until it says stop.
    /// Counts every item read against `budget`; running out is `TooLarge`.
    async fn read_range(
        &self,
        range: &Range,
        reverse: bool,
        page_size: usize,
        budget: &mut Budget,
        mut each: impl FnMut(Doc) -> bool,
    ) -> StoreResult<()> {
        if range.empty() {
            return Ok(());
        }
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
        let now_secs = crate::time::now_ms() / 1000;
        let mut start = None;
        let mut size = page_size.clamp(2, 1000);
        loop {
            let mut req = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(&cond)
                .expression_attribute_values(":pk", s(src.pk.clone()))
                .scan_index_forward(!reverse)
                .limit(size as i32)
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
            for item in page.items() {
                budget.take()?;
                // TTL deletion is lazy: expired items are filtered here.
                if let Some(AttributeValue::N(exp)) = item.get("expiresAt") {
                    if exp.parse::<i64>().is_ok_and(|e| e <= now_secs) {
                        continue;
                    }
                }
                if !each(doc_of(item)?) {
                    return Ok(());
                }
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(()),
            }
            size = (size * 4).min(1000);
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
            true
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
        let mut budget = Budget::new(kind, self.list_bound, plan.advice.clone());
        let admit = eval::Admit::new(q, q.search_fields);
        let mut docs: Vec<Doc> = Vec::new();
        let mut probe_found = false;
        match &plan.stream {
            None => {
                // Read the whole range; the evaluation decides.
                self.read_range(&plan.range, false, 1000, &mut budget, |d| {
                    if admit.matches(&d) {
                        docs.push(d);
                    }
                    true
                })
                .await?;
            }
            Some(stream) => {
                let pos = q.position.as_ref();
                let reverse = stream.descending != pos.is_some_and(|p| p.before);
                let beyond = |d: &Value| match pos {
                    None => true,
                    Some(p) if p.before => admit.against(d, p) == Ordering::Less,
                    Some(p) => admit.against(d, p) == Ordering::Greater,
                };
                let need = q.skip.saturating_add(q.limit).saturating_add(1);
                let range = plan.range.cut_at(stream, pos, reverse);
                let mut boundary: Option<Option<Value>> = None;
                let group = stream.group.as_deref();
                self.read_range(&range, reverse, need + 1, &mut budget, |d| {
                    if let (Some(b), Some(path)) = (&boundary, group) {
                        // Complete the last group of ties, then stop.
                        if group_value(&d, path) != *b {
                            return false;
                        }
                    }
                    if admit.matches(&d) && beyond(&d) {
                        docs.push(d);
                        if docs.len() >= need && boundary.is_none() {
                            match group {
                                None => return false,
                                Some(path) => {
                                    boundary = docs.last().map(|l| group_value(l, path));
                                }
                            }
                        }
                    }
                    true
                })
                .await?;
                if let Some(p) = pos {
                    // Is there a match on the other side of the cursor?
                    let back = plan.range.cut_at(stream, pos, !reverse);
                    let mut probe_budget = Budget::new(kind, 1000, String::new());
                    let seen = self
                        .read_range(&back, !reverse, 2, &mut probe_budget, |d| {
                            let side = admit.against(&d, p);
                            let other = if p.before {
                                side != Ordering::Less
                            } else {
                                side != Ordering::Greater
                            };
                            probe_found = other && admit.matches(&d);
                            !probe_found
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
            data: r.page.into_iter().cloned().collect(),
            total: q.want_total.then_some(r.total),
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

    fn item_for(&self, op: &WriteOp) -> Result<TransactWriteItem, StoreError> {
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
                let version = doc.get("version").and_then(Value::as_i64).unwrap_or(1);
                let mut put = Put::builder()
                    .table_name(table)
                    .item("PK", s(obj_pk(tenant, kind)))
                    .item("SK", s(id.clone()))
                    .item("kind", s(*kind))
                    .item("tenant", s(tenant.clone()))
                    .item("version", n(version))
                    .item("doc", s(doc.to_string()));
                for (l, (_, pk, sk)) in self.kinds.lookups(kind).iter().zip(EQ_INDEXES) {
                    let path: Vec<String> = l.field.split('.').map(String::from).collect();
                    if let Some(Value::String(v)) = group_value(doc, &path) {
                        if v.len() <= MAX_KEY_BYTES {
                            let sort = match l.range {
                                Some(r) => ordered_key(doc, r, id),
                                None => id.clone(),
                            };
                            put = put
                                .item(pk, s(format!("{}#{}={v}", obj_pk(tenant, kind), l.field)))
                                .item(sk, s(sort));
                        }
                    }
                }
                if self.kinds.by_updated(kind) {
                    let (_, pk, sk) = UPDATED_INDEX;
                    put = put
                        .item(pk, s(obj_pk(tenant, kind)))
                        .item(sk, s(ordered_key(doc, "updatedAt", id)));
                }
                if let Some(f) = self.kinds.ordered_by(kind) {
                    let (_, pk, sk) = ORDERED_INDEX;
                    put = put
                        .item(pk, s(obj_pk(tenant, kind)))
                        .item(sk, s(ordered_key(doc, f, id)));
                }
                let ttl = self.kinds.ttl_ms(kind).map(|ms| ms / 1000);
                if let Some(ttl) = ttl {
                    let created = doc
                        .get("createdAt")
                        .and_then(Value::as_str)
                        .and_then(crate::time::parse_timestamp)
                        .unwrap_or_else(crate::time::now_ms);
                    put = put.item("expiresAt", n(created / 1000 + ttl));
                }
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
                if let Expect::Version(v) = expect {
                    del = del
                        .condition_expression("version = :v")
                        .expression_attribute_values(":v", n(*v as i64));
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
                        .item("PK", s(format!("U#{scope}")))
                        .item("SK", s(claim_key(value)))
                        .item("tenant", s(target.tenant.clone()))
                        .item("kind", s(target.kind.clone()))
                        .item("id", s(target.id.clone()))
                        .condition_expression("attribute_not_exists(PK) OR id = :id")
                        .expression_attribute_values(":id", s(target.id.clone()))
                        .build()
                        .map_err(backend)?,
                )
                .build(),
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
                if let Some(AttributeValue::N(exp)) = item.get("expiresAt") {
                    if exp
                        .parse::<i64>()
                        .is_ok_and(|e| e <= crate::time::now_ms() / 1000)
                    {
                        return Ok(None);
                    }
                }
                Ok(Some(doc_of(&item)?))
            }
            None => Ok(None),
        }
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
        if tx.ops.len() > 100 {
            return Err(StoreError::Backend(format!(
                "a transaction of {} items exceeds DynamoDB's 100",
                tx.ops.len()
            )));
        }
        let items = tx
            .ops
            .iter()
            .map(|op| self.item_for(op))
            .collect::<Result<Vec<_>, _>>()?;
        // The token makes the SDK's retries of this call idempotent on
        // DynamoDB (a retry after a reply was lost does not apply it twice).
        let token = crate::ids::ulid();
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .client_request_token(token)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
        {
            Ok(out) => {
                for c in out.consumed_capacity() {
                    self.count(Some(c), true);
                }
                Ok(())
            }
            Err(SdkError::ServiceError(e)) => match e.into_err() {
                TransactWriteItemsError::TransactionCanceledException(c) => {
                    let reasons = c.cancellation_reasons();
                    if let Some(i) = reasons
                        .iter()
                        .position(|r| r.code() == Some("ConditionalCheckFailed"))
                    {
                        if let Some(op) = tx.ops.get(i) {
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
        }
    }

    /// Events travel by DynamoDB Streams, not by polling.
    async fn pending_events(&self, _limit: usize) -> StoreResult<Vec<EventRecord>> {
        Ok(Vec::new())
    }

    async fn mark_dispatched(&self, _ids: &[String]) -> StoreResult<()> {
        Ok(())
    }
}

/// A client for a local endpoint (DynamoDB Local, moto) with static test
/// credentials: no credential chain, no instance metadata.
pub async fn local_client(endpoint: &str, region: &str) -> Client {
    Client::new(&crate::aws::local_config(endpoint, region).await)
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
