//! Organizations: creation with the four standard keys, and the sandbox.

use crate::auth::{KeyKind, Mode, Principal, Tenant};
use crate::error::{ApiError, ApiResult};
use crate::store::{Expect, Store, WriteOp, WriteTx};
use serde_json::{json, Value};

pub use crate::store::ORGS_KIND;

#[derive(Debug, Clone)]
pub struct ModeKeys {
    pub secret: String,
    pub publishable: String,
}

#[derive(Debug, Clone)]
pub struct CreatedOrg {
    pub organization_id: String,
    pub name: String,
    pub test: ModeKeys,
    pub live: ModeKeys,
}

impl CreatedOrg {
    /// The `--json` form of SPEC §2.
    pub fn to_json(&self) -> Value {
        json!({
            "organizationId": self.organization_id,
            "name": self.name,
            "keys": {
                "test": {"secret": self.test.secret, "publishable": self.test.publishable},
                "live": {"secret": self.live.secret, "publishable": self.live.publishable},
            }
        })
    }
}

/// Create an organization, its four keys (one atomic write) and, unless
/// `empty`, the sandbox clinic in its test mode.
pub async fn create(store: &dyn Store, name: &str, empty: bool) -> ApiResult<CreatedOrg> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(crate::error::ApiError::field(
            "name",
            "must be 1 to 200 characters",
        ));
    }
    let org = crate::ids::new_id("org");
    let now = crate::time::format_ms(crate::time::now_ms());
    let mut ops = vec![WriteOp::Put {
        tenant: org.clone(),
        kind: ORGS_KIND,
        id: org.clone(),
        doc: json!({"id": org, "object": "organization", "name": name, "createdAt": now, "updatedAt": now, "version": 1}),
        expect: Expect::Absent,
    }];
    let mut plain = Vec::new();
    for mode in [Mode::Test, Mode::Live] {
        let tenant = Tenant::new(org.clone(), mode);
        for kind in [KeyKind::Secret, KeyKind::Publishable] {
            let (secret, key_ops) = crate::resources::api_keys::standard_key(&tenant, kind);
            ops.extend(key_ops);
            plain.push(secret);
        }
    }
    // New ids only: a write cancelled for contention is sent again.
    crate::store::commit_retrying(store, WriteTx::of(ops)).await?;
    if !empty {
        crate::sandbox::load(store, &Tenant::new(org.clone(), Mode::Test)).await?;
    }
    let mut it = plain.into_iter();
    let mut next = || it.next().unwrap_or_default();
    Ok(CreatedOrg {
        organization_id: org,
        name: name.to_string(),
        test: ModeKeys {
            secret: next(),
            publishable: next(),
        },
        live: ModeKeys {
            secret: next(),
            publishable: next(),
        },
    })
}

pub async fn exists(store: &dyn Store, org: &str) -> ApiResult<bool> {
    Ok(store.get(org, ORGS_KIND, org).await?.is_some())
}

/// `hub keys roll`: roll the working standard key of `kind` of an
/// organization that exists, in one mode. Returns the new key (with its
/// `secret`) and the rolled one.
pub async fn roll_key(
    store: &dyn Store,
    tenant: &Tenant,
    kind: KeyKind,
    hours: i64,
) -> ApiResult<(Value, Value)> {
    if !exists(store, &tenant.org).await? {
        return Err(ApiError::not_found("organization", &tenant.org));
    }
    crate::resources::api_keys::roll_standard(store, tenant, kind, hours).await
}

/// `GET /v1/organization`: the organization a key belongs to, seen from the
/// key's mode (`livemode`). The route's permission (`organization: read`)
/// has been checked before: secret keys, and restricted keys holding it;
/// never a publishable key, which is public.
pub async fn describe(store: &dyn Store, who: &Principal) -> ApiResult<Value> {
    let org = &who.tenant.org;
    let doc = store
        .get(org, ORGS_KIND, org)
        .await?
        .ok_or_else(|| ApiError::not_found("organization", org))?;
    Ok(json!({
        "id": org,
        "object": "organization",
        "name": doc["name"],
        "livemode": who.tenant.livemode(),
        "createdAt": doc["createdAt"],
        "updatedAt": doc["updatedAt"],
    }))
}
