//! Sessions: read one, or end it with an optional reason.

use super::{ApiResult, MAX_BODY_BYTES};
use crate::{json_body::read_optional_json, AppState};
use axum::{
    body::Body,
    extract::{rejection::QueryRejection, Path, Query, State},
    http::HeaderMap,
    Json,
};
use lobby_proto::session;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct SessionJson {
    id: String,
    account_id: String,
    agent_id: String,
    /// `starting`, `active`, `ended`, `failed` (or `unknown`).
    #[schema(value_type = String)]
    status: &'static str,
    client_user_ref: String,
    room_name: String,
    created_at_ms: i64,
    #[schema(required = true)]
    started_at_ms: Option<i64>,
    #[schema(required = true)]
    ended_at_ms: Option<i64>,
    #[schema(required = true)]
    ended_reason: Option<String>,
    #[schema(required = true)]
    failure_code: Option<String>,
    duration_seconds: u64,
    /// `connect`, `link`, `agent_run` or `record`.
    #[schema(value_type = String)]
    kind: &'static str,
    #[schema(required = true)]
    link_id: Option<String>,
    #[schema(required = true)]
    aspect_ratio: Option<String>,
    #[schema(required = true)]
    agent_identity: Option<String>,
    /// What the caller kept with the run (a JSON object).
    #[schema(value_type = Option<Object>, required = true)]
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
                session::SessionKind::Record => "record",
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

#[utoipa::path(
    get,
    operation_id = "admin_get_session",
    path = "/sessions/{id}",
    tag = "admin: sessions",
    params(("id" = String, Path, description = "The session")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The session", body = SessionJson),
        super::Refusals,
    )
)]
pub(super) async fn get_session(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<SessionJson>> {
    let s = st
        .services
        .session
        .get_session(crate::actor::request(session::GetSessionRequest {
            session_id: id,
            account_id: String::new(),
        }))
        .await?
        .into_inner();
    Ok(Json(s.into()))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ListSessionsQuery {
    /// At most this many (default 50).
    #[serde(default = "default_limit")]
    limit: u32,
}

fn default_limit() -> u32 {
    50
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct SessionList {
    sessions: Vec<SessionJson>,
}

/// `GET /admin/v1/accounts/{id}/sessions?limit=`: newest first.
#[utoipa::path(
    get,
    operation_id = "admin_list_sessions",
    path = "/accounts/{id}/sessions",
    tag = "admin: sessions",
    params(("id" = String, Path, description = "The account"), ListSessionsQuery),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The account's sessions, newest first", body = SessionList),
        super::Refusals,
    )
)]
pub(super) async fn list_sessions(
    State(st): State<AppState>,
    Path(account_id): Path<String>,
    query: Result<Query<ListSessionsQuery>, QueryRejection>,
) -> ApiResult<Json<SessionList>> {
    let Query(q) = query.map_err(|e| crate::error::ApiError::bad_request(e.body_text()))?;
    // 404 for an unknown account rather than an empty list.
    st.services
        .auth
        .get_account(crate::actor::request(
            lobby_proto::auth::GetAccountRequest {
                id: account_id.clone(),
            },
        ))
        .await?;
    let list = st
        .services
        .session
        .list_sessions(crate::actor::request(session::ListSessionsRequest {
            account_id,
            limit: q.limit,
        }))
        .await?
        .into_inner();
    let sessions = list.sessions.into_iter().map(SessionJson::from).collect();
    Ok(Json(SessionList { sessions }))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct EndSessionJson {
    /// A documented ended reason (`explicit_end` when left out), e.g.
    /// `max_duration`; recorded as the session's `ended_reason`.
    #[serde(default)]
    reason: String,
}

/// The body is optional: `{}` or nothing ends with the default reason.
#[utoipa::path(
    post,
    operation_id = "admin_end_session",
    path = "/sessions/{id}/end",
    tag = "admin: sessions",
    params(("id" = String, Path, description = "The session")),
    request_body(content = Option<EndSessionJson>, description = "Optional"),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The session, ended", body = SessionJson),
        super::Refusals,
    )
)]
pub(super) async fn end_session(
    State(st): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<SessionJson>> {
    let req: EndSessionJson = read_optional_json(&headers, body, MAX_BODY_BYTES).await?;
    let s = st
        .services
        .session
        .end_session(crate::actor::request(session::EndSessionRequest {
            session_id: id,
            reason: req.reason,
            ..Default::default()
        }))
        .await?
        .into_inner();
    Ok(Json(s.into()))
}
