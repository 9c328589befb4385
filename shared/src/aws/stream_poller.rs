//! What the fan-out function's DynamoDB event source mapping does, in the
//! process: read the table's stream shard by shard, keep the records the
//! template's filter keeps (inserts of event items), and hand them in
//! batches to the fan-out Lambda's own handler ([`crate::lambda::handle_stream`]).
//!
//! - **Position.** Each shard's position (the sequence number of the last
//!   record handled) is checkpointed in the table itself, in items
//!   `PK = P#stream#{stream label}`, `SK = {shard id}`, written after every
//!   batch that carried events. After a `kill -9` the poller resumes after
//!   the checkpoint: no event is skipped, and at most the batch in hand when
//!   the process died is handed over again (the fan-out is at least once).
//!   Records that carry no event (other writes, the checkpoints themselves)
//!   are checkpointed only every [`QUIET_CHECKPOINT`] records, so an idle
//!   poller writes nothing.
//! - **Failures.** When the handler reports a failed record, the records
//!   before it count as handled and the shard is read again from it after a
//!   back-off (up to 5 s), as Lambda retries from the reported item. Unlike
//!   the template's `MaximumRetryAttempts: 100`, the poller never gives up
//!   on a record: locally nothing is dropped.
//! - **Shards.** Shards split and close. A shard is read once its parent is
//!   read to its end (or trimmed away), so a key's records are handed over
//!   in order; a closed shard read to its end is marked done; shards that
//!   are no longer listed lose their checkpoints.

use crate::lambda;
use crate::queue::DynQueue;
use crate::store::DynStore;
use aws_sdk_dynamodb::types::AttributeValue as TableValue;
use aws_sdk_dynamodbstreams::types::{AttributeValue, OperationType, Record, ShardIteratorType};
use serde_json::{json, Map, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// The `kind` of checkpoint items (never an event: the filter skips them).
pub const CHECKPOINT_KIND: &str = "stream-checkpoints";
/// Eventless records read before their position is checkpointed anyway.
pub const QUIET_CHECKPOINT: usize = 1000;
/// How often the shard list is read while a shard is being polled.
const REFRESH: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub struct StreamPoller {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub streams: aws_sdk_dynamodbstreams::Client,
    pub table: String,
    pub store: DynStore,
    pub queue: DynQueue,
    /// Between reads of a shard that had nothing new.
    pub interval: Duration,
    /// Records per `GetRecords` (and so at most per handler batch).
    pub batch: usize,
}

/// A shard as listed by `DescribeStream`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    pub id: String,
    pub parent: Option<String>,
}

/// A shard's checkpoint: the last sequence number handled, and whether the
/// shard is closed and read to its end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkpoint {
    pub seq: Option<String>,
    pub done: bool,
}

/// The shards to read now: not done, and whose parent is done or no longer
/// listed (its records trimmed). Listing order is kept.
pub fn ready(shards: &[ShardInfo], checkpoints: &HashMap<String, Checkpoint>) -> Vec<ShardInfo> {
    let listed: HashSet<&str> = shards.iter().map(|s| s.id.as_str()).collect();
    let done = |id: &str| checkpoints.get(id).is_some_and(|c| c.done);
    shards
        .iter()
        .filter(|s| !done(&s.id))
        .filter(|s| match &s.parent {
            None => true,
            Some(p) => !listed.contains(p.as_str()) || done(p),
        })
        .cloned()
        .collect()
}

struct Backoff(u32);

impl Backoff {
    fn next(&mut self) -> Duration {
        self.0 = (self.0 + 1).min(16);
        (Duration::from_millis(100) * 2u32.pow(self.0.min(6))).min(MAX_BACKOFF)
    }
    fn reset(&mut self) {
        self.0 = 0;
    }
}

pub(crate) fn err_text<E: std::error::Error>(e: E) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// A stream attribute value as Lambda's event JSON writes it.
pub fn attribute_json(v: &AttributeValue) -> Value {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    match v {
        AttributeValue::S(s) => json!({"S": s}),
        AttributeValue::N(n) => json!({"N": n}),
        AttributeValue::B(b) => json!({"B": b64(b.as_ref())}),
        AttributeValue::Bool(b) => json!({"BOOL": b}),
        AttributeValue::Null(n) => json!({"NULL": n}),
        AttributeValue::Ss(v) => json!({"SS": v}),
        AttributeValue::Ns(v) => json!({"NS": v}),
        AttributeValue::Bs(v) => {
            json!({"BS": v.iter().map(|b| b64(b.as_ref())).collect::<Vec<_>>()})
        }
        AttributeValue::L(v) => json!({"L": v.iter().map(attribute_json).collect::<Vec<_>>()}),
        AttributeValue::M(m) => json!({"M": image_json(m)}),
        _ => json!({"NULL": true}),
    }
}

