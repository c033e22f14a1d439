//! Seed 002 (shareable links): `POST /v1/links/start-session` with a link id
//! as the only credential, and `/v1/links` to manage links with an account
//! API key that carries `links:write`.
//!
//! Bodies follow the seed: `{success: true, …}`, and on error
//! `{success: false, error: <code>, message[, retry_after_seconds]}`.

use crate::{
    admin::{CreateLinkJson, LinkJson, LinkList},
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
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const START_PATH: &str = "/v1/links/start-session";
pub const LINKS_PATH: &str = "/v1/links";
pub const LINK_PATH: &str = "/v1/links/{id}";
pub const DEACTIVATE_PATH: &str = "/v1/links/{id}/deactivate";
const MAX_BODY_BYTES: usize = 16 * 1024;
const SCOPE: &str = "links:write";

fn fail(e: ApiError) -> Response {
    super::Contract::Links.render(e)
}

/// `{success: true, …answer}`, or the error in the seed's envelope.
fn respond<T: Serialize>(result: Result<(StatusCode, T), ApiError>) -> Response {
    match result {
        Ok((status, answer)) => (status, Json(Succeeded::from(answer))).into_response(),
        Err(e) => fail(e),
    }
}

/// Seed 002's envelope of a success: `success: true` beside the answer's
/// own fields.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Succeeded<T> {
    success: bool,
    #[serde(flatten)]
    answer: T,
}

impl<T> From<T> for Succeeded<T> {
    fn from(answer: T) -> Self {
        Self {
            success: true,
            answer,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OneLink {
    link: LinkJson,
}

/// What the link management routes can answer instead.
#[derive(utoipa::IntoResponses)]
pub enum ManagementRefusals {
    #[response(status = 400, description = "Malformed body")]
    BadRequest(LinkError),
    #[response(status = 401, description = "A missing or invalid API key")]
    Unauthorized(LinkError),
    #[response(
        status = 403,
        description = "The key is revoked or paused, or lacks `links:write`"
    )]
    Forbidden(LinkError),
    #[response(
        status = 404,
        description = "No such link or agent of the key's account"
    )]
    NotFound(LinkError),
    #[response(status = 429, description = "A rate limit; `Retry-After` says when")]
    TooMany(LinkError),
    #[response(status = 500, description = "An internal error")]
    Internal(LinkError),
    #[response(status = 502, description = "A service is unreachable")]
    BadGateway(LinkError),
    #[response(status = 503, description = "The store is unavailable")]
    Unavailable(LinkError),
    #[response(status = 504, description = "No answer within the request deadline")]
    Timeout(LinkError),
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct StartBody {
    /// The link (`lnk_…`): the only credential.
    #[schema(min_length = 1)]
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
    operation_id = "seed002_start_session",
    path = START_PATH,
    tag = "seed 002: links",
    request_body = StartBody,
    responses(
        (status = 200, description = "Started: the room and the user's join token", body = Succeeded<StartedSession>),
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
) -> Result<(StatusCode, StartedSession), ApiError> {
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
        session_id: started.session_id,
        livekit_url: started.room_url,
        participant_token: started.token,
        agent_identity: started.agent_identity,
    };
    Ok((StatusCode::OK, started))
}

/// Creates a shareable link to one of the key's account's agents.
#[utoipa::path(
    post,
    operation_id = "seed002_create_link",
    path = LINKS_PATH,
    tag = "seed 002: links",
    request_body = CreateLinkJson,
    security(("api_key" = [])),
    responses(
        (status = 201, description = "Created", body = Succeeded<OneLink>),
        ManagementRefusals,
    )
)]
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
            Ok((StatusCode::CREATED, OneLink { link: link.into() }))
        }
        .await,
    )
}

/// The key's account's links.
#[utoipa::path(
    get,
    operation_id = "seed002_list_links",
    path = LINKS_PATH,
    tag = "seed 002: links",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The links", body = Succeeded<LinkList>),
        ManagementRefusals,
    )
)]
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
            let links = list.links.into_iter().map(LinkJson::from).collect();
            Ok((StatusCode::OK, LinkList { links }))
        }
        .await,
    )
}

/// One of the key's account's links.
#[utoipa::path(
    get,
    operation_id = "seed002_get_link",
    path = LINK_PATH,
    tag = "seed 002: links",
    params(("id" = String, Path, description = "The link (`lnk_…`)")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The link", body = Succeeded<OneLink>),
        ManagementRefusals,
    )
)]
pub async fn get_link(
    State(state): State<AppState>,
    Path(link_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    respond(owned_link(&state, &headers, link_id, false).await)
}

/// Deactivates one of the key's account's links: no start through it
/// from now on.
#[utoipa::path(
    post,
    operation_id = "seed002_deactivate_link",
    path = DEACTIVATE_PATH,
    tag = "seed 002: links",
    params(("id" = String, Path, description = "The link (`lnk_…`)")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The link, inactive", body = Succeeded<OneLink>),
        ManagementRefusals,
    )
)]
pub async fn deactivate_link(
    state: State<AppState>,
    link_id: Path<String>,
    headers: HeaderMap,
) -> Response {
    deactivate(state, link_id, headers).await
}

/// `DELETE /v1/links/{id}`: the same as its deactivation.
#[utoipa::path(
    delete,
    operation_id = "seed002_delete_link",
    path = LINK_PATH,
    tag = "seed 002: links",
    params(("id" = String, Path, description = "The link (`lnk_…`)")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The link, inactive", body = Succeeded<OneLink>),
        ManagementRefusals,
    )
)]
pub async fn delete_link(
    state: State<AppState>,
    link_id: Path<String>,
    headers: HeaderMap,
) -> Response {
    deactivate(state, link_id, headers).await
}

async fn deactivate(
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
) -> Result<(StatusCode, OneLink), ApiError> {
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
    Ok((StatusCode::OK, OneLink { link: link.into() }))
}
