//! API keys as a resource (`/v1/api-keys`, SPEC §2), and every rule of a
//! key: only a secret key of the same mode manages keys (the route table
//! says so: a restricted or publishable key gets 403); restricted keys are
//! created here with a permission per resource; any key can be rolled with
//! an overlap of 0 to 12 hours; restricted keys are revoked by DELETE, while
//! a standard key (the organization's secret and publishable keys) that
//! still works cannot be deleted (409: roll it).
//!
//! A key is shown in full once (the `secret` of a create or a roll, never
//! stored for an idempotent replay). At rest there is only its SHA-256:
//! the uniqueness claim `api-key-hash` (hash → the key's record), which is
//! how a request finds its key, and a private record beside the key
//! (`api-key-hashes`) so a revoked key's claim can be released. Neither the
//! key object, its events nor any response carries the hash.
//!
//! `status` follows the clock: a rolled key is `expiring` until its
//! `expiresAt`, then `revoked` (so it is computed when a key is read, and
//! stored as of the key's last write). `lastUsedAt` is written by
//! authentication, to the minute and at most once a minute per key.

use super::{engine, Action, BoxFuture, Change, Ctx, Reply, Resource, Retries, Rules, Shape, Verb};
use crate::auth::{generate_key, hash_key, KeyKind, Tenant, KEYS_KIND, KEY_HASH_SCOPE};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::schema::{Field, Ty};
use crate::store::{Expect, Store, UniqueTarget, WriteOp};
use async_trait::async_trait;
use serde_json::{json, Map, Value};
use std::sync::OnceLock;

/// The private record of each key: its hash (to release its claim).
pub const HASHES_KIND: &str = "api-key-hashes";
pub const LEVELS: &[&str] = &["none", "read", "write"];
pub const STATUSES: &[&str] = &["active", "expiring", "revoked"];
const TYPES: &[&str] = &["secret", "publishable", "restricted"];
/// The longest overlap of a roll.
pub const MAX_OVERLAP_HOURS: i64 = 12;

/// Every resource a restricted key can hold a permission on: the resource
/// of every route that needs one (each routed resource, the resources
/// views read, and `organization` for `GET /v1/organization`), but API keys
/// themselves, which only secret keys manage. A
/// resource added to the registry is here without a change (a test checks
/// this is exactly the route table's).
pub fn permission_resources() -> &'static [&'static str] {
    static ALL: OnceLock<Vec<&'static str>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut out: Vec<&'static str> = Vec::new();
        let views = super::views().iter().map(|v| v.access);
        let routed = super::registry()
            .iter()
            .filter(|r| !r.internal)
            .map(|r| r.path);
        let organization = std::iter::once(crate::auth::ORGANIZATION_PERMISSION);
        for p in views.chain(routed).chain(organization) {
            if p != KEYS_KIND && !out.contains(&p) {
                out.push(p);
            }
        }
        out.sort_unstable();
        out
    })
}

fn kind_of(doc: &Value) -> Option<KeyKind> {
    match doc.get("type").and_then(Value::as_str)? {
        "secret" => Some(KeyKind::Secret),
        "publishable" => Some(KeyKind::Publishable),
        "restricted" => Some(KeyKind::Restricted),
        _ => None,
    }
}

/// A key's status at `now`: `revoked` once past its `expiresAt`.
pub fn status_at(doc: &Value, now: i64) -> &'static str {
    match doc.get("expiresAt").and_then(Value::as_str) {
        None => "active",
        Some(exp) => match crate::time::parse_timestamp(exp) {
            Some(e) if e > now => "expiring",
            _ => "revoked",
        },
    }
}

