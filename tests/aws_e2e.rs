//! The AWS path end to end on local servers: an API route handler (the
//! Lambda's) writes a patient to DynamoDB Local; the test reads the table's
//! stream and hands the records to the fan-out handler, which enqueues on
//! moto's SQS; the delivery handler posts to a receiver on 127.0.0.1 that
//! verifies the signature. A failing receiver's message comes back after a
//! longer visibility and, after the last attempt, lands in the dead-letter
//! queue through the redrive policy.

use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use hub::lambda;
use hub::queue::sqs::SqsQueue;
use hub::store::dynamodb::DynamoStore;
use hub::webhooks::deliver::DeliveryConfig;
use hub_tests::*;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run scripts/test.sh, which starts DynamoDB Local and moto")
    })
}

/// An API Gateway HTTP API (2.0) event, as the route's Lambda receives it.
fn api_event(method: &str, path: &str, key: &str, body: Option<Value>) -> Value {
    let mut e: Value = serde_json::from_str(include_str!("../events/patients-list.json")).unwrap();
    e["rawQueryString"] = json!("");
    e["requestContext"]["http"]["method"] = json!(method);
    e["routeKey"] = json!(format!("{method} {path}"));
    e["rawPath"] = json!(path);
    e["requestContext"]["http"]["path"] = json!(path);
    e["headers"]["authorization"] = json!(format!("Bearer {key}"));
    match body {
        Some(b) => e["body"] = json!(b.to_string()),
        None => {
            e.as_object_mut().unwrap().remove("body");
        }
    }
    e
}

/// Every record on the table's stream so far, as a Lambda stream event.
async fn read_stream(client: &aws_sdk_dynamodbstreams::Client, arn: &str) -> Value {
    let mut records = Vec::new();
    let desc = client
        .describe_stream()
        .stream_arn(arn)
        .send()
        .await
        .unwrap();
    for shard in desc.stream_description().unwrap().shards() {
        let it = client
            .get_shard_iterator()
            .stream_arn(arn)
            .shard_id(shard.shard_id().unwrap())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap();
        let mut iter = it.shard_iterator.clone();
        for _ in 0..20 {
            let Some(i) = iter.take() else { break };
            let out = client.get_records().shard_iterator(i).send().await.unwrap();
            for r in out.records() {
                // The record as Lambda's event source mapping delivers it.
                records.push(hub::aws::stream_poller::record_json(r, arn));
            }
            if out.records().is_empty() {
                break;
            }
            iter = out.next_shard_iterator.clone();
        }
    }
    json!({"Records": records})
}

/// Receive from SQS as the event source mapping would, as a Lambda SQS event.
async fn sqs_event(client: &aws_sdk_sqs::Client, url: &str) -> Value {
    let out = client
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .message_system_attribute_names(
            aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount,
        )
        .send()
        .await
        .unwrap();
    let records: Vec<Value> = out
        .messages()
        .iter()
        .map(|m| {
            let count = m.attributes().and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount)).cloned().unwrap_or_default();
            json!({"messageId": m.message_id(), "receiptHandle": m.receipt_handle(), "body": m.body(), "attributes": {"ApproximateReceiveCount": count}})
        })
        .collect();
    json!({"Records": records})
}

