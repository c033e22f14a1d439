//! The auth service's state and the helpers its calls share. The calls
//! themselves are in `handlers`, put on the wire by `grpc`; rules about
//! fields live in `catalog`, about origins in `origin`.

use crate::{
    catalog::{AccountRecord, AgentRecord, Catalog},
    credentials::{CredentialStore, KeyKind, NewKey},
    error::AuthError,
    links::{self, LinkStore},
    session_jwt::SessionTokens,
};
use lobby_kit::time::Clock;
use lobby_proto::{
    auth as pb,
    common::{AdmissionLimits, Principal, Provider},
};

pub struct AuthService {
    pub(crate) catalog: Catalog,
    pub(crate) credentials: CredentialStore,
    pub(crate) tokens: SessionTokens,
    pub(crate) links: LinkStore,
    pub(crate) clock: Clock,
    pub(crate) audit: lobby_kit::audit::AuditLog,
    pub(crate) regions: lobby_kit::regions::RegionList,
}

impl AuthService {
    pub fn new(
        catalog: Catalog,
        credentials: CredentialStore,
        tokens: SessionTokens,
        links: LinkStore,
        clock: Clock,
        audit: lobby_kit::audit::AuditLog,
        regions: lobby_kit::regions::RegionList,
    ) -> Self {
        Self {
            catalog,
            credentials,
            tokens,
            links,
            clock,
            audit,
            regions,
        }
    }

    /// The principal a start runs under: the agent's limits within its
    /// account's, from the cache (admission reads the exact values).
    pub(crate) async fn principal(&self, agent: &AgentRecord) -> Result<Principal, AuthError> {
        let account = self
            .catalog
            .get_cached::<AccountRecord>(&agent.account_id)
            .await?;
        Ok(Principal {
            account_id: account.id.clone(),
            agent_id: agent.id.clone(),
            limits: Some(AdmissionLimits {
                account_max_concurrency: account.max_concurrency,
                agent_max_concurrency: agent.max_concurrency,
                max_session_seconds: agent.max_session_seconds,
                quota_seconds: account.minutes_quota.saturating_mul(60),
            }),
            provider: agent.provider() as i32,
            requires_worker: agent.requires_worker,
            solo_timeout_seconds: agent.solo_timeout_seconds,
            avatar_image_url: agent.avatar_image_url.clone(),
            link: None,
            home_region: account.home_region.clone(),
        })
    }

    /// An account's home region as asked: one of the regions, or empty
    /// (each region admits on its own); the default is this region when
    /// there are several, none otherwise.
    pub(crate) fn home_region(&self, asked: Option<&str>) -> Result<String, AuthError> {
        let Some(name) = asked else {
            return Ok(if self.regions.is_multi() {
                self.regions.me.clone()
            } else {
                String::new()
            });
        };
        let known = name.is_empty()
            || self.regions.get(name).is_some()
            || (!self.regions.is_multi() && name == self.regions.me);
        if known {
            Ok(name.to_owned())
        } else {
            Err(AuthError::invalid(
                "home_region",
                "must be one of the regions (LOBBY_REGIONS), or empty",
            ))
        }
    }

    pub(crate) fn future_expiry(
        &self,
        expires_at_ms: i64,
        field: &'static str,
    ) -> Result<i64, AuthError> {
        if expires_at_ms != 0 && expires_at_ms <= self.clock.now_ms() {
            return Err(AuthError::invalid(
                field,
                "must be in the future (or 0 for never)",
            ));
        }
        Ok(expires_at_ms)
    }

    pub(crate) async fn create_agent_key(
        &self,
        agent: &AgentRecord,
        expires_at_ms: i64,
    ) -> Result<pb::CreatedKey, AuthError> {
        let (key, record) = self
            .credentials
            .create(
                NewKey {
                    kind: KeyKind::Agent,
                    account_id: agent.account_id.clone(),
                    agent_id: agent.id.clone(),
                    worker_id: String::new(),
                    pool: String::new(),
                    name: String::new(),
                    scopes: Vec::new(),
                    expires_at_ms,
                },
                self.clock.now_ms(),
            )
            .await?;
        Ok(pb::CreatedKey {
            key,
            info: Some(record.to_proto()),
        })
    }

    /// A link of `account_id` (when given), or not found: API-key callers
    /// never learn about other accounts' links.
    pub(crate) async fn owned_link(
        &self,
        link_id: &str,
        account_id: &str,
    ) -> Result<pb::Link, AuthError> {
        match self.links.get(link_id).await? {
            Some(l) if account_id.is_empty() || l.account_id == account_id => Ok(l),
            _ => Err(AuthError::LinkRejected(links::LinkRejection::NotFound)),
        }
    }
}

pub(crate) fn new_account_id() -> String {
    format!("acct_{}", uuid::Uuid::new_v4().simple())
}

pub(crate) fn new_agent_id() -> String {
    format!("agt_{}", uuid::Uuid::new_v4().simple())
}

/// Maps a wire provider to the stored name; UNSPECIFIED means "keep / default".
pub(crate) fn provider_name(raw: i32) -> Result<Option<&'static str>, AuthError> {
    match Provider::try_from(raw) {
        Ok(Provider::Unspecified) => Ok(None),
        Ok(p) => Ok(Some(p.as_str_name())),
        Err(_) => Err(AuthError::invalid("provider", "must be livekit or daily")),
    }
}

pub(crate) fn published(raw: i32) -> Result<Option<bool>, AuthError> {
    match pb::AgentStatus::try_from(raw) {
        Ok(pb::AgentStatus::Unspecified) => Ok(None),
        Ok(pb::AgentStatus::Published) => Ok(Some(true)),
        Ok(pb::AgentStatus::Unpublished) => Ok(Some(false)),
        Err(_) => Err(AuthError::invalid(
            "status",
            "must be published or unpublished",
        )),
    }
}
