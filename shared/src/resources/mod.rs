//! The resource layer: generic CRUD driven by each resource's static
//! definition. A new resource is one module with a `Resource` value plus a
//! line in `REGISTRY`.

mod clinics;
mod events;
mod patient_statuses;
mod patients;
mod practitioners;
mod referral_sources;
pub mod validate;
mod webhook_deliveries;
pub mod webhook_endpoints;

use crate::auth::Tenant;
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::query::ListQuery;
use crate::schema::{Field, Ty, COMMON};
use crate::store::{
    Conflict, Doc, EventRecord, Expect, ListPage, Store, StoreError, UniqueTarget, WriteOp, WriteTx,
};
use serde_json::{Map, Value};

/// `referralId` / `referralName`: exactly one, the name resolved
/// case-insensitively to an object of `target`.
#[derive(Debug)]
pub struct Group {
    pub id_field: &'static str,
    pub name_field: &'static str,
    pub target: &'static str,
    pub target_name_field: &'static str,
}

#[derive(Debug)]
pub struct Resource {
    /// URL path segment and storage kind: `referral-sources`.
    pub path: &'static str,
    /// The `object` value and the event prefix: `referralSource`.
    pub object: &'static str,
    /// Human name for messages: `referral source`.
    pub label: &'static str,
    pub prefix: &'static str,
    pub fields: &'static [Field],
    pub groups: &'static [Group],
    /// Fields unique per tenant, compared case-insensitively.
    pub unique: &'static [&'static str],
    /// Publishable keys may create it (web forms, booking widgets).
    pub publishable_create: bool,
    /// Fields computed by the server on every write.
    pub derive: Option<fn(&mut Map<String, Value>)>,
    /// Text fields `$search` looks in.
    pub search_fields: &'static [&'static str],
    pub description: &'static str,
    /// List and get only (no create, update, delete, and no events of its own).
    pub read_only: bool,
    /// Not routed at `/v1/{path}` (reached through another resource).
    pub internal: bool,
    /// `POST /v1/{path}/{id}/{action}` routes.
    pub actions: &'static [&'static str],
    /// `GET /v1/{path}/{id}/{name}` lists.
    pub sublists: &'static [&'static str],
    /// Checks that need I/O or the tenant (e.g. resolving a webhook URL).
    pub check: Option<CheckFn>,
    /// Extra writes for a create (in the same transaction) and extra fields
    /// for its response only (e.g. a webhook endpoint's secret).
    pub create_extras: Option<ExtrasFn>,
}

/// Extra writes and response-only fields of a create.
pub type ExtrasFn = fn(&Tenant, &str) -> (Vec<WriteOp>, Map<String, Value>);

pub type CheckFn = for<'a> fn(
    &'a Ctx<'a>,
    &'a Map<String, Value>,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Vec<crate::error::FieldError>> + Send + 'a>,
>;

/// The defaults of a plain CRUD resource, for `..Resource::CRUD` in definitions.
impl Resource {
    pub const CRUD: Resource = Resource {
        path: "",
        object: "",
        label: "",
        prefix: "",
        fields: &[],
        groups: &[],
        unique: &[],
        publishable_create: false,
        derive: None,
        search_fields: &[],
        description: "",
        read_only: false,
        internal: false,
        actions: &[],
        sublists: &[],
        check: None,
        create_extras: None,
    };
}

static REGISTRY: &[&Resource] = &[
    &clinics::RESOURCE,
    &practitioners::RESOURCE,
    &referral_sources::RESOURCE,
    &patient_statuses::RESOURCE,
    &patients::RESOURCE,
    &webhook_endpoints::RESOURCE,
    &events::RESOURCE,
    &webhook_deliveries::RESOURCE,
];

pub fn registry() -> &'static [&'static Resource] {
    REGISTRY
}

pub fn by_path(path: &str) -> Option<&'static Resource> {
    REGISTRY.iter().copied().find(|r| r.path == path)
}

