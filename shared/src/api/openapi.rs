//! OpenAPI 3.1, generated from the route table and the same declarations
//! that validate requests (resource fields, action bodies, response shapes),
//! so it cannot drift: every status a route can answer, every body and
//! response, read-only fields, enums, formats and bounds, and the headers
//! that matter (Idempotency-Key, If-Match, ETag, Link, RateLimit-*).

use super::routes::{routes, Op, Route};
use crate::error::ErrorKind;
use crate::resources::{Resource, Shape};
use crate::schema::{Field, Ty};
use serde_json::{json, Map, Value};
use std::sync::OnceLock;

/// What `domain::valid_phone` accepts: `+`, a first digit not 0 and 8 to
/// 15 digits in all, or 6 to 15 digits; spaces, `-`, `.` and brackets
/// between them; white space around.
pub const PHONE_PATTERN: &str = r"^\s*(?:\+[ ().-]*[1-9](?:[ ().-]*[0-9]){7,14}|[ ().-]*[0-9](?:[ ().-]*[0-9]){5,14})[ ().-]*\s*$";

/// What `ids::has_prefix` accepts: the prefix, `_`, 26 Crockford base32
/// characters (a time-ordered part).
pub fn id_pattern(prefix: &str) -> String {
    format!("^{prefix}_[0-9A-HJKMNP-TV-Z]{{26}}$")
}

/// Which way a schema is used: what a client sends, or what it gets.
#[derive(Clone, Copy, PartialEq)]
enum Dir {
    In,
    Out,
}

fn ty_schema(ty: &Ty, dir: Dir) -> Value {
    use crate::resources::validate::{MAX_JSON_BYTES, MAX_METADATA_KEYS, MAX_STR, MAX_TEXT};
    match ty {
        Ty::Str => json!({"type": "string", "maxLength": MAX_STR}),
        Ty::Text => json!({"type": "string", "maxLength": MAX_TEXT}),
        Ty::LongText(max) => {
            json!({"type": "string", "description": format!("At most {max} bytes.")})
        }
        Ty::Number { min, max } => json!({"type": "number", "minimum": min, "maximum": max}),
        Ty::Int { min, max } => {
            let mut s = json!({"type": "integer", "minimum": min});
            if *max != i64::MAX {
                s["maximum"] = json!(max);
            }
            s
        }
        Ty::Bool => json!({"type": "boolean"}),
        Ty::Timestamp if dir == Dir::In => json!({"anyOf": [
            {"type": "string", "format": "date-time"},
            {"type": "integer", "description": "Unix milliseconds (years 0001–9999)",
             "minimum": crate::time::MIN_MS, "maximum": crate::time::MAX_MS}
        ]}),
        Ty::Timestamp => json!({"type": "string", "format": "date-time"}),
        Ty::Date => {
            json!({"type": "string", "format": "date", "pattern": "^\\d{4}-\\d{2}-\\d{2}$"})
        }
        Ty::Email => json!({"type": "string", "format": "email", "maxLength": 254}),
        Ty::Phone => json!({"type": "string", "pattern": PHONE_PATTERN,
            "description": "E.164 (+447700900123) or national digits (07700 900123)",
            "examples": ["+447700900123"]}),
        Ty::Country => json!({"type": "string", "enum": crate::domain::countries::ALPHA3,
            "description": "ISO 3166-1 alpha-3"}),
        Ty::TimeZone => {
            json!({"type": "string", "description": "IANA time zone, e.g. Europe/London",
                "examples": ["Europe/London"]})
        }
        Ty::Currency => {
            json!({"type": "string", "enum": crate::domain::currencies::codes().collect::<Vec<_>>(),
            "description": "ISO 4217 currency code"})
        }
        Ty::LocalTime => {
            json!({"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$",
            "description": "Time of day, HH:MM (24-hour clock)", "examples": ["09:00"]})
        }
        Ty::Url => json!({"type": "string", "format": "uri", "maxLength": 2048}),
        Ty::Ref(target) => {
            let prefix = crate::resources::by_path(target)
                .map(|r| r.prefix)
                .unwrap_or("");
            json!({"type": "string", "pattern": id_pattern(prefix),
                "description": format!("The id of a {}", crate::resources::by_path(target).map_or(*target, |r| r.label))})
        }
        Ty::Enum(values) => json!({"type": "string", "enum": values}),
        Ty::Object(fields) => object_schema(&[fields], dir, false),
        Ty::Array(inner, max) => {
            // Items are validated as required values (a string not blank).
            let mut items = ty_schema(inner, dir);
            if dir == Dir::In {
                non_empty(inner, &mut items);
            }
            json!({"type": "array", "items": items, "maxItems": max})
        }
        Ty::Metadata => {
            json!({"type": "object", "maxProperties": MAX_METADATA_KEYS,
                "additionalProperties": {"type": "string", "maxLength": MAX_STR}})
        }
        Ty::Json => json!({"type": "object",
            "description": format!("Any JSON object (at most {MAX_JSON_BYTES} bytes).")}),
    }
}

