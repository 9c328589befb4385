//! Storage: one trait, two implementations (embedded SQLite here, DynamoDB
//! with the AWS issue). Objects are JSON documents addressed by tenant
//! (`{org}#{mode}`, or `{org}` for organization-level records), kind and id.
//! A `WriteTx` is applied atomically: objects, uniqueness claims and the
//! events (the outbox) of one API write commit together or not at all.

pub mod bell;
pub mod derived;
pub mod dynamodb;
pub mod embedded;
pub mod packed;

use crate::query::ListQuery;
use async_trait::async_trait;
use serde_json::Value;
use std::fmt;
use std::sync::Arc;

pub type Doc = Arc<Value>;

/// The kind of the organization records (tenant `{org}`).
pub const ORGS_KIND: &str = "organizations";

/// A condition on the current state of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The object must not exist (create).
    Absent,
    /// The object must exist with exactly this version.
    Version(u64),
}

#[derive(Debug, Clone)]
pub enum WriteOp {
    Put {
        tenant: String,
        kind: &'static str,
        id: String,
        doc: Value,
        expect: Expect,
    },
    Delete {
        tenant: String,
        kind: &'static str,
        id: String,
        expect: Expect,
    },
    /// A condition on an object this write reads but does not change (a
    /// referenced object, a guard): the write fails if it no longer holds.
    Check {
        tenant: String,
        kind: &'static str,
        id: String,
        expect: Expect,
    },
    /// No object of `kind` has `field` (a top-level reference) equal to
    /// `value`: nothing refers to an object this write deletes. Part of the
    /// write's condition, so a referrer created meanwhile makes it fail.
    Unreferenced {
        tenant: String,
        kind: &'static str,
        field: &'static str,
        value: String,
    },
    /// Claim `value` in `scope` for an object; fails if another object holds it.
    ClaimUnique {
        scope: String,
        value: String,
        target: UniqueTarget,
    },
    ReleaseUnique {
        scope: String,
        value: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniqueTarget {
    pub tenant: String,
    pub kind: String,
    pub id: String,
}

/// An event in the outbox, written with the change that caused it.
#[derive(Debug, Clone)]
pub struct EventRecord {
    pub id: String,
    pub tenant: String,
    pub event_type: String,
    pub created_at_ms: i64,
    pub envelope: Value,
}

#[derive(Debug, Clone, Default)]
pub struct WriteTx {
    pub ops: Vec<WriteOp>,
    pub events: Vec<EventRecord>,
}

impl WriteTx {
    /// A write of these ops with no events.
    pub fn of(ops: Vec<WriteOp>) -> WriteTx {
        WriteTx {
            ops,
            events: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conflict {
    /// Create of an id that exists.
    Exists { kind: String, id: String },
    /// The object changed (or vanished) since it was read.
    Version { kind: String, id: String },
    /// Another object holds this unique value.
    Unique { scope: String, value: String },
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Conflict::Exists { kind, id } => write!(f, "A {kind} with id `{id}` already exists."),
            Conflict::Version { kind, id } => write!(
                f,
                "The {kind} `{id}` was changed by another request; fetch it again and retry."
            ),
            Conflict::Unique { scope, value } => {
                let field = scope.rsplit('/').next().unwrap_or(scope);
                write!(f, "The {field} `{value}` is already in use.")
            }
        }
    }
}

#[derive(Debug, Clone)]
pub enum StoreError {
    Conflict(Conflict),
    /// The database stayed locked past the busy timeout.
    Busy,
    /// A list would read more than `bound` items of one collection.
    TooLarge {
        kind: String,
        bound: usize,
        /// What the store can serve without reading so much.
        advice: String,
    },
    Backend(String),
    /// The backend throttled or failed transiently and kept doing so through
    /// the client's retries (nothing was written); worth retrying later.
    Unavailable(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Conflict(c) => c.fmt(f),
            StoreError::Busy => f.write_str("database busy"),
            StoreError::TooLarge { kind, bound, .. } => {
                write!(f, "more than {bound} {kind} to read")
            }
            StoreError::Backend(m) => write!(f, "storage backend: {m}"),
            StoreError::Unavailable(m) => write!(f, "storage backend unavailable: {m}"),
        }
    }
}

impl std::error::Error for StoreError {}

pub type StoreResult<T> = Result<T, StoreError>;

/// A document of a list page: parsed, or packed (the embedded store keeps
/// its documents packed, and a page shown as stored is written out from
/// them without being parsed).
#[derive(Clone)]
pub enum Item {
    Parsed(Doc),
    Packed(packed::Packed),
}

impl Item {
    /// The document, parsed.
    pub fn doc(&self) -> Doc {
        match self {
            Item::Parsed(d) => d.clone(),
            Item::Packed(p) => Arc::new(p.to_value()),
        }
    }

    /// Append its JSON text.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            // Writing to a Vec cannot fail.
            Item::Parsed(d) => {
                let _ = serde_json::to_writer(out, &**d);
            }
            Item::Packed(p) => p.node().write_json(out),
        }
    }