impl Resource {
    pub fn field_sets(&self) -> [&'static [Field]; 2] {
        [COMMON, self.fields]
    }

    pub fn has_field(&self, name: &str) -> bool {
        self.fields.iter().any(|f| f.name == name)
    }

    fn unique_scope(&self, tenant: &Tenant, field: &str) -> String {
        format!("{}/{}/{}", tenant.key(), self.path, field)
    }
}

/// Everything a handler needs to act for one tenant.
pub struct Ctx<'a> {
    pub store: &'a dyn Store,
    pub tenant: &'a Tenant,
}

/// Remove sensitive fields (recursively) from a document bound for an event.
pub fn strip_sensitive(fields: &[Field], doc: &mut Value) {
    let Value::Object(map) = doc else { return };
    for f in fields {
        if f.sensitive {
            map.remove(f.name);
        } else if let (Ty::Object(inner), Some(v)) = (&f.ty, map.get_mut(f.name)) {
            strip_sensitive(inner, v);
        }
    }
}

fn event(ctx: &Ctx<'_>, res: &Resource, verb: &str, doc: &Value) -> EventRecord {
    let mut data = doc.clone();
    strip_sensitive(res.fields, &mut data);
    new_event(ctx.tenant, format!("{}.{verb}", res.object), data)
}

/// An event envelope (SPEC §6) for the outbox.
pub fn new_event(tenant: &Tenant, event_type: String, data: Value) -> EventRecord {
    let (id, now) = crate::ids::new_id_at("evt");
    let envelope = serde_json::json!({
        "id": id,
        "object": "event",
        "type": event_type,
        "createdAt": crate::time::format_ms(now),
        "livemode": tenant.livemode(),
        "organizationId": tenant.org,
        "data": data,
    });
    EventRecord {
        id,
        tenant: tenant.key(),
        event_type,
        created_at_ms: now,
        envelope,
    }
}

/// One write: the ops plus each event, both in the outbox and as a
/// queryable `events` object (`GET /v1/events`).
pub fn write_tx(mut ops: Vec<WriteOp>, events: Vec<EventRecord>) -> WriteTx {
    for e in &events {
        ops.push(WriteOp::Put {
            tenant: e.tenant.clone(),
            kind: crate::webhooks::EVENTS_KIND,
            id: e.id.clone(),
            doc: e.envelope.clone(),
            expect: Expect::Absent,
        });
    }
    WriteTx { ops, events }
}

fn version_of(doc: &Value) -> u64 {
    doc.get("version").and_then(Value::as_u64).unwrap_or(1)
}

fn body_object(body: Value, label: &str) -> ApiResult<Map<String, Value>> {
    match body {
        Value::Object(m) => Ok(m),
        _ => Err(ApiError::invalid(format!(
            "The request body must be a JSON object describing the {label}."
        ))),
    }
}

