//! Logging on `tracing`: the hub's code emits `tracing` events; this module
//! is the small subscriber both runtimes install, writing one line per
//! event. Callers pass only non-sensitive values: ids, routes, statuses,
//! durations — never keys, secrets, bodies, query strings or patient fields.
//!
//! - `hub serve` ([`init_serve`]): JSON lines on stderr, written by a
//!   background thread in batches (about a hundred a second under load), so
//!   a request neither waits on the stderr lock nor wakes a thread; its
//!   level is `--log off|error|info`. [`flush`] before exiting.
//! - Lambda ([`init_lambda`]): level and format follow Lambda's advanced
//!   logging controls, `AWS_LAMBDA_LOG_LEVEL` (TRACE … FATAL, default INFO)
//!   and `AWS_LAMBDA_LOG_FORMAT` (`JSON`, or text by default), on stdout.
//!
//! Only the hub's own events (targets under `hub`) and errors from other
//! crates are written.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata};

/// 0 = off, 1 = error, 2 = warn, 3 = info (default), 4 = debug, 5 = trace.
static LEVEL: AtomicU8 = AtomicU8::new(3);

pub const OFF: u8 = 0;
pub const ERROR: u8 = 1;
pub const INFO: u8 = 3;

pub fn set_level(level: u8) {
    LEVEL.store(level, Ordering::Relaxed);
}

/// `hub serve --log`: `off`, `error` or `info`.
pub fn level_from_str(s: &str) -> Option<u8> {
    match s {
        "off" => Some(OFF),
        "error" => Some(ERROR),
        "info" => Some(INFO),
        _ => None,
    }
}

/// `AWS_LAMBDA_LOG_LEVEL`: TRACE, DEBUG, INFO, WARN, ERROR or FATAL.
pub fn level_from_lambda(s: &str) -> Option<u8> {
    match s.to_ascii_uppercase().as_str() {
        "TRACE" => Some(5),
        "DEBUG" => Some(4),
        "INFO" => Some(3),
        "WARN" => Some(2),
        "ERROR" | "FATAL" => Some(1),
        _ => None,
    }
}

fn rank(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 1,
        Level::WARN => 2,
        Level::INFO => 3,
        Level::DEBUG => 4,
        Level::TRACE => 5,
    }
}

/// Would an event at this level be written?
pub fn enabled(level: u8) -> bool {
    LEVEL.load(Ordering::Relaxed) >= level
}

enum Sink {
    /// Lines go to the writer thread (hub serve), through `PENDING`.
    Thread,
    /// Lines are written and flushed in place (Lambda: one event at a time;
    /// a request's line is out before its invocation ends).
    Stdout,
    #[cfg(test)]
    Buffer(std::sync::Arc<std::sync::Mutex<String>>),
}

struct Subscriber {
    json: bool,
    sink: Sink,
}

static INSTALLED: OnceLock<()> = OnceLock::new();

/// `hub serve`'s lines waiting for the writer thread. A request appends its
/// line under a short lock and wakes nobody, except when the buffer was
/// empty (the writer sleeps until then) or has grown past `WAKE`: the
/// writer gathers for `GATHER` after waking, so under load it wakes about
/// a hundred times a second, not once per request.
struct Pending {
    lines: Mutex<Vec<u8>>,
    /// Held while a batch is taken and written, so batches keep their order.
    out: Mutex<()>,
    writer: std::thread::Thread,
}

static PENDING: OnceLock<Pending> = OnceLock::new();

const GATHER: std::time::Duration = std::time::Duration::from_millis(10);
const WAKE: usize = 256 * 1024;
/// Past this (stderr blocked?) the request writes the batch itself: memory
/// stays bounded and no line is dropped.
const FULL: usize = 8 * 1024 * 1024;

impl Pending {
    fn push(&self, line: &[u8]) {
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let was_empty = lines.is_empty();
        lines.extend_from_slice(line);
        let len = lines.len();
        drop(lines);
        if len >= FULL {
            self.write_batch();
        } else if was_empty || len >= WAKE {
            self.writer.unpark();
        }
    }

    /// Take what is pending and write it.
    fn write_batch(&self) {
        let _out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let batch = std::mem::take(&mut *self.lines.lock().unwrap_or_else(|e| e.into_inner()));
        if !batch.is_empty() {
            let _ = std::io::stderr().write_all(&batch);
        }
    }

    fn is_empty(&self) -> bool {
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }
}

fn install(sub: Subscriber) {
    INSTALLED.get_or_init(|| {
        let _ = tracing::subscriber::set_global_default(sub);
    });
}