/// A required text is refused when blank: at least one character that is
/// not white space.
fn non_empty(ty: &Ty, s: &mut Value) {
    if matches!(ty, Ty::Str | Ty::Text | Ty::LongText(_)) {
        s["minLength"] = json!(1);
        s["pattern"] = json!("\\S");
    }
}

/// An object of these fields. In: read-only fields left out, required ones
/// required (unless `patch`: then all optional, and optional ones nullable
/// to remove them). Out: everything, read-only marked; required are the
/// fields every stored object has.
fn object_schema(sets: &[&[Field]], dir: Dir, patch: bool) -> Value {
    let mut props = Map::new();
    let mut required = Vec::new();
    for f in sets.iter().flat_map(|s| s.iter()) {
        if dir == Dir::In && f.read_only {
            continue;
        }
        let mut s = ty_schema(&f.ty, dir);
        if dir == Dir::In && f.required {
            non_empty(&f.ty, &mut s);
        }
        if patch && !f.required {
            // `null` removes the field: one more alternative (a date
            // stays "RFC 3339, Unix milliseconds or null", not nested).
            match s.get_mut("anyOf").and_then(Value::as_array_mut) {
                Some(alts) => alts.push(json!({"type": "null"})),
                None => s = json!({"anyOf": [s, {"type": "null"}]}),
            }
        }
        s["description"] = json!(f.doc);
        if f.read_only {
            s["readOnly"] = json!(true);
        }
        props.insert(f.name.into(), s);
        if f.required && !patch && (dir == Dir::Out || !f.read_only) {
            required.push(f.name);
        }
    }
    let mut s = json!({"type": "object", "properties": props, "additionalProperties": false});
    if !required.is_empty() {
        s["required"] = json!(required);
    }
    s
}

/// The stored object: common fields (always present) and the resource's.
fn output_schema(r: &Resource, extra: &[Field]) -> Value {
    let mut s = object_schema(&[r.common, r.fields, extra], Dir::Out, false);
    let always: Vec<&str> = r
        .common
        .iter()
        .map(|f| f.name)
        .chain(r.fields.iter().filter(|f| f.required).map(|f| f.name))
        .collect();
    s["required"] = json!(always);
    s["description"] = json!(r.description);
    s
}

fn input_schema(r: &Resource, create: bool) -> Value {
    let mut s = object_schema(&[r.fields], Dir::In, !create);
    for g in r.groups {
        let mut name = json!({"type": "string", "maxLength": crate::resources::validate::MAX_STR,
            "description": format!("Name of the {} (case-insensitive); instead of `{}`.", g.target, g.id_field)});
        if !create {
            name = json!({"anyOf": [name, {"type": "null"}]});
        }
        s["properties"][g.name_field] = name;
    }
    if create && !r.groups.is_empty() {
        let all: Vec<Value> = r
            .groups
            .iter()
            .map(|g| json!({"oneOf": [{"required": [g.id_field]}, {"required": [g.name_field]}]}))
            .collect();
        s["allOf"] = json!(all);
        let req: Vec<Value> = s["required"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|f| !r.groups.iter().any(|g| f == g.id_field))
            .collect();
        s["required"] = json!(req);
    }
    s
}

fn schema_name(r: &Resource) -> String {
    upper_first(r.object)
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn json_content(schema: Value) -> Value {
    json!({"application/json": {"schema": schema}})
}

fn header_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/headers/{name}")})
}

/// What every route a key opens can answer with the error envelope (503:
/// DynamoDB throttling, failing or not answering through the retries).
const KEYED_ERRORS: [u16; 8] = [400, 401, 403, 413, 426, 429, 500, 503];

