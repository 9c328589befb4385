//! The OpenAPI document is exact enough to build on: for every create route,
//! a body built from the published schema alone is accepted (201).
//!
//! The body holds the required fields only, each from its schema: the first
//! value of an `enum` (or the `const`), the `examples`' first value, else a
//! value of the `format` (`date-time`: a fixed instant; `date`, `email`,
//! `uri`), else the `minimum` rounded up to the `multipleOf`, `false`, the
//! shortest string the `minLength` allows; an array gets `minItems` items
//! (at least one); an object its required properties; of a `oneOf` of
//! required-field alternatives (`referralId` or `referralName`) the first;
//! an `if`/`then`/`else` adds what its branch requires and narrows the
//! properties it names (a membership gets `durationDays`, an SMS an E.164
//! number), and each value of the property it looks at is tried in turn
//! (every type of package, both channels of a message). An id field
//! (pattern `^pre_…`) is the one thing the schema cannot give: it gets the
//! id of an object of the sandbox with that prefix (the objects listed by
//! each list route), preferring one that an object already chosen for the
//! body refers to (the clinic of the practitioner chosen before it) — see
//! `pick`.

use hub_tests::*;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A fixed instant for `date-time` fields: a Monday in the future, when
/// the sandbox's practitioners are free.
const INSTANT: &str = "2031-03-03T10:00:00.000Z";

struct Builder<'a> {
    doc: &'a Value,
    /// Sandbox objects by id prefix, in list order.
    objects: &'a BTreeMap<String, Vec<Value>>,
    /// A value chosen for a discriminating property instead of its first
    /// enum value (each branch of an `if`/`then` is tried).
    choice: Option<(&'a str, &'a Value)>,
}

