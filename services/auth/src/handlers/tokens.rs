//! Session tokens: an agent run's grant, verifying a session JWT, and
//! rotating the signing key.

use crate::{
    catalog::AgentRecord,
    credentials::{KeyKind, KeyRejection},
    error::AuthError,
    service::AuthService,
};
use lobby_proto::auth as pb;

impl AuthService {
    pub(crate) async fn authorize_agent_run(
        &self,
        req: pb::AuthorizeAgentRunRequest,
    ) -> Result<pb::AgentRunGrant, AuthError> {
        let key = req.key;
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
        // In the account's bucket: the run's id → account lookup is
        // written with its record, in the account's slot.
        let session_id =
            lobby_kit::keys::uuid_in_bucket(lobby_kit::keys::account_bucket(&agent.account_id));
        let (jwt, kid, expires_at) = self
            .tokens
            .issue(
                &session_id,
                &agent.id,
                &agent.account_id,
                &record.prefix,
                now,
            )
            .await?;
        Ok(pb::AgentRunGrant {
            principal: Some(principal),
            session_id,
            jwt,
            kid,
            expires_at,
        })
    }

    pub(crate) async fn verify_session_token(
        &self,
        req: pb::VerifySessionTokenRequest,
    ) -> Result<pb::SessionTokenClaims, AuthError> {
        let jwt = req.jwt;
        let now = self.clock.now_ms();
        let claims = self
            .tokens
            .verify(&jwt, now)
            .await?
            .map_err(AuthError::TokenRejected)?;
        // A token is worth no more than what granted it: the agent must
        // still be published, and the key that minted the run still usable.
        let agent = self
            .catalog
            .get_cached::<AgentRecord>(&claims.sub)
            .await
            .map_err(|_| AuthError::TokenRejected(crate::session_jwt::TokenRejection::Invalid))?;
        if !agent.published {
            return Err(AuthError::AgentUnpublished);
        }
        if !claims.akp.is_empty() {
            let key = self.credentials.cached(&claims.akp).await?;
            match key {
                Some(key) if key.kind == KeyKind::Agent && key.agent_id == agent.id => {
                    key.usable_at(now).map_err(AuthError::KeyRejected)?
                }
                _ => return Err(AuthError::KeyRejected(KeyRejection::Invalid)),
            }
        }
        Ok(pb::SessionTokenClaims {
            session_id: claims.sid,
            agent_id: claims.sub,
            account_id: claims.acct,
            jti: claims.jti,
            expires_at: claims.exp,
        })
    }

    pub(crate) async fn rotate_signing_key(
        &self,
        req: pb::RotateSigningKeyRequest,
    ) -> Result<pb::SigningKeyInfo, AuthError> {
        let rotation = self
            .tokens
            .rotate(self.clock.now_ms(), req.revoke_previous)
            .await?;
        Ok(pb::SigningKeyInfo {
            previous_revoked: req.revoke_previous && rotation.previous_kid.is_some(),
            previous_kid: rotation.previous_kid.unwrap_or_default(),
            kid: rotation.kid,
            created_at_ms: rotation.created_at_ms,
        })
    }
}
