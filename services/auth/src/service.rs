//! The `lobby.auth.v1.Auth` gRPC service: parse the request, apply the rule,
//! answer. Rules about fields live in `catalog`, about origins in `origin`.

use crate::{
    catalog::{self, AccountRecord, AgentRecord, Catalog},
    credentials::{CredentialStore, KeyKind, KeyRejection, NewKey, SCOPES},
    error::AuthError,
    links::{self, LinkStore},
    origin::{AllowedOrigin, OriginPolicy},
    session_jwt::SessionTokens,
};
use lobby_kit::time::Clock;
use lobby_proto::{
    auth::{self as pb, auth_server::Auth},
    common::{AdmissionLimits, LinkGrant, Principal, Provider},
};
use tonic::{Request, Response, Status};

pub struct AuthService {
    catalog: Catalog,
    credentials: CredentialStore,
    tokens: SessionTokens,
    links: LinkStore,
    clock: Clock,
}

impl AuthService {
    pub fn new(
        catalog: Catalog,
        credentials: CredentialStore,
        tokens: SessionTokens,
        links: LinkStore,
        clock: Clock,
    ) -> Self {
        Self {
            catalog,
            credentials,
            tokens,
            links,
            clock,
        }
    }

    /// The principal a start runs under: the agent's limits within its
    /// account's, from the cache (admission reads the exact values).
    async fn principal(&self, agent: &AgentRecord) -> Result<Principal, AuthError> {
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
        })
    }

    fn future_expiry(&self, expires_at_ms: i64, field: &'static str) -> Result<i64, AuthError> {
        if expires_at_ms != 0 && expires_at_ms <= self.clock.now_ms() {
            return Err(AuthError::invalid(
                field,
                "must be in the future (or 0 for never)",
            ));
        }
        Ok(expires_at_ms)
    }

    async fn create_agent_key(
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
    async fn owned_link(&self, link_id: &str, account_id: &str) -> Result<pb::Link, AuthError> {
        match self.links.get(link_id).await? {
            Some(l) if account_id.is_empty() || l.account_id == account_id => Ok(l),
            _ => Err(AuthError::LinkRejected(links::LinkRejection::NotFound)),
        }
    }
}

fn new_account_id() -> String {
    format!("acct_{}", uuid::Uuid::new_v4().simple())
}

fn new_agent_id() -> String {
    format!("agt_{}", uuid::Uuid::new_v4().simple())
}

/// Maps a wire provider to the stored name; UNSPECIFIED means "keep / default".
fn provider_name(raw: i32) -> Result<Option<&'static str>, AuthError> {
    match Provider::try_from(raw) {
        Ok(Provider::Unspecified) => Ok(None),
        Ok(p) => Ok(Some(p.as_str_name())),
        Err(_) => Err(AuthError::invalid("provider", "must be livekit or daily")),
    }
}

