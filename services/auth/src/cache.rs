//! In-memory copies of what every start reads: agents, accounts, links,
//! keys and the CORS origin patterns, so that authorizing a start costs no
//! Redis round trip.
//!
//! Every write in auth publishes what it changed on [`CHANNEL`]; every auth
//! replica (in every process) drops that entry at once. A short TTL backs
//! the messages up, and a replica that loses its subscription drops
//! everything, since it may have missed some. Limits stay exact regardless:
//! the admission script reads them from Redis (`lobby_kit::keys::account_settings`).

use crate::{
    catalog::{AccountRecord, AgentRecord},
    credentials::CredentialRecord,
};
use futures::StreamExt;
use lobby_kit::{backoff::Backoff, redis_conn::Redis};
use lobby_proto::auth::Link;
use redis::AsyncCommands;
use std::{
    collections::HashMap,
    future::Future,
    hash::Hash,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// Where auth says what changed: "agent:<id>", "account:<id>", "link:<id>",
/// "key:<prefix>", "signing_key:<kid>", "origins".
pub const CHANNEL: &str = "lobby:catalog:changed";

/// Entries kept per kind before the oldest half goes (unknown ids are cached
/// too, so a flood of made-up ids cannot reach Redis each time).
const MAX_ENTRIES: usize = 100_000;

/// One kind of cached value.
pub struct TtlCache<V> {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, V)>>,
}

impl<V: Clone> TtlCache<V> {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The cached value, or `load`'s (cached when it succeeds).
    pub async fn get_or_load<E, F, Fut>(&self, key: &str, load: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        if let Some(v) = self.fresh(key) {
            return Ok(v);
        }
        let loaded = load().await?;
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= MAX_ENTRIES {
                evict_oldest_half(&mut entries);
            }
            entries.insert(key.to_owned(), (Instant::now(), loaded.clone()));
        }
        Ok(loaded)
    }

    fn fresh(&self, key: &str) -> Option<V> {
        let entries = self.entries.lock().ok()?;
        let (at, v) = entries.get(key)?;
        (at.elapsed() < self.ttl).then(|| v.clone())
    }

    pub fn forget(&self, key: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(key);
        }
    }

    fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
    }
}

fn evict_oldest_half<K: Clone + Eq + Hash, V>(entries: &mut HashMap<K, (Instant, V)>) {
    let mut ages: Vec<(Instant, K)> = entries
        .iter()
        .map(|(k, (at, _))| (*at, k.clone()))
        .collect();
    ages.sort_by_key(|(at, _)| *at);
    for (_, key) in ages.into_iter().take(entries.len() / 2) {
        entries.remove(&key);
    }
}

/// What a change message names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Agent(String),
    Account(String),
    Project(String),
    Link(String),
    Key(String),
    /// A session-JWT signing key (by kid) was added, retired, revoked or
    /// dropped.
    SigningKey(String),
    Origins,
}

impl Change {
    pub fn message(&self) -> String {
        match self {
            Self::Agent(id) => format!("agent:{id}"),
            Self::Account(id) => format!("account:{id}"),
            Self::Project(id) => format!("project:{id}"),
            Self::Link(id) => format!("link:{id}"),
            Self::Key(prefix) => format!("key:{prefix}"),
            Self::SigningKey(kid) => format!("signing_key:{kid}"),
            Self::Origins => "origins".to_owned(),
        }
    }

    pub fn parse(message: &str) -> Option<Self> {
        if message == "origins" {
            return Some(Self::Origins);
        }
        let (kind, id) = message.split_once(':')?;
        let id = id.to_owned();
        match kind {
            "agent" => Some(Self::Agent(id)),
            "account" => Some(Self::Account(id)),
            "project" => Some(Self::Project(id)),
            "link" => Some(Self::Link(id)),
            "key" => Some(Self::Key(id)),
            "signing_key" => Some(Self::SigningKey(id)),
            _ => None,
        }
    }
}

/// The caches of one auth service. `None` caches "no such thing"; records
/// are shared (`Arc`) so a hit copies nothing.
pub struct CatalogCache {
    pub agents: TtlCache<Option<Arc<AgentRecord>>>,
    pub accounts: TtlCache<Option<Arc<AccountRecord>>>,
    pub projects: TtlCache<Option<Arc<crate::catalog::ProjectRecord>>>,
    pub links: TtlCache<Option<Link>>,
    pub keys: TtlCache<Option<CredentialRecord>>,
    pub origins: TtlCache<Arc<Vec<String>>>,
    pub signing_keys: TtlCache<Option<crate::session_jwt::SigningKey>>,
}

