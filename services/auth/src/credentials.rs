//! Account API keys (`lby_<prefix>_<secret>`), agent keys
//! (`agent_<prefix>_<secret>`) and GPU worker keys (`wkr_<prefix>_<secret>`).
//!
//! Only the prefix and an HMAC-SHA256 of the secret (keyed with a server
//! pepper from config) are stored, so a copy of Redis yields no usable key.
//! Lookup is one GET by prefix; the comparison is constant-time; a key's
//! state (inactive, revoked, expired) is only revealed to a caller who
//! presented its real secret.

use crate::error::AuthError;
use hmac::{Hmac, Mac};
use lobby_kit::redis_conn::RedisConn;
use lobby_proto::auth as pb;
use rand::{distr::Alphanumeric, Rng};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

const PREFIX_LEN: usize = 12;
const SECRET_LEN: usize = 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    Account,
    Agent,
    Worker,
}

impl KeyKind {
    fn marker(self) -> &'static str {
        match self {
            Self::Account => "lby_",
            Self::Agent => "agent_",
            Self::Worker => "wkr_",
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Account => "account",
            Self::Agent => "agent",
            Self::Worker => "worker",
        }
    }
}

/// The scopes an account API key can carry.
pub const SCOPES: [&str; 4] = ["sessions:read", "sessions:write", "links:write", "admin"];

/// Why a presented key was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRejection {
    Missing,
    Malformed,
    /// Unknown prefix or wrong secret: indistinguishable on purpose.
    Invalid,
    Inactive,
    Revoked,
    Expired,
    ScopeDenied,
}

/// A key split into its parts; the secret never leaves this module.
#[derive(Debug, PartialEq, Eq)]
pub struct ParsedKey<'a> {
    pub kind: KeyKind,
    pub prefix: &'a str,
    secret: &'a str,
}

pub fn parse_key(raw: &str) -> Result<ParsedKey<'_>, KeyRejection> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(KeyRejection::Missing);
    }
    let (kind, rest) = if let Some(rest) = raw.strip_prefix(KeyKind::Account.marker()) {
        (KeyKind::Account, rest)
    } else if let Some(rest) = raw.strip_prefix(KeyKind::Agent.marker()) {
        (KeyKind::Agent, rest)
    } else if let Some(rest) = raw.strip_prefix(KeyKind::Worker.marker()) {
        (KeyKind::Worker, rest)
    } else {
        return Err(KeyRejection::Malformed);
    };
    let (prefix, secret) = rest.split_once('_').ok_or(KeyRejection::Malformed)?;
    let alnum = |s: &str| s.chars().all(|c| c.is_ascii_alphanumeric());
    if !(8..=32).contains(&prefix.len())
        || !(16..=128).contains(&secret.len())
        || !alnum(prefix)
        || !alnum(secret)
    {
        return Err(KeyRejection::Malformed);
    }
    Ok(ParsedKey {
        kind,
        prefix,
        secret,
    })
}

fn random_alnum(len: usize) -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// HMAC-SHA256 of a secret under the server pepper.
#[derive(Clone)]
pub struct KeyHasher {
    pepper: Vec<u8>,
}

impl KeyHasher {
    pub fn new(pepper: &[u8]) -> Self {
        Self {
            pepper: pepper.to_vec(),
        }
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length; this cannot fail.
        <Hmac<Sha256> as Mac>::new_from_slice(&self.pepper)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
    }

