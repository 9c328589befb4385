//! The embedded store: SQLite (WAL) for durability, and an in-memory mirror
//! of every object for fast reads and list evaluation.
//!
//! Several processes may share one data directory (`hub serve` and
//! `hub org create`). Every write appends to a `changes` table in the same
//! transaction; before each read the mirror catches up with any change it
//! has not seen, so a write acknowledged by any process is visible to the
//! next read of every process.

use super::*;
use crate::query::eval;
use crate::query::index::{Change, Index};
use crate::store::packed::{Packed, ParsedCache};
use rusqlite::{params, Connection, ErrorCode, OptionalExtension, TransactionBehavior};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS objects (
    tenant TEXT NOT NULL, kind TEXT NOT NULL, id TEXT NOT NULL,
    version INTEGER NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (tenant, kind, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS uniques (
    scope TEXT NOT NULL, value TEXT NOT NULL,
    tenant TEXT NOT NULL, kind TEXT NOT NULL, id TEXT NOT NULL,
    PRIMARY KEY (scope, value)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE, tenant TEXT NOT NULL, type TEXT NOT NULL,
    created_at INTEGER NOT NULL, body TEXT NOT NULL,
    dispatched INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS events_pending ON events (dispatched, seq);
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    what TEXT NOT NULL, a TEXT NOT NULL, b TEXT NOT NULL, c TEXT NOT NULL);
";

/// Maps keyed by two strings as two levels, so a lookup by `(&str, &str)`
/// allocates nothing.
type Nested<V> = HashMap<String, HashMap<String, V>>;

/// One collection: documents in id (creation) order, and a columnar index
/// for list queries, kept up to date with the writes since it was built.
/// Documents are kept packed (one allocation each, smaller than their JSON
/// text: `packed`); the list engine reads them in place, and a read by id
/// writes the text from them.
#[derive(Default)]
struct Coll {
    docs: BTreeMap<Box<str>, Packed>,
    index: Mutex<IndexState>,
}

/// A collection's list snapshot and the writes made since it was taken,
/// applied to it (columns updated, not rebuilt) by the next list.
#[derive(Default)]
struct IndexState {
    built: Option<Arc<Index<Packed>>>,
    /// Every document carries its id, in order: changes can be applied.
    keyed: bool,
    pending: Vec<Change<Packed>>,
}

/// Past this many writes since the last list, rebuilding is cheaper.
const MAX_PENDING: usize = 4096;

impl Coll {
    fn insert(&mut self, id: String, doc: Packed) {
        self.note(&id, Some(doc.clone()));
        self.docs.insert(id.into_boxed_str(), doc);
    }

    fn remove(&mut self, id: &str) {
        if self.docs.remove(id).is_some() {
            self.note(id, None);
        }
    }

    fn note(&mut self, id: &str, doc: Option<Packed>) {
        let limit = MAX_PENDING.min(self.docs.len() / 4 + 16);
        let state = self.index.get_mut().unwrap_or_else(|e| e.into_inner());
        if state.built.is_none() {
            return;
        }
        if !state.keyed || state.pending.len() >= limit {
            state.built = None;
            state.pending.clear();
            return;
        }
        state.pending.push(Change {
            id: id.to_string(),
            doc,
        });
    }

    fn index(&self) -> Arc<Index<Packed>> {
        let mut state = self.index.lock().unwrap_or_else(|e| e.into_inner());
        let IndexState {
            built,
            keyed,
            pending,
        } = &mut *state;
        match built {
            Some(index) => {
                if !pending.is_empty() {
                    // Readers still holding the old snapshot keep it; this
                    // one copies the document list and the changed columns.
                    Arc::make_mut(index).apply(std::mem::take(pending));
                }
                index.clone()
            }
            None => {
                let index = Arc::new(Index::new(self.docs.values().cloned().collect()));
                *keyed = index.ordered_by_id();
                *built = Some(index.clone());
                index
            }
        }
    }
}

#[derive(Default)]
struct Mirror {
    /// tenant → kind → collection.
    collections: Nested<Coll>,
    /// scope → value → claim.
    uniques: Nested<UniqueTarget>,
}

impl Mirror {
    fn coll(&self, tenant: &str, kind: &str) -> Option<&Coll> {
        self.collections.get(tenant)?.get(kind)
    }

    fn coll_mut(&mut self, tenant: &str, kind: &str) -> Option<&mut Coll> {
        self.collections.get_mut(tenant)?.get_mut(kind)
    }

    fn coll_entry(&mut self, tenant: String, kind: String) -> &mut Coll {
        self.collections
            .entry(tenant)
            .or_default()
            .entry(kind)
            .or_default()
    }

    fn unique(&self, scope: &str, value: &str) -> Option<&UniqueTarget> {
        self.uniques.get(scope)?.get(value)
    }

    fn set_unique(&mut self, scope: String, value: String, target: Option<UniqueTarget>) {
        match target {
            Some(t) => {
                self.uniques.entry(scope).or_default().insert(value, t);
            }
            None => {
                if let Some(m) = self.uniques.get_mut(&scope) {
                    m.remove(&value);
                }
            }
        }
    }
}

pub struct EmbeddedStore {
    path: PathBuf,
    kinds: Kinds,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    mirror: RwLock<Mirror>,
    /// Highest `changes.seq` reflected in the mirror.
    seen: AtomicI64,
    /// Serialises catching up, so two readers do not apply the same changes.
    sync_lock: Mutex<()>,
    /// The change bell every process with this store open rings after its
    /// commits (`bell.rs`), and how many rings this mirror has caught up
    /// with: the check made before every request.
    bell: Option<super::bell::Bell>,
    heard: std::sync::atomic::AtomicU64,
    /// Only where the bell cannot be mapped: connections kept to ask SQLite
    /// whether any other connection committed since their last look, each
    /// with the `PRAGMA data_version` it answered then. Several, so that
    /// concurrent requests do not queue for one.
    watches: Vec<Mutex<(Connection, i64)>>,
    next_watch: std::sync::atomic::AtomicUsize,
    _checkpointer: Checkpointer,
    /// Documents read by id (or whole kinds) lately, parsed.
    parsed: ParsedCache,
}

/// How many parsed documents reads keep (a bounded few megabytes).
const PARSED_KEPT: usize = 1024;

/// How many watch connections a store keeps.
const WATCHES: usize = 4;

fn backend(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => StoreError::Busy,
        _ => StoreError::Backend(e.to_string()),
    }
}

fn open_conn(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(backend)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(backend)?;
    // WAL: readers never block the writer; NORMAL sync: a committed
    // transaction survives the process being killed (the WAL is in the OS
    // cache); `HUB_SQLITE_SYNC=FULL` adds an fsync per commit for power loss.
    let sync = std::env::var("HUB_SQLITE_SYNC").unwrap_or_else(|_| "NORMAL".into());
    let sync = if sync.eq_ignore_ascii_case("FULL") {
        "FULL"
    } else {
        "NORMAL"
    };
    // Checkpoints (copying the WAL back into the database, with an fsync
    // of each) are made by the store's checkpointer thread, not by the
    // commit that happens to cross SQLite's 1,000-page default — which
    // would stall an async worker (and every writer waiting for it) for the
    // fsyncs. The commit-time checkpoint stays as a backstop, much later.
    conn.execute_batch(&format!(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous={sync}; PRAGMA foreign_keys=OFF;
         PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES};"
    ))
    .map_err(backend)?;
    Ok(conn)
}

