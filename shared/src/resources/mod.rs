//! The resource layer. What is generic (validation from the schema, lists,
//! events, OpenAPI) is driven by each resource's static `Resource`
//! declaration and runs in `engine`; what is particular to one resource (a
//! lifecycle, an invariant across objects, a derived field, an extra event,
//! an action route) lives in that resource's own module, behind its
//! `Rules` hook and its `Action`s. A new resource is one module plus a line
//! in `REGISTRY`.

pub mod api_keys;
mod appointment_types;
pub mod appointments;
mod check_ins;
mod clinics;
mod credit_notes;
mod engine;
mod events;
mod hearing_tests;
pub mod invoices;
mod messages;
mod packages;
mod patient_statuses;
mod patients;
mod practitioners;
pub mod purchases;
mod referral_sources;
mod transactions;
pub mod validate;
mod webhook_deliveries;
pub mod webhook_endpoints;

pub use engine::{
    create, delete, get, get_with_json, list, run_action, update, update_other, Retries,
};
pub use practitioners::DAYS;

use crate::auth::Tenant;
use crate::error::ApiResult;
use crate::queue::Queue;
use crate::schema::{Field, Ty, COMMON};
use crate::store::{EventRecord, KindSpec, Kinds, Lookup, Store, WriteOp};
use async_trait::async_trait;
use serde_json::{Map, Value};
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;

/// `referralId` / `referralName`: exactly one, the name resolved
/// case-insensitively to an object of `target`.
#[derive(Debug)]
pub struct Group {
    pub id_field: &'static str,
    pub name_field: &'static str,
    pub target: &'static str,
    pub target_name_field: &'static str,
    /// What a publishable key (a web form, the booking widget) gets when it
    /// gives neither field: it cannot list `target` to choose.
    pub publishable_default: Option<GroupDefault>,
}

/// The organization's default of a field group, for publishable keys.
#[derive(Debug, Clone, Copy)]
pub enum GroupDefault {
    /// The object with the lowest `order` (the first stage of a pipeline),
    /// then the first by name.
    LowestOrder,
    /// The object of this name (case-insensitive).
    Named(&'static str),
}

/// What publishable keys (web forms, booking widgets) may do.
#[derive(Debug, Clone, Copy)]
pub struct Publishable {
    pub read: bool,
    pub create: bool,
}

/// The write a hook sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Create,
    Update,
    Delete,
}

/// One write of one object, as its resource's `Rules` see it: the stored
/// document before (update, delete), the fields about to be stored (create,
/// update), and what the hook adds to the same atomic write.
pub struct Change<'a> {
    pub verb: Verb,
    pub id: &'a str,
    /// The stored document before the write (update, delete).
    pub old: Option<&'a Value>,
    /// The request's merge patch (update).
    pub patch: Option<&'a Map<String, Value>>,
    /// The validated fields to store; a hook may complete them (derived
    /// fields). Empty on delete.
    pub new: Map<String, Value>,
    /// More operations for the same atomic write (guards, counters, other
    /// objects' next versions with their `expect`).
    pub ops: Vec<WriteOp>,
    /// More event verbs about this object (`confirmed`…), whose data is the
    /// object as written.
    pub verbs: Vec<&'static str>,
    /// Events about other objects, fully formed.
    pub events: Vec<EventRecord>,
    /// Fields only this response carries (shown once, never stored with it).
    pub extra: Map<String, Value>,
    /// The write's instant (`updatedAt`).
    pub now_ms: i64,
}

impl Change<'_> {
    /// The value a field will have after the write.
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.new.get(field)
    }

    /// The value a field had before the write.
    pub fn was(&self, field: &str) -> Option<&Value> {
        self.old.and_then(|o| o.get(field))
    }

    /// Did the write change this field?
    pub fn changed(&self, field: &str) -> bool {
        self.verb == Verb::Update && self.get(field) != self.was(field)
    }
}

