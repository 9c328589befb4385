//! The API route functions' request path, event in → result out, through
//! exactly what the Lambda runtime runs (`hub::lambda::invoke_http`:
//! `lambda_http` reads the event, the one `App` answers, `lambda_http`
//! shapes the result): API Gateway REST API (payload 1.0), HTTP API (2.0),
//! a Function URL and an Application Load Balancer, with repeated headers
//! and query values, cookies and base64 bodies.

use base64::Engine;
use hub::api::{App, Config};
use hub_tests::*;
use serde_json::{json, Value};
use std::sync::Arc;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

struct Fixture {
    _server: TestServer,
    app: Arc<App>,
    key: String,
    org: String,
    /// Patients named "Ann", "Bea" and "Cy".
    ids: Vec<String>,
}

async fn fixture() -> Fixture {
    let s = TestServer::start().await;
    let org = s.org("Lambda Clinic", true).await;
    let key = org.test.secret.clone();
    reference_data(&s.http, &key).await;
    let mut ids = Vec::new();
    for name in ["Ann", "Bea", "Cy"] {
        let r = s
            .http
            .post(
                "/v1/patients",
                &key,
                &patient_body(name, "Leeds", "Active", "Google"),
            )
            .await;
        r.expect(201);
        ids.push(r.id());
    }
    let app = App::with_queue(s.store.clone(), Some(s.queue.clone()), Config::default());
    Fixture {
        org: org.organization_id.clone(),
        _server: s,
        app,
        key,
        ids,
    }
}

fn body_of(result: &Value) -> Value {
    let raw = result["body"].as_str().unwrap_or("");
    let bytes = if result["isBase64Encoded"] == json!(true) {
        B64.decode(raw).expect("base64 body")
    } else {
        raw.as_bytes().to_vec()
    };
    serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("not JSON: {result}"))
}