/// The WAL size (pages) at which a commit checkpoints by itself: only if
/// the checkpointer has not kept up.
pub(crate) const AUTOCHECKPOINT_PAGES: u32 = 16_384;

/// How often the checkpointer looks at the WAL.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// A thread that checkpoints the database's WAL in the background
/// (`PASSIVE`: it never waits for, or holds up, readers or writers), so
/// that commits do not; stopped when the store is dropped, and waited for:
/// once the store is dropped every connection it opened is closed, so a
/// process that opens the directory next (`hub audit` after a tool's
/// write) never meets this one's last close still checkpointing the WAL.
/// Durability is unchanged: a commit is in the WAL before it is
/// acknowledged either way.
struct Checkpointer {
    stop: Arc<(Mutex<bool>, std::sync::Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    fn start(path: &Path) -> Result<Checkpointer, StoreError> {
        let conn = open_conn(path)?;
        let stop = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("hub-checkpoint".into())
            .spawn(move || {
                let (lock, cvar) = &*flag;
                let mut stopped = lock.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    // Asked to stop while checkpointing: the notification
                    // came before this wait, so look before waiting.
                    if *stopped {
                        return;
                    }
                    stopped = cvar
                        .wait_timeout(stopped, CHECKPOINT_EVERY)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                    if *stopped {
                        return;
                    }
                    drop(stopped);
                    // Nothing to copy costs a look at the WAL index, no fsync.
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        crate::log::error("store", &format!("checkpoint: {e}"));
                    }
                    stopped = lock.lock().unwrap_or_else(|e| e.into_inner());
                }
            })
            .map_err(|e| StoreError::Backend(format!("checkpoint thread: {e}")))?;
        Ok(Checkpointer {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let (lock, cvar) = &*self.stop;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cvar.notify_all();
        if let Some(thread) = self.thread.take() {
            // At most one passive checkpoint to finish; its connection is
            // closed when the thread returns.
            let _ = thread.join();
        }
    }
}

/// A stored object's text, packed for the mirror.
fn pack(body: &str) -> Result<Packed, StoreError> {
    serde_json::from_str::<Value>(body)
        .map(|v| Packed::new(&v))
        .map_err(|e| StoreError::Backend(format!("corrupt document: {e}")))
}

impl EmbeddedStore {
    /// Open (creating if needed) the database in `dir`: the directory mode
    /// 0700, the database (and the journal files SQLite gives its mode) 0600.
    pub fn open(dir: &Path, kinds: Kinds) -> Result<EmbeddedStore, StoreError> {
        let path = super::private_file(dir, "hub.sqlite3")
            .map_err(|e| StoreError::Backend(format!("{}: {e}", dir.display())))?;
        let writer = open_conn(&path)?;
        let bell = match super::bell::Bell::open(dir) {
            Ok(b) => Some(b),
            Err(e) => {
                crate::log::error(
                    "store",
                    &format!("no change bell ({e}); asking SQLite before each request instead"),
                );
                None
            }
        };
        let watches = if bell.is_some() { 0 } else { WATCHES };
        let watches = (0..watches)
            .map(|_| Ok(Mutex::new((open_conn(&path)?, i64::MIN))))
            .collect::<Result<Vec<_>, StoreError>>()?;
        // Heard before loading: a ring from here on is caught up with.
        let heard = bell.as_ref().map_or(0, |b| b.rung());
        writer.execute_batch(SCHEMA).map_err(backend)?;
        let checkpointer = Checkpointer::start(&path)?;
        let store = EmbeddedStore {
            path,
            kinds,
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
            mirror: RwLock::new(Mirror::default()),
            seen: AtomicI64::new(0),
            sync_lock: Mutex::new(()),
            bell,
            heard: heard.into(),
            watches,
            next_watch: Default::default(),
            _checkpointer: checkpointer,
            parsed: ParsedCache::new(PARSED_KEPT),
        };
        store.load_all()?;
        Ok(store)
    }

