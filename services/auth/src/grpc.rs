//! The `lobby.auth.v1.Auth` gRPC wire: each call unwraps its request and
//! hands it to the `AuthService` method of the same name in `handlers`.

use crate::service::AuthService;
use lobby_kit::audit::Actor;
use lobby_proto::{
    auth::{self as pb, auth_server::Auth},
    common::Principal,
};
use tonic::{Request, Response, Status};

/// What an audited answer says of itself: whose log it goes to (`None`:
/// the global one) and which record it names.
trait Audited {
    fn account(&self) -> Option<&str>;
    fn target(&self) -> String;
}

impl Audited for pb::Account {
    fn account(&self) -> Option<&str> {
        Some(&self.id)
    }
    fn target(&self) -> String {
        format!("account:{}", self.id)
    }
}

impl Audited for pb::Agent {
    fn account(&self) -> Option<&str> {
        Some(&self.account_id)
    }
    fn target(&self) -> String {
        format!("agent:{}", self.id)
    }
}

impl Audited for pb::Project {
    fn account(&self) -> Option<&str> {
        Some(&self.account_id)
    }
    fn target(&self) -> String {
        format!("project:{}", self.id)
    }
}

impl Audited for pb::CreatedAgent {
    fn account(&self) -> Option<&str> {
        self.agent.as_ref().and_then(Audited::account)
    }
    fn target(&self) -> String {
        format!(
            "agent:{}",
            self.agent.as_ref().map_or("", |a| a.id.as_str())
        )
    }
}

/// A key goes to its account's log; a pool's worker key to the global one.
impl Audited for pb::KeyInfo {
    fn account(&self) -> Option<&str> {
        Some(self.account_id.as_str()).filter(|a| !a.is_empty())
    }
    fn target(&self) -> String {
        format!("key:{}", self.prefix)
    }
}

impl Audited for pb::CreatedKey {
    fn account(&self) -> Option<&str> {
        self.info.as_ref().and_then(Audited::account)
    }
    fn target(&self) -> String {
        format!(
            "key:{}",
            self.info.as_ref().map_or("", |i| i.prefix.as_str())
        )
    }
}

impl Audited for pb::SigningKeyInfo {
    fn account(&self) -> Option<&str> {
        None
    }
    fn target(&self) -> String {
        format!("signing_key:{}", self.kid)
    }
}

/// Named by fingerprint: a link id is a credential.
impl Audited for pb::Link {
    fn account(&self) -> Option<&str> {
        Some(&self.account_id)
    }
    fn target(&self) -> String {
        crate::links::for_logs(&self.id)
    }
}

impl AuthService {
    /// Records `event` for the change `r` answers, then answers it.
    async fn audited<T: Audited>(
        &self,
        actor: &Actor,
        event: &str,
        r: T,
    ) -> Result<Response<T>, Status> {
        self.audit
            .record(r.account(), actor, event, &r.target())
            .await;
        Ok(Response::new(r))
    }
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn create_account(
        &self,
        req: Request<pb::CreateAccountRequest>,
    ) -> Result<Response<pb::Account>, Status> {
        let actor = Actor::from_metadata(req.metadata());
        let r = self.create_account(req.into_inner()).await?;
        self.audited(&actor, "createAccount", r).await
    }

    async fn get_account(
        &self,
        req: Request<pb::GetAccountRequest>,
    ) -> Result<Response<pb::Account>, Status> {
        Ok(Response::new(self.get_account(req.into_inner()).await?))
    }

    async fn update_account(
        &self,
        req: Request<pb::UpdateAccountRequest>,
    ) -> Result<Response<pb::Account>, Status> {
        let actor = Actor::from_metadata(req.metadata());
        let r = self.update_account(req.into_inner()).await?;
        self.audited(&actor, "updateAccount", r).await
    }

    async fn list_accounts(
        &self,
        req: Request<pb::ListAccountsRequest>,
    ) -> Result<Response<pb::ListAccountsResponse>, Status> {
        Ok(Response::new(self.list_accounts(req.into_inner()).await?))
    }