fn names(page: &Value) -> Vec<String> {
    let mut n: Vec<String> = page["data"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {page}"))
        .iter()
        .map(|p| p["fullName"].as_str().unwrap().to_string())
        .collect();
    n.sort();
    n
}

fn http_api(method: &str, raw_path: &str, query: &str, stage: &str, headers: Value) -> Value {
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "domainName": "api.example.com",
            "domainPrefix": "api",
            "http": {"method": method, "path": raw_path, "protocol": "HTTP/1.1",
                     "sourceIp": "192.0.2.1", "userAgent": "test"},
            "requestId": "apigw-id",
            "routeKey": "$default",
            "stage": stage,
            "time": "04/Dec/2026:12:00:00 +0000",
            "timeEpoch": 1796385600000u64
        },
        "isBase64Encoded": false
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_api_v2_base64_body_cookies_and_the_lambda_request_id() {
    let f = fixture().await;
    let body = patient_body("Dot", "Leeds", "Active", "Google").to_string();
    let mut event = http_api(
        "POST",
        "/v1/patients",
        "",
        "$default",
        json!({
            "authorization": format!("Bearer {}", f.key),
            "content-type": "application/json",
            "accept": "application/json, text/plain",
        }),
    );
    event["cookies"] = json!(["session=abc", "theme=dark"]);
    event["body"] = json!(B64.encode(body.as_bytes()));
    event["isBase64Encoded"] = json!(true);
    let out = hub::lambda::invoke_http(&f.app, event, "lambda-request-1")
        .await
        .unwrap();
    assert_eq!(out["statusCode"], 201, "{out}");
    assert_eq!(out["headers"]["request-id"], "lambda-request-1", "{out}");
    assert_eq!(out["headers"]["content-type"], "application/json", "{out}");
    assert_eq!(out["isBase64Encoded"], false, "JSON answers as text: {out}");
    assert_eq!(body_of(&out)["fullName"], "Dot");

    // An error's eventId is the Lambda request id too.
    let mut event = http_api(
        "GET",
        "/v1/patients",
        "fullName[$bogus]=x",
        "$default",
        json!({"authorization": format!("Bearer {}", f.key)}),
    );
    event["cookies"] = json!(["session=abc"]);
    let out = hub::lambda::invoke_http(&f.app, event, "lambda-request-2")
        .await
        .unwrap();
    assert_eq!(out["statusCode"], 400, "{out}");
    assert_eq!(body_of(&out)["eventId"], "lambda-request-2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_api_v2_named_stage_repeated_query_values_and_cors() {
    let f = fixture().await;
    // A named stage puts its name in front of rawPath.
    let event = http_api(
        "GET",
        "/prod/v1/patients",
        "fullName[$in]=Ann&fullName[$in]=Cy&$limit=10",
        "prod",
        json!({"authorization": format!("Bearer {}", f.key)}),
    );
    let out = hub::lambda::invoke_http(&f.app, event, "r1").await.unwrap();
    assert_eq!(out["statusCode"], 200, "{out}");
    assert_eq!(names(&body_of(&out)), ["Ann", "Cy"]);

    // The preflight a browser sends: one Access-Control-Allow-Origin (HTTP
    // API joins repeated headers with commas, so "*" means exactly once).
    let event = http_api(
        "OPTIONS",
        "/v1/patients",
        "",
        "$default",
        json!({"origin": "https://clinic.example.com", "access-control-request-method": "POST"}),
    );
    let out = hub::lambda::invoke_http(&f.app, event, "r2").await.unwrap();
    assert_eq!(out["statusCode"], 204, "{out}");
    assert_eq!(out["headers"]["access-control-allow-origin"], "*", "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_url_event() {
    let f = fixture().await;
    let mut event = http_api(
        "GET",
        &format!("/v1/patients/{}", f.ids[1]),
        "",
        "$default",
        json!({"authorization": format!("Bearer {}", f.key), "x-forwarded-proto": "https"}),
    );
    event["requestContext"]["domainName"] = json!("abc123.lambda-url.us-east-1.on.aws");
    event["requestContext"]["apiId"] = json!("abc123");
    let out = hub::lambda::invoke_http(&f.app, event, "url-1")
        .await
        .unwrap();
    assert_eq!(out["statusCode"], 200, "{out}");
    assert_eq!(out["headers"]["etag"], "\"1\"", "{out}");
    assert_eq!(body_of(&out)["fullName"], "Bea");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_api_v1_multi_value_headers_and_query() {
    let f = fixture().await;
    let event = json!({
        "resource": "/v1/patients",
        "path": "/v1/patients",
        "httpMethod": "GET",
        "headers": {"Authorization": format!("Bearer {}", f.key), "Accept": "text/plain"},
        "multiValueHeaders": {
            "Authorization": [format!("Bearer {}", f.key)],
            "Accept": ["application/json", "text/plain"],
            "Cookie": ["a=1; b=2"]
        },
        "queryStringParameters": {"fullName[$in]": "Bea", "$limit": "10"},
        "multiValueQueryStringParameters": {"fullName[$in]": ["Ann", "Bea"], "$limit": ["10"]},
        "pathParameters": null,
        "stageVariables": null,
        "requestContext": {
            "accountId": "123456789012",
            "resourceId": "abc",
            "stage": "Prod",
            "requestId": "apigw-v1",
            "identity": {"sourceIp": "192.0.2.1"},
            "resourcePath": "/v1/patients",
            "httpMethod": "GET",
            "apiId": "api",
            "path": "/Prod/v1/patients"
        },
        "body": null,
        "isBase64Encoded": false
    });
    let out = hub::lambda::invoke_http(&f.app, event, "rest-1")
        .await
        .unwrap();
    assert_eq!(out["statusCode"], 200, "{out}");
    assert_eq!(
        out["multiValueHeaders"]["request-id"],
        json!(["rest-1"]),
        "{out}"
    );
    let page = body_of(&out);
    assert_eq!(
        names(&page),
        ["Ann", "Bea"],
        "both values of the repeated key"
    );
    assert!(
        page["data"][0]["organizationId"].is_null()
            || page["data"][0]["organizationId"] == json!(f.org)
    );

    // A base64 body (binary media types on a REST API).
    let body = patient_body("Eve", "Leeds", "Active", "Google").to_string();
    let event = json!({
        "resource": "/v1/patients",
        "path": "/v1/patients",
        "httpMethod": "POST",
        "multiValueHeaders": {
            "Authorization": [format!("Bearer {}", f.key)],
            "Content-Type": ["application/json"]
        },
        "requestContext": {"stage": "Prod", "requestId": "apigw-v1b", "httpMethod": "POST",
                           "resourcePath": "/v1/patients", "identity": {}},
        "body": B64.encode(body.as_bytes()),
        "isBase64Encoded": true
    });
    let out = hub::lambda::invoke_http(&f.app, event, "rest-2")
        .await
        .unwrap();
    assert_eq!(out["statusCode"], 201, "{out}");
    assert_eq!(body_of(&out)["fullName"], "Eve");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn application_load_balancer_event() {
    let f = fixture().await;
    let event = json!({
        "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/hub/abc"}},
        "httpMethod": "GET",
        "path": "/v1/patients",
        "multiValueQueryStringParameters": {"fullName[$in]": ["Bea", "Cy"]},
        "multiValueHeaders": {
            "authorization": [format!("Bearer {}", f.key)],
            "accept": ["application/json", "*/*"],
            "x-forwarded-proto": ["https"]
        },
        "body": "",
        "isBase64Encoded": false
    });
    let out = hub::lambda::invoke_http(&f.app, event, "alb-1")
        .await
        .unwrap();
    assert_eq!(out["statusCode"], 200, "{out}");
    assert_eq!(out["statusDescription"], "200 OK", "an ALB result: {out}");
    assert_eq!(names(&body_of(&out)), ["Bea", "Cy"]);

    let event = json!({
        "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/hub/abc"}},
        "httpMethod": "GET",
        "path": "/health",
        "queryStringParameters": {},
        "headers": {"host": "hub.example.com"},
        "body": "",
        "isBase64Encoded": false
    });
    let out = hub::lambda::invoke_http(&f.app, event, "alb-2")
        .await
        .unwrap();
    assert_eq!(out["statusCode"], 200, "{out}");
    assert_eq!(body_of(&out)["status"], "ok");
}

/// The sample events of the other shapes (events/rest-api, events/alb),
/// with the fixture's key and ids in place of the placeholders, as
/// `hub events fill` writes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_events_of_every_shape_are_answered() {
    let f = fixture().await;
    let mut ids = Vec::new();
    for path in [
        "/v1/clinics",
        "/v1/patient-statuses",
        "/v1/referral-sources",
    ] {
        let page = f
            ._server
            .http
            .get(&format!("{path}?$limit=1"), &f.key)
            .await;
        ids.push(page.body["data"][0]["id"].as_str().unwrap().to_string());
    }
    let samples = hub::deploy::sample_events_other_shapes();
    assert_eq!(samples.len(), 10);
    for (name, event) in samples {
        let real = [
            (hub::deploy::sample_id("pat"), f.ids[0].clone()),
            (hub::deploy::sample_id("cli"), ids[0].clone()),
            (hub::deploy::sample_id("pst"), ids[1].clone()),
            (hub::deploy::sample_id("ref"), ids[2].clone()),
        ];
        let event = hub::deploy::fill_sample(&event, &f.key, &real);
        let out = hub::lambda::invoke_http(&f.app, event, "s").await.unwrap();
        let status = out["statusCode"].as_u64().unwrap();
        assert!((200..300).contains(&status), "{name}: {out}");
        if name.starts_with("alb/") {
            assert!(out["statusDescription"].is_string(), "{name}: {out}");
        } else {
            assert!(out["multiValueHeaders"].is_object(), "{name}: {out}");
        }
        if name.ends_with("patients-list") {
            let page = body_of(&out);
            assert_eq!(page["data"].as_array().unwrap().len(), 3, "{name}: {page}");
            assert!(
                page["data"][0]["primaryPhoneNumber"].is_null(),
                "$select applied: {page}"
            );
        }
    }
}

#[tokio::test]
async fn not_an_http_event_is_refused() {
    let f = fixture().await;
    assert!(
        hub::lambda::invoke_http(&f.app, json!({"Records": []}), "x")
            .await
            .is_err()
    );
}

#[test]
fn binary_responses_go_back_base64_encoded() {
    let r = hub::lambda::http_response(hub::api::Response {
        status: 200,
        headers: vec![("content-type", "application/octet-stream".into())],
        body: bytes::Bytes::from_static(&[0xff, 0x00, 0x10]),
    });
    assert!(matches!(r.body(), hub::lambda::Body::Binary(b) if b == &[0xff, 0x00, 0x10]));
    let r = hub::lambda::http_response(hub::api::Response {
        status: 200,
        headers: vec![("content-type", "application/json".into())],
        body: bytes::Bytes::from_static(b"{}"),
    });
    assert!(matches!(r.body(), hub::lambda::Body::Text(t) if t == "{}"));
    let r = hub::lambda::http_response(hub::api::Response {
        status: 200,
        headers: vec![("set-cookie", "a=1".into()), ("set-cookie", "b=2".into())],
        body: bytes::Bytes::new(),
    });
    assert_eq!(r.headers().get_all("set-cookie").iter().count(), 2);
}
