//! The catalog: accounts and agents as JSON records in Redis, under the
//! `{catalog}` hash tag so that one script can update a record together with
//! the indexes that depend on it (and still run on Redis Cluster).

use crate::{
    cache::{CatalogCache, Change, TtlCache},
    error::AuthError,
    origin::OriginPolicy,
};
use lobby_kit::redis_conn::RedisConn;
use lobby_proto::{auth as pb, common::Provider};
use redis::{AsyncCommands, Script};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::sync::Arc;

const ACCOUNTS: &str = "{catalog}:accounts";
const AGENTS: &str = "{catalog}:agents";
const PROJECTS: &str = "{catalog}:projects";
const ORIGIN_PATTERNS: &str = "{catalog}:origin_patterns";
/// How many times an optimistic read-change-write is tried. Each lost
/// attempt means another change landed in between, so this bounds how many
/// changes to one record may race, not how long one waits: eight concurrent
/// admins on one key exhausted the old 8.
pub(crate) const SAVE_ATTEMPTS: usize = 64;

pub const DEFAULT_ACCOUNT_MAX_CONCURRENCY: u32 = 5;
pub const DEFAULT_MINUTES_QUOTA: u64 = 600;
pub const DEFAULT_MAX_SESSION_SECONDS: u32 = 3600;
pub const MAX_SESSION_SECONDS_LIMIT: u32 = 24 * 3600;
pub const MAX_ALLOWED_HOSTNAMES: usize = 100;

fn account_key(id: &str) -> String {
    format!("{{catalog}}:account:{id}")
}
fn agent_key(id: &str) -> String {
    format!("{{catalog}}:agent:{id}")
}
fn project_key(id: &str) -> String {
    format!("{{catalog}}:project:{id}")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountRecord {
    pub id: String,
    pub name: String,
    pub max_concurrency: u32,
    pub minutes_quota: u64,
    pub created_at_ms: i64,
    /// (version, updated_at_ms): bumped together on every save.
    pub stamp: (u64, i64),
    /// The records contract's `database-id-hash` (empty only in records
    /// saved before it existed, until start-up fills it in).
    #[serde(default)]
    pub database_id_hash: String,
    /// The region that admits its sessions wherever they start (empty:
    /// each region admits on its own).
    #[serde(default)]
    pub home_region: String,
}

/// A fresh `database_id_hash`: 32 random bytes, hex.
pub fn new_database_id_hash() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentRecord {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub published: bool,
    pub allowed_hostnames: Vec<String>,
    pub max_concurrency: u32,
    pub max_session_seconds: u32,
    pub avatar_image_url: String,
    pub provider: String,
    /// Starts wait for a GPU worker to accept the session.
    #[serde(default)]
    pub requires_worker: bool,
    #[serde(default)]
    pub solo_timeout_seconds: u32,
    /// The project it belongs to (empty: none).
    #[serde(default)]
    pub project_id: String,
    pub created_at_ms: i64,
    /// (version, updated_at_ms): bumped together on every save.
    pub stamp: (u64, i64),
}

/// A group of an account's agents (seed 003's `projectId`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProjectRecord {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub created_at_ms: i64,
    /// (version, updated_at_ms): bumped together on every save.
    pub stamp: (u64, i64),
}

impl ProjectRecord {
    pub fn to_proto(&self) -> pb::Project {
        pb::Project {
            id: self.id.clone(),
            account_id: self.account_id.clone(),
            name: self.name.clone(),
            created_at_ms: self.created_at_ms,
            updated_at_ms: self.stamp.1,
        }
    }
}

/// Project ids appear in keys and URLs: `proj_` and a safe alphabet.
pub fn validate_project_id(id: &str) -> Result<(), AuthError> {
    let ok = id.starts_with("proj_")
        && id.len() > 5
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(AuthError::invalid(
            "id",
            "a project id is proj_ then up to 59 letters, digits, '-' or '_'",
        ))
    }
}

impl AccountRecord {
    pub fn to_proto(&self) -> pb::Account {
        pb::Account {
            id: self.id.clone(),
            name: self.name.clone(),
            max_concurrency: self.max_concurrency,
            minutes_quota: self.minutes_quota,
            created_at_ms: self.created_at_ms,
            updated_at_ms: self.stamp.1,
            database_id_hash: self.database_id_hash.clone(),
            home_region: self.home_region.clone(),
        }
    }
}

impl AgentRecord {
    pub fn provider(&self) -> Provider {
        Provider::from_str_name(&self.provider).unwrap_or(Provider::Livekit)
    }

