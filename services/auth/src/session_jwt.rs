//! Seed-001 session JWTs.
//!
//! HS256 with the algorithm pinned on verify (so `alg: none` and RS256
//! headers are refused), a `kid` header naming the signing key, `exp`
//! required, and claims binding the token to one session, one agent and one
//! account. Keys rotate: the key ring in Redis holds random material per kid,
//! and the signing secret is an HMAC of it under the server pepper, so the
//! ring alone cannot forge a token. A retired key keeps verifying for one
//! token lifetime after its retirement, then stops; a revoked one (a
//! rotation that revokes its predecessor, for a key that leaked) stops at
//! once.
//!
//! Every replica caches the ring's keys; a rotation publishes the kids it
//! changed on the catalog's change channel, so every replica drops its copy
//! and rereads the ring (see `cache`).

use crate::{
    cache::{CatalogCache, Change},
    credentials::KeyHasher,
    error::AuthError,
};
use jsonwebtoken::{errors::ErrorKind, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use lobby_kit::redis_conn::RedisConn;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use std::{collections::HashMap, sync::Arc};

const RING: &str = "{catalog}:jwt_keys";
const CURRENT: &str = "{catalog}:jwt_current";
pub const ISSUER: &str = "lobby";
pub const AUDIENCE: &str = "otas-agent-session";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionClaims {
    pub iss: String,
    pub aud: String,
    /// The agent.
    pub sub: String,
    /// The session.
    pub sid: String,
    pub acct: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// The prefix of the agent key that minted the run: a token lives no
    /// longer than that key. (Empty in tokens signed before it was added.)
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub akp: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RingEntry {
    material: String,
    created_at_ms: i64,
    #[serde(default)]
    retired_at_ms: i64,
    /// Tokens it signed stop verifying at once, not a token lifetime later.
    #[serde(default)]
    revoked: bool,
}

/// Why a presented session token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRejection {
    Missing,
    Malformed,
    /// Bad signature, unknown or retired kid, wrong algorithm, wrong claims.
    Invalid,
    Expired,
}

/// A key of the ring as verification uses it. Entries change only on
/// rotation.
#[derive(Clone)]
pub struct SigningKey {
    secret: Vec<u8>,
    retired_at_ms: i64,
    revoked: bool,
}

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    pub kid: String,
    pub created_at_ms: i64,
    /// The key it retired (or revoked), if there was one.
    pub previous_kid: Option<String>,
}

#[derive(Clone)]
pub struct SessionTokens {
    redis: RedisConn,
    hasher: KeyHasher,
    ttl_seconds: i64,
    cache: Arc<CatalogCache>,
}

impl SessionTokens {
    pub fn new(
        redis: RedisConn,
        hasher: KeyHasher,
        ttl_seconds: i64,
        cache: Arc<CatalogCache>,
    ) -> Self {
        Self {
            redis,
            hasher,
            ttl_seconds,
            cache,
        }
    }

    fn secret(&self, kid: &str, entry: &RingEntry) -> Vec<u8> {
        self.hasher
            .derive(&format!("session-jwt:{kid}:{}", entry.material))
    }

    /// Makes sure a current key exists (first start of a fresh deployment).
    pub async fn ensure_key(&self, now_ms: i64) -> Result<(), AuthError> {
        let mut conn = self.redis.clone();
        let current: Option<String> = conn.get(CURRENT).await?;
        if current.is_none() {
            self.rotate(now_ms, false).await?;
        }
        Ok(())
    }

    /// Adds a new key and makes it current; the previous one is retired, or
    /// with `revoke_previous` revoked: its tokens stop verifying on every
    /// replica at once.
    pub async fn rotate(&self, now_ms: i64, revoke_previous: bool) -> Result<Rotation, AuthError> {
        let mut conn = self.redis.clone();
        let kid = format!("k{}", uuid::Uuid::new_v4().simple());
        let material: [u8; 32] = rand::random();
        let entry = RingEntry {
            material: hex::encode(material),
            created_at_ms: now_ms,
            retired_at_ms: 0,
            revoked: false,
        };
        let previous: Option<String> = conn.get(CURRENT).await?;
        let () = conn
            .hset(RING, &kid, serde_json::to_string(&entry)?)
            .await?;
        let () = conn.set(CURRENT, &kid).await?;
        // The new kid too: a replica may have cached it as unknown.
        let mut changed = vec![Change::SigningKey(kid.clone())];
        if let Some(prev) = &previous {
            let raw: Option<String> = conn.hget(RING, prev).await?;
            if let Some(raw) = raw {
                let mut old: RingEntry = serde_json::from_str(&raw)?;
                if old.retired_at_ms == 0 {
                    old.retired_at_ms = now_ms;
                }
                old.revoked |= revoke_previous;
                let () = conn.hset(RING, prev, serde_json::to_string(&old)?).await?;
                changed.push(Change::SigningKey(prev.clone()));
            }
        }
        changed.extend(self.purge(now_ms).await?);
        self.cache.changed(&self.redis, &changed).await;
        tracing::info!(kid, previous = ?previous, revoke_previous, "session token signing key rotated");
        Ok(Rotation {
            kid,
            created_at_ms: now_ms,
            previous_kid: previous,
        })
    }