/// A resource's own rules: called by the engine on every create, update and
/// delete with the old and the new document. A hook may refuse (400 naming a
/// field, 409 saying what is allowed), complete the new document, add
/// operations to the same atomic write, and add events. A version conflict on
/// anything it read makes the engine run it again on fresh reads.
#[async_trait]
pub trait Rules: Sync {
    async fn check(&self, _ctx: &Ctx<'_>, _change: &mut Change<'_>) -> ApiResult<()> {
        Ok(())
    }
}

/// Plain CRUD: no rules of its own.
pub struct NoRules;
impl Rules for NoRules {}

/// What an action or a route answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    /// The object's version, sent as `ETag`.
    pub version: Option<u64>,
    /// Top-level fields shown only in this response: never stored for an
    /// idempotent replay.
    pub once: &'static [&'static str],
}

impl Reply {
    pub fn new(status: u16, body: Value) -> Reply {
        Reply {
            status,
            body,
            version: None,
            once: &[],
        }
    }

    /// An object, with its version as the ETag.
    pub fn object(status: u16, doc: &Value) -> Reply {
        Reply {
            status,
            body: doc.clone(),
            version: doc.get("version").and_then(Value::as_u64),
            once: &[],
        }
    }

    pub fn headers(&self) -> Vec<(&'static str, String)> {
        self.version
            .map(|v| vec![("etag", format!("\"{v}\""))])
            .unwrap_or_default()
    }
}

/// The response of an action, for the OpenAPI document.
#[derive(Debug)]
pub enum Shape {
    /// The resource's own object.
    Own,
    /// The resource's own object with the fields only its create response
    /// carries (`created_extra`: a new key's `secret`).
    Created,
    /// An event envelope.
    Event,
    /// A named object of these fields.
    Object {
        name: &'static str,
        fields: &'static [Field],
    },
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
pub type ActionFn =
    for<'a> fn(&'a Ctx<'a>, &'a str, Map<String, Value>) -> BoxFuture<'a, ApiResult<Reply>>;

/// `POST /v1/{path}/{id}/{name}`: a step beyond CRUD. Its body is
/// validated against `body` (unknown fields refused) before `run`.
#[derive(Debug)]
pub struct Action {
    pub name: &'static str,
    pub summary: &'static str,
    pub body: &'static [Field],
    /// The success status (200, or 202 when the work continues after).
    pub status: u16,
    pub response: Shape,
    /// Conflicts it can answer (409), for the OpenAPI document.
    pub conflicts: bool,
    pub run: ActionFn,
}

impl std::fmt::Debug for dyn Rules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rules")
    }
}

/// `GET /v1/{path}/{id}/{name}`: the objects of `resource` whose `field` is
/// the id.
#[derive(Debug)]
pub struct SubList {
    pub name: &'static str,
    pub resource: &'static Resource,
    pub field: &'static str,
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
    /// The fields every object of it has (`id`, `createdAt`…).
    pub common: &'static [Field],
    pub fields: &'static [Field],
    pub groups: &'static [Group],
    /// Fields unique per tenant, compared case-insensitively.
    pub unique: &'static [&'static str],
    pub publishable: Publishable,
    /// Text fields `$search` looks in.
    pub search_fields: &'static [&'static str],
    pub description: &'static str,
    /// List and get only (no create, update, delete, and no events of its own).
    pub read_only: bool,
    /// Not routed at `/v1/{path}` (reached through another resource).
    pub internal: bool,
    /// Fields with an equality index on DynamoDB.
    pub lookups: &'static [Lookup],
    /// Lists by `updatedAt` served by an index.
    pub by_updated: bool,
    /// Objects are gone this long after creation.
    pub ttl_ms: Option<i64>,
    pub actions: &'static [Action],
    pub sublists: &'static [SubList],
    pub rules: &'static dyn Rules,
    /// Event verbs beyond created/updated/deleted (`appointment.confirmed`).
    pub events: &'static [&'static str],
    /// Fields only the create response carries (shown once).
    pub created_extra: &'static [Field],
    /// The field naming the patient an object is about: its events carry a
    /// slim reference `patient: {id, fullName, tracking}`.
    pub patient_field: Option<&'static str>,
    /// A second date field lists are ordered and ranged by through an
    /// index (`startAt`, `issuedAt`), besides `createdAt` and `updatedAt`.
    pub ordered_by: Option<&'static str>,
    /// Applied to every stored document read (get, list) before it is
    /// answered or changed: fields that follow the clock (an API key's
    /// `status`).
    pub on_read: Option<fn(&mut Value)>,
    /// The resource's own rules where JSON Schema can say them
    /// (`multipleOf`, `minItems`, `if`/`then`, the statuses a new object may
    /// have), applied to its create (`true`) and update (`false`) schemas in
    /// the OpenAPI document. Written next to the `Rules` that enforce them.
    pub schema_rules: Option<fn(&mut Value, bool)>,
}