/// The error statuses a route can answer.
fn error_statuses(route: &Route) -> Vec<u16> {
    let mut s = KEYED_ERRORS.to_vec();
    if route.path.contains("{id}") {
        s.push(404);
    }
    match route.op {
        Op::Create | Op::Update | Op::Action(_) => s.push(415),
        _ => {}
    }
    let conflicts = match route.op {
        Op::Create | Op::Update | Op::Delete => true,
        // Any POST may meet its Idempotency-Key in use.
        Op::Action(_) => true,
        _ => false,
    };
    if conflicts {
        s.push(409);
    }
    if matches!(route.op, Op::Update | Op::Delete) {
        s.push(412);
    }
    s.sort_unstable();
    s
}

fn status_text(status: u16) -> &'static str {
    ErrorKind::ALL
        .iter()
        .find(|k| k.status() == status)
        .map(|k| k.name())
        .unwrap_or("error")
}

pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(build)
}

/// What a list or get answers: the object, or with `$select` a selection.
fn selectable(name: &str) -> Value {
    json!({"anyOf": [reference(name), reference("Selection")]})
}

fn build() -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    schemas.insert("Error".into(), json!({
        "type": "object", "required": ["name", "message", "eventId"], "additionalProperties": false,
        "properties": {
            "name": {"type": "string", "enum": ErrorKind::ALL.iter().map(|k| k.name()).collect::<Vec<_>>()},
            "message": {"type": "string", "description": "For a human."},
            "eventId": {"type": "string", "format": "uuid", "description": "Quote it to support: it is in this request's log line."},
            "errors": {"type": "array", "description": "Each invalid input.", "items": {
                "type": "object", "required": ["field", "message"], "additionalProperties": false,
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}}}}
        }
    }));
    schemas.insert(
        "Selection".into(),
        json!({
            "type": "object", "required": ["id"], "properties": {"id": {"type": "string"}},
            "description": "The fields `$select` named, and `id`."
        }),
    );
    for r in crate::resources::registry() {
        let name = schema_name(r);
        schemas.insert(name.clone(), output_schema(r, &[]));
        if !r.created_extra.is_empty() {
            schemas.insert(format!("{name}Created"), output_schema(r, r.created_extra));
        }
        if !r.read_only {
            let mut create = input_schema(r, true);
            let mut update = input_schema(r, false);
            if let Some(rules) = r.schema_rules {
                rules(&mut create, true);
                rules(&mut update, false);
            }
            schemas.insert(format!("{name}Create"), create);
            schemas.insert(format!("{name}Update"), update);
        }
        for a in r.actions {
            if let Shape::Object { name, fields } = &a.response {
                let mut s = object_schema(&[fields], Dir::Out, false);
                s["required"] = json!(["object"]);
                schemas.insert(name.to_string(), s);
            }
        }
    }
    for v in crate::resources::views() {
        let mut s = object_schema(&[v.item], Dir::Out, false);
        s["required"] = json!(v.item.iter().map(|f| f.name).collect::<Vec<_>>());
        schemas.insert(v.item_name.to_string(), s);
    }
    document_catalog(&mut schemas);
    crate::resources::api_keys::document(&mut schemas);
    schemas.insert("Organization".into(), json!({
        "type": "object", "description": "The organization a key belongs to, seen from the key's mode.",
        "required": ["id", "object", "name", "livemode", "createdAt", "updatedAt"], "additionalProperties": false,
        "properties": {
            "id": {"type": "string"}, "object": {"type": "string", "enum": ["organization"]}, "name": {"type": "string"},
            "livemode": {"type": "boolean", "description": "True for a live-mode key."},
            "createdAt": {"type": "string", "format": "date-time"}, "updatedAt": {"type": "string", "format": "date-time"}
        }
    }));
    for route in routes() {
        if route.op.is_static() {
            // Static files of the dashboard and the reference, not API operations.
            continue;
        }
        let op = operation(route);
        let entry = paths
            .entry(route.path.to_string())
            .or_insert_with(|| json!({}));
        entry[route.method.as_str().to_ascii_lowercase()] = op;
    }
    let rate_headers = json!({
        "Request-Id": {"description": "This request's id (also the `eventId` of an error).", "schema": {"type": "string"}},
        "RateLimit-Limit": {"description": "Requests per second this key may make (token bucket).", "schema": {"type": "integer"}},
        "RateLimit-Remaining": {"description": "Requests left in the bucket.", "schema": {"type": "integer"}},
        "RateLimit-Reset": {"description": "Seconds until the bucket is full again.", "schema": {"type": "integer"}},
        "Retry-After": {"description": "Seconds to wait before retrying (429; 503 when the database is throttling, failing or not answering).", "schema": {"type": "integer"}},
        "ETag": {"description": "The object's version, for `If-Match`.", "schema": {"type": "string"}},
        "Link": {"description": "RFC 8288 links to the next and previous pages (`rel=\"next\"`, `rel=\"prev\"`).", "schema": {"type": "string"}},
        "Idempotent-Replayed": {"description": "`true` when this is the stored response of an earlier request with the same Idempotency-Key.", "schema": {"type": "string", "enum": ["true"]}},
        "Idempotent-Omitted": {"description": "Fields of the first response that were shown once and are left out of this replay (e.g. `secret`).", "schema": {"type": "string"}},
    });
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Practice Hub API", "version": "1.0.0", "description": "REST API with signed webhooks for clinics and booking businesses."},
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "tags": tags(),
        "paths": paths,
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "description": "sk_test_…, pk_test_…, rk_test_…, sk_live_…, pk_live_…, rk_live_…"}},
            "schemas": schemas,
            "headers": rate_headers,
            "x-event-types": crate::resources::event_catalog(),
        }
    })
}