    fn with_reader<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match conn {
            Some(c) => c,
            None => open_conn(&self.path)?,
        };
        let out = f(&conn);
        let mut pool = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < 8 {
            pool.push(conn);
        }
        out
    }

    /// Load every object and unique claim into the mirror.
    fn load_all(&self) -> Result<(), StoreError> {
        let _guard = self.sync_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut mirror = Mirror::default();
        let seen = self.with_reader(|conn| {
            // One read transaction so the snapshot and `seen` agree.
            conn.execute_batch("BEGIN").map_err(backend)?;
            let res = (|| {
                let seen: i64 = conn
                    .query_row("SELECT COALESCE(MAX(seq), 0) FROM changes", [], |r| {
                        r.get(0)
                    })
                    .map_err(backend)?;
                let mut stmt = conn
                    .prepare("SELECT tenant, kind, id, body FROM objects")
                    .map_err(backend)?;
                let mut rows = stmt.query([]).map_err(backend)?;
                while let Some(row) = rows.next().map_err(backend)? {
                    let (t, k, id, body): (String, String, String, String) = (
                        row.get(0).map_err(backend)?,
                        row.get(1).map_err(backend)?,
                        row.get(2).map_err(backend)?,
                        row.get(3).map_err(backend)?,
                    );
                    mirror.coll_entry(t, k).insert(id, pack(&body)?);
                }
                let mut stmt = conn
                    .prepare("SELECT scope, value, tenant, kind, id FROM uniques")
                    .map_err(backend)?;
                let mut rows = stmt.query([]).map_err(backend)?;
                while let Some(row) = rows.next().map_err(backend)? {
                    mirror.set_unique(
                        row.get(0).map_err(backend)?,
                        row.get(1).map_err(backend)?,
                        Some(UniqueTarget {
                            tenant: row.get(2).map_err(backend)?,
                            kind: row.get(3).map_err(backend)?,
                            id: row.get(4).map_err(backend)?,
                        }),
                    );
                }
                Ok(seen)
            })();
            let _ = conn.execute_batch("COMMIT");
            res
        })?;
        *self.mirror.write().unwrap_or_else(|e| e.into_inner()) = mirror;
        self.seen.store(seen, Ordering::Release);
        Ok(())
    }

