//! The catalog: accounts, projects and agents, and the origin checks of a browser
//! connect (the start itself and the CORS preflight).

use crate::{
    catalog::{self, AccountRecord, AgentRecord, ProjectRecord},
    error::AuthError,
    origin::{AllowedOrigin, OriginPolicy},
    service::{new_account_id, new_agent_id, provider_name, published, AuthService},
};
use lobby_proto::{
    auth as pb,
    common::{Principal, Provider},
};

impl AuthService {
    pub(crate) async fn create_account(
        &self,
        req: pb::CreateAccountRequest,
    ) -> Result<pb::Account, AuthError> {
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
        let home_region = self.home_region(req.home_region.as_deref())?;
        let now = lobby_kit::time::now_ms();
        let record = AccountRecord {
            id,
            name: req.name,
            max_concurrency,
            minutes_quota,
            created_at_ms: now,
            stamp: (1, now),
            database_id_hash: catalog::new_database_id_hash(),
            home_region,
        };
        self.catalog.create(&record).await?;
        tracing::info!(account_id = %record.id, "account created");
        Ok(record.to_proto())
    }

    pub(crate) async fn get_account(
        &self,
        req: pb::GetAccountRequest,
    ) -> Result<pb::Account, AuthError> {
        let record: AccountRecord = self.catalog.get(&req.id).await?;
        Ok(record.to_proto())
    }

    pub(crate) async fn update_account(
        &self,
        req: pb::UpdateAccountRequest,
    ) -> Result<pb::Account, AuthError> {
        let home_region = match req.home_region.as_deref() {
            Some(asked) => Some(self.home_region(Some(asked))?),
            None => None,
        };
        let record = self
            .catalog
            .update(&req.id, |a: &mut AccountRecord| {
                if let Some(home) = &home_region {
                    a.home_region = home.clone();
                }
                if let Some(name) = &req.name {
                    catalog::validate_name(name)?;
                    a.name = name.clone();
                }
                a.max_concurrency = req.max_concurrency.unwrap_or(a.max_concurrency);
                a.minutes_quota = req.minutes_quota.unwrap_or(a.minutes_quota);
                catalog::validate_account_limits(a.max_concurrency, a.minutes_quota)
            })
            .await?;
        Ok(record.to_proto())
    }

    pub(crate) async fn rotate_database_id_hash(
        &self,
        req: pb::GetAccountRequest,
    ) -> Result<pb::Account, AuthError> {
        let record = self
            .catalog
            .update(&req.id, |a: &mut AccountRecord| {
                a.database_id_hash = catalog::new_database_id_hash();
                Ok(())
            })
            .await?;
        tracing::info!(account_id = %record.id, "database id hash rotated");
        Ok(record.to_proto())
    }

    pub(crate) async fn list_accounts(
        &self,
        _: pb::ListAccountsRequest,
    ) -> Result<pb::ListAccountsResponse, AuthError> {
        let accounts: Vec<AccountRecord> = self.catalog.list().await?;
        Ok(pb::ListAccountsResponse {
            accounts: accounts.iter().map(AccountRecord::to_proto).collect(),
        })
    }

