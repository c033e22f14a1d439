//! Links: create, list, get and deactivate an account's shareable links,
//! and the link JSON `/v1/links` shares.

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

/// What both link APIs (admin and `/v1/links`) accept to create a link.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
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

/// A shareable link, as both link APIs show it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LinkJson {
    /// `lnk_…`: the credential a start presents.
    id: String,
    account_id: String,
    agent_id: String,
    active: bool,
    /// Milliseconds since the epoch; null: never.
    #[schema(required = true)]
    expires_at: Option<i64>,
    /// null: unlimited.
    #[schema(required = true)]
    use_limit: Option<u32>,
    uses: u32,
    created_at: i64,
}

impl From<pb::Link> for LinkJson {
    fn from(l: pb::Link) -> Self {
        Self {
            id: l.id,
            account_id: l.account_id,
            agent_id: l.agent_id,
            active: l.active,
            expires_at: (l.expires_at_ms > 0).then_some(l.expires_at_ms),
            use_limit: (l.use_limit > 0).then_some(l.use_limit),
            uses: l.uses,
            created_at: l.created_at_ms,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LinkList {
    pub links: Vec<LinkJson>,
}

#[utoipa::path(
    post,
    operation_id = "admin_create_link",
    path = "/accounts/{id}/links",
    tag = "admin: links",
    params(("id" = String, Path, description = "The account")),
    request_body = CreateLinkJson,
    security(("admin_token" = [])),
    responses(
        (status = 201, description = "Created", body = LinkJson),
        super::Refusals,
    )
)]
pub(super) async fn create_link(
    State(st): State<AppState>,
    Path(account_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<impl IntoResponse> {
    let req: CreateLinkJson = read_json(&headers, body, MAX_BODY_BYTES).await?;
    let link = st
        .services
        .auth
        .create_link(crate::actor::request(pb::CreateLinkRequest {
            account_id,
            agent_id: req.agent_id,
            expires_at_ms: req.expires_at,
            use_limit: req.use_limit,
        }))
        .await?
        .into_inner();
    Ok((StatusCode::CREATED, Json(LinkJson::from(link))))
}

#[utoipa::path(
    get,
    operation_id = "admin_list_links",
    path = "/accounts/{id}/links",
    tag = "admin: links",
    params(("id" = String, Path, description = "The account")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The account's links", body = LinkList),
        super::Refusals,
    )
)]
pub(super) async fn list_links(
    State(st): State<AppState>,
    Path(account_id): Path<String>,
) -> ApiResult<Json<LinkList>> {
    let list = st
        .services
        .auth
        .list_links(crate::actor::request(pb::ListLinksRequest { account_id }))
        .await?
        .into_inner();
    Ok(Json(LinkList {
        links: list.links.into_iter().map(LinkJson::from).collect(),
    }))
}

#[utoipa::path(
    get,
    operation_id = "admin_get_link",
    path = "/links/{id}",
    tag = "admin: links",
    params(("id" = String, Path, description = "The link")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The link", body = LinkJson),
        super::Refusals,
    )
)]
pub(super) async fn get_link(
    State(st): State<AppState>,
    Path(link_id): Path<String>,
) -> ApiResult<Json<LinkJson>> {
    let link = st
        .services
        .auth
        .get_link(crate::actor::request(pb::GetLinkRequest {
            link_id,
            account_id: String::new(),
        }))
        .await?
        .into_inner();
    Ok(Json(LinkJson::from(link)))
}

#[utoipa::path(
    post,
    operation_id = "admin_deactivate_link",
    path = "/links/{id}/deactivate",
    tag = "admin: links",
    params(("id" = String, Path, description = "The link")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The link, inactive", body = LinkJson),
        super::Refusals,
    )
)]
pub(super) async fn deactivate_link(
    State(st): State<AppState>,
    Path(link_id): Path<String>,
) -> ApiResult<Json<LinkJson>> {
    let link = st
        .services
        .auth
        .deactivate_link(crate::actor::request(pb::GetLinkRequest {
            link_id,
            account_id: String::new(),
        }))
        .await?
        .into_inner();
    Ok(Json(LinkJson::from(link)))
}
