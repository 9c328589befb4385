//! `hub smoke` against `hub serve`, as a customer runs it against a fresh
//! deployment: every step passes on a working API, and a failure (a wrong
//! key, a webhook receiver that answers 500) exits 1 naming the step.

use hub_tests::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

const HUB: &str = env!("CARGO_BIN_EXE_hub");

/// A webhook receiver on a free port: answers every request with `status`
/// and keeps what it received (request line, headers, body).
struct Hook {
    url: String,
    seen: Arc<Mutex<Vec<String>>>,
}

fn hook(status: u16) -> Hook {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut request = String::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                request.push_str(&line);
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            request.push_str(&String::from_utf8_lossy(&body));
            log.lock().unwrap().push(request);
            let mut conn = conn;
            let _ = write!(
                conn,
                "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    Hook { url, seen }
}

async fn smoke(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(HUB)
            .arg("smoke")
            .args(&args)
            .output()
            .expect("run hub smoke")
    })
    .await
    .unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_step_passes_against_hub_serve_and_the_test_event_arrives() {
    let dir = TempDir::new("smoke");
    let served = Served::start(HUB, dir.path(), &[], &[]);
    let receiver = hook(200);
    let out = smoke(&[
        "--url",
        &served.base,
        "--key",
        &served.secret,
        "--webhook-url",
        &receiver.url,
    ])
    .await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for step in [
        "health",
        "create a patient",
        "read it",
        "list patients (newest first)",
        "delete it",
        "it is gone",
        "create a webhook endpoint",
        "send it a test event",
        "the test event is delivered",
        "delete the webhook endpoint",
    ] {
        let line = stdout
            .lines()
            .find(|l| l[6..].starts_with(step))
            .unwrap_or_else(|| panic!("no step `{step}`:\n{stdout}"));
        assert!(line.starts_with("ok  "), "{line}");
        assert!(line.contains(" ms"), "each step's time: {line}");
    }
    assert!(stdout.contains("create a patient") && stdout.contains(" 201 "));
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("the test event is delivered") && l.contains("answered 200")),
        "{stdout}"
    );
    assert!(stdout.contains("smoke test passed"), "{stdout}");
    assert!(!stdout.contains(&served.secret), "the key is never printed");
    let seen = receiver.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "one delivery: {seen:?}");
    assert!(seen[0].starts_with("POST /hook "), "{}", seen[0]);
    assert!(seen[0].contains("test.event"), "{}", seen[0]);
    // Nothing left behind: the patient and the endpoint are gone.
    let http = Http::new(served.base.clone());
    let eps = http.get("/v1/webhook-endpoints", &served.secret).await;
    eps.expect(200);
    assert_eq!(
        eps.body["data"].as_array().unwrap().len(),
        0,
        "{}",
        eps.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_or_a_failing_receiver_exits_1_naming_the_step() {
    let dir = TempDir::new("smoke-fail");
    let served = Served::start(HUB, dir.path(), &[], &[]);
    let wrong = format!("{}x", served.secret);
    let out = smoke(&["--url", &served.base, "--key", &wrong]).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let fail = stdout
        .lines()
        .find(|l| l.starts_with("FAIL"))
        .unwrap_or_else(|| panic!("a FAIL line:\n{stdout}"));
    assert!(fail.contains(" 401 "), "{fail}");
    assert!(stderr.contains("smoke test failed"), "{stderr}");
    assert!(!stdout.contains(&wrong) && !stderr.contains(&wrong));

    let receiver = hook(500);
    let out = smoke(&[
        "--url",
        &served.base,
        "--key",
        &served.secret,
        "--webhook-url",
        &receiver.url,
    ])
    .await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let fail = stdout
        .lines()
        .find(|l| l.starts_with("FAIL"))
        .unwrap_or_else(|| panic!("a FAIL line:\n{stdout}"));
    assert!(
        fail.contains("the test event is delivered") && fail.contains(" 500"),
        "{fail}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("ok") && l.contains("delete the webhook endpoint")),
        "cleaned up after the failure:\n{stdout}"
    );
    assert!(!served.base.is_empty());
}

#[tokio::test]
async fn bad_arguments_are_refused() {
    let out = smoke(&["--url", "not a url", "--key", "sk_test_x"]).await;
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("--url must be an absolute"), "{stderr}");
    let out = smoke(&["--url", "http://127.0.0.1:9"]).await;
    let (_, stderr) = text(&out);
    assert!(stderr.contains("--key KEY is required"), "{stderr}");
}
