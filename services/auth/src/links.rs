//! Shareable links (seed 002): `lnk_…` ids that act as the credential for a
//! start, with an active flag, an expiry and a use limit. Uses are taken by
//! the session service's admission, atomically with the slot, in the
//! account's `link_uses` hash; a link shows the count from there.

use crate::error::AuthError;
use lobby_kit::redis_conn::RedisConn;
use lobby_proto::auth as pb;
use rand::{distr::Alphanumeric, Rng};
use redis::AsyncCommands;
use std::collections::HashMap;

pub const MAX_USE_LIMIT: u32 = 1_000_000;

fn link_key(id: &str) -> String {
    format!("{{catalog}}:link:{id}")
}

fn account_links(account_id: &str) -> String {
    format!("{{catalog}}:account:{account_id}:links")
}

/// Why a link cannot start a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRejection {
    NotFound,
    Inactive,
    Expired,
    UsedUp,
}

pub fn new_link_id() -> String {
    let tail: String = rand::rng()
        .sample_iter(Alphanumeric)
        .take(24)
        .map(char::from)
        .collect();
    format!("lnk_{tail}")
}

/// A link id as logs may show it: anyone holding the id can start sessions
/// on the link's account, so logs get a stable fingerprint, never the id.
pub fn for_logs(id: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(id.as_bytes());
    format!("lnk#{}", hex::encode(&digest[..6]))
}

/// Ids are credentials that also appear in Redis keys: a fixed alphabet.
pub fn valid_link_id(id: &str) -> bool {
    id.len() > 4
        && id.len() <= 64
        && id.starts_with("lnk_")
        && id[4..].chars().all(|c| c.is_ascii_alphanumeric())
}

#[derive(Clone)]
pub struct LinkStore {
    redis: RedisConn,
    cache: std::sync::Arc<crate::cache::CatalogCache>,
}

impl LinkStore {
    pub fn new(redis: RedisConn, cache: std::sync::Arc<crate::cache::CatalogCache>) -> Self {
        Self { redis, cache }
    }

    pub async fn create(&self, link: &pb::Link) -> Result<(), AuthError> {
        let mut conn = self.redis.clone();
        let fields = [
            ("id", link.id.clone()),
            ("account_id", link.account_id.clone()),
            ("agent_id", link.agent_id.clone()),
            ("active", if link.active { "1" } else { "0" }.to_owned()),
            ("expires_at_ms", link.expires_at_ms.to_string()),
            ("use_limit", link.use_limit.to_string()),
            ("created_at_ms", link.created_at_ms.to_string()),
        ];
        let () = redis::pipe()
            .atomic()
            .hset_multiple(link_key(&link.id), &fields)
            .ignore()
            .sadd(account_links(&link.account_id), &link.id)
            .ignore()
            .query_async(&mut conn)
            .await?;
        self.cache
            .changed(&self.redis, &[crate::cache::Change::Link(link.id.clone())])
            .await;
        Ok(())
    }

    /// A link with its uses, straight from Redis.
    pub async fn get(&self, id: &str) -> Result<Option<pb::Link>, AuthError> {
        let Some(mut link) = self.definition(id).await? else {
            return Ok(None);
        };
        link.uses = self.uses(&link).await?;
        Ok(Some(link))
    }

    /// Uses taken so far (admission counts them, atomically with the slot).
    pub async fn uses(&self, link: &pb::Link) -> Result<u32, AuthError> {
        let mut conn = self.redis.clone();
        let uses: Option<u32> = conn
            .hget(lobby_kit::keys::link_uses(&link.account_id), &link.id)
            .await?;
        Ok(uses.unwrap_or(0))
    }

    /// A link's definition (no use count) from the cache: what starts read.
    pub async fn get_cached(&self, id: &str) -> Result<Option<pb::Link>, AuthError> {
        self.cache
            .links
            .get_or_load(id, || self.definition(id))
            .await
    }

    async fn definition(&self, id: &str) -> Result<Option<pb::Link>, AuthError> {
        if !valid_link_id(id) {
            return Ok(None);
        }
        let mut conn = self.redis.clone();
        let f: HashMap<String, String> = conn.hgetall(link_key(id)).await?;
        Ok((!f.is_empty()).then(|| from_fields(&f)))
    }

    pub async fn list(&self, account_id: &str) -> Result<Vec<pb::Link>, AuthError> {
        let mut conn = self.redis.clone();
        let ids: Vec<String> = conn.smembers(account_links(account_id)).await?;
        let mut links = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(l) = self.get(&id).await? {
                links.push(l);
            }
        }
        links.sort_by_key(|l| l.created_at_ms);
        Ok(links)
    }

    pub async fn deactivate(&self, id: &str) -> Result<(), AuthError> {
        let mut conn = self.redis.clone();
        let () = conn.hset(link_key(id), "active", "0").await?;
        self.cache
            .changed(&self.redis, &[crate::cache::Change::Link(id.to_owned())])
            .await;
        Ok(())
    }
}

/// Whether a link may start a session now (its use limit aside, which
/// admission checks atomically).
pub fn check_usable(link: &pb::Link, now_ms: i64) -> Result<(), LinkRejection> {
    if !link.active {
        return Err(LinkRejection::Inactive);
    }
    if link.expires_at_ms > 0 && now_ms >= link.expires_at_ms {
        return Err(LinkRejection::Expired);
    }
    Ok(())
}

fn from_fields(f: &HashMap<String, String>) -> pb::Link {
    let text = |k: &str| f.get(k).cloned().unwrap_or_default();
    let int = |k: &str| f.get(k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    pb::Link {
        id: text("id"),
        account_id: text("account_id"),
        agent_id: text("agent_id"),
        active: text("active") == "1",
        expires_at_ms: int("expires_at_ms"),
        use_limit: u32::try_from(int("use_limit")).unwrap_or(0),
        uses: 0,
        created_at_ms: int("created_at_ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_see_a_fingerprint_never_the_id() {
        let id = new_link_id();
        let shown = for_logs(&id);
        assert!(!shown.contains(&id[4..]), "{shown}");
        assert_eq!(
            shown,
            for_logs(&id),
            "stable, so one link's lines can be found"
        );
        assert_ne!(shown, for_logs(&new_link_id()));
    }

    #[test]
    fn link_ids_have_a_fixed_shape() {
        let id = new_link_id();
        assert!(valid_link_id(&id), "{id}");
        for bad in [
            "",
            "lnk_",
            "link_abc",
            "lnk_a/b",
            "lnk_{x}",
            &format!("lnk_{}", "a".repeat(80)),
        ] {
            assert!(!valid_link_id(bad), "{bad}");
        }
    }
}
