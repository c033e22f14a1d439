//! The admin API under `/admin/v1/`, guarded by the bootstrap admin token.
//! Handlers parse, call the owning service, render; validation is the
//! service's (auth owns the catalog and credential rules).

use crate::{
    error::ApiError,
    json_body::{read_json, read_optional_json},
    AppState,
};
use axum::{
    body::Body,
    extract::{Path, Query, Request, State},
    http::{header, HeaderMap, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::{get, patch, post},
    Json, Router,
};
use lobby_proto::{auth as pb, common::Provider, session};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

const MAX_BODY_BYTES: usize = 64 * 1024;

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/accounts", post(create_account).get(list_accounts))
        .route("/accounts/{id}", get(get_account).patch(update_account))
        .route("/accounts/{id}/usage", get(account_usage))
        .route(
            "/accounts/{id}/api-keys",
            post(create_api_key).get(list_api_keys),
        )
        .route("/accounts/{id}/links", post(create_link).get(list_links))
        .route("/agents", post(create_agent).get(list_agents))
        .route("/agents/{id}", get(get_agent).patch(update_agent))
        .route(
            "/agents/{id}/keys",
            post(rotate_agent_key).get(list_agent_keys),
        )
        .route("/keys/{prefix}", patch(set_key_active))
        .route("/keys/{prefix}/revoke", post(revoke_key))
        .route("/signing-keys/rotate", post(rotate_signing_key))
        .route("/links/{id}", get(get_link))
        .route("/links/{id}/deactivate", post(deactivate_link))
        .route("/sessions/{id}", get(get_session))
        .route("/sessions/{id}/end", post(end_session))
        .layer(axum::middleware::from_fn_with_state(
            state,
            require_admin_token,
        ))
}

/// Constant-time comparison so the token cannot be guessed byte by byte.
async fn require_admin_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let ok = match (&state.admin_token, presented) {
        (Some(expected), Some(given)) => bool::from(expected.as_bytes().ct_eq(given.as_bytes())),
        _ => false,
    };
    if ok {
        next.run(req).await
    } else {
        ApiError::new(
            lobby_kit::ErrorCode::Unauthorized,
            "a valid admin token is required as Authorization: Bearer <token>",
        )
        .into_response()
    }
}

// ---- wire types -----------------------------------------------------------

#[derive(Debug, Serialize)]
struct AccountJson {
    id: String,
    name: String,
    max_concurrency: u32,
    minutes_quota: u64,
    created_at_ms: i64,
    updated_at_ms: i64,
}