    /// Its cursor position in a query's order.
    pub fn position(
        &self,
        q: &ListQuery,
        search_fields: &[&str],
        before: bool,
    ) -> crate::query::cursor::Position {
        use crate::query::eval::position_of;
        match self {
            Item::Parsed(d) => position_of(&**d, q, search_fields, before),
            Item::Packed(p) => position_of(p.node(), q, search_fields, before),
        }
    }
}

impl fmt::Debug for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.doc())
    }
}

/// One page of a list: the matching documents after skip/limit, and the
/// number of matches when asked for.
#[derive(Debug, Clone, Default)]
pub struct ListPage {
    pub data: Vec<Item>,
    pub total: Option<usize>,
    /// Are there matches before the first / after the last of this page?
    pub has_prev: bool,
    pub has_next: bool,
}

impl ListPage {
    /// The page's documents, parsed.
    pub fn docs(&self) -> Vec<Doc> {
        self.data.iter().map(Item::doc).collect()
    }
}

/// Where an object is: its tenant, kind and id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DocKey {
    pub tenant: String,
    pub kind: &'static str,
    pub id: String,
}

impl DocKey {
    pub fn new(tenant: &str, kind: &'static str, id: &str) -> DocKey {
        DocKey {
            tenant: tenant.to_string(),
            kind,
            id: id.to_string(),
        }
    }
}

/// A document's JSON text and version (`ETag`), as a read by id answers
/// it, and the document when the store had it parsed.
#[derive(Clone)]
pub struct DocJson {
    pub json: bytes::Bytes,
    pub version: u64,
    parsed: Option<Doc>,
}

impl DocJson {
    pub fn new(doc: Doc) -> DocJson {
        // Serialising a JSON value cannot fail.
        let json = serde_json::to_vec(&*doc).unwrap_or_default();
        DocJson {
            version: version_of(&doc),
            json: json.into(),
            parsed: Some(doc),
        }
    }

    /// From the text alone (parsed if [`DocJson::doc`] is asked for).
    pub fn text(json: impl Into<bytes::Bytes>, version: u64) -> DocJson {
        DocJson {
            json: json.into(),
            version,
            parsed: None,
        }
    }

    /// The document.
    pub fn doc(&self) -> StoreResult<Doc> {
        match &self.parsed {
            Some(d) => Ok(d.clone()),
            None => serde_json::from_slice(&self.json)
                .map(Arc::new)
                .map_err(|e| StoreError::Backend(format!("corrupt document: {e}"))),
        }
    }
}

/// A stored object's version (its `ETag`); 1 before it had one.
pub fn version_of(doc: &Value) -> u64 {
    version_in(doc)
}

/// [`version_of`] for any view of a document (a packed one too).
pub fn version_in<'a>(doc: impl crate::query::view::View<'a>) -> u64 {
    doc.get("version")
        .and_then(crate::query::view::View::as_u64)
        .unwrap_or(1)
}

#[async_trait]
pub trait Store: Send + Sync {
    /// Called once at the start of every request, fan-out batch and batch
    /// of deliveries received (or delivery attempt, on AWS): catch up with
    /// writes committed so far — by other processes, and by this one's
    /// other threads between their commit and their own update of what this
    /// process keeps — so what follows sees everything acknowledged (or
    /// taken from the outbox) before it began. Backends that always read
    /// the source of truth do nothing.
    async fn refresh(&self) -> StoreResult<()> {
        Ok(())
    }

