//! AWS SDK configuration for local servers (DynamoDB Local, moto): an
//! explicit endpoint, region and static test credentials, so no client ever
//! walks the credential chain or asks instance metadata.

/// The shared SDK configuration every local client is built from.
pub async fn local_config(endpoint: &str, region: &str) -> aws_config::SdkConfig {
    let creds = aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "static");
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http::client())
        .retry_config(retry_config())
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

/// The AWS code path on one machine: the table and queues, and the two
/// pollers that stand in for Lambda's event source mappings.
pub mod http;
pub mod local;
pub mod queue_poller;
pub mod stream_poller;