impl From<pb::Account> for AccountJson {
    fn from(a: pb::Account) -> Self {
        Self {
            id: a.id,
            name: a.name,
            max_concurrency: a.max_concurrency,
            minutes_quota: a.minutes_quota,
            created_at_ms: a.created_at_ms,
            updated_at_ms: a.updated_at_ms,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateAccountJson {
    #[serde(default)]
    id: String,
    #[serde(default)]
    name: String,
    max_concurrency: Option<u32>,
    minutes_quota: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateAccountJson {
    name: Option<String>,
    max_concurrency: Option<u32>,
    minutes_quota: Option<u64>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum StatusJson {
    Published,
    Unpublished,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ProviderJson {
    Livekit,
    Daily,
}

impl From<ProviderJson> for Provider {
    fn from(p: ProviderJson) -> Self {
        match p {
            ProviderJson::Livekit => Provider::Livekit,
            ProviderJson::Daily => Provider::Daily,
        }
    }
}

impl From<StatusJson> for pb::AgentStatus {
    fn from(s: StatusJson) -> Self {
        match s {
            StatusJson::Published => pb::AgentStatus::Published,
            StatusJson::Unpublished => pb::AgentStatus::Unpublished,
        }
    }
}

#[derive(Debug, Serialize)]
struct AgentJson {
    id: String,
    account_id: String,
    name: String,
    status: StatusJson,
    allowed_hostnames: Vec<String>,
    max_concurrency: u32,
    max_session_seconds: u32,
    avatar_image_url: String,
    provider: ProviderJson,
    requires_worker: bool,
    solo_timeout_seconds: u32,
    created_at_ms: i64,
    updated_at_ms: i64,
}

impl From<pb::Agent> for AgentJson {
    fn from(a: pb::Agent) -> Self {
        Self {
            status: if a.status() == pb::AgentStatus::Published {
                StatusJson::Published
            } else {
                StatusJson::Unpublished
            },
            provider: if a.provider() == Provider::Daily {
                ProviderJson::Daily
            } else {
                ProviderJson::Livekit
            },
            id: a.id,
            account_id: a.account_id,
            name: a.name,
            allowed_hostnames: a.allowed_hostnames,
            max_concurrency: a.max_concurrency,
            max_session_seconds: a.max_session_seconds,
            avatar_image_url: a.avatar_image_url,
            requires_worker: a.requires_worker,
            solo_timeout_seconds: a.solo_timeout_seconds,
            created_at_ms: a.created_at_ms,
            updated_at_ms: a.updated_at_ms,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateAgentJson {
    #[serde(default)]
    id: String,
    account_id: String,
    #[serde(default)]
    name: String,
    status: Option<StatusJson>,
    #[serde(default)]
    allowed_hostnames: Vec<String>,
    max_concurrency: Option<u32>,
    max_session_seconds: Option<u32>,
    #[serde(default)]
    avatar_image_url: String,
    provider: Option<ProviderJson>,
    #[serde(default)]
    requires_worker: bool,
    #[serde(default)]
    solo_timeout_seconds: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateAgentJson {
    name: Option<String>,
    status: Option<StatusJson>,
    allowed_hostnames: Option<Vec<String>>,
    max_concurrency: Option<u32>,
    max_session_seconds: Option<u32>,
    avatar_image_url: Option<String>,
    provider: Option<ProviderJson>,
    requires_worker: Option<bool>,
    solo_timeout_seconds: Option<u32>,
}

#[derive(Debug, Serialize)]
struct SessionJson {
    id: String,
    account_id: String,
    agent_id: String,
    status: &'static str,
    client_user_ref: String,
    room_name: String,
    created_at_ms: i64,
    started_at_ms: Option<i64>,
    ended_at_ms: Option<i64>,
    ended_reason: Option<String>,
    failure_code: Option<String>,
    duration_seconds: u64,
    kind: &'static str,
    link_id: Option<String>,
    aspect_ratio: Option<String>,
    agent_identity: Option<String>,
    meta: Option<Value>,
    reserved_seconds: u64,
}

impl From<session::Session> for SessionJson {
    fn from(s: session::Session) -> Self {
        let positive = |v: i64| (v > 0).then_some(v);
        let text = |v: String| (!v.is_empty()).then_some(v);
        Self {
            status: match s.status() {
                session::SessionStatus::Starting => "starting",
                session::SessionStatus::Active => "active",
                session::SessionStatus::Ended => "ended",
                session::SessionStatus::Failed => "failed",
                session::SessionStatus::Unspecified => "unknown",
            },
            kind: match s.kind() {
                session::SessionKind::Link => "link",
                session::SessionKind::AgentRun => "agent_run",
                _ => "connect",
            },
            link_id: text(s.link_id),
            aspect_ratio: text(s.aspect_ratio),
            agent_identity: text(s.agent_identity),
            meta: serde_json::from_str(&s.meta_json).ok(),
            reserved_seconds: s.reserved_seconds,
            started_at_ms: positive(s.started_at_ms),
            ended_at_ms: positive(s.ended_at_ms),
            ended_reason: text(s.ended_reason),
            failure_code: text(s.failure_code),
            id: s.id,
            account_id: s.account_id,
            agent_id: s.agent_id,
            client_user_ref: s.client_user_ref,
            room_name: s.room_name,
            created_at_ms: s.created_at_ms,
            duration_seconds: s.duration_seconds,
        }
    }
}

type ApiResult<T> = Result<T, ApiError>;

// ---- accounts --------------------------------------------------------------

async fn create_account(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<impl IntoResponse> {
    let req: CreateAccountJson = read_json(&headers, body, MAX_BODY_BYTES).await?;
    let account = st
        .services
        .auth
        .create_account(tonic::Request::new(pb::CreateAccountRequest {
            id: req.id,
            name: req.name,
            max_concurrency: req.max_concurrency,
            minutes_quota: req.minutes_quota,
        }))
        .await?
        .into_inner();
    Ok((StatusCode::CREATED, Json(AccountJson::from(account))))
}

async fn list_accounts(State(st): State<AppState>) -> ApiResult<impl IntoResponse> {
    let list = st
        .services
        .auth
        .list_accounts(tonic::Request::new(pb::ListAccountsRequest {}))
        .await?
        .into_inner();
    let accounts: Vec<AccountJson> = list.accounts.into_iter().map(AccountJson::from).collect();
    Ok(Json(json!({ "accounts": accounts })))
}

async fn get_account(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<AccountJson>> {
    let account = st
        .services
        .auth
        .get_account(tonic::Request::new(pb::GetAccountRequest { id }))
        .await?
        .into_inner();
    Ok(Json(account.into()))
}

async fn update_account(
    State(st): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<AccountJson>> {
    let req: UpdateAccountJson = read_json(&headers, body, MAX_BODY_BYTES).await?;
    let account = st
        .services
        .auth
        .update_account(tonic::Request::new(pb::UpdateAccountRequest {
            id,
            name: req.name,
            max_concurrency: req.max_concurrency,
            minutes_quota: req.minutes_quota,
        }))
        .await?
        .into_inner();
    Ok(Json(account.into()))
}

/// Sessions holding a slot, and minutes used, reserved and left.
async fn account_usage(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    // 404 for an unknown account rather than a usage of zero.
    let account = st
        .services
        .auth
        .get_account(tonic::Request::new(pb::GetAccountRequest {
            id: id.clone(),
        }))
        .await?
        .into_inner();
    let usage = st
        .services
        .session
        .get_account_usage(tonic::Request::new(session::GetAccountUsageRequest {
            account_id: id,
        }))
        .await?
        .into_inner();
    let quota_seconds = account.minutes_quota.saturating_mul(60);
    let remaining = quota_seconds.saturating_sub(usage.used_seconds + usage.reserved_seconds);
    Ok(Json(json!({
        "account_id": usage.account_id,
        "active_sessions": usage.active_sessions,
        "minutes_quota": account.minutes_quota,
        "used_seconds": usage.used_seconds,
        "reserved_seconds": usage.reserved_seconds,
        "remaining_seconds": remaining,
    })))
}

// ---- keys ------------------------------------------------------------------

#[derive(Debug, Serialize)]
struct KeyJson {
    prefix: String,
    kind: String,
    account_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    agent_id: String,
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
            name: k.name,
            scopes: k.scopes,
            active: k.active,
            created_at_ms: k.created_at_ms,
        }
    }
}

/// A new key with its secret: the only response that ever carries it.
fn created_key_json(created: pb::CreatedKey) -> Value {
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

async fn create_api_key(
    State(st): State<AppState>,
    Path(account_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<impl IntoResponse> {
    let req: CreateApiKeyJson = read_json(&headers, body, MAX_BODY_BYTES).await?;
    let created = st
        .services
        .auth
        .create_api_key(tonic::Request::new(pb::CreateApiKeyRequest {
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

async fn list_api_keys(
    State(st): State<AppState>,
    Path(account_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let list = st
        .services
        .auth
        .list_api_keys(tonic::Request::new(pb::ListApiKeysRequest { account_id }))
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

async fn rotate_agent_key(
    State(st): State<AppState>,
    Path(agent_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<impl IntoResponse> {
    let req: RotateAgentKeyJson = read_optional_json(&headers, body, MAX_BODY_BYTES).await?;
    let created = st
        .services
        .auth
        .rotate_agent_key(tonic::Request::new(pb::RotateAgentKeyRequest {
            agent_id,
            previous_key_grace_seconds: req.previous_key_grace_seconds,
            expires_at_ms: req.expires_at_ms,
        }))
        .await?
        .into_inner();
    Ok((StatusCode::CREATED, Json(created_key_json(created))))
}

async fn list_agent_keys(
    State(st): State<AppState>,
    Path(agent_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let list = st
        .services
        .auth
        .list_agent_keys(tonic::Request::new(pb::ListAgentKeysRequest { agent_id }))
        .await?
        .into_inner();
    Ok(keys_json(list))
}

async fn revoke_key(
    State(st): State<AppState>,
    Path(prefix): Path<String>,
) -> ApiResult<Json<KeyJson>> {
    let key = st
        .services
        .auth
        .revoke_key(tonic::Request::new(pb::KeyRef { prefix }))
        .await?
        .into_inner();
    Ok(Json(key.into()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetKeyActiveJson {
    active: bool,
}

async fn set_key_active(
    State(st): State<AppState>,
    Path(prefix): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<KeyJson>> {
    let req: SetKeyActiveJson = read_json(&headers, body, MAX_BODY_BYTES).await?;
    let key = st
        .services
        .auth
        .set_key_active(tonic::Request::new(pb::SetKeyActiveRequest {
            prefix,
            active: req.active,
        }))
        .await?
        .into_inner();
    Ok(Json(key.into()))
}

async fn rotate_signing_key(State(st): State<AppState>) -> ApiResult<Json<Value>> {
    let info = st
        .services
        .auth
        .rotate_signing_key(tonic::Request::new(pb::RotateSigningKeyRequest {}))
        .await?
        .into_inner();
    Ok(Json(
        json!({ "kid": info.kid, "created_at_ms": info.created_at_ms }),
    ))
}

// ---- links -----------------------------------------------------------------

/// What both link APIs (admin and `/v1/links`) accept to create a link.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateLinkJson {
    pub agent_id: String,
    /// Milliseconds since the epoch; absent or 0 means never.
    #[serde(default)]
    pub expires_at: i64,
    /// 0 or absent means unlimited.
    #[serde(default)]
    pub use_limit: u32,
}

pub fn link_json(l: pb::Link) -> Value {
    json!({
        "id": l.id,
        "account_id": l.account_id,
        "agent_id": l.agent_id,
        "active": l.active,
        "expires_at": (l.expires_at_ms > 0).then_some(l.expires_at_ms),
        "use_limit": (l.use_limit > 0).then_some(l.use_limit),
        "uses": l.uses,
        "created_at": l.created_at_ms,
    })
}

async fn create_link(
    State(st): State<AppState>,
    Path(account_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<impl IntoResponse> {
    let req: CreateLinkJson = read_json(&headers, body, MAX_BODY_BYTES).await?;
    let link = st
        .services
        .auth
        .create_link(tonic::Request::new(pb::CreateLinkRequest {
            account_id,
            agent_id: req.agent_id,
            expires_at_ms: req.expires_at,
            use_limit: req.use_limit,
        }))
        .await?
        .into_inner();
    Ok((StatusCode::CREATED, Json(link_json(link))))
}

async fn list_links(
    State(st): State<AppState>,
    Path(account_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let list = st
        .services
        .auth
        .list_links(tonic::Request::new(pb::ListLinksRequest { account_id }))
        .await?
        .into_inner();
    Ok(Json(
        json!({ "links": list.links.into_iter().map(link_json).collect::<Vec<_>>() }),
    ))
}

async fn get_link(
    State(st): State<AppState>,
    Path(link_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let link = st
        .services
        .auth
        .get_link(tonic::Request::new(pb::GetLinkRequest {
            link_id,
            account_id: String::new(),
        }))
        .await?
        .into_inner();
    Ok(Json(link_json(link)))
}

async fn deactivate_link(
    State(st): State<AppState>,
    Path(link_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let link = st
        .services
        .auth
        .deactivate_link(tonic::Request::new(pb::GetLinkRequest {
            link_id,
            account_id: String::new(),
        }))
        .await?
        .into_inner();
    Ok(Json(link_json(link)))
}

// ---- agents ----------------------------------------------------------------

async fn create_agent(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<impl IntoResponse> {
    let req: CreateAgentJson = read_json(&headers, body, MAX_BODY_BYTES).await?;
    let created = st
        .services
        .auth
        .create_agent(tonic::Request::new(pb::CreateAgentRequest {
            id: req.id,
            account_id: req.account_id,
            name: req.name,
            status: req.status.map_or(pb::AgentStatus::Unspecified, Into::into) as i32,
            allowed_hostnames: req.allowed_hostnames,
            max_concurrency: req.max_concurrency,
            max_session_seconds: req.max_session_seconds,
            avatar_image_url: req.avatar_image_url,
            provider: req.provider.map_or(Provider::Unspecified, Into::into) as i32,
            requires_worker: req.requires_worker,
            solo_timeout_seconds: req.solo_timeout_seconds,
        }))
        .await?
        .into_inner();
    let mut body = serde_json::to_value(AgentJson::from(created.agent.unwrap_or_default()))
        .unwrap_or_default();
    if let Some(key) = created.agent_key {
        body["agent_key"] = created_key_json(key);
    }
    Ok((StatusCode::CREATED, Json(body)))
}

#[derive(Debug, Deserialize)]
struct ListAgentsQuery {
    #[serde(default)]
    account_id: String,
}

async fn list_agents(
    State(st): State<AppState>,
    Query(q): Query<ListAgentsQuery>,
) -> ApiResult<impl IntoResponse> {
    let list = st
        .services
        .auth
        .list_agents(tonic::Request::new(pb::ListAgentsRequest {
            account_id: q.account_id,
        }))
        .await?
        .into_inner();
    let agents: Vec<AgentJson> = list.agents.into_iter().map(AgentJson::from).collect();
    Ok(Json(json!({ "agents": agents })))
}

async fn get_agent(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<AgentJson>> {
    let agent = st
        .services
        .auth
        .get_agent(tonic::Request::new(pb::GetAgentRequest { id }))
        .await?
        .into_inner();
    Ok(Json(agent.into()))
}

async fn update_agent(
    State(st): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<AgentJson>> {
    let req: UpdateAgentJson = read_json(&headers, body, MAX_BODY_BYTES).await?;
    let agent = st
        .services
        .auth
        .update_agent(tonic::Request::new(pb::UpdateAgentRequest {
            id,
            name: req.name,
            status: req.status.map_or(pb::AgentStatus::Unspecified, Into::into) as i32,
            allowed_hostnames: req
                .allowed_hostnames
                .map(|entries| pb::HostnameList { entries }),
            max_concurrency: req.max_concurrency,
            max_session_seconds: req.max_session_seconds,
            avatar_image_url: req.avatar_image_url,
            provider: req.provider.map_or(Provider::Unspecified, Into::into) as i32,
            requires_worker: req.requires_worker,
            solo_timeout_seconds: req.solo_timeout_seconds,
        }))
        .await?
        .into_inner();
    Ok(Json(agent.into()))
}

// ---- sessions --------------------------------------------------------------

async fn get_session(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<SessionJson>> {
    let s = st
        .services
        .session
        .get_session(tonic::Request::new(session::GetSessionRequest {
            session_id: id,
        }))
        .await?
        .into_inner();
    Ok(Json(s.into()))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EndSessionJson {
    #[serde(default)]
    reason: String,
}

/// The body is optional: `{}` or nothing ends with the default reason.
async fn end_session(
    State(st): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<SessionJson>> {
    let req: EndSessionJson = read_optional_json(&headers, body, MAX_BODY_BYTES).await?;
    let s = st
        .services
        .session
        .end_session(tonic::Request::new(session::EndSessionRequest {
            session_id: id,
            reason: req.reason,
            ..Default::default()
        }))
        .await?
        .into_inner();
    Ok(Json(s.into()))
}
