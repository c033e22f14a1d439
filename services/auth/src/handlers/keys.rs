//! Keys: account API keys (create, list, authenticate), agent keys
//! (rotate, list), GPU worker keys (create, list, authenticate), and
//! revoking or pausing any key.

use crate::{
    catalog::{self, AccountRecord, AgentRecord},
    credentials::{KeyKind, KeyRejection, NewKey, SCOPES},
    error::AuthError,
    service::AuthService,
};
use lobby_proto::auth as pb;

impl AuthService {
    pub(crate) async fn create_api_key(
        &self,
        req: pb::CreateApiKeyRequest,
    ) -> Result<pb::CreatedKey, AuthError> {
        let _: AccountRecord = self.catalog.get(&req.account_id).await?;
        catalog::validate_name(&req.name)?;
        let mut scopes: Vec<String> = Vec::new();
        for scope in req.scopes {
            if !SCOPES.contains(&scope.as_str()) {
                return Err(AuthError::invalid(
                    "scopes",
                    format!("unknown scope {scope:?}; known: {}", SCOPES.join(", ")),
                ));
            }
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        if scopes.is_empty() {
            return Err(AuthError::invalid(
                "scopes",
                "at least one scope is required",
            ));
        }
        let expires_at_ms = self.future_expiry(req.expires_at_ms, "expires_at_ms")?;
        let (key, record) = self
            .credentials
            .create(
                NewKey {
                    kind: KeyKind::Account,
                    account_id: req.account_id,
                    agent_id: String::new(),
                    worker_id: String::new(),
                    pool: String::new(),
                    name: req.name,
                    scopes,
                    expires_at_ms,
                },
                self.clock.now_ms(),
            )
            .await?;
        tracing::info!(prefix = %record.prefix, account_id = %record.account_id, "api key created");
        Ok(pb::CreatedKey {
            key,
            info: Some(record.to_proto()),
        })
    }

    pub(crate) async fn list_api_keys(
        &self,
        req: pb::ListApiKeysRequest,
    ) -> Result<pb::ListKeysResponse, AuthError> {
        let account_id = req.account_id;
        let _: AccountRecord = self.catalog.get(&account_id).await?;
        let keys = self.credentials.list(KeyKind::Account, &account_id).await?;
        Ok(pb::ListKeysResponse {
            keys: keys.iter().map(|k| k.to_proto()).collect(),
        })
    }

    pub(crate) async fn authenticate_api_key(
        &self,
        req: pb::AuthenticateApiKeyRequest,
    ) -> Result<pb::ApiKeyPrincipal, AuthError> {
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
            return Err(AuthError::KeyRejected(KeyRejection::ScopeDenied));
        }
        if req.check_database_id_hash {
            let account = self
                .catalog
                .get_cached::<AccountRecord>(&record.account_id)
                .await?;
            let presented = req.database_id_hash.trim().as_bytes();
            let expected = account.database_id_hash.as_bytes();
            if expected.is_empty()
                || !bool::from(subtle::ConstantTimeEq::ct_eq(presented, expected))
            {
                return Err(AuthError::DatabaseIdMismatch);
            }
        }
        Ok(pb::ApiKeyPrincipal {
            account_id: record.account_id,
            scopes: record.scopes,
            prefix: record.prefix,
        })
    }

    pub(crate) async fn rotate_agent_key(
        &self,
        req: pb::RotateAgentKeyRequest,
    ) -> Result<pb::CreatedKey, AuthError> {
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
        for old in self.credentials.list(KeyKind::Agent, &agent.id).await? {
            if old.prefix == new_prefix || old.revoked_at_ms > 0 {
                continue;
            }
            let grace = req.previous_key_grace_seconds;
            self.credentials
                .update(&old.prefix, |old| {
                    if old.revoked_at_ms > 0 {
                        return;
                    }
                    if grace == 0 {
                        old.revoked_at_ms = now;
                    } else {
                        let end = now + i64::from(grace) * 1000;
                        old.expires_at_ms = if old.expires_at_ms > 0 {
                            old.expires_at_ms.min(end)
                        } else {
                            end
                        };
                    }
                })
                .await?;
        }
        tracing::info!(agent_id = %agent.id, prefix = %new_prefix, "agent key rotated");
        Ok(created)
    }