    pub fn origin_policy(&self) -> OriginPolicy {
        // Entries were validated and canonicalised on write.
        OriginPolicy::parse(&self.allowed_hostnames).unwrap_or_default()
    }

    pub fn to_proto(&self) -> pb::Agent {
        pb::Agent {
            id: self.id.clone(),
            account_id: self.account_id.clone(),
            name: self.name.clone(),
            status: if self.published {
                pb::AgentStatus::Published
            } else {
                pb::AgentStatus::Unpublished
            } as i32,
            allowed_hostnames: self.allowed_hostnames.clone(),
            max_concurrency: self.max_concurrency,
            max_session_seconds: self.max_session_seconds,
            avatar_image_url: self.avatar_image_url.clone(),
            provider: self.provider() as i32,
            requires_worker: self.requires_worker,
            solo_timeout_seconds: self.solo_timeout_seconds,
            project_id: self.project_id.clone(),
            created_at_ms: self.created_at_ms,
            updated_at_ms: self.stamp.1,
        }
    }
}

/// Agent ids appear in Redis keys and URLs: keep them to a safe alphabet.
pub fn validate_agent_id(id: &str) -> Result<(), AuthError> {
    if lobby_proto::is_safe_id(id, 128) {
        Ok(())
    } else {
        Err(AuthError::invalid(
            "id",
            "must be 1-128 characters of letters, digits, '-', '_' or '.'",
        ))
    }
}

pub fn validate_account_id(id: &str) -> Result<(), AuthError> {
    let ok = id.len() > 5
        && id.len() <= 64
        && id.starts_with("acct_")
        && id[5..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(AuthError::invalid(
            "id",
            "must be acct_ followed by up to 59 letters or digits",
        ))
    }
}

pub fn validate_name(name: &str) -> Result<(), AuthError> {
    if name.chars().count() > 200 {
        return Err(AuthError::invalid("name", "must be at most 200 characters"));
    }
    Ok(())
}

pub fn validate_account_limits(max_concurrency: u32, minutes_quota: u64) -> Result<(), AuthError> {
    if !(1..=100_000).contains(&max_concurrency) {
        return Err(AuthError::invalid(
            "max_concurrency",
            "must be between 1 and 100000",
        ));
    }
    if minutes_quota > 100_000_000 {
        return Err(AuthError::invalid(
            "minutes_quota",
            "must be at most 100000000",
        ));
    }
    Ok(())
}

pub fn validate_agent_limits(
    max_concurrency: u32,
    max_session_seconds: u32,
) -> Result<(), AuthError> {
    if max_concurrency > 100_000 {
        return Err(AuthError::invalid(
            "max_concurrency",
            "must be between 0 (account limit only) and 100000",
        ));
    }
    if !(1..=MAX_SESSION_SECONDS_LIMIT).contains(&max_session_seconds) {
        return Err(AuthError::invalid(
            "max_session_seconds",
            format!("must be between 1 and {MAX_SESSION_SECONDS_LIMIT}"),
        ));
    }
    Ok(())
}

/// How long an agent may wait alone: at most a session's longest run.
pub fn validate_solo_timeout(seconds: u32) -> Result<(), AuthError> {
    if seconds > MAX_SESSION_SECONDS_LIMIT {
        return Err(AuthError::invalid(
            "solo_timeout_seconds",
            format!("must be at most {MAX_SESSION_SECONDS_LIMIT}"),
        ));
    }
    Ok(())
}

pub fn canonical_hostnames(entries: &[String]) -> Result<Vec<String>, AuthError> {
    if entries.len() > MAX_ALLOWED_HOSTNAMES {
        return Err(AuthError::invalid(
            "allowed_hostnames",
            format!("at most {MAX_ALLOWED_HOSTNAMES} entries"),
        ));
    }
    OriginPolicy::parse(entries)
        .map(|p| p.canonical_entries())
        .map_err(|e| AuthError::invalid("allowed_hostnames", e.to_string()))
}

pub fn validate_avatar_url(url: &str) -> Result<(), AuthError> {
    if url.is_empty() {
        return Ok(());
    }
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && url.len() <= 2048 => Ok(()),
        _ => Err(AuthError::invalid(
            "avatar_image_url",
            "must be an http(s) URL of at most 2048 characters",
        )),
    }
}

/// A record's share of its account's admission settings: (account,
/// version field, fields).
pub type SettingsShare = (String, String, Vec<(String, String)>);