    async fn rotate_database_id_hash(
        &self,
        req: Request<pb::GetAccountRequest>,
    ) -> Result<Response<pb::Account>, Status> {
        let actor = Actor::from_metadata(req.metadata());
        let r = self.rotate_database_id_hash(req.into_inner()).await?;
        self.audited(&actor, "rotateDatabaseIdHash", r).await
    }

    async fn create_agent(
        &self,
        req: Request<pb::CreateAgentRequest>,
    ) -> Result<Response<pb::CreatedAgent>, Status> {
        let actor = Actor::from_metadata(req.metadata());
        let r = self.create_agent(req.into_inner()).await?;
        self.audited(&actor, "createAgent", r).await
    }

    async fn get_agent(
        &self,
        req: Request<pb::GetAgentRequest>,
    ) -> Result<Response<pb::Agent>, Status> {
        Ok(Response::new(self.get_agent(req.into_inner()).await?))
    }

    async fn update_agent(
        &self,
        req: Request<pb::UpdateAgentRequest>,
    ) -> Result<Response<pb::Agent>, Status> {
        let actor = Actor::from_metadata(req.metadata());
        let r = self.update_agent(req.into_inner()).await?;
        self.audited(&actor, "updateAgent", r).await
    }

    async fn list_agents(
        &self,
        req: Request<pb::ListAgentsRequest>,
    ) -> Result<Response<pb::ListAgentsResponse>, Status> {
        Ok(Response::new(self.list_agents(req.into_inner()).await?))
    }

    async fn create_project(
        &self,
        req: Request<pb::CreateProjectRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let actor = Actor::from_metadata(req.metadata());
        let r = self.create_project(req.into_inner()).await?;
        self.audited(&actor, "createProject", r).await
    }

    async fn get_project(
        &self,
        req: Request<pb::GetProjectRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        Ok(Response::new(self.get_project(req.into_inner()).await?))
    }

    async fn list_projects(
        &self,
        req: Request<pb::ListProjectsRequest>,
    ) -> Result<Response<pb::ListProjectsResponse>, Status> {
        Ok(Response::new(self.list_projects(req.into_inner()).await?))
    }

    async fn authorize_connect(
        &self,
        req: Request<pb::AuthorizeConnectRequest>,
    ) -> Result<Response<Principal>, Status> {
        Ok(Response::new(
            self.authorize_connect(req.into_inner()).await?,
        ))
    }

    async fn check_preflight_origin(
        &self,
        req: Request<pb::CheckPreflightOriginRequest>,
    ) -> Result<Response<pb::CheckPreflightOriginResponse>, Status> {
        Ok(Response::new(
            self.check_preflight_origin(req.into_inner()).await?,
        ))
    }

    async fn create_api_key(
        &self,
        req: Request<pb::CreateApiKeyRequest>,
    ) -> Result<Response<pb::CreatedKey>, Status> {
        let actor = Actor::from_metadata(req.metadata());
        let r = self.create_api_key(req.into_inner()).await?;
        self.audited(&actor, "createApiKey", r).await
    }

    async fn list_api_keys(
        &self,
        req: Request<pb::ListApiKeysRequest>,
    ) -> Result<Response<pb::ListKeysResponse>, Status> {
        Ok(Response::new(self.list_api_keys(req.into_inner()).await?))
    }

    async fn authenticate_api_key(
        &self,
        req: Request<pb::AuthenticateApiKeyRequest>,
    ) -> Result<Response<pb::ApiKeyPrincipal>, Status> {
        Ok(Response::new(
            self.authenticate_api_key(req.into_inner()).await?,
        ))
    }

    async fn rotate_agent_key(
        &self,
        req: Request<pb::RotateAgentKeyRequest>,
    ) -> Result<Response<pb::CreatedKey>, Status> {
        let actor = Actor::from_metadata(req.metadata());
        let r = self.rotate_agent_key(req.into_inner()).await?;
        self.audited(&actor, "rotateAgentKey", r).await
    }

