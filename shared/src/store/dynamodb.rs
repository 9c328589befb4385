//! The DynamoDB store: one table, keys `PK`/`SK`.
//!
//! - objects: `PK = T#{tenant}#{kind}` (tenant `org#mode`, or `org` for
//!   organization records), `SK = id`; attributes `doc` (the JSON document),
//!   `version`, `kind`, and for events `expiresAt` (TTL, 30 days). The tenant
//!   leads every partition key, so isolation is structural (and IAM
//!   `dynamodb:LeadingKeys` can enforce it).
//! - uniqueness claims: `PK = U#{scope}`, `SK = value` → tenant, kind, id.
//!
//! Every `WriteTx` is one `TransactWriteItems` with a condition per item
//! (absent, or at the version read). Events are items of kind `events`
//! written in the same transaction; DynamoDB Streams carries their inserts
//! to the fan-out Lambda, so there is no outbox to poll here. Lists read the
//! collection's partition with `Query` (never `Scan`), in pages, up to a
//! bound past which the request is refused with advice.

use super::*;
use crate::query::{eval, index::Index};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, Delete, KeySchemaElement, KeyType, Put,
    ScalarAttributeType, StreamSpecification, StreamViewType, TimeToLiveSpecification,
    TransactWriteItem,
};
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;

/// Lists read at most this many items of one collection; past it the query
/// is refused (400) rather than reading a whole tenant.
pub const MAX_LIST_ITEMS: usize = 20_000;
const EVENT_TTL_SECS: i64 = 30 * 24 * 3600;

pub struct DynamoStore {
    client: Client,
    table: String,
}

type Item = HashMap<String, AttributeValue>;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn obj_pk(tenant: &str, kind: &str) -> String {
    format!("T#{tenant}#{kind}")
}

fn backend<E: std::fmt::Debug>(e: E) -> StoreError {
    StoreError::Backend(format!("{e:?}").chars().take(500).collect())
}

