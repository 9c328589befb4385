//! The binary as Lambda starts it: a function whose `HUB_FUNCTION` names
//! nothing the build knows stops at init with one clear log line, before it
//! reads any other setting or opens a connection.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn start(function: Option<&str>) -> (Output, Duration) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hub-lambda"));
    cmd.env_clear()
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        // Nothing listens here: a function that got past the check would fail
        // later, with another message.
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .env("TABLE_NAME", "unused");
    if let Some(f) = function {
        cmd.env("HUB_FUNCTION", f);
    }
    let t = Instant::now();
    let out = cmd.output().expect("run hub-lambda");
    (out, t.elapsed())
}

#[test]
fn an_unknown_function_stops_at_init_with_one_log_line() {
    let (out, took) = start(Some("patients-lst"));
    assert!(!out.status.success(), "exit status {:?}", out.status);
    assert!(took < Duration::from_secs(5), "stopped at once ({took:?})");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one log line: {stdout}");
    let line: serde_json::Value = serde_json::from_str(lines[0]).expect("a JSON log line");
    assert_eq!(line["level"], "error", "{line}");
    let message = line["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("HUB_FUNCTION=`patients-lst` names no function of this build")
            && message.contains("did you mean `patients-list`?"),
        "{message}"
    );
}

#[test]
fn a_missing_function_name_stops_at_init() {
    let (out, _) = start(None);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("HUB_FUNCTION is not set"), "{stdout}");
}