fn image_json(m: &HashMap<String, AttributeValue>) -> Map<String, Value> {
    m.iter()
        .map(|(k, v)| (k.clone(), attribute_json(v)))
        .collect()
}

fn kind_of(r: &Record) -> Option<&str> {
    match r.dynamodb()?.new_image()?.get("kind")? {
        AttributeValue::S(s) => Some(s.as_str()),
        _ => None,
    }
}

/// The template's filter: `{"eventName": ["INSERT"], "dynamodb":
/// {"NewImage": {"kind": {"S": ["events"]}}}}`.
pub fn passes_filter(r: &Record) -> bool {
    r.event_name() == Some(&OperationType::Insert)
        && kind_of(r) == Some(crate::webhooks::EVENTS_KIND)
}

/// A stream record as the Lambda event carries it.
pub fn record_json(r: &Record, stream_arn: &str) -> Value {
    let d = r.dynamodb();
    let mut dynamodb = Map::new();
    if let Some(d) = d {
        if let Some(t) = d.approximate_creation_date_time() {
            dynamodb.insert("ApproximateCreationDateTime".into(), json!(t.secs()));
        }
        if let Some(k) = d.keys() {
            dynamodb.insert("Keys".into(), Value::Object(image_json(k)));
        }
        if let Some(i) = d.new_image() {
            dynamodb.insert("NewImage".into(), Value::Object(image_json(i)));
        }
        if let Some(i) = d.old_image() {
            dynamodb.insert("OldImage".into(), Value::Object(image_json(i)));
        }
        dynamodb.insert("SequenceNumber".into(), json!(d.sequence_number()));
        dynamodb.insert("SizeBytes".into(), json!(d.size_bytes()));
        dynamodb.insert(
            "StreamViewType".into(),
            json!(d.stream_view_type().map(|v| v.as_str())),
        );
    }
    json!({
        "eventID": r.event_id(),
        "eventName": r.event_name().map(|n| n.as_str()),
        "eventVersion": r.event_version(),
        "eventSource": r.event_source().unwrap_or("aws:dynamodb"),
        "awsRegion": r.aws_region(),
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    })
}

fn seq_of(r: &Record) -> Option<&str> {
    r.dynamodb()?.sequence_number()
}

/// The stream label: the last part of the stream's ARN.
fn label(stream_arn: &str) -> &str {
    stream_arn.rsplit('/').next().unwrap_or(stream_arn)
}

enum ReadError {
    /// The iterator is too old: get another from the checkpoint.
    Expired,
    /// The position is older than the stream keeps (24 hours).
    Trimmed,
    /// The shard or stream is gone.
    Gone,
    Other(String),
}

impl StreamPoller {
    /// Poll forever (until the task is aborted, which stops every shard).
    pub async fn run(self: Arc<Self>) {
        let mut shards: JoinSet<()> = JoinSet::new();
        let mut running: HashMap<tokio::task::Id, String> = HashMap::new();
        let mut backoff = Backoff(0);
        loop {
            match self.round(&mut shards, &mut running).await {
                Ok(()) => backoff.reset(),
                Err(e) => {
                    crate::log::error("stream", &e);
                    tokio::time::sleep(backoff.next()).await;
                    continue;
                }
            }
            // Look again when a shard is finished (its children may start),
            // or after a while (new shards); soon while nothing is read.
            let wait = if running.is_empty() {
                self.interval.max(Duration::from_millis(100)) * 4
            } else {
                REFRESH
            };
            tokio::select! {
                Some(done) = shards.join_next_with_id() => {
                    let id = match done {
                        Ok((id, ())) => id,
                        Err(e) => e.id(),
                    };
                    running.remove(&id);
                }
                _ = tokio::time::sleep(wait) => {}
            }
            while let Some(done) = shards.try_join_next_with_id() {
                let id = match done {
                    Ok((id, ())) => id,
                    Err(e) => e.id(),
                };
                running.remove(&id);
            }
        }
    }