    /// Bring the mirror up to date with changes committed by any process.
    fn sync(&self) -> Result<(), StoreError> {
        if let Some(bell) = &self.bell {
            let rung = bell.rung();
            if rung == self.heard.load(Ordering::Acquire) {
                return Ok(());
            }
            // Read before catching up: a commit after that rings again.
            self.catch_up()?;
            self.heard.fetch_max(rung, Ordering::AcqRel);
            return Ok(());
        }
        let start = self.next_watch.fetch_add(1, Ordering::Relaxed);
        let n = self.watches.len();
        let mut watch = (0..n)
            .find_map(|i| self.watches[(start + i) % n].try_lock().ok())
            .unwrap_or_else(|| {
                self.watches[start % n]
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
            });
        let version: i64 = watch
            .0
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(backend)?;
        if version == watch.1 {
            return Ok(());
        }
        // The version is read before catching up: a commit after that read
        // changes it again, so this connection's next look catches that
        // one too.
        self.catch_up()?;
        watch.1 = version;
        Ok(())
    }

    /// Apply every change in the log this mirror has not seen.
    fn catch_up(&self) -> Result<(), StoreError> {
        let latest: i64 = self.with_reader(|conn| {
            conn.prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM changes")
                .and_then(|mut s| s.query_row([], |r| r.get(0)))
                .map_err(backend)
        })?;
        if latest <= self.seen.load(Ordering::Acquire) {
            return Ok(());
        }
        let _guard = self.sync_lock.lock().unwrap_or_else(|e| e.into_inner());
        let seen = self.seen.load(Ordering::Acquire);
        if latest <= seen {
            return Ok(());
        }
        // Changes this mirror never saw were pruned (`purge`): reload whole.
        let oldest: i64 = self.with_reader(|conn| {
            conn.prepare_cached("SELECT COALESCE(MIN(seq), 0) FROM changes")
                .and_then(|mut s| s.query_row([], |r| r.get(0)))
                .map_err(backend)
        })?;
        if oldest > seen + 1 {
            drop(_guard);
            return self.load_all();
        }
        type Change = (i64, String, String, String, String);
        // Read the changed rows' current state in one snapshot.
        let (changes, objects, uniques) = self.with_reader(|conn| {
            conn.execute_batch("BEGIN").map_err(backend)?;
            let res = (|| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT seq, what, a, b, c FROM changes WHERE seq > ?1 ORDER BY seq",
                    )
                    .map_err(backend)?;
                let changes: Vec<Change> = stmt
                    .query_map([seen], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                    })
                    .map_err(backend)?
                    .collect::<Result<_, _>>()
                    .map_err(backend)?;
                let mut objects = Vec::new();
                let mut uniques = Vec::new();
                for (_, what, a, b, c) in &changes {
                    if what == "obj" {
                        let body: Option<String> = conn
                            .prepare_cached(
                                "SELECT body FROM objects WHERE tenant=?1 AND kind=?2 AND id=?3",
                            )
                            .and_then(|mut s| {
                                s.query_row(params![a, b, c], |r| r.get(0)).optional()
                            })
                            .map_err(backend)?;
                        let doc = body.as_deref().map(pack).transpose()?;
                        objects.push(((a.clone(), b.clone()), c.clone(), doc));
                    } else {
                        let target: Option<UniqueTarget> = conn
                            .prepare_cached(
                                "SELECT tenant, kind, id FROM uniques WHERE scope=?1 AND value=?2",
                            )
                            .and_then(|mut s| {
                                s.query_row(params![a, b], |r| {
                                    Ok(UniqueTarget {
                                        tenant: r.get(0)?,
                                        kind: r.get(1)?,
                                        id: r.get(2)?,
                                    })
                                })
                                .optional()
                            })
                            .map_err(backend)?;
                        uniques.push(((a.clone(), b.clone()), target));
                    }
                }
                Ok((changes, objects, uniques))
            })();
            let _ = conn.execute_batch("COMMIT");
            res
        })?;
        let new_seen = changes.last().map(|c| c.0).unwrap_or(seen);
        let mut mirror = self.mirror.write().unwrap_or_else(|e| e.into_inner());
        for ((tenant, kind), id, doc) in objects {
            match doc {
                Some(d) => mirror.coll_entry(tenant, kind).insert(id, d),
                None => {
                    if let Some(c) = mirror.coll_mut(&tenant, &kind) {
                        c.remove(&id);
                    }
                }
            }
        }
        for ((scope, value), target) in uniques {
            mirror.set_unique(scope, value, target);
        }
        drop(mirror);
        self.seen.store(new_seen, Ordering::Release);
        Ok(())
    }

    /// Apply one op in `tx`.
    fn apply(tx: &rusqlite::Transaction<'_>, op: &WriteOp) -> Result<(), StoreError> {
        let change = |what: &str, a: &str, b: &str, c: &str| -> Result<(), StoreError> {
            tx.prepare_cached("INSERT INTO changes (what, a, b, c) VALUES (?1, ?2, ?3, ?4)")
                .and_then(|mut s| s.execute(params![what, a, b, c]))
                .map_err(backend)?;
            Ok(())
        };
        let done = match op {
            WriteOp::Put {
                tenant,
                kind,
                id,
                doc,
                expect,
            } => {
                let version = doc.get("version").and_then(Value::as_i64).unwrap_or(1);
                let body = doc.to_string();
                let n = match expect {
                    Expect::Absent => tx
                        .prepare_cached(
                            "INSERT INTO objects (tenant, kind, id, version, body) VALUES (?1, ?2, ?3, ?4, ?5)
                             ON CONFLICT DO NOTHING",
                        )
                        .and_then(|mut s| s.execute(params![tenant, kind, id, version, body])),
                    Expect::Version(v) => tx
                        .prepare_cached(
                            "UPDATE objects SET version = ?4, body = ?5
                             WHERE tenant = ?1 AND kind = ?2 AND id = ?3 AND version = ?6",
                        )
                        .and_then(|mut s| s.execute(params![tenant, kind, id, version, body, *v as i64])),
                }
                .map_err(backend)?;
                if n == 0 {
                    return Err(StoreError::Conflict(match expect {
                        Expect::Absent => Conflict::Exists {
                            kind: kind.to_string(),
                            id: id.clone(),
                        },
                        Expect::Version(_) => Conflict::Version {
                            kind: kind.to_string(),
                            id: id.clone(),
                        },
                    }));
                }
                change("obj", tenant, kind, id)?;
                return Ok(());
            }
            WriteOp::Delete {
                tenant,
                kind,
                id,
                expect,
            } => {
                let n = match expect {
                    Expect::Version(v) => tx
                        .prepare_cached("DELETE FROM objects WHERE tenant = ?1 AND kind = ?2 AND id = ?3 AND version = ?4")
                        .and_then(|mut s| s.execute(params![tenant, kind, id, *v as i64])),
                    // No condition: delete it if it is there (as DynamoDB does).
                    Expect::Absent => tx
                        .prepare_cached("DELETE FROM objects WHERE tenant = ?1 AND kind = ?2 AND id = ?3")
                        .and_then(|mut s| s.execute(params![tenant, kind, id]))
                        .map(|_| 1),
                }
                .map_err(backend)?;
                if n == 0 {
                    return Err(StoreError::Conflict(Conflict::Version {
                        kind: kind.to_string(),
                        id: id.clone(),
                    }));
                }
                change("obj", tenant, kind, id)
            }
            WriteOp::Check {
                tenant,
                kind,
                id,
                expect,
            } => {
                let version: Option<i64> = tx
                    .prepare_cached(
                        "SELECT version FROM objects WHERE tenant = ?1 AND kind = ?2 AND id = ?3",
                    )
                    .and_then(|mut s| {
                        s.query_row(params![tenant, kind, id], |r| r.get(0))
                            .optional()
                    })
                    .map_err(backend)?;
                let holds = match expect {
                    Expect::Absent => version.is_none(),
                    Expect::Version(v) => version == Some(*v as i64),
                };
                if holds {
                    Ok(())
                } else {
                    Err(StoreError::Conflict(Conflict::Version {
                        kind: kind.to_string(),
                        id: id.clone(),
                    }))
                }
            }
            WriteOp::ClaimUnique {
                scope,
                value,
                target,
            } => {
                let n = tx
                    .prepare_cached(
                        "INSERT INTO uniques (scope, value, tenant, kind, id) VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT DO NOTHING",
                    )
                    .and_then(|mut s| s.execute(params![scope, value, target.tenant, target.kind, target.id]))
                    .map_err(backend)?;
                if n == 0 {
                    let holder: Option<String> = tx
                        .query_row(
                            "SELECT id FROM uniques WHERE scope = ?1 AND value = ?2",
                            params![scope, value],
                            |r| r.get(0),
                        )
                        .optional()
                        .map_err(backend)?;
                    if holder.as_deref() != Some(target.id.as_str()) {
                        return Err(StoreError::Conflict(Conflict::Unique {
                            scope: scope.clone(),
                            value: value.clone(),
                        }));
                    }
                }
                change("uniq", scope, value, "")
            }
            WriteOp::ReleaseUnique { scope, value } => {
                tx.prepare_cached("DELETE FROM uniques WHERE scope = ?1 AND value = ?2")
                    .and_then(|mut s| s.execute(params![scope, value]))
                    .map_err(backend)?;
                change("uniq", scope, value, "")
            }
            WriteOp::Unreferenced {
                tenant,
                kind,
                field,
                value,
            } => {
                // Read inside the write transaction: a referrer committed
                // by anyone before it is seen.
                let path = format!("$.\"{field}\"");
                let found: Option<i64> = tx
                    .prepare_cached(
                        "SELECT 1 FROM objects WHERE tenant = ?1 AND kind = ?2 AND json_extract(body, ?3) = ?4 LIMIT 1",
                    )
                    .and_then(|mut s| {
                        s.query_row(params![tenant, kind, path, value], |r| r.get(0))
                            .optional()
                    })
                    .map_err(backend)?;
                match found {
                    None => Ok(()),
                    Some(_) => Err(StoreError::Conflict(Conflict::Version {
                        kind: kind.to_string(),
                        id: value.clone(),
                    })),
                }
            }
        };
        done
    }

    fn commit_sync(&self, tx: WriteTx) -> Result<(), StoreError> {
        let mut conn = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let t = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        for op in &tx.ops {
            match Self::apply(&t, op) {
                Ok(()) => {}
                Err(e) => {
                    drop(t);
                    drop(conn);
                    // A conflict means our view is behind another writer's:
                    // catch up so a retry reads the current state.
                    if matches!(e, StoreError::Conflict(_)) {
                        self.catch_up()?;
                    }
                    return Err(e);
                }
            }
        }
        for ev in &tx.events {
            t.prepare_cached(
                "INSERT INTO events (id, tenant, type, created_at, body) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut s| {
                s.execute(params![ev.id, ev.tenant, ev.event_type, ev.created_at_ms, ev.envelope.to_string()])
            })
            .map_err(backend)?;
        }
        let last: i64 = t
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM changes", [], |r| {
                r.get(0)
            })
            .map_err(backend)?;
        let n_changes = tx
            .ops
            .iter()
            .filter(|op| !matches!(op, WriteOp::Check { .. } | WriteOp::Unreferenced { .. }))
            .count() as i64;
        t.commit().map_err(backend)?;
        drop(conn);
        self.ring();

        // Fast path: if nobody else wrote since the mirror's last sync, apply
        // our own change set directly instead of re-reading it.
        let _guard = self.sync_lock.lock().unwrap_or_else(|e| e.into_inner());
        if self.seen.load(Ordering::Acquire) != last - n_changes {
            drop(_guard);
            return self.catch_up();
        }
        let mut mirror = self.mirror.write().unwrap_or_else(|e| e.into_inner());
        for op in tx.ops {
            match op {
                WriteOp::Put {
                    tenant,
                    kind,
                    id,
                    doc,
                    ..
                } => {
                    mirror
                        .coll_entry(tenant, kind.to_string())
                        .insert(id, Packed::new(&doc));
                }
                WriteOp::Delete {
                    tenant, kind, id, ..
                } => {
                    if let Some(c) = mirror.coll_mut(&tenant, kind) {
                        c.remove(&id);
                    }
                }
                WriteOp::ClaimUnique {
                    scope,
                    value,
                    target,
                } => {
                    mirror.set_unique(scope, value, Some(target));
                }
                WriteOp::ReleaseUnique { scope, value } => {
                    mirror.set_unique(scope, value, None);
                }
                WriteOp::Check { .. } | WriteOp::Unreferenced { .. } => {}
            }
        }
        drop(mirror);
        self.seen.store(last, Ordering::Release);
        Ok(())
    }

    /// Delete the objects of every expiring kind past their life (as
    /// ordinary deletes, each recorded as a change, so every process's mirror
    /// drops it) and outbox rows dispatched over an hour before `now_ms`; then
    /// prune the change log to its last `keep_changes` entries (a process
    /// further behind reloads whole). Returns how many objects went.
    pub fn purge(&self, now_ms: i64, keep_changes: i64) -> Result<usize, StoreError> {
        let mut purged = 0;
        for spec in self.kinds.expiring() {
            let ttl = spec.ttl_ms.unwrap_or(i64::MAX);
            let cutoff = now_ms.saturating_sub(ttl);
            // Ids carry their creation time: a range of the primary key.
            let (select, lo, hi) = match spec.prefix {
                Some(prefix) => (
                    "SELECT tenant, id, version FROM objects WHERE kind = ?1 AND id >= ?2 AND id < ?3 LIMIT 1000",
                    format!("{prefix}_"),
                    crate::ids::time_prefix(prefix, cutoff),
                ),
                None => (
                    "SELECT tenant, id, version FROM objects WHERE kind = ?1 AND ?2 = ?2 AND json_extract(body, '$.createdAt') < ?3 LIMIT 1000",
                    String::new(),
                    crate::time::format_ms(cutoff),
                ),
            };
            loop {
                let n = self.delete_batch(spec.kind, select, &lo, &hi)?;
                purged += n;
                if n == 0 {
                    break;
                }
            }
        }
        {
            let mut conn = self.writer.lock().unwrap_or_else(|e| e.into_inner());
            let t = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            t.execute(
                "DELETE FROM events WHERE dispatched = 1 AND created_at < ?1",
                [now_ms - 3_600_000],
            )
            .map_err(backend)?;
            // Keep at least the newest change: its seq is what `seen` means.
            t.execute(
                "DELETE FROM changes WHERE seq <= (SELECT MAX(seq) FROM changes) - ?1",
                [keep_changes.max(1)],
            )
            .map_err(backend)?;
            t.commit().map_err(backend)?;
            self.ring();
        }
        self.catch_up()?;
        Ok(purged)
    }

    /// Delete one batch of the objects of `kind` that `select` finds.
    fn delete_batch(
        &self,
        kind: &'static str,
        select: &str,
        lo: &str,
        hi: &str,
    ) -> Result<usize, StoreError> {
        let mut conn = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let t = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let rows: Vec<(String, String, i64)> = t
            .prepare_cached(select)
            .and_then(|mut st| {
                st.query_map(params![kind, lo, hi], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect()
            })
            .map_err(backend)?;
        for (tenant, id, version) in &rows {
            Self::apply(
                &t,
                &WriteOp::Delete {
                    tenant: tenant.clone(),
                    kind,
                    id: id.clone(),
                    expect: Expect::Version(*version as u64),
                },
            )?;
        }
        t.commit().map_err(backend)?;
        if !rows.is_empty() {
            self.ring();
        }
        Ok(rows.len())
    }

    /// After a commit that changed objects or unique claims.
    fn ring(&self) {
        if let Some(bell) = &self.bell {
            bell.ring();
        }
    }

    /// The organizations this store holds (their ids), for `hub audit`.
    pub fn organizations(&self) -> Result<Vec<String>, StoreError> {
        self.read(|m| {
            let mut orgs: Vec<String> = m
                .collections
                .iter()
                .filter(|(_, kinds)| kinds.contains_key(super::ORGS_KIND))
                .map(|(t, _)| t.clone())
                .collect();
            orgs.sort();
            orgs
        })
    }

    fn read<T>(&self, f: impl FnOnce(&Mirror) -> T) -> Result<T, StoreError> {
        let mirror = self.mirror.read().unwrap_or_else(|e| e.into_inner());
        Ok(f(&mirror))
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn refresh(&self) -> StoreResult<()> {
        self.sync()
    }

    async fn refresh_committed(&self) -> StoreResult<()> {
        self.catch_up()
    }

    async fn get(&self, tenant: &str, kind: &str, id: &str) -> StoreResult<Option<Doc>> {
        let found = self.read(|m| m.coll(tenant, kind).and_then(|c| c.docs.get(id)).cloned())?;
        Ok(found.map(|p| self.parsed.parsed(&p)))
    }

    async fn get_json(&self, tenant: &str, kind: &str, id: &str) -> StoreResult<Option<DocJson>> {
        let found = self.read(|m| m.coll(tenant, kind).and_then(|c| c.docs.get(id)).cloned())?;
        Ok(found.map(|p| DocJson::text(p.to_json(), version_in(p.node()))))
    }

    async fn list(&self, tenant: &str, kind: &str, query: &ListQuery) -> StoreResult<ListPage> {
        // The snapshot is taken under the mirror's lock and evaluated after
        // it is released, so a long list never holds up a write.
        let Some(index) = self.read(|m| m.coll(tenant, kind).map(Coll::index))? else {
            return Ok(ListPage {
                total: query.want_total.then_some(0),
                ..Default::default()
            });
        };
        let r = eval::run(&index, query, query.search_fields);
        Ok(ListPage {
            data: r.page.into_iter().cloned().map(Item::Packed).collect(),
            total: query.want_total.then_some(r.total),
            has_prev: r.has_prev,
            has_next: r.has_next,
        })
    }

    async fn all(&self, tenant: &str, kind: &str) -> StoreResult<Vec<Doc>> {
        let found: Vec<Packed> = self.read(|m| {
            m.coll(tenant, kind)
                .map(|c| c.docs.values().cloned().collect())
                .unwrap_or_default()
        })?;
        Ok(found.iter().map(|p| self.parsed.parsed(p)).collect())
    }

    async fn find_unique(&self, scope: &str, value: &str) -> StoreResult<Option<UniqueTarget>> {
        self.read(|m| m.unique(scope, value).cloned())
    }

    async fn commit(&self, tx: WriteTx) -> StoreResult<()> {
        self.commit_sync(tx)
    }

    async fn purge_expired(&self) -> StoreResult<usize> {
        self.purge(crate::time::now_ms(), 100_000)
    }

    async fn idle(&self) {
        // The bell rings after every commit of any process (events are
        // written in the commit of their object): look at it every 10 ms —
        // a memory read, not a query — and at the outbox at least every second.
        let Some(bell) = &self.bell else {
            return tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let before = bell.rung();
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if bell.rung() != before {
                return;
            }
        }
    }

    async fn mark_dispatched(&self, ids: &[String]) -> StoreResult<()> {
        let mut conn = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let t = conn.transaction().map_err(backend)?;
        for id in ids {
            t.prepare_cached("UPDATE events SET dispatched = 1 WHERE id = ?1")
                .and_then(|mut s| s.execute([id]))
                .map_err(backend)?;
        }
        t.commit().map_err(backend)
    }

    async fn pending_events(&self, limit: usize) -> StoreResult<Vec<EventRecord>> {
        self.with_reader(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, tenant, type, created_at, body FROM events WHERE dispatched = 0 ORDER BY seq LIMIT ?1",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map([limit as i64], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, i64>(3)?, r.get::<_, String>(4)?))
                })
                .map_err(backend)?;
            let mut out = Vec::new();
            for row in rows {
                let (id, tenant, event_type, created_at_ms, body) = row.map_err(backend)?;
                out.push(EventRecord { id, tenant, event_type, created_at_ms, envelope: serde_json::from_str(&body).map_err(|e| StoreError::Backend(format!("corrupt event: {e}")))? });
            }
            Ok(out)
        })
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::{Filter, ListQuery, Op, SortKey};
    use serde_json::json;

    fn path(p: &str) -> Vec<String> {
        p.split('.').map(String::from).collect()
    }

    /// Two stores over one file (as `hub serve` and a `hub` command): after
    /// each write by either, both answer a filtered, sorted list exactly as
    /// a snapshot built afresh from the written state does — through the
    /// columns each keeps current, creates, changes and deletes alike.
    #[tokio::test]
    async fn lists_follow_every_write_of_every_process() {
        let dir = std::env::temp_dir().join(format!("hub-embedded-{}", crate::ids::ulid()));
        let a = EmbeddedStore::open(&dir, crate::resources::kinds()).unwrap();
        let b = EmbeddedStore::open(&dir, crate::resources::kinds()).unwrap();
        let tenant = "org_1#test".to_string();
        let cities = ["Leeds", "York", "Hull"];
        let doc = |i: usize, v: usize| {
            json!({"id": format!("pat_{i:05}"), "version": v, "age": (i * 31 + v * 7) % 90,
                   "fullName": format!("P {}", (i * 13 + v) % 17), "address": {"city": cities[(i + v) % 3]}})
        };
        let q = ListQuery {
            filter: Filter::And(vec![
                Filter::Field {
                    path: path("address.city"),
                    op: Op::Eq(json!("Leeds")),
                },
                Filter::Field {
                    path: path("age"),
                    op: Op::Gte(json!(20)),
                },
            ]),
            sort: vec![
                SortKey {
                    path: path("age"),
                    descending: true,
                },
                SortKey {
                    path: path("fullName"),
                    descending: false,
                },
            ],
            limit: 15,
            want_total: true,
            ..Default::default()
        };
        let mut model: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        let mut next = 0usize;
        for step in 0..400usize {
            let store = if step.is_multiple_of(3) { &b } else { &a };
            let existing: Vec<String> = model.keys().cloned().collect();
            let pick = existing.get((step * 7919) % existing.len().max(1)).cloned();
            let op = match (step % 5, pick) {
                (0 | 1, _) | (_, None) => {
                    next += 1;
                    model.insert(format!("pat_{next:05}"), (next, 1));
                    WriteOp::Put {
                        tenant: tenant.clone(),
                        kind: "patients",
                        id: format!("pat_{next:05}"),
                        doc: doc(next, 1),
                        expect: Expect::Absent,
                    }
                }
                (4, Some(id)) => {
                    let (_, v) = model.remove(&id).unwrap();
                    WriteOp::Delete {
                        tenant: tenant.clone(),
                        kind: "patients",
                        id,
                        expect: Expect::Version(v as u64),
                    }
                }
                (_, Some(id)) => {
                    let (i, v) = model[&id];
                    model.insert(id.clone(), (i, v + 1));
                    WriteOp::Put {
                        tenant: tenant.clone(),
                        kind: "patients",
                        id,
                        doc: doc(i, v + 1),
                        expect: Expect::Version(v as u64),
                    }
                }
            };
            store.commit(WriteTx::of(vec![op])).await.unwrap();
            let docs: Vec<Doc> = model.values().map(|&(i, v)| Arc::new(doc(i, v))).collect();
            let fresh = Index::new(docs);
            let want = eval::run(&fresh, &q, &[]);
            let want: Vec<Value> = want.page.iter().map(|d| (***d).clone()).collect();
            for s in [&a, &b] {
                s.refresh().await.unwrap();
                let got = s.list(&tenant, "patients", &q).await.unwrap();
                let got: Vec<Value> = got.docs().iter().map(|d| (**d).clone()).collect();
                assert_eq!(got, want, "step {step}");
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