fn doc_of(item: &Item) -> Result<Doc, StoreError> {
    match item.get("doc") {
        Some(AttributeValue::S(text)) => serde_json::from_str(text)
            .map(Arc::new)
            .map_err(|e| StoreError::Backend(format!("corrupt document: {e}"))),
        _ => Err(StoreError::Backend("item without a document".into())),
    }
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> DynamoStore {
        DynamoStore {
            client,
            table: table.into(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Open the connection (one cheap call) so the first request does not pay
    /// for the TLS handshake.
    pub async fn warm_up(&self) -> StoreResult<()> {
        self.client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    /// Create the table as `template.yaml` does (for development and tests).
    pub async fn create_table(client: &Client, table: &str) -> StoreResult<()> {
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(backend)
        };
        let key = |name: &str, t: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(t)
                .build()
                .map_err(backend)
        };
        client
            .create_table()
            .table_name(table)
            .attribute_definitions(attr("PK")?)
            .attribute_definitions(attr("SK")?)
            .key_schema(key("PK", KeyType::Hash)?)
            .key_schema(key("SK", KeyType::Range)?)
            .billing_mode(BillingMode::PayPerRequest)
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewImage)
                    .build()
                    .map_err(backend)?,
            )
            .send()
            .await
            .map_err(backend)?;
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name("expiresAt")
                    .build()
                    .map_err(backend)?,
            )
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn get_item(&self, pk: String, sk: &str) -> StoreResult<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("PK", s(pk))
            .key("SK", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        Ok(out.item)
    }

    /// Every document of a collection, in id (creation) order, up to `bound`.
    async fn read_collection(
        &self,
        tenant: &str,
        kind: &str,
        bound: usize,
    ) -> StoreResult<Vec<Doc>> {
        let mut out = Vec::new();
        let mut start = None;
        let now_secs = crate::time::now_ms() / 1000;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("PK = :pk")
                .expression_attribute_values(":pk", s(obj_pk(tenant, kind)))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(backend)?;
            for item in page.items() {
                // TTL deletion is lazy: expired items are filtered here.
                if let Some(AttributeValue::N(exp)) = item.get("expiresAt") {
                    if exp.parse::<i64>().is_ok_and(|e| e <= now_secs) {
                        continue;
                    }
                }
                out.push(doc_of(item)?);
                if out.len() > bound {
                    return Err(StoreError::TooLarge {
                        kind: kind.to_string(),
                        bound,
                    });
                }
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    fn item_for(&self, op: &WriteOp) -> Result<TransactWriteItem, StoreError> {
        let table = self.table.as_str();
        let b = TransactWriteItem::builder();
        Ok(match op {
            WriteOp::Put {
                tenant,
                kind,
                id,
                doc,
                expect,
            } => {
                let version = doc.get("version").and_then(Value::as_i64).unwrap_or(1);
                let mut put = Put::builder()
                    .table_name(table)
                    .item("PK", s(obj_pk(tenant, kind)))
                    .item("SK", s(id.clone()))
                    .item("kind", s(*kind))
                    .item("tenant", s(tenant.clone()))
                    .item("version", n(version))
                    .item("doc", s(doc.to_string()));
                if *kind == crate::webhooks::EVENTS_KIND {
                    let created = doc
                        .get("createdAt")
                        .and_then(Value::as_str)
                        .and_then(crate::time::parse_timestamp)
                        .unwrap_or_else(crate::time::now_ms);
                    put = put.item("expiresAt", n(created / 1000 + EVENT_TTL_SECS));
                }
                put = match expect {
                    Expect::Absent => put.condition_expression("attribute_not_exists(PK)"),
                    Expect::Version(v) => put
                        .condition_expression("version = :v")
                        .expression_attribute_values(":v", n(*v as i64)),
                };
                b.put(put.build().map_err(backend)?).build()
            }
            WriteOp::Delete {
                tenant,
                kind,
                id,
                expect,
            } => {
                let mut del = Delete::builder()
                    .table_name(table)
                    .key("PK", s(obj_pk(tenant, kind)))
                    .key("SK", s(id.clone()));
                if let Expect::Version(v) = expect {
                    del = del
                        .condition_expression("version = :v")
                        .expression_attribute_values(":v", n(*v as i64));
                }
                b.delete(del.build().map_err(backend)?).build()
            }
            WriteOp::ClaimUnique {
                scope,
                value,
                target,
            } => b
                .put(
                    Put::builder()
                        .table_name(table)
                        .item("PK", s(format!("U#{scope}")))
                        .item("SK", s(value.clone()))
                        .item("tenant", s(target.tenant.clone()))
                        .item("kind", s(target.kind.clone()))
                        .item("id", s(target.id.clone()))
                        .condition_expression("attribute_not_exists(PK) OR id = :id")
                        .expression_attribute_values(":id", s(target.id.clone()))
                        .build()
                        .map_err(backend)?,
                )
                .build(),
            WriteOp::ReleaseUnique { scope, value } => b
                .delete(
                    Delete::builder()
                        .table_name(table)
                        .key("PK", s(format!("U#{scope}")))
                        .key("SK", s(value.clone()))
                        .build()
                        .map_err(backend)?,
                )
                .build(),
        })
    }
}

fn conflict_for(op: &WriteOp) -> Conflict {
    match op {
        WriteOp::Put {
            kind,
            id,
            expect: Expect::Absent,
            ..
        } => Conflict::Exists {
            kind: kind.to_string(),
            id: id.clone(),
        },
        WriteOp::Put { kind, id, .. } | WriteOp::Delete { kind, id, .. } => Conflict::Version {
            kind: kind.to_string(),
            id: id.clone(),
        },
        WriteOp::ClaimUnique { scope, value, .. } | WriteOp::ReleaseUnique { scope, value } => {
            Conflict::Unique {
                scope: scope.clone(),
                value: value.clone(),
            }
        }
    }
}

#[async_trait]
impl Store for DynamoStore {
    async fn get(&self, tenant: &str, kind: &str, id: &str) -> StoreResult<Option<Doc>> {
        match self.get_item(obj_pk(tenant, kind), id).await? {
            Some(item) => {
                if let Some(AttributeValue::N(exp)) = item.get("expiresAt") {
                    if exp
                        .parse::<i64>()
                        .is_ok_and(|e| e <= crate::time::now_ms() / 1000)
                    {
                        return Ok(None);
                    }
                }
                Ok(Some(doc_of(&item)?))
            }
            None => Ok(None),
        }
    }

    async fn list(&self, tenant: &str, kind: &str, query: &ListQuery) -> StoreResult<ListPage> {
        let docs = self.read_collection(tenant, kind, MAX_LIST_ITEMS).await?;
        let index = Index::new(docs);
        let r = eval::run(&index, query, query.search_fields);
        Ok(ListPage {
            data: r.page.into_iter().cloned().collect(),
            total: query.want_total.then_some(r.total),
            has_prev: r.has_prev,
            has_next: r.has_next,
        })
    }

    async fn all(&self, tenant: &str, kind: &str) -> StoreResult<Vec<Doc>> {
        self.read_collection(tenant, kind, MAX_LIST_ITEMS).await
    }

    async fn find_unique(&self, scope: &str, value: &str) -> StoreResult<Option<UniqueTarget>> {
        let Some(item) = self.get_item(format!("U#{scope}"), value).await? else {
            return Ok(None);
        };
        let get = |k: &str| match item.get(k) {
            Some(AttributeValue::S(v)) => Ok(v.clone()),
            _ => Err(StoreError::Backend(format!("unique claim without `{k}`"))),
        };
        Ok(Some(UniqueTarget {
            tenant: get("tenant")?,
            kind: get("kind")?,
            id: get("id")?,
        }))
    }

    async fn commit(&self, tx: WriteTx) -> StoreResult<()> {
        if tx.ops.is_empty() {
            return Ok(());
        }
        if tx.ops.len() > 100 {
            return Err(StoreError::Backend(format!(
                "a transaction of {} items exceeds DynamoDB's 100",
                tx.ops.len()
            )));
        }
        let items = tx
            .ops
            .iter()
            .map(|op| self.item_for(op))
            .collect::<Result<Vec<_>, _>>()?;
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) => match e.into_err() {
                TransactWriteItemsError::TransactionCanceledException(c) => {
                    let reasons = c.cancellation_reasons();
                    if let Some(i) = reasons
                        .iter()
                        .position(|r| r.code() == Some("ConditionalCheckFailed"))
                    {
                        if let Some(op) = tx.ops.get(i) {
                            return Err(StoreError::Conflict(conflict_for(op)));
                        }
                    }
                    if reasons
                        .iter()
                        .any(|r| r.code() == Some("TransactionConflict"))
                    {
                        return Err(StoreError::Busy);
                    }
                    Err(StoreError::Backend(format!(
                        "transaction cancelled: {:?}",
                        reasons.iter().map(|r| r.code()).collect::<Vec<_>>()
                    )))
                }
                TransactWriteItemsError::TransactionInProgressException(_) => Err(StoreError::Busy),
                other => Err(backend(other)),
            },
            Err(e) => Err(backend(e)),
        }
    }

    /// Events travel by DynamoDB Streams, not by polling.
    async fn pending_events(&self, _limit: usize) -> StoreResult<Vec<EventRecord>> {
        Ok(Vec::new())
    }

    async fn mark_dispatched(&self, _ids: &[String]) -> StoreResult<()> {
        Ok(())
    }
}

/// A client for a local endpoint (DynamoDB Local, moto) with static test
/// credentials: no credential chain, no instance metadata.
pub async fn local_client(endpoint: &str, region: &str) -> Client {
    let creds = aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "static");
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_string()))
        .endpoint_url(endpoint)
        .credentials_provider(creds)
        .load()
        .await;
    Client::new(&conf)
}
