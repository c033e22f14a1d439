//! Agents: create (with their first agent key), list, get, update, and the
//! wire forms of their status and provider.

use super::{keys::CreatedKeyJson, ApiResult, MAX_BODY_BYTES};
use crate::{json_body::read_json, AppState};
use axum::{
    body::Body,
    extract::{rejection::QueryRejection, Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
    Json,
};
use lobby_proto::{auth as pb, common::Provider};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub(super) enum StatusJson {
    Published,
    Unpublished,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub(super) enum ProviderJson {
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

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct AgentJson {
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
    #[serde(skip_serializing_if = "Option::is_none")]
    project_id: Option<String>,
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
            project_id: Some(a.project_id).filter(|p| !p.is_empty()),
            created_at_ms: a.created_at_ms,
            updated_at_ms: a.updated_at_ms,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateAgentJson {
    /// Left out, one is made (`agt_…`).
    #[serde(default)]
    id: String,
    account_id: String,
    #[serde(default)]
    name: String,
    status: Option<StatusJson>,
    /// Origins a browser may connect from (seed 000), e.g.
    /// `app.example.com`, `*.example.com`.
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
    #[serde(default)]
    project_id: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UpdateAgentJson {
    name: Option<String>,
    status: Option<StatusJson>,
    allowed_hostnames: Option<Vec<String>>,
    max_concurrency: Option<u32>,
    max_session_seconds: Option<u32>,
    avatar_image_url: Option<String>,
    provider: Option<ProviderJson>,
    requires_worker: Option<bool>,
    solo_timeout_seconds: Option<u32>,
    /// A project of the agent's account; "" takes it out of its project.
    project_id: Option<String>,
}

/// A new agent and its first agent key (the key's secret is shown once).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct CreatedAgentJson {
    #[serde(flatten)]
    agent: AgentJson,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent_key: Option<CreatedKeyJson>,
}

#[utoipa::path(
    post,
    operation_id = "admin_create_agent",
    path = "/agents",
    tag = "admin: agents",
    request_body = CreateAgentJson,
    security(("admin_token" = [])),
    responses(
        (status = 201, description = "Created, with its first agent key", body = CreatedAgentJson),
        super::Refusals,
    )
)]
pub(super) async fn create_agent(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<impl IntoResponse> {
    let req: CreateAgentJson = read_json(&headers, body, MAX_BODY_BYTES).await?;
    let created = st
        .services
        .auth
        .create_agent(crate::actor::request(pb::CreateAgentRequest {
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
            project_id: req.project_id,
        }))
        .await?
        .into_inner();
    let body = CreatedAgentJson {
        agent: created.agent.unwrap_or_default().into(),
        agent_key: created.agent_key.map(CreatedKeyJson::from),
    };
    Ok((StatusCode::CREATED, Json(body)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListAgentsQuery {
    /// Only this account's agents.
    #[serde(default)]
    account_id: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct AgentList {
    agents: Vec<AgentJson>,
}

#[utoipa::path(
    get,
    operation_id = "admin_list_agents",
    path = "/agents",
    tag = "admin: agents",
    params(ListAgentsQuery),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The agents", body = AgentList),
        super::Refusals,
    )
)]
pub(super) async fn list_agents(
    State(st): State<AppState>,
    query: Result<Query<ListAgentsQuery>, QueryRejection>,
) -> ApiResult<Json<AgentList>> {
    let Query(q) = query.map_err(|e| crate::error::ApiError::bad_request(e.body_text()))?;
    let list = st
        .services
        .auth
        .list_agents(crate::actor::request(pb::ListAgentsRequest {
            account_id: q.account_id,
        }))
        .await?
        .into_inner();
    let agents = list.agents.into_iter().map(AgentJson::from).collect();
    Ok(Json(AgentList { agents }))
}

#[utoipa::path(
    get,
    operation_id = "admin_get_agent",
    path = "/agents/{id}",
    tag = "admin: agents",
    params(("id" = String, Path, description = "The agent")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The agent", body = AgentJson),
        super::Refusals,
    )
)]
pub(super) async fn get_agent(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<AgentJson>> {
    let agent = st
        .services
        .auth
        .get_agent(crate::actor::request(pb::GetAgentRequest { id }))
        .await?
        .into_inner();
    Ok(Json(agent.into()))
}

#[utoipa::path(
    patch,
    operation_id = "admin_update_agent",
    path = "/agents/{id}",
    tag = "admin: agents",
    params(("id" = String, Path, description = "The agent")),
    request_body = UpdateAgentJson,
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The agent, updated", body = AgentJson),
        super::Refusals,
    )
)]
pub(super) async fn update_agent(
    State(st): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<AgentJson>> {
    let req: UpdateAgentJson = read_json(&headers, body, MAX_BODY_BYTES).await?;
    let agent = st
        .services
        .auth
        .update_agent(crate::actor::request(pb::UpdateAgentRequest {
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
            project_id: req.project_id,
        }))
        .await?
        .into_inner();
    Ok(Json(agent.into()))
}