/// Resolve the field groups of a body: exactly one of each pair, the name
/// form replaced by the id it names.
async fn resolve_groups(
    ctx: &Ctx<'_>,
    res: &Resource,
    input: &mut Map<String, Value>,
    errors: &mut Vec<crate::error::FieldError>,
) -> ApiResult<()> {
    use crate::error::FieldError;
    for g in res.groups {
        let id = input.get(g.id_field).filter(|v| !v.is_null()).cloned();
        let name = input.remove(g.name_field).filter(|v| !v.is_null());
        match (id, name) {
            (Some(_), Some(_)) => errors.push(FieldError::new(
                g.name_field,
                format!(
                    "give either `{}` or `{}`, not both",
                    g.id_field, g.name_field
                ),
            )),
            (None, None) => errors.push(FieldError::new(
                g.id_field,
                format!("one of `{}` or `{}` is required", g.id_field, g.name_field),
            )),
            (Some(_), None) => {}
            (None, Some(Value::String(name))) => {
                let options = ctx.store.all(&ctx.tenant.key(), g.target).await?;
                let wanted = name.trim().to_lowercase();
                let found: Vec<&Doc> = options
                    .iter()
                    .filter(|d| {
                        d.get(g.target_name_field)
                            .and_then(Value::as_str)
                            .is_some_and(|n| n.to_lowercase() == wanted)
                    })
                    .collect();
                match found.as_slice() {
                    [one] => {
                        input.insert(g.id_field.into(), one["id"].clone());
                    }
                    [] => {
                        let names: Vec<&str> = options
                            .iter()
                            .filter_map(|d| d.get(g.target_name_field).and_then(Value::as_str))
                            .collect();
                        errors.push(FieldError::new(
                            g.name_field,
                            if names.is_empty() {
                                format!("`{name}` matches nothing: there are no {} yet", g.target)
                            } else {
                                format!(
                                    "`{name}` matches nothing; valid names: {}",
                                    names.join(", ")
                                )
                            },
                        ));
                    }
                    _ => errors.push(FieldError::new(
                        g.name_field,
                        format!(
                            "`{name}` matches several {}; give `{}` instead",
                            g.target, g.id_field
                        ),
                    )),
                }
            }
            (None, Some(_)) => errors.push(FieldError::new(g.name_field, "must be a string")),
        }
    }
    Ok(())
}

/// Every referenced id in a document: (field path, target resource, id).
fn collect_refs(
    fields: &[Field],
    doc: &Map<String, Value>,
    prefix: &str,
    out: &mut Vec<(String, &'static str, String)>,
) {
    for f in fields {
        let Some(v) = doc.get(f.name) else { continue };
        let path = format!("{prefix}{}", f.name);
        match (&f.ty, v) {
            (Ty::Ref(target), Value::String(id)) => out.push((path, target, id.clone())),
            (Ty::Array(Ty::Ref(target), _), Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    if let Some(id) = item.as_str() {
                        out.push((format!("{path}[{i}]"), target, id.to_string()));
                    }
                }
            }
            (Ty::Object(inner), Value::Object(m)) => {
                collect_refs(inner, m, &format!("{path}."), out)
            }
            _ => {}
        }
    }
}

/// Check that every referenced id names an object of the same tenant.
async fn check_refs(
    ctx: &Ctx<'_>,
    fields: &[Field],
    doc: &Map<String, Value>,
    errors: &mut Vec<crate::error::FieldError>,
) -> ApiResult<()> {
    let mut refs = Vec::new();
    collect_refs(fields, doc, "", &mut refs);
    for (path, target, id) in refs {
        if ctx
            .store
            .get(&ctx.tenant.key(), target, &id)
            .await?
            .is_none()
        {
            let label = by_path(target).map_or(target, |r| r.label);
            errors.push(crate::error::FieldError::new(
                path,
                format!("no {label} with id `{id}` in this organization and mode"),
            ));
        }
    }
    Ok(())
}

fn unique_value(doc: &Map<String, Value>, field: &str) -> Option<String> {
    doc.get(field)
        .and_then(Value::as_str)
        .map(|s| s.trim().to_lowercase())
}

/// Validate `input` (already merged, for an update) into the stored fields.
async fn prepare(
    ctx: &Ctx<'_>,
    res: &Resource,
    mut input: Map<String, Value>,
) -> ApiResult<Map<String, Value>> {
    let mut errors = Vec::new();
    input.retain(|_, v| !v.is_null());
    for f in COMMON {
        if input.contains_key(f.name) {
            errors.push(crate::error::FieldError::new(
                f.name,
                "is set by the server and cannot be written",
            ));
            input.remove(f.name);
        }
    }
    resolve_groups(ctx, res, &mut input, &mut errors).await?;
    let clean = validate::object(res.fields, &input, "", &mut errors);
    if errors.is_empty() {
        check_refs(ctx, res.fields, &clean, &mut errors).await?;
    }
    if errors.is_empty() {
        if let Some(check) = res.check {
            errors.extend(check(ctx, &clean).await);
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::fields(errors));
    }
    let mut clean = clean;
    for f in res.fields {
        if matches!(f.ty, Ty::Metadata) {
            clean
                .entry(f.name)
                .or_insert_with(|| Value::Object(Map::new()));
        }
    }
    if let Some(derive) = res.derive {
        derive(&mut clean);
    }
    Ok(clean)
}