    /// `refresh` without its shortcuts: every write committed by the time
    /// it is called, even one whose writer has not yet announced it (the
    /// embedded store's change bell rings just after each commit, and a
    /// write's outbox row is readable from the commit itself). For a
    /// document that must exist — a queued delivery's event — before
    /// concluding it does not.
    async fn refresh_committed(&self) -> StoreResult<()> {
        self.refresh().await
    }

    async fn get(&self, tenant: &str, kind: &str, id: &str) -> StoreResult<Option<Doc>>;

    /// `get`, with the document's JSON text and version (a store that keeps
    /// them answers a read by id without serialising).
    async fn get_json(&self, tenant: &str, kind: &str, id: &str) -> StoreResult<Option<DocJson>> {
        Ok(self.get(tenant, kind, id).await?.map(DocJson::new))
    }

    /// Several documents, each as `get_json` answers it, in the keys' order:
    /// one strongly consistent batch read (or a few) where the store has one.
    async fn get_many(&self, keys: &[DocKey]) -> StoreResult<Vec<Option<DocJson>>> {
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            out.push(self.get_json(&k.tenant, k.kind, &k.id).await?);
        }
        Ok(out)
    }

    /// Evaluate a list query (filter, sort, skip, limit) over one collection.
    /// Without a sort, documents come in creation (id) order.
    async fn list(&self, tenant: &str, kind: &str, query: &ListQuery) -> StoreResult<ListPage>;

    /// Every document of a small collection, in creation order (reference
    /// data lookups such as resolving a clinic by name).
    async fn all(&self, tenant: &str, kind: &str) -> StoreResult<Vec<Doc>>;

    async fn find_unique(&self, scope: &str, value: &str) -> StoreResult<Option<UniqueTarget>>;

    async fn commit(&self, tx: WriteTx) -> StoreResult<()>;

    /// Events of the outbox not yet handed to the fan-out step, oldest first.
    async fn pending_events(&self, limit: usize) -> StoreResult<Vec<EventRecord>>;

    /// The fan-out step has enqueued these events' deliveries.
    async fn mark_dispatched(&self, ids: &[String]) -> StoreResult<()>;

    /// Housekeeping: delete events past their 30 days and whatever else the
    /// backend keeps only for a while; returns how many events went. The
    /// DynamoDB table's TTL does this by itself.
    async fn purge_expired(&self) -> StoreResult<usize> {
        Ok(0)
    }

    /// After an empty `pending_events`: wait until a write may have added
    /// one (a store that can tell waits for a write; others a moment).
    async fn idle(&self) {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await
    }

    /// Does this store take a new tenant's first data (the sandbox) better
    /// as one bulk load of what the writes left (`load_fresh`) than write by
    /// write? DynamoDB does: a transaction per object, each with its index
    /// entries, is several times the work of batched puts of the result.
    fn loads_in_bulk(&self) -> bool {
        false
    }

    /// Apply `txs` — writes made in order against a staging store by one
    /// loader, into tenants nothing else has written to yet — as their end
    /// state. By default simply each in order.
    async fn load_fresh(&self, txs: Vec<WriteTx>) -> StoreResult<()> {
        for tx in txs {
            self.commit(tx).await?;
        }
        Ok(())
    }
}

/// A store that keeps every write committed through it, in order: a loader
/// runs against it (on a staging store), then the writes are applied to
/// the real store at once with `Store::load_fresh`.
pub struct Recorder<S> {
    inner: S,
    txs: std::sync::Mutex<Vec<WriteTx>>,
}

impl<S: Store> Recorder<S> {
    pub fn new(inner: S) -> Recorder<S> {
        Recorder {
            inner,
            txs: Default::default(),
        }
    }