    pub fn hash(&self, secret: &str) -> String {
        let mut mac = self.mac();
        mac.update(secret.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    pub fn matches(&self, secret: &str, stored_hex: &str) -> bool {
        let Ok(stored) = hex::decode(stored_hex) else {
            return false;
        };
        let mut mac = self.mac();
        mac.update(secret.as_bytes());
        bool::from(mac.finalize().into_bytes().as_slice().ct_eq(&stored))
    }

    /// Derives a secret bound to `label` (JWT signing keys), so the material
    /// stored in Redis is useless without the pepper.
    pub fn derive(&self, label: &str) -> Vec<u8> {
        let mut mac = self.mac();
        mac.update(label.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CredentialRecord {
    pub prefix: String,
    pub kind: KeyKind,
    pub account_id: String,
    #[serde(default)]
    pub agent_id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Worker keys: the worker id the key is bound to, and its pool
    /// (empty when it serves only `account_id`).
    #[serde(default)]
    pub worker_id: String,
    #[serde(default)]
    pub pool: String,
    pub hmac: String,
    pub active: bool,
    pub expires_at_ms: i64,
    pub created_at_ms: i64,
    #[serde(default)]
    pub revoked_at_ms: i64,
}

impl CredentialRecord {
    pub fn to_proto(&self) -> pb::KeyInfo {
        pb::KeyInfo {
            prefix: self.prefix.clone(),
            kind: self.kind.as_str().to_owned(),
            account_id: self.account_id.clone(),
            agent_id: self.agent_id.clone(),
            name: self.name.clone(),
            scopes: self.scopes.clone(),
            active: self.active,
            expires_at_ms: self.expires_at_ms,
            created_at_ms: self.created_at_ms,
            revoked_at_ms: self.revoked_at_ms,
            worker_id: self.worker_id.clone(),
            pool: self.pool.clone(),
        }
    }

    /// The state check, after the secret matched.
    pub fn usable_at(&self, now_ms: i64) -> Result<(), KeyRejection> {
        if self.revoked_at_ms > 0 {
            return Err(KeyRejection::Revoked);
        }
        if !self.active {
            return Err(KeyRejection::Inactive);
        }
        if self.expires_at_ms > 0 && now_ms >= self.expires_at_ms {
            return Err(KeyRejection::Expired);
        }
        Ok(())
    }
}

/// What a new key's record needs besides its secret.
pub struct NewKey {
    pub kind: KeyKind,
    pub account_id: String,
    pub agent_id: String,
    pub worker_id: String,
    pub pool: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub expires_at_ms: i64,
}

fn credential_key(prefix: &str) -> String {
    format!("{{catalog}}:credential:{prefix}")
}

/// The set of a key owner's prefixes (an account's API keys, an agent's keys).
fn owner_index(kind: KeyKind, owner: &str) -> String {
    format!("{{catalog}}:{}:{owner}:credentials", kind.as_str())
}

#[derive(Clone)]
pub struct CredentialStore {
    redis: RedisConn,
    hasher: KeyHasher,
    cache: std::sync::Arc<crate::cache::CatalogCache>,
}

impl CredentialStore {
    pub fn new(
        redis: RedisConn,
        hasher: KeyHasher,
        cache: std::sync::Arc<crate::cache::CatalogCache>,
    ) -> Self {
        Self {
            redis,
            hasher,
            cache,
        }
    }

    pub fn hasher(&self) -> &KeyHasher {
        &self.hasher
    }

    /// Mints a key and stores its record; returns the full key (shown once).
    pub async fn create(
        &self,
        new: NewKey,
        now_ms: i64,
    ) -> Result<(String, CredentialRecord), AuthError> {
        let mut conn = self.redis.clone();
        for _ in 0..4 {
            let prefix = random_alnum(PREFIX_LEN);
            let secret = random_alnum(SECRET_LEN);
            let record = CredentialRecord {
                prefix: prefix.clone(),
                kind: new.kind,
                account_id: new.account_id.clone(),
                agent_id: new.agent_id.clone(),
                name: new.name.clone(),
                scopes: new.scopes.clone(),
                worker_id: new.worker_id.clone(),
                pool: new.pool.clone(),
                hmac: self.hasher.hash(&secret),
                active: true,
                expires_at_ms: new.expires_at_ms,
                created_at_ms: now_ms,
                revoked_at_ms: 0,
            };
            let created: bool = conn
                .set_nx(credential_key(&prefix), serde_json::to_string(&record)?)
                .await?;
            if !created {
                continue; // a prefix collision: 62^12 makes this practically unreachable
            }
            let owner = match new.kind {
                KeyKind::Account => &new.account_id,
                KeyKind::Agent => &new.agent_id,
                KeyKind::Worker => &new.worker_id,
            };
            let () = conn.sadd(owner_index(new.kind, owner), &prefix).await?;
            // A replica may have cached "no such key" for this prefix.
            self.cache
                .changed(&self.redis, &[crate::cache::Change::Key(prefix.clone())])
                .await;
            return Ok((format!("{}{prefix}_{secret}", new.kind.marker()), record));
        }
        Err(AuthError::Conflict)
    }

    pub async fn get(&self, prefix: &str) -> Result<Option<CredentialRecord>, AuthError> {
        let mut conn = self.redis.clone();
        let raw: Option<String> = conn.get(credential_key(prefix)).await?;
        Ok(raw.map(|r| serde_json::from_str(&r)).transpose()?)
    }

    /// A key's record by prefix, from the cache every change to a key
    /// invalidates (for checks on a key already authenticated once).
    pub async fn cached(&self, prefix: &str) -> Result<Option<CredentialRecord>, AuthError> {
        self.cache
            .keys
            .get_or_load(prefix, || self.get(prefix))
            .await
    }

    /// One lookup by prefix (from the cache, which every change to a key
    /// invalidates), then a constant-time comparison of the secret.
    pub async fn authenticate(
        &self,
        raw: &str,
        kind: KeyKind,
        now_ms: i64,
    ) -> Result<Result<CredentialRecord, KeyRejection>, AuthError> {
        let parsed = match parse_key(raw) {
            Ok(p) if p.kind == kind => p,
            Ok(_) => return Ok(Err(KeyRejection::Malformed)),
            Err(r) => return Ok(Err(r)),
        };
        let cached = self.cached(parsed.prefix).await?;
        let Some(record) = cached else {
            // Spend the same work as a real comparison so timing does not
            // tell unknown prefixes from wrong secrets.
            let _ = self.hasher.matches(parsed.secret, &"0".repeat(64));
            return Ok(Err(KeyRejection::Invalid));
        };
        if record.kind != kind || !self.hasher.matches(parsed.secret, &record.hmac) {
            return Ok(Err(KeyRejection::Invalid));
        }
        Ok(record.usable_at(now_ms).map(|()| record))
    }

    pub async fn list(
        &self,
        kind: KeyKind,
        owner: &str,
    ) -> Result<Vec<CredentialRecord>, AuthError> {
        let mut conn = self.redis.clone();
        let mut prefixes: Vec<String> = conn.smembers(owner_index(kind, owner)).await?;
        prefixes.sort();
        let mut records = Vec::with_capacity(prefixes.len());
        for p in prefixes {
            if let Some(r) = self.get(&p).await? {
                records.push(r);
            }
        }
        records.sort_by_key(|r| r.created_at_ms);
        Ok(records)
    }

    /// Read, change, write, with the write taking effect only if the
    /// record is still what was read: two admins changing one key (a
    /// revocation and a re-activation, say) can never lose each other's
    /// change. Returns the record as written, `None` for no such key.
    pub async fn update(
        &self,
        prefix: &str,
        mut change: impl FnMut(&mut CredentialRecord),
    ) -> Result<Option<CredentialRecord>, AuthError> {
        const COMPARE_AND_SET: &str = r"
            local current = redis.call('GET', KEYS[1])
            if not current then return -1 end
            if current ~= ARGV[1] then return 0 end
            redis.call('SET', KEYS[1], ARGV[2])
            return 1";
        let key = credential_key(prefix);
        let mut conn = self.redis.clone();
        for _ in 0..crate::catalog::SAVE_ATTEMPTS {
            let Some(read) = conn.get::<_, Option<String>>(&key).await? else {
                return Ok(None);
            };
            let mut record: CredentialRecord = serde_json::from_str(&read)?;
            change(&mut record);
            let written: i64 = redis::Script::new(COMPARE_AND_SET)
                .key(&key)
                .arg(&read)
                .arg(serde_json::to_string(&record)?)
                .invoke_async(&mut conn)
                .await?;
            match written {
                1 => {
                    self.cache
                        .changed(&self.redis, &[crate::cache::Change::Key(prefix.to_owned())])
                        .await;
                    return Ok(Some(record));
                }
                -1 => return Ok(None),
                _ => continue,
            }
        }
        Err(AuthError::Conflict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_into_kind_prefix_and_secret() {
        let k = parse_key("lby_abcDEF123456_0123456789abcdefXYZ0123456789abcdef").unwrap();
        assert_eq!((k.kind, k.prefix), (KeyKind::Account, "abcDEF123456"));
        let k = parse_key("agent_xYz1Ab2C_s3cr3tT0k3nV4lueG0esH3re").unwrap();
        assert_eq!((k.kind, k.prefix), (KeyKind::Agent, "xYz1Ab2C"));
        let k = parse_key("wkr_xYz1Ab2C_s3cr3tT0k3nV4lueG0esH3re").unwrap();
        assert_eq!((k.kind, k.prefix), (KeyKind::Worker, "xYz1Ab2C"));
    }

    #[test]
    fn malformed_keys_are_refused() {
        assert_eq!(parse_key(""), Err(KeyRejection::Missing));
        for bad in [
            "lby_",
            "lby_abc",
            "lby_short_0123456789abcdef0123",
            "lby_abcdefgh_short",
            "key_abcdefgh_0123456789abcdef0123",
            "lby_abcd efgh_0123456789abcdef0123",
            "lby_abcdefgh_0123456789abcdef01\u{e9}3",
            "agent_abcdefgh_0123456789-abcdef0123",
        ] {
            assert_eq!(parse_key(bad), Err(KeyRejection::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn hashes_match_only_their_secret_and_pepper() {
        let h = KeyHasher::new(b"pepper-one");
        let stored = h.hash("secret");
        assert!(h.matches("secret", &stored));
        assert!(!h.matches("secreT", &stored));
        assert!(!KeyHasher::new(b"pepper-two").matches("secret", &stored));
        assert!(!h.matches("secret", "not hex"));
    }

    #[test]
    fn state_is_checked_in_order() {
        let mut r = CredentialRecord {
            prefix: "p".into(),
            kind: KeyKind::Agent,
            account_id: "a".into(),
            agent_id: "g".into(),
            name: String::new(),
            scopes: vec![],
            worker_id: String::new(),
            pool: String::new(),
            hmac: String::new(),
            active: true,
            expires_at_ms: 1000,
            created_at_ms: 0,
            revoked_at_ms: 0,
        };
        assert_eq!(r.usable_at(999), Ok(()));
        assert_eq!(r.usable_at(1000), Err(KeyRejection::Expired));
        r.active = false;
        assert_eq!(r.usable_at(0), Err(KeyRejection::Inactive));
        r.revoked_at_ms = 5;
        assert_eq!(r.usable_at(0), Err(KeyRejection::Revoked));
    }
}
