//! In-memory copies of what every start reads: agents, accounts, links,
//! keys and the CORS origin patterns, so that authorizing a start costs no
//! Redis round trip.
//!
//! Every write in auth publishes what it changed on [`CHANNEL`]; every auth
//! replica (in every process) drops that entry at once. A short TTL backs
//! the messages up, and a replica that loses its subscription treats
//! everything as expired, since it may have missed some. Limits stay exact
//! regardless: the admission script reads them from Redis
//! (`lobby_kit::keys::account_settings`).
//!
//! An expired entry whose reload fails because Redis is away for a moment
//! (the catalog's master failing over) is served a while longer, up to its
//! stale allowance: the catalog cannot change while its master is down, and
//! starts of the accounts on the other masters go on. An entry a change
//! message named is gone, never served stale.

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
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// Where auth says what changed: "agent:<id>", "account:<id>", "link:<id>",
/// "key:<prefix>", "signing_key:<kid>", "origins".
pub const CHANNEL: &str = "lobby:catalog:changed";

/// Entries kept per kind before the oldest half goes (unknown ids are cached
/// too, so a flood of made-up ids cannot reach Redis each time).
const MAX_ENTRIES: usize = 100_000;

/// A load failure that says "not now" (Redis away for a moment) rather
/// than "no": an expired entry may then stand in for the answer.
pub trait Transient {
    fn is_transient(&self) -> bool;
}

impl Transient for crate::error::AuthError {
    fn is_transient(&self) -> bool {
        matches!(self, Self::Store(e) if lobby_kit::redis_conn::is_transient(e))
    }
}

impl Transient for () {
    fn is_transient(&self) -> bool {
        false
    }
}

/// How long entries are fresh, and how much longer an expired one may stand
/// in while its reload fails transiently.
#[derive(Debug, Clone, Copy)]
pub struct CacheTimes {
    pub ttl: Duration,
    pub stale_allowance: Duration,
}

/// While an expired entry stands in for one that will not reload, how long
/// a reload may take before the entry is served instead, and how long after
/// a failed reload the next is tried: a start waits a moment at most once a
/// second, not a command deadline each time, while the catalog's master
/// fails over.
const RELOAD_WAIT: Duration = Duration::from_millis(50);
const RELOAD_PAUSE: Duration = Duration::from_secs(1);

struct Entry<V> {
    loaded: Instant,
    value: V,
    /// A reload failed transiently: until then the entry stands in without
    /// another try.
    standing_until: Option<Instant>,
}

/// One kind of cached value.
pub struct TtlCache<V> {
    times: CacheTimes,
    entries: Mutex<HashMap<String, Entry<V>>>,
}

/// What the cache holds for a key.
enum Held<V> {
    Fresh(V),
    /// Expired, within its stale allowance; `true` while a failed reload's
    /// pause lasts.
    Stale(V, bool),
    Nothing,
}

impl<V: Clone> TtlCache<V> {
    pub fn new(ttl: Duration) -> Self {
        Self::with_times(CacheTimes {
            ttl,
            stale_allowance: Duration::ZERO,
        })
    }

    pub fn with_times(times: CacheTimes) -> Self {
        Self {
            times,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The cached value, or `load`'s (cached when it succeeds). An expired
    /// value within its stale allowance stands in when `load` fails
    /// transiently or takes longer than `RELOAD_WAIT`, and for
    /// `RELOAD_PAUSE` after that without asking again.
    pub async fn get_or_load<E, F, Fut>(&self, key: &str, load: F) -> Result<V, E>
    where
        E: Transient + std::fmt::Debug,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let stale = match self.held(key) {
            Held::Fresh(v) | Held::Stale(v, true) => return Ok(v),
            Held::Stale(v, false) => Some(v),
            Held::Nothing => None,
        };
        let loaded = match stale {
            None => load().await?,
            Some(stale) => match tokio::time::timeout(RELOAD_WAIT, load()).await {
                Ok(Ok(loaded)) => loaded,
                Ok(Err(e)) if !e.is_transient() => return Err(e),
                failed => {
                    tracing::debug!(key, error = ?failed.err().map(|_| "timed out"), "catalog unreachable; serving the expired entry");
                    self.stand_in(key);
                    return Ok(stale);
                }
            },
        };
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= MAX_ENTRIES {
                evict_oldest_half(&mut entries);
            }
            entries.insert(
                key.to_owned(),
                Entry {
                    loaded: Instant::now(),
                    value: loaded.clone(),
                    standing_until: None,
                },
            );
        }
        Ok(loaded)
    }

    fn held(&self, key: &str) -> Held<V> {
        let Ok(entries) = self.entries.lock() else {
            return Held::Nothing;
        };
        let Some(entry) = entries.get(key) else {
            return Held::Nothing;
        };
        let age = entry.loaded.elapsed();
        if age < self.times.ttl {
            Held::Fresh(entry.value.clone())
        } else if age < self.times.ttl + self.times.stale_allowance {
            let standing = entry.standing_until.is_some_and(|t| Instant::now() < t);
            Held::Stale(entry.value.clone(), standing)
        } else {
            Held::Nothing
        }
    }

