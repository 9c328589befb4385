//! The crate's modules import one another without cycles: each file of
//! `src/` is a module, and a `crate::…` or `super::…` path in its code (not
//! its comments or its tests) is an edge to the module that path names. A
//! module's own ancestors are not counted (a parent declares its children,
//! and a child may use what its parent defines).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// `api/mod.rs` → `api`, `resources/api_keys.rs` → `resources::api_keys`.
fn module_of(rel: &Path) -> String {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|l| l == "mod") {
        parts.pop();
    }
    if parts == ["lib"] {
        return "crate".into();
    }
    parts.join("::")
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file: before its tests, without comment lines.
fn code(text: &str) -> String {
    let text = text
        .split("#[cfg(test)]\nmod tests")
        .next()
        .unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path after `prefix` (`crate::`): `a::b::C`, and each path of a
/// group `crate::{a::B, c}`.
fn paths_after(code: &str, prefix: &str) -> Vec<String> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().last();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            out.extend(
                group[..end]
                    .split(',')
                    .map(|p| p.trim().chars().take_while(|c| ident(*c)).collect()),
            );
        } else {
            out.push(rest.chars().take_while(|c| ident(*c)).collect());
        }
    }
    out
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let texts: BTreeMap<String, String> = all
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            (module_of(p.strip_prefix(&src).unwrap()), code(&text))
        })
        .collect();
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, text) in &texts {
        let parent = m.rsplit_once("::").map(|(p, _)| p.to_string());
        let mut refs = paths_after(text, "crate::");
        refs.extend(
            paths_after(text, "super::")
                .into_iter()
                .map(|r| match &parent {
                    Some(p) => format!("{p}::{r}"),
                    None => r,
                }),
        );
        let edges = g.entry(m.clone()).or_default();
        for r in refs {
            let parts: Vec<&str> = r.split("::").filter(|p| !p.is_empty()).collect();
            // The longest prefix that is a module of the crate.
            let Some(target) = (1..=parts.len())
                .rev()
                .map(|k| parts[..k].join("::"))
                .find(|c| texts.contains_key(c))
            else {
                continue;
            };
            let ancestor = m.starts_with(&format!("{target}::"));
            if target != *m && !ancestor {
                edges.insert(target);
            }
        }
    }
    g
}

/// A cycle through `from`, if there is one: the modules along it.
fn cycle_from(g: &BTreeMap<String, BTreeSet<String>>, from: &str) -> Option<Vec<String>> {
    let mut stack = vec![(from.to_string(), vec![from.to_string()])];
    let mut seen = BTreeSet::new();
    while let Some((m, path)) = stack.pop() {
        for next in g.get(&m).into_iter().flatten() {
            if next == from {
                let mut path = path.clone();
                path.push(from.to_string());
                return Some(path);
            }
            if seen.insert(next.clone()) {
                let mut p = path.clone();
                p.push(next.clone());
                stack.push((next.clone(), p));
            }
        }
    }
    None
}

#[test]
fn no_module_imports_itself_through_others() {
    let g = graph();
    assert!(g.len() > 40, "{} modules", g.len());
    // The edges this test exists for are seen (the parser works) …
    assert!(g["api"].contains("dashboard"), "{:?}", g["api"]);
    assert!(g["org"].contains("resources::api_keys"), "{:?}", g["org"]);
    assert!(g["aws::http"].contains("tls"), "{:?}", g["aws::http"]);
    assert!(g["webhooks::deliver"].contains("tls"));
    // … and none closes a cycle.
    let cycles: Vec<String> = g
        .keys()
        .filter_map(|m| cycle_from(&g, m))
        .map(|c| c.join(" → "))
        .collect();
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
    // The AWS adapters import no webhook code for their TLS.
    assert!(!g["aws::http"].iter().any(|m| m.starts_with("webhooks")));
}