    /// List the shards, start those that are ready, forget the checkpoints
    /// of shards no longer listed.
    async fn round(
        self: &Arc<Self>,
        set: &mut JoinSet<()>,
        running: &mut HashMap<tokio::task::Id, String>,
    ) -> Result<(), String> {
        let arn = self.stream_arn().await?;
        let shards = self.shards(&arn).await?;
        let checkpoints = self.checkpoints(&arn).await?;
        let busy: HashSet<&String> = running.values().collect();
        let start: Vec<ShardInfo> = ready(&shards, &checkpoints)
            .into_iter()
            .filter(|s| !busy.contains(&s.id))
            .collect();
        for shard in start {
            let from = checkpoints.get(&shard.id).and_then(|c| c.seq.clone());
            let this = self.clone();
            let (arn, id) = (arn.clone(), shard.id.clone());
            let handle = set.spawn(async move { this.read_shard(arn, id, from).await });
            running.insert(handle.id(), shard.id);
        }
        if !shards.is_empty() {
            let listed: HashSet<&str> = shards.iter().map(|s| s.id.as_str()).collect();
            for gone in checkpoints.keys().filter(|k| !listed.contains(k.as_str())) {
                self.forget(&arn, gone).await?;
            }
        }
        Ok(())
    }

    /// The checkpoints of the table's current stream, by shard.
    pub async fn current_checkpoints(&self) -> Result<HashMap<String, Checkpoint>, String> {
        let arn = self.stream_arn().await?;
        self.checkpoints(&arn).await
    }

    async fn stream_arn(&self) -> Result<String, String> {
        let out = self
            .dynamodb
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(|e| format!("DescribeTable {}: {}", self.table, err_text(e)))?;
        out.table()
            .and_then(|t| t.latest_stream_arn())
            .map(String::from)
            .ok_or_else(|| format!("the table {} has no stream", self.table))
    }

