//! The dashboard's side of the server, over HTTP: its files and their
//! security headers, and `GET /v1/organization` on both stores. (The page
//! itself is tested in a real browser by tests/browser/dashboard.py.)

use hub_tests::*;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_is_served_with_a_strict_policy() {
    let s = TestServer::start().await;
    for path in ["/dashboard", "/dashboard/", "/dashboard/index.html"] {
        let r = s.http.send("GET", path, None, None, &[]).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        assert!(String::from_utf8_lossy(&r.raw).contains("src=\"/dashboard/app.js\""));
        let csp = r.header("content-security-policy").unwrap();
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
            "require-trusted-types-for 'script'",
        ] {
            assert!(csp.contains(directive), "{csp}");
        }
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(r.header("x-frame-options"), Some("DENY"));
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    }
    let js = s
        .http
        .send("GET", "/dashboard/app.js", None, None, &[])
        .await;
    assert_eq!(js.status, 200);
    assert_eq!(
        js.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    let css = s
        .http
        .send("GET", "/dashboard/style.css", None, None, &[])
        .await;
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    // Revalidation: the same ETag answers 304 with no body.
    let etag = js.header("etag").unwrap().to_string();
    let again = s
        .http
        .send(
            "GET",
            "/dashboard/app.js",
            None,
            None,
            &[("if-none-match", &etag)],
        )
        .await;
    assert_eq!(again.status, 304);
    assert!(again.raw.is_empty());
    // HEAD answers the headers only.
    let head = s.http.send("HEAD", "/dashboard", None, None, &[]).await;
    assert_eq!(head.status, 200);
    assert!(head.raw.is_empty());
    // Unknown files and other methods: the API's own errors.
    s.http
        .send("GET", "/dashboard/secrets.txt", None, None, &[])
        .await
        .expect_error(404, "NOT_FOUND");
    s.http
        .send("GET", "/dashboard/a/b.js", None, None, &[])
        .await
        .expect_error(404, "NOT_FOUND");
    s.http
        .send("POST", "/dashboard", None, None, &[])
        .await
        .expect_error(405, "METHOD_NOT_SUPPORTED");
    // The dashboard is no API operation; the event catalog is in the document.
    let doc = s.http.send("GET", "/openapi.json", None, None, &[]).await;
    let paths = doc.body["paths"].as_object().unwrap();
    assert!(paths.keys().all(|p| !p.starts_with("/dashboard")));
    let enabled = &doc.body["components"]["schemas"]["WebhookEndpointCreate"]["properties"]
        ["enabledEvents"]["items"]["enum"];
    assert_eq!(enabled, &json!(hub::api::openapi::subscription_patterns()));
    let types = doc.body["components"]["schemas"]["Event"]["properties"]["type"]["enum"]
        .as_array()
        .unwrap();
    assert!(types.contains(&json!("patient.created")) && types.contains(&json!("test.event")));
}

/// `GET /v1/organization` for each kind of key.
async fn organization_contract(http: &Http, org: &hub::org::CreatedOrg) {
    let r = http.get("/v1/organization", &org.test.secret).await;
    r.expect(200);
    assert_eq!(r.body["id"], org.organization_id.as_str());
    assert_eq!(r.body["object"], "organization");
    assert_eq!(r.body["name"], org.name.as_str());
    assert_eq!(r.body["livemode"], false);
    assert!(is_ms_timestamp(&r.body["createdAt"]));
    let live = http.get("/v1/organization", &org.live.secret).await;
    live.expect(200);
    assert_eq!(live.body["livemode"], true);
    assert_eq!(live.body["id"], org.organization_id.as_str());
    http.get("/v1/organization", &org.test.publishable)
        .await
        .expect_error(403, "PERMISSIONS_ERROR");
    http.send("GET", "/v1/organization", None, None, &[])
        .await
        .expect_error(401, "AUTH_ERROR");
    http.get("/v1/organization", &format!("sk_test_{}", "0".repeat(40)))
        .await
        .expect_error(401, "AUTH_ERROR");
    http.post("/v1/organization", &org.test.secret, &json!({}))
        .await
        .expect_error(405, "METHOD_NOT_SUPPORTED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organization_on_the_embedded_store() {
    let s = TestServer::start().await;
    let org = s.org("Organization Clinic", true).await;
    organization_contract(&s.http, &org).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organization_on_dynamodb() {
    let endpoint = std::env::var("HUB_TEST_DYNAMODB_ENDPOINT").expect(
        "HUB_TEST_DYNAMODB_ENDPOINT is not set: run scripts/test.sh, which starts DynamoDB Local",
    );
    let client = hub::store::dynamodb::local_client(&endpoint, "us-east-1").await;
    let table = format!("hub-org-{}", hub::ids::ulid().to_lowercase());
    hub::store::dynamodb::DynamoStore::create_table_without_stream(&client, &table)
        .await
        .unwrap();
    let s = TestServer::start_on(Arc::new(hub::store::dynamodb::DynamoStore::new(
        client,
        table,
        hub::resources::kinds(),
    )))
    .await;
    let org = s.org("Organization Clinic", true).await;
    organization_contract(&s.http, &org).await;
}