    pub(crate) async fn list_agent_keys(
        &self,
        req: pb::ListAgentKeysRequest,
    ) -> Result<pb::ListKeysResponse, AuthError> {
        let agent_id = req.agent_id;
        let _: AgentRecord = self.catalog.get(&agent_id).await?;
        let keys = self.credentials.list(KeyKind::Agent, &agent_id).await?;
        Ok(pb::ListKeysResponse {
            keys: keys.iter().map(|k| k.to_proto()).collect(),
        })
    }

    /// A key for one GPU worker id, serving one account or the shared pool.
    pub(crate) async fn create_worker_key(
        &self,
        req: pb::CreateWorkerKeyRequest,
    ) -> Result<pb::CreatedKey, AuthError> {
        if !lobby_proto::valid_worker_id(&req.worker_id) {
            return Err(AuthError::invalid(
                "worker_id",
                "must be 1-64 letters, digits, '-', '_' or '.'",
            ));
        }
        match (req.account_id.is_empty(), req.pool.is_empty()) {
            (false, true) => {
                let _: AccountRecord = self.catalog.get(&req.account_id).await?;
            }
            (true, false) if lobby_proto::valid_worker_id(&req.pool) => {}
            (true, false) => {
                return Err(AuthError::invalid(
                    "pool",
                    "must be 1-64 letters, digits, '-', '_' or '.'",
                ))
            }
            _ => {
                return Err(AuthError::invalid(
                    "account_id",
                    "exactly one of account_id (the account it serves) or pool is required",
                ))
            }
        }
        catalog::validate_name(&req.name)?;
        let expires_at_ms = self.future_expiry(req.expires_at_ms, "expires_at_ms")?;
        let (key, record) = self
            .credentials
            .create(
                NewKey {
                    kind: KeyKind::Worker,
                    account_id: req.account_id,
                    agent_id: String::new(),
                    worker_id: req.worker_id,
                    pool: req.pool,
                    name: req.name,
                    scopes: Vec::new(),
                    expires_at_ms,
                },
                self.clock.now_ms(),
            )
            .await?;
        tracing::info!(prefix = %record.prefix, worker_id = %record.worker_id, account_id = %record.account_id, pool = %record.pool, "worker key created");
        Ok(pb::CreatedKey {
            key,
            info: Some(record.to_proto()),
        })
    }

    pub(crate) async fn list_worker_keys(
        &self,
        req: pb::ListWorkerKeysRequest,
    ) -> Result<pb::ListKeysResponse, AuthError> {
        let keys = self
            .credentials
            .list(KeyKind::Worker, &req.worker_id)
            .await?;
        Ok(pb::ListKeysResponse {
            keys: keys.iter().map(|k| k.to_proto()).collect(),
        })
    }

    pub(crate) async fn authenticate_worker(
        &self,
        req: pb::AuthenticateWorkerRequest,
    ) -> Result<pb::WorkerPrincipal, AuthError> {
        let record = self
            .credentials
            .authenticate(&req.key, KeyKind::Worker, self.clock.now_ms())
            .await?
            .map_err(AuthError::KeyRejected)?;
        Ok(pb::WorkerPrincipal {
            worker_id: record.worker_id,
            account_id: record.account_id,
            pool: record.pool,
            prefix: record.prefix,
        })
    }

    pub(crate) async fn revoke_key(&self, req: pb::KeyRef) -> Result<pb::KeyInfo, AuthError> {
        let prefix = req.prefix;
        let now = self.clock.now_ms();
        let mut revoked_now = false;
        let record = self
            .credentials
            .update(&prefix, |record| {
                revoked_now = record.revoked_at_ms == 0;
                if revoked_now {
                    record.revoked_at_ms = now;
                }
            })
            .await?
            .ok_or_else(|| AuthError::KeyNotFound(prefix.clone()))?;
        if revoked_now {
            tracing::info!(prefix, kind = record.kind.as_str(), "key revoked");
        }
        Ok(record.to_proto())
    }

    pub(crate) async fn set_key_active(
        &self,
        req: pb::SetKeyActiveRequest,
    ) -> Result<pb::KeyInfo, AuthError> {
        let record = self
            .credentials
            .update(&req.prefix, |record| record.active = req.active)
            .await?
            .ok_or_else(|| AuthError::KeyNotFound(req.prefix.clone()))?;
        Ok(record.to_proto())
    }
}
