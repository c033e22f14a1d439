//! Keys: account API keys, agent keys (rotation), GPU worker keys, revoking
//! and pausing a key, and rotating the session-token signing key.

use super::{ApiResult, MAX_BODY_BYTES};
use crate::{
    json_body::{read_json, read_optional_json},
    AppState,
};
use axum::{
    body::Body,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
    Json,
};
use lobby_proto::auth as pb;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct KeyJson {
    /// The key's public part: how it is named, revoked or paused.
    prefix: String,
    /// `account` (an API key), `agent` or `worker`.
    kind: String,
    account_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    agent_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    worker_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pool: String,
    name: String,
    scopes: Vec<String>,
    active: bool,
    #[schema(required = true)]
    expires_at_ms: Option<i64>,
    created_at_ms: i64,
    #[schema(required = true)]
    revoked_at_ms: Option<i64>,
}

impl From<pb::KeyInfo> for KeyJson {
    fn from(k: pb::KeyInfo) -> Self {
        let positive = |v: i64| (v > 0).then_some(v);
        Self {
            expires_at_ms: positive(k.expires_at_ms),
            revoked_at_ms: positive(k.revoked_at_ms),
            prefix: k.prefix,
            kind: k.kind,
            account_id: k.account_id,
            agent_id: k.agent_id,
            worker_id: k.worker_id,
            pool: k.pool,
            name: k.name,
            scopes: k.scopes,
            active: k.active,
            created_at_ms: k.created_at_ms,
        }
    }
}

/// A new key with its secret: the only response that ever carries it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct CreatedKeyJson {
    #[serde(flatten)]
    info: KeyJson,
    /// The secret, shown this once.
    key: String,
}

impl From<pb::CreatedKey> for CreatedKeyJson {
    fn from(created: pb::CreatedKey) -> Self {
        Self {
            info: created.info.unwrap_or_default().into(),
            key: created.key,
        }
    }
}

/// An API key's scopes, as the document names them (auth checks them).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) enum Scope {
    #[schema(rename = "sessions:read")]
    SessionsRead,
    #[schema(rename = "sessions:write")]
    SessionsWrite,
    #[schema(rename = "links:write")]
    LinksWrite,
    #[schema(rename = "admin")]
    Admin,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct KeyList {
    keys: Vec<KeyJson>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateApiKeyJson {
    #[serde(default)]
    name: String,
    /// What the key may do; at least one.
    #[schema(value_type = Vec<Scope>, min_items = 1)]
    scopes: Vec<String>,
    #[serde(default)]
    expires_at_ms: i64,
}

#[utoipa::path(
    post,
    operation_id = "admin_create_api_key",
    path = "/accounts/{id}/api-keys",
    tag = "admin: keys",
    params(("id" = String, Path, description = "The account")),
    request_body = CreateApiKeyJson,
    security(("admin_token" = [])),
    responses(
        (status = 201, description = "Created (its secret shown once)", body = CreatedKeyJson),
        super::Refusals,
    )
)]
pub(super) async fn create_api_key(
    State(st): State<AppState>,
    Path(account_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<impl IntoResponse> {
    let req: CreateApiKeyJson = read_json(&headers, body, MAX_BODY_BYTES).await?;
    let created = st
        .services
        .auth
        .create_api_key(crate::actor::request(pb::CreateApiKeyRequest {
            account_id,
            name: req.name,
            scopes: req.scopes,
            expires_at_ms: req.expires_at_ms,
        }))
        .await?
        .into_inner();
    Ok((StatusCode::CREATED, Json(CreatedKeyJson::from(created))))
}

fn keys_json(list: pb::ListKeysResponse) -> Json<KeyList> {
    Json(KeyList {
        keys: list.keys.into_iter().map(KeyJson::from).collect(),
    })
}

#[utoipa::path(
    get,
    operation_id = "admin_list_api_keys",
    path = "/accounts/{id}/api-keys",
    tag = "admin: keys",
    params(("id" = String, Path, description = "The account")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The account's API keys", body = KeyList),
        super::Refusals,
    )
)]
pub(super) async fn list_api_keys(
    State(st): State<AppState>,
    Path(account_id): Path<String>,
) -> ApiResult<Json<KeyList>> {
    let list = st
        .services
        .auth
        .list_api_keys(crate::actor::request(pb::ListApiKeysRequest { account_id }))
        .await?
        .into_inner();
    Ok(keys_json(list))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RotateAgentKeyJson {
    /// How long the previous key keeps working (0: it stops at once).
    #[serde(default)]
    previous_key_grace_seconds: u32,
    #[serde(default)]
    expires_at_ms: i64,
}

#[utoipa::path(
    post,
    operation_id = "admin_rotate_agent_key",
    path = "/agents/{id}/keys",
    tag = "admin: keys",
    params(("id" = String, Path, description = "The agent")),
    request_body(content = Option<RotateAgentKeyJson>, description = "Optional"),
    security(("admin_token" = [])),
    responses(
        (status = 201, description = "The new agent key (its secret shown once)", body = CreatedKeyJson),
        super::Refusals,
    )
)]
pub(super) async fn rotate_agent_key(
    State(st): State<AppState>,
    Path(agent_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<impl IntoResponse> {
    let req: RotateAgentKeyJson = read_optional_json(&headers, body, MAX_BODY_BYTES).await?;
    let created = st
        .services
        .auth
        .rotate_agent_key(crate::actor::request(pb::RotateAgentKeyRequest {
            agent_id,
            previous_key_grace_seconds: req.previous_key_grace_seconds,
            expires_at_ms: req.expires_at_ms,
        }))
        .await?
        .into_inner();
    Ok((StatusCode::CREATED, Json(CreatedKeyJson::from(created))))
}

#[utoipa::path(
    get,
    operation_id = "admin_list_agent_keys",
    path = "/agents/{id}/keys",
    tag = "admin: keys",
    params(("id" = String, Path, description = "The agent")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The agent's keys", body = KeyList),
        super::Refusals,
    )
)]
pub(super) async fn list_agent_keys(
    State(st): State<AppState>,
    Path(agent_id): Path<String>,
) -> ApiResult<Json<KeyList>> {
    let list = st
        .services
        .auth
        .list_agent_keys(crate::actor::request(pb::ListAgentKeysRequest { agent_id }))
        .await?
        .into_inner();
    Ok(keys_json(list))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateWorkerKeyJson {
    /// The account whose sessions the worker may run; left out, a pool
    /// worker.
    #[serde(default)]
    account_id: String,
    /// A pool worker's pool.
    #[serde(default)]
    pool: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    expires_at_ms: i64,
}

#[utoipa::path(
    post,
    operation_id = "admin_create_worker_key",
    path = "/workers/{id}/keys",
    tag = "admin: keys",
    params(("id" = String, Path, description = "The GPU worker")),
    request_body = CreateWorkerKeyJson,
    security(("admin_token" = [])),
    responses(
        (status = 201, description = "Created (its secret shown once)", body = CreatedKeyJson),
        super::Refusals,
    )
)]
pub(super) async fn create_worker_key(
    State(st): State<AppState>,
    Path(worker_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<impl IntoResponse> {
    let req: CreateWorkerKeyJson = read_json(&headers, body, MAX_BODY_BYTES).await?;
    let created = st
        .services
        .auth
        .create_worker_key(crate::actor::request(pb::CreateWorkerKeyRequest {
            worker_id,
            account_id: req.account_id,
            pool: req.pool,
            name: req.name,
            expires_at_ms: req.expires_at_ms,
        }))
        .await?
        .into_inner();
    Ok((StatusCode::CREATED, Json(CreatedKeyJson::from(created))))
}

#[utoipa::path(
    get,
    operation_id = "admin_list_worker_keys",
    path = "/workers/{id}/keys",
    tag = "admin: keys",
    params(("id" = String, Path, description = "The GPU worker")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The worker's keys", body = KeyList),
        super::Refusals,
    )
)]
pub(super) async fn list_worker_keys(
    State(st): State<AppState>,
    Path(worker_id): Path<String>,
) -> ApiResult<Json<KeyList>> {
    let list = st
        .services
        .auth
        .list_worker_keys(crate::actor::request(pb::ListWorkerKeysRequest {
            worker_id,
        }))
        .await?
        .into_inner();
    Ok(keys_json(list))
}