    async fn shards(&self, arn: &str) -> Result<Vec<ShardInfo>, String> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .streams
                .describe_stream()
                .stream_arn(arn)
                .set_exclusive_start_shard_id(after.take())
                .send()
                .await
                .map_err(|e| format!("DescribeStream: {}", err_text(e)))?;
            let Some(desc) = page.stream_description() else {
                break;
            };
            for s in desc.shards() {
                if let Some(id) = s.shard_id() {
                    out.push(ShardInfo {
                        id: id.to_string(),
                        parent: s.parent_shard_id().map(String::from),
                    });
                }
            }
            match desc.last_evaluated_shard_id() {
                Some(last) => after = Some(last.to_string()),
                None => break,
            }
        }
        Ok(out)
    }

    fn checkpoint_pk(arn: &str) -> String {
        format!("P#stream#{}", label(arn))
    }

    async fn checkpoints(&self, arn: &str) -> Result<HashMap<String, Checkpoint>, String> {
        let mut out = HashMap::new();
        let mut start = None;
        loop {
            let page = self
                .dynamodb
                .query()
                .table_name(&self.table)
                .key_condition_expression("PK = :pk")
                .expression_attribute_values(":pk", TableValue::S(Self::checkpoint_pk(arn)))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| format!("reading the stream checkpoints: {}", err_text(e)))?;
            for item in page.items() {
                let Some(TableValue::S(shard)) = item.get("SK") else {
                    continue;
                };
                let seq = match item.get("seq") {
                    Some(TableValue::S(s)) => Some(s.clone()),
                    _ => None,
                };
                let done = matches!(item.get("done"), Some(TableValue::Bool(true)));
                out.insert(shard.clone(), Checkpoint { seq, done });
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn save(&self, arn: &str, shard: &str, cp: &Checkpoint) -> Result<(), String> {
        let mut put = self
            .dynamodb
            .put_item()
            .table_name(&self.table)
            .item("PK", TableValue::S(Self::checkpoint_pk(arn)))
            .item("SK", TableValue::S(shard.to_string()))
            .item("kind", TableValue::S(CHECKPOINT_KIND.into()))
            .item("done", TableValue::Bool(cp.done))
            .item(
                "updatedAt",
                TableValue::S(crate::time::format_ms(crate::time::now_ms())),
            );
        if let Some(seq) = &cp.seq {
            put = put.item("seq", TableValue::S(seq.clone()));
        }
        put.send()
            .await
            .map_err(|e| format!("writing the stream checkpoint: {}", err_text(e)))?;
        Ok(())
    }

    async fn forget(&self, arn: &str, shard: &str) -> Result<(), String> {
        self.dynamodb
            .delete_item()
            .table_name(&self.table)
            .key("PK", TableValue::S(Self::checkpoint_pk(arn)))
            .key("SK", TableValue::S(shard.to_string()))
            .send()
            .await
            .map_err(|e| format!("deleting a stream checkpoint: {}", err_text(e)))?;
        Ok(())
    }

    /// Save a checkpoint, retrying until it is written.
    async fn save_until_written(&self, arn: &str, shard: &str, cp: &Checkpoint) {
        let mut backoff = Backoff(0);
        while let Err(e) = self.save(arn, shard, cp).await {
            crate::log::error("stream", &e);
            tokio::time::sleep(backoff.next()).await;
        }
    }

    async fn iterator(
        &self,
        arn: &str,
        shard: &str,
        after: Option<&str>,
    ) -> Result<String, ReadError> {
        let mut req = self
            .streams
            .get_shard_iterator()
            .stream_arn(arn)
            .shard_id(shard);
        req = match after {
            Some(seq) => req
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .sequence_number(seq),
            None => req.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        match req.send().await {
            Ok(out) => out
                .shard_iterator
                .ok_or_else(|| ReadError::Other("GetShardIterator answered no iterator".into())),
            Err(e) => Err(match e.as_service_error() {
                Some(s) if s.is_trimmed_data_access_exception() => ReadError::Trimmed,
                Some(s) if s.is_resource_not_found_exception() => ReadError::Gone,
                _ => ReadError::Other(format!("GetShardIterator: {}", err_text(e))),
            }),
        }
    }

    async fn records(&self, iterator: String) -> Result<(Vec<Record>, Option<String>), ReadError> {
        match self
            .streams
            .get_records()
            .shard_iterator(iterator)
            .limit(self.batch.clamp(1, 1000) as i32)
            .send()
            .await
        {
            Ok(out) => Ok((out.records.unwrap_or_default(), out.next_shard_iterator)),
            Err(e) => Err(match e.as_service_error() {
                Some(s) if s.is_expired_iterator_exception() => ReadError::Expired,
                Some(s) if s.is_trimmed_data_access_exception() => ReadError::Trimmed,
                Some(s) if s.is_resource_not_found_exception() => ReadError::Gone,
                _ => ReadError::Other(format!("GetRecords: {}", err_text(e))),
            }),
        }
    }

    /// Read one shard from after `from` until it is closed and read to its
    /// end (then it is marked done) or gone.
    async fn read_shard(self: Arc<Self>, arn: String, shard: String, from: Option<String>) {
        // The last record handled (checkpointed or not) and the last saved.
        let mut position = from.clone();
        let mut saved = from;
        let mut quiet = 0usize;
        let mut iterator: Option<String> = None;
        let mut backoff = Backoff(0);
        loop {
            let it = match iterator.take() {
                Some(it) => it,
                None => match self.iterator(&arn, &shard, position.as_deref()).await {
                    Ok(it) => it,
                    Err(e) => {
                        if self.read_error(&shard, e, &mut position) {
                            return;
                        }
                        tokio::time::sleep(backoff.next()).await;
                        continue;
                    }
                },
            };
            let (records, next) = match self.records(it).await {
                Ok(r) => r,
                // Get a fresh iterator at once.
                Err(ReadError::Expired) => continue,
                Err(e) => {
                    if self.read_error(&shard, e, &mut position) {
                        return;
                    }
                    tokio::time::sleep(backoff.next()).await;
                    continue;
                }
            };
            let mut events = Vec::new();
            for r in &records {
                if passes_filter(r) {
                    events.push(record_json(r, &arn));
                } else if kind_of(r) != Some(CHECKPOINT_KIND) {
                    quiet += 1;
                }
            }
            let mut failed_at: Option<String> = None;
            if !events.is_empty() {
                let result = lambda::handle_stream_json(
                    self.store.as_ref(),
                    self.queue.as_ref(),
                    &json!({"Records": events}),
                )
                .await;
                failed_at = result["batchItemFailures"]
                    .as_array()
                    .and_then(|f| f.first())
                    .and_then(|f| f["itemIdentifier"].as_str())
                    .map(String::from);
            }
            match failed_at {
                None => {
                    if let Some(last) = records.last().and_then(seq_of) {
                        position = Some(last.to_string());
                    }
                    if position != saved && (!events.is_empty() || quiet >= QUIET_CHECKPOINT) {
                        let cp = Checkpoint {
                            seq: position.clone(),
                            done: false,
                        };
                        self.save_until_written(&arn, &shard, &cp).await;
                        saved = position.clone();
                        quiet = 0;
                    }
                    backoff.reset();
                    match next {
                        // Closed and read to its end.
                        None => {
                            let cp = Checkpoint {
                                seq: position.clone(),
                                done: true,
                            };
                            self.save_until_written(&arn, &shard, &cp).await;
                            return;
                        }
                        Some(n) => {
                            if records.is_empty() {
                                tokio::time::sleep(self.interval).await;
                            }
                            iterator = Some(n);
                        }
                    }
                }
                Some(failed) => {
                    // The records before the failed one are handled; read
                    // again from it after a back-off. (An identifier not in
                    // the batch fails the whole batch, as on Lambda.)
                    let at = records
                        .iter()
                        .position(|r| seq_of(r) == Some(failed.as_str()));
                    if let Some(before) = at
                        .and_then(|i| i.checked_sub(1))
                        .and_then(|i| seq_of(&records[i]))
                    {
                        position = Some(before.to_string());
                    }
                    if position != saved {
                        let cp = Checkpoint {
                            seq: position.clone(),
                            done: false,
                        };
                        self.save_until_written(&arn, &shard, &cp).await;
                        saved = position.clone();
                    }
                    tokio::time::sleep(backoff.next()).await;
                    iterator = None;
                }
            }
        }
    }

    /// Handle a read error; true when the shard is finished with.
    fn read_error(&self, shard: &str, e: ReadError, position: &mut Option<String>) -> bool {
        match e {
            ReadError::Expired => false,
            ReadError::Trimmed => {
                crate::log::error(
                    "stream",
                    &format!(
                        "shard {shard}: records after the checkpoint were trimmed \
                         (older than the stream keeps); reading from the oldest kept"
                    ),
                );
                *position = None;
                false
            }
            ReadError::Gone => {
                crate::log::info("stream", &format!("shard {shard} is gone"));
                true
            }
            ReadError::Other(m) => {
                crate::log::error("stream", &format!("shard {shard}: {m}"));
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: &str, parent: Option<&str>) -> ShardInfo {
        ShardInfo {
            id: id.into(),
            parent: parent.map(String::from),
        }
    }

    fn ids(v: Vec<ShardInfo>) -> Vec<String> {
        v.into_iter().map(|s| s.id).collect()
    }

    #[test]
    fn parents_are_read_before_children() {
        // a split into b and c; c split into d and e; f has a trimmed parent.
        let shards = vec![
            shard("a", None),
            shard("b", Some("a")),
            shard("c", Some("a")),
            shard("d", Some("c")),
            shard("e", Some("c")),
            shard("f", Some("trimmed")),
        ];
        let mut cps = HashMap::new();
        assert_eq!(ids(ready(&shards, &cps)), ["a", "f"]);
        cps.insert(
            "a".to_string(),
            Checkpoint {
                seq: Some("9".into()),
                done: false,
            },
        );
        assert_eq!(ids(ready(&shards, &cps)), ["a", "f"], "a is not done yet");
        cps.insert(
            "a".to_string(),
            Checkpoint {
                seq: Some("10".into()),
                done: true,
            },
        );
        assert_eq!(ids(ready(&shards, &cps)), ["b", "c", "f"]);
        cps.insert(
            "c".to_string(),
            Checkpoint {
                seq: None,
                done: true,
            },
        );
        assert_eq!(ids(ready(&shards, &cps)), ["b", "d", "e", "f"]);
        // Once a parent is trimmed away its children stay ready.
        let later = vec![shard("d", Some("c")), shard("e", Some("c"))];
        assert_eq!(ids(ready(&later, &HashMap::new())), ["d", "e"]);
    }

    #[test]
    fn only_event_inserts_pass_the_filter() {
        use aws_sdk_dynamodbstreams::types::StreamRecord;
        let rec = |op: OperationType, kind: &str| {
            Record::builder()
                .event_name(op)
                .dynamodb(
                    StreamRecord::builder()
                        .sequence_number("1")
                        .new_image("kind", AttributeValue::S(kind.into()))
                        .new_image("doc", AttributeValue::S("{}".into()))
                        .build(),
                )
                .build()
        };
        assert!(passes_filter(&rec(OperationType::Insert, "events")));
        assert!(!passes_filter(&rec(OperationType::Modify, "events")));
        assert!(!passes_filter(&rec(OperationType::Insert, "patients")));
        assert!(!passes_filter(&rec(OperationType::Insert, CHECKPOINT_KIND)));
        let j = record_json(&rec(OperationType::Insert, "events"), "arn:x");
        assert_eq!(j["eventName"], "INSERT");
        assert_eq!(j["dynamodb"]["NewImage"]["kind"]["S"], "events");
        assert_eq!(j["dynamodb"]["SequenceNumber"], "1");
        assert_eq!(j["eventSourceARN"], "arn:x");
    }
}
