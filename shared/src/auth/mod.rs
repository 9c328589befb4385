//! Organizations' modes, API keys (only hashes stored) and what each kind
//! of key may do.

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

/// What a request is about to do, for permission checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    Create,
    Write,
}

impl Principal {
    /// Secret keys may do anything in their mode; publishable keys may only
    /// create the resources a web form or booking widget needs.
    pub fn authorize(
        &self,
        resource: &crate::resources::Resource,
        action: Action,
    ) -> ApiResult<()> {
        match self.kind {
            KeyKind::Secret => Ok(()),
            KeyKind::Publishable if action == Action::Create && resource.publishable_create => {
                Ok(())
            }
            KeyKind::Publishable => Err(ApiError::new(
                ErrorKind::Permissions,
                format!(
                    "A publishable key cannot {} {}; use a secret key from your server.",
                    match action {
                        Action::Read => "read",
                        Action::Create => "create",
                        Action::Write => "change",
                    },
                    resource.path
                ),
            )),
            KeyKind::Restricted => Err(ApiError::new(
                ErrorKind::Permissions,
                "This restricted key has no permission for this resource.",
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

/// Resolve `Authorization: Bearer <key>` to a principal.
pub async fn authenticate(store: &dyn Store, header: Option<&str>) -> ApiResult<Principal> {
    let header = header
        .ok_or_else(|| auth_error("No API key provided. Send `Authorization: Bearer <key>`."))?;
    let key = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .ok_or_else(|| auth_error("Malformed Authorization header; expected `Bearer <key>`."))?;
    let (kind, mode) = parse_key_shape(key).ok_or_else(|| auth_error("Malformed API key."))?;
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
