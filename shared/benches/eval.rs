//! Micro-benchmark of list evaluation over an in-memory collection:
//! `cargo bench -p practice-hub --bench eval` (plain `main`, no harness).

use hub::query::{self, QuerySchema};
use hub::resources::by_path;
use hub::store::packed::Packed;
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

fn main() {
    let res = by_path("patients").expect("patients");
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
    let docs: Vec<Arc<serde_json::Value>> = (0..10_000)
        .map(|i| {
            Arc::new(json!({
                "id": format!("pat_{i:026}"), "object": "patient",
                "fullName": format!("Person {}", (i * 7919) % 10_000), "primaryPhoneNumber": "07700 900123",
                "emailAddress": format!("p{i}@example.com"), "age": 20 + i % 70, "gender": if i % 2 == 0 { "female" } else { "male" },
                "address": {"line1": "1 High St", "city": cities[(i * 7) % 8], "postcode": "LS1 1AA", "country": "GBR"},
                "tracking": {"source": "google"}, "metadata": {}, "livemode": false,
                "createdAt": "2026-11-25T00:00:00.000Z", "updatedAt": "2026-11-25T00:00:00.000Z", "version": 1
            }))
        })
        .collect();
    let packed: Vec<Packed> = docs.iter().map(|d| Packed::new(d)).collect();
    // A document's text and its parsed form, from each representation.
    let n = 20_000;
    let t = Instant::now();
    let mut bytes = 0;
    for d in docs.iter().cycle().take(n) {
        bytes += serde_json::to_vec(&**d).unwrap().len();
    }
    let value_text = t.elapsed().as_secs_f64() / n as f64 * 1e6;
    let t = Instant::now();
    for p in packed.iter().cycle().take(n) {
        bytes += p.to_json().len();
    }
    let packed_text = t.elapsed().as_secs_f64() / n as f64 * 1e6;
    let t = Instant::now();
    for p in packed.iter().cycle().take(n) {
        bytes += usize::from(p.to_value().is_object());
    }
    let packed_value = t.elapsed().as_secs_f64() / n as f64 * 1e6;
    println!(
        "text: {value_text:.2} µs from parsed, {packed_text:.2} µs from packed; parsed from packed {packed_value:.2} µs ({} B)",
        bytes / n / 2
    );
    let sets = res.field_sets();
    let schema = QuerySchema {
        field_sets: &sets,
        search_fields: res.search_fields,
    };
    for q in [
        "$limit=10",
        "gender=female&$limit=10",
        "address.city=Leeds&$limit=10",
        "$sort[fullName]=1&$limit=10",
        "address.city=Leeds&$sort[fullName]=1&$limit=10",
        "address.city[$in]=Leeds&address.city[$in]=York&age[$gte]=30&gender=female&$sort[age]=-1&$sort[fullName]=1&$limit=10",
    ] {
        let parsed = query::parse(q, &schema).expect("query");
        let n = 200;
        // The documents parsed (what the DynamoDB store reads) and packed
        // (what the embedded store's mirror keeps), each page written out
        // as JSON as a list answers it.
        let index = hub::query::index::Index::new(docs.clone());
        let t = Instant::now();
        let mut total = 0;
        for _ in 0..n {
            let r = query::eval::run(&index, &parsed, &[]);
            total += r.total;
            std::hint::black_box(serde_json::to_vec(&r.page).unwrap());
        }
        let parsed_per = t.elapsed().as_secs_f64() / n as f64 * 1e6;
        let index = hub::query::index::Index::new(packed.clone());
        let t = Instant::now();
        for _ in 0..n {
            let r = query::eval::run(&index, &parsed, &[]);
            // As `hub serve` writes a list out.
            let mut out = vec![b'['];
            for (i, p) in r.page.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                p.node().write_json(&mut out);
            }
            out.push(b']');
            std::hint::black_box(out);
        }
        let packed_per = t.elapsed().as_secs_f64() / n as f64 * 1e6;
        println!(
            "{parsed_per:>9.1} µs parsed {packed_per:>9.1} µs packed  ({} matches)  {q}",
            total / n
        );
    }
}