    async fn list_agent_keys(
        &self,
        req: Request<pb::ListAgentKeysRequest>,
    ) -> Result<Response<pb::ListKeysResponse>, Status> {
        Ok(Response::new(self.list_agent_keys(req.into_inner()).await?))
    }

    async fn authorize_agent_run(
        &self,
        req: Request<pb::AuthorizeAgentRunRequest>,
    ) -> Result<Response<pb::AgentRunGrant>, Status> {
        Ok(Response::new(
            self.authorize_agent_run(req.into_inner()).await?,
        ))
    }

    async fn create_worker_key(
        &self,
        req: Request<pb::CreateWorkerKeyRequest>,
    ) -> Result<Response<pb::CreatedKey>, Status> {
        let actor = Actor::from_metadata(req.metadata());
        let r = self.create_worker_key(req.into_inner()).await?;
        self.audited(&actor, "createWorkerKey", r).await
    }

    async fn list_worker_keys(
        &self,
        req: Request<pb::ListWorkerKeysRequest>,
    ) -> Result<Response<pb::ListKeysResponse>, Status> {
        Ok(Response::new(
            self.list_worker_keys(req.into_inner()).await?,
        ))
    }

    async fn authenticate_worker(
        &self,
        req: Request<pb::AuthenticateWorkerRequest>,
    ) -> Result<Response<pb::WorkerPrincipal>, Status> {
        Ok(Response::new(
            self.authenticate_worker(req.into_inner()).await?,
        ))
    }

    async fn revoke_key(&self, req: Request<pb::KeyRef>) -> Result<Response<pb::KeyInfo>, Status> {
        let actor = Actor::from_metadata(req.metadata());
        let r = self.revoke_key(req.into_inner()).await?;
        self.audited(&actor, "revokeKey", r).await
    }

    async fn set_key_active(
        &self,
        req: Request<pb::SetKeyActiveRequest>,
    ) -> Result<Response<pb::KeyInfo>, Status> {
        let actor = Actor::from_metadata(req.metadata());
        let r = self.set_key_active(req.into_inner()).await?;
        self.audited(&actor, if r.active { "resumeKey" } else { "pauseKey" }, r)
            .await
    }

    async fn verify_session_token(
        &self,
        req: Request<pb::VerifySessionTokenRequest>,
    ) -> Result<Response<pb::SessionTokenClaims>, Status> {
        Ok(Response::new(
            self.verify_session_token(req.into_inner()).await?,
        ))
    }

    async fn rotate_signing_key(
        &self,
        req: Request<pb::RotateSigningKeyRequest>,
    ) -> Result<Response<pb::SigningKeyInfo>, Status> {
        let actor = Actor::from_metadata(req.metadata());
        let r = self.rotate_signing_key(req.into_inner()).await?;
        self.audited(&actor, "rotateSigningKey", r).await
    }

    async fn create_link(
        &self,
        req: Request<pb::CreateLinkRequest>,
    ) -> Result<Response<pb::Link>, Status> {
        let actor = Actor::from_metadata(req.metadata());
        let r = self.create_link(req.into_inner()).await?;
        self.audited(&actor, "createLink", r).await
    }

    async fn get_link(
        &self,
        req: Request<pb::GetLinkRequest>,
    ) -> Result<Response<pb::Link>, Status> {
        Ok(Response::new(self.get_link(req.into_inner()).await?))
    }

    async fn list_links(
        &self,
        req: Request<pb::ListLinksRequest>,
    ) -> Result<Response<pb::ListLinksResponse>, Status> {
        Ok(Response::new(self.list_links(req.into_inner()).await?))
    }

    async fn deactivate_link(
        &self,
        req: Request<pb::GetLinkRequest>,
    ) -> Result<Response<pb::Link>, Status> {
        let actor = Actor::from_metadata(req.metadata());
        let r = self.deactivate_link(req.into_inner()).await?;
        self.audited(&actor, "deactivateLink", r).await
    }

    async fn authorize_link(
        &self,
        req: Request<pb::AuthorizeLinkRequest>,
    ) -> Result<Response<Principal>, Status> {
        Ok(Response::new(self.authorize_link(req.into_inner()).await?))
    }
}
