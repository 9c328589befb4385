//! The deployment files stay in step with the route table: template.yaml
//! and the sample events are exactly what `hub generate` produces, every
//! function runs the one binary with the same build settings (so `sam
//! build` builds it once) and names a function the binary knows, every
//! reference in the template names something the template defines. (cfn-lint checks the rest; it runs in
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
    let expected: BTreeSet<String> = hub::deploy::functions().into_iter().collect();
    assert!(
        !root().join("functions/lambda/src/bin").exists(),
        "no per-route binaries: every function runs functions/lambda/src/main.rs"
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
fn every_reference_resolves_and_the_binary_exists() {
    let t = read("template.yaml");
    // Top-level names under Parameters: and Resources:.
    let mut defined: BTreeSet<String> = [
        "AWS::Region",
        "AWS::AccountId",
        "AWS::StackName",
        "AWS::Partition",
        "AWS::URLSuffix",
        "AWS::NoValue",
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
    let manifest = read("functions/lambda/Cargo.toml");
    assert!(
        manifest.contains(&format!("name = \"{}\"", hub::deploy::BINARY)),
        "functions/lambda builds the binary the template names"
    );
}

/// Every function of the template: its logical id, its `Metadata` block
/// and the `HUB_FUNCTION` it sets.
fn template_functions(t: &str) -> Vec<(String, String, String)> {
    let lines: Vec<&str> = t.lines().collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if l.trim() != "Type: AWS::Serverless::Function" {
            continue;
        }
        let id = lines[i - 1].trim().trim_end_matches(':').to_string();
        let body: Vec<&str> = lines[i + 1..]
            .iter()
            .take_while(|l| l.starts_with("   ") || l.is_empty())
            .copied()
            .collect();
        let metadata: Vec<&str> = body
            .iter()
            .skip_while(|l| l.trim() != "Metadata:")
            .take_while(|l| l.trim() != "Properties:")
            .copied()
            .collect();
        let function = body
            .iter()
            .find_map(|l| l.trim().strip_prefix("HUB_FUNCTION: "))
            .unwrap_or_else(|| panic!("{id} sets no HUB_FUNCTION"))
            .to_string();
        out.push((id, metadata.join("\n"), function));
    }
    out
}

#[test]
fn one_build_for_every_function_and_each_names_a_known_function() {
    let t = read("template.yaml");
    let functions = template_functions(&t);
    assert_eq!(functions.len(), hub::deploy::functions().len());
    let first = &functions[0].1;
    assert!(
        first.contains(&format!("Binary: {}", hub::deploy::BINARY))
            && first.contains("BuildMethod: rust-cargolambda"),
        "{first}"
    );
    let mut named = BTreeSet::new();
    for (id, metadata, function) in &functions {
        assert_eq!(
            metadata, first,
            "{id}: the same build settings as every function (SAM builds them once)"
        );
        assert!(
            hub::lambda::function(Some(function)).is_ok(),
            "{id}: HUB_FUNCTION {function} is not a function of the binary"
        );
        assert!(named.insert(function.clone()), "{function} named twice");
    }
    let expected: BTreeSet<String> = hub::deploy::functions().into_iter().collect();
    assert_eq!(named, expected, "one function per route and worker");
    // Nothing per function that would split the build.
    for line in [
        "CodeUri: .",
        "Handler: bootstrap",
        "Runtime: provided.al2023",
    ] {
        assert_eq!(
            t.matches(line).count(),
            if line == "CodeUri: ." {
                functions.len()
            } else {
                1
            },
            "`{line}`: set once in Globals (or the same in every function)"
        );
    }
}

#[test]
fn an_unknown_or_missing_function_name_is_refused_with_a_clear_message() {
    use hub::lambda::{function, Function};
    assert_eq!(
        function(Some("patients-list")),
        Ok(Function::Http("patients-list"))
    );
    assert_eq!(function(Some("stream-fanout")), Ok(Function::Fanout));
    assert_eq!(function(Some("webhook-delivery")), Ok(Function::Delivery));
    assert_eq!(function(Some("purchase-expiry")), Ok(Function::Expiry));
    let e = function(Some("patients-lst")).unwrap_err();
    assert!(
        e.contains("HUB_FUNCTION=`patients-lst` names no function"),
        "{e}"
    );
    assert!(e.contains("did you mean `patients-list`?"), "{e}");
    let e = function(None).unwrap_err();
    assert!(e.contains("HUB_FUNCTION is not set"), "{e}");
    assert!(function(Some("")).is_err());
}

#[test]
fn only_the_routes_that_enqueue_may_send_to_the_queue() {
    use hub::deploy::{route_role, Role, QUEUE_ROUTES};
    let routes = hub::api::routes();
    for name in QUEUE_ROUTES {
        let r = routes
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("{name} is not a route"));
        assert_eq!(route_role(r), Role::WriteQueue, "{name}");
    }
    let queued = routes
        .iter()
        .filter(|r| route_role(r) == Role::WriteQueue)
        .count();
    assert_eq!(queued, QUEUE_ROUTES.len());
    // Every handler that sends to the queue itself is one of QUEUE_ROUTES.
    let mut uses = 0;
    for entry in std::fs::read_dir(root().join("shared/src/resources")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        uses += text.matches("need_queue(ctx)").count();
    }
    assert_eq!(
        uses,
        QUEUE_ROUTES.len(),
        "a handler enqueues that QUEUE_ROUTES does not name"
    );
    let keys = routes
        .iter()
        .filter(|r| route_role(r) == Role::Keys)
        .map(|r| r.name)
        .collect::<Vec<_>>();
    assert!(keys.iter().all(|n| n.starts_with("api-keys-")), "{keys:?}");
    assert!(keys.contains(&"api-keys-create") && keys.contains(&"api-keys-roll"));
}