/// `hub serve`: JSON lines on stderr from a writer thread.
pub fn init_serve() {
    let spawned = std::thread::Builder::new()
        .name("hub-log".into())
        .spawn(|| {
            // Wait until `init_serve` has published the queue.
            let pending = loop {
                match PENDING.get() {
                    Some(p) => break p,
                    None => std::thread::park(),
                }
            };
            loop {
                while pending.is_empty() {
                    std::thread::park();
                }
                std::thread::sleep(GATHER);
                pending.write_batch();
            }
        });
    let sink = match spawned {
        Ok(handle) => {
            let writer = handle.thread().clone();
            let published = PENDING
                .set(Pending {
                    lines: Mutex::new(Vec::with_capacity(64 * 1024)),
                    out: Mutex::new(()),
                    writer: writer.clone(),
                })
                .is_ok();
            writer.unpark();
            if published {
                Sink::Thread
            } else {
                Sink::Stdout
            }
        }
        Err(_) => Sink::Stdout,
    };
    install(Subscriber { json: true, sink });
}

/// A Lambda function: level and format from the advanced logging controls.
pub fn init_lambda() {
    if let Some(level) = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .ok()
        .and_then(|l| level_from_lambda(&l))
    {
        set_level(level);
    }
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    install(Subscriber {
        json,
        sink: Sink::Stdout,
    });
}

/// Text lines on stdout, written where they are logged: for in-process
/// tests that run the hub's code beside their own (a test's captured output
/// then shows the errors of the server it ran).
pub fn init_stdout() {
    install(Subscriber {
        json: false,
        sink: Sink::Stdout,
    });
}

/// Write every line logged so far (before exiting).
pub fn flush() {
    if let Some(p) = PENDING.get() {
        p.write_batch();
    }
}

/// One line's fields, JSON-escaped as they are visited.
struct Fields {
    json: bool,
    out: String,
    message: String,
}

fn json_str(out: &mut String, s: &str) {
    out.push('"');
    // Runs of bytes that need no escape are copied whole; every byte that
    // does is ASCII, so the run boundaries are char boundaries.
    let mut run = 0;
    for (i, b) in s.bytes().enumerate() {
        let escaped = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[run..i]);
        if escaped.is_empty() {
            let _ = write!(out, "\\u{:04x}", b);
        } else {
            out.push_str(escaped);
        }
        run = i + 1;
    }
    out.push_str(&s[run..]);
    out.push('"');
}

impl Fields {
    fn key(&mut self, name: &str) {
        if self.json {
            self.out.push(',');
            json_str(&mut self.out, name);
            self.out.push(':');
        } else {
            self.out.push(' ');
            self.out.push_str(name);
            self.out.push('=');
        }
    }
    fn string(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
            return;
        }
        self.pair(field.name(), value);
    }
    fn pair(&mut self, name: &str, value: &str) {
        self.key(name);
        if self.json {
            json_str(&mut self.out, value);
        } else if value.contains([' ', '"', '=']) || value.is_empty() {
            let mut q = String::new();
            json_str(&mut q, value);
            self.out.push_str(&q);
        } else {
            self.out.push_str(value);
        }
    }
    fn raw(&mut self, field: &Field, value: std::fmt::Arguments<'_>) {
        self.key(field.name());
        let _ = self.out.write_fmt(value);
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.string(field, value);
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.string(field, &format!("{value:?}"));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.raw(field, format_args!("{value}"));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.raw(field, format_args!("{value}"));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.raw(field, format_args!("{value}"));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.raw(field, format_args!("{value}"));
        } else {
            self.string(field, "NaN");
        }
    }
}

fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

impl Subscriber {
    fn format(&self, event: &Event<'_>) -> String {
        let meta = event.metadata();
        let mut f = Fields {
            json: self.json,
            out: String::with_capacity(256),
            message: String::new(),
        };
        let now = crate::time::now_ms();
        if self.json {
            f.out.push_str("{\"level\":\"");
            f.out.push_str(level_name(meta.level()));
            f.out.push_str("\",\"ts\":\"");
            crate::time::push_ms(&mut f.out, now);
            f.out.push('"');
        } else {
            crate::time::push_ms(&mut f.out, now);
            f.out.push(' ');
            f.out
                .push_str(&level_name(meta.level()).to_ascii_uppercase());
        }
        if !meta.target().starts_with("hub") {
            f.pair("target", meta.target());
        }
        event.record(&mut f);
        let message = std::mem::take(&mut f.message);
        if !message.is_empty() {
            if self.json {
                f.out.push_str(",\"message\":");
                json_str(&mut f.out, &message);
            } else {
                f.out.push(' ');
                f.out.push_str(&message);
            }
        }
        if self.json {
            f.out.push('}');
        }
        f.out.push('\n');
        f.out
    }
}

