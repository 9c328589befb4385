//! The delivery queue: one trait with SQS semantics (visibility timeout,
//! receive count, change of visibility), an embedded durable implementation
//! here and SQS with the AWS work.

pub mod embedded;
pub mod sqs;

use crate::store::StoreResult;
use async_trait::async_trait;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Received {
    /// Identifies this receipt; stale after the message is received again.
    pub handle: String,
    pub body: Value,
    /// How many times the message has been received, this time included.
    pub receive_count: u32,
}

#[async_trait]
pub trait Queue: Send + Sync {
    /// Enqueue messages, visible after `delay`.
    async fn send(&self, bodies: Vec<Value>, delay: Duration) -> StoreResult<()>;
    /// Up to `max` visible messages, hidden from other receivers for `visibility`.
    async fn receive(&self, max: usize, visibility: Duration) -> StoreResult<Vec<Received>>;
    /// Done with a message: remove it.
    async fn delete(&self, handle: &str) -> StoreResult<()>;
    /// Done with several messages.
    async fn delete_many(&self, handles: &[String]) -> StoreResult<()> {
        for h in handles {
            self.delete(h).await?;
        }
        Ok(())
    }
    /// Make a received message visible again after `delay`.
    async fn change_visibility(&self, handle: &str, delay: Duration) -> StoreResult<()>;
    /// After an empty `receive`: wait until a message may be there. A queue
    /// that knows when its next message is due waits for that (or a send).
    async fn idle(&self) {
        tokio::time::sleep(Duration::from_millis(10)).await
    }
}

pub type DynQueue = Arc<dyn Queue>;
