//! The generic engine: create, update (merge), delete and actions for every
//! resource. It validates against the schema, resolves field groups, checks
//! references, calls the resource's `Rules`, lays the document out, and
//! commits the object, its events and whatever the hook added as one atomic
//! write — retrying on fresh reads when a concurrent write got there first.

use super::*;
use crate::error::{ApiError, ErrorKind, FieldError};
use crate::store::{
    version_of, Conflict, Doc, Expect, Item, ListPage, StoreError, UniqueTarget, WriteTx,
};
use crate::webhooks::{event as new_event, previous_attributes, with_events};
use serde_json::{json, Map, Value};

/// A request body must be a JSON object.
pub(crate) fn body_object(body: Value, what: &str) -> ApiResult<Map<String, Value>> {
    match body {
        Value::Object(m) => Ok(m),
        other => Err(ApiError::field(
            "(body)",
            format!(
                "must be a JSON object describing the {what}, not {}",
                validate::kind_of(&other)
            ),
        )),
    }
}

/// The retries of one write: a version conflict on anything it read, or a
/// busy store, runs it again on fresh reads after a short jittered pause.
pub struct Retries {
    n: u32,
}

impl Default for Retries {
    fn default() -> Self {
        Self::new()
    }
}

impl Retries {
    pub const MAX: u32 = 64;

    pub fn new() -> Retries {
        Retries { n: 0 }
    }

    /// After a failed commit: `Ok` to try again, or the error to answer.
    pub async fn again(&mut self, e: StoreError, label: &str) -> ApiResult<()> {
        if crate::auth::idempotency::lost_claim(&e) {
            return Err(crate::auth::idempotency::in_progress());
        }
        match e {
            StoreError::Conflict(Conflict::Version { .. } | Conflict::Exists { .. })
            | StoreError::Busy => {
                self.n += 1;
                if self.n >= Self::MAX {
                    return Err(ApiError::new(
                        ErrorKind::LockTimeout,
                        format!("The {label} is being changed by many requests at once; retry."),
                    ));
                }
                // Back off: 1 ms doubling to 512 ms, with full jitter, so
                // that writers that keep cancelling each other (DynamoDB
                // cancels every transaction of a conflict) spread out.
                let cap = 1u64 << self.n.min(9);
                let r = u16::from_le_bytes(crate::ids::random_bytes::<2>()) as u64;
                let us = (cap * 1000 * r) / u16::MAX as u64;
                tokio::time::sleep(std::time::Duration::from_micros(us)).await;
                Ok(())
            }
            other => Err(other.into()),
        }
    }
}

impl Ctx<'_> {
    /// Commit a write whose success answers `reply`: with an idempotency
    /// claim, the stored response goes into the same atomic write.
    pub async fn commit(&self, mut tx: WriteTx, reply: &Reply) -> Result<(), StoreError> {
        if let Some(claim) = self.idempotency {
            tx.ops
                .push(claim.record_op(reply.status, &reply.headers(), &reply.body, reply.once));
        }
        self.store.commit(tx).await?;
        if let Some(claim) = self.idempotency {
            claim.mark_recorded();
        }
        Ok(())
    }

    /// The event a write of `res` emits about `doc`: sensitive fields out.
    pub fn event(&self, res: &Resource, verb: &str, doc: &Value) -> EventRecord {
        let mut data = doc.clone();
        strip_sensitive(res.fields, &mut data);
        let t = if verb.contains('.') {
            verb.to_string()
        } else {
            format!("{}.{verb}", res.object)
        };
        new_event(self.tenant, t, data)
    }

    /// The `updated` event of a change from `old` to `new`, with
    /// `previousAttributes` (sensitive fields out of both).
    pub fn updated_event(&self, res: &Resource, old: &Value, new: &Value) -> EventRecord {
        let mut before = old.clone();
        strip_sensitive(res.fields, &mut before);
        let mut data = new.clone();
        strip_sensitive(res.fields, &mut data);
        let prev = previous_attributes(&before, &data);
        if let Value::Object(m) = &mut data {
            m.insert("previousAttributes".into(), prev);
        }
        new_event(self.tenant, format!("{}.updated", res.object), data)
    }
}