    pub(crate) async fn create_agent(
        &self,
        req: pb::CreateAgentRequest,
    ) -> Result<pb::CreatedAgent, AuthError> {
        let id = if req.id.is_empty() {
            new_agent_id()
        } else {
            req.id
        };
        catalog::validate_agent_id(&id)?;
        catalog::validate_name(&req.name)?;
        // The owner must exist: an agent of no account could never be admitted.
        self.owner_exists(&req.account_id).await?;
        let max_concurrency = req.max_concurrency.unwrap_or(0);
        let max_session_seconds = req
            .max_session_seconds
            .unwrap_or(catalog::DEFAULT_MAX_SESSION_SECONDS);
        catalog::validate_agent_limits(max_concurrency, max_session_seconds)?;
        catalog::validate_avatar_url(&req.avatar_image_url)?;
        catalog::validate_solo_timeout(req.solo_timeout_seconds)?;
        self.check_project(&req.project_id, &req.account_id).await?;
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
            project_id: req.project_id,
            created_at_ms: now,
            stamp: (1, now),
        };
        self.catalog.create(&record).await?;
        let agent_key = self.create_agent_key(&record, 0).await?;
        tracing::info!(agent_id = %record.id, account_id = %record.account_id, "agent created");
        Ok(pb::CreatedAgent {
            agent: Some(record.to_proto()),
            agent_key: Some(agent_key),
        })
    }

    pub(crate) async fn get_agent(&self, req: pb::GetAgentRequest) -> Result<pb::Agent, AuthError> {
        let record: AgentRecord = self.catalog.get(&req.id).await?;
        Ok(record.to_proto())
    }

    pub(crate) async fn update_agent(
        &self,
        req: pb::UpdateAgentRequest,
    ) -> Result<pb::Agent, AuthError> {
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
        if let Some(project) = req.project_id.as_deref().filter(|p| !p.is_empty()) {
            let agent: AgentRecord = self.catalog.get(&req.id).await?;
            self.check_project(project, &agent.account_id).await?;
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
                    catalog::validate_solo_timeout(solo)?;
                    a.solo_timeout_seconds = solo;
                }
                if let Some(project) = &req.project_id {
                    a.project_id = project.clone();
                }
                catalog::validate_agent_limits(a.max_concurrency, a.max_session_seconds)
            })
            .await?;
        Ok(record.to_proto())
    }

    pub(crate) async fn list_agents(
        &self,
        req: pb::ListAgentsRequest,
    ) -> Result<pb::ListAgentsResponse, AuthError> {
        let account_id = req.account_id;
        let agents: Vec<AgentRecord> = self.catalog.list().await?;
        Ok(pb::ListAgentsResponse {
            agents: agents
                .iter()
                .filter(|a| account_id.is_empty() || a.account_id == account_id)
                .map(AgentRecord::to_proto)
                .collect(),
        })
    }

    /// A new record's `account_id` must name an account.
    async fn owner_exists(&self, account_id: &str) -> Result<(), AuthError> {
        match self.catalog.get::<AccountRecord>(account_id).await {
            Ok(_) => Ok(()),
            Err(AuthError::AccountNotFound(_)) => {
                Err(AuthError::invalid("account_id", "no such account"))
            }
            Err(e) => Err(e),
        }
    }

    /// An agent may join only an existing project of its own account.
    async fn check_project(&self, project_id: &str, account_id: &str) -> Result<(), AuthError> {
        if project_id.is_empty() {
            return Ok(());
        }
        match self.catalog.get::<ProjectRecord>(project_id).await {
            Ok(p) if p.account_id == account_id => Ok(()),
            Ok(_) | Err(AuthError::ProjectNotFound(_)) => Err(AuthError::invalid(
                "project_id",
                "no such project in the agent's account",
            )),
            Err(e) => Err(e),
        }
    }

    pub(crate) async fn create_project(
        &self,
        req: pb::CreateProjectRequest,
    ) -> Result<pb::Project, AuthError> {
        let id = if req.id.is_empty() {
            format!("proj_{}", uuid::Uuid::new_v4().simple())
        } else {
            req.id
        };
        catalog::validate_project_id(&id)?;
        catalog::validate_name(&req.name)?;
        self.owner_exists(&req.account_id).await?;
        let now = lobby_kit::time::now_ms();
        let record = ProjectRecord {
            id,
            account_id: req.account_id,
            name: req.name,
            created_at_ms: now,
            stamp: (1, now),
        };
        self.catalog.create(&record).await?;
        tracing::info!(project_id = %record.id, account_id = %record.account_id, "project created");
        Ok(record.to_proto())
    }

    pub(crate) async fn get_project(
        &self,
        req: pb::GetProjectRequest,
    ) -> Result<pb::Project, AuthError> {
        let record: ProjectRecord = self.catalog.get(&req.id).await?;
        Ok(record.to_proto())
    }

    pub(crate) async fn list_projects(
        &self,
        req: pb::ListProjectsRequest,
    ) -> Result<pb::ListProjectsResponse, AuthError> {
        let projects: Vec<ProjectRecord> = self.catalog.list().await?;
        Ok(pb::ListProjectsResponse {
            projects: projects
                .iter()
                .filter(|p| req.account_id.is_empty() || p.account_id == req.account_id)
                .map(ProjectRecord::to_proto)
                .collect(),
        })
    }

    pub(crate) async fn authorize_connect(
        &self,
        req: pb::AuthorizeConnectRequest,
    ) -> Result<Principal, AuthError> {
        let agent = self
            .catalog
            .get_cached::<AgentRecord>(&req.agent_id)
            .await?;
        // The origin is checked before the publish state so that a page that
        // may not use the agent learns nothing about it.
        if !agent.origin_policy().allows(req.origin.as_deref()) {
            tracing::info!(agent_id = %agent.id, origin = ?req.origin, "origin refused");
            return Err(AuthError::OriginRefused);
        }
        if !agent.published {
            return Err(AuthError::AgentUnpublished);
        }
        self.principal(&agent).await
    }

    pub(crate) async fn check_preflight_origin(
        &self,
        req: pb::CheckPreflightOriginRequest,
    ) -> Result<pb::CheckPreflightOriginResponse, AuthError> {
        let origin = req.origin;
        let patterns = self.catalog.origin_patterns().await?;
        let entries: Vec<AllowedOrigin> = patterns
            .iter()
            .filter_map(|p| AllowedOrigin::parse(p).ok())
            .collect();
        // Same rule as a start: `*` grants any origin, otherwise an exact match.
        let allowed = OriginPolicy::from_entries(entries).allows(Some(&origin));
        Ok(pb::CheckPreflightOriginResponse { allowed })
    }
}
