//! A durable queue in the embedded database: a message survives a `kill -9`
//! until it is deleted; a received message reappears when its visibility
//! timeout passes (at-least-once, like SQS).

use super::{Queue, Received};
use crate::store::{StoreError, StoreResult};
use async_trait::async_trait;
use rusqlite::{params, Connection};
use serde_json::Value;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

pub struct EmbeddedQueue {
    conn: Mutex<Connection>,
    /// Woken by every send and visibility change of this process.
    woken: tokio::sync::Notify,
    /// When the earliest message known to this process is due (ms), or
    /// `i64::MAX`: what an idle receiver waits for.
    due: AtomicI64,
}

/// An idle receiver looks again at least this often, for messages another
/// process sharing the data directory sent.
const IDLE_MAX: Duration = Duration::from_secs(1);

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

impl EmbeddedQueue {
    /// Open the queue in the data directory (the same database file as the store).
    pub fn open(dir: &Path) -> StoreResult<EmbeddedQueue> {
        let path = crate::store::private_file(dir, "hub.sqlite3")
            .map_err(|e| StoreError::Backend(format!("{}: {e}", dir.display())))?;
        let conn = Connection::open(path).map_err(backend)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(backend)?;
        conn.execute_batch(&format!(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
             PRAGMA wal_autocheckpoint={};
             CREATE TABLE IF NOT EXISTS queue (
                 id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL,
                 visible_at INTEGER NOT NULL, receive_count INTEGER NOT NULL DEFAULT 0);
             CREATE INDEX IF NOT EXISTS queue_visible ON queue (visible_at);",
            crate::store::embedded::AUTOCHECKPOINT_PAGES
        ))
        .map_err(backend)?;
        Ok(EmbeddedQueue {
            conn: Mutex::new(conn),
            woken: tokio::sync::Notify::new(),
            due: AtomicI64::new(i64::MAX),
        })
    }

    fn parse_handle(handle: &str) -> StoreResult<(i64, i64)> {
        let (id, n) = handle
            .split_once(':')
            .ok_or_else(|| StoreError::Backend("bad queue handle".into()))?;
        Ok((
            id.parse()
                .map_err(|_| StoreError::Backend("bad queue handle".into()))?,
            n.parse()
                .map_err(|_| StoreError::Backend("bad queue handle".into()))?,
        ))
    }
}

#[async_trait]
impl Queue for EmbeddedQueue {
    async fn send(&self, bodies: Vec<Value>, delay: Duration) -> StoreResult<()> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let tx = conn.transaction().map_err(backend)?;
        let at = crate::time::now_ms() + ms(delay);
        for b in bodies {
            tx.prepare_cached("INSERT INTO queue (body, visible_at) VALUES (?1, ?2)")
                .and_then(|mut s| s.execute(params![b.to_string(), at]))
                .map_err(backend)?;
        }
        tx.commit().map_err(backend)?;
        self.due.fetch_min(at, Ordering::AcqRel);
        self.woken.notify_one();
        Ok(())
    }

    async fn receive(&self, max: usize, visibility: Duration) -> StoreResult<Vec<Received>> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let now = crate::time::now_ms();
        let mut stmt = conn
            .prepare_cached(
                "UPDATE queue SET visible_at = ?1, receive_count = receive_count + 1
                 WHERE id IN (SELECT id FROM queue WHERE visible_at <= ?2 ORDER BY visible_at, id LIMIT ?3)
                 RETURNING id, body, receive_count",
            )
            .map_err(backend)?;
        let rows = stmt
            .query_map(params![now + ms(visibility), now, max as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .map_err(backend)?;
        let mut out = Vec::new();
        for row in rows {
            let (id, body, count) = row.map_err(backend)?;
            let body =
                serde_json::from_str(&body).map_err(|e| StoreError::Backend(e.to_string()))?;
            out.push(Received {
                handle: format!("{id}:{count}"),
                body,
                receive_count: count as u32,
            });
        }
        drop(stmt);
        if out.is_empty() {
            // Nothing visible: note when the next message is due.
            let next: Option<i64> = conn
                .prepare_cached("SELECT MIN(visible_at) FROM queue")
                .and_then(|mut s| s.query_row([], |r| r.get(0)))
                .map_err(backend)?;
            self.due.store(next.unwrap_or(i64::MAX), Ordering::Release);
        }
        Ok(out)
    }

    async fn delete(&self, handle: &str) -> StoreResult<()> {
        let (id, count) = Self::parse_handle(handle)?;
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        conn.prepare_cached("DELETE FROM queue WHERE id = ?1 AND receive_count = ?2")
            .and_then(|mut s| s.execute(params![id, count]))
            .map_err(backend)?;
        Ok(())
    }

    /// One transaction for them all.
    async fn delete_many(&self, handles: &[String]) -> StoreResult<()> {
        let handles = handles
            .iter()
            .map(|h| Self::parse_handle(h))
            .collect::<StoreResult<Vec<_>>>()?;
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let tx = conn.transaction().map_err(backend)?;
        for (id, count) in handles {
            tx.prepare_cached("DELETE FROM queue WHERE id = ?1 AND receive_count = ?2")
                .and_then(|mut s| s.execute(params![id, count]))
                .map_err(backend)?;
        }
        tx.commit().map_err(backend)
    }

    async fn change_visibility(&self, handle: &str, delay: Duration) -> StoreResult<()> {
        let (id, count) = Self::parse_handle(handle)?;
        let at = crate::time::now_ms() + ms(delay);
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        conn.prepare_cached(
            "UPDATE queue SET visible_at = ?1 WHERE id = ?2 AND receive_count = ?3",
        )
        .and_then(|mut s| s.execute(params![at, id, count]))
        .map_err(backend)?;
        self.due.fetch_min(at, Ordering::AcqRel);
        self.woken.notify_one();
        Ok(())
    }

    async fn idle(&self) {
        let due = self.due.load(Ordering::Acquire);
        let wait = Duration::from_millis(
            due.saturating_sub(crate::time::now_ms())
                .clamp(0, ms(IDLE_MAX)) as u64,
        );
        tokio::select! {
            _ = self.woken.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