/// A FHIR interaction (crate::fhir): FHIR JSON in, OperationOutcome on errors.
fn fhir_operation(route: &Route, mut op: Value) -> Value {
    let fhir = |schema: Value| json!({"application/fhir+json": {"schema": schema}});
    let any = json!({"type": "object", "required": ["resourceType"]});
    op["tags"] = json!(["FHIR R4"]);
    match route.op {
        Op::FhirMetadata => {
            op["summary"] = json!("The FHIR CapabilityStatement (no key needed)");
            op["security"] = json!([]);
            op["responses"]["200"] =
                json!({"description": "CapabilityStatement", "content": fhir(any)});
            return op;
        }
        Op::FhirRead(t) => {
            op["summary"] = json!(format!("Read a FHIR {}", t.name));
            op["parameters"] = json!([{"name": "id", "in": "path", "required": true,
                "schema": {"type": "string", "maxLength": 1024},
                "description": "The FHIR id (our id with `-` for `_`; both forms are found)."}]);
            op["responses"]["200"] = json!({"description": t.name, "content": fhir(any.clone())});
        }
        Op::FhirSearch(t) => {
            op["summary"] = json!(format!("Search FHIR {} (a searchset Bundle)", t.name));
            let mut params: Vec<Value> = t
                .params
                .iter()
                .map(|(n, _, d)| json!({"name": n, "in": "query", "schema": {"type": "string"}, "description": d}))
                .collect();
            params.push(json!({"name": "_count", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}}));
            params.push(json!({"name": "_page", "in": "query", "schema": {"type": "string"}, "description": "The page a `next` link points at."}));
            op["parameters"] = json!(params);
            op["responses"]["200"] = json!({"description": "Bundle", "content": fhir(any.clone())});
        }
        _ => {}
    }
    for status in [400, 401, 403, 404, 429, 500, 503] {
        op["responses"][status.to_string()] =
            json!({"description": "OperationOutcome", "content": fhir(any.clone())});
    }
    op
}

/// The group an operation is listed under in the reference: its resource
/// (`Appointment types`), a view (`Availability`) or the service itself.
fn tag_of(route: &Route) -> String {
    match (route.resource, route.op) {
        (Some(r), _) => upper_first(&plural(r.label)),
        (None, Op::View(v)) => upper_first(v.path),
        (None, Op::Organization) => "Organization".into(),
        (None, Op::FhirMetadata | Op::FhirRead(_) | Op::FhirSearch(_)) => "FHIR R4".into(),
        _ => "Service".into(),
    }
}

fn plural(label: &str) -> String {
    if label.ends_with('s') {
        format!("{label}es")
    } else if let Some(stem) = label
        .strip_suffix('y')
        .filter(|s| !s.ends_with(['a', 'e', 'o']))
    {
        format!("{stem}ies")
    } else {
        format!("{label}s")
    }
}

/// Every tag, in route order, with what it is.
fn tags() -> Value {
    let mut out: Vec<Value> = Vec::new();
    for route in routes().iter().filter(|r| !r.op.is_static()) {
        let name = tag_of(route);
        if out.iter().any(|t| t["name"] == name.as_str()) {
            continue;
        }
        let description = match (route.resource, route.op) {
            (Some(r), _) => r.description,
            (None, Op::View(v)) => v.summary,
            (None, Op::Organization) => "The organization an API key belongs to.",
            (None, Op::FhirMetadata | Op::FhirRead(_) | Op::FhirSearch(_)) => {
                "A read-only FHIR R4 view of the same records (docs/fhir.md)."
            }
            _ => "Liveness and this document.",
        };
        out.push(json!({"name": name, "description": description}));
    }
    Value::Array(out)
}