/// The defaults of a plain CRUD resource, for `..Resource::CRUD` in definitions.
impl Resource {
    pub const CRUD: Resource = Resource {
        path: "",
        object: "",
        label: "",
        prefix: "",
        common: COMMON,
        fields: &[],
        groups: &[],
        unique: &[],
        publishable: Publishable {
            read: false,
            create: false,
        },
        search_fields: &[],
        description: "",
        read_only: false,
        internal: false,
        lookups: &[],
        by_updated: true,
        ttl_ms: None,
        actions: &[],
        sublists: &[],
        rules: &NoRules,
        events: &[],
        created_extra: &[],
        patient_field: None,
        ordered_by: None,
        on_read: None,
        schema_rules: None,
    };
}

static REGISTRY: &[&Resource] = &[
    &clinics::RESOURCE,
    &practitioners::RESOURCE,
    &referral_sources::RESOURCE,
    &patient_statuses::RESOURCE,
    &patients::RESOURCE,
    &appointment_types::RESOURCE,
    &appointments::RESOURCE,
    &invoices::RESOURCE,
    &transactions::RESOURCE,
    &credit_notes::RESOURCE,
    &hearing_tests::RESOURCE,
    &packages::RESOURCE,
    &purchases::RESOURCE,
    &check_ins::RESOURCE,
    &messages::RESOURCE,
    &webhook_endpoints::RESOURCE,
    &api_keys::RESOURCE,
    &events::RESOURCE,
    &webhook_deliveries::RESOURCE,
];

/// Read-only views that are not a resource's list (`GET /v1/{path}`).
static VIEWS: &[&View] = &[&appointments::AVAILABILITY];

pub fn views() -> &'static [&'static View] {
    VIEWS
}

pub type ViewFn = for<'a> fn(&'a Ctx<'a>, Map<String, Value>) -> BoxFuture<'a, ApiResult<Value>>;

/// `GET /v1/{path}` answering `{"object": "list", "data": [items]}` from
/// query parameters validated against `params` (unknown ones refused).
#[derive(Debug)]
pub struct View {
    pub path: &'static str,
    pub summary: &'static str,
    pub description: &'static str,
    pub params: &'static [Field],
    pub item: &'static [Field],
    /// The item's schema name in the OpenAPI document.
    pub item_name: &'static str,
    /// The item fields that order the items (the view returns them so
    /// sorted) and tell one from another: a page's cursor names a position
    /// in this order.
    pub order: &'static [&'static str],
    /// The resource whose read permission it needs.
    pub access: &'static str,
    pub publishable: bool,
    pub run: ViewFn,
}

/// Run a view on a raw query string.
pub async fn run_view(ctx: &Ctx<'_>, view: &View, raw_query: &str) -> ApiResult<Value> {
    let tree = crate::query::qs::parse(raw_query)?;
    let mut input = Map::new();
    let mut errors = Vec::new();
    for (key, node) in &tree {
        let Some(f) = view.params.iter().find(|f| f.name == key) else {
            errors.push(validate::unknown(
                "",
                key,
                view.params.iter().map(|f| f.name),
            ));
            continue;
        };
        match node {
            crate::query::qs::Node::Leaf(v) if v.len() == 1 => {
                let raw = &v[0];
                // Query strings carry text: numbers are numbers here.
                let numeric = matches!(f.ty, Ty::Int { .. } | Ty::Timestamp)
                    && !raw.is_empty()
                    && raw.bytes().all(|b| b.is_ascii_digit());
                let value = match raw.parse::<i64>() {
                    Ok(n) if numeric => Value::from(n),
                    _ => Value::String(raw.clone()),
                };
                input.insert(key.clone(), value);
            }
            _ => errors.push(crate::error::FieldError::new(
                key.clone(),
                "must be given once, as a single value",
            )),
        }
    }
    let clean = validate::object(view.params, &input, "", &mut errors);
    if !errors.is_empty() {
        return Err(crate::error::ApiError::fields(errors));
    }
    (view.run)(ctx, clean).await
}