    /// The writes committed so far, in order.
    pub fn take(&self) -> Vec<WriteTx> {
        std::mem::take(&mut *self.txs.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

#[async_trait]
impl<S: Store> Store for Recorder<S> {
    async fn refresh(&self) -> StoreResult<()> {
        self.inner.refresh().await
    }
    async fn refresh_committed(&self) -> StoreResult<()> {
        self.inner.refresh_committed().await
    }
    async fn get(&self, tenant: &str, kind: &str, id: &str) -> StoreResult<Option<Doc>> {
        self.inner.get(tenant, kind, id).await
    }
    async fn get_json(&self, tenant: &str, kind: &str, id: &str) -> StoreResult<Option<DocJson>> {
        self.inner.get_json(tenant, kind, id).await
    }
    async fn get_many(&self, keys: &[DocKey]) -> StoreResult<Vec<Option<DocJson>>> {
        self.inner.get_many(keys).await
    }
    async fn list(&self, tenant: &str, kind: &str, query: &ListQuery) -> StoreResult<ListPage> {
        self.inner.list(tenant, kind, query).await
    }
    async fn all(&self, tenant: &str, kind: &str) -> StoreResult<Vec<Doc>> {
        self.inner.all(tenant, kind).await
    }
    async fn find_unique(&self, scope: &str, value: &str) -> StoreResult<Option<UniqueTarget>> {
        self.inner.find_unique(scope, value).await
    }
    async fn commit(&self, tx: WriteTx) -> StoreResult<()> {
        self.inner.commit(tx.clone()).await?;
        self.txs.lock().unwrap_or_else(|e| e.into_inner()).push(tx);
        Ok(())
    }
    async fn pending_events(&self, limit: usize) -> StoreResult<Vec<EventRecord>> {
        self.inner.pending_events(limit).await
    }
    async fn mark_dispatched(&self, ids: &[String]) -> StoreResult<()> {
        self.inner.mark_dispatched(ids).await
    }
}

pub type DynStore = Arc<dyn Store>;

/// Make `dir` a private data directory (created mode 0700, or narrowed to
/// it) and `name` in it a private file (mode 0600), created empty if absent.
/// Files SQLite creates beside a database take the database's mode.
pub fn private_file(dir: &std::path::Path, name: &str) -> std::io::Result<std::path::PathBuf> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        let path = dir.join(name);
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        for suffix in ["-wal", "-shm", "-journal"] {
            let side = dir.join(format!("{name}{suffix}"));
            if side.exists() {
                std::fs::set_permissions(&side, std::fs::Permissions::from_mode(0o600))?;
            }
        }
        Ok(path)
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)?;
        Ok(dir.join(name))
    }
}

/// What a store needs to know about one kind of object, declared by the
/// kind's owner (a resource, the webhook runtime, idempotency) and handed to
/// the store when it is made. Stores never look resources up themselves.
#[derive(Debug, Clone)]
pub struct KindSpec {
    pub kind: &'static str,
    /// Ids are `{prefix}_{ULID}` and the ULID's time is the object's
    /// `createdAt`, so id order is creation order and `createdAt` ranges are
    /// id ranges.
    pub prefix: Option<&'static str>,
    /// Fields (dotted paths) with an equality index.
    pub lookups: &'static [Lookup],
    /// Lists ordered or ranged by `updatedAt` are served by an index.
    pub by_updated: bool,
    /// Lists ordered or ranged by this timestamp field are served by an
    /// index too.
    pub ordered_by: Option<&'static str>,
    /// Objects are gone this long after their `createdAt` (their TTL).
    pub ttl_ms: Option<i64>,
    /// Text fields `$search` reads (an inverted index of their stems on
    /// DynamoDB).
    pub search: &'static [&'static str],
    /// String fields lists sort by through a sorted index (the directory:
    /// `$sort[fullName]`, `$sort[name]`).
    pub sorted: &'static [&'static str],
    /// Counts are kept (the whole collection and each counted lookup's
    /// values) so `$limit=0` and `$total` need not read the objects.
    pub counted: bool,
}

/// An equality index on `field`; with `range`, its entries are ordered by
/// that field (a timestamp) instead of creation, so an equality plus a range
/// or sort on it reads only the range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lookup {
    pub field: &'static str,
    pub range: Option<&'static str>,
    /// The number of objects with each value is kept (`status=open`).
    pub counted: bool,
    /// A reference that keeps what it names from being deleted (`restrict`):
    /// its counts stay in one item (shard 0) a delete is conditional on.
    pub guards: bool,
}