    /// Drops keys retired longer ago than a token can live; returns what
    /// it dropped.
    async fn purge(&self, now_ms: i64) -> Result<Vec<Change>, AuthError> {
        let mut conn = self.redis.clone();
        let ring: HashMap<String, String> = conn.hgetall(RING).await?;
        let mut dropped = Vec::new();
        for (kid, raw) in ring {
            let entry: RingEntry = serde_json::from_str(&raw)?;
            if entry.retired_at_ms > 0 && entry.retired_at_ms + self.ttl_seconds * 1000 < now_ms {
                let () = conn.hdel(RING, &kid).await?;
                dropped.push(Change::SigningKey(kid));
            }
        }
        Ok(dropped)
    }

    async fn key(&self, kid: &str) -> Result<Option<SigningKey>, AuthError> {
        self.cache
            .signing_keys
            .get_or_load(kid, || async {
                let mut conn = self.redis.clone();
                let raw: Option<String> = conn.hget(RING, kid).await?;
                let Some(raw) = raw else { return Ok(None) };
                let entry: RingEntry = serde_json::from_str(&raw)?;
                Ok::<_, AuthError>(Some(SigningKey {
                    secret: self.secret(kid, &entry),
                    retired_at_ms: entry.retired_at_ms,
                    revoked: entry.revoked,
                }))
            })
            .await
    }

    /// Signs a token for one session with the current key.
    pub async fn issue(
        &self,
        session_id: &str,
        agent_id: &str,
        account_id: &str,
        key_prefix: &str,
        now_ms: i64,
    ) -> Result<(String, String, i64), AuthError> {
        let mut conn = self.redis.clone();
        // Read every time: a rotation on another replica takes effect at once.
        let kid: Option<String> = conn.get(CURRENT).await?;
        let kid = match kid {
            Some(k) => k,
            None => self.rotate(now_ms, false).await?.kid,
        };
        let secret = self.key(&kid).await?.ok_or(AuthError::Conflict)?.secret;
        let iat = now_ms / 1000;
        let claims = SessionClaims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: agent_id.into(),
            sid: session_id.into(),
            acct: account_id.into(),
            iat,
            exp: iat + self.ttl_seconds,
            jti: uuid::Uuid::new_v4().simple().to_string(),
            akp: key_prefix.into(),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.clone());
        let jwt = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&secret))
            .map_err(|e| AuthError::Internal(format!("jwt encode: {e}")))?;
        Ok((jwt, kid, claims.exp))
    }

    pub async fn verify(
        &self,
        jwt: &str,
        now_ms: i64,
    ) -> Result<Result<SessionClaims, TokenRejection>, AuthError> {
        let jwt = jwt.trim();
        if jwt.is_empty() {
            return Ok(Err(TokenRejection::Missing));
        }
        if jwt.split('.').count() != 3 {
            return Ok(Err(TokenRejection::Malformed));
        }
        // An unparseable header (including `alg: none`, which has no
        // algorithm here) or one without a kid is not ours.
        let header = match jsonwebtoken::decode_header(jwt) {
            Ok(h) => h,
            Err(_) => return Ok(Err(TokenRejection::Invalid)),
        };
        if header.alg != Algorithm::HS256 {
            return Ok(Err(TokenRejection::Invalid));
        }
        let Some(kid) = header.kid else {
            return Ok(Err(TokenRejection::Invalid));
        };
        let Some(SigningKey {
            secret,
            retired_at_ms,
            revoked,
        }) = self.key(&kid).await?
        else {
            return Ok(Err(TokenRejection::Invalid));
        };
        if revoked {
            return Ok(Err(TokenRejection::Invalid));
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "iat", "sub", "iss", "aud"]);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.leeway = 0;
        // Expiry is checked below against our clock, which tests control.
        validation.validate_exp = false;
        match jsonwebtoken::decode::<SessionClaims>(
            jwt,
            &DecodingKey::from_secret(&secret),
            &validation,
        ) {
            Ok(data) if data.claims.exp * 1000 <= now_ms => Ok(Err(TokenRejection::Expired)),
            // A live token under a key retired longer ago than any token it
            // signed can live was not signed by us while the key was current.
            Ok(_) if retired_at_ms > 0 && retired_at_ms + self.ttl_seconds * 1000 < now_ms => {
                Ok(Err(TokenRejection::Invalid))
            }
            Ok(data) => Ok(Ok(data.claims)),
            Err(e) => Ok(Err(match e.kind() {
                ErrorKind::ExpiredSignature => TokenRejection::Expired,
                ErrorKind::Base64(_) | ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
                    TokenRejection::Malformed
                }
                _ => TokenRejection::Invalid,
            })),
        }
    }
}
