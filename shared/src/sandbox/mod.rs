//! The sandbox: "St. Mungo's Clinic", loaded into every new organization's
//! test mode through the same create path as the API.

mod activity;
mod plan;

use crate::auth::Tenant;
use crate::error::{ApiError, ApiResult};
use crate::resources::{self, Ctx};
use crate::store::Store;
use serde_json::Value;
use std::collections::HashMap;

pub use plan::{plan, SeedItem};

fn resolve(v: &mut Value, ids: &HashMap<String, String>) -> ApiResult<()> {
    match v {
        Value::String(s) if s.starts_with('@') => {
            let id = ids.get(&s[1..]).ok_or_else(|| {
                crate::log::error("sandbox", &format!("unresolved reference {s}"));
                ApiError::internal()
            })?;
            *s = id.clone();
        }
        Value::Array(items) => items.iter_mut().try_for_each(|i| resolve(i, ids))?,
        Value::Object(m) => m.values_mut().try_for_each(|i| resolve(i, ids))?,
        _ => {}
    }
    Ok(())
}

/// Load the sandbox into `tenant` (a new organization's test mode, empty).
/// A store that loads in bulk (DynamoDB) gets it as one batch of the end
/// state: the same create path runs against a staging embedded database in
/// a temporary directory, and what its writes left is put at once, index
/// entries and counters included — a few seconds on DynamoDB instead of a
/// transaction per object.
pub async fn load(store: &dyn Store, tenant: &Tenant) -> ApiResult<()> {
    if !store.loads_in_bulk() {
        return load_through(store, tenant).await;
    }
    let dir = std::env::temp_dir().join(format!("hub-sandbox-{}", crate::ids::ulid()));
    let staged = async {
        let staging = crate::store::embedded::EmbeddedStore::open(&dir, resources::kinds())?;
        let staging = crate::store::Recorder::new(staging);
        load_through(&staging, tenant).await?;
        ApiResult::Ok(staging.take())
    }
    .await;
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        crate::log::error("sandbox", &format!("staging directory not removed: {e}"));
    }
    store.load_fresh(staged?).await?;
    Ok(())
}

async fn load_through(store: &dyn Store, tenant: &Tenant) -> ApiResult<()> {
    let ctx = Ctx::new(store, tenant);
    let mut ids = HashMap::new();
    for mut item in plan() {
        let res = resources::by_path(item.resource).ok_or_else(ApiError::internal)?;
        resolve(&mut item.body, &ids)?;
        let doc = resources::create(&ctx, res, item.body)
            .await
            .inspect_err(|e| {
                let msg = format!("seed item {} refused: {}", item.key, e.message);
                crate::log::error("sandbox", &msg);
            })?;
        if let Some(id) = doc.body.get("id").and_then(Value::as_str) {
            ids.insert(item.key, id.to_string());
        }
    }
    activity::load(&ctx, &ids, crate::time::now_ms()).await
}
