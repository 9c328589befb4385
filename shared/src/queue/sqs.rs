//! The SQS queue: the same trait over a real queue. Delays and visibility
//! are SQS's (send delay at most 15 minutes, visibility at most 12 hours;
//! longer retry delays are split by the worker seeing the message again).

use super::{Queue, Received};
use crate::store::{StoreError, StoreResult};
use async_trait::async_trait;
use aws_sdk_sqs::types::{MessageSystemAttributeName, SendMessageBatchRequestEntry};
use aws_sdk_sqs::Client;
use serde_json::Value;
use std::time::Duration;

const MAX_DELAY: Duration = Duration::from_secs(900);
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);

pub struct SqsQueue {
    client: Client,
    url: String,
}

fn backend<E: std::fmt::Debug>(e: E) -> StoreError {
    StoreError::Backend(format!("{e:?}").chars().take(500).collect())
}

impl SqsQueue {
    pub fn new(client: Client, url: impl Into<String>) -> SqsQueue {
        SqsQueue {
            client,
            url: url.into(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send(&self, bodies: Vec<Value>, delay: Duration) -> StoreResult<()> {
        let delay = delay.min(MAX_DELAY).as_secs() as i32;
        for chunk in bodies.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(b.to_string())
                        .delay_seconds(delay)
                        .build()
                        .map_err(backend)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(backend)?;
            if !out.failed().is_empty() {
                return Err(StoreError::Backend(format!(
                    "{} messages were not sent",
                    out.failed().len()
                )));
            }
        }
        Ok(())
    }

    async fn receive(&self, max: usize, visibility: Duration) -> StoreResult<Vec<Received>> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .visibility_timeout(visibility.min(MAX_VISIBILITY).as_secs() as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(backend)?;
        let mut received = Vec::new();
        for m in out.messages() {
            let (Some(handle), Some(body)) = (m.receipt_handle(), m.body()) else {
                continue;
            };
            let count = m
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .and_then(|c| c.parse().ok())
                .unwrap_or(1);
            let body = serde_json::from_str(body).map_err(backend)?;
            received.push(Received {
                handle: handle.to_string(),
                body,
                receive_count: count,
            });
        }
        Ok(received)
    }

    async fn delete(&self, handle: &str) -> StoreResult<()> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(handle)
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn change_visibility(&self, handle: &str, delay: Duration) -> StoreResult<()> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(handle)
            .visibility_timeout(delay.min(MAX_VISIBILITY).as_secs() as i32)
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }
}

/// An SQS client for a local endpoint (moto) with static test credentials.
pub async fn local_client(endpoint: &str, region: &str) -> Client {
    Client::new(&crate::aws::local_config(endpoint, region).await)
}
