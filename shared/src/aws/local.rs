//! `hub serve --table`: every route over DynamoDB and SQS with exactly the
//! code the Lambda functions run, on one machine (DynamoDB Local and moto's
//! server or LocalStack; or AWS itself). The table, the delivery queue and
//! its dead-letter queue are made as `template.yaml` makes them when they do
//! not exist, and two pollers do what Lambda's event source mappings do:
//! [`super::stream_poller`] reads the table's stream into the fan-out
//! handler, [`super::queue_poller`] long-polls the delivery queue into the
//! delivery handler.

use super::queue_poller::QueuePoller;
use super::stream_poller::StreamPoller;
use crate::queue::sqs::SqsQueue;
use crate::queue::DynQueue;
use crate::store::dynamodb::DynamoStore;
use crate::store::DynStore;
use crate::webhooks::deliver::DeliveryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sqs::types::QueueAttributeName;
use std::sync::Arc;
use std::time::Duration;

/// The delivery queue's `VisibilityTimeout` in `template.yaml`.
pub const QUEUE_VISIBILITY: Duration = Duration::from_secs(90);
/// The dead-letter queue's `MessageRetentionPeriod` in `template.yaml` (14 days).
const DEAD_LETTER_RETENTION_SECS: u32 = 1_209_600;

/// Where the services are: an explicit endpoint (DynamoDB Local, moto,
/// LocalStack) or, when `None`, AWS itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoints {
    /// DynamoDB and its Streams API (DynamoDB Local serves both).
    pub dynamodb: Option<String>,
    pub sqs: Option<String>,
}

impl Endpoints {
    /// `AWS_ENDPOINT_URL_DYNAMODB` and `AWS_ENDPOINT_URL_SQS`, each falling
    /// back to `AWS_ENDPOINT_URL`.
    pub fn from_env() -> Endpoints {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Endpoints {
            dynamodb: var("AWS_ENDPOINT_URL_DYNAMODB").or_else(|| var("AWS_ENDPOINT_URL")),
            sqs: var("AWS_ENDPOINT_URL_SQS").or_else(|| var("AWS_ENDPOINT_URL")),
        }
    }
}

/// Is this endpoint on this machine (127.0.0.0/8, ::1, localhost)?
pub fn is_loopback(url: &str) -> bool {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .unwrap_or(url);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The SDK configuration for one service: the usual AWS environment
/// (credentials, region) and the endpoint when given. For an endpoint on
/// this machine, static local credentials stand in when
/// `AWS_ACCESS_KEY_ID` is not set (DynamoDB Local and moto take any, and no
/// credential chain or instance metadata is asked), and the region is
/// `us-east-1` unless `AWS_REGION`/`AWS_DEFAULT_REGION` says otherwise.
pub async fn sdk_config(endpoint: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(super::http::client())
        .retry_config(super::retry_config())
        .timeout_config(super::timeout_config());
    if let Some(url) = endpoint {
        loader = loader.endpoint_url(url);
        if is_loopback(url) {
            if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
                loader = loader.credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                    "local",
                    "local",
                    None,
                    None,
                    "hub-local",
                ));
            }
            if std::env::var_os("AWS_REGION").is_none()
                && std::env::var_os("AWS_DEFAULT_REGION").is_none()
            {
                loader = loader.region(Region::new("us-east-1"));
            }
        }
    }
    loader.load().await
}

/// The delivery queue's settings that `template.yaml` takes from parameters.
#[derive(Debug, Clone, Copy)]
pub struct QueueSettings {
    /// `maxReceiveCount` of the redrive policy: the retry schedule's attempts
    /// (the template's `DeliveryAttempts`).
    pub attempts: u32,
    /// How long a received message stays hidden (the template's 90 s).
    pub visibility: Duration,
}

/// How the pollers poll. The defaults are Lambda's.
#[derive(Debug, Clone, Copy)]
pub struct Polling {
    /// Between `GetRecords` calls on a shard with nothing new (Lambda polls
    /// a shard four times a second).
    pub stream_interval: Duration,
    /// Records per fan-out batch (the template's `BatchSize: 100`).
    pub stream_batch: usize,
    /// Messages per delivery batch (the template's `BatchSize: 10`).
    pub queue_batch: usize,
    /// Long-poll wait of each receive (Lambda's 20 s).
    pub queue_wait: Duration,
    /// Delivery batches handled at once (Lambda starts with five).
    pub queue_concurrency: usize,
}

impl Default for Polling {
    fn default() -> Self {
        Polling {
            stream_interval: Duration::from_millis(250),
            stream_batch: 100,
            queue_batch: 10,
            queue_wait: Duration::from_secs(20),
            queue_concurrency: 5,
        }
    }
}