/// What every read of a key shows: its status now. (Records written before
/// keys were a resource held their hash and a `redacted` form: never shown.)
fn on_read(doc: &mut Value) {
    let status = status_at(doc, crate::time::now_ms());
    let Value::Object(m) = doc else { return };
    if let Some(Value::String(redacted)) = m.remove("redacted") {
        let (prefix, last4) = redacted.split_once("_…").unwrap_or(("", ""));
        m.insert("mode".into(), json!(prefix.rsplit('_').next()));
        m.insert("prefix".into(), json!(prefix));
        m.insert("last4".into(), json!(last4));
        m.entry("lastUsedAt").or_insert(Value::Null);
        m.entry("expiresAt").or_insert(Value::Null);
    }
    m.remove("hash");
    m.remove("revoked");
    m.insert("status".into(), json!(status));
}

/// A new key of `kind` for the tenant: its plaintext (shown once), its
/// fields, and the writes that store its hash.
struct Issued {
    secret: String,
    fields: Map<String, Value>,
    ops: Vec<WriteOp>,
}

fn issue(tenant: &Tenant, kind: KeyKind, id: &str) -> Issued {
    let secret = generate_key(kind, tenant.mode);
    let hash = hash_key(&secret);
    let mut fields = Map::new();
    fields.insert("type".into(), json!(kind.as_str()));
    fields.insert("mode".into(), json!(tenant.mode.as_str()));
    fields.insert(
        "prefix".into(),
        json!(format!("{}_{}", kind.prefix(), tenant.mode.as_str())),
    );
    fields.insert("last4".into(), json!(&secret[secret.len() - 4..]));
    fields.insert("lastUsedAt".into(), Value::Null);
    fields.insert("expiresAt".into(), Value::Null);
    fields.insert("status".into(), json!("active"));
    let ops = vec![
        WriteOp::Put {
            tenant: tenant.key(),
            kind: HASHES_KIND,
            id: id.to_string(),
            doc: json!({"id": id, "hash": hash, "version": 1}),
            expect: Expect::Absent,
        },
        WriteOp::ClaimUnique {
            scope: KEY_HASH_SCOPE.into(),
            value: hash,
            target: UniqueTarget {
                tenant: tenant.key(),
                kind: KEYS_KIND.into(),
                id: id.to_string(),
            },
        },
    ];
    Issued {
        secret,
        fields,
        ops,
    }
}

/// The writes of one of an organization's standard keys, made with the
/// organization (`hub org create`): the key's record and its hash. No
/// event: the organization is being created.
pub fn standard_key(tenant: &Tenant, kind: KeyKind) -> (String, Vec<WriteOp>) {
    let (id, created_ms) = crate::ids::new_id_at(RESOURCE.prefix);
    let created = crate::time::format_ms(created_ms);
    let mut issued = issue(tenant, kind, &id);
    issued.fields.insert("note".into(), json!("Standard key"));
    let doc = engine::layout(
        &RESOURCE,
        tenant.livemode(),
        &id,
        &issued.fields,
        &created,
        &created,
        1,
    );
    let mut ops = vec![WriteOp::Put {
        tenant: tenant.key(),
        kind: KEYS_KIND,
        id,
        doc,
        expect: Expect::Absent,
    }];
    ops.append(&mut issued.ops);
    (issued.secret, ops)
}

/// Check a restricted key's permissions: known resources, known levels.
fn permission_errors(perms: &Map<String, Value>, errors: &mut Vec<FieldError>) {
    let known = permission_resources();
    for (resource, level) in perms {
        let path = format!("permissions.{}", crate::query::qs::truncate(resource));
        if resource == KEYS_KIND {
            errors.push(FieldError::new(
                path,
                "API keys are managed only with a secret key: no restricted key can hold a permission on them",
            ));
        } else if !known.contains(&resource.as_str()) {
            let hint = crate::domain::nearest(resource, known.iter().copied())
                .map(|n| format!("did you mean `{n}`? "))
                .unwrap_or_default();
            errors.push(FieldError::new(
                path,
                format!("is not a resource; {hint}resources: {}", known.join(", ")),
            ));
        } else if !level.as_str().is_some_and(|l| LEVELS.contains(&l)) {
            errors.push(FieldError::new(
                path,
                "must be `none`, `read` (list and get) or `write` (everything else, and read)",
            ));
        }
    }
}

