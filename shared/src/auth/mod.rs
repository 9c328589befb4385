//! Organizations' modes, API keys (only hashes stored) and what each kind
//! of key may do.

pub mod idempotency;
pub mod ratelimit;

use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::store::{Expect, Store, WriteOp, WriteTx};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    Test,
    Live,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Test => "test",
            Mode::Live => "live",
        }
    }
}

/// One organization in one mode: the unit of isolation. Its storage key leads
/// every record it owns.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tenant {
    pub org: String,
    pub mode: Mode,
}

impl Tenant {
    pub fn new(org: impl Into<String>, mode: Mode) -> Tenant {
        Tenant {
            org: org.into(),
            mode,
        }
    }
    pub fn key(&self) -> String {
        let mode = self.mode.as_str();
        let mut key = String::with_capacity(self.org.len() + 1 + mode.len());
        key.push_str(&self.org);
        key.push('#');
        key.push_str(mode);
        key
    }
    pub fn livemode(&self) -> bool {
        self.mode == Mode::Live
    }
}

impl fmt::Display for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Secret,
    Publishable,
    Restricted,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Secret => "secret",
            KeyKind::Publishable => "publishable",
            KeyKind::Restricted => "restricted",
        }
    }
    pub fn prefix(self) -> &'static str {
        match self {
            KeyKind::Secret => "sk",
            KeyKind::Publishable => "pk",
            KeyKind::Restricted => "rk",
        }
    }
}

/// Who is calling: the tenant their key belongs to and what kind of key it is.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant: Tenant,
    pub kind: KeyKind,
    pub key_id: String,
    /// A restricted key's permissions: resource path → `read` | `write`
    /// (anything else, or absent: `none`).
    pub permissions: Option<Map<String, Value>>,
}

/// What a route needs: its resource (the URL path segment), the level of
/// access, and whether a publishable key may do it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    pub resource: &'static str,
    pub level: Level,
    pub publishable: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// List, get.
    Read,
    /// Everything else.
    Write,
}

impl Principal {
    /// Secret keys may do anything in their mode; publishable keys only what
    /// a web form or booking widget needs; restricted keys what their
    /// permission on the route's resource allows (`write` implies `read`).
    pub fn authorize(&self, access: Access) -> ApiResult<()> {
        let level = match access.level {
            Level::Read => "read",
            Level::Write => "write",
        };
        match self.kind {
            KeyKind::Secret => Ok(()),
            KeyKind::Publishable if access.publishable => Ok(()),
            KeyKind::Publishable => Err(ApiError::new(
                ErrorKind::Permissions,
                format!(
                    "A publishable key cannot {} {}; use a secret key from your server.",
                    match access.level {
                        Level::Read => "read",
                        Level::Write => "change",
                    },
                    access.resource
                ),
            )),
            KeyKind::Restricted if access.resource == KEYS_KIND => Err(ApiError::new(
                ErrorKind::Permissions,
                "API keys are managed only with a secret key (sk_…) of the same mode; a restricted key cannot read or change them.",
            )),
            KeyKind::Restricted => {
                let has = self
                    .permissions
                    .as_ref()
                    .and_then(|p| p.get(access.resource))
                    .and_then(Value::as_str)
                    .filter(|l| *l == "read" || *l == "write")
                    .unwrap_or("none");
                if has == "write" || has == level {
                    return Ok(());
                }
                Err(ApiError::new(
                    ErrorKind::Permissions,
                    format!(
                        "This restricted key needs `{level}` permission on `{}` for this request; it has `{has}`. A secret key can change its permissions (PATCH /v1/api-keys/{}).",
                        access.resource, self.key_id
                    ),
                ))
            }
        }
    }
}

pub const KEYS_KIND: &str = "api-keys";
/// The permission `GET /v1/organization` needs of a restricted key (`read`;
/// `write` implies it, there is nothing to change): not a resource of the
/// registry, but a permission a key holds like one.
pub const ORGANIZATION_PERMISSION: &str = "organization";
pub const KEY_HASH_SCOPE: &str = "api-key-hash";
const TOKEN_LEN: usize = 40;

pub fn hash_key(key: &str) -> String {
    crate::ids::hex(&Sha256::digest(key.as_bytes()))
}