/// Lay out a stored document: identity first, fields, then bookkeeping.
fn assemble(
    ctx: &Ctx<'_>,
    res: &Resource,
    id: &str,
    fields: Map<String, Value>,
    created: &str,
    updated: &str,
    version: u64,
) -> Value {
    let mut doc = Map::with_capacity(fields.len() + 6);
    doc.insert("id".into(), Value::String(id.to_string()));
    doc.insert("object".into(), Value::String(res.object.to_string()));
    for f in res.fields {
        if let Some(v) = fields.get(f.name) {
            doc.insert(f.name.into(), v.clone());
        }
    }
    doc.insert("livemode".into(), Value::Bool(ctx.tenant.livemode()));
    doc.insert("createdAt".into(), Value::String(created.to_string()));
    doc.insert("updatedAt".into(), Value::String(updated.to_string()));
    doc.insert("version".into(), Value::from(version));
    Value::Object(doc)
}

/// The writable part of a stored document (what a PATCH merges into), or
/// with `with_derived` also the server-computed fields.
fn user_fields(res: &Resource, doc: &Value, with_derived: bool) -> Map<String, Value> {
    let mut m = Map::new();
    if let Value::Object(d) = doc {
        for f in res.fields {
            if f.read_only && !with_derived {
                continue;
            }
            if let Some(v) = d.get(f.name) {
                m.insert(f.name.into(), v.clone());
            }
        }
    }
    m
}