fn published(raw: i32) -> Result<Option<bool>, AuthError> {
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

#[tonic::async_trait]
impl Auth for AuthService {
    async fn create_account(
        &self,
        req: Request<pb::CreateAccountRequest>,
    ) -> Result<Response<pb::Account>, Status> {
        let req = req.into_inner();
        let id = if req.id.is_empty() {
            new_account_id()
        } else {
            req.id
        };
        catalog::validate_account_id(&id)?;
        catalog::validate_name(&req.name)?;
        let max_concurrency = req
            .max_concurrency
            .unwrap_or(catalog::DEFAULT_ACCOUNT_MAX_CONCURRENCY);
        let minutes_quota = req.minutes_quota.unwrap_or(catalog::DEFAULT_MINUTES_QUOTA);
        catalog::validate_account_limits(max_concurrency, minutes_quota)?;
        let now = lobby_kit::time::now_ms();
        let record = AccountRecord {
            id,
            name: req.name,
            max_concurrency,
            minutes_quota,
            created_at_ms: now,
            stamp: (1, now),
        };
        self.catalog.create(&record).await?;
        tracing::info!(account_id = %record.id, "account created");
        Ok(Response::new(record.to_proto()))
    }

    async fn get_account(
        &self,
        req: Request<pb::GetAccountRequest>,
    ) -> Result<Response<pb::Account>, Status> {
        let record: AccountRecord = self.catalog.get(&req.into_inner().id).await?;
        Ok(Response::new(record.to_proto()))
    }

    async fn update_account(
        &self,
        req: Request<pb::UpdateAccountRequest>,
    ) -> Result<Response<pb::Account>, Status> {
        let req = req.into_inner();
        let record = self
            .catalog
            .update(&req.id, |a: &mut AccountRecord| {
                if let Some(name) = &req.name {
                    catalog::validate_name(name)?;
                    a.name = name.clone();
                }
                a.max_concurrency = req.max_concurrency.unwrap_or(a.max_concurrency);
                a.minutes_quota = req.minutes_quota.unwrap_or(a.minutes_quota);
                catalog::validate_account_limits(a.max_concurrency, a.minutes_quota)
            })
            .await?;
        Ok(Response::new(record.to_proto()))
    }

    async fn list_accounts(
        &self,
        _: Request<pb::ListAccountsRequest>,
    ) -> Result<Response<pb::ListAccountsResponse>, Status> {
        let accounts: Vec<AccountRecord> = self.catalog.list().await?;
        Ok(Response::new(pb::ListAccountsResponse {
            accounts: accounts.iter().map(AccountRecord::to_proto).collect(),
        }))
    }

    async fn create_agent(
        &self,
        req: Request<pb::CreateAgentRequest>,
    ) -> Result<Response<pb::CreatedAgent>, Status> {
        let req = req.into_inner();
        let id = if req.id.is_empty() {
            new_agent_id()
        } else {
            req.id
        };
        catalog::validate_agent_id(&id)?;
        catalog::validate_name(&req.name)?;
        // The owner must exist: an agent of no account could never be admitted.
        let _: AccountRecord = self
            .catalog
            .get(&req.account_id)
            .await
            .map_err(|e| match e {
                AuthError::AccountNotFound(_) => {
                    AuthError::invalid("account_id", "no such account")
                }
                other => other,
            })?;
        let max_concurrency = req.max_concurrency.unwrap_or(0);
        let max_session_seconds = req
            .max_session_seconds
            .unwrap_or(catalog::DEFAULT_MAX_SESSION_SECONDS);
        catalog::validate_agent_limits(max_concurrency, max_session_seconds)?;
        catalog::validate_avatar_url(&req.avatar_image_url)?;
        if req.solo_timeout_seconds > catalog::MAX_SESSION_SECONDS_LIMIT {
            return Err(AuthError::invalid("solo_timeout_seconds", "must be at most 86400").into());
        }
        let now = lobby_kit::time::now_ms();
        let record = AgentRecord {
            id,
            account_id: req.account_id,
            name: req.name,
            published: published(req.status)?.unwrap_or(false),
            allowed_hostnames: catalog::canonical_hostnames(&req.allowed_hostnames)?,
            max_concurrency,
            max_session_seconds,
            avatar_image_url: req.avatar_image_url,
            provider: provider_name(req.provider)?
                .unwrap_or(Provider::Livekit.as_str_name())
                .to_owned(),
            requires_worker: req.requires_worker,
            solo_timeout_seconds: req.solo_timeout_seconds,
            created_at_ms: now,
            stamp: (1, now),
        };
        self.catalog.create(&record).await?;
        let agent_key = self.create_agent_key(&record, 0).await?;
        tracing::info!(agent_id = %record.id, account_id = %record.account_id, "agent created");
        Ok(Response::new(pb::CreatedAgent {
            agent: Some(record.to_proto()),
            agent_key: Some(agent_key),
        }))
    }

    async fn get_agent(
        &self,
        req: Request<pb::GetAgentRequest>,
    ) -> Result<Response<pb::Agent>, Status> {
        let record: AgentRecord = self.catalog.get(&req.into_inner().id).await?;
        Ok(Response::new(record.to_proto()))
    }

    async fn update_agent(
        &self,
        req: Request<pb::UpdateAgentRequest>,
    ) -> Result<Response<pb::Agent>, Status> {
        let req = req.into_inner();
        let status = published(req.status)?;
        let provider = provider_name(req.provider)?;
        let hostnames = req
            .allowed_hostnames
            .as_ref()
            .map(|l| catalog::canonical_hostnames(&l.entries))
            .transpose()?;
        if let Some(url) = &req.avatar_image_url {
            catalog::validate_avatar_url(url)?;
        }
        let record = self
            .catalog
            .update(&req.id, |a: &mut AgentRecord| {
                if let Some(name) = &req.name {
                    catalog::validate_name(name)?;
                    a.name = name.clone();
                }
                a.published = status.unwrap_or(a.published);
                if let Some(h) = &hostnames {
                    a.allowed_hostnames = h.clone();
                }
                a.max_concurrency = req.max_concurrency.unwrap_or(a.max_concurrency);
                a.max_session_seconds = req.max_session_seconds.unwrap_or(a.max_session_seconds);
                if let Some(url) = &req.avatar_image_url {
                    a.avatar_image_url = url.clone();
                }
                if let Some(p) = provider {
                    a.provider = p.to_owned();
                }
                a.requires_worker = req.requires_worker.unwrap_or(a.requires_worker);
                if let Some(solo) = req.solo_timeout_seconds {
                    if solo > catalog::MAX_SESSION_SECONDS_LIMIT {
                        return Err(AuthError::invalid(
                            "solo_timeout_seconds",
                            "must be at most 86400",
                        ));
                    }
                    a.solo_timeout_seconds = solo;
                }
                catalog::validate_agent_limits(a.max_concurrency, a.max_session_seconds)
            })
            .await?;
        Ok(Response::new(record.to_proto()))
    }

    async fn list_agents(
        &self,
        req: Request<pb::ListAgentsRequest>,
    ) -> Result<Response<pb::ListAgentsResponse>, Status> {
        let account_id = req.into_inner().account_id;
        let agents: Vec<AgentRecord> = self.catalog.list().await?;
        Ok(Response::new(pb::ListAgentsResponse {
            agents: agents
                .iter()
                .filter(|a| account_id.is_empty() || a.account_id == account_id)
                .map(AgentRecord::to_proto)
                .collect(),
        }))
    }

    async fn authorize_connect(
        &self,
        req: Request<pb::AuthorizeConnectRequest>,
    ) -> Result<Response<Principal>, Status> {
        let req = req.into_inner();
        let agent = self
            .catalog
            .get_cached::<AgentRecord>(&req.agent_id)
            .await?;
        // The origin is checked before the publish state so that a page that
        // may not use the agent learns nothing about it.
        if !agent.origin_policy().allows(req.origin.as_deref()) {
            tracing::info!(agent_id = %agent.id, origin = ?req.origin, "origin refused");
            return Err(AuthError::OriginRefused.into());
        }
        if !agent.published {
            return Err(AuthError::AgentUnpublished.into());
        }
        Ok(Response::new(self.principal(&agent).await?))
    }

    async fn check_preflight_origin(
        &self,
        req: Request<pb::CheckPreflightOriginRequest>,
    ) -> Result<Response<pb::CheckPreflightOriginResponse>, Status> {
        let origin = req.into_inner().origin;
        let patterns = self.catalog.origin_patterns().await?;
        let entries: Vec<AllowedOrigin> = patterns
            .iter()
            .filter_map(|p| AllowedOrigin::parse(p).ok())
            .collect();
        // Same rule as a start: `*` grants any origin, otherwise an exact match.
        let allowed = OriginPolicy::from_entries(entries).allows(Some(&origin));
        Ok(Response::new(pb::CheckPreflightOriginResponse { allowed }))
    }

    async fn create_api_key(
        &self,
        req: Request<pb::CreateApiKeyRequest>,
    ) -> Result<Response<pb::CreatedKey>, Status> {
        let req = req.into_inner();
        let _: AccountRecord = self.catalog.get(&req.account_id).await?;
        catalog::validate_name(&req.name)?;
        let mut scopes: Vec<String> = Vec::new();
        for scope in req.scopes {
            if !SCOPES.contains(&scope.as_str()) {
                return Err(AuthError::invalid(
                    "scopes",
                    format!("unknown scope {scope:?}; known: {}", SCOPES.join(", ")),
                )
                .into());
            }
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        if scopes.is_empty() {
            return Err(AuthError::invalid("scopes", "at least one scope is required").into());
        }
        let expires_at_ms = self.future_expiry(req.expires_at_ms, "expires_at_ms")?;
        let (key, record) = self
            .credentials
            .create(
                NewKey {
                    kind: KeyKind::Account,
                    account_id: req.account_id,
                    agent_id: String::new(),
                    name: req.name,
                    scopes,
                    expires_at_ms,
                },
                self.clock.now_ms(),
            )
            .await?;
        tracing::info!(prefix = %record.prefix, account_id = %record.account_id, "api key created");
        Ok(Response::new(pb::CreatedKey {
            key,
            info: Some(record.to_proto()),
        }))
    }

    async fn list_api_keys(
        &self,
        req: Request<pb::ListApiKeysRequest>,
    ) -> Result<Response<pb::ListKeysResponse>, Status> {
        let account_id = req.into_inner().account_id;
        let _: AccountRecord = self.catalog.get(&account_id).await?;
        let keys = self.credentials.list(KeyKind::Account, &account_id).await?;
        Ok(Response::new(pb::ListKeysResponse {
            keys: keys.iter().map(|k| k.to_proto()).collect(),
        }))
    }

    async fn authenticate_api_key(
        &self,
        req: Request<pb::AuthenticateApiKeyRequest>,
    ) -> Result<Response<pb::ApiKeyPrincipal>, Status> {
        let req = req.into_inner();
        let record = self
            .credentials
            .authenticate(&req.key, KeyKind::Account, self.clock.now_ms())
            .await?
            .map_err(AuthError::KeyRejected)?;
        // `admin` carries every other scope.
        let allowed = req.required_scope.is_empty()
            || record
                .scopes
                .iter()
                .any(|s| *s == req.required_scope || s == "admin");
        if !allowed {
            return Err(AuthError::KeyRejected(KeyRejection::ScopeDenied).into());
        }
        Ok(Response::new(pb::ApiKeyPrincipal {
            account_id: record.account_id,
            scopes: record.scopes,
            prefix: record.prefix,
        }))
    }

    async fn rotate_agent_key(
        &self,
        req: Request<pb::RotateAgentKeyRequest>,
    ) -> Result<Response<pb::CreatedKey>, Status> {
        let req = req.into_inner();
        let agent: AgentRecord = self.catalog.get(&req.agent_id).await?;
        let expires_at_ms = self.future_expiry(req.expires_at_ms, "expires_at_ms")?;
        let now = self.clock.now_ms();
        let created = self.create_agent_key(&agent, expires_at_ms).await?;
        let new_prefix = created
            .info
            .as_ref()
            .map(|i| i.prefix.clone())
            .unwrap_or_default();
        // Earlier keys stop at once, or after the grace period, whichever the caller chose.
        for mut old in self.credentials.list(KeyKind::Agent, &agent.id).await? {
            if old.prefix == new_prefix || old.revoked_at_ms > 0 {
                continue;
            }
            if req.previous_key_grace_seconds == 0 {
                old.revoked_at_ms = now;
            } else {
                let end = now + i64::from(req.previous_key_grace_seconds) * 1000;
                old.expires_at_ms = if old.expires_at_ms > 0 {
                    old.expires_at_ms.min(end)
                } else {
                    end
                };
            }
            self.credentials.save(&old).await?;
        }
        tracing::info!(agent_id = %agent.id, prefix = %new_prefix, "agent key rotated");
        Ok(Response::new(created))
    }

    async fn list_agent_keys(
        &self,
        req: Request<pb::ListAgentKeysRequest>,
    ) -> Result<Response<pb::ListKeysResponse>, Status> {
        let agent_id = req.into_inner().agent_id;
        let _: AgentRecord = self.catalog.get(&agent_id).await?;
        let keys = self.credentials.list(KeyKind::Agent, &agent_id).await?;
        Ok(Response::new(pb::ListKeysResponse {
            keys: keys.iter().map(|k| k.to_proto()).collect(),
        }))
    }

    async fn authorize_agent_run(
        &self,
        req: Request<pb::AuthorizeAgentRunRequest>,
    ) -> Result<Response<pb::AgentRunGrant>, Status> {
        let key = req.into_inner().key;
        let now = self.clock.now_ms();
        let record = self
            .credentials
            .authenticate(&key, KeyKind::Agent, now)
            .await?
            .map_err(AuthError::KeyRejected)?;
        // A key whose agent was removed is as good as unknown.
        let agent = self
            .catalog
            .get_cached::<AgentRecord>(&record.agent_id)
            .await
            .map_err(|_| AuthError::KeyRejected(KeyRejection::Invalid))?;
        let principal = self.principal(&agent).await?;
        let session_id = uuid::Uuid::new_v4().to_string();
        let (jwt, kid, expires_at) = self
            .tokens
            .issue(&session_id, &agent.id, &agent.account_id, now)
            .await?;
        Ok(Response::new(pb::AgentRunGrant {
            principal: Some(principal),
            session_id,
            jwt,
            kid,
            expires_at,
        }))
    }

    async fn revoke_key(&self, req: Request<pb::KeyRef>) -> Result<Response<pb::KeyInfo>, Status> {
        let prefix = req.into_inner().prefix;
        let mut record = self
            .credentials
            .get(&prefix)
            .await?
            .ok_or_else(|| AuthError::KeyNotFound(prefix.clone()))?;
        if record.revoked_at_ms == 0 {
            record.revoked_at_ms = self.clock.now_ms();
            self.credentials.save(&record).await?;
            tracing::info!(prefix, kind = record.kind.as_str(), "key revoked");
        }
        Ok(Response::new(record.to_proto()))
    }

    async fn set_key_active(
        &self,
        req: Request<pb::SetKeyActiveRequest>,
    ) -> Result<Response<pb::KeyInfo>, Status> {
        let req = req.into_inner();
        let mut record = self
            .credentials
            .get(&req.prefix)
            .await?
            .ok_or_else(|| AuthError::KeyNotFound(req.prefix.clone()))?;
        record.active = req.active;
        self.credentials.save(&record).await?;
        Ok(Response::new(record.to_proto()))
    }

    async fn verify_session_token(
        &self,
        req: Request<pb::VerifySessionTokenRequest>,
    ) -> Result<Response<pb::SessionTokenClaims>, Status> {
        let jwt = req.into_inner().jwt;
        let claims = self
            .tokens
            .verify(&jwt, self.clock.now_ms())
            .await?
            .map_err(AuthError::TokenRejected)?;
        Ok(Response::new(pb::SessionTokenClaims {
            session_id: claims.sid,
            agent_id: claims.sub,
            account_id: claims.acct,
            jti: claims.jti,
            expires_at: claims.exp,
        }))
    }

    async fn rotate_signing_key(
        &self,
        _: Request<pb::RotateSigningKeyRequest>,
    ) -> Result<Response<pb::SigningKeyInfo>, Status> {
        let (kid, created_at_ms) = self.tokens.rotate(self.clock.now_ms()).await?;
        Ok(Response::new(pb::SigningKeyInfo { kid, created_at_ms }))
    }

    async fn create_link(
        &self,
        req: Request<pb::CreateLinkRequest>,
    ) -> Result<Response<pb::Link>, Status> {
        let req = req.into_inner();
        let agent: AgentRecord = self.catalog.get(&req.agent_id).await.map_err(|e| match e {
            AuthError::AgentNotFound(_) => AuthError::invalid("agent_id", "no such agent"),
            other => other,
        })?;
        if agent.account_id != req.account_id {
            return Err(AuthError::invalid("agent_id", "no such agent").into());
        }
        if req.use_limit > links::MAX_USE_LIMIT {
            return Err(AuthError::invalid(
                "use_limit",
                "must be at most 1000000 (0 for unlimited)",
            )
            .into());
        }
        let link = pb::Link {
            id: links::new_link_id(),
            account_id: req.account_id,
            agent_id: req.agent_id,
            active: true,
            expires_at_ms: self.future_expiry(req.expires_at_ms, "expires_at")?,
            use_limit: req.use_limit,
            uses: 0,
            created_at_ms: self.clock.now_ms(),
        };
        self.links.create(&link).await?;
        tracing::info!(link_id = %link.id, agent_id = %link.agent_id, "link created");
        Ok(Response::new(link))
    }

    async fn get_link(
        &self,
        req: Request<pb::GetLinkRequest>,
    ) -> Result<Response<pb::Link>, Status> {
        let req = req.into_inner();
        Ok(Response::new(
            self.owned_link(&req.link_id, &req.account_id).await?,
        ))
    }

    async fn list_links(
        &self,
        req: Request<pb::ListLinksRequest>,
    ) -> Result<Response<pb::ListLinksResponse>, Status> {
        let account_id = req.into_inner().account_id;
        let _: AccountRecord = self.catalog.get(&account_id).await?;
        Ok(Response::new(pb::ListLinksResponse {
            links: self.links.list(&account_id).await?,
        }))
    }

    async fn deactivate_link(
        &self,
        req: Request<pb::GetLinkRequest>,
    ) -> Result<Response<pb::Link>, Status> {
        let req = req.into_inner();
        let link = self.owned_link(&req.link_id, &req.account_id).await?;
        self.links.deactivate(&link.id).await?;
        tracing::info!(link_id = %link.id, "link deactivated");
        Ok(Response::new(pb::Link {
            active: false,
            ..link
        }))
    }

    async fn authorize_link(
        &self,
        req: Request<pb::AuthorizeLinkRequest>,
    ) -> Result<Response<Principal>, Status> {
        let link_id = req.into_inner().link_id;
        // The link first: an expired link answers 410 whatever its agent.
        let link = self
            .links
            .get_cached(&link_id)
            .await?
            .ok_or(AuthError::LinkRejected(links::LinkRejection::NotFound))?;
        links::check_usable(&link, self.clock.now_ms()).map_err(AuthError::LinkRejected)?;
        // A link that is plainly used up is refused before anything costly
        // (the avatar check); admission still takes the use atomically.
        if link.use_limit > 0 && self.links.uses(&link).await? >= link.use_limit {
            return Err(AuthError::LinkRejected(links::LinkRejection::UsedUp).into());
        }
        let agent = self
            .catalog
            .get_cached::<AgentRecord>(&link.agent_id)
            .await?;
        if !agent.published {
            return Err(AuthError::AgentUnpublished.into());
        }
        if agent.avatar_image_url.is_empty() {
            return Err(AuthError::AvatarMissing.into());
        }
        let principal = self.principal(&agent).await?;
        Ok(Response::new(Principal {
            link: Some(LinkGrant {
                link_id: link.id,
                use_limit: link.use_limit,
            }),
            ..principal
        }))
    }
}