pub fn registry() -> &'static [&'static Resource] {
    REGISTRY
}

pub fn by_path(path: &str) -> Option<&'static Resource> {
    REGISTRY.iter().copied().find(|r| r.path == path)
}

/// What the stores need to know of every kind: the resources' declarations
/// plus the kinds that are not resources.
pub fn kinds() -> Kinds {
    static KINDS: OnceLock<Vec<KindSpec>> = OnceLock::new();
    let specs = KINDS.get_or_init(|| {
        let mut out: Vec<KindSpec> = REGISTRY
            .iter()
            .map(|r| KindSpec {
                kind: r.path,
                prefix: Some(r.prefix),
                lookups: index_lookups(r),
                by_updated: r.by_updated,
                ordered_by: r.ordered_by,
                ttl_ms: r.ttl_ms,
                search: r.search_fields,
                sorted: directory_fields(r),
                counted: r.ttl_ms.is_none(),
            })
            .collect();
        out.push(KindSpec {
            ttl_ms: Some(crate::auth::idempotency::TTL_MS),
            ..KindSpec::plain(crate::auth::idempotency::KIND)
        });
        out
    });
    Kinds(specs.as_slice())
}

/// The equality lookups a resource's lists are served by on DynamoDB: the
/// declared ones, and every reference field (`…Id`, or an array of them),
/// ordered by the resource's own date where it has one (as the declared
/// ones are) and counted per value unless the objects expire.
fn index_lookups(r: &Resource) -> &'static [Lookup] {
    let mut out: Vec<Lookup> = r.lookups.to_vec();
    for f in r.fields {
        let is_ref = match &f.ty {
            Ty::Ref(_) => true,
            Ty::Array(inner, _) => matches!(inner, Ty::Ref(_)),
            _ => false,
        };
        if !is_ref || out.iter().any(|l| l.field == f.name) {
            continue;
        }
        let l = match r.ordered_by {
            Some(date) => Lookup::ranged(f.name, date),
            None => Lookup::eq(f.name),
        };
        out.push(if r.ttl_ms.is_none() { l.counted() } else { l });
    }
    if r.ttl_ms.is_none() {
        // Declared references are counted like derived ones.
        for l in out.iter_mut() {
            let is_ref = r
                .fields
                .iter()
                .any(|f| f.name == l.field && matches!(f.ty, Ty::Ref(_)));
            if is_ref {
                l.counted = true;
                l.guards = r.fields.iter().any(|f| f.name == l.field && f.restrict);
            }
        }
    }
    Vec::leak(out)
}

/// The string fields a resource's directory is sorted by: `fullName` and
/// `name`.
fn directory_fields(r: &Resource) -> &'static [&'static str] {
    let out: Vec<&'static str> = r
        .fields
        .iter()
        .filter(|f| matches!(f.name, "fullName" | "name") && matches!(f.ty, Ty::Str))
        .map(|f| f.name)
        .collect();
    Vec::leak(out)
}

/// Every event type an endpoint may subscribe to (SPEC §6's catalog).
pub fn event_catalog() -> &'static [String] {
    static CATALOG: OnceLock<Vec<String>> = OnceLock::new();
    CATALOG.get_or_init(|| {
        let mut out = Vec::new();
        for r in REGISTRY.iter().filter(|r| !r.read_only) {
            for verb in ["created", "updated", "deleted"]
                .iter()
                .chain(r.events.iter())
            {
                let t = if verb.contains('.') {
                    verb.to_string()
                } else {
                    format!("{}.{verb}", r.object)
                };
                if !out.contains(&t) {
                    out.push(t);
                }
            }
        }
        out
    })
}