#[utoipa::path(
    post,
    operation_id = "admin_revoke_key",
    path = "/keys/{prefix}/revoke",
    tag = "admin: keys",
    params(("prefix" = String, Path, description = "The key's prefix")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The key, revoked", body = KeyJson),
        super::Refusals,
    )
)]
pub(super) async fn revoke_key(
    State(st): State<AppState>,
    Path(prefix): Path<String>,
) -> ApiResult<Json<KeyJson>> {
    let key = st
        .services
        .auth
        .revoke_key(crate::actor::request(pb::KeyRef { prefix }))
        .await?
        .into_inner();
    Ok(Json(key.into()))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SetKeyActiveJson {
    /// `false` pauses the key; `true` resumes it.
    active: bool,
}

#[utoipa::path(
    patch,
    operation_id = "admin_set_key_active",
    path = "/keys/{prefix}",
    tag = "admin: keys",
    params(("prefix" = String, Path, description = "The key's prefix")),
    request_body = SetKeyActiveJson,
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The key", body = KeyJson),
        super::Refusals,
    )
)]
pub(super) async fn set_key_active(
    State(st): State<AppState>,
    Path(prefix): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<KeyJson>> {
    let req: SetKeyActiveJson = read_json(&headers, body, MAX_BODY_BYTES).await?;
    let key = st
        .services
        .auth
        .set_key_active(crate::actor::request(pb::SetKeyActiveRequest {
            prefix,
            active: req.active,
        }))
        .await?
        .into_inner();
    Ok(Json(key.into()))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RotateSigningKeyJson {
    /// For a key that leaked: the tokens it signed stop verifying at once.
    #[serde(default)]
    revoke_previous: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct SigningKeyRotated {
    /// The key that signs session tokens from now on.
    kid: String,
    created_at_ms: i64,
    #[schema(required = true)]
    previous_kid: Option<String>,
    /// Whether tokens the previous key signed stopped verifying.
    previous_revoked: bool,
}

#[utoipa::path(
    post,
    operation_id = "admin_rotate_signing_key",
    path = "/signing-keys/rotate",
    tag = "admin: keys",
    request_body(content = Option<RotateSigningKeyJson>, description = "Optional"),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Rotated", body = SigningKeyRotated),
        super::Refusals,
    )
)]
pub(super) async fn rotate_signing_key(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<SigningKeyRotated>> {
    let req: RotateSigningKeyJson = read_optional_json(&headers, body, MAX_BODY_BYTES).await?;
    let info = st
        .services
        .auth
        .rotate_signing_key(crate::actor::request(pb::RotateSigningKeyRequest {
            revoke_previous: req.revoke_previous,
        }))
        .await?
        .into_inner();
    Ok(Json(SigningKeyRotated {
        kid: info.kid,
        created_at_ms: info.created_at_ms,
        previous_kid: (!info.previous_kid.is_empty()).then_some(info.previous_kid),
        previous_revoked: info.previous_revoked,
    }))
}
