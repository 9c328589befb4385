//! One conformance suite for the storage trait, run against the embedded
//! store and against DynamoDB (DynamoDB Local, started by scripts/test.sh,
//! which sets HUB_TEST_DYNAMODB_ENDPOINT).

use hub::query::{self, QuerySchema};
use hub::store::{Conflict, DynStore, Expect, Store, StoreError, UniqueTarget, WriteOp, WriteTx};
use hub_tests::*;
use serde_json::{json, Value};
use std::sync::Arc;

fn put(tenant: &str, kind: &'static str, id: &str, doc: Value, expect: Expect) -> WriteOp {
    WriteOp::Put {
        tenant: tenant.into(),
        kind,
        id: id.into(),
        doc,
        expect,
    }
}

fn tx(ops: Vec<WriteOp>) -> WriteTx {
    WriteTx::of(ops)
}

/// One transaction creating these patients (each carries its `id`).
fn patient_creates(tenant: &str, docs: &[Value]) -> WriteTx {
    tx(docs
        .iter()
        .map(|d| {
            put(
                tenant,
                "patients",
                d["id"].as_str().unwrap(),
                d.clone(),
                Expect::Absent,
            )
        })
        .collect())
}

fn doc(id: &str, version: u64, extra: Value) -> Value {
    let mut d = json!({"id": id, "version": version, "createdAt": "2026-11-25T00:00:00.000Z"});
    if let (Value::Object(m), Value::Object(e)) = (&mut d, extra) {
        m.extend(e);
    }
    d
}

fn list_query(raw: &str) -> query::ListQuery {
    query_for("clinics", raw)
}

/// A list query on a resource's schema, as the API parses it.
fn query_for(resource: &str, raw: &str) -> query::ListQuery {
    let res = hub::resources::by_path(resource).unwrap();
    let sets = res.field_sets();
    query::parse(
        raw,
        &QuerySchema {
            field_sets: &sets,
            search_fields: res.search_fields,
        },
    )
    .unwrap_or_else(|e| panic!("{raw}: {e:?}"))
}

