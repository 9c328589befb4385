//! The list engine against Feathers' memory adapter on identical data:
//! a three-clause filter, a two-key sort and `$limit=10`, over 10,000 and
//! 100,000 patients. Both run in-process on one thread (the hub's engine
//! here, Feathers in Node through tests/feathers/harness.mjs); results and
//! ids are checked to agree. Run with `bench/query.sh`.

use hub::query::{self, index::Index, QuerySchema};
use hub::resources::by_path;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const QS: &str = "address.city[$in]=Leeds&address.city[$in]=York&age[$gte]=30&gender=female&$sort[age]=-1&$sort[fullName]=1&$limit=10";

fn docs(n: usize) -> Vec<Value> {
    let cities = [
        "Leeds",
        "York",
        "London",
        "Manchester",
        "Bristol",
        "Hull",
        "Bradford",
        "Sheffield",
    ];
    let first = [
        "Ann", "Bob", "Cara", "Dev", "Eve", "Finn", "Gita", "Hugo", "Isla", "Jack", "Kira", "Liam",
    ];
    let last = [
        "Smith", "Jones", "Patel", "Brown", "Khan", "Evans", "Wright", "Green", "Hall", "Wood",
    ];
    let genders = ["female", "male", "non-binary", "unknown"];
    (0..n)
        .map(|i| {
            let h = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 7;
            let gender = genders[((h >> 32) % 4) as usize];
            json!({
                "id": format!("pat_{i:026}"), "object": "patient",
                "fullName": format!("{} {} {}", first[(h % 12) as usize], last[((h >> 8) % 10) as usize], i),
                "address": {"line1": format!("{} High St", i % 300), "city": cities[((h >> 16) % 8) as usize], "postcode": "LS1 1AA", "country": "GBR"},
                "primaryPhoneNumber": "07700 900123", "emailAddress": format!("p{i}@example.com"),
                "age": (h >> 24) % 95, "gender": gender,
                "tracking": {"source": "google"}, "membershipStatus": "inactive", "metadata": {}, "livemode": false,
                "createdAt": "2026-11-25T00:00:00.000Z", "updatedAt": "2026-11-25T00:00:00.000Z", "version": 1
            })
        })
        .collect()
}

fn main() {
    let harness =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/feathers/harness.mjs");
    let res = by_path("patients").expect("patients");
    let sets = res.field_sets();
    let schema = QuerySchema {
        field_sets: &sets,
        search_fields: res.search_fields,
    };
    let q = query::parse(QS, &schema).expect("query");
    let feathers_query = json!({
        "address.city": {"$in": ["Leeds", "York"]}, "age": {"$gte": 30}, "gender": "female",
        "$sort": {"age": -1, "fullName": 1}, "$limit": 10
    });
    println!("query: {QS}\n");
    println!(
        "{:>8} {:>14} {:>14} {:>16} {:>8}",
        "patients", "hub q/s", "feathers q/s", "hub first (ms)", "ratio"
    );
    let mut per_doc = Vec::new();
    let mut results = Vec::new();
    for n in [10_000usize, 100_000] {
        let data = docs(n);
        let arcs: Vec<Arc<Value>> = data.iter().cloned().map(Arc::new).collect();
        let index = Index::new(arcs);
        // First query on a fresh snapshot builds the columns it needs.
        let t = Instant::now();
        let first = query::eval::run(&index, &q, &[]);
        let cold = t.elapsed().as_secs_f64() * 1e3;
        let hub_ids: Vec<String> = first
            .page
            .iter()
            .map(|d| d["id"].as_str().unwrap().to_string())
            .collect();
        let hub_total = first.total;
        let t = Instant::now();
        let mut runs = 0u64;
        while t.elapsed() < Duration::from_secs(2) {
            std::hint::black_box(query::eval::run(&index, &q, &[]).total);
            runs += 1;
        }
        let hub_qps = runs as f64 / t.elapsed().as_secs_f64();

        let mut child = Command::new("node")
            .arg(&harness)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("node");
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut ask = |msg: Value| -> Value {
            writeln!(stdin, "{msg}").unwrap();
            let mut line = String::new();
            stdout.read_line(&mut line).unwrap();
            serde_json::from_str(&line).expect("harness answer")
        };
        ask(json!({"docs": data}));
        let r = ask(json!({"bench": feathers_query, "seconds": 3}));
        let _ = child.kill();
        let _ = child.wait();
        let f_qps = r["perSecond"].as_f64().unwrap_or(0.0);
        let f_ids: Vec<String> = r["ids"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|v| v.as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(hub_ids, f_ids, "the engines disagree at {n}");
        assert_eq!(
            Some(hub_total as u64),
            r["total"].as_u64(),
            "totals disagree at {n}"
        );
        println!(
            "{n:>8} {hub_qps:>14.0} {f_qps:>14.1} {cold:>16.1} {:>7.1}×",
            hub_qps / f_qps
        );
        per_doc.push(1e9 / hub_qps / n as f64);
        results.push(json!({"patients": n, "hub_qps": hub_qps, "feathers_qps": f_qps, "ratio": hub_qps / f_qps, "hub_first_query_ms": cold, "matches": hub_total}));
    }
    let growth = per_doc[1] / per_doc[0];
    println!(
        "\ncost per document: {:.1} ns at 10k, {:.1} ns at 100k ({growth:.2}× — 1.0 is linear)",
        per_doc[0], per_doc[1]
    );
    let out = json!({"query": QS, "results": results, "per_document_ns": per_doc});
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/results");
    let _ = std::fs::create_dir_all(&path);
    let _ = std::fs::write(path.join("query.json"), format!("{out:#}\n"));
}
