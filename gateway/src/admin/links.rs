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
use serde::Deserialize;
use serde_json::{json, Value};

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
    Ok((StatusCode::CREATED, Json(link_json(link))))
}

pub(super) async fn list_links(
    State(st): State<AppState>,
    Path(account_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let list = st
        .services
        .auth
        .list_links(crate::actor::request(pb::ListLinksRequest { account_id }))
        .await?
        .into_inner();
    Ok(Json(
        json!({ "links": list.links.into_iter().map(link_json).collect::<Vec<_>>() }),
    ))
}

pub(super) async fn get_link(
    State(st): State<AppState>,
    Path(link_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let link = st
        .services
        .auth
        .get_link(crate::actor::request(pb::GetLinkRequest {
            link_id,
            account_id: String::new(),
        }))
        .await?
        .into_inner();
    Ok(Json(link_json(link)))
}

pub(super) async fn deactivate_link(
    State(st): State<AppState>,
    Path(link_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let link = st
        .services
        .auth
        .deactivate_link(crate::actor::request(pb::GetLinkRequest {
            link_id,
            account_id: String::new(),
        }))
        .await?
        .into_inner();
    Ok(Json(link_json(link)))
}