    fn stand_in(&self, key: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            if let Some(entry) = entries.get_mut(key) {
                entry.standing_until = Some(Instant::now() + RELOAD_PAUSE);
            }
        }
    }

    #[cfg(test)]
    fn fresh(&self, key: &str) -> Option<V> {
        match self.held(key) {
            Held::Fresh(v) => Some(v),
            _ => None,
        }
    }

    /// Every entry is reloaded before it is served again (a subscription
    /// was lost: some change may have been missed), but may still stand in
    /// for a failed reload within the stale allowance.
    fn expire_all(&self) {
        let expired = Instant::now().checked_sub(self.times.ttl);
        if let Ok(mut entries) = self.entries.lock() {
            match expired {
                // Never later than it was: expiring again (another lost
                // subscription) lengthens no entry's stale allowance.
                Some(at) => entries.values_mut().for_each(|e| {
                    e.loaded = e.loaded.min(at);
                    e.standing_until = None;
                }),
                None => entries.clear(),
            }
        }
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

fn evict_oldest_half<V>(entries: &mut HashMap<String, Entry<V>>) {
    let mut ages: Vec<(Instant, String)> =
        entries.iter().map(|(k, e)| (e.loaded, k.clone())).collect();
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
        Self::with_times(CacheTimes {
            ttl,
            stale_allowance: Duration::ZERO,
        })
    }

    pub fn with_times(times: CacheTimes) -> Self {
        Self {
            agents: TtlCache::with_times(times),
            accounts: TtlCache::with_times(times),
            projects: TtlCache::with_times(times),
            links: TtlCache::with_times(times),
            keys: TtlCache::with_times(times),
            origins: TtlCache::with_times(times),
            signing_keys: TtlCache::with_times(times),
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

    /// Every entry reloads before it is served again (see
    /// [`TtlCache::expire_all`]).
    pub fn expire_all(&self) {
        self.agents.expire_all();
        self.accounts.expire_all();
        self.projects.expire_all();
        self.links.expire_all();
        self.keys.expire_all();
        self.origins.expire_all();
        self.signing_keys.expire_all();
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
/// change to `cache`; on every (re)subscription the whole cache expires.
pub async fn follow_changes(redis: Redis, cache: Arc<CatalogCache>) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    loop {
        redis.readiness().wait().await;
        match redis.subscribe(&[CHANNEL], &[]).await {
            Ok(messages) => {
                cache.expire_all();
                backoff.reset();
                let mut messages = std::pin::pin!(messages);
                while let Some(msg) = messages.next().await {
                    let payload: String = msg.get_payload().unwrap_or_default();
                    match Change::parse(&payload) {
                        Some(change) => cache.apply(&change),
                        None => cache.expire_all(),
                    }
                }
                tracing::warn!("catalog change subscription lost; resubscribing");
            }
            Err(e) => tracing::warn!(error = %e, "catalog change subscription failed; retrying"),
        }
        // Whatever was missed meanwhile must not be served as fresh.
        cache.expire_all();
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

    /// A reload that fails because Redis is away for a moment.
    #[derive(Debug)]
    struct Away;
    impl Transient for Away {
        fn is_transient(&self) -> bool {
            true
        }
    }

    #[tokio::test]
    async fn an_expired_entry_stands_in_while_redis_is_away_within_its_allowance() {
        let cache: TtlCache<u32> = TtlCache::with_times(CacheTimes {
            ttl: Duration::from_millis(50),
            stale_allowance: Duration::from_millis(1500),
        });
        let first: Result<u32, Away> = cache.get_or_load("k", || async { Ok(1) }).await;
        assert!(matches!(first, Ok(1)));
        tokio::time::sleep(Duration::from_millis(80)).await;
        let away: Result<u32, Away> = cache.get_or_load("k", || async { Err(Away) }).await;
        assert!(
            matches!(away, Ok(1)),
            "served while the reload fails: {away:?}"
        );
        // For a moment after, it stands in without asking Redis again.
        let asked = std::sync::atomic::AtomicBool::new(false);
        let standing: Result<u32, Away> = cache
            .get_or_load("k", || async {
                asked.store(true, std::sync::atomic::Ordering::Relaxed);
                Ok(2)
            })
            .await;
        assert!(matches!(standing, Ok(1)) && !asked.load(std::sync::atomic::Ordering::Relaxed));
        cache.expire_all();
        let refused: Result<u32, ()> = cache.get_or_load("k", || async { Err(()) }).await;
        assert!(refused.is_err(), "a plain failure is not covered");
        // A reload slower than a moment: the expired entry answers meanwhile.
        cache.expire_all();
        let began = Instant::now();
        let slow: Result<u32, Away> = cache
            .get_or_load("k", || async {
                tokio::time::sleep(Duration::from_secs(2)).await;
                Ok(3)
            })
            .await;
        assert!(matches!(slow, Ok(1)), "{slow:?}");
        assert!(
            began.elapsed() < Duration::from_millis(500),
            "{:?}",
            began.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(1600)).await;
        cache.expire_all();
        let too_old: Result<u32, Away> = cache.get_or_load("k", || async { Err(Away) }).await;
        assert!(too_old.is_err(), "past its allowance it is not served");
        let again: Result<u32, Away> = cache.get_or_load("k", || async { Ok(4) }).await;
        assert!(matches!(again, Ok(4)));
        tokio::time::sleep(Duration::from_millis(80)).await;
        cache.forget("k");
        let forgotten: Result<u32, Away> = cache.get_or_load("k", || async { Err(Away) }).await;
        assert!(forgotten.is_err(), "a changed entry is never served stale");
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
            command_timeout: Duration::from_secs(2),
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
        let mut entries: HashMap<String, Entry<u32>> = HashMap::new();
        let base = Instant::now();
        for i in 0..10u32 {
            entries.insert(
                format!("{i}"),
                Entry {
                    loaded: base + Duration::from_millis(u64::from(i)),
                    value: i,
                    standing_until: None,
                },
            );
        }
        evict_oldest_half(&mut entries);
        assert_eq!(entries.len(), 5);
        assert!(entries.contains_key("9") && !entries.contains_key("0"));
    }
}