/// The writes that forget a key's hash: its claim released, its private
/// record deleted.
async fn forget_hash(ctx: &Ctx<'_>, id: &str, ops: &mut Vec<WriteOp>) -> ApiResult<()> {
    let key = ctx.tenant.key();
    let hash = match ctx.store.get(&key, HASHES_KIND, id).await? {
        Some(p) => {
            ops.push(WriteOp::Delete {
                tenant: key.clone(),
                kind: HASHES_KIND,
                id: id.to_string(),
                expect: Expect::Version(p["version"].as_u64().unwrap_or(1)),
            });
            p["hash"].as_str().map(String::from)
        }
        // A record from before keys were a resource kept its hash itself.
        None => ctx
            .store
            .get(&key, KEYS_KIND, id)
            .await?
            .and_then(|d| d.get("hash").and_then(Value::as_str).map(String::from)),
    };
    if let Some(hash) = hash {
        ops.push(WriteOp::ReleaseUnique {
            scope: KEY_HASH_SCOPE.into(),
            value: hash,
        });
    }
    Ok(())
}

struct KeyRules;

#[async_trait]
impl Rules for KeyRules {
    async fn check(&self, ctx: &Ctx<'_>, change: &mut Change<'_>) -> ApiResult<()> {
        let mut errors = Vec::new();
        match change.verb {
            Verb::Create => {
                if change.get("type").and_then(Value::as_str) != Some("restricted") {
                    return Err(ApiError::field(
                        "type",
                        "must be `restricted`: the standard secret and publishable keys come with the organization (roll them: POST /v1/api-keys/{id}/roll)",
                    ));
                }
                let perms = change
                    .get("permissions")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                permission_errors(&perms, &mut errors);
                if !errors.is_empty() {
                    return Err(ApiError::fields(errors));
                }
                let issued = issue(ctx.tenant, KeyKind::Restricted, change.id);
                change.new.extend(issued.fields);
                change
                    .new
                    .insert("permissions".into(), Value::Object(perms));
                change.new.entry("note").or_insert_with(|| json!(""));
                change.ops.extend(issued.ops);
                change.extra.insert("secret".into(), json!(issued.secret));
            }
            Verb::Update => {
                let old = change.old.ok_or_else(ApiError::internal)?;
                if change.get("type") != old.get("type") {
                    return Err(ApiError::field(
                        "type",
                        "cannot be changed: create a restricted key, or roll this one",
                    ));
                }
                if kind_of(old) == Some(KeyKind::Restricted) {
                    let perms = change
                        .get("permissions")
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default();
                    permission_errors(&perms, &mut errors);
                    change
                        .new
                        .insert("permissions".into(), Value::Object(perms));
                } else {
                    let given = change
                        .patch
                        .and_then(|p| p.get("permissions"))
                        .is_some_and(|v| v.as_object().is_none_or(|m| !m.is_empty()));
                    if given {
                        errors.push(FieldError::new(
                            "permissions",
                            format!(
                                "only restricted keys have permissions; a {} key may do everything a {0} key may",
                                old["type"].as_str().unwrap_or_default()
                            ),
                        ));
                    }
                    change.new.remove("permissions");
                }
                if !errors.is_empty() {
                    return Err(ApiError::fields(errors));
                }
                change.new.insert(
                    "status".into(),
                    json!(status_at(&Value::Object(change.new.clone()), change.now_ms)),
                );
            }
            Verb::Delete => {
                let old = change.old.ok_or_else(ApiError::internal)?;
                let standard = kind_of(old) != Some(KeyKind::Restricted);
                if standard && status_at(old, change.now_ms) == "active" {
                    return Err(ApiError::conflict(format!(
                        "`{}` is one of the organization's standard keys and cannot be deleted: roll it instead (POST /v1/api-keys/{}/roll; `expiresInHours: 0` stops it at once). Once rolled, the old key can be deleted.",
                        change.id, change.id
                    )));
                }
                forget_hash(ctx, change.id, &mut change.ops).await?;
            }
        }
        Ok(())
    }
}