fn operation(route: &Route) -> Value {
    let mut op = json!({"operationId": route.name, "tags": [tag_of(route)], "responses": {}});
    if let Op::View(v) = route.op {
        return view_operation(route, v, op);
    }
    if let Op::FhirMetadata | Op::FhirRead(_) | Op::FhirSearch(_) = route.op {
        return fhir_operation(route, op);
    }
    let Some(r) = route.resource else {
        match route.op {
            Op::Health => {
                op["summary"] = json!("Liveness check (no key needed)");
                op["security"] = json!([]);
                op["responses"]["200"] = json!({"description": "OK", "content": json_content(json!({
                    "type": "object", "required": ["status"], "additionalProperties": false,
                    "properties": {"status": {"type": "string", "enum": ["ok"]}}}))});
            }
            Op::Organization => {
                op["summary"] = json!("The organization of the key");
                op["description"] = json!("Secret keys, and restricted keys with the `organization` permission (`read`; `write` implies it). A publishable key, or a restricted key without it, gets 403.");
                let mut ok = json!({"description": "The organization", "content": json_content(reference("Organization"))});
                for h in [
                    "RateLimit-Limit",
                    "RateLimit-Remaining",
                    "RateLimit-Reset",
                    "Request-Id",
                ] {
                    ok["headers"][h] = header_ref(h);
                }
                op["responses"]["200"] = ok;
                error_responses(&mut op, &KEYED_ERRORS);
            }
            _ => {
                op["summary"] = json!("This document");
                op["security"] = json!([]);
                op["responses"]["200"] = json!({"description": "OpenAPI 3.1 document", "content": json_content(json!({"type": "object"}))});
            }
        }
        return op;
    };
    let name = schema_name(r);
    let mut params: Vec<Value> = Vec::new();
    if route.path.contains("{id}") {
        params.push(json!({"name": "id", "in": "path", "required": true,
            "schema": {"type": "string", "maxLength": 1024}, "description": format!("The {}'s id (`{}_…`).", r.label, r.prefix)}));
    }
    let object_headers =
        json!({"ETag": header_ref("ETag"), "Request-Id": header_ref("Request-Id")});
    let (status, body) = match route.op {
        Op::List => {
            op["summary"] = json!(format!("List {}", r.path));
            list_params(r, &mut params);
            op["description"] = json!(LIST_HELP);
            (200, list_response(&name))
        }
        Op::SubList(sub) => {
            let s = r.sublist(sub).map(|s| s.resource).unwrap_or(r);
            op["summary"] = json!(format!("List the {sub} of a {}", r.label));
            list_params(s, &mut params);
            (200, list_response(&schema_name(s)))
        }
        Op::Get => {
            op["summary"] = json!(format!("Retrieve a {}", r.label));
            params.push(select_param(r));
            (
                200,
                json!({"description": "The object", "headers": object_headers, "content": json_content(selectable(&name))}),
            )
        }
        Op::Create => {
            op["summary"] = json!(format!("Create a {}", r.label));
            op["requestBody"] = json!({"required": true, "content": json_content(reference(&format!("{name}Create")))});
            let out = if r.created_extra.is_empty() {
                name.clone()
            } else {
                format!("{name}Created")
            };
            let mut created = json!({"description": "The new object", "headers": object_headers, "content": json_content(reference(&out))});
            created["links"] = links_from_created(r);
            (201, created)
        }
        Op::Update => {
            op["summary"] = json!(format!(
                "Update a {} (JSON merge patch: `null` removes a field)",
                r.label
            ));
            op["requestBody"] = json!({"required": true, "content": json_content(reference(&format!("{name}Update")))});
            (
                200,
                json!({"description": "The object", "headers": object_headers, "content": json_content(reference(&name))}),
            )
        }
        Op::Delete => {
            op["summary"] = json!(format!("Delete a {}", r.label));
            (
                200,
                json!({"description": "The deleted object", "headers": object_headers, "content": json_content(reference(&name))}),
            )
        }
        Op::Action(a) => {
            let action = r.action(a).expect("declared action");
            op["summary"] = json!(action.summary);
            let mut body = object_schema(&[action.body], Dir::In, false);
            body["description"] = json!("May be empty or omitted when no field is needed.");
            op["requestBody"] = json!({"required": false, "content": json_content(body)});
            let schema = match &action.response {
                Shape::Own => reference(&name),
                Shape::Created => reference(&format!("{name}Created")),
                Shape::Event => reference("Event"),
                Shape::Object { name, .. } => reference(name),
            };
            (
                action.status,
                json!({"description": "Done", "content": json_content(schema)}),
            )
        }
        Op::Health
        | Op::OpenApi
        | Op::View(_)
        | Op::Organization
        | Op::Dashboard
        | Op::FhirMetadata
        | Op::FhirRead(_)
        | Op::FhirSearch(_)
        | Op::Docs
        | Op::Widget => unreachable_shape(),
    };
    if route.method == http::Method::POST {
        params.push(json!({"name": "Idempotency-Key", "in": "header", "required": false,
            "description": "Within 24 hours the same key with the same request returns the first response again (header `Idempotent-Replayed: true`) and writes nothing; with another request, or while the first runs: 409.",
            "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]+$"}}));
    }
    if matches!(route.op, Op::Update | Op::Delete) {
        params.push(json!({"name": "If-Match", "in": "header", "required": false,
            "description": "Write only if the object is at this version (an ETag such as `\"3\"`); else 412.",
            "schema": {"type": "string"}}));
    }
    let mut body = body;
    if route.method == http::Method::POST {
        body["headers"]["Idempotent-Replayed"] = header_ref("Idempotent-Replayed");
        body["headers"]["Idempotent-Omitted"] = header_ref("Idempotent-Omitted");
    }
    for h in [
        "RateLimit-Limit",
        "RateLimit-Remaining",
        "RateLimit-Reset",
        "Request-Id",
    ] {
        body["headers"][h] = header_ref(h);
    }
    op["responses"][status.to_string()] = body;
    error_responses(&mut op, &error_statuses(route));
    if !params.is_empty() {
        op["parameters"] = json!(params);
    }
    op
}