/// What the generic store needs to know about a catalog record type.
pub trait CatalogRecord: Serialize + DeserializeOwned + Clone {
    const INDEX: &'static str;
    fn key(id: &str) -> String;
    fn id(&self) -> &str;
    fn not_found(id: &str) -> AuthError;
    fn stamp(&mut self) -> &mut (u64, i64);
    /// Allowlist entries the record contributes to the CORS pattern index.
    fn origin_patterns(&self) -> &[String] {
        &[]
    }
    fn cache(c: &CatalogCache) -> &TtlCache<Option<Arc<Self>>>;
    /// What a save of this record changes, for the other replicas' caches.
    fn changes(&self) -> Vec<Change>;
    /// The record's share of its account's admission settings: (account,
    /// version field, fields); `None` when admission does not read it.
    fn settings(&self) -> Option<SettingsShare>;
}

impl CatalogRecord for AccountRecord {
    const INDEX: &'static str = ACCOUNTS;
    fn key(id: &str) -> String {
        account_key(id)
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn not_found(id: &str) -> AuthError {
        AuthError::AccountNotFound(id.to_owned())
    }
    fn stamp(&mut self) -> &mut (u64, i64) {
        &mut self.stamp
    }
    fn cache(c: &CatalogCache) -> &TtlCache<Option<Arc<Self>>> {
        &c.accounts
    }
    fn changes(&self) -> Vec<Change> {
        vec![Change::Account(self.id.clone())]
    }
    fn settings(&self) -> Option<SettingsShare> {
        Some((
            self.id.clone(),
            "account:v".into(),
            vec![
                ("max_concurrency".into(), self.max_concurrency.to_string()),
                (
                    "quota_seconds".into(),
                    self.minutes_quota.saturating_mul(60).to_string(),
                ),
            ],
        ))
    }
}

impl CatalogRecord for AgentRecord {
    const INDEX: &'static str = AGENTS;
    fn key(id: &str) -> String {
        agent_key(id)
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn not_found(id: &str) -> AuthError {
        AuthError::AgentNotFound(id.to_owned())
    }
    fn stamp(&mut self) -> &mut (u64, i64) {
        &mut self.stamp
    }
    fn origin_patterns(&self) -> &[String] {
        &self.allowed_hostnames
    }
    fn cache(c: &CatalogCache) -> &TtlCache<Option<Arc<Self>>> {
        &c.agents
    }
    fn changes(&self) -> Vec<Change> {
        vec![Change::Agent(self.id.clone()), Change::Origins]
    }
    fn settings(&self) -> Option<SettingsShare> {
        Some((
            self.account_id.clone(),
            format!("agent:{}:v", self.id),
            vec![(
                format!("agent:{}", self.id),
                format!(
                    "{},{},{}",
                    u8::from(self.published),
                    self.max_concurrency,
                    self.max_session_seconds
                ),
            )],
        ))
    }
}

impl CatalogRecord for ProjectRecord {
    const INDEX: &'static str = PROJECTS;
    fn key(id: &str) -> String {
        project_key(id)
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn not_found(id: &str) -> AuthError {
        AuthError::ProjectNotFound(id.to_owned())
    }
    fn stamp(&mut self) -> &mut (u64, i64) {
        &mut self.stamp
    }
    fn cache(c: &CatalogCache) -> &TtlCache<Option<Arc<Self>>> {
        &c.projects
    }
    fn changes(&self) -> Vec<Change> {
        vec![Change::Project(self.id.clone())]
    }
    fn settings(&self) -> Option<SettingsShare> {
        None
    }
}

#[derive(Clone)]
pub struct Catalog {
    redis: RedisConn,
    save_script: Script,
    settings_script: Script,
    cache: Arc<CatalogCache>,
}

impl Catalog {
    pub fn new(redis: RedisConn, cache: Arc<CatalogCache>) -> Self {
        Self {
            redis,
            save_script: Script::new(include_str!("save_catalog_record.lua")),
            settings_script: Script::new(include_str!("save_settings.lua")),
            cache,
        }
    }

    /// After a save: the account's admission settings follow, and every
    /// replica drops its cached copy.
    async fn saved<R: CatalogRecord>(&self, record: &R) -> Result<(), AuthError> {
        self.write_settings(record).await?;
        self.cache.changed(&self.redis, &record.changes()).await;
        Ok(())
    }

    async fn write_settings<R: CatalogRecord>(&self, record: &R) -> Result<(), AuthError> {
        let Some((account, version_field, fields)) = record.settings() else {
            return Ok(());
        };
        let version = record.clone().stamp().0;
        let mut call = self.settings_script.prepare_invoke();
        call.key(lobby_kit::keys::account_settings(&account))
            .arg(version_field)
            .arg(version);
        for (field, value) in fields {
            call.arg(field).arg(value);
        }
        let _: i64 = call.invoke_async(&mut self.redis.clone()).await?;
        Ok(())
    }