impl CatalogCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            agents: TtlCache::new(ttl),
            accounts: TtlCache::new(ttl),
            projects: TtlCache::new(ttl),
            links: TtlCache::new(ttl),
            keys: TtlCache::new(ttl),
            origins: TtlCache::new(ttl),
            signing_keys: TtlCache::new(ttl),
        }
    }

    pub fn apply(&self, change: &Change) {
        match change {
            Change::Agent(id) => self.agents.forget(id),
            Change::Account(id) => self.accounts.forget(id),
            Change::Project(id) => self.projects.forget(id),
            Change::Link(id) => self.links.forget(id),
            Change::Key(prefix) => self.keys.forget(prefix),
            Change::SigningKey(kid) => self.signing_keys.forget(kid),
            Change::Origins => self.origins.clear(),
        }
    }

    /// After a write: drops what `changes` name here at once, so a read
    /// right after this replica's own write never sees the old value, and
    /// tells every other replica (whose copies go when the message lands).
    pub async fn changed(&self, redis: &lobby_kit::redis_conn::RedisConn, changes: &[Change]) {
        for change in changes {
            self.apply(change);
        }
        publish(redis, changes).await;
    }

    pub fn clear(&self) {
        self.agents.clear();
        self.accounts.clear();
        self.projects.clear();
        self.links.clear();
        self.keys.clear();
        self.origins.clear();
        self.signing_keys.clear();
    }
}

/// Tells every auth replica (this one included: a load that was in flight
/// during the write may have cached the old value again) that `changes`
/// happened. A lost message is covered by the TTL; the write itself has
/// succeeded.
async fn publish(redis: &lobby_kit::redis_conn::RedisConn, changes: &[Change]) {
    let mut conn = redis.clone();
    for change in changes {
        let published: Result<i64, _> = conn.publish(CHANNEL, change.message()).await;
        if let Err(e) = published {
            tracing::warn!(change = %change.message(), error = %e, "cache invalidation not published; other replicas catch up within the TTL");
        }
    }
}

/// Follows [`CHANNEL`] for as long as the process runs, applying each
/// change to `cache`; on every (re)subscription the whole cache is dropped.
pub async fn follow_changes(redis: Redis, cache: Arc<CatalogCache>) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    loop {
        redis.readiness().wait().await;
        let subscribed = async {
            let client = redis.pubsub_client()?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(CHANNEL).await?;
            Ok::<_, redis::RedisError>(pubsub)
        }
        .await;
        match subscribed {
            Ok(mut pubsub) => {
                cache.clear();
                backoff.reset();
                let mut messages = pubsub.on_message();
                while let Some(msg) = messages.next().await {
                    let payload: String = msg.get_payload().unwrap_or_default();
                    match Change::parse(&payload) {
                        Some(change) => cache.apply(&change),
                        None => cache.clear(),
                    }
                }
                tracing::warn!("catalog change subscription lost; resubscribing");
            }
            Err(e) => tracing::warn!(error = %e, "catalog change subscription failed; retrying"),
        }
        // Whatever was missed meanwhile must not be served.
        cache.clear();
        backoff.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_messages_round_trip() {
        for c in [
            Change::Agent("a-1".into()),
            Change::Account("acct_x".into()),
            Change::Project("proj_x".into()),
            Change::Link("lnk_y".into()),
            Change::Key("abc".into()),
            Change::SigningKey("k1".into()),
            Change::Origins,
        ] {
            assert_eq!(Change::parse(&c.message()), Some(c));
        }
        assert_eq!(Change::parse("nonsense"), None);
    }

    #[tokio::test]
    async fn a_cached_value_is_served_until_forgotten_or_stale() {
        let cache: TtlCache<u32> = TtlCache::new(Duration::from_millis(200));
        let first: Result<u32, ()> = cache.get_or_load("k", || async { Ok(1) }).await;
        assert_eq!(first, Ok(1));
        let again: Result<u32, ()> = cache.get_or_load("k", || async { Ok(2) }).await;
        assert_eq!(again, Ok(1), "served from the cache");
        cache.forget("k");
        let reloaded: Result<u32, ()> = cache.get_or_load("k", || async { Ok(3) }).await;
        assert_eq!(reloaded, Ok(3));
        tokio::time::sleep(Duration::from_millis(250)).await;
        let stale: Result<u32, ()> = cache.get_or_load("k", || async { Ok(4) }).await;
        assert_eq!(stale, Ok(4), "the TTL backs invalidation up");
    }

    #[tokio::test]
    async fn a_write_drops_this_replicas_copy_before_any_message() {
        let cache = CatalogCache::new(Duration::from_secs(60));
        let stale: Result<_, ()> = cache
            .keys
            .get_or_load("prefix", || async { Ok(None) })
            .await;
        assert!(matches!(stale, Ok(None)));
        // No Redis answers here, so no message can arrive: the drop is local.
        let nowhere = Redis::open(&lobby_kit::redis_conn::RedisSettings {
            url: "redis://127.0.0.1:1".into(),
            retry_max: Duration::from_millis(100),
            report_after: Duration::from_secs(60),
        })
        .expect("a well-formed URL");
        cache
            .changed(&nowhere.connection(), &[Change::Key("prefix".into())])
            .await;
        assert!(
            cache.keys.fresh("prefix").is_none(),
            "the old value is gone"
        );
    }

    #[test]
    fn a_full_cache_drops_its_oldest_half() {
        let mut entries: HashMap<String, (Instant, u32)> = HashMap::new();
        let base = Instant::now();
        for i in 0..10u32 {
            entries.insert(
                format!("{i}"),
                (base + Duration::from_millis(u64::from(i)), i),
            );
        }
        evict_oldest_half(&mut entries);
        assert_eq!(entries.len(), 5);
        assert!(entries.contains_key("9") && !entries.contains_key("0"));
    }
}