/// `POST /v1/api-keys/{id}/roll`: a new key at once, in the same atomic
/// write as the old one's `expiresAt` (now plus `expiresInHours`, 0 to 12;
/// 0: it stops at once). The new key has the old one's type, note and
/// permissions; its secret is in this response only.
pub async fn roll(ctx: &Ctx<'_>, id: &str, hours: i64) -> ApiResult<Reply> {
    let hours = hours.clamp(0, MAX_OVERLAP_HOURS);
    let mut retries = Retries::new();
    loop {
        let old = engine::get(ctx, &RESOURCE, id).await?;
        let kind = kind_of(&old).ok_or_else(ApiError::internal)?;
        let now = crate::time::now_ms();
        match status_at(&old, now) {
            "expiring" => return Err(ApiError::conflict(format!(
                "The key `{id}` was already rolled and stops working at {}; roll its replacement instead, or delete this one to stop it now.",
                old["expiresAt"].as_str().unwrap_or_default()
            ))),
            "revoked" => return Err(ApiError::conflict(format!(
                "The key `{id}` no longer works; roll its replacement instead."
            ))),
            _ => {}
        }
        let (new_id, created_ms) = crate::ids::new_id_at(RESOURCE.prefix);
        let created = crate::time::format_ms(created_ms);
        let mut issued = issue(ctx.tenant, kind, &new_id);
        issued
            .fields
            .insert("note".into(), old.get("note").cloned().unwrap_or(json!("")));
        if kind == KeyKind::Restricted {
            issued.fields.insert(
                "permissions".into(),
                old.get("permissions").cloned().unwrap_or(json!({})),
            );
        }
        let doc = engine::assemble(
            ctx,
            &RESOURCE,
            &new_id,
            &issued.fields,
            &created,
            &created,
            1,
        );
        // The old key: its expiry, as a change of it (`apiKey.updated`).
        let expires = crate::time::format_ms(created_ms.max(now) + hours * 3_600_000);
        let version = old["version"].as_u64().unwrap_or(1);
        let before = (*old).clone();
        let mut after = before.clone();
        after["expiresAt"] = json!(expires);
        after["status"] = json!(if hours > 0 { "expiring" } else { "revoked" });
        after["updatedAt"] = json!(created);
        after["version"] = json!(version + 1);
        let mut ops = vec![
            WriteOp::Put {
                tenant: ctx.tenant.key(),
                kind: KEYS_KIND,
                id: new_id.clone(),
                doc: doc.clone(),
                expect: Expect::Absent,
            },
            WriteOp::Put {
                tenant: ctx.tenant.key(),
                kind: KEYS_KIND,
                id: id.to_string(),
                doc: after.clone(),
                expect: Expect::Version(version),
            },
        ];
        ops.append(&mut issued.ops);
        let events = vec![
            ctx.event(&RESOURCE, "created", &doc),
            ctx.updated_event(&RESOURCE, &before, &after),
        ];
        let mut body = doc.clone();
        body["secret"] = json!(issued.secret);
        let reply = Reply {
            once: &["secret"],
            ..Reply::object(200, &body)
        };
        match ctx
            .commit(crate::webhooks::with_events(ops, events), &reply)
            .await
        {
            Ok(()) => return Ok(reply),
            Err(e) => retries.again(e, "API key").await?,
        }
    }
}

fn roll_action<'a>(
    ctx: &'a Ctx<'a>,
    id: &'a str,
    body: Map<String, Value>,
) -> BoxFuture<'a, ApiResult<Reply>> {
    Box::pin(async move {
        let hours = body
            .get("expiresInHours")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        roll(ctx, id, hours).await
    })
}

