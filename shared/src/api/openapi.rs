//! OpenAPI 3.1, generated from the route table and the resource schemas.

use super::routes::{routes, Op};
use crate::error::ErrorKind;
use crate::resources::Resource;
use crate::schema::{Field, Ty, COMMON};
use serde_json::{json, Map, Value};
use std::sync::OnceLock;

fn ty_schema(ty: &Ty) -> Value {
    match ty {
        Ty::Str => json!({"type": "string", "maxLength": crate::resources::validate::MAX_STR}),
        Ty::Text => json!({"type": "string", "maxLength": crate::resources::validate::MAX_TEXT}),
        Ty::Int { min, max } => {
            let mut s = json!({"type": "integer", "minimum": min});
            if *max != i64::MAX {
                s["maximum"] = json!(max);
            }
            s
        }
        Ty::Bool => json!({"type": "boolean"}),
        Ty::Timestamp => json!({"type": "string", "format": "date-time"}),
        Ty::Date => {
            json!({"type": "string", "format": "date", "pattern": "^\\d{4}-\\d{2}-\\d{2}$"})
        }
        Ty::Email => json!({"type": "string", "format": "email"}),
        Ty::Phone => json!({"type": "string", "description": "E.164 or national digits"}),
        Ty::Country => {
            json!({"type": "string", "pattern": "^[A-Z]{3}$", "description": "ISO 3166-1 alpha-3"})
        }
        Ty::TimeZone => json!({"type": "string", "description": "IANA time zone"}),
        Ty::Url => json!({"type": "string", "format": "uri", "maxLength": 2048}),
        Ty::Ref(target) => {
            let prefix = crate::resources::by_path(target)
                .map(|r| r.prefix)
                .unwrap_or("");
            json!({"type": "string", "pattern": format!("^{prefix}_[0-9A-Z]{{26}}$")})
        }
        Ty::Enum(values) => json!({"type": "string", "enum": values}),
        Ty::Object(fields) => object_schema(&[fields], false),
        Ty::Array(inner, max) => {
            json!({"type": "array", "items": ty_schema(inner), "maxItems": max})
        }
        Ty::Metadata => {
            json!({"type": "object", "maxProperties": crate::resources::validate::MAX_METADATA_KEYS, "additionalProperties": {"type": "string"}})
        }
        Ty::Json => json!({"type": "object"}),
    }
}

fn object_schema(sets: &[&[Field]], input: bool) -> Value {
    let mut props = Map::new();
    let mut required = Vec::new();
    for f in sets.iter().flat_map(|s| s.iter()) {
        if input && f.read_only {
            continue;
        }
        let mut s = ty_schema(&f.ty);
        s["description"] = json!(f.doc);
        if f.read_only {
            s["readOnly"] = json!(true);
        }
        props.insert(f.name.into(), s);
        if f.required && (input || !f.read_only) {
            required.push(f.name);
        }
    }
    let mut s = json!({"type": "object", "properties": props, "additionalProperties": false});
    if !required.is_empty() {
        s["required"] = json!(required);
    }
    s
}