async fn conformance(store: DynStore) {
    let t = format!("org_{}#test", hub::ids::ulid());
    let other = format!("org_{}#test", hub::ids::ulid());
    let k = "clinics";
    let id = hub::ids::new_id("cli");

    // Create, read back, refuse a second create of the same id.
    store
        .commit(tx(vec![put(
            &t,
            k,
            &id,
            doc(&id, 1, json!({"name": "A"})),
            Expect::Absent,
        )]))
        .await
        .unwrap();
    assert_eq!(store.get(&t, k, &id).await.unwrap().unwrap()["name"], "A");
    let again = store
        .commit(tx(vec![put(
            &t,
            k,
            &id,
            doc(&id, 1, json!({})),
            Expect::Absent,
        )]))
        .await;
    assert!(
        matches!(again, Err(StoreError::Conflict(Conflict::Exists { .. }))),
        "{again:?}"
    );
    // Conditional update on the version read; a stale version is refused.
    store
        .commit(tx(vec![put(
            &t,
            k,
            &id,
            doc(&id, 2, json!({"name": "B"})),
            Expect::Version(1),
        )]))
        .await
        .unwrap();
    let stale = store
        .commit(tx(vec![put(
            &t,
            k,
            &id,
            doc(&id, 2, json!({"name": "C"})),
            Expect::Version(1),
        )]))
        .await;
    assert!(
        matches!(stale, Err(StoreError::Conflict(Conflict::Version { .. }))),
        "{stale:?}"
    );
    assert_eq!(store.get(&t, k, &id).await.unwrap().unwrap()["name"], "B");
    // Isolation: another tenant sees nothing.
    assert!(store.get(&other, k, &id).await.unwrap().is_none());
    assert!(store.all(&other, k).await.unwrap().is_empty());

    // Uniqueness claims.
    let scope = format!("{t}/referral-sources/name");
    let target = |id: &str| UniqueTarget {
        tenant: t.clone(),
        kind: "referral-sources".into(),
        id: id.into(),
    };
    let claim = |v: &str, id: &str| WriteOp::ClaimUnique {
        scope: scope.clone(),
        value: v.into(),
        target: target(id),
    };
    store
        .commit(tx(vec![claim("google", "ref_a")]))
        .await
        .unwrap();
    store
        .commit(tx(vec![claim("google", "ref_a")]))
        .await
        .unwrap();
    let taken = store.commit(tx(vec![claim("google", "ref_b")])).await;
    assert!(
        matches!(taken, Err(StoreError::Conflict(Conflict::Unique { .. }))),
        "{taken:?}"
    );
    assert_eq!(
        store.find_unique(&scope, "google").await.unwrap(),
        Some(target("ref_a"))
    );
    store
        .commit(tx(vec![
            WriteOp::ReleaseUnique {
                scope: scope.clone(),
                value: "google".into(),
            },
            claim("bing", "ref_a"),
        ]))
        .await
        .unwrap();
    assert_eq!(store.find_unique(&scope, "google").await.unwrap(), None);
    store
        .commit(tx(vec![claim("google", "ref_b")]))
        .await
        .unwrap();

    // Atomicity: a transaction with one failing condition changes nothing.
    let id2 = hub::ids::new_id("cli");
    let failed = store
        .commit(tx(vec![
            put(
                &t,
                k,
                &id2,
                doc(&id2, 1, json!({"name": "Z"})),
                Expect::Absent,
            ),
            claim("google", "ref_c"),
        ]))
        .await;
    assert!(failed.is_err());
    assert!(
        store.get(&t, k, &id2).await.unwrap().is_none(),
        "no partial write"
    );

    // Delete is conditional too.
    let stale = store
        .commit(tx(vec![WriteOp::Delete {
            tenant: t.clone(),
            kind: k,
            id: id.clone(),
            expect: Expect::Version(1),
        }]))
        .await;
    assert!(
        matches!(stale, Err(StoreError::Conflict(Conflict::Version { .. }))),
        "{stale:?}"
    );
    store
        .commit(tx(vec![WriteOp::Delete {
            tenant: t.clone(),
            kind: k,
            id: id.clone(),
            expect: Expect::Version(2),
        }]))
        .await
        .unwrap();
    assert!(store.get(&t, k, &id).await.unwrap().is_none());

    // Lists: creation order, the query language, totals, paging flags.
    let mut ids = Vec::new();
    for (i, name) in ["Leeds", "York", "Hull", "Leeds", "Bath"]
        .iter()
        .enumerate()
    {
        let id = hub::ids::new_id("cli");
        store
            .commit(tx(vec![put(
                &t,
                k,
                &id,
                doc(
                    &id,
                    1,
                    json!({"name": name, "metadata": {"n": i.to_string()}}),
                ),
                Expect::Absent,
            )]))
            .await
            .unwrap();
        ids.push(id);
    }
    let page = store.list(&t, k, &list_query("$limit=100")).await.unwrap();
    let docs = page.docs();
    let got: Vec<&str> = docs.iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(
        got,
        ids.iter().map(String::as_str).collect::<Vec<_>>(),
        "creation order"
    );
    let page = store
        .list(&t, k, &list_query("name=Leeds&$total=true"))
        .await
        .unwrap();
    assert_eq!(page.total, Some(2));
    assert_eq!(page.docs()[0]["id"], ids[0].as_str());
    let page = store
        .list(
            &t,
            k,
            &list_query("$sort[name]=1&$limit=2&$skip=1&$total=true"),
        )
        .await
        .unwrap();
    let docs = page.docs();
    let names: Vec<&str> = docs.iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Hull", "Leeds"]);
    assert!(page.has_prev && page.has_next);
    assert_eq!(page.total, Some(5));
    assert_eq!(store.all(&t, k).await.unwrap().len(), 5);
    assert!(store
        .list(&other, k, &list_query(""))
        .await
        .unwrap()
        .data
        .is_empty());

    // Concurrent read-modify-write loops never lose an update.
    let counter = hub::ids::new_id("cli");
    store
        .commit(tx(vec![put(
            &t,
            k,
            &counter,
            doc(&counter, 1, json!({"n": 0})),
            Expect::Absent,
        )]))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (store, t, counter) = (store.clone(), t.clone(), counter.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                store.refresh().await.unwrap();
                let cur = store.get(&t, "clinics", &counter).await.unwrap().unwrap();
                let v = cur["version"].as_u64().unwrap();
                let next = doc(
                    &counter,
                    v + 1,
                    json!({"n": cur["n"].as_u64().unwrap() + 1}),
                );
                match store
                    .commit(tx(vec![put(
                        &t,
                        "clinics",
                        &counter,
                        next,
                        Expect::Version(v),
                    )]))
                    .await
                {
                    Ok(()) => break,
                    Err(StoreError::Conflict(_)) | Err(StoreError::Busy) => continue,
                    Err(e) => panic!("{e}"),
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let final_doc = store.get(&t, k, &counter).await.unwrap().unwrap();
    assert_eq!(final_doc["n"], 10);
    assert_eq!(final_doc["version"], 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_conforms() {
    let dir = TempDir::new("conf");
    conformance(Arc::new(
        hub::store::embedded::EmbeddedStore::open(dir.path(), hub::resources::kinds()).unwrap(),
    ))
    .await;
}

/// A new table on DynamoDB Local (no stream), named `{prefix}-{ulid}`, and
/// the client that made it.
async fn fresh_table(prefix: &str) -> (aws_sdk_dynamodb::Client, String) {
    let client = hub::store::dynamodb::local_client(&dynamodb_endpoint(), "us-east-1").await;
    let table = format!("{prefix}-{}", hub::ids::ulid().to_lowercase());
    hub::store::dynamodb::DynamoStore::create_table_without_stream(&client, &table)
        .await
        .unwrap();
    (client, table)
}

/// DynamoDB Local's endpoint; scripts/test.sh starts it and sets this.
pub fn dynamodb_endpoint() -> String {
    std::env::var("HUB_TEST_DYNAMODB_ENDPOINT").expect(
        "HUB_TEST_DYNAMODB_ENDPOINT is not set: run scripts/test.sh, which starts DynamoDB Local",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_store_conforms() {
    let (client, table) = fresh_table("hub-test").await;
    let store = hub::store::dynamodb::DynamoStore::new(client, table, hub::resources::kinds());
    store.warm_up().await.unwrap();
    conformance(Arc::new(store)).await;
}

/// The same handlers over DynamoDB: sandbox, CRUD, queries, cursors,
/// isolation and concurrent PATCHes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_works_over_dynamodb() {
    let (client, table) = fresh_table("hub-api").await;
    let s = TestServer::start_on(Arc::new(hub::store::dynamodb::DynamoStore::new(
        client.clone(),
        table.clone(),
        hub::resources::kinds(),
    )))
    .await;
    let org = s.org("St. Mungo's Clinic", false).await;
    let key = org.test.secret.as_str();
    // The same table behind a server whose lists may read 50 items: a sort
    // no key serves is refused with advice; pages in key order still work.
    let small = TestServer::start_on(Arc::new(
        hub::store::dynamodb::DynamoStore::new(client, table, hub::resources::kinds())
            .with_list_bound(50),
    ))
    .await;
    let refused = small.http.get("/v1/patients?$sort[age]=1", key).await;
    refused.expect_error(400, "INVALID_PARAMETERS");
    let msg = refused.body["message"].as_str().unwrap();
    assert!(
        msg.contains("more than 50 patients") && msg.contains("primaryClinicId=…"),
        "{msg}"
    );
    let newest = small
        .http
        .get("/v1/patients?$sort[createdAt]=-1&$limit=20", key)
        .await;
    newest.expect(200);
    assert_eq!(newest.ids().len(), 20);
    assert!(newest.body["next"].is_string());
    // Values no key condition may hold (empty, over 1 KB) narrow nothing
    // and still answer, rather than failing in DynamoDB.
    let long = "x".repeat(1500);
    for q in [
        "id=".to_string(),
        "id[$gt]=&$limit=1".to_string(),
        format!("id={long}"),
        format!("primaryClinicId={long}"),
        "emailAddress=".to_string(),
    ] {
        let r = s.http.get(&format!("/v1/patients?{q}"), key).await;
        r.expect(200);
    }
    // Ids and names beyond DynamoDB's key size are plain 404s and 400s.
    s.http
        .get(&format!("/v1/patients/{long}"), key)
        .await
        .expect_error(404, "NOT_FOUND");
    s.http
        .delete(&format!("/v1/patients/pat_{long}"), key)
        .await
        .expect_error(404, "NOT_FOUND");
    let mut body = patient_body(
        "Long Name",
        "St. Mungo's Clinic – Leeds",
        "Active",
        "Google",
    );
    body["primaryClinicName"] = json!(long);
    let r = s.http.post("/v1/patients", key, &body).await;
    r.expect_error(400, "INVALID_PARAMETERS");
    // A unique name longer than a key may be (450 × 3 bytes) is still unique.
    let name = "€".repeat(450);
    s.http
        .post("/v1/referral-sources", key, &json!({ "name": name }))
        .await
        .expect(201);
    s.http
        .post("/v1/referral-sources", key, &json!({ "name": name }))
        .await
        .expect_error(409, "CONFLICT");
    let total = s.http.get("/v1/patients?$limit=0", key).await;
    total.expect(200);
    assert_eq!(total.body["total"], 60, "the sandbox, through DynamoDB");
    // Create, get, patch, filter, delete.
    let p = s
        .http
        .post(
            "/v1/patients",
            key,
            &patient_body("Dyna Mo", "St. Mungo's Clinic – Leeds", "Active", "Google"),
        )
        .await;
    p.expect(201);
    let path = format!("/v1/patients/{}", p.id());
    assert_eq!(s.http.get(&path, key).await.body, p.body);
    s.http
        .patch(&path, key, &json!({"notes": "via DynamoDB"}))
        .await
        .expect(200);
    let found = s.http.get("/v1/patients?notes=via%20DynamoDB", key).await;
    assert_eq!(found.ids(), vec![p.id()]);
    // Isolation.
    let other = s.org("Other", true).await;
    s.http
        .get(&path, &other.test.secret)
        .await
        .expect_error(404, "NOT_FOUND");
    s.http
        .get(&path, &org.live.secret)
        .await
        .expect_error(404, "NOT_FOUND");
    // Unique names.
    s.http
        .post("/v1/referral-sources", key, &json!({"name": "GOOGLE"}))
        .await
        .expect_error(409, "CONFLICT");
    // Cursor paging through every patient, no repeats.
    let mut seen = Vec::new();
    let mut page = s
        .http
        .get("/v1/patients?$limit=25&$sort[fullName]=1", key)
        .await;
    loop {
        seen.extend(page.ids());
        let Some(next) = page.body["next"].as_str().map(String::from) else {
            break;
        };
        page = s
            .http
            .get(
                &format!("/v1/patients?$limit=25&$sort[fullName]=1&$after={next}"),
                key,
            )
            .await;
    }
    let n = seen.len();
    seen.sort();
    seen.dedup();
    assert_eq!((n, seen.len()), (61, 61));
    // Concurrent PATCHes lose nothing.
    let mut tasks = Vec::new();
    for i in 0..10 {
        let (http, key, path) = (s.http.clone(), key.to_string(), path.clone());
        tasks.push(tokio::spawn(async move {
            http.patch(&path, &key, &json!({"metadata": {format!("k{i}"): "v"}}))
                .await
        }));
    }
    for t in tasks {
        t.await.unwrap().expect(200);
    }
    let g = s.http.get(&path, key).await;
    assert_eq!(g.body["metadata"].as_object().unwrap().len(), 10);
    // Events are queryable objects here too.
    let ev = s
        .http
        .get(&format!("/v1/events?data.id={}&$limit=100", p.id()), key)
        .await;
    assert!(ev.ids().len() >= 12, "{}", ev.body);
    s.http.delete(&path, key).await.expect(200);
    s.http.get(&path, key).await.expect_error(404, "NOT_FOUND");
    // Idempotency keys behave the same over DynamoDB.
    let other_org = s.org("Idempotency Other", true).await;
    idempotency_contract(&s.http, key, &other_org.test.secret).await;
}

/// The queue trait, the same checks for the embedded queue and SQS: no
/// waiting on clocks (visibility is long, or zero).
async fn queue_conformance(q: hub::queue::DynQueue) {
    let long = std::time::Duration::from_secs(60);
    q.send(
        vec![json!({"n": 1}), json!({"n": 2})],
        std::time::Duration::ZERO,
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    for _ in 0..20 {
        got.extend(q.receive(10, long).await.unwrap());
        if got.len() >= 2 {
            break;
        }
    }
    assert_eq!(got.len(), 2, "both messages received");
    assert!(got.iter().all(|m| m.receive_count == 1));
    let mut ns: Vec<i64> = got.iter().map(|m| m.body["n"].as_i64().unwrap()).collect();
    ns.sort();
    assert_eq!(ns, [1, 2]);
    // Hidden while their visibility lasts.
    assert!(
        q.receive(10, long).await.unwrap().is_empty(),
        "received messages are invisible"
    );
    // Delete one; make the other visible at once: it comes back, counted twice.
    let (done, again) = (&got[0], &got[1]);
    q.delete(&done.handle).await.unwrap();
    q.change_visibility(&again.handle, std::time::Duration::ZERO)
        .await
        .unwrap();
    let mut back = Vec::new();
    for _ in 0..20 {
        back = q.receive(10, long).await.unwrap();
        if !back.is_empty() {
            break;
        }
    }
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].body, again.body);
    assert_eq!(back[0].receive_count, 2);
    q.delete(&back[0].handle).await.unwrap();
    // A delayed message is not visible yet.
    q.send(vec![json!({"n": 3})], std::time::Duration::from_secs(600))
        .await
        .unwrap();
    assert!(q.receive(10, long).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_queue_conforms() {
    let dir = TempDir::new("queue");
    queue_conformance(Arc::new(
        hub::queue::embedded::EmbeddedQueue::open(dir.path()).unwrap(),
    ))
    .await;
}

/// moto's server; scripts/test.sh starts it and sets this.
pub fn sqs_endpoint() -> String {
    std::env::var("HUB_TEST_SQS_ENDPOINT")
        .expect("HUB_TEST_SQS_ENDPOINT is not set: run scripts/test.sh, which starts moto's server")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_queue_conforms() {
    let client = hub::queue::sqs::local_client(&sqs_endpoint(), "us-east-1").await;
    let name = format!("hub-test-{}", hub::ids::ulid().to_lowercase());
    let url = client
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    queue_conformance(Arc::new(hub::queue::sqs::SqsQueue::new(client, url))).await;
}

fn patients_query(raw: &str) -> query::ListQuery {
    query_for("patients", raw)
}

fn page_ids(p: &hub::store::ListPage) -> Vec<String> {
    p.docs()
        .iter()
        .map(|d| d["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// One random list query over the generated patients, as a query string.
fn random_query(r: &mut Rng, docs: &[Value]) -> String {
    let pick = |r: &mut Rng, field: &str| -> String {
        let d = &docs[r.below(docs.len())];
        d[field].as_str().unwrap_or("none").to_string()
    };
    let mut parts: Vec<String> = Vec::new();
    if r.chance(35) {
        parts.push(format!("primaryClinicId={}", pick(r, "primaryClinicId")));
    }
    if r.chance(15) {
        parts.push(format!("emailAddress={}", pick(r, "emailAddress")));
    }
    if r.chance(12) {
        parts.push(format!(
            "primaryPhoneNumber={}",
            pick(r, "primaryPhoneNumber").replace('+', "%2B")
        ));
    }
    if r.chance(25) {
        let texts = [
            "hearing",
            "aid tinnitus",
            "\"coffee shop\"",
            "runs -wax",
            "lee",
            "zoe",
            "LEFT",
            "\"hearing aids\" left",
        ];
        let text = texts[r.below(texts.len())]
            .replace(' ', "%20")
            .replace('"', "%22");
        match r.below(5) {
            0 => parts.push(format!(
                "$search[text]={text}&$search[sortByRelevance]=true"
            )),
            1 => parts.push(format!("$search[text]={text}&$search[caseSensitive]=true")),
            2 => parts.push(format!(
                "$search[text]={text}&$search[diacriticSensitive]=true"
            )),
            _ => parts.push(format!("$search={text}")),
        }
    }
    for field in ["createdAt", "updatedAt"] {
        if r.chance(25) {
            let op = ["$gt", "$gte", "$lt", "$lte"][r.below(4)];
            parts.push(format!("{field}[{op}]={}", pick(r, field)));
        }
    }
    if r.chance(8) {
        let op = ["$gt", "$lte"][r.below(2)];
        parts.push(format!("id[{op}]={}", pick(r, "id")));
    }
    if r.chance(30) {
        parts.push(format!("age[$gt]={}", r.below(80)));
    }
    if r.chance(15) {
        parts.push(format!(
            "$or[0][fullName]={}&$or[1][age][$lt]=20",
            pick(r, "fullName")
        ));
    }
    let sorts: &[&[&str]] = &[
        &[],
        &["id"],
        &["createdAt"],
        &["updatedAt"],
        &["updatedAt", "fullName"],
        &["createdAt", "age"],
        &["fullName"],
        &["fullName"],
        &["fullName", "age"],
        &["age", "updatedAt"],
    ];
    for key in sorts[r.below(sorts.len())] {
        let dir = if r.chance(50) { "1" } else { "-1" };
        parts.push(format!("$sort[{key}]={dir}"));
    }
    if r.chance(8) {
        parts.push("$limit=0".into());
    } else {
        parts.push(format!("$limit={}", 1 + r.below(12)));
    }
    if r.chance(20) {
        parts.push(format!("$skip={}", r.below(4)));
    }
    if r.chance(15) {
        parts.push("$total=true".into());
    }
    parts.join("&")
}

/// The DynamoDB store's planner (lookup entries, the directory, search
/// postings, counters, `updatedAt` order on GSI3, `id`/`createdAt` order and
/// ranges on the table's keys, reading only as far as a page needs) gives
/// exactly what the embedded store gives, for random filters, searches,
/// sorts with ties, skips, totals and cursor walks both ways — before and
/// after updates that change indexed values and deletes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_lists_agree_with_the_embedded_store() {
    let (client, table) = fresh_table("hub-plan").await;
    let dynamo = Arc::new(hub::store::dynamodb::DynamoStore::new(
        client.clone(),
        table.clone(),
        hub::resources::kinds(),
    ));
    let dir = TempDir::new("plan");
    let embedded: DynStore = Arc::new(
        hub::store::embedded::EmbeddedStore::open(dir.path(), hub::resources::kinds()).unwrap(),
    );
    let seed = std::env::var("PLAN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7u64);
    let mut r = Rng(seed);
    let t = format!("org_{}#test", hub::ids::ulid());
    let other = format!("org_{}#test", hub::ids::ulid());
    let clinics = ["cli_A", "cli_B", "cli_C"];
    let names = [
        "Ann Lee",
        "Bob Roe",
        "Cy Day",
        "Di Fox",
        "Ann-Marie Lee",
        "Zoë Day",
    ];
    let words = [
        "hearing", "aids", "tinnitus", "running", "coffee", "shop", "wax", "left",
    ];
    let base_ms = 1_790_000_000_000i64;
    let mut docs = Vec::new();
    let mut ops = Vec::new();
    for i in 0..240 {
        // Ids minted in bursts share milliseconds: ties on `createdAt`.
        let (id, ms) = hub::ids::new_id_at("pat");
        let mut d = json!({
            "id": id, "object": "patient", "version": 1,
            "fullName": names[r.below(names.len())],
            "createdAt": hub::time::format_ms(ms),
            // Few distinct values: many ties on `updatedAt`.
            "updatedAt": hub::time::format_ms(base_ms + 1000 * r.below(25) as i64),
        });
        if r.chance(85) {
            d["primaryClinicId"] = json!(clinics[r.below(3)]);
        }
        if r.chance(70) {
            d["emailAddress"] = json!(format!("p{}@example.com", r.below(30)));
        }
        if r.chance(80) {
            d["age"] = json!(r.below(90));
        }
        if r.chance(90) {
            d["primaryPhoneNumber"] = json!(format!("+44700900{:03}", r.below(40)));
        }
        if r.chance(60) {
            let n = 1 + r.below(5);
            let text: Vec<&str> = (0..n).map(|_| words[r.below(words.len())]).collect();
            d["notes"] = json!(text.join(" "));
        }
        if r.chance(10) {
            d["fullName"] = Value::Null;
        }
        if i % 40 == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        ops.push(put(&t, "patients", &id, d.clone(), Expect::Absent));
        // The same ids in another tenant never show.
        ops.push(put(&other, "patients", &id, d.clone(), Expect::Absent));
        docs.push(d);
    }
    // Each object's entries and counters ride in its transaction: a few
    // objects per transaction keep within DynamoDB's 100 items.
    for chunk in ops.chunks(4) {
        dynamo.commit(tx(chunk.to_vec())).await.unwrap();
        embedded.commit(tx(chunk.to_vec())).await.unwrap();
    }
    // The same table with the list bound lowered to a quarter of the
    // tenant: what it answers must still agree (so the index paths, not a
    // read of everything, gave it), and what it refuses is counted.
    let lean = hub::store::dynamodb::DynamoStore::new(
        client.clone(),
        table.clone(),
        hub::resources::kinds(),
    )
    .with_list_bound(60);
    let (mut lean_served, mut lean_refused) = (0, 0);
    let fields = hub::resources::by_path("patients").unwrap().search_fields;
    let queries: usize = std::env::var("PLAN_QUERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(70);
    let mut pages = 0;
    let mut round = 0;
    for n in 0..queries * 2 {
        if n == queries {
            // Updates that move indexed values, and deletes; then again.
            round = 1;
            let mut deleted = std::collections::HashSet::new();
            for (i, d) in docs.iter_mut().enumerate() {
                let id = d["id"].as_str().unwrap().to_string();
                let v = d["version"].as_u64().unwrap();
                let op = if i % 7 == 0 {
                    deleted.insert(id.clone());
                    WriteOp::Delete {
                        tenant: t.clone(),
                        kind: "patients",
                        id: id.clone(),
                        expect: Expect::Version(v),
                    }
                } else if i % 3 == 0 {
                    d["version"] = json!(v + 1);
                    d["primaryClinicId"] = json!(clinics[r.below(3)]);
                    d["fullName"] = json!(names[r.below(names.len())]);
                    d["primaryPhoneNumber"] = json!(format!("+44700900{:03}", r.below(40)));
                    d["notes"] = json!(words[r.below(words.len())]);
                    d["updatedAt"] =
                        json!(hub::time::format_ms(base_ms + 1000 * r.below(25) as i64));
                    put(&t, "patients", &id, d.clone(), Expect::Version(v))
                } else {
                    continue;
                };
                dynamo.commit(tx(vec![op.clone()])).await.unwrap();
                embedded.commit(tx(vec![op])).await.unwrap();
            }
            docs.retain(|d| !deleted.contains(d["id"].as_str().unwrap()));
        }
        let raw = random_query(&mut r, &docs);
        let mut q = patients_query(&raw);
        let mut step = 0;
        loop {
            let a = embedded.list(&t, "patients", &q).await.unwrap();
            let b = dynamo.list(&t, "patients", &q).await.unwrap();
            let ctx = format!(
                "round {round} query {n} `{raw}` step {step} position {:?}",
                q.position
            );
            assert_eq!(page_ids(&a), page_ids(&b), "{ctx}");
            assert_eq!(a.total, b.total, "{ctx}");
            assert_eq!((a.has_prev, a.has_next), (b.has_prev, b.has_next), "{ctx}");
            match lean.list(&t, "patients", &q).await {
                Ok(c) => {
                    assert_eq!(page_ids(&a), page_ids(&c), "bound 60: {ctx}");
                    assert_eq!(a.total, c.total, "bound 60: {ctx}");
                    assert_eq!(
                        (a.has_prev, a.has_next),
                        (c.has_prev, c.has_next),
                        "bound 60: {ctx}"
                    );
                    lean_served += 1;
                }
                Err(StoreError::TooLarge { .. }) => lean_refused += 1,
                Err(e) => panic!("bound 60: {ctx}: {e}"),
            }
            pages += 1;
            step += 1;
            // Walk forward by `next`, then one step back by `prev`.
            let forward = step < 4;
            let (doc, before) = if forward && a.has_next {
                (a.data.last(), false)
            } else if !forward && step == 4 && a.has_prev {
                (a.data.first(), true)
            } else {
                break;
            };
            let Some(doc) = doc else { break };
            q.position = Some(doc.position(&q, fields, before));
        }
    }
    assert!(pages > queries, "cursor walks happened: {pages} pages");
    // Most random pages are served by the indexes within a bound of
    // a quarter of the tenant (the rest filter or sort on what no index
    // keeps: `age`, `$or`, totals of filters).
    println!("bound 60: {lean_served} pages served, {lean_refused} refused");
    assert!(
        lean_served > lean_refused,
        "bound 60: {lean_served} served, {lean_refused} refused"
    );

    // A page in creation order reads about a page of items, not the collection.
    let (r0, _) = dynamo.consumed();
    dynamo
        .list(&t, "patients", &patients_query("$limit=5"))
        .await
        .unwrap();
    let (r1, _) = dynamo.consumed();
    dynamo
        .list(&t, "patients", &patients_query("$sort[age]=1&$limit=5"))
        .await
        .unwrap();
    let (r2, _) = dynamo.consumed();
    assert!(
        r1 - r0 < (r2 - r1) / 4.0,
        "a streamed page costs {} RCU, a full read {} RCU",
        r1 - r0,
        r2 - r1
    );

    // Past the bound: a clear refusal with advice; served queries still work.
    let small = hub::store::dynamodb::DynamoStore::new(client, table, hub::resources::kinds())
        .with_list_bound(100);
    let refused = small
        .list(&t, "patients", &patients_query("$sort[age]=1"))
        .await;
    match refused {
        Err(StoreError::TooLarge { bound, advice, .. }) => {
            assert_eq!(bound, 100);
            assert!(advice.contains("primaryClinicId"), "{advice}");
            let api: hub::error::ApiError = StoreError::TooLarge {
                kind: "patients".into(),
                bound,
                advice,
            }
            .into();
            assert_eq!(api.kind.status(), 400);
            assert!(
                api.message.contains("more than 100 patients"),
                "{}",
                api.message
            );
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    let served = small
        .list(
            &t,
            "patients",
            &patients_query("$sort[updatedAt]=-1&$limit=20"),
        )
        .await
        .unwrap();
    assert_eq!(served.data.len(), 20);
    let few = docs
        .iter()
        .filter(|d| d["emailAddress"] == "p3@example.com")
        .count();
    let by_email = small
        .list(
            &t,
            "patients",
            &patients_query("emailAddress=p3@example.com&$sort[fullName]=1&$total=true"),
        )
        .await
        .unwrap();
    assert_eq!(by_email.total, Some(few));

    // What a front desk runs all day, each read within a bound well below
    // the tenant's size and reading about what it returns.
    let phone = docs
        .iter()
        .find_map(|d| d["primaryPhoneNumber"].as_str())
        .unwrap()
        .replace('+', "%2B");
    let served = [
        "$search=tinnitus".to_string(),
        "$search=%22coffee%20shop%22".into(),
        "$search[text]=Tinnitus&$search[caseSensitive]=true".into(),
        "$search[text]=zoe&$search[sortByRelevance]=true&$limit=5".into(),
        // Any of several common words: their postings merged in id order,
        // read as far as the page goes (their union is past the bound).
        "$search=hearing%20aids%20tinnitus%20running%20coffee%20shop%20wax%20left&$limit=10".into(),
        "$search=left%20wax%20shop%20coffee%20running%20tinnitus%20aids%20hearing&$sort[createdAt]=-1&$limit=5".into(),
        format!("primaryPhoneNumber={phone}"),
        "$sort[fullName]=1&$limit=25".into(),
        "$sort[fullName]=-1&$limit=10".into(),
        "$limit=0".into(),
        "$total=true&$limit=5".into(),
        "primaryClinicId=cli_A&$limit=0".into(),
        "primaryClinicId=cli_B&$total=true&$limit=3".into(),
    ];
    for raw in &served {
        let q = patients_query(raw);
        let a = embedded.list(&t, "patients", &q).await.unwrap();
        let before = small.items_read();
        let b = small
            .list(&t, "patients", &q)
            .await
            .unwrap_or_else(|e| panic!("`{raw}` at a bound of 100: {e}"));
        let read = small.items_read() - before;
        assert_eq!(page_ids(&a), page_ids(&b), "`{raw}`");
        assert_eq!(a.total, b.total, "`{raw}`");
        assert!(
            read < 2 * 100,
            "`{raw}` read {read} items of a tenant of {}",
            docs.len()
        );
    }
    // Those searches match more than the bound: reading their union would
    // have been refused.
    {
        let raw = "$search=hearing%20aids%20tinnitus%20running%20coffee%20shop%20wax%20left";
        let all = embedded
            .list(
                &t,
                "patients",
                &patients_query(&format!("{raw}&$total=true&$limit=1")),
            )
            .await
            .unwrap();
        assert!(
            all.total.unwrap_or(0) > 100,
            "`{raw}` matches {:?}",
            all.total
        );
    }
    let counted = small
        .list(&t, "patients", &patients_query("$limit=0"))
        .await
        .unwrap();
    assert_eq!(counted.total, Some(docs.len()));
}

/// DynamoDB capacity units each route costs, as DynamoDB Local reports them
/// (`ReturnConsumedCapacity=TOTAL` on every call), over a tenant of 200
/// patients. Prints the table (and writes it to `$HUB_UNITS_REPORT` when
/// set: `bench/dynamodb-units.sh`), and holds the planner to its promise
/// that a page read in key order costs a page, not the collection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_units_per_route() {
    let (client, table) = fresh_table("hub-units").await;
    let dynamo = Arc::new(hub::store::dynamodb::DynamoStore::new(
        client,
        table,
        hub::resources::kinds(),
    ));
    let s = TestServer::start_on(dynamo.clone()).await;
    let org = s.org("Units", false).await;
    let key = org.test.secret.clone();
    // 140 more patients beside the sandbox's 60.
    let mut tasks = Vec::new();
    for w in 0..7 {
        let (http, key) = (s.http.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..20 {
                http.post(
                    "/v1/patients",
                    &key,
                    &patient_body(
                        &format!("Unit {w}-{i}"),
                        "St. Mungo's Clinic – Leeds",
                        "Active",
                        "Google",
                    ),
                )
                .await
                .expect(201);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let count = s.http.get("/v1/patients?$limit=0", &key).await;
    assert_eq!(count.body["total"], 200, "{}", count.body);
    // The newest patient: one of this test's, with no appointments or
    // invoices (which would keep it from being deleted).
    let some = s
        .http
        .get("/v1/patients?$limit=1&$sort[createdAt]=-1", &key)
        .await;
    let pid = some.ids()[0].clone();
    let clinic = some.body["data"][0]["primaryClinicId"]
        .as_str()
        .unwrap()
        .to_string();
    let ep = s
        .http
        .post(
            "/v1/webhook-endpoints",
            &key,
            &json!({"url": "http://127.0.0.1:9/hook", "enabledEvents": ["*"]}),
        )
        .await;
    ep.expect(201);

    let mut rows: Vec<(String, f64, f64, u64, u64)> = Vec::new();
    let mut measure = |label: &str, r: (f64, f64), before: (f64, f64), items: (u64, u64)| {
        rows.push((
            label.to_string(),
            r.0 - before.0,
            r.1 - before.1,
            items.0,
            items.1,
        ));
        (r.0 - before.0, r.1 - before.1)
    };
    macro_rules! unit {
        ($label:expr, $call:expr) => {{
            let before = dynamo.consumed();
            let (read0, written0) = (dynamo.items_read(), dynamo.items_written());
            let resp = $call.await;
            assert!(
                resp.status < 300,
                "{}: {} {}",
                $label,
                resp.status,
                resp.body
            );
            let items = (
                dynamo.items_read() - read0,
                dynamo.items_written() - written0,
            );
            measure($label, dynamo.consumed(), before, items)
        }};
    }
    let get = unit!(
        "GET /v1/patients/{id}",
        s.http.get(&format!("/v1/patients/{pid}"), &key)
    );
    let page = unit!(
        "GET /v1/patients?$limit=10 (creation order)",
        s.http.get("/v1/patients?$limit=10", &key)
    );
    let by_clinic = unit!(
        "GET /v1/patients?primaryClinicId=…&$limit=10 (lookup entries)",
        s.http.get(
            &format!("/v1/patients?primaryClinicId={clinic}&$limit=10"),
            &key
        )
    );
    let by_updated = unit!(
        "GET /v1/patients?$sort[updatedAt]=-1&$limit=10 (GSI3)",
        s.http
            .get("/v1/patients?$sort[updatedAt]=-1&$limit=10", &key)
    );
    unit!(
        "GET /v1/patients?emailAddress=…&$limit=10 (lookup entries)",
        s.http.get(
            "/v1/patients?emailAddress=someone@example.com&$limit=10",
            &key
        )
    );
    unit!(
        "GET /v1/patients?$sort[fullName]=1&$limit=10 (the directory)",
        s.http.get("/v1/patients?$sort[fullName]=1&$limit=10", &key)
    );
    unit!(
        "GET /v1/patients?$search=<surname> (postings)",
        s.http.get("/v1/patients?$search=Granger", &key)
    );
    unit!(
        "GET /v1/patients?primaryPhoneNumber=… (lookup entries)",
        s.http
            .get("/v1/patients?primaryPhoneNumber=%2B447700900123", &key)
    );
    unit!(
        "GET /v1/patients?$limit=0 (counters)",
        s.http.get("/v1/patients?$limit=0", &key)
    );
    let sorted = unit!(
        "GET /v1/patients?$sort[age]=1&$limit=10 (no index: reads all 200)",
        s.http.get("/v1/patients?$sort[age]=1&$limit=10", &key)
    );
    unit!(
        "GET /v1/patients?age[$gt]=40&$limit=0 (a filtered count: reads all 200)",
        s.http.get("/v1/patients?age[$gt]=40&$limit=0", &key)
    );
    unit!(
        "GET /v1/events?$limit=10",
        s.http.get("/v1/events?$limit=10", &key)
    );
    unit!(
        "GET /v1/events?type=patient.created&$limit=10 (lookup entries)",
        s.http
            .get("/v1/events?type=patient.created&$limit=10", &key)
    );
    let create = unit!(
        "POST /v1/patients (names resolved: clinic, status, referral)",
        s.http.post(
            "/v1/patients",
            &key,
            &patient_body("Unit X", "St. Mungo's Clinic – Leeds", "Active", "Google")
        )
    );
    unit!(
        "PATCH /v1/patients/{id}",
        s.http
            .patch(&format!("/v1/patients/{pid}"), &key, &json!({"notes": "n"}))
    );
    unit!(
        "POST /v1/clinics",
        s.http.post(
            "/v1/clinics",
            &key,
            &json!({"name": "Units Clinic", "timeZone": "Europe/London"})
        )
    );
    unit!(
        "GET /v1/webhook-endpoints/{id}/deliveries (lookup entries)",
        s.http.get(
            &format!("/v1/webhook-endpoints/{}/deliveries", ep.id()),
            &key
        )
    );
    // Scheduling and money, on the sandbox's clinic.
    let prc = s.http.get("/v1/practitioners?$limit=1", &key).await.body["data"][0].clone();
    let prc_id = prc["id"].as_str().unwrap().to_string();
    let prc_clinic = prc["clinicIds"][0].as_str().unwrap().to_string();
    let aty = s
        .http
        .get("/v1/appointment-types?$limit=1", &key)
        .await
        .ids()[0]
        .clone();
    let far = (hub::time::now_ms() / 86_400_000 + 60) * 86_400_000 + 10 * 3_600_000;
    unit!(
        "POST /v1/appointments (refs, guard item, event)",
        s.http.post(
            "/v1/appointments",
            &key,
            &json!({"patientId": pid, "practitionerId": prc_id, "clinicId": prc_clinic,
                    "appointmentTypeId": aty, "startAt": hub::time::format_ms(far)})
        )
    );
    let now = hub::time::now_ms();
    unit!(
        "GET /v1/appointments?practitionerId=…&startAt[$gte]=…&startAt[$lt]=…&$sort[startAt]=1 (one week, lookup entries)",
        s.http.get(
            &format!(
                "/v1/appointments?practitionerId={prc_id}&startAt[$gte]={}&startAt[$lt]={}&$sort[startAt]=1&$limit=100",
                hub::time::format_ms(now),
                hub::time::format_ms(now + 7 * 86_400_000)
            ),
            &key
        )
    );
    let inv = s
        .http
        .post(
            "/v1/invoices",
            &key,
            &json!({"patientId": pid, "currency": "GBP", "status": "open",
                    "lineItems": [{"description": "Hearing test", "quantity": 1, "unitAmount": 7500}]}),
        )
        .await;
    inv.expect(201);
    unit!(
        "POST /v1/transactions (payment: the transaction and the invoice's next version)",
        s.http.post(
            "/v1/transactions",
            &key,
            &json!({"invoiceId": inv.id(), "type": "payment", "amount": 2500, "currency": "GBP", "method": "card"})
        )
    );
    let pack = s
        .http
        .post(
            "/v1/packages",
            &key,
            &json!({"name": "Units pack", "type": "sessionPack", "sessions": 5, "price": 5000, "currency": "GBP"}),
        )
        .await
        .id();
    s.http
        .post(
            "/v1/purchases",
            &key,
            &json!({"patientId": pid, "packageId": pack}),
        )
        .await
        .expect(201);
    unit!(
        "POST /v1/check-ins (uses a session: the check-in and the purchase's next version)",
        s.http.post(
            "/v1/check-ins",
            &key,
            &json!({"patientId": pid, "clinicId": prc_clinic})
        )
    );
    let other = s
        .http
        .post(
            "/v1/patients",
            &key,
            &patient_body(
                "Unit Gone",
                "St. Mungo's Clinic – Leeds",
                "Active",
                "Google",
            ),
        )
        .await
        .id();
    unit!(
        "DELETE /v1/patients/{id} (with the count of what refers to it)",
        s.http.delete(&format!("/v1/patients/{other}"), &key)
    );

    let mut table = String::from(
        "| route | read units | write units | items read by lists | items written |\n|---|---|---|---|---|\n",
    );
    for (label, r, w, ir, iw) in &rows {
        table.push_str(&format!("| `{label}` | {r} | {w} | {ir} | {iw} |\n"));
    }
    println!("{table}");
    if let Ok(path) = std::env::var("HUB_UNITS_REPORT") {
        std::fs::write(path, &table).unwrap();
    }
    // Reads by key cost a few units; writes are transactional (2 per KB per item).
    assert!(get.0 > 0.0 && get.0 <= 4.0, "{table}");
    assert!(create.1 > 0.0, "{table}");
    // Pages in an order a key serves cost about a page; a sort no key
    // serves reads the collection.
    // (A lookup reads its entries and then each object by key: a
    // `BatchGetItem` is charged per item, a `Query` by size.)
    for cheap in [page.0, by_clinic.0, by_updated.0] {
        assert!(cheap * 2.0 < sorted.0, "{table}");
    }
}

/// `hub serve`'s housekeeping: events past their 30 days leave the
/// embedded store — in every process sharing the data directory, including
/// one so far behind that the change log it needed was pruned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_purge_drops_expired_events_everywhere() {
    use hub::store::embedded::EmbeddedStore;
    let dir = TempDir::new("purge");
    let a = EmbeddedStore::open(dir.path(), hub::resources::kinds()).unwrap();
    let b = EmbeddedStore::open(dir.path(), hub::resources::kinds()).unwrap();
    let t = format!("org_{}#test", hub::ids::ulid());
    let kind = hub::webhooks::EVENTS_KIND;
    let now = hub::time::now_ms();
    let old_ms = now - 31 * 24 * 3_600_000;
    let old: Vec<String> = (0..3)
        .map(|i| format!("{}000000000000000{i}", hub::ids::time_prefix("evt", old_ms)))
        .collect();
    let fresh: Vec<String> = (0..2).map(|_| hub::ids::new_id("evt")).collect();
    let mut w = WriteTx::default();
    for (id, ms) in old
        .iter()
        .map(|i| (i, old_ms))
        .chain(fresh.iter().map(|i| (i, now)))
    {
        let doc = json!({"id": id, "object": "event", "type": "patient.created",
                         "createdAt": hub::time::format_ms(ms)});
        w.ops.push(put(&t, kind, id, doc.clone(), Expect::Absent));
        w.events.push(hub::store::EventRecord {
            id: id.clone(),
            tenant: t.clone(),
            event_type: "patient.created".into(),
            created_at_ms: ms,
            envelope: doc,
        });
    }
    a.commit(w).await.unwrap();
    a.mark_dispatched(&old).await.unwrap();
    b.refresh().await.unwrap();
    assert_eq!(b.all(&t, kind).await.unwrap().len(), 5);

    // Many more changes, so pruning the log to 5 leaves `b` behind it.
    for i in 0..20 {
        let id = hub::ids::new_id("cli");
        a.commit(tx(vec![put(
            &t,
            "clinics",
            &id,
            doc(&id, 1, json!({"name": format!("C{i}")})),
            Expect::Absent,
        )]))
        .await
        .unwrap();
    }
    // Idempotency keys live 24 hours.
    let idem = hub::auth::idempotency::KIND;
    for (id, age_h) in [("stale", 25), ("recent", 1)] {
        let created = hub::time::format_ms(now - age_h * 3_600_000);
        a.commit(tx(vec![put(
            &t,
            idem,
            id,
            json!({"id": id, "version": 1, "state": "done", "createdAt": created}),
            Expect::Absent,
        )]))
        .await
        .unwrap();
    }
    // Three events past their 30 days and one idempotency key past its 24 hours.
    assert_eq!(a.purge(now, 5).unwrap(), 4);
    assert!(a.get(&t, idem, "stale").await.unwrap().is_none());
    assert!(a.get(&t, idem, "recent").await.unwrap().is_some());
    let later = hub::ids::new_id("cli");
    a.commit(tx(vec![put(
        &t,
        "clinics",
        &later,
        doc(&later, 1, json!({"name": "Later"})),
        Expect::Absent,
    )]))
    .await
    .unwrap();
    for store in [&a, &b] {
        store.refresh().await.unwrap();
        for id in &old {
            assert!(store.get(&t, kind, id).await.unwrap().is_none(), "{id}");
        }
        for id in &fresh {
            assert!(store.get(&t, kind, id).await.unwrap().is_some(), "{id}");
        }
        assert_eq!(store.all(&t, kind).await.unwrap().len(), 2);
        assert_eq!(store.all(&t, "clinics").await.unwrap().len(), 21);
    }
    // The purged events' dispatched outbox rows went; the fresh ones wait.
    let pending: Vec<String> = a
        .pending_events(100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(pending, fresh);
    // Nothing more to purge through the trait (the 30-day cutoff).
    assert_eq!(a.purge_expired().await.unwrap(), 0);
    // A third process opening now loads the same state.
    let c = EmbeddedStore::open(dir.path(), hub::resources::kinds()).unwrap();
    assert_eq!(c.all(&t, kind).await.unwrap().len(), 2);
}

/// Appointments over DynamoDB: a practitioner's (or patient's, clinic's,
/// status's) appointments in a time range read only that range through a
/// key ordered by `startAt`; a range without an equality reads the
/// `startAt` index; pages follow by cursor; and 20 concurrent overlapping
/// bookings still give exactly one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appointments_read_only_their_range_on_dynamodb() {
    let (client, table) = fresh_table("hub-apt").await;
    let dynamo = Arc::new(hub::store::dynamodb::DynamoStore::new(
        client,
        table,
        hub::resources::kinds(),
    ));
    let s = TestServer::start_on(dynamo.clone()).await;
    let org = s.org("Appointments", true).await;
    let key = org.test.secret.clone();
    let h = &s.http;
    let clinic = h
        .post(
            "/v1/clinics",
            &key,
            &json!({"name": "Leeds", "timeZone": "Europe/London"}),
        )
        .await
        .id();
    let mut prcs = Vec::new();
    for i in 0..3 {
        let p = h
            .post(
                "/v1/practitioners",
                &key,
                &json!({"fullName": format!("Dr {i}"), "clinicIds": [clinic]}),
            )
            .await;
        p.expect(201);
        prcs.push(p.id());
    }
    let aty = h
        .post(
            "/v1/appointment-types",
            &key,
            &json!({"name": "Fitting", "durationMinutes": 30, "price": 0, "currency": "GBP"}),
        )
        .await
        .id();
    let (c, st, r) = reference_data(h, &key).await;
    let patient = h
        .post(
            "/v1/patients",
            &key,
            &json!({"fullName": "P", "primaryPhoneNumber": "07700 900123", "tracking": {},
                    "primaryClinicId": c, "statusId": st, "referralId": r}),
        )
        .await
        .id();
    let day0 = (hub::time::now_ms() / 86_400_000 + 2) * 86_400_000;
    let hour = 3_600_000;
    // 30 appointments per practitioner, one an hour, created out of order.
    let mut all: Vec<(String, i64, String)> = Vec::new();
    let mut tasks = Vec::new();
    for (pi, p) in prcs.iter().enumerate() {
        let (h, key, p, clinic, aty, patient) = (
            h.clone(),
            key.clone(),
            p.clone(),
            clinic.clone(),
            aty.clone(),
            patient.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut made = Vec::new();
            for i in (0..30).rev() {
                let start = day0 + i * hour + pi as i64 * 60_000;
                let r = h
                    .post(
                        "/v1/appointments",
                        &key,
                        &json!({"patientId": patient, "practitionerId": p, "clinicId": clinic,
                                "appointmentTypeId": aty, "startAt": hub::time::format_ms(start)}),
                    )
                    .await;
                r.expect(201);
                made.push((p.clone(), start, r.id()));
            }
            made
        }));
    }
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    // One practitioner, hours 10 to 20, by startAt: only those are read.
    let (lo, hi) = (day0 + 10 * hour, day0 + 20 * hour);
    let mut want: Vec<(i64, String)> = all
        .iter()
        .filter(|(p, s, _)| *p == prcs[1] && *s >= lo && *s < hi)
        .map(|(_, s, id)| (*s, id.clone()))
        .collect();
    want.sort();
    let want: Vec<String> = want.into_iter().map(|(_, id)| id).collect();
    let before = dynamo.items_read();
    let mut got = Vec::new();
    let first = format!(
        "/v1/appointments?practitionerId={}&startAt[$gte]={}&startAt[$lt]={}&$sort[startAt]=1&$limit=4",
        prcs[1],
        hub::time::format_ms(lo),
        hub::time::format_ms(hi)
    );
    let mut url = first.clone();
    loop {
        let page = h.get(&url, &key).await;
        page.expect(200);
        got.extend(page.ids());
        match page.body["next"].as_str() {
            Some(c) => url = format!("{first}&$after={c}"),
            None => break,
        }
    }
    let ranged = dynamo.items_read() - before;
    assert_eq!(got, want, "the range in order, paged by cursor");
    // Reading every appointment reads far more than that range (items:
    // the range's entries and its objects, fetched by key; read units
    // favour the whole read, as a `Query` is charged by size and a
    // `BatchGetItem` per item).
    let before = dynamo.items_read();
    let every = h
        .get("/v1/appointments?$sort[notes]=1&$limit=100", &key)
        .await;
    every.expect(200);
    let whole = dynamo.items_read() - before;
    assert!(
        ranged * 3 < whole * 2,
        "ranged {ranged} items vs whole {whole} items"
    );
    // Descending, by patient; by status; a range with no equality (GSI6).
    let r = h
        .get(
            &format!("/v1/appointments?patientId={patient}&$sort[startAt]=-1&$limit=3"),
            &key,
        )
        .await;
    let mut latest: Vec<(i64, String)> = all.iter().map(|(_, s, id)| (*s, id.clone())).collect();
    latest.sort();
    latest.reverse();
    assert_eq!(
        r.ids(),
        latest
            .iter()
            .take(3)
            .map(|(_, id)| id.clone())
            .collect::<Vec<_>>()
    );
    let r = h
        .get(
            &format!(
                "/v1/appointments?startAt[$gte]={}&startAt[$lt]={}&$sort[startAt]=1&$limit=100",
                hub::time::format_ms(lo),
                hub::time::format_ms(lo + 2 * hour)
            ),
            &key,
        )
        .await;
    assert_eq!(r.ids().len(), 6, "two hours of three practitioners");
    let r = h
        .get(
            &format!("/v1/appointments?status=scheduled&clinicId={clinic}&$limit=0"),
            &key,
        )
        .await;
    assert_eq!(r.body["total"], 90);
    // No double booking over DynamoDB transactions either.
    let start = day0 + 40 * hour;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (h, key) = (h.clone(), key.clone());
        let body = json!({"patientId": patient, "practitionerId": prcs[0], "clinicId": clinic,
                          "appointmentTypeId": aty, "startAt": hub::time::format_ms(start + (i % 4) * 300_000)});
        tasks.push(tokio::spawn(async move {
            h.post("/v1/appointments", &key, &body).await
        }));
    }
    let mut created = 0;
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            201 => created += 1,
            409 => assert_eq!(r.body["name"], "CONFLICT"),
            other => panic!("{other}: {}", r.body),
        }
    }
    assert_eq!(created, 1);
}

/// `hub audit --table` recomputes every index entry and counter from the
/// objects: none differ after a sandbox's bulk load and API writes; an
/// entry taken away, one added and a counter moved are each reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_finds_index_entries_and_counters_that_disagree() {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    let (client, table) = fresh_table("hub-audit").await;
    let store = Arc::new(hub::store::dynamodb::DynamoStore::new(
        client.clone(),
        table.clone(),
        hub::resources::kinds(),
    ));
    let s = TestServer::start_on(store.clone()).await;
    let org = s.org("Audited", false).await;
    let key = org.test.secret.clone();
    let p = s.http.get("/v1/patients?$limit=1", &key).await.ids()[0].clone();
    s.http
        .patch(
            &format!("/v1/patients/{p}"),
            &key,
            &json!({"fullName": "Renamed Person", "notes": "tinnitus review"}),
        )
        .await
        .expect(200);
    let clean = store.audit_derived().await.unwrap();
    assert!(clean.objects > 100 && clean.entries > 1000, "{clean:?}");
    assert!(
        clean.missing.is_empty() && clean.stray.is_empty() && clean.miscounted.is_empty(),
        "{:?} {:?} {:?}",
        clean.missing,
        clean.stray,
        clean.miscounted
    );
    // Corrupt three derived items straight in the table.
    let tenant = format!("{}#test", org.organization_id);
    let scan = client.scan().table_name(&table).send().await.unwrap();
    let entry = scan
        .items()
        .iter()
        .find(|i| matches!(i.get("PK"), Some(A::S(pk)) if pk.starts_with("X#")))
        .unwrap()
        .clone();
    let counter = scan
        .items()
        .iter()
        .find(|i| matches!(i.get("PK"), Some(A::S(pk)) if pk.starts_with("C#")))
        .unwrap()
        .clone();
    client
        .delete_item()
        .table_name(&table)
        .key("PK", entry["PK"].clone())
        .key("SK", entry["SK"].clone())
        .send()
        .await
        .unwrap();
    client
        .put_item()
        .table_name(&table)
        .item("PK", A::S(format!("S#{tenant}#patients#zzzz")))
        .item("SK", A::S(p.clone()))
        .item("id", A::S(p.clone()))
        .send()
        .await
        .unwrap();
    client
        .update_item()
        .table_name(&table)
        .key("PK", counter["PK"].clone())
        .key("SK", counter["SK"].clone())
        .update_expression("ADD n :d")
        .expression_attribute_values(":d", A::N("2".into()))
        .send()
        .await
        .unwrap();
    let found = store.audit_derived().await.unwrap();
    assert_eq!(found.missing.len(), 1, "{found:?}");
    assert_eq!(found.stray.len(), 1, "{found:?}");
    assert_eq!(found.miscounted.len(), 1, "{found:?}");
    let (_, _, have, want) = &found.miscounted[0];
    assert_eq!(have - want, 2);
}

/// A table written by a version before the index entries (objects only)
/// gets its entries and counters from `backfill`: the lists it serves then
/// agree with the embedded store; a second run changes nothing; a run
/// resumed from a checkpoint part-way finishes the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_gives_an_old_table_its_entries_and_counters() {
    let (client, table) = fresh_table("hub-backfill").await;
    let dynamo = hub::store::dynamodb::DynamoStore::new(
        client.clone(),
        table.clone(),
        hub::resources::kinds(),
    )
    .with_list_bound(60);
    let dir = TempDir::new("backfill");
    let embedded =
        hub::store::embedded::EmbeddedStore::open(dir.path(), hub::resources::kinds()).unwrap();
    let t = format!("org_{}#test", hub::ids::ulid());
    let mut r = Rng(11);
    let names = ["Ann Lee", "Bob Roe", "Cy Day", "Di Fox"];
    let mut docs = Vec::new();
    for i in 0..150 {
        let id = hub::ids::new_id("pat");
        let clinic = ["cli_A", "cli_B"][r.below(2)];
        docs.push(json!({
            "id": id, "object": "patient", "version": 1,
            "fullName": format!("{} {i}", names[r.below(4)]),
            "primaryClinicId": clinic,
            "primaryPhoneNumber": format!("+4470090{i:04}"),
            "notes": if i % 10 == 0 { "tinnitus left" } else { "wax" },
            "createdAt": "2026-11-25T00:00:00.000Z",
            "updatedAt": "2026-11-25T00:00:00.000Z",
        }));
    }
    docs.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    dynamo.import(&t, "patients", &docs).await.unwrap();
    for chunk in docs.chunks(25) {
        embedded.commit(patient_creates(&t, chunk)).await.unwrap();
    }
    let queries = [
        "$search=tinnitus",
        "primaryPhoneNumber=%2B44700900042",
        "primaryClinicId=cli_A&$limit=5",
        "$sort[fullName]=1&$limit=10",
        "$sort[fullName]=-1&$limit=10",
        "$limit=0",
        "primaryClinicId=cli_B&$limit=0",
    ];
    // Before: the entries are not there (a lookup finds nothing).
    let before = dynamo
        .list(
            &t,
            "patients",
            &patients_query("primaryPhoneNumber=%2B44700900042"),
        )
        .await
        .unwrap();
    assert!(before.data.is_empty());

    // A run stopped part-way: its checkpoint names where to resume.
    let mid = &docs[70]["id"];
    client
        .put_item()
        .table_name(&table)
        .item(
            "PK",
            aws_sdk_dynamodb::types::AttributeValue::S("#backfill".into()),
        )
        .item(
            "SK",
            aws_sdk_dynamodb::types::AttributeValue::S("entries".into()),
        )
        .item("done", aws_sdk_dynamodb::types::AttributeValue::Bool(false))
        .item(
            "nextPK",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("T#{t}#patients")),
        )
        .item(
            "nextSK",
            aws_sdk_dynamodb::types::AttributeValue::S(mid.as_str().unwrap().into()),
        )
        .send()
        .await
        .unwrap();
    let resumed = dynamo.backfill(|_| {}).await.unwrap();
    assert_eq!(resumed.objects, 79, "resumed after the 71st object");
    // The first part: the checkpoint reset, a full (idempotent) run.
    client
        .delete_item()
        .table_name(&table)
        .key(
            "PK",
            aws_sdk_dynamodb::types::AttributeValue::S("#backfill".into()),
        )
        .key(
            "SK",
            aws_sdk_dynamodb::types::AttributeValue::S("entries".into()),
        )
        .send()
        .await
        .unwrap();
    let full = dynamo.backfill(|_| {}).await.unwrap();
    assert_eq!(full.objects, 150);
    let again = dynamo.backfill(|_| {}).await.unwrap();
    assert!(again.resumed);
    assert_eq!(again.counters, full.counters);
    for raw in queries {
        let q = patients_query(raw);
        let a = embedded.list(&t, "patients", &q).await.unwrap();
        let b = dynamo
            .list(&t, "patients", &q)
            .await
            .unwrap_or_else(|e| panic!("`{raw}`: {e}"));
        assert_eq!(page_ids(&a), page_ids(&b), "`{raw}`");
        assert_eq!(a.total, b.total, "`{raw}`");
    }
    // Later writes keep the backfilled counters and entries in step.
    let gone = docs[3]["id"].as_str().unwrap();
    let del = WriteOp::Delete {
        tenant: t.clone(),
        kind: "patients",
        id: gone.into(),
        expect: Expect::Version(1),
    };
    dynamo.commit(tx(vec![del.clone()])).await.unwrap();
    embedded.commit(tx(vec![del])).await.unwrap();
    for raw in queries {
        let q = patients_query(raw);
        let a = embedded.list(&t, "patients", &q).await.unwrap();
        let b = dynamo.list(&t, "patients", &q).await.unwrap();
        assert_eq!(page_ids(&a), page_ids(&b), "after a delete: `{raw}`");
        assert_eq!(a.total, b.total, "after a delete: `{raw}`");
    }
}

/// `bench/dynamodb-scale.sh`: one organization of `HUB_SCALE_PATIENTS`
/// (default 100,000) patients on DynamoDB Local, loaded as an earlier
/// version would have (objects only) and backfilled; then, for each daily
/// query, the items read, read units and latency (p50/p99 of 20 runs)
/// beside the embedded store's latency over the same patients. Writes
/// `$HUB_SCALE_REPORT` (Markdown). Not part of the test run (`--ignored`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: bench/dynamodb-scale.sh"]
async fn dynamodb_lists_at_scale() {
    const ONSETS: [&str; 13] = [
        "Bar", "Cor", "Del", "Fen", "Gar", "Hol", "Kin", "Lom", "Mar", "Nor", "Pel", "Ros", "Tam",
    ];
    const NUCLEI: [&str; 13] = [
        "a", "e", "i", "o", "u", "an", "en", "in", "on", "ar", "er", "ir", "or",
    ];
    const CODAS: [&str; 13] = [
        "wick", "ton", "ley", "field", "worth", "by", "ham", "more", "ridge", "dale", "ford",
        "well", "shaw",
    ];
    use std::time::Instant;
    let n: usize = std::env::var("HUB_SCALE_PATIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let (client, table) = fresh_table("hub-scale").await;
    let dynamo = hub::store::dynamodb::DynamoStore::new(
        client.clone(),
        table.clone(),
        hub::resources::kinds(),
    );
    let dir = TempDir::new("scale");
    let embedded =
        hub::store::embedded::EmbeddedStore::open(dir.path(), hub::resources::kinds()).unwrap();
    let t = format!("org_{}#live", hub::ids::ulid());
    let first = [
        "Ann", "Bob", "Cy", "Di", "Eve", "Fay", "Gus", "Hal", "Ivy", "Jo",
    ];
    let vocab = [
        "hearing", "aid", "left", "right", "wax", "tinnitus", "review", "repair", "battery",
        "mould", "referral", "gp", "noise", "work", "family", "history", "loss", "mild",
    ];
    let mut r = Rng(5);
    let mut docs = Vec::with_capacity(n);
    for i in 0..n {
        // 2,197 surnames of letters only (a word with digits is two
        // search terms, and its letters alone would match everyone).
        let surname = format!(
            "{}{}{}",
            ONSETS[r.below(ONSETS.len())],
            NUCLEI[r.below(NUCLEI.len())],
            CODAS[r.below(CODAS.len())]
        );
        let notes: Vec<&str> = (0..4).map(|_| vocab[r.below(vocab.len())]).collect();
        // Created as the API would: the id carries the creation time (one
        // patient every 37 s, as a busy clinic chain's front desks add them).
        let ms = 1_780_000_000_000i64 + i as i64 * 37_000;
        let id = format!(
            "{}{}",
            hub::ids::time_prefix("pat", ms),
            &hub::ids::ulid()[10..]
        );
        assert_eq!(hub::ids::time_of(&id), Some(ms));
        let created = hub::time::format_ms(ms);
        docs.push(json!({
            "id": id, "object": "patient", "version": 1,
            "fullName": format!("{} {surname}", first[r.below(first.len())]),
            "primaryClinicId": format!("cli_{}", r.below(5)),
            "primaryPhoneNumber": format!("+447{i:09}"),
            "emailAddress": format!("p{i}@example.com"),
            "notes": notes.join(" "),
            "address": {"line1": format!("{} High Street", r.below(300)), "city": "Leeds"},
            "createdAt": created, "updatedAt": created,
        }));
    }
    // Both stores get the same writes; DynamoDB as one bulk load of their
    // end state (objects, entries, counters: what the writes would leave).
    let txs: Vec<WriteTx> = docs
        .chunks(500)
        .map(|chunk| patient_creates(&t, chunk))
        .collect();
    let started = Instant::now();
    dynamo.load_fresh(txs.clone()).await.unwrap();
    let loaded = started.elapsed();
    let written = dynamo.items_written();
    for t in txs {
        embedded.commit(t).await.unwrap();
    }
    let surname = docs[7]["fullName"]
        .as_str()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .to_string();
    let full = docs[7]["fullName"].as_str().unwrap().replace(' ', "%20");
    let phone = docs[n / 2]["primaryPhoneNumber"]
        .as_str()
        .unwrap()
        .replace('+', "%2B");
    let queries = [
        format!("$search={surname}"),
        format!("$search=%22{full}%22"),
        "$search=tinnitus%20repair&$limit=25".to_string(),
        "$search=hearing%20aid%20left%20wax&$sort[createdAt]=-1&$limit=25".into(),
        format!("primaryPhoneNumber={phone}"),
        format!("emailAddress=p{}@example.com", n / 3),
        "$sort[fullName]=1&$limit=25".into(),
        "$sort[fullName]=-1&$limit=25".into(),
        "$limit=0".into(),
        "$total=true&$limit=25".into(),
        "primaryClinicId=cli_3&$limit=0".into(),
        "primaryClinicId=cli_3&$limit=25".into(),
    ];
    let pct = |v: &mut Vec<f64>, p: f64| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[((v.len() as f64 - 1.0) * p).round() as usize]
    };
    let mut out = format!(
        "One organization of {n} patients on DynamoDB Local (loaded in {:.1} s: {written} items — objects, index entries, counters). 20 runs per query.\n\n\
         | query | results | items read | RCU | DynamoDB Local p50 / p99 ms | embedded p50 / p99 ms |\n|---|---|---|---|---|---|\n",
        loaded.as_secs_f64(),
    );
    for raw in &queries {
        let q = patients_query(raw);
        let (mut dl, mut el) = (Vec::new(), Vec::new());
        let (items0, (rcu0, _)) = (dynamo.items_read(), dynamo.consumed());
        let mut results = 0;
        // A query DynamoDB refuses (400: it would read past the list bound)
        // is reported as refused, beside what the embedded store answers.
        if let Err(StoreError::TooLarge { bound, .. }) = dynamo.list(&t, "patients", &q).await {
            let s = Instant::now();
            let a = embedded.list(&t, "patients", &q).await.unwrap();
            let ms = s.elapsed().as_secs_f64() * 1000.0;
            out.push_str(&format!(
                "| `{}` | {} | refused (400: more than {bound} to read) | | | {ms:.2} |\n",
                raw.replace("%20", " ").replace("%22", "\""),
                a.total.unwrap_or(a.data.len())
            ));
            continue;
        }
        for _ in 0..20 {
            let s = Instant::now();
            let b = dynamo.list(&t, "patients", &q).await.unwrap();
            dl.push(s.elapsed().as_secs_f64() * 1000.0);
            let s = Instant::now();
            let a = embedded.list(&t, "patients", &q).await.unwrap();
            el.push(s.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(page_ids(&a), page_ids(&b), "`{raw}`");
            assert_eq!(a.total, b.total, "`{raw}`");
            results = b.total.unwrap_or(b.data.len());
        }
        let items = (dynamo.items_read() - items0) as f64 / 20.0;
        let rcu = (dynamo.consumed().0 - rcu0) / 20.0;
        out.push_str(&format!(
            "| `{}` | {results} | {items:.0} | {rcu:.1} | {:.1} / {:.1} | {:.2} / {:.2} |\n",
            raw.replace("%20", " ")
                .replace("%22", "\"")
                .replace("%2B", "+"),
            pct(&mut dl, 0.5),
            pct(&mut dl, 0.99),
            pct(&mut el, 0.5),
            pct(&mut el, 0.99)
        ));
    }
    println!("{out}");
    if let Ok(path) = std::env::var("HUB_SCALE_REPORT") {
        std::fs::write(path, out).unwrap();
    }
}

/// A write of several objects moves each counter they share on one shard
/// item, not one item per object (a batch of recorded deliveries would
/// otherwise update up to eight); single deletes then move the counter on
/// their own objects' shards, and every count stays the number of its
/// objects: the audit finds none wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_of_many_objects_moves_each_counter_on_one_shard() {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    use hub::store::derived;
    let (client, table) = fresh_table("hub-shards").await;
    let store = hub::store::dynamodb::DynamoStore::new(
        client.clone(),
        table.clone(),
        hub::resources::kinds(),
    );
    let t = format!("org_{}#test", hub::ids::ulid());
    let ids: Vec<String> = (0..8).map(|_| hub::ids::new_id("cli")).collect();
    let ops = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            put(
                &t,
                "clinics",
                id,
                doc(id, 1, json!({"name": format!("Clinic {i}")})),
                Expect::Absent,
            )
        })
        .collect();
    store.commit(tx(ops)).await.unwrap();
    let shards = || async {
        let out = client
            .query()
            .table_name(&table)
            .key_condition_expression("PK = :pk")
            .expression_attribute_values(":pk", A::S(derived::counter_pk(&t, "clinics")))
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        out.items()
            .iter()
            .map(|i| match (i.get("SK"), i.get("n")) {
                (Some(A::S(sk)), Some(A::N(n))) => (sk.clone(), n.parse::<i64>().unwrap()),
                other => panic!("{other:?}"),
            })
            .collect::<Vec<_>>()
    };
    let everything_key = format!("{}{}", derived::ALL, derived::SEP);
    let after_create = shards().await;
    let everything: Vec<_> = after_create
        .iter()
        .filter(|(sk, _)| sk.starts_with(&everything_key))
        .collect();
    assert_eq!(everything.len(), 1, "{after_create:?}");
    assert_eq!(everything[0].1, 8, "{after_create:?}");
    for id in &ids[..3] {
        store
            .commit(tx(vec![WriteOp::Delete {
                tenant: t.clone(),
                kind: "clinics",
                id: id.clone(),
                expect: Expect::Version(1),
            }]))
            .await
            .unwrap();
    }
    let total: i64 = shards()
        .await
        .iter()
        .filter(|(sk, _)| sk.starts_with(&everything_key))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(total, 5);
    let audit = store.audit_derived().await.unwrap();
    assert!(audit.counters > 0, "{audit:?}");
    assert!(
        audit.missing.is_empty() && audit.stray.is_empty() && audit.miscounted.is_empty(),
        "{audit:?}"
    );
}
