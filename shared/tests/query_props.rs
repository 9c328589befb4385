//! Property and adversarial tests of the query parser: whatever the input,
//! it answers Ok or a 400, never panics, and refuses oversized input before
//! doing work proportional to it.

use hub::error::ErrorKind;
use hub::query::{self, QuerySchema};
use hub::resources::by_path;
use proptest::prelude::*;

const TOKENS: &[&str] = &[
    "age",
    "fullName",
    "address.city",
    "address",
    "metadata.x",
    "tracking.source",
    "createdAt",
    "dob",
    "id",
    "$in",
    "$nin",
    "$lt",
    "$lte",
    "$gt",
    "$gte",
    "$ne",
    "$exists",
    "$or",
    "$and",
    "$sort",
    "$limit",
    "$skip",
    "$select",
    "$total",
    "$search",
    "$after",
    "$before",
    "text",
    "language",
    "caseSensitive",
    "[",
    "]",
    "[]",
    "[0]",
    "[1]",
    "[99999]",
    "=",
    "&",
    "%5B",
    "%5D",
    "%24",
    "%",
    "%ZZ",
    "%C3%A9",
    "+",
    "1",
    "-1",
    "0",
    "true",
    "false",
    "x",
    "Leeds",
    "\"",
    "-",
    "1479664146607",
    "2026-11-23T15:04:05Z",
    "99999999999999999999999",
    "é",
    "\u{0}",
    ".",
];

fn parse(raw: &str) -> Result<query::ListQuery, hub::error::ApiError> {
    let res = by_path("patients").expect("patients");
    let sets = res.field_sets();
    let schema = QuerySchema {
        field_sets: &sets,
        search_fields: res.search_fields,
    };
    query::parse(raw, &schema)
}

fn check(raw: &str) {
    match parse(raw) {
        Ok(q) => assert!(
            q.limit <= query::MAX_LIMIT,
            "limit {} from {raw:?}",
            q.limit
        ),
        Err(e) => assert_eq!(e.kind, ErrorKind::InvalidParameters, "{raw:?} → {e:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn token_soup_never_panics(parts in proptest::collection::vec(proptest::sample::select(TOKENS), 0..40)) {
        check(&parts.concat());
    }

    #[test]
    fn arbitrary_strings_never_panic(s in "\\PC{0,200}") {
        check(&s);
    }

    #[test]
    fn arbitrary_bytes_as_percent_escapes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
        let raw: String = bytes.iter().map(|b| format!("%{b:02X}")).collect();
        check(&format!("fullName={raw}"));
        check(&format!("{raw}=1"));
    }
}

#[test]
fn adversarial_inputs_are_refused_cheaply() {
    // Deep nesting, in plain fields and in $or.
    let deep = format!("a{}=1", "[b]".repeat(10_000));
    assert!(parse(&deep).is_err());
    let nested_or: String = (0..50).map(|_| "[$or][0]").collect();
    assert!(parse(&format!("$or[0]{nested_or}[age]=1")).is_err());
    // 100,000-element arrays, in each format.
    for fmt in ["age[$in][]=1", "age[$in]=1"] {
        let big = vec![fmt; 100_000].join("&");
        assert!(parse(&big).is_err(), "{fmt}");
    }
    let indexed: String = (0..100_000).map(|i| format!("age[$in][{i}]=1&")).collect();
    assert!(parse(&indexed).is_err());
    // Megabyte strings: as a value, as a key, as a search.
    let mb = "x".repeat(1 << 20);
    assert!(parse(&format!("fullName={mb}")).is_err());
    assert!(parse(&format!("{mb}=1")).is_err());
    assert!(parse(&format!("$search={mb}")).is_err());
    // Just under the size bound, many parameters: refused by count.
    let many = vec!["age=1"; 5_000].join("&");
    assert!(parse(&many).is_err());
    // Huge numbers.
    assert!(parse("$limit=99999999999999999999999999").is_err());
    assert!(parse("$skip=99999999999999999999").is_err());
    assert_eq!(parse("$limit=100000").unwrap().limit, 100);
}
