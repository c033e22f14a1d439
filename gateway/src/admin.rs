//! The admin API under `/admin/v1/`, guarded by the bootstrap admin token.
//! Handlers parse, call the owning service, render; validation is the
//! service's (auth owns the catalog rules).

use crate::{
    error::ApiError,
    json_body::{parse_json, read_json},
    AppState,
};
use axum::{
    body::Body,
    extract::{Path, Query, Request, State},
    http::{header, HeaderMap, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use lobby_proto::{auth as pb, common::Provider, rooms, session};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

const MAX_BODY_BYTES: usize = 64 * 1024;

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/accounts", post(create_account).get(list_accounts))
        .route("/accounts/{id}", get(get_account).patch(update_account))
        .route("/accounts/{id}/usage", get(account_usage))
        .route("/agents", post(create_agent).get(list_agents))
        .route("/agents/{id}", get(get_agent).patch(update_agent))
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
            StatusCode::UNAUTHORIZED,
            "unauthorized",
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
        .clone()
        .create_account(pb::CreateAccountRequest {
            id: req.id,
            name: req.name,
            max_concurrency: req.max_concurrency,
            minutes_quota: req.minutes_quota,
        })
        .await?
        .into_inner();
    Ok((StatusCode::CREATED, Json(AccountJson::from(account))))
}

async fn list_accounts(State(st): State<AppState>) -> ApiResult<impl IntoResponse> {
    let list = st
        .services
        .auth
        .clone()
        .list_accounts(pb::ListAccountsRequest {})
        .await?
        .into_inner();
    let accounts: Vec<AccountJson> = list.accounts.into_iter().map(AccountJson::from).collect();
    Ok(Json(serde_json::json!({ "accounts": accounts })))
}

async fn get_account(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<AccountJson>> {
    let account = st
        .services
        .auth
        .clone()
        .get_account(pb::GetAccountRequest { id })
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
        .clone()
        .update_account(pb::UpdateAccountRequest {
            id,
            name: req.name,
            max_concurrency: req.max_concurrency,
            minutes_quota: req.minutes_quota,
        })
        .await?
        .into_inner();
    Ok(Json(account.into()))
}

async fn account_usage(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    // 404 for an unknown account rather than a usage of zero.
    st.services
        .auth
        .clone()
        .get_account(pb::GetAccountRequest { id: id.clone() })
        .await?;
    let usage = st
        .services
        .rooms
        .clone()
        .get_account_usage(rooms::GetAccountUsageRequest { account_id: id })
        .await?
        .into_inner();
    Ok(Json(serde_json::json!({
        "account_id": usage.account_id,
        "active_sessions": usage.active_sessions,
    })))
}

// ---- agents ----------------------------------------------------------------

async fn create_agent(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<impl IntoResponse> {
    let req: CreateAgentJson = read_json(&headers, body, MAX_BODY_BYTES).await?;
    let agent = st
        .services
        .auth
        .clone()
        .create_agent(pb::CreateAgentRequest {
            id: req.id,
            account_id: req.account_id,
            name: req.name,
            status: req.status.map_or(pb::AgentStatus::Unspecified, Into::into) as i32,
            allowed_hostnames: req.allowed_hostnames,
            max_concurrency: req.max_concurrency,
            max_session_seconds: req.max_session_seconds,
            avatar_image_url: req.avatar_image_url,
            provider: req.provider.map_or(Provider::Unspecified, Into::into) as i32,
        })
        .await?
        .into_inner();
    Ok((StatusCode::CREATED, Json(AgentJson::from(agent))))
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
        .clone()
        .list_agents(pb::ListAgentsRequest {
            account_id: q.account_id,
        })
        .await?
        .into_inner();
    let agents: Vec<AgentJson> = list.agents.into_iter().map(AgentJson::from).collect();
    Ok(Json(serde_json::json!({ "agents": agents })))
}

async fn get_agent(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<AgentJson>> {
    let agent = st
        .services
        .auth
        .clone()
        .get_agent(pb::GetAgentRequest { id })
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
        .clone()
        .update_agent(pb::UpdateAgentRequest {
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
        })
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
        .clone()
        .get_session(session::GetSessionRequest { session_id: id })
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
    body: Body,
) -> ApiResult<Json<SessionJson>> {
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError::bad_request(format!(
                "request body is larger than {MAX_BODY_BYTES} bytes"
            ))
        })?;
    let req: EndSessionJson = if body.iter().all(u8::is_ascii_whitespace) {
        EndSessionJson::default()
    } else {
        parse_json(&body)?
    };
    let s = st
        .services
        .session
        .clone()
        .end_session(session::EndSessionRequest {
            session_id: id,
            reason: req.reason,
        })
        .await?
        .into_inner();
    Ok(Json(s.into()))
}