impl Resource {
    pub fn field_sets(&self) -> [&'static [Field]; 2] {
        [self.common, self.fields]
    }

    pub fn has_field(&self, name: &str) -> bool {
        self.fields.iter().any(|f| f.name == name)
    }

    pub fn action(&self, name: &str) -> Option<&'static Action> {
        self.actions.iter().find(|a| a.name == name)
    }

    pub fn sublist(&self, name: &str) -> Option<&'static SubList> {
        self.sublists.iter().find(|s| s.name == name)
    }

    fn unique_scope(&self, tenant: &Tenant, field: &str) -> String {
        format!("{}/{}/{}", tenant.key(), self.path, field)
    }
}

/// Everything a handler needs to act for one tenant.
pub struct Ctx<'a> {
    pub store: &'a dyn Store,
    /// The delivery queue (test events, redeliveries), where one runs.
    pub queue: Option<&'a dyn Queue>,
    pub tenant: &'a Tenant,
    /// The kind of key the request came with (`None`: the hub itself, e.g.
    /// loading the sandbox).
    pub key: Option<crate::auth::KeyKind>,
    /// The request's `Idempotency-Key` claim: its response is stored in the
    /// same atomic write as its effect.
    pub idempotency: Option<&'a crate::auth::idempotency::Claim>,
}

impl<'a> Ctx<'a> {
    pub fn new(store: &'a dyn Store, tenant: &'a Tenant) -> Ctx<'a> {
        Ctx {
            store,
            queue: None,
            tenant,
            key: None,
            idempotency: None,
        }
    }

    /// Did the request come with a publishable key (a web form, a widget)?
    pub fn publishable(&self) -> bool {
        self.key == Some(crate::auth::KeyKind::Publishable)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The worst write of any kind on DynamoDB — an update that changes every
    /// indexed value, with text enough for the full count of stems both
    /// before and after — stays within one transaction of 100 items,
    /// counting the object, its events (one per change plus one) and its
    /// uniqueness claims (claim and release per unique field).
    #[test]
    fn the_worst_write_fits_one_transaction() {
        use crate::store::derived;
        for spec in kinds().0 {
            let mk = |v: &str| {
                let mut doc =
                    serde_json::json!({"id": "x_1", "updatedAt": "2026-01-01T00:00:00.000Z"});
                for l in spec.lookups {
                    let mut cur = &mut doc;
                    let segs: Vec<&str> = l.field.split('.').collect();
                    for (i, seg) in segs.iter().enumerate() {
                        if i + 1 == segs.len() {
                            cur[*seg] = Value::String(format!("{v}-{}", l.field));
                        } else {
                            if cur.get(*seg).is_none() {
                                cur[*seg] = serde_json::json!({});
                            }
                            cur = &mut cur[*seg];
                        }
                    }
                    if let Some(r) = l.range {
                        doc[r] = Value::String(format!("2026-0{}", v.len()));
                    }
                }
                for f in spec.sorted {
                    doc[*f] = Value::String(v.to_string());
                }
                for f in spec.search {
                    let text: Vec<String> = (0..200).map(|i| format!("{v}word{i}")).collect();
                    doc[*f] = Value::String(text.join(" "));
                }
                doc
            };
            let (a, b) = (mk("a"), mk("bb"));
            let (da, db) = (
                derived::derive(spec, "org#test", &a),
                derived::derive(spec, "org#test", &b),
            );
            let entries = da.entries.symmetric_difference(&db.entries).count();
            let counts = da.counts.symmetric_difference(&db.counts).count();
            let unique = by_path(spec.kind).map(|r| r.unique.len()).unwrap_or(0);
            let items = 1 + 2 + 2 * unique + entries + counts;
            assert!(
                items <= crate::store::dynamodb::MAX_TRANSACTION_ITEMS,
                "{}: {items} items",
                spec.kind
            );
        }
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
            for l in r.lookups {
                assert!(
                    crate::schema::path_type(r.fields, &l.field.split('.').collect::<Vec<_>>())
                        .is_some(),
                    "{} looks up unknown {}",
                    r.path,
                    l.field
                );
            }
        }
    }
}