fn input_schema(r: &Resource, create: bool) -> Value {
    let mut s = object_schema(&[r.fields], true);
    for g in r.groups {
        s["properties"][g.name_field] = json!({"type": "string", "description": format!("Name of the {} (case-insensitive); instead of `{}`.", g.target, g.id_field)});
    }
    if !create {
        s.as_object_mut().map(|m| m.remove("required"));
    } else if !r.groups.is_empty() {
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

fn error_ref() -> Value {
    json!({"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(build)
}

fn build() -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    schemas.insert("Error".into(), json!({
        "type": "object", "required": ["name", "message", "eventId"],
        "properties": {
            "name": {"type": "string", "enum": ErrorKind::ALL.iter().map(|k| k.name()).collect::<Vec<_>>()},
            "message": {"type": "string"},
            "eventId": {"type": "string", "format": "uuid"},
            "errors": {"type": "array", "items": {"type": "object", "properties": {"field": {"type": "string"}, "message": {"type": "string"}}}}
        }
    }));
    for r in crate::resources::registry() {
        let name = upper_first(r.object);
        let mut s = object_schema(&[COMMON, r.fields], false);
        s["description"] = json!(r.description);
        schemas.insert(name.clone(), s);
        schemas.insert(format!("{name}Create"), input_schema(r, true));
        schemas.insert(format!("{name}Update"), input_schema(r, false));
    }
    crate::webhooks::document_catalog(&mut schemas);
    schemas.insert("Organization".into(), json!({
        "type": "object", "description": "The organization a key belongs to, seen from the key's mode.",
        "properties": {
            "id": {"type": "string"}, "object": {"const": "organization"}, "name": {"type": "string"},
            "livemode": {"type": "boolean", "description": "True for a live-mode key."},
            "createdAt": {"type": "string", "format": "date-time"}, "updatedAt": {"type": "string", "format": "date-time"}
        }
    }));
    for route in routes() {
        if route.op == Op::Dashboard {
            // Static files of the dashboard (HTML), not an API operation.
            continue;
        }
        let mut op = json!({"operationId": route.name, "responses": {}});
        let item_ref = route
            .resource
            .map(|r| json!({"$ref": format!("#/components/schemas/{}", upper_first(r.object))}));
        match route.op {
            Op::Health => {
                op["summary"] = json!("Liveness check (no key needed)");
                op["security"] = json!([]);
                op["responses"]["200"] = json!({"description": "OK"});
            }
            Op::OpenApi => {
                op["summary"] = json!("This document");
                op["security"] = json!([]);
                op["responses"]["200"] = json!({"description": "OpenAPI 3.1 document"});
            }
            Op::Organization => {
                op["summary"] = json!("The organization of the key (secret or restricted keys)");
                op["responses"]["200"] = json!({"description": "The organization", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Organization"}}}});
                op["responses"]["default"] = error_ref();
            }
            Op::Dashboard => {}
            Op::List => {
                op["summary"] = json!(format!("List {}", route.resource.map_or("", |r| r.path)));
                op["parameters"] = json!([
                    {"name": "$limit", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 100, "default": 10}},
                    {"name": "$skip", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                    {"name": "$total", "in": "query", "schema": {"type": "boolean"}},
                    {"name": "$sort", "in": "query", "style": "deepObject", "schema": {"type": "object", "additionalProperties": {"type": "integer", "enum": [1, -1]}}},
                    {"name": "$select", "in": "query", "schema": {"type": "array", "items": {"type": "string"}}},
                ]);
                op["description"] = json!("Filter with the Feathers query syntax: `field=value`, `field[$in]=a&field[$in]=b`, `$nin`, `$lt`, `$lte`, `$gt`, `$gte`, `$ne`, `$exists`, `$or[0][field]=v`, `$and`, dotted paths (`address.city=Leeds`).");
                op["responses"]["200"] = json!({"description": "A page", "content": {"application/json": {"schema": {
                    "type": "object", "required": ["data", "skip", "limit"],
                    "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": item_ref}, "total": {"type": "integer"}, "skip": {"type": "integer"}, "limit": {"type": "integer"}}
                }}}});
            }
            Op::Create | Op::Update => {
                let r = route.resource.expect("resource route");
                let suffix = if route.op == Op::Create {
                    "Create"
                } else {
                    "Update"
                };
                op["summary"] = json!(format!(
                    "{} a {}",
                    if route.op == Op::Create {
                        "Create"
                    } else {
                        "Update (merge)"
                    },
                    r.label
                ));
                op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{}{suffix}", upper_first(r.object))}}}});
                let status = if route.op == Op::Create { "201" } else { "200" };
                op["responses"][status] = json!({"description": "The object", "content": {"application/json": {"schema": item_ref}}});
            }
            Op::Action(name) => {
                let r = route.resource.expect("resource route");
                op["summary"] = json!(format!("{} ({})", name.replace('-', " "), r.label));
                op["requestBody"] = json!({"required": false, "content": {"application/json": {"schema": {"type": "object"}}}});
                op["responses"]["200"] = json!({"description": "Done"});
            }
            Op::SubList(name) => {
                op["summary"] = json!(format!(
                    "List the {name} of a {}",
                    route.resource.map_or("", |r| r.label)
                ));
                op["responses"]["200"] = json!({"description": "A page"});
            }
            Op::Get | Op::Delete => {
                let r = route.resource.expect("resource route");
                op["summary"] = json!(format!(
                    "{} a {}",
                    if route.op == Op::Get {
                        "Retrieve"
                    } else {
                        "Delete"
                    },
                    r.label
                ));
                op["responses"]["200"] = json!({"description": "The object", "content": {"application/json": {"schema": item_ref}}});
            }
        }
        if route.path.contains("{id}") {
            op["parameters"] = {
                let mut ps = op
                    .get("parameters")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                ps.push(json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}));
                json!(ps)
            };
        }
        if route.method == http::Method::POST && route.resource.is_some() {
            let mut ps = op
                .get("parameters")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            ps.push(json!({"name": "Idempotency-Key", "in": "header", "required": false,
                "description": "Within 24 hours the same key with the same request returns the first response again (header `Idempotent-Replayed: true`) and writes nothing; with another request, or while the first runs: 409.",
                "schema": {"type": "string", "minLength": 1, "maxLength": 255}}));
            op["parameters"] = json!(ps);
        }
        if route.resource.is_some() {
            op["responses"]["default"] = error_ref();
        }
        let entry = paths
            .entry(route.path.to_string())
            .or_insert_with(|| json!({}));
        entry[route.method.as_str().to_ascii_lowercase()] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Practice Hub API", "version": "1.0.0", "description": "REST API with signed webhooks for clinics and booking businesses."},
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "description": "sk_test_…, pk_test_…, sk_live_…, pk_live_…"}},
            "schemas": schemas,
        }
    })
}

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}
