//! AWS SDK configuration for local servers (DynamoDB Local, moto): an
//! explicit endpoint, region and static test credentials, so no client ever
//! walks the credential chain or asks instance metadata.

/// The shared SDK configuration every local client is built from.
pub async fn local_config(endpoint: &str, region: &str) -> aws_config::SdkConfig {
    let creds = aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "static");
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http::client())
        .region(aws_config::Region::new(region.to_string()))
        .endpoint_url(endpoint)
        .credentials_provider(creds)
        .load()
        .await
}

/// The AWS code path on one machine: the table and queues, and the two
/// pollers that stand in for Lambda's event source mappings.
pub mod http;
pub mod local;
pub mod queue_poller;
pub mod stream_poller;
