//! API keys with the `hub` binary as an operator runs it: `hub keys roll`
//! beside a running `hub serve` (embedded store) and against a DynamoDB
//! table; a restart with the clock moved two hours on (the test hook
//! `HUB_TEST_CLOCK_OFFSET`, read once by the process) ends the overlaps;
//! and no log line or file of the data directory holds a key in clear.

use hub_tests::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const HUB: &str = env!("CARGO_BIN_EXE_hub");

fn hub(args: &[&str], env: &[(&str, &str)]) -> (String, String) {
    let out = Command::new(HUB)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "hub {args:?}: {stderr}");
    (stdout, stderr)
}

/// Every file under `dir`, as (name, text).
fn files(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else if let Ok(bytes) = std::fs::read(&p) {
            out.push((
                p.display().to_string(),
                String::from_utf8_lossy(&bytes).to_string(),
            ));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rolled_by_api_and_cli_end_when_the_clock_moves_and_are_never_kept_in_clear() {
    let dir = TempDir::new("keys");
    let data = dir.path().to_str().unwrap();
    let first = Served::start(HUB, dir.path(), &["--log", "info"], &[]);
    let sandbox_keys = vec![first.secret.clone(), first.publishable.clone()];
    let (out, _) = hub(
        &[
            "org",
            "create",
            "--name",
            "Keys Clinic",
            "--empty",
            "--json",
            "--data",
            data,
        ],
        &[],
    );
    let org: Value = serde_json::from_str(&out).unwrap();
    let org_id = org["organizationId"].as_str().unwrap().to_string();
    let sk = org["keys"]["test"]["secret"].as_str().unwrap().to_string();
    let live_sk = org["keys"]["live"]["secret"].as_str().unwrap().to_string();
    let mut issued = vec![
        sk.clone(),
        live_sk.clone(),
        org["keys"]["test"]["publishable"]
            .as_str()
            .unwrap()
            .to_string(),
        org["keys"]["live"]["publishable"]
            .as_str()
            .unwrap()
            .to_string(),
    ];
    let http = Http::new(first.base.clone());

    // A restricted key, rolled through the API with an hour's overlap.
    let rk = http
        .post(
            "/v1/api-keys",
            &sk,
            &json!({"type": "restricted", "note": "Widget", "permissions": {"appointments": "write", "organization": "read"}}),
        )
        .await;
    rk.expect(201);
    let rk_id = rk.id();
    let rk = rk.body["secret"].as_str().unwrap().to_string();
    issued.push(rk.clone());
    let rolled = http
        .post(
            &format!("/v1/api-keys/{rk_id}/roll"),
            &sk,
            &json!({"expiresInHours": 1}),
        )
        .await;
    rolled.expect(200);
    let rk2 = rolled.body["secret"].as_str().unwrap().to_string();
    issued.push(rk2.clone());

    // The operator rolls the test secret key with an hour's overlap (JSON),
    // and the live one at once (text), beside the running server.
    let (out, _) = hub(
        &[
            "keys",
            "roll",
            "--org",
            &org_id,
            "--mode",
            "test",
            "--type",
            "secret",
            "--expires-in-hours",
            "1",
            "--json",
            "--data",
            data,
        ],
        &[],
    );
    let new: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(new["type"], "secret");
    assert_eq!(new["prefix"], "sk_test");
    let sk2 = new["secret"].as_str().unwrap().to_string();
    issued.push(sk2.clone());
    let (out, _) = hub(
        &[
            "keys", "roll", "--org", &org_id, "--mode", "live", "--type", "secret", "--data", data,
        ],
        &[],
    );
    assert!(out.contains("stopped working now"), "{out}");
    let live_sk2 = out
        .split_whitespace()
        .find(|w| w.starts_with("sk_live_") && !w.contains('…'))
        .unwrap_or_else(|| panic!("no new key in {out}"))
        .to_string();
    issued.push(live_sk2.clone());
    assert!(out.contains("shown only now"), "{out}");

    for key in [&sk, &sk2, &rk, &rk2] {
        http.get("/v1/organization", key).await.expect(200);
    }
    http.get("/v1/organization", &live_sk)
        .await
        .expect_error(401, "AUTH_ERROR");
    http.get("/v1/organization", &live_sk2).await.expect(200);
    // Restricted and unknown uses of the CLI are refused clearly.
    let refused = Command::new(HUB)
        .args([
            "keys",
            "roll",
            "--org",
            &org_id,
            "--mode",
            "test",
            "--type",
            "restricted",
            "--data",
            data,
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("through the API"));
    let refused = Command::new(HUB)
        .args([
            "keys", "roll", "--org", "org_nope", "--mode", "test", "--type", "secret", "--data",
            data,
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("org_nope"));
    let logs1 = first.kill9();

    // Two hours later (the same data, the clock moved): the overlaps are
    // over.
    let second = Served::start(
        HUB,
        dir.path(),
        &["--log", "info"],
        &[("HUB_TEST_CLOCK_OFFSET", "2h")],
    );
    let http = Http::new(second.base.clone());
    http.get("/v1/organization", &sk)
        .await
        .expect_error(401, "AUTH_ERROR");
    http.get("/v1/organization", &rk)
        .await
        .expect_error(401, "AUTH_ERROR");
    http.get("/v1/organization", &sk2).await.expect(200);
    http.get("/v1/organization", &rk2).await.expect(200);
    let list = http.get("/v1/api-keys?$limit=100", &sk2).await;
    list.expect(200);
    let status: Vec<(String, String)> = list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["prefix"].as_str().unwrap().to_string(),
                k["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let count =
        |prefix: &str, s: &str| status.iter().filter(|(p, x)| p == prefix && x == s).count();
    assert_eq!(count("sk_test", "revoked"), 1, "{status:?}");
    assert_eq!(count("sk_test", "active"), 1, "{status:?}");
    assert_eq!(count("rk_test", "revoked"), 1, "{status:?}");
    assert_eq!(count("rk_test", "active"), 1, "{status:?}");
    let logs2 = second.kill9();
    assert!(
        logs2.contains("HUB_TEST_CLOCK_OFFSET"),
        "the moved clock says so"
    );
    assert!(logs1.contains("\"route\":\"api-keys-roll\""), "{logs1}");

    // No log line holds any key; no file of the data directory holds a
    // key issued here. (`sandbox.json` holds the sandbox's test keys, by
    // design, so `hub serve` can print them at every start.)
    for logs in [&logs1, &logs2] {
        for k in issued.iter().chain(sandbox_keys.iter()) {
            assert!(!logs.contains(k.as_str()), "a log line holds {k}");
        }
    }
    let all = files(dir.path());
    assert!(
        all.len() >= 3,
        "{:?}",
        all.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    for (name, text) in &all {
        for k in &issued {
            assert!(!text.contains(k.as_str()), "{name} holds {k}");
        }
        if !name.ends_with("sandbox.json") {
            for k in &sandbox_keys {
                assert!(!text.contains(k.as_str()), "{name} holds {k}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_roll_works_against_dynamodb() {
    let endpoint = std::env::var("HUB_TEST_DYNAMODB_ENDPOINT").expect(
        "HUB_TEST_DYNAMODB_ENDPOINT is not set: run scripts/test.sh, which starts DynamoDB Local",
    );
    let client = hub::store::dynamodb::local_client(&endpoint, "us-east-1").await;
    let table = format!("hub-keys-cli-{}", hub::ids::ulid().to_lowercase());
    let env = [
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];
    let at = ["--table", &table, "--endpoint-url", &endpoint];
    hub(&[&["table", "create"][..], &at[..]].concat(), &env);
    let (out, _) = hub(
        &[
            &["org", "create", "--name", "Cloud Keys", "--empty", "--json"][..],
            &at[..],
        ]
        .concat(),
        &env,
    );
    let org: Value = serde_json::from_str(&out).unwrap();
    let org_id = org["organizationId"].as_str().unwrap();
    let old = org["keys"]["live"]["secret"].as_str().unwrap().to_string();
    let (out, _) = hub(
        &[
            &[
                "keys", "roll", "--org", org_id, "--mode", "live", "--type", "secret", "--json",
            ][..],
            &at[..],
        ]
        .concat(),
        &env,
    );
    let new: Value = serde_json::from_str(&out).unwrap();
    let new_key = new["secret"].as_str().unwrap().to_string();
    assert!(new_key.starts_with("sk_live_"));
    let s = TestServer::start_on(std::sync::Arc::new(hub::store::dynamodb::DynamoStore::new(
        client.clone(),
        table.clone(),
        hub::resources::kinds(),
    )))
    .await;
    s.http
        .get("/v1/organization", &old)
        .await
        .expect_error(401, "AUTH_ERROR");
    let listed = s.http.get("/v1/api-keys", &new_key).await;
    listed.expect(200);
    let statuses: Vec<&str> = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["type"] == "secret")
        .map(|k| k["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["revoked", "active"], "{}", listed.body);
    // No item of the table holds a key in clear.
    let scan = client.scan().table_name(&table).send().await.unwrap();
    let text = format!("{:?}", scan.items());
    assert!(text.contains("apiKey"));
    for k in [&old, &new_key] {
        assert!(!text.contains(k.as_str()), "an item holds {k}");
    }
    for mode in ["test", "live"] {
        for kind in ["secret", "publishable"] {
            let k = org["keys"][mode][kind].as_str().unwrap();
            assert!(!text.contains(k), "an item holds {k}");
        }
    }
}