/// `hub keys roll` (through `crate::org::roll_key`, which checks the
/// organization exists): roll the working key of `kind` of one
/// organization and mode (for an operator whose only secret key is lost).
/// Returns the new key (with its `secret`) and the rolled one.
pub async fn roll_standard(
    store: &dyn Store,
    tenant: &Tenant,
    kind: KeyKind,
    hours: i64,
) -> ApiResult<(Value, Value)> {
    let now = crate::time::now_ms();
    let keys = store.all(&tenant.key(), KEYS_KIND).await?;
    let working: Vec<&crate::store::Doc> = keys
        .iter()
        .filter(|k| kind_of(k) == Some(kind) && status_at(k, now) == "active")
        .collect();
    let old = match working.as_slice() {
        [one] => one["id"].as_str().unwrap_or_default().to_string(),
        [] => {
            return Err(ApiError::conflict(format!(
                "The organization `{}` has no working {} key in {} mode to roll.",
                tenant.org,
                kind.as_str(),
                tenant.mode.as_str()
            )))
        }
        many => {
            let ids: Vec<&str> = many.iter().filter_map(|k| k["id"].as_str()).collect();
            return Err(ApiError::conflict(format!(
                "The organization `{}` has {} working {} keys in {} mode ({}); roll one through the API.",
                tenant.org,
                ids.len(),
                kind.as_str(),
                tenant.mode.as_str(),
                ids.join(", ")
            )));
        }
    };
    let ctx = Ctx::new(store, tenant);
    let reply = roll(&ctx, &old, hours).await?;
    let rolled = engine::get(&ctx, &RESOURCE, &old).await?;
    Ok((reply.body, (*rolled).clone()))
}

/// The OpenAPI document's keys: `permissions` names every resource and its
/// levels; a create's `type` can only be `restricted`, and a PATCH cannot
/// change it; `lastUsedAt` and `expiresAt` are null until set.
pub fn document(schemas: &mut Map<String, Value>) {
    let level = json!({"type": "string", "enum": LEVELS});
    let props: Map<String, Value> = permission_resources()
        .iter()
        .map(|r| (r.to_string(), level.clone()))
        .collect();
    let patch_props: Map<String, Value> = permission_resources()
        .iter()
        .map(|r| {
            (
                r.to_string(),
                json!({"anyOf": [level.clone(), {"type": "null"}]}),
            )
        })
        .collect();
    let perms = |props: &Map<String, Value>, doc: &Value| {
        json!({"type": "object", "properties": props, "additionalProperties": false,
            "description": doc})
    };
    for name in ["ApiKey", "ApiKeyCreated", "ApiKeyCreate", "ApiKeyUpdate"] {
        let Some(s) = schemas.get_mut(name) else {
            continue;
        };
        let Some(p) = s.get_mut("properties").and_then(Value::as_object_mut) else {
            continue;
        };
        if let Some(old) = p.get("permissions").cloned() {
            let doc = old
                .get("description")
                .or_else(|| old.pointer("/anyOf/0/description"))
                .cloned()
                .unwrap_or(Value::Null);
            p.insert(
                "permissions".into(),
                match name {
                    "ApiKeyUpdate" => {
                        json!({"anyOf": [perms(&patch_props, &doc), {"type": "null"}],
                        "description": doc})
                    }
                    _ => perms(&props, &doc),
                },
            );
        }
        for f in ["lastUsedAt", "expiresAt"] {
            if let Some(v) = p.get_mut(f) {
                v["type"] = json!(["string", "null"]);
            }
        }
        match name {
            "ApiKeyCreate" => {
                if let Some(t) = p.get_mut("type") {
                    t["enum"] = json!(["restricted"]);
                }
            }
            "ApiKeyUpdate" => {
                p.remove("type");
            }
            _ => {}
        }
    }
}

static ROLL_BODY: &[Field] = &[Field::new(
    "expiresInHours",
    Ty::Int {
        min: 0,
        max: MAX_OVERLAP_HOURS,
    },
    "Hours the old key keeps working (0 to 12; default 0: it stops at once).",
)];

/// The standard keys come with the organization: a new key is `restricted`.
fn schema_rules(s: &mut Value, create: bool) {
    if create {
        crate::schema::only(s, "type", &["restricted"]);
    }
}