/// OpenAPI links from a create's response to every route of the new
/// object (clients and stateful testers follow them).
fn links_from_created(r: &Resource) -> Value {
    let mut links = Map::new();
    for route in routes() {
        let same = route.resource.is_some_and(|x| std::ptr::eq(x, r));
        if same && route.path.contains("{id}") {
            links.insert(
                upper_first(&route.name.replace('-', "_")),
                json!({"operationId": route.name, "parameters": {"id": "$response.body#/id"}}),
            );
        }
    }
    Value::Object(links)
}

/// Every value `enabledEvents` accepts, exactly what the endpoint's rules
/// accept: `*`, each `resource.*`, then each catalog type.
pub fn subscription_patterns() -> Vec<String> {
    let catalog = crate::resources::event_catalog();
    let mut out = vec!["*".to_string()];
    for t in catalog {
        let wildcard = format!("{}.*", t.split('.').next().unwrap_or_default());
        if !out.contains(&wildcard) {
            out.push(wildcard);
        }
    }
    out.extend(catalog.iter().cloned());
    out
}

/// The event catalog in the document, for clients that build an event
/// picker (the dashboard): `enabledEvents` items list every accepted
/// pattern, and an event's `type` every type it can have.
fn document_catalog(schemas: &mut Map<String, Value>) {
    let patterns = json!(subscription_patterns());
    for name in [
        "WebhookEndpoint",
        "WebhookEndpointCreated",
        "WebhookEndpointCreate",
        "WebhookEndpointUpdate",
    ] {
        if let Some(items) = schemas
            .get_mut(name)
            .and_then(|s| s.pointer_mut("/properties/enabledEvents/items"))
        {
            items["enum"] = patterns.clone();
        }
        if let Some(items) = schemas
            .get_mut(name)
            .and_then(|s| s.pointer_mut("/properties/enabledEvents/anyOf/0/items"))
        {
            items["enum"] = patterns.clone();
        }
    }
    let mut types = crate::resources::event_catalog().to_vec();
    types.push(crate::webhooks::TEST_EVENT.into());
    if let Some(t) = schemas
        .get_mut("Event")
        .and_then(|s| s.pointer_mut("/properties/type"))
    {
        t["enum"] = json!(types);
    }
}

