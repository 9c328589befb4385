//! The in-process webhook runtime of `hub serve`: the fan-out loop over the
//! store's outbox and the delivery loop over the embedded queue. The AWS
//! deployment runs the same `fan_out` and `deliver::make_from` from Lambdas.

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

/// Most attempts waiting to be recorded together (beyond it, delivery
/// tasks wait: the backlog of unrecorded attempts stays bounded).
const FINISHING: usize = 1024;
/// Most attempts recorded in one write.
const FINISH_BATCH: usize = 256;

/// Receive deliveries and attempt them, up to 64 at a time, forever.
///
/// A delivered attempt at a healthy endpoint is recorded together with the
/// others finished meanwhile (one store write for them, then one queue
/// write deleting their messages: [`finish`]); other outcomes are recorded
/// at once by their task. Either way a message is deleted only after its
/// attempt is stored, so a crash in between delivers it again (at least
/// once), never loses it or its record.
pub async fn run_delivery(store: DynStore, queue: DynQueue, cfg: DeliveryConfig) {
    let cfg = Arc::new(cfg);
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    let (done, finished) = tokio::sync::mpsc::channel(FINISHING);
    let finisher = tokio::spawn(finish(store.clone(), queue.clone(), finished));
    let _finisher = AbortOnDrop(finisher);
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
        // Once for the batch: each message was sent after its event and
        // endpoint were committed (by any process), so a view refreshed now
        // holds them. Until it can be, the batch waits.
        if let Err(e) = store.refresh().await {
            crate::log::error("delivery", &e.to_string());
            for msg in &batch {
                let _ = queue
                    .change_visibility(&msg.handle, Duration::from_secs(1))
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        for msg in batch {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let (store, queue, cfg, done) =
                (store.clone(), queue.clone(), cfg.clone(), done.clone());
            tokio::spawn(async move {
                let _permit = permit;
                let made =
                    match deliver::make(store.as_ref(), &cfg, &msg.body, msg.receive_count).await {
                        Ok(Some(made)) if made.delivered() => {
                            // The permit is held while the finisher's queue
                            // is full.
                            let _ = done.send((made, msg.handle)).await;
                            return;
                        }
                        Ok(made) => made,
                        // Leave it: it reappears after the visibility timeout.
                        Err(e) => {
                            crate::log::error("delivery", &e.to_string());
                            return;
                        }
                    };
                let outcome = deliver::settle(store.as_ref(), made).await;
                let done = match outcome {
                    Ok(Outcome::Retry(d)) => queue.change_visibility(&msg.handle, d).await,
                    Ok(_) => queue.delete(&msg.handle).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = done {
                    crate::log::error("delivery", &e.to_string());
                }
            });
        }
    }
}

/// Aborts its task when dropped (the finisher ends with its loop).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Record the delivered attempts waiting, together, then delete their
/// messages in one queue write; again as long as attempts come.
async fn finish(
    store: DynStore,
    queue: DynQueue,
    mut finished: tokio::sync::mpsc::Receiver<(deliver::Attempted, String)>,
) {
    let mut batch = Vec::with_capacity(FINISH_BATCH);
    while finished.recv_many(&mut batch, FINISH_BATCH).await > 0 {
        let made: Vec<&deliver::Attempted> = batch.iter().map(|(m, _)| m).collect();
        let recorded = deliver::record_all(store.as_ref(), &made).await;
        let mut handles = Vec::with_capacity(batch.len());
        for ((_, handle), r) in batch.drain(..).zip(recorded) {
            match r {
                Ok(()) => handles.push(handle),
                // Not recorded: the message stays, and reappears after its
                // visibility timeout.
                Err(e) => crate::log::error("delivery", &e.to_string()),
            }
        }
        if let Err(e) = queue.delete_many(&handles).await {
            crate::log::error("delivery", &e.to_string());
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