pub static RESOURCE: Resource = Resource {
    path: KEYS_KIND,
    object: "apiKey",
    label: "API key",
    prefix: "key",
    fields: &[
        Field::new(
            "type",
            Ty::Enum(TYPES),
            "`secret` and `publishable`: the organization's standard keys; `restricted`: a key with a permission per resource (the only type created here).",
        )
        .required(),
        Field::new("mode", Ty::Enum(&["test", "live"]), "The mode the key works in.").read_only(),
        Field::new("prefix", Ty::Str, "The key's prefix (`sk_test`, `rk_live`…).").read_only(),
        Field::new("last4", Ty::Str, "The key's last four characters.").read_only(),
        Field::new(
            "note",
            Ty::Text,
            "Free text: what the key is for, where it is kept.",
        ),
        Field::new(
            "permissions",
            Ty::Metadata,
            "Restricted keys: resource path → `none` (the default), `read` (list, get, availability) or `write` (everything else, and read). A PATCH merges: `null` removes one.",
        ),
        Field::new(
            "lastUsedAt",
            Ty::Timestamp,
            "When the key was last used, to the minute (null: never).",
        )
        .read_only(),
        Field::new(
            "expiresAt",
            Ty::Timestamp,
            "When a rolled key stops working (null: it has not been rolled).",
        )
        .read_only(),
        Field::new(
            "status",
            Ty::Enum(STATUSES),
            "`active`; `expiring` (rolled, works until `expiresAt`); `revoked` (no longer works). Shown as of the moment it is read; a list filtered by `status` matches it as of the key's last change (`expiresAt[$lte]=…` finds keys whose overlap has ended).",
        )
        .read_only(),
    ],
    search_fields: &["note"],
    description: "An API key: its prefix and last four characters, never the key itself (shown once, when created or rolled). Managed only with a secret key of the same mode.",
    rules: &KeyRules,
    schema_rules: Some(schema_rules),
    on_read: Some(on_read),
    created_extra: &[Field::new(
        "secret",
        Ty::Str,
        "The new key (`rk_test_…`), shown only in this response: only its hash is kept. Left out of an idempotent replay.",
    )
    .read_only()],
    actions: &[Action {
        name: "roll",
        summary: "Replace the key: a new key at once (its secret in this response only); the old key works until `expiresAt` (now plus `expiresInHours`), then gets 401.",
        body: ROLL_BODY,
        status: 200,
        response: Shape::Created,
        conflicts: true,
        run: roll_action,
    }],
    ..Resource::CRUD
};

#[cfg(test)]
mod tests {
    use super::*;

    /// The permissions are exactly the resources of the route table's
    /// routes (but API keys themselves).
    #[test]
    fn permissions_are_the_route_tables_resources() {
        let mut from_routes: Vec<&str> = crate::api::routes()
            .iter()
            .filter_map(|r| r.access())
            .map(|a| a.resource)
            .filter(|r| *r != KEYS_KIND)
            .collect();
        from_routes.sort_unstable();
        from_routes.dedup();
        assert_eq!(permission_resources(), from_routes.as_slice());
        assert!(permission_resources().contains(&"patients"));
        assert!(permission_resources().contains(&"webhook-endpoints"));
    }

    #[test]
    fn status_follows_the_clock() {
        assert_eq!(status_at(&json!({"expiresAt": null}), 5), "active");
        let d = json!({"expiresAt": crate::time::format_ms(10_000)});
        assert_eq!(status_at(&d, 9_999), "expiring");
        assert_eq!(status_at(&d, 10_000), "revoked");
    }

    #[test]
    fn permission_checks() {
        let mut errors = Vec::new();
        let p = json!({"patients": "read", "appointments": "write", "clinics": "none"});
        permission_errors(p.as_object().unwrap(), &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        let p = json!({"patient": "read", "patients": "admin", "api-keys": "read"});
        permission_errors(p.as_object().unwrap(), &mut errors);
        assert_eq!(errors.len(), 3, "{errors:?}");
    }
}