    /// Writes every record's admission settings: at start-up, so that a
    /// save whose settings write was lost (a crash between the two) is
    /// repaired, and data from before the settings existed gets them.
    pub async fn sync_settings(&self) -> Result<usize, AuthError> {
        let accounts: Vec<AccountRecord> = self.list().await?;
        let agents: Vec<AgentRecord> = self.list().await?;
        for account in &accounts {
            self.write_settings(account).await?;
            if account.database_id_hash.is_empty() {
                self.update(&account.id, |a: &mut AccountRecord| {
                    if a.database_id_hash.is_empty() {
                        a.database_id_hash = new_database_id_hash();
                    }
                    Ok(())
                })
                .await?;
            }
        }
        for agent in &agents {
            self.write_settings(agent).await?;
        }
        Ok(accounts.len() + agents.len())
    }

    /// A record from the cache (or Redis, then cached): what starts read.
    pub async fn get_cached<R: CatalogRecord>(&self, id: &str) -> Result<Arc<R>, AuthError> {
        R::cache(&self.cache)
            .get_or_load(id, || async {
                Ok::<_, AuthError>(self.find::<R>(id).await?.map(Arc::new))
            })
            .await?
            .ok_or_else(|| R::not_found(id))
    }

    async fn find<R: CatalogRecord>(&self, id: &str) -> Result<Option<R>, AuthError> {
        let mut conn = self.redis.clone();
        let raw: Option<String> = conn.get(R::key(id)).await?;
        Ok(raw.map(|r| serde_json::from_str(&r)).transpose()?)
    }

    /// Runs the save script; `mode` is "create" or the version read.
    async fn save<R: CatalogRecord>(&self, record: &R, mode: String) -> Result<i64, AuthError> {
        let mut conn = self.redis.clone();
        Ok(self
            .save_script
            .key(R::key(record.id()))
            .key(R::INDEX)
            .key(ORIGIN_PATTERNS)
            .arg(record.id())
            .arg(serde_json::to_string(record)?)
            .arg(mode)
            .arg(record.origin_patterns())
            .invoke_async(&mut conn)
            .await?)
    }

    pub async fn create<R: CatalogRecord>(&self, record: &R) -> Result<(), AuthError> {
        match self.save(record, "create".into()).await? {
            1 => self.saved(record).await,
            _ => Err(AuthError::AlreadyExists(record.id().to_owned())),
        }
    }

    /// A record straight from Redis (the admin API reads its own writes).
    pub async fn get<R: CatalogRecord>(&self, id: &str) -> Result<R, AuthError> {
        self.find(id).await?.ok_or_else(|| R::not_found(id))
    }

    pub async fn list<R: CatalogRecord>(&self) -> Result<Vec<R>, AuthError> {
        let mut conn = self.redis.clone();
        let mut ids: Vec<String> = conn.smembers(R::INDEX).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        ids.sort();
        let keys: Vec<String> = ids.iter().map(|id| R::key(id)).collect();
        let raws: Vec<Option<String>> =
            redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
        raws.into_iter()
            .flatten()
            .map(|r| serde_json::from_str(&r).map_err(AuthError::from))
            .collect()
    }

    /// Read, change, write with an optimistic version check, so two admins
    /// editing one record never lose each other's change.
    pub async fn update<R: CatalogRecord>(
        &self,
        id: &str,
        change: impl Fn(&mut R) -> Result<(), AuthError>,
    ) -> Result<R, AuthError> {
        for _ in 0..SAVE_ATTEMPTS {
            let mut record: R = self.get(id).await?;
            let read_version = record.stamp().0;
            change(&mut record)?;
            *record.stamp() = (read_version + 1, lobby_kit::time::now_ms());
            match self.save(&record, read_version.to_string()).await? {
                1 => {
                    self.saved(&record).await?;
                    return Ok(record);
                }
                -1 => return Err(R::not_found(id)),
                _ => continue,
            }
        }
        Err(AuthError::Conflict)
    }

    /// Every allowlist entry some agent has, canonical form (cached).
    pub async fn origin_patterns(&self) -> Result<Arc<Vec<String>>, AuthError> {
        self.cache
            .origins
            .get_or_load("", || async {
                let mut conn = self.redis.clone();
                let patterns: Vec<String> = conn.hkeys(ORIGIN_PATTERNS).await?;
                Ok::<_, AuthError>(Arc::new(patterns))
            })
            .await
    }
}
