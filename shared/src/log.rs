//! Structured, single-line JSON logs on stderr. Callers pass only
//! non-sensitive values: ids, routes, statuses, durations — never keys,
//! secrets, bodies, query strings or patient fields.

use serde_json::{json, Value};
use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};

static LEVEL: AtomicU8 = AtomicU8::new(2);

/// 0 = off, 1 = errors only, 2 = every request (default).
pub fn set_level(level: u8) {
    LEVEL.store(level, Ordering::Relaxed);
}

pub fn level_from_str(s: &str) -> Option<u8> {
    match s {
        "off" => Some(0),
        "error" => Some(1),
        "info" => Some(2),
        _ => None,
    }
}

pub fn enabled(level: u8) -> bool {
    LEVEL.load(Ordering::Relaxed) >= level
}

pub fn emit(level: u8, mut line: Value) {
    if !enabled(level) {
        return;
    }
    line["ts"] = Value::String(crate::time::format_ms(crate::time::now_ms()));
    let mut text = line.to_string();
    text.push('\n');
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

pub fn error(component: &str, message: &str) {
    emit(
        1,
        json!({"level": "error", "component": component, "message": message}),
    );
}

pub fn info(component: &str, message: &str) {
    emit(
        2,
        json!({"level": "info", "component": component, "message": message}),
    );
}
