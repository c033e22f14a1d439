//! Seed 002 (shareable links): `POST /v1/links/start-session` with a link id
//! as the only credential, and `/v1/links` to manage links with an account
//! API key that carries `links:write`.
//!
//! Bodies follow the seed: `{success: true, …}`, and on error
//! `{success: false, error: <code>, message[, retry_after_seconds]}`.

use crate::{
    admin::{link_json, CreateLinkJson},
    credentials::require_api_key,
    error::ApiError,
    json_body::read_json,
    AppState,
};
use axum::{
    body::Body,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use lobby_proto::{
    auth::{AuthorizeLinkRequest, CreateLinkRequest, GetLinkRequest, ListLinksRequest},
    session::{SessionKind, StartSessionRequest},
};
use serde::Deserialize;
use serde_json::{json, Value};

pub const START_PATH: &str = "/v1/links/start-session";
const MAX_BODY_BYTES: usize = 16 * 1024;
const SCOPE: &str = "links:write";

fn fail(e: ApiError) -> Response {
    super::Contract::Links.render(e)
}

fn respond(result: Result<(StatusCode, Value), ApiError>) -> Response {
    match result {
        Ok((status, mut body)) => {
            body["success"] = json!(true);
            (status, Json(body)).into_response()
        }
        Err(e) => fail(e),
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct StartBody {
    /// The link (`lnk_…`): the only credential.
    link_id: String,
    /// `4:3`, `3:4` or `1:1`. Any value is accepted: the seed falls back to
    /// 4:3 when it is missing or invalid, rather than refusing the start.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    aspect_ratio: Value,
}

/// Seed 002's answer to a start.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct StartedSession {
    success: bool,
    session_id: String,
    livekit_url: String,
    participant_token: String,
    agent_identity: String,
}

/// Seed 002's error body.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct LinkError {
    success: bool,
    /// The machine code, e.g. `link_expired`, `concurrency_limit`.
    error: String,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after_seconds: Option<u64>,
}

impl LinkError {
    pub fn of(e: &ApiError) -> Self {
        Self {
            success: false,
            error: e.code().to_owned(),
            message: e.message().to_owned(),
            retry_after_seconds: e.body.retry_after_seconds,
        }
    }
}

/// Starts an avatar session through a shareable link.
#[utoipa::path(
    post,
    path = START_PATH,
    tag = "seed 002: links",
    request_body = StartBody,
    responses(
        (status = 200, description = "Started: the room and the user's join token", body = StartedSession),
        (status = 400, description = "Malformed body", body = LinkError),
        (status = 403, description = "The link is inactive or used up (`link_inactive`, `link_used_up`), or its agent is unpublished", body = LinkError),
        (status = 404, description = "No such link (`link_not_found`) or agent (`agent_not_found`)", body = LinkError),
        (status = 410, description = "The link has expired (`link_expired`)", body = LinkError),
        (status = 422, description = "The agent's avatar image is missing or unusable (`avatar_…`)", body = LinkError),
        (status = 429, description = "A concurrency limit, the minutes, or a rate limit; `Retry-After` says when", body = LinkError),
        (status = 502, description = "The room provider or the GPU worker failed; the link's use is given back", body = LinkError),
        (status = 500, description = "An internal error (`internal_error`)", body = LinkError),
        (status = 503, description = "The store is unavailable", body = LinkError),
        (status = 504, description = "No answer within the request deadline (`timeout`)", body = LinkError),
    )
)]
pub async fn start_session(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    respond(start(&state, &headers, body).await)
}

async fn start(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(StatusCode, Value), ApiError> {
    let req: StartBody = read_json(headers, body, MAX_BODY_BYTES).await?;
    if req.link_id.trim().is_empty() {
        return Err(ApiError::bad_request("link_id is required"));
    }
    let principal = state
        .services
        .auth
        .authorize_link(crate::actor::request(AuthorizeLinkRequest {
            link_id: req.link_id.clone(),
        }))
        .await?
        .into_inner();
    crate::edge::limit_agent(state, &principal.agent_id)?;
    // Session takes the link's use atomically with the slot, and gives it
    // back itself if the start then fails.
    let started = state
        .services
        .session
        .start_session(crate::actor::request(StartSessionRequest {
            principal: Some(principal),
            kind: SessionKind::Link as i32,
            client_user_ref: String::new(),
            aspect_ratio: req.aspect_ratio.as_str().unwrap_or("").to_owned(),
        }))
        .await?
        .into_inner();
    let started = StartedSession {
        success: true,
        session_id: started.session_id,
        livekit_url: started.room_url,
        participant_token: started.token,
        agent_identity: started.agent_identity,
    };
    Ok((StatusCode::OK, json!(started)))
}

pub async fn create_link(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    respond(
        async {
            let principal = require_api_key(&state, &headers, SCOPE).await?;
            let req: CreateLinkJson = read_json(&headers, body, MAX_BODY_BYTES).await?;
            let link = state
                .services
                .auth
                .create_link(crate::actor::request(CreateLinkRequest {
                    account_id: principal.account_id,
                    agent_id: req.agent_id,
                    expires_at_ms: req.expires_at,
                    use_limit: req.use_limit,
                }))
                .await?
                .into_inner();
            Ok((StatusCode::CREATED, json!({ "link": link_json(link) })))
        }
        .await,
    )
}

pub async fn list_links(State(state): State<AppState>, headers: HeaderMap) -> Response {
    respond(
        async {
            let principal = require_api_key(&state, &headers, SCOPE).await?;
            let list = state
                .services
                .auth
                .list_links(crate::actor::request(ListLinksRequest {
                    account_id: principal.account_id,
                }))
                .await?
                .into_inner();
            let links: Vec<Value> = list.links.into_iter().map(link_json).collect();
            Ok((StatusCode::OK, json!({ "links": links })))
        }
        .await,
    )
}

pub async fn get_link(
    State(state): State<AppState>,
    Path(link_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    respond(owned_link(&state, &headers, link_id, false).await)
}

pub async fn deactivate_link(
    State(state): State<AppState>,
    Path(link_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    respond(owned_link(&state, &headers, link_id, true).await)
}

/// Reads (or deactivates) a link of the key's own account.
async fn owned_link(
    state: &AppState,
    headers: &HeaderMap,
    link_id: String,
    deactivate: bool,
) -> Result<(StatusCode, Value), ApiError> {
    let principal = require_api_key(state, headers, SCOPE).await?;
    let req = GetLinkRequest {
        link_id,
        account_id: principal.account_id,
    };
    let auth = &state.services.auth;
    let link = if deactivate {
        auth.deactivate_link(crate::actor::request(req)).await?
    } else {
        auth.get_link(crate::actor::request(req)).await?
    }
    .into_inner();
    Ok((StatusCode::OK, json!({ "link": link_json(link) })))
}
