//! The contract as an integrator meets it: strict bodies everywhere (unknown
//! fields with any value are named, non-object bodies refused), an OpenAPI
//! document that says what the routes answer, webhook header values that
//! never leave in clear, live-mode refusals of IPv4 hidden in IPv6, and
//! error messages that say what to do.

use bytes::Bytes;
use hub_tests::*;
use serde_json::Value;

fn field_errors(r: &Resp) -> Vec<(String, String)> {
    r.body["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    (
                        e["field"].as_str().unwrap_or_default().to_string(),
                        e["message"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_fields_and_odd_bodies_are_refused_and_change_nothing() {
    let s = TestServer::start().await;
    let org = s.org("Strict", false).await;
    let key = org.test.secret.as_str();
    let ep = s
        .http
        .post(
            "/v1/webhook-endpoints",
            key,
            &json!({"url": "http://127.0.0.1:9/h", "enabledEvents": ["patient.*"]}),
        )
        .await;
    ep.expect(201);
    let ep_id = ep.id();
    let secret = ep.body["secret"].as_str().unwrap().to_string();

    // A typo of `endpointId` is not "redeliver to everyone".
    let ev = s.http.get("/v1/events?$limit=1", key).await;
    let event_id = ev.ids()[0].clone();
    let r = s
        .http
        .post(
            &format!("/v1/events/{event_id}/redeliver"),
            key,
            &json!({"endpointID": "we_typo"}),
        )
        .await;
    r.expect_error(400, "INVALID_PARAMETERS");
    let errs = field_errors(&r);
    assert_eq!(errs[0].0, "endpointID", "{}", r.body);
    assert!(
        errs[0].1.contains("`endpointId`"),
        "suggests the field: {}",
        r.body
    );
    // A bad id shape for a known field is named too.
    let r = s
        .http
        .post(
            &format!("/v1/events/{event_id}/redeliver"),
            key,
            &json!({"endpointId": "nope"}),
        )
        .await;
    r.expect_error(400, "INVALID_PARAMETERS");
    assert_eq!(field_errors(&r)[0].0, "endpointId");

    // `[]` does not roll a secret; neither does an unknown field or a bad value.
    for body in [
        json!([]),
        json!("x"),
        json!({"overlap": 2}),
        json!({"overlapHours": 25}),
        json!({"overlapHours": null}),
    ] {
        let r = s
            .http
            .post(
                &format!("/v1/webhook-endpoints/{ep_id}/roll-secret"),
                key,
                &body,
            )
            .await;
        r.expect_error(400, "INVALID_PARAMETERS");
    }
    let rev = s
        .http
        .post(
            &format!("/v1/webhook-endpoints/{ep_id}/reveal-secret"),
            key,
            &json!({}),
        )
        .await;
    rev.expect(200);
    assert_eq!(
        rev.body["secret"],
        secret.as_str(),
        "the secret did not roll"
    );
    // An empty or absent body is fine where no field is needed.
    s.http
        .send(
            "POST",
            &format!("/v1/webhook-endpoints/{ep_id}/reveal-secret"),
            Some(key),
            None,
            &[],
        )
        .await
        .expect(200);

    // PATCH: an unknown field is refused whatever its value, nested too.
    let p = s.http.get("/v1/patients?$limit=1", key).await.ids()[0].clone();
    let before = s.http.get(&format!("/v1/patients/{p}"), key).await;
    for (patch, field) in [
        (json!({"bogus": null}), "bogus"),
        (json!({"bogus": 1}), "bogus"),
        (json!({"address": {"bogus": null}}), "address.bogus"),
        (json!({"fulName": "Typo"}), "fulName"),
        (
            json!({"notes": "ok", "tracking": {"sauce": null}}),
            "tracking.sauce",
        ),
    ] {
        let r = s
            .http
            .patch(&format!("/v1/patients/{p}"), key, &patch)
            .await;
        r.expect_error(400, "INVALID_PARAMETERS");
        assert!(
            field_errors(&r).iter().any(|(f, _)| f == field),
            "{field} not named in {}",
            r.body
        );
    }
    let r = s
        .http
        .patch(
            &format!("/v1/patients/{p}"),
            key,
            &json!({"fulName": "Typo"}),
        )
        .await;
    assert!(field_errors(&r)[0].1.contains("`fullName`"), "{}", r.body);
    for body in ["[]", "\"text\"", "null", "42"] {
        let r = s
            .http
            .send(
                "PATCH",
                &format!("/v1/patients/{p}"),
                Some(key),
                Some(Bytes::from(body)),
                &[],
            )
            .await;
        r.expect_error(400, "INVALID_PARAMETERS");
        let r = s
            .http
            .send(
                "POST",
                "/v1/clinics",
                Some(key),
                Some(Bytes::from(body)),
                &[],
            )
            .await;
        r.expect_error(400, "INVALID_PARAMETERS");
    }
    let after = s.http.get(&format!("/v1/patients/{p}"), key).await;
    assert_eq!(after.body, before.body, "nothing was written");
    // A create names an unknown null field too.
    let r = s
        .http
        .post("/v1/clinics", key, &json!({"name": "X", "colour": null}))
        .await;
    r.expect_error(400, "INVALID_PARAMETERS");
    assert_eq!(field_errors(&r)[0].0, "colour");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_header_values_never_leave_in_clear() {
    let rx = Receiver::start();
    let s = TestServer::with_fast_webhooks().await;
    let org = s.org("Masked", true).await;
    let key = org.test.secret.as_str();
    let token = "Bearer receiver-token-0123456789";
    // B hears everything, so it hears about A.
    let b = s
        .http
        .post(
            "/v1/webhook-endpoints",
            key,
            &json!({"url": format!("{}/b", rx.base), "enabledEvents": ["*"]}),
        )
        .await;
    b.expect(201);
    rx.secrets("/b", &[b.body["secret"].as_str().unwrap()])
        .await;
    let a = s
        .http
        .send(
            "POST",
            "/v1/webhook-endpoints",
            Some(key),
            Some(Bytes::from(
                json!({"url": format!("{}/a", rx.base), "enabledEvents": ["clinic.*"],
                       "headers": {"Authorization": token}})
                .to_string(),
            )),
            &[("idempotency-key", "create-a")],
        )
        .await;
    a.expect(201);
    let a_id = a.id();
    rx.secrets("/a", &[a.body["secret"].as_str().unwrap()])
        .await;
    assert_eq!(a.body["headers"]["Authorization"], "****6789", "{}", a.body);
    // A replay of the create leaves the shown-once secret out and says so.
    let again = s
        .http
        .send(
            "POST",
            "/v1/webhook-endpoints",
            Some(key),
            Some(Bytes::from(
                json!({"url": format!("{}/a", rx.base), "enabledEvents": ["clinic.*"],
                       "headers": {"Authorization": token}})
                .to_string(),
            )),
            &[("idempotency-key", "create-a")],
        )
        .await;
    again.expect(201);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.header("idempotent-omitted"), Some("secret"));
    assert!(again.body.get("secret").is_none());
    assert_eq!(again.id(), a_id);

    // Reading it, listing events, and B's delivery show the value masked.
    let g = s
        .http
        .get(&format!("/v1/webhook-endpoints/{a_id}"), key)
        .await;
    assert_eq!(g.body["headers"]["Authorization"], "****6789");
    let log = rx
        .wait("B hears of A", |l| {
            l.iter().any(|e| {
                e["path"] == "/b"
                    && e["type"] == "webhookEndpoint.created"
                    && e["body"]["data"]["id"] == a_id.as_str()
            })
        })
        .await;
    let heard = log
        .iter()
        .find(|e| e["path"] == "/b" && e["body"]["data"]["id"] == a_id.as_str())
        .unwrap();
    assert_eq!(
        heard["body"]["data"]["headers"]["Authorization"],
        "****6789"
    );
    assert_eq!(heard["stripe"], json!([true]));
    // Only reveal-secret shows it.
    let rev = s
        .http
        .post(
            &format!("/v1/webhook-endpoints/{a_id}/reveal-secret"),
            key,
            &json!({}),
        )
        .await;
    assert_eq!(rev.body["headers"]["Authorization"], token);
    // A sends it for real; a PATCH adding a header keeps the first one.
    s.http
        .patch(
            &format!("/v1/webhook-endpoints/{a_id}"),
            key,
            &json!({"headers": {"X-Custom-Auth": "second-value"}}),
        )
        .await
        .expect(200);
    s.http
        .post("/v1/clinics", key, &json!({"name": "Heard"}))
        .await
        .expect(201);
    let log = rx
        .wait("A's delivery", |l| {
            l.iter()
                .any(|e| e["path"] == "/a" && e["type"] == "clinic.created")
        })
        .await;
    let got = log
        .iter()
        .find(|e| e["path"] == "/a" && e["type"] == "clinic.created")
        .unwrap();
    assert_eq!(got["authorization"], token);
    assert_eq!(got["custom"], "second-value");
    assert_eq!(got["stripe"], json!([true]));
    // The update event's previousAttributes are masked too, and no stored
    // event or idempotent response holds the value or a signing secret.
    let events = s.http.get("/v1/events?$limit=100", key).await;
    let text = events.raw.clone();
    let text = String::from_utf8_lossy(&text);
    assert!(
        !text.contains("receiver-token"),
        "an event holds the header value"
    );
    assert!(!text.contains("second-value"));
    assert!(!text.contains("whsec_"));
    let upd = events.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "webhookEndpoint.updated")
        .expect("the update event");
    assert_eq!(
        upd["data"]["previousAttributes"]["headers"]["Authorization"],
        "****6789"
    );
    let tenant = format!("{}#test", org.organization_id);
    for rec in s
        .store
        .all(&tenant, hub::auth::idempotency::KIND)
        .await
        .unwrap()
    {
        let t = rec.to_string();
        assert!(
            !t.contains("whsec_") && !t.contains("receiver-token"),
            "{t}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_mode_judges_ipv4_inside_ipv6_and_refuses_teredo() {
    let s = TestServer::start().await;
    let org = s.org("Ssrf6", true).await;
    let key = org.live.secret.as_str();
    for url in [
        "https://[64:ff9b::7f00:1]/hook",
        "https://[64:ff9b::a9fe:a9fe]/hook",
        "https://[64:ff9b:1::a00:1]/hook",
        "https://[2002:7f00:1::]/hook",
        "https://[2002:a9fe:a9fe::1]/hook",
        "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/hook",
        "https://[::127.0.0.1]/hook",
    ] {
        let r = s
            .http
            .post(
                "/v1/webhook-endpoints",
                key,
                &json!({"url": url, "enabledEvents": ["*"]}),
            )
            .await;
        r.expect_error(400, "INVALID_PARAMETERS");
        assert_eq!(field_errors(&r)[0].0, "url", "{url}: {}", r.body);
    }
    let list = s.http.get("/v1/webhook-endpoints?$limit=0", key).await;
    assert_eq!(list.body["total"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_messages_say_what_to_do() {
    let s = TestServer::start().await;
    let org = s.org("Helpful", false).await;
    let key = org.test.secret.as_str();
    let msg = |r: &Resp| r.body["message"].as_str().unwrap_or_default().to_string();
    // A placeholder pasted from the README.
    let r = s
        .http
        .send(
            "GET",
            "/v1/patients",
            None,
            None,
            &[("authorization", "Bearer sk_test_…")],
        )
        .await;
    r.expect_error(401, "AUTH_ERROR");
    assert!(msg(&r).contains("placeholder"), "{}", r.body);
    let cut = &key[..key.len() - 3];
    let r = s
        .http
        .send(
            "GET",
            "/v1/patients",
            None,
            None,
            &[("authorization", &format!("Bearer {cut}"))],
        )
        .await;
    r.expect_error(401, "AUTH_ERROR");
    assert!(msg(&r).contains("37 characters"), "{}", r.body);
    assert!(!msg(&r).contains(cut), "never echoes the key");
    let r = s
        .http
        .send("GET", "/v1/patients", None, None, &[("authorization", key)])
        .await;
    assert!(msg(&r).contains("Bearer"), "{}", r.body);
    // Operators: the list, and `$search` for pattern matching.
    let r = s.http.get("/v1/patients?dob[$gtt]=2000-01-01", key).await;
    r.expect_error(400, "INVALID_PARAMETERS");
    assert!(
        msg(&r).contains("`$gt`") && msg(&r).contains("`$nin`"),
        "{}",
        r.body
    );
    assert!(msg(&r).contains("Did you mean `$gt`"), "{}", r.body);
    for op in ["$regex", "$like"] {
        let r = s
            .http
            .get(&format!("/v1/patients?notes[{op}]=x"), key)
            .await;
        r.expect_error(400, "INVALID_PARAMETERS");
        assert!(msg(&r).contains("$search"), "{}", r.body);
    }
    // Fields: the nearest known one.
    let r = s.http.get("/v1/patients?fulName=Ann", key).await;
    assert!(msg(&r).contains("`fullName`"), "{}", r.body);
    let r = s.http.get("/v1/patients?address.cty=Leeds", key).await;
    assert!(msg(&r).contains("`address.city`"), "{}", r.body);
    let r = s.http.get("/v1/patients?$sort[fulName]=1", key).await;
    assert!(msg(&r).contains("`fullName`"), "{}", r.body);
    let r = s.http.get("/v1/patients?$limt=5", key).await;
    assert!(msg(&r).contains("`$limit`"), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_says_what_routes_answer() {
    let s = TestServer::start().await;
    let doc = s.http.send("GET", "/openapi.json", None, None, &[]).await;
    doc.expect(200);
    let paths = &doc.body["paths"];
    let test = &paths["/v1/webhook-endpoints/{id}/test"]["post"];
    assert!(test["responses"]["202"].is_object(), "test answers 202");
    assert!(test["responses"]["200"].is_null());
    let redeliver = &paths["/v1/events/{id}/redeliver"]["post"];
    assert!(redeliver["responses"]["202"].is_object());
    let body = &redeliver["requestBody"]["content"]["application/json"]["schema"];
    assert!(body["properties"]["endpointId"].is_object(), "{body}");
    assert_eq!(body["additionalProperties"], false);
    let roll = &paths["/v1/webhook-endpoints/{id}/roll-secret"]["post"]["requestBody"]["content"]
        ["application/json"]["schema"];
    assert_eq!(roll["properties"]["overlapHours"]["maximum"], 24);
    let schemas = &doc.body["components"]["schemas"];
    assert_eq!(
        schemas["WebhookEndpoint"]["properties"]["disabledReason"]["readOnly"],
        true
    );
    assert!(schemas["WebhookEndpointCreate"]["properties"]["disabledReason"].is_null());
    let patch = &paths["/v1/patients/{id}"]["patch"];
    for status in [
        "200", "400", "401", "403", "404", "409", "412", "415", "429", "500", "503",
    ] {
        assert!(
            patch["responses"][status].is_object(),
            "PATCH lacks {status}"
        );
    }
    // Every operation that reads or writes the database (each one a key
    // opens) may meet it throttling, failing or not answering: 503 with
    // Retry-After.
    for (path, ops) in paths.as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            if op["security"] == json!([]) {
                continue;
            }
            let r = &op["responses"]["503"];
            assert!(r.is_object(), "{method} {path} lacks 503");
            if path.starts_with("/v1/") {
                assert!(
                    r["headers"]["Retry-After"].is_object(),
                    "{method} {path}: 503 without Retry-After"
                );
            }
        }
    }
    let params: Vec<&str> = patch["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(params.contains(&"If-Match"));
    let create = &paths["/v1/patients"]["post"];
    assert!(create["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "Idempotency-Key"));
    assert!(create["responses"]["201"]["headers"]["ETag"].is_object());
    assert!(paths["/v1/patients"]["get"]["responses"]["200"]["headers"]["Link"].is_object());
    // The event catalog is published for subscription pickers.
    let catalog = doc.body["components"]["x-event-types"].as_array().unwrap();
    assert!(catalog.iter().any(|t| t == "patient.created"));
    let _: &Value = &doc.body;
}
