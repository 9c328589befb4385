//! The in-process webhook runtime of `hub serve`: the fan-out loop over the
//! store's outbox and the delivery loop over the embedded queue. The AWS
//! deployment runs the same `fan_out` and `deliver::attempt` from Lambdas.

use super::deliver::{self, DeliveryConfig, Outcome};
use super::fanout;
use crate::queue::DynQueue;
use crate::store::DynStore;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

const IDLE: Duration = Duration::from_millis(10);
const CONCURRENCY: usize = 64;

/// Move events from the outbox to the queue, forever.
pub async fn run_fanout(store: DynStore, queue: DynQueue) {
    loop {
        let batch = match store.pending_events(500).await {
            Ok(b) => b,
            Err(e) => {
                crate::log::error("fanout", &e.to_string());
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if batch.is_empty() {
            store.idle().await;
            continue;
        }
        // Enqueue first, then mark: a crash in between enqueues twice (at
        // least once), never zero times.
        let done = match fanout::fan_out(store.as_ref(), queue.as_ref(), &batch).await {
            Ok(_) => {
                store
                    .mark_dispatched(&batch.iter().map(|e| e.id.clone()).collect::<Vec<_>>())
                    .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = done {
            crate::log::error("fanout", &e.to_string());
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Receive deliveries and attempt them, up to 64 at a time, forever.
pub async fn run_delivery(store: DynStore, queue: DynQueue, cfg: DeliveryConfig) {
    let cfg = Arc::new(cfg);
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    // A message stays hidden while its attempt runs.
    let visibility = cfg.timeout + Duration::from_secs(30);
    loop {
        let free = permits.available_permits();
        if free == 0 {
            tokio::time::sleep(IDLE).await;
            continue;
        }
        let batch = match queue.receive(free.min(32), visibility).await {
            Ok(b) => b,
            Err(e) => {
                crate::log::error("delivery", &e.to_string());
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if batch.is_empty() {
            queue.idle().await;
            continue;
        }
        for msg in batch {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let (store, queue, cfg) = (store.clone(), queue.clone(), cfg.clone());
            tokio::spawn(async move {
                let _permit = permit;
                let outcome =
                    deliver::attempt(store.as_ref(), &cfg, &msg.body, msg.receive_count).await;
                let done = match outcome {
                    Ok(Outcome::Retry(d)) => queue.change_visibility(&msg.handle, d).await,
                    Ok(_) => queue.delete(&msg.handle).await,
                    // Leave it: it reappears after the visibility timeout.
                    Err(e) => Err(e),
                };
                if let Err(e) = done {
                    crate::log::error("delivery", &e.to_string());
                }
            });
        }
    }
}

/// Start both loops; they stop when the returned handles are aborted.
pub fn spawn(
    store: DynStore,
    queue: DynQueue,
    cfg: DeliveryConfig,
) -> Vec<tokio::task::JoinHandle<()>> {
    vec![
        tokio::spawn(run_fanout(store.clone(), queue.clone())),
        tokio::spawn(run_delivery(store, queue, cfg)),
    ]
}