/// The table and the queues of one deployment, connected.
pub struct LocalAws {
    pub table: String,
    pub store: Arc<DynamoStore>,
    pub queue: Arc<SqsQueue>,
    pub queue_arn: String,
    pub dead_letter_url: String,
    pub region: String,
    dynamodb: aws_sdk_dynamodb::Client,
    streams: aws_sdk_dynamodbstreams::Client,
    sqs: aws_sdk_sqs::Client,
}

/// The queue names of a table: `{table}-deliveries` and
/// `{table}-dead-letters` (SQS allows letters, digits, `-` and `_`, up to 80).
pub fn queue_names(table: &str) -> (String, String) {
    let base: String = table
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(80 - "-dead-letters".len())
        .collect();
    (format!("{base}-deliveries"), format!("{base}-dead-letters"))
}

fn sdk_error<E: std::error::Error>(e: E) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl LocalAws {
    /// Connect to the table and the queues at these endpoints (see
    /// [`sdk_config`]), making whatever does not exist.
    pub async fn connect(
        table: &str,
        endpoints: &Endpoints,
        settings: QueueSettings,
    ) -> Result<LocalAws, String> {
        let dynamodb = sdk_config(endpoints.dynamodb.as_deref()).await;
        let sqs = sdk_config(endpoints.sqs.as_deref()).await;
        Self::open(&dynamodb, &sqs, table, settings).await
    }

    /// The same from ready SDK configurations (DynamoDB's also serves the
    /// Streams API).
    pub async fn open(
        dynamodb: &SdkConfig,
        sqs: &SdkConfig,
        table: &str,
        settings: QueueSettings,
    ) -> Result<LocalAws, String> {
        let region = dynamodb
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "us-east-1".into());
        let ddb = aws_sdk_dynamodb::Client::new(dynamodb);
        let streams = aws_sdk_dynamodbstreams::Client::new(dynamodb);
        let sqs = aws_sdk_sqs::Client::new(sqs);
        ensure_table(&ddb, table).await?;
        let (url, queue_arn, dead_letter_url) = ensure_queues(&sqs, table, settings).await?;
        Ok(LocalAws {
            table: table.to_string(),
            store: Arc::new(DynamoStore::new(
                ddb.clone(),
                table,
                crate::resources::kinds(),
            )),
            queue: Arc::new(SqsQueue::new(sqs.clone(), url)),
            queue_arn,
            dead_letter_url,
            region,
            dynamodb: ddb,
            streams,
            sqs,
        })
    }

    pub fn dyn_store(&self) -> DynStore {
        self.store.clone()
    }

    pub fn dyn_queue(&self) -> DynQueue {
        self.queue.clone()
    }

    /// The stream poller (the fan-out function's event source mapping).
    pub fn stream_poller(&self, polling: Polling) -> StreamPoller {
        StreamPoller {
            dynamodb: self.dynamodb.clone(),
            streams: self.streams.clone(),
            table: self.table.clone(),
            store: self.dyn_store(),
            queue: self.dyn_queue(),
            interval: polling.stream_interval,
            batch: polling.stream_batch,
        }
    }

    /// The queue poller (the delivery function's event source mapping).
    pub fn queue_poller(&self, delivery: DeliveryConfig, polling: Polling) -> QueuePoller {
        QueuePoller {
            sqs: self.sqs.clone(),
            url: self.queue.url().to_string(),
            arn: self.queue_arn.clone(),
            region: self.region.clone(),
            store: self.dyn_store(),
            queue: self.dyn_queue(),
            delivery: Arc::new(delivery),
            batch: polling.queue_batch,
            wait: polling.queue_wait,
            concurrency: polling.queue_concurrency,
        }
    }

    /// Start both pollers; they stop (with every batch they run) when the
    /// returned handles are aborted or dropped with the runtime.
    pub fn spawn_pollers(
        &self,
        delivery: DeliveryConfig,
        polling: Polling,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        vec![
            tokio::spawn(Arc::new(self.stream_poller(polling)).run()),
            tokio::spawn(Arc::new(self.queue_poller(delivery, polling)).run()),
        ]
    }
}

