//! What the delivery function's SQS event source mapping does, in the
//! process: long-poll the delivery queue, hand each batch (the template's
//! `BatchSize: 10`, as a Lambda SQS event) to the delivery Lambda's own
//! handler ([`crate::lambda::handle_sqs`]), and delete the messages it did
//! not report in `batchItemFailures`. A failed message stays in the queue:
//! it comes back when the visibility the handler set runs out (the retry
//! back-off, or the queue's visibility timeout), with its receive count one
//! higher, and after the redrive policy's `maxReceiveCount` receives SQS
//! moves it to the dead-letter queue.
//!
//! Up to `concurrency` batches run at once; receives are made one at a
//! time, so no two of this process's receives race for a message.

use crate::lambda;
use crate::queue::DynQueue;
use crate::store::DynStore;
use crate::webhooks::deliver::DeliveryConfig;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

pub struct QueuePoller {
    pub sqs: aws_sdk_sqs::Client,
    pub url: String,
    pub arn: String,
    pub region: String,
    pub store: DynStore,
    /// The same queue, for the handler's visibility changes.
    pub queue: DynQueue,
    pub delivery: Arc<DeliveryConfig>,
    pub batch: usize,
    pub wait: Duration,
    pub concurrency: usize,
}

/// A received message as the Lambda SQS event carries it.
pub fn record_json(m: &Message, queue_arn: &str, region: &str) -> Value {
    let attributes: Map<String, Value> = m
        .attributes()
        .map(|a| {
            a.iter()
                .map(|(k, v)| (k.as_str().to_string(), json!(v)))
                .collect()
        })
        .unwrap_or_default();
    json!({
        "messageId": m.message_id(),
        "receiptHandle": m.receipt_handle(),
        "body": m.body(),
        "attributes": attributes,
        "messageAttributes": {},
        "md5OfBody": m.md5_of_body(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    })
}

impl QueuePoller {
    /// Poll forever (until the task is aborted, which stops every batch).
    pub async fn run(self: Arc<Self>) {
        let permits = Arc::new(Semaphore::new(self.concurrency.max(1)));
        let mut batches: JoinSet<()> = JoinSet::new();
        let mut failures = 0u32;
        loop {
            while batches.try_join_next().is_some() {}
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let messages = match self.receive().await {
                Ok(m) => {
                    failures = 0;
                    m
                }
                Err(e) => {
                    crate::log::error("queue", &e);
                    failures = (failures + 1).min(6);
                    let pause = Duration::from_millis(100) * 2u32.pow(failures);
                    tokio::time::sleep(pause.min(Duration::from_secs(5))).await;
                    continue;
                }
            };
            if messages.is_empty() {
                continue;
            }
            let this = self.clone();
            batches.spawn(async move {
                let _permit = permit;
                this.handle(messages).await;
            });
        }
    }

    async fn receive(&self) -> Result<Vec<Message>, String> {
        let wait = self.wait.as_secs().min(20);
        // A long poll answers after up to `wait`: its attempts may take
        // that much longer than other calls' ([`crate::aws::timeout_config`]).
        let attempt = crate::aws::ATTEMPT_TIMEOUT + Duration::from_secs(wait);
        let timeouts = crate::aws::timeout_config()
            .to_builder()
            .operation_attempt_timeout(attempt)
            .operation_timeout(attempt * 2)
            .build();
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(self.batch.clamp(1, 10) as i32)
            .wait_time_seconds(wait as i32)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .customize()
            .config_override(aws_sdk_sqs::config::Config::builder().timeout_config(timeouts))
            .send()
            .await
            .map_err(|e| format!("ReceiveMessage: {}", super::stream_poller::err_text(e)))?;
        Ok(out.messages.unwrap_or_default())
    }

    /// One Lambda invocation: the handler, then the deletes Lambda makes.
    async fn handle(&self, messages: Vec<Message>) {
        let records: Vec<Value> = messages
            .iter()
            .map(|m| record_json(m, &self.arn, &self.region))
            .collect();
        let result = lambda::handle_sqs_json(
            self.store.as_ref(),
            self.queue.as_ref(),
            &self.delivery,
            &json!({"Records": records}),
        )
        .await;
        let failed: Vec<&str> = result["batchItemFailures"]
            .as_array()
            .map(|f| {
                f.iter()
                    .filter_map(|f| f["itemIdentifier"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        let done: Vec<DeleteMessageBatchRequestEntry> = messages
            .iter()
            .enumerate()
            .filter(|(_, m)| !m.message_id().is_some_and(|id| failed.contains(&id)))
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .set_receipt_handle(m.receipt_handle().map(String::from))
                    .build()
                    .ok()
            })
            .collect();
        if done.is_empty() {
            return;
        }
        match self
            .sqs
            .delete_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(done))
            .send()
            .await
        {
            // A message not deleted comes back and is delivered again (at
            // least once).
            Ok(out) if !out.failed().is_empty() => crate::log::error(
                "queue",
                &format!("{} delivered messages were not deleted", out.failed().len()),
            ),
            Ok(_) => {}
            Err(e) => crate::log::error(
                "queue",
                &format!("DeleteMessageBatch: {}", super::stream_poller::err_text(e)),
            ),
        }
    }
}