/// `sk_test_…` → (kind, mode), if the shape is right.
pub fn parse_key_shape(key: &str) -> Option<(KeyKind, Mode)> {
    let mut parts = key.splitn(3, '_');
    let kind = match parts.next()? {
        "sk" => KeyKind::Secret,
        "pk" => KeyKind::Publishable,
        "rk" => KeyKind::Restricted,
        _ => return None,
    };
    let mode = match parts.next()? {
        "test" => Mode::Test,
        "live" => Mode::Live,
        _ => return None,
    };
    let token = parts.next()?;
    (token.len() == TOKEN_LEN && token.bytes().all(|c| c.is_ascii_alphanumeric()))
        .then_some((kind, mode))
}

/// A new key's plaintext, `{sk|pk|rk}_{test|live}_` and 40 random letters
/// and digits: shown once, then only its hash is kept.
pub fn generate_key(kind: KeyKind, mode: Mode) -> String {
    format!(
        "{}_{}_{}",
        kind.prefix(),
        mode.as_str(),
        crate::ids::random_token(TOKEN_LEN)
    )
}

fn auth_error(message: &str) -> ApiError {
    ApiError::new(ErrorKind::Auth, message).with_header("WWW-Authenticate", "Bearer")
}

/// Why an `Authorization` value is unusable, for a human (never echoing
/// the key).
fn unusable(raw: &[u8]) -> Result<(&str, KeyKind, Mode), String> {
    let Ok(header) = std::str::from_utf8(raw) else {
        return Err("The Authorization header is not valid text.".into());
    };
    if !header.is_ascii() {
        return Err("The Authorization header contains characters no API key has (such as `…`): was a placeholder like `sk_test_…` pasted instead of the real key?".into());
    }
    let header = header.trim();
    let key = match header.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        Some((scheme, _)) => {
            return Err(format!(
            "The Authorization scheme `{}` is not supported; send `Authorization: Bearer <key>`.",
            crate::query::qs::truncate(scheme)
        ))
        }
        None if header.eq_ignore_ascii_case("bearer") => {
            return Err("The Authorization header has no key after `Bearer`.".into())
        }
        None if parse_key_shape(header).is_some() => {
            return Err("The word `Bearer` is missing: send `Authorization: Bearer <key>`.".into())
        }
        None => return Err("Malformed Authorization header; expected `Bearer <key>`.".into()),
    };
    if let Some((kind, mode)) = parse_key_shape(key) {
        return Ok((key, kind, mode));
    }
    let mut parts = key.splitn(3, '_');
    let (kind, mode, token) = (parts.next(), parts.next(), parts.next());
    Err(match (kind, mode, token) {
        (Some("sk" | "pk" | "rk"), Some("test" | "live"), Some(t)) if t.len() != TOKEN_LEN => format!(
            "This API key has {} characters after its `{}_{}_` prefix where keys have {TOKEN_LEN}: was it cut short or padded when copied?",
            t.len(),
            kind.unwrap_or_default(),
            mode.unwrap_or_default()
        ),
        (Some("sk" | "pk" | "rk"), Some("test" | "live"), Some(_)) => {
            "This API key contains characters no key has (keys are letters and digits after the prefix).".into()
        }
        (Some("sk" | "pk" | "rk"), _, _) => {
            "API keys continue with `test_` or `live_` after their type, e.g. `sk_test_…`.".into()
        }
        _ => "This is not an API key: keys start with `sk_`, `pk_` or `rk_`, then `test_` or `live_` (e.g. `sk_test_…`).".into(),
    })
}

/// Resolve `Authorization: Bearer <key>` to a principal: one lookup of the
/// key's hash, one read of the key's record (as many reads as before keys
/// were a resource), and once a minute per key a write of `lastUsedAt`.
pub async fn authenticate(store: &dyn Store, header: Option<&[u8]>) -> ApiResult<Principal> {
    let raw = header.ok_or_else(|| {
        auth_error("No API key provided. Send `Authorization: Bearer <key>` with your secret or publishable key (sk_test_…, pk_test_…).")
    })?;
    let (key, kind, mode) = unusable(raw).map_err(|m| auth_error(&m))?;
    let invalid = || auth_error("Invalid API key: it is unknown, revoked or expired.");
    let target = store
        .find_unique(KEY_HASH_SCOPE, &hash_key(key))
        .await?
        .ok_or_else(invalid)?;
    let doc = store
        .get(&target.tenant, KEYS_KIND, &target.id)
        .await?
        .ok_or_else(invalid)?;
    if doc.get("type").and_then(Value::as_str) != Some(kind.as_str()) {
        return Err(invalid());
    }
    let now = crate::time::now_ms();
    if let Some(exp) = doc.get("expiresAt").and_then(Value::as_str) {
        if crate::time::parse_timestamp(exp).is_none_or(|e| e <= now) {
            return Err(invalid());
        }
    }
    let (org, _) = target
        .tenant
        .split_once('#')
        .ok_or_else(ApiError::internal)?;
    touch(store, &target.tenant, &doc, now).await;
    Ok(Principal {
        tenant: Tenant::new(org, mode),
        kind,
        permissions: match kind {
            KeyKind::Restricted => Some(
                doc.get("permissions")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default(),
            ),
            _ => None,
        },
        key_id: target.id,
    })
}