fn view_operation(route: &Route, v: &crate::resources::View, mut op: Value) -> Value {
    op["summary"] = json!(v.summary);
    op["description"] = json!(v.description);
    let params: Vec<Value> = v
        .params
        .iter()
        .map(|f| {
            let mut schema = ty_schema(&f.ty, Dir::In);
            if matches!(f.ty, Ty::Timestamp) {
                schema = json!({"type": "string", "description": "RFC 3339 or Unix milliseconds"});
            }
            json!({"name": f.name, "in": "query", "required": f.required, "schema": schema, "description": f.doc})
        })
        .collect();
    let mut params = params;
    params.extend([
        json!({"name": "$limit", "in": "query", "schema": {"type": "integer", "minimum": 0},
            "description": "Items per page (default 10, at most 100; more is clamped)."}),
        json!({"name": "$after", "in": "query", "schema": {"type": "string"},
            "description": "A `next` cursor: the page after it (same other parameters)."}),
        json!({"name": "$before", "in": "query", "schema": {"type": "string"},
            "description": "A `prev` cursor: the page before it (same other parameters)."}),
    ]);
    op["parameters"] = json!(params);
    let mut ok = json!({"description": "A page of the items", "headers": {"Link": header_ref("Link")},
        "content": json_content(json!({
        "type": "object", "required": ["object", "data", "limit", "next", "prev"], "additionalProperties": false,
        "properties": {
            "object": {"type": "string", "enum": ["list"]},
            "data": {"type": "array", "items": reference(v.item_name)},
            "limit": {"type": "integer", "minimum": 0, "maximum": crate::query::MAX_LIMIT},
            "next": {"type": ["string", "null"], "description": "Cursor of the next page (`$after`)."},
            "prev": {"type": ["string", "null"], "description": "Cursor of the previous page (`$before`)."}
        }
    }))});
    for h in [
        "RateLimit-Limit",
        "RateLimit-Remaining",
        "RateLimit-Reset",
        "Request-Id",
    ] {
        ok["headers"][h] = header_ref(h);
    }
    op["responses"]["200"] = ok;
    error_responses(&mut op, &error_statuses(route));
    op
}

/// The error envelope for each of these statuses (with `Retry-After` on
/// 429 and the current `ETag` on 412).
fn error_responses(op: &mut Value, statuses: &[u16]) {
    for s in statuses {
        let mut e = json!({"description": status_text(*s), "content": json_content(reference("Error")),
            "headers": {"Request-Id": header_ref("Request-Id")}});
        if *s == 429 || *s == 503 {
            e["headers"]["Retry-After"] = header_ref("Retry-After");
        }
        if *s == 412 {
            e["headers"]["ETag"] = header_ref("ETag");
        }
        op["responses"][s.to_string()] = e;
    }
}

fn unreachable_shape() -> (u16, Value) {
    (200, json!({"description": "OK"}))
}

const LIST_HELP: &str = "Filter with the Feathers query syntax: `field=value`, `field[$in]=a&field[$in]=b`, `$nin`, `$lt`, `$lte`, `$gt`, `$gte`, `$ne`, `$exists`, `$or[0][field]=v`, `$and`, dotted paths (`address.city=Leeds`); `$search` for words in text fields. Page with `$limit` (default 10, at most 100), `$skip`, or the `next`/`prev` cursors (`$after`, `$before`). Consistency when deployed on DynamoDB: creation-order pages, equality on a reference or lookup field (an object's own children: `invoiceId=…`, `patientId=…`), `$search`, the directory (`$sort[fullName]`, `$sort[name]`) and totals read strongly consistent items and show every earlier write; lists ordered or ranged by `updatedAt`, and date-ordered lists without an equality, come from global secondary indexes, which may lag writes (usually well under a second). On `hub serve` every list shows every earlier write.";

fn list_response(name: &str) -> Value {
    json!({"description": "A page", "headers": {"Link": header_ref("Link")}, "content": json_content(json!({
        "type": "object", "required": ["object", "data", "skip", "limit", "next", "prev"], "additionalProperties": false,
        "properties": {
            "object": {"type": "string", "enum": ["list"]},
            "data": {"type": "array", "items": selectable(name)},
            "total": {"type": "integer", "minimum": 0, "description": "With `$total=true` or `$limit=0`."},
            "skip": {"type": "integer", "minimum": 0},
            "limit": {"type": "integer", "minimum": 0, "maximum": crate::query::MAX_LIMIT},
            "next": {"type": ["string", "null"], "description": "Cursor of the next page (`$after`)."},
            "prev": {"type": ["string", "null"], "description": "Cursor of the previous page (`$before`)."}
        }
    }))})
}