/// JSON Merge Patch (RFC 7396): objects merge, `null` removes, anything else replaces.
fn merge_patch(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    match t.get_mut(k) {
                        Some(existing) if existing.is_object() && v.is_object() => {
                            merge_patch(existing, v)
                        }
                        _ => {
                            t.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

fn unique_ops(
    ctx: &Ctx<'_>,
    res: &Resource,
    id: &str,
    old: Option<&Map<String, Value>>,
    new: Option<&Map<String, Value>>,
) -> Vec<WriteOp> {
    let mut ops = Vec::new();
    for field in res.unique {
        let before = old.and_then(|o| unique_value(o, field));
        let after = new.and_then(|n| unique_value(n, field));
        if before == after {
            continue;
        }
        let scope = res.unique_scope(ctx.tenant, field);
        if let Some(v) = before {
            ops.push(WriteOp::ReleaseUnique {
                scope: scope.clone(),
                value: v,
            });
        }
        if let Some(v) = after {
            ops.push(WriteOp::ClaimUnique {
                scope,
                value: v,
                target: UniqueTarget {
                    tenant: ctx.tenant.key(),
                    kind: res.path.into(),
                    id: id.to_string(),
                },
            });
        }
    }
    ops
}

fn map_conflict(res: &Resource, e: StoreError, doc: &Map<String, Value>) -> ApiError {
    match e {
        StoreError::Conflict(Conflict::Unique { scope, .. }) => {
            let field = scope.rsplit('/').next().unwrap_or_default().to_string();
            let value = doc.get(&field).and_then(Value::as_str).unwrap_or_default();
            let mut err = ApiError::conflict(format!(
                "A {} with {field} `{value}` already exists (names are compared ignoring case).",
                res.label
            ));
            err.errors
                .push(crate::error::FieldError::new(field, "is already in use"));
            err
        }
        other => other.into(),
    }
}

/// Create an object; returns it and any fields only the create response carries.
pub async fn create_with_extras(
    ctx: &Ctx<'_>,
    res: &Resource,
    body: Value,
) -> ApiResult<(Doc, Map<String, Value>)> {
    let input = body_object(body, res.label)?;
    let fields = prepare(ctx, res, input).await?;
    let (id, created_ms) = crate::ids::new_id_at(res.prefix);
    let now = crate::time::format_ms(created_ms);
    let doc = assemble(ctx, res, &id, fields.clone(), &now, &now, 1);
    let mut ops = vec![WriteOp::Put {
        tenant: ctx.tenant.key(),
        kind: res.path,
        id: id.clone(),
        doc: doc.clone(),
        expect: Expect::Absent,
    }];
    ops.extend(unique_ops(ctx, res, &id, None, Some(&fields)));
    let extra = match res.create_extras {
        Some(f) => {
            let (more, extra) = f(ctx.tenant, &id);
            ops.extend(more);
            extra
        }
        None => Map::new(),
    };
    let ev = event(ctx, res, "created", &doc);
    ctx.store
        .commit(write_tx(ops, vec![ev]))
        .await
        .map_err(|e| map_conflict(res, e, &fields))?;
    Ok((std::sync::Arc::new(doc), extra))
}

pub async fn create(ctx: &Ctx<'_>, res: &Resource, body: Value) -> ApiResult<Doc> {
    Ok(create_with_extras(ctx, res, body).await?.0)
}

pub async fn get(ctx: &Ctx<'_>, res: &Resource, id: &str) -> ApiResult<Doc> {
    ctx.store
        .get(&ctx.tenant.key(), res.path, id)
        .await?
        .ok_or_else(|| ApiError::not_found(res.label, id))
}

pub async fn list(ctx: &Ctx<'_>, res: &Resource, query: &ListQuery) -> ApiResult<ListPage> {
    Ok(ctx.store.list(&ctx.tenant.key(), res.path, query).await?)
}

/// Attempts of a write that lost a race for its object. A writer loses at
/// most once per other writer that commits meanwhile, so up to this many
/// concurrent writers of one object all succeed.
const MAX_ATTEMPTS: usize = 64;

/// After losing a race for an object, wait a random 0–2^n ms (at most
/// 32 ms) so that concurrent writers spread out instead of colliding again
/// (over DynamoDB each attempt is a read and a transaction).
async fn after_conflict(attempt: usize) {
    let cap_ms = 1u64 << attempt.min(5);
    let r = u64::from(u16::from_le_bytes(crate::ids::random_bytes::<2>()));
    tokio::time::sleep(std::time::Duration::from_micros(r * cap_ms * 1000 / 65_536)).await;
}

fn precondition_failed(res: &Resource, id: &str, current: u64) -> ApiError {
    ApiError::new(
        ErrorKind::PreconditionFailed,
        format!(
            "The {} `{id}` is at version {current}, not the one given in If-Match.",
            res.label
        ),
    )
    .with_header("ETag", format!("\"{current}\""))
}

/// PATCH with merge semantics. Without `If-Match` a concurrent change makes
/// the merge run again on the fresh object (no update is lost); with it, a
/// changed object is a 412.
pub async fn update(
    ctx: &Ctx<'_>,
    res: &Resource,
    id: &str,
    body: Value,
    if_match: Option<u64>,
) -> ApiResult<Doc> {
    let patch = body_object(body, res.label)?;
    for attempt in 0..MAX_ATTEMPTS {
        let current = get(ctx, res, id).await?;
        let version = version_of(&current);
        if if_match.is_some_and(|v| v != version) {
            return Err(precondition_failed(res, id, version));
        }
        let old_fields = user_fields(res, &current, false);
        let mut base = Value::Object(old_fields.clone());
        // A group given in the patch replaces whichever form was stored.
        for g in res.groups {
            if patch.contains_key(g.id_field) || patch.contains_key(g.name_field) {
                if let Value::Object(b) = &mut base {
                    b.remove(g.id_field);
                }
            }
        }
        merge_patch(&mut base, &Value::Object(patch.clone()));
        let Value::Object(merged) = base else {
            return Err(ApiError::internal());
        };
        let fields = prepare(ctx, res, merged).await?;
        if fields == user_fields(res, &current, true) {
            return Ok(current);
        }
        let created = current["createdAt"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let now = crate::time::format_ms(crate::time::now_ms());
        let doc = assemble(ctx, res, id, fields.clone(), &created, &now, version + 1);
        let mut ops = vec![WriteOp::Put {
            tenant: ctx.tenant.key(),
            kind: res.path,
            id: id.to_string(),
            doc: doc.clone(),
            expect: Expect::Version(version),
        }];
        ops.extend(unique_ops(ctx, res, id, Some(&old_fields), Some(&fields)));
        let ev = event(ctx, res, "updated", &doc);
        match ctx.store.commit(write_tx(ops, vec![ev])).await {
            Ok(()) => return Ok(std::sync::Arc::new(doc)),
            Err(StoreError::Conflict(Conflict::Version { .. })) if if_match.is_none() => {
                after_conflict(attempt).await
            }
            Err(StoreError::Conflict(Conflict::Version { .. })) => {
                let now_version = get(ctx, res, id)
                    .await
                    .map(|d| version_of(&d))
                    .unwrap_or(version);
                return Err(precondition_failed(res, id, now_version));
            }
            Err(e) => return Err(map_conflict(res, e, &fields)),
        }
    }
    Err(ApiError::new(
        ErrorKind::LockTimeout,
        format!(
            "The {} `{id}` is being changed by many requests at once; retry.",
            res.label
        ),
    ))
}

pub async fn delete(
    ctx: &Ctx<'_>,
    res: &Resource,
    id: &str,
    if_match: Option<u64>,
) -> ApiResult<Doc> {
    for attempt in 0..MAX_ATTEMPTS {
        let current = get(ctx, res, id).await?;
        let version = version_of(&current);
        if if_match.is_some_and(|v| v != version) {
            return Err(precondition_failed(res, id, version));
        }
        let old_fields = user_fields(res, &current, false);
        let mut ops = vec![WriteOp::Delete {
            tenant: ctx.tenant.key(),
            kind: res.path,
            id: id.to_string(),
            expect: Expect::Version(version),
        }];
        ops.extend(unique_ops(ctx, res, id, Some(&old_fields), None));
        let ev = event(ctx, res, "deleted", &current);
        match ctx.store.commit(write_tx(ops, vec![ev])).await {
            Ok(()) => return Ok(current),
            Err(StoreError::Conflict(Conflict::Version { .. })) if if_match.is_none() => {
                after_conflict(attempt).await
            }
            Err(StoreError::Conflict(Conflict::Version { .. })) => {
                return match get(ctx, res, id).await {
                    Ok(d) => Err(precondition_failed(res, id, version_of(&d))),
                    Err(e) => Err(e),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::new(
        ErrorKind::LockTimeout,
        format!(
            "The {} `{id}` is being changed by many requests at once; retry.",
            res.label
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc7396() {
        let mut t = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1]});
        merge_patch(
            &mut t,
            &json!({"a": null, "b": {"c": 9}, "e": [2], "f": "x"}),
        );
        assert_eq!(t, json!({"b": {"c": 9, "d": 3}, "e": [2], "f": "x"}));
    }

    #[test]
    fn registry_is_consistent() {
        let mut prefixes = std::collections::HashSet::new();
        for r in registry() {
            assert!(prefixes.insert(r.prefix), "duplicate prefix {}", r.prefix);
            for g in r.groups {
                assert!(r.has_field(g.id_field), "{} lacks {}", r.path, g.id_field);
                assert!(
                    by_path(g.target).is_some(),
                    "unknown group target {}",
                    g.target
                );
            }
            for u in r.unique {
                assert!(r.has_field(u));
            }
        }
    }
}
