//! AWS SDK configuration for local servers (DynamoDB Local, moto): an
//! explicit endpoint, region and static test credentials, so no client ever
//! walks the credential chain or asks instance metadata.

/// The shared SDK configuration every local client is built from.
pub async fn local_config(endpoint: &str, region: &str) -> aws_config::SdkConfig {
    let creds = aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "static");
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http::client())
        .retry_config(retry_config())
        .timeout_config(timeout_config())
        .region(aws_config::Region::new(region.to_string()))
        .endpoint_url(endpoint)
        .credentials_provider(creds)
        .load()
        .await
}

/// How every AWS client of the hub retries (issue 22): the SDK's standard
/// mode — throttling (`ProvisionedThroughputExceededException`,
/// `ThrottlingException`, `RequestLimitExceeded`), 5xx answers
/// (`InternalServerError`), timeouts and broken connections are retried
/// with exponential back-off and full jitter, and a retry quota per client
/// stops retrying when most calls fail — with 6 attempts from 25 ms up to
/// 1 s apart: about 2 s at most before the error reaches the request, which
/// then answers 503 with `Retry-After`. A retried write is safe: a
/// transaction carries its `ClientRequestToken`, a conditional put or delete
/// that was applied answers a failed condition that is read back.
pub fn retry_config() -> aws_config::retry::RetryConfig {
    aws_config::retry::RetryConfig::standard()
        .with_max_attempts(6)
        .with_initial_backoff(std::time::Duration::from_millis(25))
        .with_max_backoff(std::time::Duration::from_secs(1))
}

/// How long the hub waits for AWS: a call that has not answered in 10 s is
/// abandoned (its connection dropped) and retried as a timeout, and an
/// operation gives up after 25 s in all — under API Gateway's 29 s, so the
/// API answers 503 with `Retry-After` itself. Without these the SDK waits
/// for ever on a connection that stopped answering (connecting is bounded
/// at 3.1 s either way). A write retried after a timeout is safe for the
/// same reasons as after a 500 (see [`retry_config`]). SQS long polls set
/// their own longer bound (`queue_poller`).
pub fn timeout_config() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_millis(3100))
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(std::time::Duration::from_secs(25))
        .build()
}

/// The longest one attempt of an AWS call may take ([`timeout_config`]).
pub const ATTEMPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The AWS code path on one machine: the table and queues, and the two
/// pollers that stand in for Lambda's event source mappings.
pub mod http;
pub mod local;
pub mod queue_poller;
pub mod stream_poller;