impl tracing::Subscriber for Subscriber {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> tracing::subscriber::Interest {
        // The level can change at run time (`set_level`): ask every time.
        tracing::subscriber::Interest::sometimes()
    }
    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        let rank = rank(meta.level());
        enabled(rank) && (rank == 1 || meta.target().starts_with("hub"))
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &Event<'_>) {
        let line = self.format(event);
        match &self.sink {
            Sink::Thread => {
                if let Some(p) = PENDING.get() {
                    p.push(line.as_bytes());
                }
            }
            Sink::Stdout => {
                // Written and flushed before the event returns: on Lambda a
                // request's line is out before its invocation ends (the
                // environment may be frozen right after, or never thawed).
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(line.as_bytes());
                let _ = out.flush();
            }
            #[cfg(test)]
            Sink::Buffer(b) => b.lock().unwrap().push_str(&line),
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// An error from one part of the hub (`component`: "store", "delivery"…).
pub fn error(component: &str, message: &str) {
    tracing::error!(target: "hub", component, "{message}");
}

pub fn info(component: &str, message: &str) {
    tracing::info!(target: "hub", component, "{message}");
}

/// Run `f` on this thread with Lambda's subscriber (text lines) writing
/// into a buffer in place of stdout; what `f` returned and what was written
/// by the time it returned.
#[cfg(test)]
pub(crate) fn capture_lambda<T>(f: impl FnOnce() -> T) -> (T, String) {
    let buf = std::sync::Arc::new(Mutex::new(String::new()));
    let sub = Subscriber {
        json: false,
        sink: Sink::Buffer(buf.clone()),
    };
    let out = tracing::subscriber::with_default(sub, f);
    let written = buf.lock().unwrap().clone();
    (out, written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn capture(json: bool, f: impl FnOnce()) -> String {
        let buf = Arc::new(Mutex::new(String::new()));
        let sub = Subscriber {
            json,
            sink: Sink::Buffer(buf.clone()),
        };
        tracing::subscriber::with_default(sub, f);
        let out = buf.lock().unwrap().clone();
        out
    }

    #[test]
    fn json_lines_escape_values_and_keep_types() {
        let out = capture(true, || {
            tracing::info!(target: "hub::request", requestId = "r-1", status = 201u64,
                durationMs = 1.5, path = "/v1/\"x\"\n", ok = true, "done");
        });
        let line: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(line["level"], "info");
        assert_eq!(line["requestId"], "r-1");
        assert_eq!(line["status"], 201);
        assert_eq!(line["durationMs"], 1.5);
        assert_eq!(line["path"], "/v1/\"x\"\n");
        assert_eq!(line["ok"], true);
        assert_eq!(line["message"], "done");
        assert!(line["ts"].is_string());
        assert_eq!(out.lines().count(), 1);
        // Every control character, backslashes and text past ASCII survive.
        let tricky: String = (0u8..0x20)
            .map(char::from)
            .chain("\\ é ☃ 😀 \"\u{7f}".chars())
            .collect();
        let out = capture(true, || {
            tracing::info!(target: "hub::request", path = tricky.as_str(), "x");
        });
        let line: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(line["path"], tricky.as_str());
        assert_eq!(out.lines().count(), 1);
    }

    #[test]
    fn text_lines_and_other_crates_only_at_error() {
        let out = capture(false, || {
            tracing::error!(target: "hub", component = "store", "disk full");
            tracing::info!(target: "aws_smithy_runtime", "chatter");
            tracing::error!(target: "lambda_runtime", "handler failed");
        });
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert!(
            lines[0].contains(" ERROR component=store disk full"),
            "{out}"
        );
        assert!(
            lines[1].contains("target=lambda_runtime handler failed"),
            "{out}"
        );
    }

    #[test]
    fn lambda_levels() {
        assert_eq!(level_from_lambda("debug"), Some(4));
        assert_eq!(level_from_lambda("FATAL"), Some(ERROR));
        assert_eq!(level_from_lambda("INFO"), Some(INFO));
        assert_eq!(level_from_lambda("loud"), None);
        assert_eq!(level_from_str("off"), Some(OFF));
    }
}
