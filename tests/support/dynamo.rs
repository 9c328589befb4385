//! The API over a fresh table on DynamoDB Local (started by
//! scripts/test.sh), for tests that run on both stores.

use crate::TestServer;
use std::sync::Arc;

/// DynamoDB Local's endpoint; scripts/test.sh starts it and sets this.
pub fn endpoint() -> String {
    std::env::var("HUB_TEST_DYNAMODB_ENDPOINT").expect(
        "HUB_TEST_DYNAMODB_ENDPOINT is not set: run scripts/test.sh, which starts DynamoDB Local",
    )
}

/// The API (without webhook delivery) over a new table.
pub async fn server() -> TestServer {
    let client = hub::store::dynamodb::local_client(&endpoint(), "us-east-1").await;
    let table = format!("hub-t-{}", hub::ids::ulid().to_lowercase());
    hub::store::dynamodb::DynamoStore::create_table_without_stream(&client, &table)
        .await
        .expect("create table");
    let store = hub::store::dynamodb::DynamoStore::new(client, table, hub::resources::kinds());
    TestServer::start_on(Arc::new(store)).await
}