fn select_param(r: &Resource) -> Value {
    let names: Vec<&str> = r
        .common
        .iter()
        .chain(r.fields.iter())
        .map(|f| f.name)
        .collect();
    json!({"name": "$select[]", "in": "query", "required": false, "explode": true,
        "description": "Only these top-level fields (and `id`).",
        "schema": {"type": "array", "items": {"type": "string", "enum": names}}})
}

fn list_params(r: &Resource, params: &mut Vec<Value>) {
    params.extend([
        json!({"name": "$limit", "in": "query", "schema": {"type": "integer", "minimum": 0, "default": 10}, "description": "Page size (at most 100 are returned); 0 counts only."}),
        json!({"name": "$skip", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": crate::query::MAX_SKIP}}),
        json!({"name": "$total", "in": "query", "schema": {"type": "boolean"}}),
        json!({"name": "$sort", "in": "query", "style": "deepObject", "explode": true,
            "schema": {"type": "object", "additionalProperties": {"type": "integer", "enum": [1, -1]}},
            "description": "`$sort[field]=1` ascending, `-1` descending; several keys in order."}),
        json!({"name": "$after", "in": "query", "schema": {"type": "string"}, "description": "A `next` cursor."}),
        json!({"name": "$before", "in": "query", "schema": {"type": "string"}, "description": "A `prev` cursor."}),
    ]);
    params.push(select_param(r));
    if !r.search_fields.is_empty() {
        params.push(json!({"name": "$search", "in": "query", "schema": {"type": "string"},
            "description": format!("Words (stems), \"quoted phrases\", -exclusions in {}.", r.search_fields.join(", "))}));
    }
    // Equality filters on the scalar fields (operators take `field[$op]`).
    for f in r.common.iter().chain(r.fields.iter()) {
        let schema = match &f.ty {
            Ty::Str
            | Ty::Text
            | Ty::LongText(_)
            | Ty::Email
            | Ty::Phone
            | Ty::TimeZone
            | Ty::Url
            | Ty::Country
            | Ty::Currency
            | Ty::LocalTime => {
                json!({"type": "string"})
            }
            Ty::Ref(_) => json!({"type": "string"}),
            Ty::Int { .. } => json!({"type": "integer"}),
            Ty::Number { .. } => json!({"type": "number"}),
            Ty::Bool => json!({"type": "boolean"}),
            Ty::Enum(values) => json!({"type": "string", "enum": values}),
            Ty::Timestamp => {
                json!({"type": "string", "description": "RFC 3339 or Unix milliseconds"})
            }
            Ty::Date => json!({"type": "string", "format": "date"}),
            _ => continue,
        };
        if f.name == "object" {
            continue;
        }
        params.push(
            json!({"name": f.name, "in": "query", "required": false, "schema": schema,
            "description": format!("Only objects whose `{}` equals this.", f.name)}),
        );
    }
}

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$ref` in the document resolves.
    #[test]
    fn references_resolve() {
        let doc = document();
        fn walk(v: &Value, doc: &Value) {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(r)) = m.get("$ref") {
                        let path = r.trim_start_matches("#/");
                        let mut cur = doc;
                        for seg in path.split('/') {
                            cur = &cur[seg];
                        }
                        assert!(!cur.is_null(), "unresolved {r}");
                    }
                    m.values().for_each(|v| walk(v, doc));
                }
                Value::Array(a) => a.iter().for_each(|v| walk(v, doc)),
                _ => {}
            }
        }
        walk(doc, doc);
    }

    #[test]
    fn subscription_patterns_are_exactly_the_valid_ones() {
        let catalog = crate::resources::event_catalog();
        let patterns = subscription_patterns();
        assert!(patterns
            .iter()
            .all(|p| crate::webhooks::valid_pattern(catalog, p)));
        assert!(patterns.contains(&"patient.*".to_string()));
        assert!(!patterns.contains(&crate::webhooks::TEST_EVENT.to_string()));
    }

    /// Every route is documented with its success status and its errors.
    #[test]
    fn every_route_is_documented() {
        let doc = document();
        for r in routes().iter().filter(|r| !r.op.is_static()) {
            let op = &doc["paths"][r.path][r.method.as_str().to_ascii_lowercase()];
            assert!(op.is_object(), "{} {}", r.method, r.path);
            if r.access().is_some() {
                for s in ["400", "401", "403", "429", "500"] {
                    assert!(op["responses"][s].is_object(), "{} lacks {s}", r.name);
                }
            }
        }
    }
}
