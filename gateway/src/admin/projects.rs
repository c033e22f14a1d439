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
use serde_json::json;

#[derive(Debug, Serialize)]
struct ProjectJson {
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateProjectJson {
    #[serde(default)]
    id: String,
    #[serde(default)]
    name: String,
}

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

pub(super) async fn list_projects(
    State(st): State<AppState>,
    Path(account_id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let list = st
        .services
        .auth
        .list_projects(crate::actor::request(pb::ListProjectsRequest {
            account_id,
        }))
        .await?
        .into_inner();
    let projects: Vec<ProjectJson> = list.projects.into_iter().map(ProjectJson::from).collect();
    Ok(Json(json!({ "projects": projects })))
}

pub(super) async fn get_project(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let project = st
        .services
        .auth
        .get_project(crate::actor::request(pb::GetProjectRequest { id }))
        .await?
        .into_inner();
    Ok(Json(ProjectJson::from(project)))
}
