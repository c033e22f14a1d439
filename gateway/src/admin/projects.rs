//! Projects: create and list an account's, get one. Agents join one through
//! their own `project_id` (create or update).

use super::{ApiResult, MAX_BODY_BYTES};
use crate::{json_body::read_json, AppState};
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
pub(super) struct ProjectJson {
    id: String,
    account_id: String,
    name: String,
    created_at_ms: i64,
    updated_at_ms: i64,
}

impl From<pb::Project> for ProjectJson {
    fn from(p: pb::Project) -> Self {
        Self {
            id: p.id,
            account_id: p.account_id,
            name: p.name,
            created_at_ms: p.created_at_ms,
            updated_at_ms: p.updated_at_ms,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateProjectJson {
    /// Left out, one is made (`proj_…`).
    #[serde(default)]
    id: String,
    #[serde(default)]
    name: String,
}

#[utoipa::path(
    post,
    operation_id = "admin_create_project",
    path = "/accounts/{id}/projects",
    tag = "admin: projects",
    params(("id" = String, Path, description = "The account")),
    request_body = CreateProjectJson,
    security(("admin_token" = [])),
    responses(
        (status = 201, description = "Created", body = ProjectJson),
        super::Refusals,
    )
)]
pub(super) async fn create_project(
    State(st): State<AppState>,
    Path(account_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<impl IntoResponse> {
    let req: CreateProjectJson = read_json(&headers, body, MAX_BODY_BYTES).await?;
    let project = st
        .services
        .auth
        .create_project(crate::actor::request(pb::CreateProjectRequest {
            account_id,
            name: req.name,
            id: req.id,
        }))
        .await?
        .into_inner();
    Ok((StatusCode::CREATED, Json(ProjectJson::from(project))))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct ProjectList {
    projects: Vec<ProjectJson>,
}

#[utoipa::path(
    get,
    operation_id = "admin_list_projects",
    path = "/accounts/{id}/projects",
    tag = "admin: projects",
    params(("id" = String, Path, description = "The account")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The account's projects", body = ProjectList),
        super::Refusals,
    )
)]
pub(super) async fn list_projects(
    State(st): State<AppState>,
    Path(account_id): Path<String>,
) -> ApiResult<Json<ProjectList>> {
    let list = st
        .services
        .auth
        .list_projects(crate::actor::request(pb::ListProjectsRequest {
            account_id,
        }))
        .await?
        .into_inner();
    let projects = list.projects.into_iter().map(ProjectJson::from).collect();
    Ok(Json(ProjectList { projects }))
}

#[utoipa::path(
    get,
    operation_id = "admin_get_project",
    path = "/projects/{id}",
    tag = "admin: projects",
    params(("id" = String, Path, description = "The project")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The project", body = ProjectJson),
        super::Refusals,
    )
)]
pub(super) async fn get_project(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<ProjectJson>> {
    let project = st
        .services
        .auth
        .get_project(crate::actor::request(pb::GetProjectRequest { id }))
        .await?
        .into_inner();
    Ok(Json(ProjectJson::from(project)))
}
