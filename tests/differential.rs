//! Differential test of the query language: random patients and random
//! queries, asked of the hub over HTTP and of a Feathers memory service
//! (npm `@feathersjs/memory`, the reference semantics) holding the same
//! objects. Ids, their order and `total` must agree on every query.
//! `scripts/test.sh` installs the reference into tests/feathers/node_modules.

use hub_tests::*;
use serde_json::{Map, Value};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

const NAMES: &[&str] = &[
    "Ann Smith",
    "Bob Jones",
    "Cara Patel",
    "Dev Brown",
    "Eve Khan",
    "Zoë Wright",
    "José Hall",
    "ann smith",
    "Émile Wood",
    "Bob",
];
const CITIES: &[&str] = &["Leeds", "York", "London", "leeds", "Hull", "St Albans"];
const GENDERS: &[&str] = &["female", "male", "non-binary", "unknown"];
const TITLES: &[&str] = &["Mr", "Mrs", "Ms", "Dr"];
const SOURCES: &[&str] = &["google", "facebook", "newsletter"];

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Int,
    Str,
    Date,
    Stamp,
}

const FIELDS: &[(&str, Kind)] = &[
    ("age", Kind::Int),
    ("fullName", Kind::Str),
    ("gender", Kind::Str),
    ("title", Kind::Str),
    ("address.city", Kind::Str),
    ("tracking.source", Kind::Str),
    ("dob", Kind::Date),
    ("createdAt", Kind::Stamp),
];
const SORTABLE: &[&str] = &[
    "age",
    "fullName",
    "gender",
    "title",
    "address.city",
    "dob",
    "createdAt",
];

fn random_patient(r: &mut Rng, i: usize) -> Value {
    let mut p = patient_body(r.pick(NAMES), "Leeds", "Active", "Google");
    p["fullName"] = json!(r.pick(NAMES));
    let mut address = json!({"line1": format!("{i} High St")});
    if r.chance(80) {
        address["city"] = json!(r.pick(CITIES));
    }
    p["address"] = address;
    p["tracking"] = if r.chance(70) {
        json!({"source": r.pick(SOURCES)})
    } else {
        json!({})
    };
    if r.chance(75) {
        p["age"] = json!(r.below(90));
    }
    if r.chance(70) {
        p["gender"] = json!(r.pick(GENDERS));
    }
    if r.chance(50) {
        p["title"] = json!(r.pick(TITLES));
    }
    if r.chance(60) {
        p["dob"] = json!(format!(
            "19{:02}-{:02}-{:02}",
            30 + r.below(60),
            1 + r.below(12),
            1 + r.below(28)
        ));
    }
    p
}

/// A value for `field`, usually one that occurs in the data.
fn value(r: &mut Rng, kind: Kind, field: &str, docs: &[Value]) -> Value {
    let path: Vec<&str> = field.split('.').collect();
    let existing: Vec<Value> = docs
        .iter()
        .filter_map(|d| path.iter().try_fold(d, |cur, seg| cur.get(*seg)).cloned())
        .collect();
    if !existing.is_empty() && r.chance(85) {
        return r.pick(&existing);
    }
    match kind {
        Kind::Int => json!(r.below(100)),
        Kind::Str => json!(r.pick(&["Nobody", "zzz", "A"])),
        Kind::Date => json!(r.pick(&["1950-01-01", "1975-06-15", "2000-12-31"])),
        Kind::Stamp => json!("2020-01-01T00:00:00.000Z"),
    }
}

/// The query string form of a value (timestamps sometimes as Unix ms).
fn qs_value(r: &mut Rng, kind: Kind, v: &Value) -> String {
    let s = match (kind, v) {
        (Kind::Stamp, Value::String(s)) if r.chance(50) => {
            hub::time::parse_timestamp(s).unwrap().to_string()
        }
        (_, Value::String(s)) => s.clone(),
        (_, other) => other.to_string(),
    };
    enc(&s)
}

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Sometimes percent-encode the brackets and `$` of a key, as browsers may.
fn key(r: &mut Rng, k: &str) -> String {
    if r.chance(20) {
        k.replace('[', "%5B")
            .replace(']', "%5D")
            .replace('$', "%24")
    } else {
        k.to_string()
    }
}