/// Resolve the field groups of a body: exactly one of each pair, the name
/// form replaced by the id it names.
async fn resolve_groups(
    ctx: &Ctx<'_>,
    res: &Resource,
    input: &mut Map<String, Value>,
    errors: &mut Vec<FieldError>,
) -> ApiResult<()> {
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
            (None, None) => match g.publishable_default.filter(|_| ctx.publishable()) {
                Some(default) => {
                    let options = ctx.store.all(&ctx.tenant.key(), g.target).await?;
                    match pick_default(&options, g, default) {
                        Some(id) => {
                            input.insert(g.id_field.into(), Value::String(id));
                        }
                        None => errors.push(FieldError::new(
                            g.id_field,
                            match default {
                                GroupDefault::LowestOrder => format!(
                                    "one of `{}` or `{}` is required: there are no {} to default to",
                                    g.id_field, g.name_field, g.target
                                ),
                                GroupDefault::Named(name) => format!(
                                    "one of `{}` or `{}` is required: there is no {} named `{name}` to default to",
                                    g.id_field, g.name_field, g.target
                                ),
                            },
                        )),
                    }
                }
                None => errors.push(FieldError::new(
                    g.id_field,
                    format!("one of `{}` or `{}` is required", g.id_field, g.name_field),
                )),
            },
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

/// The organization's default of a group a publishable key left out.
fn pick_default(options: &[Doc], g: &Group, default: GroupDefault) -> Option<String> {
    let name_of = |d: &Doc| {
        d.get(g.target_name_field)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_lowercase()
    };
    let chosen = match default {
        GroupDefault::Named(name) => {
            let wanted = name.to_lowercase();
            options.iter().find(|d| name_of(d) == wanted)
        }
        GroupDefault::LowestOrder => options.iter().min_by_key(|d| {
            let order = d.get("order").and_then(Value::as_i64).unwrap_or(i64::MAX);
            let id = d
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            (order, name_of(d), id)
        }),
    };
    chosen.and_then(|d| d.get("id").and_then(Value::as_str).map(String::from))
}

/// Every referenced id in a document: (field path, target resource, id).
fn collect_refs(
    fields: &[Field],
    doc: &Map<String, Value>,
    prefix: &str,
    out: &mut Vec<(String, &'static str, String, bool)>,
) {
    for f in fields {
        let Some(v) = doc.get(f.name) else { continue };
        let path = format!("{prefix}{}", f.name);
        match (&f.ty, v) {
            (Ty::Ref(target), Value::String(id)) => {
                out.push((path, target, id.clone(), f.restrict))
            }
            (Ty::Array(inner, _), Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    match (inner, item) {
                        (Ty::Ref(target), Value::String(id)) => {
                            out.push((format!("{path}[{i}]"), target, id.clone(), f.restrict))
                        }
                        (Ty::Object(fs), Value::Object(m)) => {
                            collect_refs(fs, m, &format!("{path}[{i}]."), out)
                        }
                        _ => {}
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

/// Check that every referenced id names an object of the same tenant. A
/// reference the stored document already held was checked when it was
/// written (and what it names cannot be deleted while referred to, or was
/// allowed to go): only new references are read.
async fn check_refs(
    ctx: &Ctx<'_>,
    fields: &[Field],
    doc: &Map<String, Value>,
    old: Option<&Map<String, Value>>,
    errors: &mut Vec<FieldError>,
    checks: &mut Vec<WriteOp>,
) -> ApiResult<()> {
    let mut refs = Vec::new();
    collect_refs(fields, doc, "", &mut refs);
    let mut known = Vec::new();
    if let Some(o) = old {
        collect_refs(fields, o, "", &mut known);
    }
    let key = ctx.tenant.key();
    let mut seen: Vec<(&str, String)> = known.into_iter().map(|(_, t, i, _)| (t, i)).collect();
    for (path, target, id, restrict) in refs {
        if seen.iter().any(|(t, i)| *t == target && *i == id) {
            continue;
        }
        match ctx.store.get(&key, target, &id).await? {
            None => {
                let label = by_path(target).map_or(target, |r| r.label);
                errors.push(FieldError::new(
                    path,
                    format!("no {label} with id `{id}` in this organization and mode"),
                ));
            }
            Some(found) if restrict => {
                // The write holds only if what it points at is still there
                // as read (a delete meanwhile makes it fail, and retry).
                // Only for `restrict` references, which keep what they name
                // from being deleted: others may outlive it, and a condition
                // on a much-referenced object (a clinic) would make
                // concurrent writes conflict on it.
                checks.push(WriteOp::Check {
                    tenant: key.clone(),
                    kind: target,
                    id: id.clone(),
                    expect: Expect::Version(version_of(&found)),
                });
                seen.push((target, id));
            }
            Some(_) => seen.push((target, id)),
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
    old: Option<&Map<String, Value>>,
    mut errors: Vec<FieldError>,
    checks: &mut Vec<WriteOp>,
) -> ApiResult<Map<String, Value>> {
    // `null` is "no value" for a known field; an unknown one is refused
    // whatever its value.
    input.retain(|k, v| !v.is_null() || !res.fields.iter().any(|f| f.name == k));
    for f in res.common {
        if input.contains_key(f.name) {
            errors.push(FieldError::new(
                f.name,
                "is set by the server and cannot be written",
            ));
            input.remove(f.name);
        }
    }
    resolve_groups(ctx, res, &mut input, &mut errors).await?;
    let clean = validate::object(res.fields, &input, "", &mut errors);
    if errors.is_empty() {
        check_refs(ctx, res.fields, &clean, old, &mut errors, checks).await?;
    }
    if !errors.is_empty() {
        let mut unique = Vec::with_capacity(errors.len());
        for e in errors {
            if !unique.contains(&e) {
                unique.push(e);
            }
        }
        return Err(ApiError::fields(unique));
    }
    let mut clean = clean;
    for f in res.fields {
        if matches!(f.ty, Ty::Metadata) && !f.read_only {
            clean
                .entry(f.name)
                .or_insert_with(|| Value::Object(Map::new()));
        }
    }
    Ok(clean)
}

/// Lay out a stored document: identity first, fields, then bookkeeping.
pub(super) fn assemble(
    ctx: &Ctx<'_>,
    res: &Resource,
    id: &str,
    fields: &Map<String, Value>,
    created: &str,
    updated: &str,
    version: u64,
) -> Value {
    layout(
        res,
        ctx.tenant.livemode(),
        id,
        fields,
        created,
        updated,
        version,
    )
}

/// `assemble` for a tenant's mode, outside a request (`hub org create`).
pub(super) fn layout(
    res: &Resource,
    livemode: bool,
    id: &str,
    fields: &Map<String, Value>,
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
    doc.insert("livemode".into(), Value::Bool(livemode));
    doc.insert("createdAt".into(), Value::String(created.to_string()));
    doc.insert("updatedAt".into(), Value::String(updated.to_string()));
    doc.insert("version".into(), Value::from(version));
    Value::Object(doc)
}

/// The stored fields of a document (what a PATCH merges into), optionally
/// with the server-computed ones (at every depth: a line item's computed
/// amount too).
fn user_fields(res: &Resource, doc: &Value, with_derived: bool) -> Map<String, Value> {
    let mut m = Map::new();
    if let Value::Object(d) = doc {
        for f in res.fields {
            if f.read_only && !with_derived {
                continue;
            }
            if let Some(v) = d.get(f.name) {
                let mut v = v.clone();
                if !with_derived {
                    writable(&f.ty, &mut v);
                }
                m.insert(f.name.into(), v);
            }
        }
    }
    m
}

/// Remove the server-computed fields nested in a value.
fn writable(ty: &Ty, v: &mut Value) {
    match (ty, v) {
        (Ty::Object(fields), Value::Object(m)) => {
            for f in fields.iter() {
                if f.read_only {
                    m.remove(f.name);
                } else if let Some(inner) = m.get_mut(f.name) {
                    writable(&f.ty, inner);
                }
            }
        }
        (Ty::Array(inner, _), Value::Array(items)) => {
            items.iter_mut().for_each(|i| writable(inner, i));
        }
        _ => {}
    }
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

fn unique_conflict(res: &Resource, scope: &str, doc: &Map<String, Value>) -> ApiError {
    let field = scope.rsplit('/').next().unwrap_or_default().to_string();
    let value = doc.get(&field).and_then(Value::as_str).unwrap_or_default();
    let mut err = ApiError::conflict(format!(
        "A {} with {field} `{value}` already exists (names are compared ignoring case).",
        res.label
    ));
    err.errors.push(FieldError::new(field, "is already in use"));
    err
}

/// The slim patient reference an object's events carry (SPEC §6):
/// `{id, fullName, tracking}` of the patient its `patient_field` names.
async fn patient_ref(ctx: &Ctx<'_>, res: &Resource, doc: &Value) -> ApiResult<Option<Value>> {
    let Some(id) = res
        .patient_field
        .and_then(|f| doc.get(f))
        .and_then(Value::as_str)
    else {
        return Ok(None);
    };
    let Some(p) = ctx.store.get(&ctx.tenant.key(), "patients", id).await? else {
        return Ok(None);
    };
    let mut slim = json!({"id": id, "fullName": p["fullName"]});
    if let Some(t) = p.get("tracking") {
        slim["tracking"] = t.clone();
    }
    Ok(Some(slim))
}

/// Put the patient reference into the data of events about the object.
fn attach_patient(events: &mut [EventRecord], patient: &Option<Value>) {
    let Some(p) = patient else { return };
    for e in events {
        if let Some(data) = e.envelope.get_mut("data").and_then(Value::as_object_mut) {
            data.insert("patient".into(), p.clone());
        }
    }
}

/// Add a write's reference checks, but those on objects the write itself
/// puts, deletes or checks (a hook's update of what it points at carries
/// its own condition; DynamoDB allows one operation per item in a
/// transaction).
fn add_checks(ops: &mut Vec<WriteOp>, checks: Vec<WriteOp>) {
    for c in checks {
        let WriteOp::Check {
            tenant, kind, id, ..
        } = &c
        else {
            continue;
        };
        let touched = ops.iter().any(|op| match op {
            WriteOp::Put {
                tenant: t,
                kind: k,
                id: i,
                ..
            }
            | WriteOp::Delete {
                tenant: t,
                kind: k,
                id: i,
                ..
            }
            | WriteOp::Check {
                tenant: t,
                kind: k,
                id: i,
                ..
            } => t == tenant && k == kind && i == id,
            _ => false,
        });
        if !touched {
            ops.push(c);
        }
    }
}

/// The fields (and their resources) declared `restrict` that refer to
/// objects of `res`.
fn restricting(res: &Resource) -> impl Iterator<Item = (&'static Resource, &'static Field)> + '_ {
    registry().iter().flat_map(move |r| {
        r.fields
            .iter()
            .filter(move |f| f.restrict && matches!(f.ty, Ty::Ref(t) if t == res.path))
            .map(move |f| (*r, f))
    })
}

/// A delete is refused while objects refer to this one through a field
/// declared `restrict`: 409 naming how many do.
async fn check_referrers(ctx: &Ctx<'_>, res: &Resource, id: &str) -> ApiResult<()> {
    let key = ctx.tenant.key();
    for (r, f) in restricting(res) {
        {
            let q = crate::query::ListQuery {
                filter: crate::query::Filter::Field {
                    path: vec![f.name.to_string()],
                    op: crate::query::Op::Eq(Value::String(id.to_string())),
                },
                limit: 0,
                want_total: true,
                ..Default::default()
            };
            let n = ctx.store.list(&key, r.path, &q).await?.total.unwrap_or(0);
            if n > 0 {
                let what = r.path.replace('-', " ");
                let (what, verb) = if n == 1 {
                    (r.label.to_string(), "refers")
                } else {
                    (what, "refer")
                };
                return Err(ApiError::conflict(format!(
                    "The {} `{id}` cannot be deleted: {n} {what} {verb} to it (`{}`). Delete those first, or point them elsewhere.",
                    res.label, f.name
                )));
            }
        }
    }
    Ok(())
}

fn new_change<'a>(
    verb: Verb,
    id: &'a str,
    old: Option<&'a Value>,
    patch: Option<&'a Map<String, Value>>,
    new: Map<String, Value>,
) -> Change<'a> {
    Change {
        verb,
        id,
        old,
        patch,
        new,
        ops: Vec::new(),
        verbs: Vec::new(),
        events: Vec::new(),
        extra: Map::new(),
        now_ms: crate::time::now_ms(),
    }
}

/// Create an object: 201 with it (and any fields only this response carries).
pub async fn create(ctx: &Ctx<'_>, res: &Resource, body: Value) -> ApiResult<Reply> {
    let input = body_object(body, res.label)?;
    let (id, created_ms) = crate::ids::new_id_at(res.prefix);
    let created = crate::time::format_ms(created_ms);
    let mut retries = Retries::new();
    loop {
        let mut checks = Vec::new();
        let fields = prepare(ctx, res, input.clone(), None, Vec::new(), &mut checks).await?;
        let mut change = new_change(Verb::Create, &id, None, None, fields);
        change.now_ms = created_ms;
        res.rules.check(ctx, &mut change).await?;
        let doc = assemble(ctx, res, &id, &change.new, &created, &created, 1);
        let mut ops = vec![WriteOp::Put {
            tenant: ctx.tenant.key(),
            kind: res.path,
            id: id.clone(),
            doc: doc.clone(),
            expect: Expect::Absent,
        }];
        ops.extend(unique_ops(ctx, res, &id, None, Some(&change.new)));
        ops.append(&mut change.ops);
        add_checks(&mut ops, checks);
        let mut events = vec![ctx.event(res, "created", &doc)];
        events.extend(change.verbs.iter().map(|v| ctx.event(res, v, &doc)));
        attach_patient(&mut events, &patient_ref(ctx, res, &doc).await?);
        events.append(&mut change.events);
        let mut body = doc.clone();
        if let Value::Object(m) = &mut body {
            m.extend(std::mem::take(&mut change.extra));
        }
        let reply = Reply {
            once: if res.created_extra.is_empty() {
                &[]
            } else {
                created_extra_names(res)
            },
            ..Reply::object(201, &body)
        };
        match ctx.commit(with_events(ops, events), &reply).await {
            Ok(()) => return Ok(reply),
            Err(StoreError::Conflict(Conflict::Unique { scope, .. })) => {
                return Err(unique_conflict(res, &scope, &change.new))
            }
            Err(e) => retries.again(e, res.label).await?,
        }
    }
}

fn created_extra_names(res: &Resource) -> &'static [&'static str] {
    static NAMES: std::sync::OnceLock<Vec<(&'static str, Vec<&'static str>)>> =
        std::sync::OnceLock::new();
    let all = NAMES.get_or_init(|| {
        registry()
            .iter()
            .map(|r| (r.path, r.created_extra.iter().map(|f| f.name).collect()))
            .collect()
    });
    all.iter()
        .find(|(p, _)| *p == res.path)
        .map(|(_, v)| v.as_slice())
        .unwrap_or(&[])
}

/// An object of the tenant; one past its life (`ttl_ms`) is gone, even
/// before housekeeping deletes it.
pub async fn get(ctx: &Ctx<'_>, res: &Resource, id: &str) -> ApiResult<Doc> {
    let doc = ctx.store.get(&ctx.tenant.key(), res.path, id).await?;
    doc.filter(|d| !expired(res, d))
        .map(|d| presented(res, d))
        .ok_or_else(|| ApiError::not_found(res.label, id))
}

/// `get` with the object's JSON text and version as it is shown: when the
/// resource shows objects as stored (no `on_read`), the store's text, not
/// serialised again.
pub async fn get_with_json(
    ctx: &Ctx<'_>,
    res: &Resource,
    id: &str,
) -> ApiResult<crate::store::DocJson> {
    if res.on_read.is_some() {
        return Ok(crate::store::DocJson::new(get(ctx, res, id).await?));
    }
    match ctx.store.get_json(&ctx.tenant.key(), res.path, id).await? {
        Some(shown) if res.ttl_ms.is_none() || !expired(res, &shown.doc()?) => Ok(shown),
        _ => Err(ApiError::not_found(res.label, id)),
    }
}

/// Past its life (`ttl_ms`): gone, even before housekeeping deletes it.
fn expired(res: &Resource, doc: &Doc) -> bool {
    res.ttl_ms.is_some_and(|ttl| {
        doc["createdAt"]
            .as_str()
            .and_then(crate::time::parse_timestamp)
            .is_some_and(|t| t < crate::time::now_ms() - ttl)
    })
}

/// A stored document as its resource shows it (`on_read`).
fn presented(res: &Resource, doc: Doc) -> Doc {
    match res.on_read {
        Some(f) => {
            let mut d = (*doc).clone();
            f(&mut d);
            std::sync::Arc::new(d)
        }
        None => doc,
    }
}

pub async fn list(
    ctx: &Ctx<'_>,
    res: &Resource,
    query: &crate::query::ListQuery,
) -> ApiResult<ListPage> {
    let mut page = ctx.store.list(&ctx.tenant.key(), res.path, query).await?;
    if res.on_read.is_some() {
        page.data = page
            .data
            .into_iter()
            .map(|d| Item::Parsed(presented(res, d.doc())))
            .collect();
    }
    Ok(page)
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

/// Is this failure a version conflict on the object itself?
fn on_object(e: &StoreError, res: &Resource, id: &str) -> bool {
    matches!(e, StoreError::Conflict(Conflict::Version { kind, id: i }) if kind == res.path && i == id)
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
) -> ApiResult<Reply> {
    let patch = body_object(body, res.label)?;
    let mut unknown = Vec::new();
    validate::known_keys(res, &patch, &mut unknown);
    let mut retries = Retries::new();
    loop {
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
        let mut checks = Vec::new();
        let mut fields = prepare(
            ctx,
            res,
            merged,
            Some(&old_fields),
            unknown.clone(),
            &mut checks,
        )
        .await?;
        // Server-computed fields carry over unless the rules recompute them.
        for f in res.fields.iter().filter(|f| f.read_only) {
            if let Some(v) = current.get(f.name) {
                fields.entry(f.name).or_insert_with(|| v.clone());
            }
        }
        let mut change = new_change(Verb::Update, id, Some(&current), Some(&patch), fields);
        res.rules.check(ctx, &mut change).await?;
        if change.new == user_fields(res, &current, true)
            && change.ops.is_empty()
            && change.events.is_empty()
        {
            return Ok(Reply::object(200, &current));
        }
        let created = current["createdAt"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let now = crate::time::format_ms(change.now_ms);
        let doc = assemble(ctx, res, id, &change.new, &created, &now, version + 1);
        let mut ops = vec![WriteOp::Put {
            tenant: ctx.tenant.key(),
            kind: res.path,
            id: id.to_string(),
            doc: doc.clone(),
            expect: Expect::Version(version),
        }];
        ops.extend(unique_ops(
            ctx,
            res,
            id,
            Some(&old_fields),
            Some(&change.new),
        ));
        ops.append(&mut change.ops);
        add_checks(&mut ops, checks);
        let mut events = vec![ctx.updated_event(res, &current, &doc)];
        events.extend(change.verbs.iter().map(|v| ctx.event(res, v, &doc)));
        attach_patient(&mut events, &patient_ref(ctx, res, &doc).await?);
        events.append(&mut change.events);
        let reply = Reply::object(200, &doc);
        match ctx.commit(with_events(ops, events), &reply).await {
            Ok(()) => return Ok(reply),
            Err(StoreError::Conflict(Conflict::Unique { scope, .. })) => {
                return Err(unique_conflict(res, &scope, &change.new))
            }
            Err(e) if if_match.is_some() && on_object(&e, res, id) => {
                let now_version = get(ctx, res, id)
                    .await
                    .map(|d| version_of(&d))
                    .unwrap_or(version);
                return Err(precondition_failed(res, id, now_version));
            }
            Err(e) => retries.again(e, res.label).await?,
        }
    }
}

pub async fn delete(
    ctx: &Ctx<'_>,
    res: &Resource,
    id: &str,
    if_match: Option<u64>,
) -> ApiResult<Reply> {
    let mut retries = Retries::new();
    loop {
        let current = get(ctx, res, id).await?;
        let version = version_of(&current);
        if if_match.is_some_and(|v| v != version) {
            return Err(precondition_failed(res, id, version));
        }
        let mut change = new_change(Verb::Delete, id, Some(&current), None, Map::new());
        res.rules.check(ctx, &mut change).await?;
        check_referrers(ctx, res, id).await?;
        let old_fields = user_fields(res, &current, false);
        let mut ops = vec![WriteOp::Delete {
            tenant: ctx.tenant.key(),
            kind: res.path,
            id: id.to_string(),
            expect: Expect::Version(version),
        }];
        // And still none when it is deleted (a referrer created meanwhile
        // fails this write, which then answers the 409 above).
        for (r, f) in restricting(res) {
            ops.push(WriteOp::Unreferenced {
                tenant: ctx.tenant.key(),
                kind: r.path,
                field: f.name,
                value: id.to_string(),
            });
        }
        ops.extend(unique_ops(ctx, res, id, Some(&old_fields), None));
        ops.append(&mut change.ops);
        let mut events = vec![ctx.event(res, "deleted", &current)];
        attach_patient(&mut events, &patient_ref(ctx, res, &current).await?);
        events.append(&mut change.events);
        let reply = Reply::object(200, &current);
        match ctx.commit(with_events(ops, events), &reply).await {
            Ok(()) => return Ok(reply),
            Err(e) if if_match.is_some() && on_object(&e, res, id) => {
                return match get(ctx, res, id).await {
                    Ok(d) => Err(precondition_failed(res, id, version_of(&d))),
                    Err(e) => Err(e),
                }
            }
            Err(e) => retries.again(e, res.label).await?,
        }
    }
}

/// `POST /v1/{path}/{id}/{action}`: the body checked against the action's
/// declared fields (unknown fields and nulls refused), then the action runs.
pub async fn run_action(ctx: &Ctx<'_>, action: &Action, id: &str, body: Value) -> ApiResult<Reply> {
    let input = body_object(body, &format!("`{}` request", action.name))?;
    let mut errors = Vec::new();
    for (k, v) in &input {
        if v.is_null() && action.body.iter().any(|f| f.name == k) {
            errors.push(FieldError::new(k.clone(), "must not be null"));
        }
    }
    let clean = validate::object(action.body, &input, "", &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::fields(errors));
    }
    (action.run)(ctx, id, clean).await
}

/// The next version of another object, written by a hook in the same atomic
/// write as its own change: the `Put` (conditional on the version read) and
/// its `updated` event with `previousAttributes`. Returns the new document.
pub fn update_other(
    ctx: &Ctx<'_>,
    res: &Resource,
    current: &Value,
    changes: Map<String, Value>,
    now_ms: i64,
    change: &mut Change<'_>,
) -> Value {
    let version = version_of(current);
    let mut doc = current.clone();
    if let Value::Object(m) = &mut doc {
        for (k, v) in changes {
            if v.is_null() {
                m.remove(&k);
            } else {
                m.insert(k, v);
            }
        }
        m.insert(
            "updatedAt".into(),
            Value::String(crate::time::format_ms(now_ms)),
        );
        m.insert("version".into(), json!(version + 1));
    }
    let id = current["id"].as_str().unwrap_or_default().to_string();
    change.ops.push(WriteOp::Put {
        tenant: ctx.tenant.key(),
        kind: res.path,
        id,
        doc: doc.clone(),
        expect: Expect::Version(version),
    });
    change.events.push(ctx.updated_event(res, current, &doc));
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_follows_rfc7396() {
        let mut t = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1]});
        merge_patch(
            &mut t,
            &json!({"a": null, "b": {"c": 9}, "e": [2], "f": "x"}),
        );
        assert_eq!(t, json!({"b": {"c": 9, "d": 3}, "e": [2], "f": "x"}));
    }
}