impl Lookup {
    pub const fn eq(field: &'static str) -> Lookup {
        Lookup {
            field,
            range: None,
            counted: false,
            guards: false,
        }
    }
    pub const fn ranged(field: &'static str, range: &'static str) -> Lookup {
        Lookup {
            field,
            range: Some(range),
            counted: false,
            guards: false,
        }
    }
    /// This lookup with a count per value.
    pub const fn counted(mut self) -> Lookup {
        self.counted = true;
        self
    }
}

impl KindSpec {
    /// A kind with no indexes and no expiry.
    pub const fn plain(kind: &'static str) -> KindSpec {
        KindSpec {
            kind,
            prefix: None,
            lookups: &[],
            by_updated: false,
            ordered_by: None,
            ttl_ms: None,
            search: &[],
            sorted: &[],
            counted: false,
        }
    }

    /// Does a write of this kind keep derived items (entries, counters)?
    pub fn derives(&self) -> bool {
        !self.lookups.is_empty()
            || !self.search.is_empty()
            || !self.sorted.is_empty()
            || self.counted
    }
}

/// Every kind's declaration; kinds not listed are plain.
#[derive(Debug, Clone, Copy)]
pub struct Kinds(pub &'static [KindSpec]);

impl Kinds {
    pub fn get(&self, kind: &str) -> Option<&'static KindSpec> {
        self.0.iter().find(|k| k.kind == kind)
    }

    pub fn prefix(&self, kind: &str) -> Option<&'static str> {
        self.get(kind).and_then(|k| k.prefix)
    }

    pub fn lookups(&self, kind: &str) -> &'static [Lookup] {
        self.get(kind).map(|k| k.lookups).unwrap_or(&[])
    }

    pub fn by_updated(&self, kind: &str) -> bool {
        self.get(kind).is_some_and(|k| k.by_updated)
    }

    pub fn ordered_by(&self, kind: &str) -> Option<&'static str> {
        self.get(kind).and_then(|k| k.ordered_by)
    }

    pub fn ttl_ms(&self, kind: &str) -> Option<i64> {
        self.get(kind).and_then(|k| k.ttl_ms)
    }

    /// Kinds whose objects expire.
    pub fn expiring(&self) -> impl Iterator<Item = &'static KindSpec> {
        self.0.iter().filter(|k| k.ttl_ms.is_some())
    }
}

/// Commit a write that reads nothing it decides on (its conditions are
/// all `Absent` on new ids, or it has none), sending it again while the
/// backend cancels it for contention (`Busy`: DynamoDB's
/// `TransactionConflict`, nothing written), up to 8 times with jittered
/// back-off from 2 ms; then `Busy` (429 `LOCK_TIMEOUT`).
pub async fn commit_retrying(store: &dyn Store, tx: WriteTx) -> StoreResult<()> {
    let mut n = 0u32;
    loop {
        match store.commit(tx.clone()).await {
            Err(StoreError::Busy) if n < 8 => {
                n += 1;
                let cap = 2u64 << n;
                let r = u16::from_le_bytes(crate::ids::random_bytes::<2>()) as u64;
                tokio::time::sleep(std::time::Duration::from_micros(
                    cap * 1000 * r / u16::MAX as u64,
                ))
                .await;
            }
            other => return other,
        }
    }
}

impl From<StoreError> for crate::error::ApiError {
    fn from(e: StoreError) -> Self {
        use crate::error::{ApiError, ErrorKind};
        match e {
            StoreError::Conflict(c) => ApiError::conflict(c.to_string()),
            StoreError::Busy => ApiError::new(
                ErrorKind::LockTimeout,
                "This object cannot be accessed right now because another request is using it. Retry the request.",
            ),
            StoreError::TooLarge {
                kind,
                bound,
                advice,
            } => ApiError::invalid(format!(
                "This query would read more than {bound} {kind}, more than one request may read here. {}",
                if advice.is_empty() {
                    "Narrow it with more selective filters."
                } else {
                    advice.as_str()
                }
            )),
            StoreError::Backend(msg) => {
                crate::log::error("store", &msg);
                ApiError::internal()
            }
            StoreError::Unavailable(msg) => {
                crate::log::error("store", &msg);
                ApiError::new(
                    ErrorKind::Unavailable,
                    "The database is busy or briefly unavailable. Retry after the time in Retry-After; send a write again with the same Idempotency-Key and it is applied at most once.",
                )
                .with_header("retry-after", "1")
            }
        }
    }
}