/// Random field conditions at one level: fills the JSON object and the qs parts.
fn conditions(
    r: &mut Rng,
    docs: &[Value],
    prefix: &str,
    depth: usize,
    json: &mut Map<String, Value>,
    parts: &mut Vec<String>,
) {
    let n = 1 + r.below(3);
    let mut used = Vec::new();
    for _ in 0..n {
        let (field, kind) = r.pick(FIELDS);
        if used.contains(&field) {
            continue;
        }
        used.push(field);
        let base = format!(
            "{prefix}{}",
            if prefix.is_empty() {
                field.to_string()
            } else {
                format!("[{field}]")
            }
        );
        let op = r.below(10);
        let v = value(r, kind, field, docs);
        match op {
            0 | 1 => {
                json.insert(field.into(), v.clone());
                let qv = qs_value(r, kind, &v);
                parts.push(format!("{}={qv}", key(r, &base)));
            }
            2..=6 => {
                let name = ["$ne", "$lt", "$lte", "$gt", "$gte"][op - 2];
                json.insert(field.into(), json!({ name: v.clone() }));
                let qv = qs_value(r, kind, &v);
                parts.push(format!("{}={qv}", key(r, &format!("{base}[{name}]"))));
            }
            7 | 8 => {
                let name = if op == 7 { "$in" } else { "$nin" };
                let count = 1 + r.below(3);
                let vals: Vec<Value> = (0..count).map(|_| value(r, kind, field, docs)).collect();
                json.insert(field.into(), json!({ name: vals.clone() }));
                let format = r.below(3);
                for (i, v) in vals.iter().enumerate() {
                    let k = match format {
                        0 => format!("{base}[{name}][{i}]"),
                        1 => format!("{base}[{name}][]"),
                        _ => format!("{base}[{name}]"),
                    };
                    let qv = qs_value(r, kind, v);
                    parts.push(format!("{}={qv}", key(r, &k)));
                }
            }
            _ => {
                let want = r.chance(50);
                json.insert(field.into(), json!({ "$exists": want }));
                parts.push(format!("{}={want}", key(r, &format!("{base}[$exists]"))));
            }
        }
    }
    if depth < 2 && r.chance(30) {
        let group = if r.chance(60) { "$or" } else { "$and" };
        let items = 1 + r.below(3);
        let mut arr = Vec::new();
        for i in 0..items {
            let mut sub = Map::new();
            let p = if prefix.is_empty() {
                format!("{group}[{i}]")
            } else {
                format!("{prefix}[{group}][{i}]")
            };
            conditions(r, docs, &p, depth + 1, &mut sub, parts);
            arr.push(Value::Object(sub));
        }
        json.insert(group.into(), Value::Array(arr));
    }
}

struct Feathers {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Feathers {
    fn start() -> Feathers {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("feathers");
        assert!(
            dir.join("node_modules/@feathersjs/memory").exists(),
            "the Feathers reference is not installed: run scripts/test.sh (or `npm ci` in tests/feathers)"
        );
        let mut child = Command::new("node")
            .arg(dir.join("harness.mjs"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("node");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Feathers {
            child,
            stdin,
            stdout,
        }
    }

    fn ask(&mut self, msg: &Value) -> Value {
        writeln!(self.stdin, "{msg}").unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("bad harness answer: {line}"))
    }
}

impl Drop for Feathers {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_agree_with_feathers_memory() {
    let s = TestServer::start().await;
    let org = s.org("Differential", true).await;
    let key_ = org.test.secret.clone();
    reference_data(&s.http, &key_).await;
    let seed = std::env::var("DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0xD1FF_E2E7);
    let mut r = Rng(seed);
    for i in 0..160 {
        s.http
            .post("/v1/patients", &key_, &random_patient(&mut r, i))
            .await
            .expect(201);
    }
    // Every stored patient, in creation order.
    let mut docs: Vec<Value> = Vec::new();
    let mut page = s.http.get("/v1/patients?$limit=100", &key_).await;
    loop {
        docs.extend(page.body["data"].as_array().unwrap().iter().cloned());
        let Some(next) = page.body["next"].as_str().map(String::from) else {
            break;
        };
        page = s
            .http
            .get(&format!("/v1/patients?$limit=100&$after={next}"), &key_)
            .await;
    }
    assert_eq!(docs.len(), 160);
    let mut feathers = Feathers::start();
    assert_eq!(feathers.ask(&json!({"docs": docs}))["loaded"], 160);

    let runs = 600;
    let mut nonempty = 0;
    for n in 0..runs {
        let mut q = Map::new();
        let mut parts = Vec::new();
        if r.chance(85) {
            conditions(&mut r, &docs, "", 0, &mut q, &mut parts);
        }
        if r.chance(75) {
            let mut sort = Map::new();
            for _ in 0..1 + r.below(2) {
                let f = r.pick(SORTABLE);
                if sort.contains_key(f) {
                    continue;
                }
                let dir = if r.chance(50) { 1 } else { -1 };
                sort.insert(f.into(), json!(dir));
                parts.push(format!("{}={dir}", key(&mut r, &format!("$sort[{f}]"))));
            }
            q.insert("$sort".into(), Value::Object(sort));
        }
        if r.chance(40) {
            let skip = r.below(30);
            q.insert("$skip".into(), json!(skip));
            parts.push(format!("$skip={skip}"));
        }
        if r.chance(70) {
            let limit = if r.chance(10) { 150 } else { r.below(25) };
            q.insert("$limit".into(), json!(limit));
            parts.push(format!("$limit={limit}"));
        }
        if r.chance(20) {
            q.insert("$select".into(), json!(["fullName", "age"]));
            parts.push("$select[]=fullName&$select[]=age".into());
        }
        // Shuffle the parameters: their order must not matter (except within $sort).
        parts.push("$total=true".into());
        let qs = parts.join("&");
        let hub = s.http.get(&format!("/v1/patients?{qs}"), &key_).await;
        let reference = feathers.ask(&json!({"query": q}));
        assert!(
            reference.get("error").is_none(),
            "reference refused query #{n} {q:?}: {reference}"
        );
        assert_eq!(
            hub.status, 200,
            "query #{n} `{qs}` refused by the hub: {}",
            hub.body
        );
        let want: Vec<String> = reference["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            hub.ids(),
            want,
            "ids differ for query #{n}\n  qs:   {qs}\n  json: {}",
            Value::Object(q.clone())
        );
        assert_eq!(
            hub.body["total"], reference["total"],
            "total differs for query #{n}: {qs}"
        );
        if !want.is_empty() {
            nonempty += 1;
        }
    }
    // The generator must produce interesting queries, not only empty results.
    assert!(
        nonempty > runs / 3,
        "only {nonempty} of {runs} queries matched anything"
    );
}