/// The minute a key was last written as used, per key, in this process: of
/// the requests of one minute, only the first writes.
static TOUCHED: std::sync::Mutex<Option<std::collections::HashMap<String, i64>>> =
    std::sync::Mutex::new(None);

/// Record the key's use, to the minute: written at most once a minute per
/// key — not when its record already says this minute (another process
/// wrote it), nor when this process already wrote it. The write keeps the
/// record's version (a use is not a change of the key: no event, no new
/// ETag) and is conditional on it, so it never undoes a concurrent change;
/// a lost race is simply written by a later request.
async fn touch(store: &dyn Store, tenant: &str, doc: &Value, now: i64) {
    let minute = now - now.rem_euclid(60_000);
    let used = doc
        .get("lastUsedAt")
        .and_then(Value::as_str)
        .and_then(crate::time::parse_timestamp);
    if used.is_some_and(|u| u >= minute) {
        return;
    }
    let Some(id) = doc.get("id").and_then(Value::as_str) else {
        return;
    };
    {
        let mut guard = TOUCHED.lock().unwrap_or_else(|e| e.into_inner());
        let map = guard.get_or_insert_with(Default::default);
        if map.get(id).is_some_and(|m| *m >= minute) {
            return;
        }
        if map.len() > 100_000 {
            map.clear();
        }
        map.insert(id.to_string(), minute);
    }
    let version = crate::store::version_of(doc);
    let mut next = doc.clone();
    next["lastUsedAt"] = Value::String(crate::time::format_ms(minute));
    let op = WriteOp::Put {
        tenant: tenant.to_string(),
        kind: KEYS_KIND,
        id: id.to_string(),
        doc: next,
        expect: Expect::Version(version),
    };
    if let Err(e) = store.commit(WriteTx::of(vec![op])).await {
        // Changed meanwhile (or the store is busy): a later request writes it.
        if let Some(map) = TOUCHED.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            map.remove(id);
        }
        if !matches!(e, crate::store::StoreError::Conflict(_)) {
            crate::log::error("api-keys", &format!("lastUsedAt not written: {e}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_shapes() {
        let k = generate_key(KeyKind::Secret, Mode::Test);
        assert_eq!(parse_key_shape(&k), Some((KeyKind::Secret, Mode::Test)));
        assert!(k.starts_with("sk_test_"));
        let r = generate_key(KeyKind::Restricted, Mode::Live);
        assert_eq!(parse_key_shape(&r), Some((KeyKind::Restricted, Mode::Live)));
        assert_eq!(parse_key_shape("sk_test_short"), None);
        assert_eq!(
            parse_key_shape("xx_test_0123456789012345678901234567890123456789"),
            None
        );
        assert_ne!(hash_key(&k), k);
    }

    fn restricted(perms: Value) -> Principal {
        Principal {
            tenant: Tenant::new("org_1", Mode::Test),
            kind: KeyKind::Restricted,
            key_id: "key_1".into(),
            permissions: perms.as_object().cloned(),
        }
    }

    fn access(resource: &'static str, level: Level) -> Access {
        Access {
            resource,
            level,
            publishable: false,
        }
    }

    #[test]
    fn restricted_keys_follow_their_permissions() {
        let p = restricted(serde_json::json!({"patients": "read", "appointments": "write"}));
        assert!(p.authorize(access("patients", Level::Read)).is_ok());
        assert!(p.authorize(access("appointments", Level::Read)).is_ok());
        assert!(p.authorize(access("appointments", Level::Write)).is_ok());
        let e = p.authorize(access("patients", Level::Write)).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Permissions);
        assert!(e.message.contains("`write`") && e.message.contains("`patients`"));
        let e = p.authorize(access("clinics", Level::Read)).unwrap_err();
        assert!(e.message.contains("`read`") && e.message.contains("`clinics`"));
        assert!(p.authorize(access(KEYS_KIND, Level::Read)).is_err());
        let all = restricted(serde_json::json!({KEYS_KIND: "write"}));
        assert!(all.authorize(access(KEYS_KIND, Level::Read)).is_err());
    }
}
