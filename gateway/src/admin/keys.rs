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
use serde_json::{json, Value};

#[derive(Debug, Serialize)]
pub(super) struct KeyJson {
    prefix: String,
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
    expires_at_ms: Option<i64>,
    created_at_ms: i64,
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
pub(super) fn created_key_json(created: pb::CreatedKey) -> Value {
    let mut body =
        serde_json::to_value(KeyJson::from(created.info.unwrap_or_default())).unwrap_or_default();
    body["key"] = Value::String(created.key);
    body
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateApiKeyJson {
    #[serde(default)]
    name: String,
    scopes: Vec<String>,
    #[serde(default)]
    expires_at_ms: i64,
}

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
    Ok((StatusCode::CREATED, Json(created_key_json(created))))
}

fn keys_json(list: pb::ListKeysResponse) -> Json<Value> {
    let keys: Vec<KeyJson> = list.keys.into_iter().map(KeyJson::from).collect();
    Json(json!({ "keys": keys }))
}

pub(super) async fn list_api_keys(
    State(st): State<AppState>,
    Path(account_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let list = st
        .services
        .auth
        .list_api_keys(crate::actor::request(pb::ListApiKeysRequest { account_id }))
        .await?
        .into_inner();
    Ok(keys_json(list))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateAgentKeyJson {
    #[serde(default)]
    previous_key_grace_seconds: u32,
    #[serde(default)]
    expires_at_ms: i64,
}

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
    Ok((StatusCode::CREATED, Json(created_key_json(created))))
}

pub(super) async fn list_agent_keys(
    State(st): State<AppState>,
    Path(agent_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let list = st
        .services
        .auth
        .list_agent_keys(crate::actor::request(pb::ListAgentKeysRequest { agent_id }))
        .await?
        .into_inner();
    Ok(keys_json(list))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateWorkerKeyJson {
    #[serde(default)]
    account_id: String,
    #[serde(default)]
    pool: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    expires_at_ms: i64,
}

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
    Ok((StatusCode::CREATED, Json(created_key_json(created))))
}

pub(super) async fn list_worker_keys(
    State(st): State<AppState>,
    Path(worker_id): Path<String>,
) -> ApiResult<Json<Value>> {
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetKeyActiveJson {
    active: bool,
}

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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateSigningKeyJson {
    /// For a key that leaked: the tokens it signed stop verifying at once.
    #[serde(default)]
    revoke_previous: bool,
}

pub(super) async fn rotate_signing_key(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Value>> {
    let req: RotateSigningKeyJson = read_optional_json(&headers, body, MAX_BODY_BYTES).await?;
    let info = st
        .services
        .auth
        .rotate_signing_key(crate::actor::request(pb::RotateSigningKeyRequest {
            revoke_previous: req.revoke_previous,
        }))
        .await?
        .into_inner();
    Ok(Json(json!({
        "kid": info.kid,
        "created_at_ms": info.created_at_ms,
        "previous_kid": (!info.previous_kid.is_empty()).then_some(info.previous_kid),
        "previous_revoked": info.previous_revoked,
    })))
}
