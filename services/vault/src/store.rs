//! Where an account's wrapped keys live (one Redis hash, in the account's
//! slot), and a short-lived in-memory copy of them unwrapped.
//!
//! Keys are created on an account's first sealed write, in one script, so
//! two replicas racing create one set. A rotation adds a data key and makes
//! it current; old ones stay, so everything sealed before still opens. A
//! replica that meets a value sealed under a key it has not seen reloads
//! once. Keys wrapped under a master key that is no longer current are
//! rewrapped under the current one the first time they are loaded.

use crate::{account::AccountKeys, cipher, error::VaultError, master::MasterKeys};
use lobby_kit::redis_conn::RedisConn;
use redis::Script;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// Accounts whose keys are kept unwrapped at once; past it the copy starts over.
const MAX_CACHED_ACCOUNTS: usize = 10_000;
const INDEX_KEY_ID: &str = "idx";
const CURRENT: &str = "current";

fn vault_key(account_id: &str) -> String {
    format!(
        "{}:{account_id}:vault",
        lobby_kit::keys::account_tag(account_id)
    )
}

fn new_data_key_id() -> String {
    format!("dk{}", hex::encode(rand::random::<[u8; 6]>()))
}

/// Account id → when its keys were loaded, and the keys.
type Unwrapped = HashMap<String, (Instant, Arc<AccountKeys>)>;

#[derive(Clone)]
pub struct KeyVault {
    redis: RedisConn,
    master: Arc<MasterKeys>,
    ttl: Duration,
    cache: Arc<Mutex<Unwrapped>>,
    create: Arc<Script>,
    rotate: Arc<Script>,
}

impl KeyVault {
    pub fn new(redis: RedisConn, master: MasterKeys, ttl: Duration) -> Self {
        Self {
            redis,
            master: Arc::new(master),
            ttl,
            cache: Arc::default(),
            create: Arc::new(Script::new(
                r"
-- KEYS[1] the account's vault hash; ARGV: data key id, wrapped data key,
-- wrapped index key. Creates them unless the account has keys already.
if redis.call('HEXISTS', KEYS[1], 'current') == 0 then
  redis.call('HSET', KEYS[1], 'current', ARGV[1], 'dk:' .. ARGV[1], ARGV[2], 'idx', ARGV[3])
end
return redis.call('HGETALL', KEYS[1])",
            )),
            rotate: Arc::new(Script::new(
                r"
-- KEYS[1] the account's vault hash; ARGV: new data key id, wrapped key.
redis.call('HSET', KEYS[1], 'dk:' .. ARGV[1], ARGV[2], 'current', ARGV[1])
return redis.call('HGETALL', KEYS[1])",
            )),
        }
    }

    fn cached(&self, account_id: &str) -> Option<Arc<AccountKeys>> {
        let cache = self.cache.lock().ok()?;
        let (at, keys) = cache.get(account_id)?;
        (at.elapsed() < self.ttl).then(|| keys.clone())
    }

    fn remember(&self, keys: Arc<AccountKeys>) {
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= MAX_CACHED_ACCOUNTS {
                cache.clear();
            }
            cache.insert(keys.account_id.clone(), (Instant::now(), keys));
        }
    }

    /// The account's keys, created on first use.
    pub async fn keys(&self, account_id: &str) -> Result<Arc<AccountKeys>, VaultError> {
        match self.cached(account_id) {
            Some(keys) => Ok(keys),
            None => self.load(account_id).await,
        }
    }

    /// The account's keys as Redis has them now.
    pub async fn load(&self, account_id: &str) -> Result<Arc<AccountKeys>, VaultError> {
        let id = new_data_key_id();
        let stored: HashMap<String, String> = self
            .create
            .key(vault_key(account_id))
            .arg(&id)
            .arg(self.master.wrap(account_id, &id, &cipher::random_key()))
            .arg(
                self.master
                    .wrap(account_id, INDEX_KEY_ID, &cipher::random_key()),
            )
            .invoke_async(&mut self.redis.clone())
            .await?;
        self.unwrap_all(account_id, stored).await
    }

    async fn unwrap_all(
        &self,
        account_id: &str,
        stored: HashMap<String, String>,
    ) -> Result<Arc<AccountKeys>, VaultError> {
        let current = stored
            .get(CURRENT)
            .cloned()
            .ok_or(VaultError::Tampered("vault has no current key"))?;
        let mut data_keys = HashMap::new();
        let mut index_key = None;
        let mut stale: Vec<(String, String)> = Vec::new();
        for (field, wrapped) in &stored {
            let key_id = if field == INDEX_KEY_ID {
                INDEX_KEY_ID
            } else if let Some(id) = field.strip_prefix("dk:") {
                id
            } else {
                continue;
            };
            let (key, stale_wrap) = self.master.unwrap(account_id, key_id, wrapped)?;
            if stale_wrap {
                stale.push((field.clone(), self.master.wrap(account_id, key_id, &key)));
            }
            if key_id == INDEX_KEY_ID {
                index_key = Some(key);
            } else {
                data_keys.insert(key_id.to_owned(), key);
            }
        }
        if !data_keys.contains_key(&current) {
            return Err(VaultError::Tampered("current data key missing"));
        }
        if !stale.is_empty() {
            // The same keys under the current master: safe beside any
            // concurrent write, which only ever adds keys.
            let _: () = redis::cmd("HSET")
                .arg(vault_key(account_id))
                .arg(
                    stale
                        .iter()
                        .flat_map(|(f, w)| [f.as_str(), w.as_str()])
                        .collect::<Vec<_>>(),
                )
                .query_async(&mut self.redis.clone())
                .await?;
            tracing::info!(
                account_id,
                rewrapped = stale.len(),
                master = self.master.current_id(),
                "account keys rewrapped under the current master key"
            );
        }
        let keys = Arc::new(AccountKeys {
            account_id: account_id.to_owned(),
            current,
            data_keys,
            index_key: index_key.ok_or(VaultError::Tampered("index key missing"))?,
        });
        self.remember(keys.clone());
        Ok(keys)
    }

    /// Opens a sealed value; a key this replica has not seen yet (another
    /// rotated it in) is looked up once.
    pub async fn open(
        &self,
        account_id: &str,
        record: &str,
        field: &str,
        sealed: &str,
    ) -> Result<Vec<u8>, VaultError> {
        let keys = self.keys(account_id).await?;
        match keys.open(record, field, sealed) {
            Err(VaultError::UnknownDataKey(_)) => {
                self.load(account_id).await?.open(record, field, sealed)
            }
            other => other,
        }
    }

    /// [`KeyVault::open`], as text.
    pub async fn open_str(
        &self,
        account_id: &str,
        record: &str,
        field: &str,
        sealed: &str,
    ) -> Result<String, VaultError> {
        String::from_utf8(self.open(account_id, record, field, sealed).await?)
            .map_err(|_| VaultError::Tampered("not UTF-8"))
    }

    /// A new data key seals the account's writes from now on (on every
    /// replica within the cache TTL); the old ones keep opening.
    pub async fn rotate_data_key(&self, account_id: &str) -> Result<String, VaultError> {
        self.keys(account_id).await?;
        let id = new_data_key_id();
        let stored: HashMap<String, String> = self
            .rotate
            .key(vault_key(account_id))
            .arg(&id)
            .arg(self.master.wrap(account_id, &id, &cipher::random_key()))
            .invoke_async(&mut self.redis.clone())
            .await?;
        self.unwrap_all(account_id, stored).await?;
        tracing::info!(account_id, data_key = %id, "account data key rotated");
        Ok(id)
    }
}