/// What Lambda does after a batch: delete the messages not reported failed.
async fn settle(client: &aws_sdk_sqs::Client, url: &str, event: &Value, result: &Value) {
    let failed: Vec<&str> = result["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["itemIdentifier"].as_str())
        .collect();
    for r in event["Records"].as_array().unwrap() {
        if !failed.contains(&r["messageId"].as_str().unwrap()) {
            client
                .delete_message()
                .queue_url(url)
                .receipt_handle(r["receiptHandle"].as_str().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_stream_fanout_queue_delivery_and_dead_letters() {
    let ddb_endpoint = env("HUB_TEST_DYNAMODB_ENDPOINT");
    let sqs_endpoint = env("HUB_TEST_SQS_ENDPOINT");
    let rx = Receiver::start();
    // DynamoDB Local: the table with its stream.
    let ddb = hub::store::dynamodb::local_client(&ddb_endpoint, "us-east-1").await;
    let table = format!("hub-e2e-{}", hub::ids::ulid().to_lowercase());
    DynamoStore::create_table(&ddb, &table).await.unwrap();
    let dynamo = Arc::new(DynamoStore::new(
        ddb,
        table.clone(),
        hub::resources::kinds(),
    ));
    let store: hub::store::DynStore = dynamo.clone();
    // moto: the delivery queue with its redrive policy (2 attempts) and dead-letter queue.
    let sqs = hub::queue::sqs::local_client(&sqs_endpoint, "us-east-1").await;
    let suffix = hub::ids::ulid().to_lowercase();
    let dlq = sqs
        .create_queue()
        .queue_name(format!("dlq-{suffix}"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    let url = sqs
        .create_queue()
        .queue_name(format!("deliveries-{suffix}"))
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy,
            json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"}).to_string(),
        )
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
            "30",
        )
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let queue = Arc::new(SqsQueue::new(sqs.clone(), url.clone()));
    let cfg = DeliveryConfig {
        timeout: Duration::from_secs(2),
        schedule: hub::webhooks::RetrySchedule::parse("1s").unwrap(),
        ..Default::default()
    };

    // The route Lambdas' handler over DynamoDB.
    let config = hub::api::Config {
        rate_limits: hub::auth::ratelimit::Limits::OFF,
        ..Default::default()
    };
    let app = hub::api::App::with_queue(store.clone(), Some(queue.clone()), config);
    let org = hub::org::create(store.as_ref(), "E2E", true).await.unwrap();
    let key = org.test.secret.clone();
    let call = |method: &str, path: &str, body: Option<Value>| {
        let (app, ev) = (app.clone(), api_event(method, path, &key, body));
        async move {
            let out = lambda::invoke_http(&app, ev, "e2e").await.unwrap();
            let body: Value = serde_json::from_str(out["body"].as_str().unwrap()).unwrap();
            (out["statusCode"].as_u64().unwrap(), body)
        }
    };
    let (st, ok_ep) = call(
        "POST",
        "/v1/webhook-endpoints",
        Some(json!({"url": format!("{}/ok", rx.base), "enabledEvents": ["patient.created"]})),
    )
    .await;
    assert_eq!(st, 201, "{ok_ep}");
    rx.secrets("/ok", &[ok_ep["secret"].as_str().unwrap()])
        .await;
    let (_, fail_ep) = call(
        "POST",
        "/v1/webhook-endpoints",
        Some(json!({"url": format!("{}/fail", rx.base), "enabledEvents": ["patient.created"]})),
    )
    .await;
    for (name, path) in [
        ("Leeds", "/v1/clinics"),
        ("Active", "/v1/patient-statuses"),
        ("Google", "/v1/referral-sources"),
    ] {
        assert_eq!(call("POST", path, Some(json!({"name": name}))).await.0, 201);
    }
    let (st, patient) = call(
        "POST",
        "/v1/patients",
        Some(patient_body("Stream Patient", "Leeds", "Active", "Google")),
    )
    .await;
    assert_eq!(st, 201, "{patient}");
    let (st, got) = call(
        "GET",
        &format!("/v1/patients/{}", patient["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!((st, &got), (200, &patient));

    // The stream → the fan-out handler → SQS.
    let streams = aws_sdk_dynamodbstreams::Client::new(
        &hub::aws::local_config(&ddb_endpoint, "us-east-1").await,
    );
    let arn = streams
        .list_streams()
        .table_name(&table)
        .send()
        .await
        .unwrap()
        .streams()[0]
        .stream_arn()
        .unwrap()
        .to_string();
    let batch = read_stream(&streams, &arn).await;
    let inserts = batch["Records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["dynamodb"]["NewImage"]["kind"]["S"] == "events")
        .count();
    assert!(
        inserts >= 6,
        "the stream carries the event inserts: {inserts}"
    );
    let units = dynamo.consumed();
    let fanned = lambda::handle_stream_json(store.as_ref(), queue.as_ref(), &batch).await;
    assert_eq!(fanned, json!({"batchItemFailures": []}));
    let fanout_units = delta(units, dynamo.consumed());

    // Delivery: two messages (one per endpoint subscribed to patient.created).
    let event = sqs_event(&sqs, &url).await;
    assert_eq!(event["Records"].as_array().unwrap().len(), 2, "{event}");
    let units = dynamo.consumed();
    let result = lambda::handle_sqs_json(store.as_ref(), queue.as_ref(), &cfg, &event).await;
    let delivery_units = delta(units, dynamo.consumed());
    // Each attempt writes its log row (and the endpoint's run of failures).
    assert!(delivery_units.1 > 0.0, "{delivery_units:?}");
    let rows = format!(
        "| stream fan-out ({inserts} events, 2 endpoints) | {} | {} |\n\
         | delivery batch (2 attempts: one delivered, one failed) | {} | {} |\n",
        fanout_units.0, fanout_units.1, delivery_units.0, delivery_units.1
    );
    println!("{rows}");
    if let Ok(path) = std::env::var("HUB_UNITS_REPORT") {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .unwrap();
        f.write_all(rows.as_bytes()).unwrap();
    }
    let failed = result["batchItemFailures"].as_array().unwrap().clone();
    assert_eq!(
        failed.len(),
        1,
        "the failing endpoint's message is reported: {result}"
    );
    settle(&sqs, &url, &event, &result).await;
    let log = rx
        .wait("the verified delivery", |l| {
            l.iter().any(|e| e["path"] == "/ok")
        })
        .await;
    let ok = log.iter().find(|e| e["path"] == "/ok").unwrap();
    assert_eq!(
        (ok["stripe"].clone(), ok["standard"].clone()),
        (json!([true]), json!([true]))
    );
    assert_eq!(ok["body"]["data"]["id"], patient["id"]);
    // The failed message comes back after its back-off (≈1 s) as attempt 2.
    let mut again = json!({"Records": []});
    for _ in 0..100 {
        again = sqs_event(&sqs, &url).await;
        if !again["Records"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        again["Records"][0]["attributes"]["ApproximateReceiveCount"],
        "2"
    );
    let result = lambda::handle_sqs_json(store.as_ref(), queue.as_ref(), &cfg, &again).await;
    assert_eq!(
        result["batchItemFailures"].as_array().unwrap().len(),
        1,
        "the last attempt fails too"
    );
    settle(&sqs, &url, &again, &result).await;
    // Past maxReceiveCount, the redrive policy moves it to the dead-letter queue.
    let mut dead = json!({"Records": []});
    for _ in 0..100 {
        assert!(sqs_event(&sqs, &url).await["Records"]
            .as_array()
            .unwrap()
            .is_empty());
        dead = sqs_event(&sqs, &dlq).await;
        if !dead["Records"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let body: Value = serde_json::from_str(dead["Records"][0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["endpointId"], fail_ep["id"]);
    // The attempts log, as in `hub serve`.
    let (_, rows) = call(
        "GET",
        &format!(
            "/v1/webhook-endpoints/{}/deliveries",
            fail_ep["id"].as_str().unwrap()
        ),
        None,
    )
    .await;
    let mut statuses: Vec<(u64, String, bool)> = rows["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["attempt"].as_u64().unwrap(),
                r["status"].as_str().unwrap().to_string(),
                r.get("nextRetryAt").is_some(),
            )
        })
        .collect();
    statuses.sort();
    assert_eq!(
        statuses,
        vec![(1, "failed".into(), true), (2, "dead".into(), false)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_function_handles_its_sample_event() {
    let ddb =
        hub::store::dynamodb::local_client(&env("HUB_TEST_DYNAMODB_ENDPOINT"), "us-east-1").await;
    let table = format!("hub-samples-{}", hub::ids::ulid().to_lowercase());
    DynamoStore::create_table(&ddb, &table).await.unwrap();
    let store: hub::store::DynStore =
        Arc::new(DynamoStore::new(ddb, table, hub::resources::kinds()));
    let sqs = hub::queue::sqs::local_client(&env("HUB_TEST_SQS_ENDPOINT"), "us-east-1").await;
    let url = sqs
        .create_queue()
        .queue_name(format!("samples-{}", hub::ids::ulid().to_lowercase()))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let queue = Arc::new(SqsQueue::new(sqs, url));
    let config = hub::api::Config {
        rate_limits: hub::auth::ratelimit::Limits::OFF,
        ..Default::default()
    };
    let app = hub::api::App::with_queue(store.clone(), Some(queue.clone()), config);
    let org = hub::org::create(store.as_ref(), "Samples", false)
        .await
        .unwrap();
    let cfg = DeliveryConfig::default();
    let samples = hub::deploy::sample_events();
    assert_eq!(samples.len(), hub::deploy::functions().len());
    for (name, mut event) in samples {
        let on_disk: Value = serde_json::from_str(
            &std::fs::read_to_string(format!(
                "{}/../events/{name}.json",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
        )
        .unwrap();
        assert_eq!(on_disk, event, "events/{name}.json");
        if name == hub::deploy::FANOUT {
            let r = lambda::handle_stream_json(store.as_ref(), queue.as_ref(), &event).await;
            assert_eq!(r, json!({"batchItemFailures": []}), "{name}");
        } else if name == hub::deploy::EXPIRY {
            let r = lambda::handle_expiry(store.as_ref()).await;
            assert_eq!(r, json!({"expired": 0}), "{name}");
        } else if name == hub::deploy::DELIVERY {
            let r = lambda::handle_sqs_json(store.as_ref(), queue.as_ref(), &cfg, &event).await;
            assert_eq!(
                r,
                json!({"batchItemFailures": []}),
                "{name}: an unknown event is dropped, not retried"
            );
        } else {
            event["headers"]["authorization"] = json!(format!("Bearer {}", org.test.secret));
            let out = lambda::invoke_http(&app, event, "e2e").await.unwrap();
            let status = out["statusCode"].as_u64().unwrap();
            if name.starts_with("dashboard") || name.starts_with("docs") || name == "widget" {
                // The dashboard's, the API reference's and the booking
                // widget's files: HTML and JavaScript, not JSON.
                assert_eq!(status, 200, "{name}: {out}");
                assert!(
                    out["headers"]["content-type"]
                        .as_str()
                        .is_some_and(|t| t.starts_with("text/")),
                    "{name}: {out}"
                );
                if name == "widget" {
                    // Embedded by other sites' pages.
                    assert_eq!(
                        out["headers"]["cross-origin-resource-policy"], "cross-origin",
                        "{out}"
                    );
                } else {
                    assert!(out["headers"]["content-security-policy"].is_string());
                }
                continue;
            }
            let body: Value = serde_json::from_str(out["body"].as_str().unwrap()).unwrap();
            assert!(status < 500, "{name}: {status} {body}");
            assert!(
                !body["message"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("No route"),
                "{name} is routed: {body}"
            );
            if name.starts_with("fhir-") {
                // The FHIR facade: FHIR JSON, errors as OperationOutcome.
                assert_eq!(
                    out["headers"]["content-type"], "application/fhir+json",
                    "{name}"
                );
                if status >= 400 {
                    assert_eq!(body["resourceType"], "OperationOutcome", "{name}: {body}");
                    assert!(!error_parts(&body).0.is_empty(), "{name}: {body}");
                }
                continue;
            }
            if status >= 400 {
                assert!(
                    body["name"].is_string() && body["eventId"].is_string(),
                    "{name}: {body}"
                );
            }
            assert_eq!(out["headers"]["content-type"], "application/json", "{name}");
        }
    }
}

/// Capacity units consumed between two readings (reads, writes).
fn delta(before: (f64, f64), after: (f64, f64)) -> (f64, f64) {
    (after.0 - before.0, after.1 - before.1)
}

/// Messages per event id.
type Counts = std::collections::HashMap<String, usize>;

/// Every message in a queue (received with a long visibility, so each once),
/// counted by event.
async fn drain(sqs: &aws_sdk_sqs::Client, url: &str) -> Counts {
    let mut counts = Counts::new();
    loop {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(600)
            .send()
            .await
            .unwrap();
        if out.messages().is_empty() {
            return counts;
        }
        for m in out.messages() {
            let body: Value = serde_json::from_str(m.body().unwrap()).unwrap();
            *counts
                .entry(body["eventId"].as_str().unwrap().to_string())
                .or_insert(0) += 1;
        }
    }
}

/// The ids of every `clinic.created` event of a tenant, through the API.
async fn clinic_events(http: &Http, key: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut query = "type=clinic.created&$limit=100".to_string();
    loop {
        let page = http.get(&format!("/v1/events?{query}"), key).await;
        page.expect(200);
        ids.extend(page.ids());
        match page.body["next"].as_str() {
            Some(next) => query = format!("type=clinic.created&$limit=100&$after={next}"),
            None => return ids,
        }
    }
}

/// `hub serve --table`'s stream poller, stopped and started again (as a
/// `kill -9` does: its task is dropped wherever it is): it resumes from the
/// checkpoint it keeps in the table, so no event is skipped and at most the
/// batch in hand is handed to the fan-out again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_poller_resumes_from_its_checkpoint() {
    let aws = local_aws("resume", 1).await;
    let sqs = hub::queue::sqs::local_client(&env("HUB_TEST_SQS_ENDPOINT"), "us-east-1").await;
    let url = aws.queue.url().to_string();
    // The API without pollers: nothing is fanned out until a poller runs.
    let s = TestServer::start_on(aws.dyn_store()).await;
    let org = s.org("Resume", true).await;
    let key = org.test.secret.as_str();
    s.http
        .post(
            "/v1/webhook-endpoints",
            key,
            &json!({"url": "http://127.0.0.1:9/x", "enabledEvents": ["clinic.created"]}),
        )
        .await
        .expect(201);
    let polling = hub::aws::local::Polling {
        stream_interval: Duration::from_millis(20),
        stream_batch: 25,
        ..Default::default()
    };
    let create = |from: usize, to: usize| {
        let http = s.http.clone();
        let key = key.to_string();
        async move {
            // Eight writers at a time.
            let mut writers = Vec::new();
            for w in 0..8 {
                let (http, key) = (http.clone(), key.clone());
                writers.push(tokio::spawn(async move {
                    for i in (from + w..to).step_by(8) {
                        http.post("/v1/clinics", &key, &json!({"name": format!("Clinic {i}")}))
                            .await
                            .expect(201);
                    }
                }));
            }
            for w in writers {
                w.await.unwrap();
            }
        }
    };
    // Run a poller until what it enqueued satisfies `done` (bounded), then
    // drop it wherever it is; every message enqueued is counted by event.
    let counts = std::sync::Mutex::new(Counts::new());
    let run_until = |rounds: usize, done: Box<dyn Fn(&Counts) -> bool>| {
        let (poller, sqs, url, counts) = (
            aws.stream_poller(polling),
            sqs.clone(),
            url.clone(),
            &counts,
        );
        async move {
            let task = tokio::spawn(Arc::new(poller).run());
            for _ in 0..rounds {
                let got = drain(&sqs, &url).await;
                let finished = {
                    let mut c = counts.lock().unwrap();
                    for (k, n) in got {
                        *c.entry(k).or_insert(0) += n;
                    }
                    done(&c)
                };
                if finished {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            task.abort();
            let _ = task.await;
        }
    };
    // 1. 60 events: stopped once all are enqueued (perhaps before the
    //    checkpoint after the last batch was written).
    create(0, 60).await;
    run_until(600, Box::new(|c| c.len() >= 60)).await;
    // 2. 90 more: stopped once some of them are enqueued.
    create(60, 150).await;
    run_until(600, Box::new(|c| c.len() >= 90)).await;
    // 3. Started again: it carries on from its checkpoint to the end.
    run_until(600, Box::new(|c| c.len() >= 150)).await;
    // 4. And once more for a second: at most the last batch again.
    run_until(20, Box::new(|_| false)).await;
    let counts = counts.into_inner().unwrap();
    let events = clinic_events(&s.http, key).await;
    assert_eq!(events.len(), 150);
    for ev in &events {
        assert!(counts.get(ev).is_some_and(|n| *n >= 1), "{ev} was skipped");
    }
    assert_eq!(counts.len(), 150, "only these events: {counts:?}");
    // Each of the four stops repeats at most the batch in hand (25).
    let extra: usize = counts.values().map(|n| n - 1).sum();
    assert!(extra <= 4 * 25, "{extra} repeated");
    // The position is in the table.
    let cps = aws
        .stream_poller(polling)
        .current_checkpoints()
        .await
        .unwrap();
    assert!(
        !cps.is_empty() && cps.values().all(|c| c.seq.is_some()),
        "{cps:?}"
    );
}

/// A shard that closes with events not yet read (here: the stream is
/// switched off, which closes its shard) is read to its end, every event is
/// fanned out, and the shard is marked done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_shard_is_read_to_its_end_and_marked_done() {
    let aws = local_aws("closed", 1).await;
    let sqs = hub::queue::sqs::local_client(&env("HUB_TEST_SQS_ENDPOINT"), "us-east-1").await;
    let url = aws.queue.url().to_string();
    let s = TestServer::start_on(aws.dyn_store()).await;
    let org = s.org("Closed", true).await;
    let key = org.test.secret.as_str();
    s.http
        .post(
            "/v1/webhook-endpoints",
            key,
            &json!({"url": "http://127.0.0.1:9/x", "enabledEvents": ["clinic.created"]}),
        )
        .await
        .expect(201);
    for i in 0..30 {
        s.http
            .post("/v1/clinics", key, &json!({"name": format!("Clinic {i}")}))
            .await
            .expect(201);
    }
    aws.store
        .client()
        .update_table()
        .table_name(&aws.table)
        .stream_specification(
            aws_sdk_dynamodb::types::StreamSpecification::builder()
                .stream_enabled(false)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let polling = hub::aws::local::Polling {
        stream_interval: Duration::from_millis(20),
        stream_batch: 7,
        ..Default::default()
    };
    let poller = Arc::new(aws.stream_poller(polling));
    let task = tokio::spawn(poller.clone().run());
    let mut cps = Default::default();
    for _ in 0..600 {
        cps = poller.current_checkpoints().await.unwrap();
        if !cps.is_empty() && cps.values().all(|c| c.done) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    task.abort();
    assert!(
        !cps.is_empty() && cps.values().all(|c| c.done),
        "the closed shard is done: {cps:?}"
    );
    let counts = drain(&sqs, &url).await;
    let events = clinic_events(&s.http, key).await;
    assert_eq!(events.len(), 30);
    for ev in &events {
        assert_eq!(counts.get(ev), Some(&1), "{ev}: {counts:?}");
    }
}

/// The DynamoDB operations a client made, by name, in order.
#[derive(Debug, Clone, Default)]
struct Calls(Arc<std::sync::Mutex<Vec<String>>>);

impl Calls {
    /// The operations since the last take, counted by name.
    fn take(&self) -> std::collections::BTreeMap<String, usize> {
        let mut counts = std::collections::BTreeMap::new();
        for op in std::mem::take(&mut *self.0.lock().unwrap()) {
            *counts.entry(op).or_insert(0) += 1;
        }
        counts
    }
}

impl aws_smithy_runtime_api::client::interceptors::Intercept for Calls {
    fn name(&self) -> &'static str {
        "Calls"
    }

    /// Each request sent, by its operation (DynamoDB's `X-Amz-Target`).
    fn read_before_transmit(
        &self,
        context: &aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef<'_>,
        _runtime: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        _cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let target = context
            .request()
            .headers()
            .get("x-amz-target")
            .unwrap_or("?");
        let op = target.rsplit('.').next().unwrap_or(target).to_string();
        self.0.lock().unwrap().push(op);
        Ok(())
    }
}

/// The Lambda event of a queue batch of these messages (each received for
/// the `count`th time).
fn queue_batch(messages: &[Value], count: u32) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            json!({"messageId": format!("m{count}-{i}"), "receiptHandle": format!("h{count}-{i}"), "body": m.to_string(),
                   "attributes": {"ApproximateReceiveCount": count.to_string()}})
        })
        .collect();
    json!({"Records": records})
}

/// A queue batch costs the delivery function one `BatchGetItem` (every
/// event, and every endpoint's object, secrets and state) and one
/// `TransactWriteItems` (the attempts at endpoints with no run of failures);
/// an endpoint with failures to reset, or a failed attempt, is recorded on
/// its own, as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_batch_is_read_once_and_recorded_once() {
    let rx = Receiver::start();
    let calls = Calls::default();
    let plain =
        hub::store::dynamodb::local_client(&env("HUB_TEST_DYNAMODB_ENDPOINT"), "us-east-1").await;
    let ddb = aws_sdk_dynamodb::Client::from_conf(
        plain
            .config()
            .to_builder()
            .interceptor(calls.clone())
            .build(),
    );
    let table = format!("hub-batch-{}", hub::ids::ulid().to_lowercase());
    DynamoStore::create_table(&ddb, &table).await.unwrap();
    let store: hub::store::DynStore =
        Arc::new(DynamoStore::new(ddb, table, hub::resources::kinds()));
    let sqs = hub::queue::sqs::local_client(&env("HUB_TEST_SQS_ENDPOINT"), "us-east-1").await;
    let url = sqs
        .create_queue()
        .queue_name(format!("batch-{}", hub::ids::ulid().to_lowercase()))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let queue = Arc::new(SqsQueue::new(sqs, url));
    let config = hub::api::Config {
        rate_limits: hub::auth::ratelimit::Limits::OFF,
        ..Default::default()
    };
    let app = hub::api::App::with_queue(store.clone(), Some(queue.clone()), config);
    let org = hub::org::create(store.as_ref(), "Batch", true)
        .await
        .unwrap();
    let tenant = format!("{}#test", org.organization_id);
    let key = org.test.secret.clone();
    let call = |method: &str, path: &str, body: Option<Value>| {
        let (app, ev) = (app.clone(), api_event(method, path, &key, body));
        async move {
            let out = lambda::invoke_http(&app, ev, "batch").await.unwrap();
            let body: Value = serde_json::from_str(out["body"].as_str().unwrap()).unwrap();
            (out["statusCode"].as_u64().unwrap(), body)
        }
    };
    // Endpoint `ok` always takes a delivery; `flaky` fails each event's first.
    let mut endpoints = Vec::new();
    for path in ["/ok", "/flaky?n=1"] {
        let (st, ep) = call(
            "POST",
            "/v1/webhook-endpoints",
            Some(json!({"url": format!("{}{path}", rx.base), "enabledEvents": ["clinic.created"]})),
        )
        .await;
        assert_eq!(st, 201, "{ep}");
        rx.secrets(
            path.split('?').next().unwrap(),
            &[ep["secret"].as_str().unwrap()],
        )
        .await;
        endpoints.push(ep["id"].as_str().unwrap().to_string());
    }
    let clinics = |names: &'static [&'static str]| {
        let call = &call;
        async move {
            for name in names {
                assert_eq!(
                    call("POST", "/v1/clinics", Some(json!({"name": name})))
                        .await
                        .0,
                    201
                );
            }
        }
    };
    let events_now = || async {
        let mut ids: Vec<String> = store
            .all(&tenant, hub::webhooks::EVENTS_KIND)
            .await
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "clinic.created")
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    let tenant_ref = &tenant;
    let messages = |events: &[String], to: &[String]| -> Vec<Value> {
        events
            .iter()
            .flat_map(|e| {
                to.iter()
                    .map(move |ep| hub::webhooks::deliver::message(tenant_ref, e, ep))
            })
            .collect()
    };
    let state = |id: String| {
        let store = store.clone();
        let tenant = tenant.clone();
        async move {
            store
                .get(&tenant, hub::webhooks::STATE_KIND, &id)
                .await
                .unwrap()
                .map(|s| s["consecutiveFailures"].clone())
        }
    };
    let cfg = DeliveryConfig {
        timeout: Duration::from_secs(5),
        ..Default::default()
    };
    let counts = |pairs: &[(&str, usize)]| -> std::collections::BTreeMap<String, usize> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    };

    // Four events to both endpoints: the four at `ok` are recorded in one
    // write; the four failures at `flaky` one at a time (each reads the
    // endpoint's state and writes it with its attempt).
    clinics(&["A", "B", "C", "D"]).await;
    let first = events_now().await;
    assert_eq!(first.len(), 4);
    calls.take();
    let result = lambda::handle_sqs_json(
        store.as_ref(),
        queue.as_ref(),
        &cfg,
        &queue_batch(&messages(&first, &endpoints), 1),
    )
    .await;
    let failed: Vec<&str> = result["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap())
        .collect();
    assert_eq!(
        failed,
        ["m1-1", "m1-3", "m1-5", "m1-7"],
        "the flaky endpoint's first attempts fail: {result}"
    );
    assert_eq!(
        calls.take(),
        counts(&[
            ("BatchGetItem", 1),
            ("GetItem", 4),
            ("TransactWriteItems", 5)
        ])
    );
    assert_eq!(
        state(endpoints[0].clone()).await,
        None,
        "no run of failures at ok"
    );
    assert_eq!(state(endpoints[1].clone()).await, Some(json!(4)));

    // Their second attempts: `flaky` takes them now, and its run of
    // failures is reset (each on its own, as the state changes).
    calls.take();
    let result = lambda::handle_sqs_json(
        store.as_ref(),
        queue.as_ref(),
        &cfg,
        &queue_batch(&messages(&first, &endpoints[1..]), 2),
    )
    .await;
    assert_eq!(result, json!({"batchItemFailures": []}));
    assert_eq!(
        calls.take(),
        counts(&[
            ("BatchGetItem", 1),
            ("GetItem", 4),
            ("TransactWriteItems", 4)
        ])
    );
    assert_eq!(state(endpoints[1].clone()).await, Some(json!(0)));

    // Two new events to both, all taken: one read, one write.
    clinics(&["E", "F"]).await;
    let second: Vec<String> = events_now()
        .await
        .into_iter()
        .filter(|e| !first.contains(e))
        .collect();
    assert_eq!(second.len(), 2);
    let batch = messages(&second, &endpoints);
    calls.take();
    let result = lambda::handle_sqs_json(
        store.as_ref(),
        queue.as_ref(),
        &cfg,
        &queue_batch(&batch, 1),
    )
    .await;
    let failed = result["batchItemFailures"].as_array().unwrap().len();
    assert_eq!(
        failed, 2,
        "flaky fails each new event's first attempt: {result}"
    );
    calls.take();
    let result = lambda::handle_sqs_json(
        store.as_ref(),
        queue.as_ref(),
        &cfg,
        &queue_batch(&messages(&second, &endpoints[..1]), 2),
    )
    .await;
    assert_eq!(result, json!({"batchItemFailures": []}));
    assert_eq!(
        calls.take(),
        counts(&[("BatchGetItem", 1), ("TransactWriteItems", 1)])
    );

    // Every attempt is in its endpoint's log, and the receiver verified
    // every signature at `ok` (twice each for the last two events).
    let (_, rows) = call(
        "GET",
        &format!(
            "/v1/webhook-endpoints/{}/deliveries?$limit=100",
            endpoints[0]
        ),
        None,
    )
    .await;
    assert_eq!(rows["data"].as_array().unwrap().len(), 8, "{rows}");
    assert!(rows["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["status"] == "succeeded"));
    let (_, rows) = call(
        "GET",
        &format!(
            "/v1/webhook-endpoints/{}/deliveries?$limit=100",
            endpoints[1]
        ),
        None,
    )
    .await;
    let mut statuses: Vec<String> = rows["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap().to_string())
        .collect();
    statuses.sort();
    assert_eq!(
        statuses,
        [
            "failed",
            "failed",
            "failed",
            "failed",
            "failed",
            "failed",
            "succeeded",
            "succeeded",
            "succeeded",
            "succeeded"
        ]
    );
    let log = rx.log().await;
    let at_ok: Vec<&Value> = log.iter().filter(|e| e["path"] == "/ok").collect();
    assert_eq!(at_ok.len(), 8);
    assert!(
        at_ok
            .iter()
            .all(|e| e["stripe"] == json!([true]) && e["standard"] == json!([true])),
        "{at_ok:?}"
    );
}