/// The table as `template.yaml` makes it, unless it exists; an existing
/// table must have its stream.
async fn ensure_table(client: &aws_sdk_dynamodb::Client, table: &str) -> Result<(), String> {
    let described = match client.describe_table().table_name(table).send().await {
        Ok(out) => out,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            if let Err(e) = DynamoStore::create_table(client, table).await {
                // Another process may have made it meanwhile.
                if !e.to_string().contains("ResourceInUseException") {
                    return Err(format!("cannot create the table {table}: {e}"));
                }
            }
            crate::log::info("aws", &format!("created the table {table}"));
            client
                .describe_table()
                .table_name(table)
                .send()
                .await
                .map_err(|e| format!("DynamoDB: {}", sdk_error(e)))?
        }
        Err(e) => return Err(format!("DynamoDB: {}", sdk_error(e))),
    };
    let mut described = described;
    // A new table is usable once ACTIVE (at once on DynamoDB Local).
    for _ in 0..240 {
        let active = described
            .table()
            .and_then(|t| t.table_status())
            .is_some_and(|s| *s == aws_sdk_dynamodb::types::TableStatus::Active);
        if active {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        described = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| format!("DynamoDB: {}", sdk_error(e)))?;
    }
    let has_stream = described.table().is_some_and(|t| {
        t.latest_stream_arn().is_some()
            && t.stream_specification().is_some_and(|s| s.stream_enabled())
    });
    if !has_stream {
        return Err(format!(
            "the table {table} has no stream, which the webhook fan-out reads \
             (make it with `hub table create` or template.yaml)"
        ));
    }
    Ok(())
}

async fn queue_url(client: &aws_sdk_sqs::Client, name: &str) -> Result<Option<String>, String> {
    match client.get_queue_url().queue_name(name).send().await {
        Ok(out) => Ok(out.queue_url),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_queue_does_not_exist()) =>
        {
            Ok(None)
        }
        Err(e) => Err(format!("SQS: {}", sdk_error(e))),
    }
}

async fn queue_arn(client: &aws_sdk_sqs::Client, url: &str) -> Result<String, String> {
    client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| format!("SQS: {}", sdk_error(e)))?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| format!("SQS: the queue {url} has no ARN"))
}

/// The dead-letter queue, and the delivery queue whose redrive policy sends
/// a message there after `attempts` receives; the delivery queue's
/// visibility and redrive policy are (re)set to the settings every time, so
/// they follow the retry schedule. Returns (queue URL, queue ARN, DLQ URL).
async fn ensure_queues(
    client: &aws_sdk_sqs::Client,
    table: &str,
    settings: QueueSettings,
) -> Result<(String, String, String), String> {
    let (name, dead_name) = queue_names(table);
    let dead_url = match queue_url(client, &dead_name).await? {
        Some(url) => url,
        None => client
            .create_queue()
            .queue_name(&dead_name)
            .attributes(
                QueueAttributeName::MessageRetentionPeriod,
                DEAD_LETTER_RETENTION_SECS.to_string(),
            )
            .send()
            .await
            .map_err(|e| format!("SQS: cannot create {dead_name}: {}", sdk_error(e)))?
            .queue_url
            .ok_or("SQS: CreateQueue answered no URL")?,
    };
    let dead_arn = queue_arn(client, &dead_url).await?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dead_arn,
        "maxReceiveCount": settings.attempts.max(1),
    })
    .to_string();
    let visibility = settings
        .visibility
        .as_secs()
        .clamp(0, 12 * 3600)
        .to_string();
    let url = match queue_url(client, &name).await? {
        Some(url) => {
            client
                .set_queue_attributes()
                .queue_url(&url)
                .attributes(QueueAttributeName::VisibilityTimeout, &visibility)
                .attributes(QueueAttributeName::RedrivePolicy, &redrive)
                .send()
                .await
                .map_err(|e| format!("SQS: cannot configure {name}: {}", sdk_error(e)))?;
            url
        }
        None => client
            .create_queue()
            .queue_name(&name)
            .attributes(QueueAttributeName::VisibilityTimeout, &visibility)
            .attributes(QueueAttributeName::RedrivePolicy, &redrive)
            .send()
            .await
            .map_err(|e| format!("SQS: cannot create {name}: {}", sdk_error(e)))?
            .queue_url
            .ok_or("SQS: CreateQueue answered no URL")?,
    };
    let arn = queue_arn(client, &url).await?;
    Ok((url, arn, dead_url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_endpoints() {
        for url in [
            "http://127.0.0.1:8000",
            "http://localhost:4566/",
            "http://[::1]:5000",
            "https://127.0.0.2",
        ] {
            assert!(is_loopback(url), "{url}");
        }
        for url in [
            "https://dynamodb.eu-west-2.amazonaws.com",
            "http://10.0.0.1:8000",
            "http://localhost.example.com",
        ] {
            assert!(!is_loopback(url), "{url}");
        }
    }

    #[test]
    fn queue_names_are_valid_for_sqs() {
        assert_eq!(
            queue_names("hub"),
            ("hub-deliveries".into(), "hub-dead-letters".into())
        );
        let (q, d) = queue_names(&format!("my.table_{}", "x".repeat(300)));
        assert!(q.starts_with("my-table_") && q.len() <= 80 && d.len() <= 80);
    }
}
