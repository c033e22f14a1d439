//! The `lobby.auth.v1.Auth` gRPC service: parse the request, apply the rule,
//! answer. Rules about fields live in `catalog`, about origins in `origin`.

use crate::{
    catalog::{self, AccountRecord, AgentRecord, Catalog},
    error::AuthError,
    origin::{AllowedOrigin, OriginPolicy},
};
use lobby_proto::{
    auth::{self as pb, auth_server::Auth},
    common::{AdmissionLimits, Provider},
};
use tonic::{Request, Response, Status};

pub struct AuthService {
    catalog: Catalog,
}

impl AuthService {
    pub fn new(catalog: Catalog) -> Self {
        Self { catalog }
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
    ) -> Result<Response<pb::Agent>, Status> {
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
            created_at_ms: now,
            stamp: (1, now),
        };
        self.catalog.create(&record).await?;
        tracing::info!(agent_id = %record.id, account_id = %record.account_id, "agent created");
        Ok(Response::new(record.to_proto()))
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
    ) -> Result<Response<pb::Principal>, Status> {
        let req = req.into_inner();
        let agent: AgentRecord = self.catalog.get(&req.agent_id).await?;
        // The origin is checked before the publish state so that a page that
        // may not use the agent learns nothing about it.
        if !agent.origin_policy().allows(req.origin.as_deref()) {
            tracing::info!(agent_id = %agent.id, origin = ?req.origin, "origin refused");
            return Err(AuthError::OriginRefused.into());
        }
        if !agent.published {
            return Err(AuthError::AgentUnpublished.into());
        }
        let account: AccountRecord = self.catalog.get(&agent.account_id).await?;
        Ok(Response::new(pb::Principal {
            account_id: account.id,
            agent_id: agent.id.clone(),
            limits: Some(AdmissionLimits {
                account_max_concurrency: account.max_concurrency,
                agent_max_concurrency: agent.max_concurrency,
                max_session_seconds: agent.max_session_seconds,
            }),
            provider: agent.provider() as i32,
        }))
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
}
