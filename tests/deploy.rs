//! The deployment files stay in step with the route table: template.yaml
//! and functions/lambda are exactly what `hub generate` produces, every
//! reference in the template names something the template defines, and
//! every function's binary exists. (cfn-lint checks the rest; it runs in
//! scripts/test.sh.)

use std::collections::BTreeSet;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

const STALE: &str = "out of date: run `cargo run -p hub-functions --bin hub -- generate`";

#[test]
fn generated_files_match_the_route_table() {
    assert_eq!(
        read("template.yaml"),
        hub::deploy::sam_template(),
        "template.yaml is {STALE}"
    );
    assert_eq!(
        read("functions/lambda/Cargo.toml"),
        hub::deploy::cargo_toml(),
        "functions/lambda/Cargo.toml is {STALE}"
    );
    let wanted = hub::deploy::binaries();
    for (name, src) in &wanted {
        assert_eq!(
            &read(&format!("functions/lambda/src/bin/{name}.rs")),
            src,
            "{name}.rs is {STALE}"
        );
    }
    let present: BTreeSet<String> = std::fs::read_dir(root().join("functions/lambda/src/bin"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            e.path()
                .file_stem()
                .and_then(|s| s.to_str())
                .map(String::from)
        })
        .collect();
    let expected: BTreeSet<String> = wanted.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(
        present, expected,
        "functions/lambda/src/bin holds exactly one binary per function"
    );
    for (name, event) in hub::deploy::sample_events() {
        assert_eq!(
            read(&format!("events/{name}.json")),
            format!("{event:#}\n"),
            "events/{name}.json is {STALE}"
        );
        assert!(
            expected.contains(&name),
            "a sample for an unknown function {name}"
        );
    }
    assert_eq!(
        hub::deploy::sample_events().len(),
        expected.len(),
        "a sample event for every function"
    );
    for (name, event) in hub::deploy::sample_events_other_shapes() {
        assert_eq!(
            read(&format!("events/{name}.json")),
            format!("{event:#}\n"),
            "events/{name}.json is {STALE}"
        );
    }
}

#[test]
fn template_routes_are_the_route_table() {
    let t = read("template.yaml");
    let mut in_template = BTreeSet::new();
    let lines: Vec<&str> = t.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if let Some(method) = l.trim().strip_prefix("Method: ") {
            let path = lines[i + 1]
                .trim()
                .strip_prefix("Path: ")
                .expect("Path after Method");
            in_template.insert(format!("{method} {path}"));
        }
    }
    let table: BTreeSet<String> = hub::api::routes()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(in_template, table);
}

#[test]
fn every_reference_resolves_and_every_binary_exists() {
    let t = read("template.yaml");
    // Top-level names under Parameters: and Resources:.
    let mut defined: BTreeSet<String> = [
        "AWS::Region",
        "AWS::AccountId",
        "AWS::StackName",
        "AWS::Partition",
        "AWS::URLSuffix",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut section = "";
    for l in t.lines() {
        if !l.starts_with(' ') && l.ends_with(':') {
            section = l.trim_end_matches(':');
        } else if (section == "Parameters" || section == "Resources")
            && l.starts_with("  ")
            && !l.starts_with("   ")
            && l.trim_end().ends_with(':')
        {
            defined.insert(l.trim().trim_end_matches(':').to_string());
        }
    }
    let mut refs = Vec::new();
    for l in t.lines() {
        for (marker, split) in [("!Ref ", false), ("!GetAtt ", true)] {
            let mut rest = l;
            while let Some(i) = rest.find(marker) {
                let after = &rest[i + marker.len()..];
                let name: String = after
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == ':')
                    .collect();
                let name = if split {
                    name.split('.').next().unwrap_or_default().to_string()
                } else {
                    name
                };
                refs.push(name);
                rest = after;
            }
        }
        let mut rest = l;
        while let Some(i) = rest.find("${") {
            let after = &rest[i + 2..];
            let end = after.find('}').expect("closing brace");
            refs.push(after[..end].split('.').next().unwrap().to_string());
            rest = &after[end..];
        }
    }
    assert!(refs.len() > 80, "found {} references", refs.len());
    for r in &refs {
        assert!(
            defined.contains(r),
            "`{r}` is referenced but not defined in template.yaml"
        );
    }
    for l in t.lines() {
        if let Some(bin) = l.trim().strip_prefix("Binary: ") {
            let path = root().join(format!("functions/lambda/src/bin/{bin}.rs"));
            assert!(path.exists(), "function binary {bin} missing");
        }
    }
}
