//! Links: create, read, list and deactivate an account's links, and
//! authorize a start through one.

use crate::{
    catalog::{AccountRecord, AgentRecord},
    error::AuthError,
    links,
    service::AuthService,
};
use lobby_proto::{
    auth as pb,
    common::{LinkGrant, Principal},
};

impl AuthService {
    pub(crate) async fn create_link(
        &self,
        req: pb::CreateLinkRequest,
    ) -> Result<pb::Link, AuthError> {
        let agent: AgentRecord = self.catalog.get(&req.agent_id).await.map_err(|e| match e {
            AuthError::AgentNotFound(_) => AuthError::invalid("agent_id", "no such agent"),
            other => other,
        })?;
        if agent.account_id != req.account_id {
            return Err(AuthError::invalid("agent_id", "no such agent"));
        }
        if req.use_limit > links::MAX_USE_LIMIT {
            return Err(AuthError::invalid(
                "use_limit",
                "must be at most 1000000 (0 for unlimited)",
            ));
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
        tracing::info!(link = %crate::links::for_logs(&link.id), agent_id = %link.agent_id, "link created");
        Ok(link)
    }

    pub(crate) async fn get_link(&self, req: pb::GetLinkRequest) -> Result<pb::Link, AuthError> {
        self.owned_link(&req.link_id, &req.account_id).await
    }

    pub(crate) async fn list_links(
        &self,
        req: pb::ListLinksRequest,
    ) -> Result<pb::ListLinksResponse, AuthError> {
        let account_id = req.account_id;
        let _: AccountRecord = self.catalog.get(&account_id).await?;
        Ok(pb::ListLinksResponse {
            links: self.links.list(&account_id).await?,
        })
    }

    pub(crate) async fn deactivate_link(
        &self,
        req: pb::GetLinkRequest,
    ) -> Result<pb::Link, AuthError> {
        let link = self.owned_link(&req.link_id, &req.account_id).await?;
        self.links.deactivate(&link.id).await?;
        tracing::info!(link = %crate::links::for_logs(&link.id), "link deactivated");
        Ok(pb::Link {
            active: false,
            ..link
        })
    }

    pub(crate) async fn authorize_link(
        &self,
        req: pb::AuthorizeLinkRequest,
    ) -> Result<Principal, AuthError> {
        let link_id = req.link_id;
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
            return Err(AuthError::LinkRejected(links::LinkRejection::UsedUp));
        }
        let agent = self
            .catalog
            .get_cached::<AgentRecord>(&link.agent_id)
            .await?;
        if !agent.published {
            return Err(AuthError::AgentUnpublished);
        }
        if agent.avatar_image_url.is_empty() {
            return Err(AuthError::AvatarMissing);
        }
        let principal = self.principal(&agent).await?;
        Ok(Principal {
            link: Some(LinkGrant {
                link_id: link.id,
                use_limit: link.use_limit,
            }),
            ..principal
        })
    }
}
