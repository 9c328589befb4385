//! Organizations' modes, API keys (only hashes stored) and what each kind
//! of key may do.

pub mod idempotency;
pub mod ratelimit;

use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::store::{Store, UniqueTarget, WriteOp};
use serde_json::{json, Value};
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
        format!("{}#{}", self.org, self.mode.as_str())
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
    fn prefix(self) -> &'static str {
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
    /// a web form or booking widget needs.
    pub fn authorize(&self, access: Access) -> ApiResult<()> {
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
            KeyKind::Restricted => Err(ApiError::new(
                ErrorKind::Permissions,
                format!(
                    "This restricted key has no `{}` permission on `{}`.",
                    match access.level {
                        Level::Read => "read",
                        Level::Write => "write",
                    },
                    access.resource
                ),
            )),
        }
    }
}

pub const KEYS_KIND: &str = "api-keys";
pub const KEY_HASH_SCOPE: &str = "api-key-hash";
const TOKEN_LEN: usize = 40;

pub fn hash_key(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
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

/// A new key: the plaintext (shown once) and the write that stores its record.
pub struct NewKey {
    pub plaintext: String,
    pub doc: Value,
    pub ops: Vec<WriteOp>,
}

pub fn new_key(tenant: &Tenant, kind: KeyKind, note: &str) -> NewKey {
    let plaintext = format!(
        "{}_{}_{}",
        kind.prefix(),
        tenant.mode.as_str(),
        crate::ids::random_token(TOKEN_LEN)
    );
    let id = crate::ids::new_id("key");
    let hash = hash_key(&plaintext);
    let now = crate::time::format_ms(crate::time::now_ms());
    let redacted = format!(
        "{}_{}_…{}",
        kind.prefix(),
        tenant.mode.as_str(),
        &plaintext[plaintext.len() - 4..]
    );
    let doc = json!({
        "id": id,
        "object": "apiKey",
        "type": kind.as_str(),
        "redacted": redacted,
        "note": note,
        "hash": hash,
        "livemode": tenant.livemode(),
        "createdAt": now,
        "updatedAt": now,
        "version": 1,
    });
    let ops = vec![
        WriteOp::Put {
            tenant: tenant.key(),
            kind: KEYS_KIND,
            id: id.clone(),
            doc: doc.clone(),
            expect: crate::store::Expect::Absent,
        },
        WriteOp::ClaimUnique {
            scope: KEY_HASH_SCOPE.into(),
            value: hash,
            target: UniqueTarget {
                tenant: tenant.key(),
                kind: KEYS_KIND.into(),
                id,
            },
        },
    ];
    NewKey {
        plaintext,
        doc,
        ops,
    }
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

/// Resolve `Authorization: Bearer <key>` to a principal.
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
    if doc.get("revoked").and_then(Value::as_bool) == Some(true) {
        return Err(invalid());
    }
    if let Some(exp) = doc.get("expiresAt").and_then(Value::as_str) {
        if crate::time::parse_timestamp(exp).is_some_and(|e| e <= crate::time::now_ms()) {
            return Err(invalid());
        }
    }
    let (org, _) = target
        .tenant
        .split_once('#')
        .ok_or_else(ApiError::internal)?;
    Ok(Principal {
        tenant: Tenant::new(org, mode),
        kind,
        key_id: target.id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_shapes() {
        let t = Tenant::new("org_1", Mode::Test);
        let k = new_key(&t, KeyKind::Secret, "");
        assert_eq!(
            parse_key_shape(&k.plaintext),
            Some((KeyKind::Secret, Mode::Test))
        );
        assert!(k.plaintext.starts_with("sk_test_"));
        assert_eq!(parse_key_shape("sk_test_short"), None);
        assert_eq!(
            parse_key_shape("xx_test_0123456789012345678901234567890123456789"),
            None
        );
        assert_ne!(k.doc["hash"], Value::String(k.plaintext.clone()));
        assert!(!k.doc.to_string().contains(&k.plaintext));
    }
}