impl Builder<'_> {
    fn resolve<'b>(&'b self, s: &'b Value) -> &'b Value {
        match s.get("$ref").and_then(Value::as_str) {
            Some(r) => self.resolve(self.doc.pointer(r.trim_start_matches('#')).expect(r)),
            None => s,
        }
    }

    /// A value of schema `s`; `body` is the object being built (for ids).
    fn value(&self, s: &Value, body: &Map<String, Value>) -> Value {
        let s = self.resolve(s);
        if let Some(c) = s.get("const") {
            return c.clone();
        }
        if let Some(first) = s.get("enum").and_then(|e| e.get(0)) {
            return first.clone();
        }
        if let Some(first) = s.get("examples").and_then(|e| e.get(0)) {
            return first.clone();
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(branches) = s.get(key).and_then(Value::as_array) {
                let first = branches
                    .iter()
                    .find(|b| b.get("type") != Some(&json!("null")))
                    .expect("a non-null branch");
                return self.value(first, body);
            }
        }
        match s["type"].as_str() {
            Some("object") => Value::Object(self.object(s)),
            Some("array") => {
                let n = s["minItems"].as_u64().unwrap_or(1).max(1);
                (0..n).map(|_| self.value(&s["items"], body)).collect()
            }
            Some("integer") | Some("number") => {
                let min = s["minimum"].as_i64().unwrap_or(0);
                match s["multipleOf"].as_i64() {
                    Some(m) => json!((min + m - 1).div_euclid(m) * m),
                    None => json!(min),
                }
            }
            Some("boolean") => json!(false),
            Some("string") => self.string(s, body),
            other => panic!("no value for a schema of type {other:?}: {s}"),
        }
    }

    fn string(&self, s: &Value, body: &Map<String, Value>) -> Value {
        match s["format"].as_str() {
            Some("date-time") => return json!(INSTANT),
            Some("date") => return json!("2000-01-01"),
            Some("email") => return json!("integrator@example.com"),
            Some("uri") => return json!("http://127.0.0.1:9/hook"),
            _ => {}
        }
        let pattern = s["pattern"].as_str().unwrap_or_default();
        if let Some(prefix) = pattern
            .strip_prefix('^')
            .and_then(|p| p.split_once('_'))
            .map(|(p, _)| p)
            .filter(|p| p.bytes().all(|b| b.is_ascii_lowercase()))
        {
            return json!(self.pick(prefix, body));
        }
        let n = s["minLength"].as_u64().unwrap_or(1).max(1) as usize;
        json!("x".repeat(n))
    }

    /// The id of a sandbox object with this prefix: one that an object
    /// already chosen for this body refers to (its `clinicIds`), else the
    /// first listed.
    fn pick(&self, prefix: &str, body: &Map<String, Value>) -> String {
        let candidates = self
            .objects
            .get(prefix)
            .unwrap_or_else(|| panic!("the sandbox has no `{prefix}_` object"));
        let chosen: Vec<&Value> = body
            .values()
            .filter_map(Value::as_str)
            .filter_map(|id| self.objects.values().flatten().find(|o| o["id"] == id))
            .collect();
        let referred = candidates.iter().find(|c| {
            chosen.iter().any(|o| {
                o.as_object().into_iter().flatten().any(|(_, v)| {
                    *v == c["id"] || v.as_array().is_some_and(|a| a.contains(&c["id"]))
                })
            })
        });
        referred.unwrap_or(&candidates[0])["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The required properties of an object schema, with its `allOf`
    /// alternatives and conditions.
    fn object(&self, s: &Value) -> Map<String, Value> {
        let s = self.resolve(s);
        let mut props = s["properties"].as_object().cloned().unwrap_or_default();
        let mut required: Vec<String> = names(&s["required"]);
        for part in s["allOf"].as_array().into_iter().flatten() {
            if let Some(alts) = part["oneOf"].as_array() {
                required.extend(names(&alts[0]["required"]));
            }
        }
        let mut body = Map::new();
        for name in &required {
            let v = match self.choice {
                Some((k, v)) if k == name => v.clone(),
                _ => self.value(&props[name.as_str()], &body),
            };
            body.insert(name.clone(), v);
        }
        // Conditions, against the body so far: the branch that applies adds
        // its required fields and narrows its properties.
        for part in s["allOf"].as_array().into_iter().flatten() {
            let Some(cond) = part.get("if") else { continue };
            let holds = cond["properties"]
                .as_object()
                .into_iter()
                .flatten()
                .all(|(k, c)| body.get(k) == c.get("const"));
            let branch = if holds { &part["then"] } else { &part["else"] };
            for (k, narrow) in branch["properties"].as_object().into_iter().flatten() {
                if let (Some(Value::Object(base)), Value::Object(n)) = (props.get_mut(k), narrow) {
                    base.extend(n.clone());
                }
            }
            for name in names(&branch["required"]) {
                if !required.contains(&name) {
                    required.push(name);
                }
            }
            // Again with the narrowed properties (not the one looked at).
            for name in &required {
                if cond["properties"].get(name.as_str()).is_some() {
                    continue;
                }
                let v = self.value(&props[name.as_str()], &body);
                body.insert(name.clone(), v);
            }
        }
        body
    }
}

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(String::from)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_built_from_the_schema_alone_is_accepted_by_every_create_route() {
    let s = TestServer::start().await;
    let org = s.org("Schema", false).await;
    let key = org.test.secret.as_str();
    let doc = s.http.get("/openapi.json", key).await;
    doc.expect(200);
    let doc = &doc.body;

    // The sandbox's objects, by id prefix, from every list route.
    let mut objects: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if path.contains('{') || item.get("get").is_none() || !path.starts_with("/v1/") {
            continue;
        }
        let r = s.http.get(&format!("{path}?$limit=100"), key).await;
        for o in r.body["data"].as_array().into_iter().flatten() {
            if let Some((prefix, _)) = o["id"].as_str().and_then(|id| id.split_once('_')) {
                objects.entry(prefix.into()).or_default().push(o.clone());
            }
        }
    }

    let mut creates = 0;
    let mut refused = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let Some(op) = item.get("post").filter(|_| !path.contains('{')) else {
            continue;
        };
        let schema = &op["requestBody"]["content"]["application/json"]["schema"];
        let plain = Builder {
            doc,
            objects: &objects,
            choice: None,
        };
        let resolved = plain.resolve(schema).clone();
        // The first enum value, and then each value of a property an
        // `if` looks at (every type of package, both channels of a message).
        let mut choices: Vec<(String, Value)> = Vec::new();
        for part in resolved["allOf"].as_array().into_iter().flatten() {
            for k in part["if"]["properties"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, _)| k)
            {
                for v in resolved["properties"][k]["enum"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    if !choices.contains(&(k.clone(), v.clone())) {
                        choices.push((k.clone(), v.clone()));
                    }
                }
            }
        }
        let mut builders = vec![plain];
        builders.extend(choices.iter().map(|(k, v)| Builder {
            doc,
            objects: &objects,
            choice: Some((k.as_str(), v)),
        }));
        for b in builders {
            let body = Value::Object(b.object(schema));
            let r = s.http.post(path, key, &body).await;
            creates += 1;
            if r.status != 201 {
                refused.push(format!("POST {path} {body}\n  → {} {}", r.status, r.body));
            }
        }
    }
    assert!(creates >= 15, "only {creates} create routes found");
    assert!(
        refused.is_empty(),
        "bodies built from the schema were refused:\n{}",
        refused.join("\n")
    );
}
