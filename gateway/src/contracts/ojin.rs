//! Seed 000: `POST /v1/public/agents/connect` (the ojin.ai Session API),
//! authenticated by the agent's hostname allowlist against `Origin`.

use crate::{error::ApiError, json_body::read_json, AppState};
use axum::{
    body::Body,
    extract::State,
    http::{header, HeaderMap, HeaderValue, Method, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use lobby_proto::{
    auth::AuthorizeConnectRequest,
    session::{SessionKind, StartSessionRequest},
};
use serde::{Deserialize, Serialize};

pub const PATH: &str = "/v1/public/agents/connect";
/// A connect body is two short strings; anything near this is not a client.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
const MAX_CLIENT_USER_REF_CHARS: usize = 256;

/// Unknown fields are ignored so that a newer widget keeps working; known
/// fields of the wrong type are refused.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ConnectRequest {
    pub agent_id: String,
    #[serde(default)]
    pub client_user_ref: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConnectResponse {
    pub session_id: String,
    pub room_url: String,
    pub token: String,
}

fn origin(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    match headers.get(header::ORIGIN) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.to_owned()))
            .map_err(|_| ApiError::public(lobby_kit::ErrorCode::AuthFailed)),
    }
}

fn validate(req: &ConnectRequest) -> Result<(), ApiError> {
    if req.agent_id.trim().is_empty() {
        return Err(ApiError::bad_request("agent_id is required"));
    }
    if let Some(r) = &req.client_user_ref {
        if r.chars().count() > MAX_CLIENT_USER_REF_CHARS {
            return Err(ApiError::bad_request(
                "client_user_ref must be at most 256 characters",
            ));
        }
    }
    Ok(())
}

/// CORS grant for an origin the agent allows; `Vary` so caches keep
/// per-origin answers apart.
fn grant(response: &mut Response, origin: &str) {
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("retry-after"),
        );
    }
    headers.append(header::VARY, HeaderValue::from_static("origin"));
}

/// Starts a session with a published agent, for a browser on one of the
/// agent's allowed origins (or a server with no `Origin`).
#[utoipa::path(
    post,
    operation_id = "seed000_connect",
    path = PATH,
    tag = "seed 000: connect",
    request_body = ConnectRequest,
    params(("Origin" = Option<String>, Header, description = "The calling page's origin; it must be on the agent's allowlist when sent")),
    responses(
        (status = 200, description = "Admitted: the room and the user's join token", body = ConnectResponse),
        (status = 400, description = "Malformed body (`invalid_request`)", body = crate::error::ErrorBody),
        (status = 403, description = "Origin not allowed (`auth_failed`), or the agent is unpublished", body = crate::error::ErrorBody),
        (status = 404, description = "No such agent (`agent_not_found`)", body = crate::error::ErrorBody),
        (status = 429, description = "A concurrency limit, the minutes, or a rate limit; `Retry-After` says when", body = crate::error::ErrorBody),
        (status = 502, description = "The room provider or a GPU worker failed (`orchestrator_error`); nothing is held", body = crate::error::ErrorBody),
        (status = 500, description = "An internal error (`internal_error`)", body = crate::error::ErrorBody),
        (status = 503, description = "The store is unavailable (`store_unavailable`)", body = crate::error::ErrorBody),
        (status = 504, description = "No answer within the request deadline (`timeout`)", body = crate::error::ErrorBody),
    )
)]
pub async fn connect(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let origin = match origin(&headers) {
        Ok(o) => o,
        Err(e) => return e.into_response(),
    };
    let (result, mut granted) = start(&state, &headers, body, origin.clone()).await;
    // A refusal that is not about the origin (no such agent, unpublished,
    // a bad body) is for the browser to read too, when its origin is one
    // some agent allows: what the preflight already answers, nothing more.
    if let (Err(e), Some(o)) = (&result, &origin) {
        if !granted && e.code() != lobby_kit::ErrorCode::AuthFailed.as_str() {
            granted = allowed_by_some_agent(&state, o).await.unwrap_or(false);
        }
    }
    let mut response = match result {
        Ok(ok) => Json(ok).into_response(),
        Err(e) => {
            state
                .metrics
                .connect_errors
                .with_label_values(&[e.code()])
                .inc();
            e.into_response()
        }
    };
    if let (true, Some(origin)) = (granted, origin) {
        grant(&mut response, &origin);
    }
    response
}

/// Returns the outcome and whether the origin passed the agent's allowlist
/// (only then does the browser get to read the answer).
async fn start(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    origin: Option<String>,
) -> (Result<ConnectResponse, ApiError>, bool) {
    let req: ConnectRequest = match read_json(headers, body, MAX_BODY_BYTES).await {
        Ok(r) => r,
        Err(e) => return (Err(e), false),
    };
    if let Err(e) = validate(&req) {
        return (Err(e), false);
    }
    let principal = match state
        .services
        .auth
        .authorize_connect(crate::actor::request(AuthorizeConnectRequest {
            agent_id: req.agent_id,
            origin,
        }))
        .await
    {
        Ok(p) => p.into_inner(),
        Err(status) => return (Err(status.into()), false),
    };
    // The origin passed: the browser may read this refusal.
    if let Err(e) = crate::edge::limit_agent(state, &principal.agent_id) {
        return (Err(e), true);
    }
    let started = state
        .services
        .session
        .start_session(crate::actor::request(StartSessionRequest {
            principal: Some(principal),
            kind: SessionKind::Connect as i32,
            client_user_ref: req.client_user_ref.unwrap_or_default(),
            aspect_ratio: String::new(),
        }))
        .await;
    let result = started.map(|r| {
        let r = r.into_inner();
        ConnectResponse {
            session_id: r.session_id,
            room_url: r.room_url,
            token: r.token,
        }
    });
    (result.map_err(ApiError::from), true)
}

/// CORS preflight. It names no agent, so the origin must be allowed by some
/// agent; the start itself then checks the named agent's own list.
#[utoipa::path(
    options,
    operation_id = "seed000_preflight",
    path = PATH,
    tag = "seed 000: connect",
    params(
        ("Origin" = String, Header, description = "The calling page's origin"),
        ("Access-Control-Request-Method" = String, Header, description = "`POST`"),
    ),
    responses(
        (status = 204, description = "Allowed: the CORS grant in the headers"),
        (status = 403, description = "Origin on no agent's allowlist, or not a POST (`auth_failed`)", body = crate::error::ErrorBody),
        (status = 429, description = "A rate limit; `Retry-After` says when", body = crate::error::ErrorBody),
        (status = 500, description = "An internal error", body = crate::error::ErrorBody),
        (status = 502, description = "A service is unreachable", body = crate::error::ErrorBody),
        (status = 503, description = "The store is unavailable", body = crate::error::ErrorBody),
        (status = 504, description = "No answer within the request deadline", body = crate::error::ErrorBody),
    )
)]
pub async fn preflight(State(state): State<AppState>, headers: HeaderMap) -> Response {
    // `Vary` on refusals too: a cache must not serve one origin's refusal
    // to another origin.
    let refused = || {
        let mut response = ApiError::public(lobby_kit::ErrorCode::AuthFailed).into_response();
        response
            .headers_mut()
            .append(header::VARY, HeaderValue::from_static("origin"));
        response
    };
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return refused();
    };
    let method_ok = headers
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .is_some_and(|m| m.as_bytes() == Method::POST.as_str().as_bytes());
    if !method_ok {
        return refused();
    }
    match allowed_by_some_agent(&state, origin).await {
        Ok(true) => {
            let mut response = StatusCode::NO_CONTENT.into_response();
            grant(&mut response, origin);
            let h = response.headers_mut();
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("POST, OPTIONS"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("content-type"),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
            response
        }
        Ok(false) => refused(),
        Err(e) => e.into_response(),
    }
}

/// Whether some agent's allowlist admits `origin` (the preflight's rule).
async fn allowed_by_some_agent(state: &AppState, origin: &str) -> Result<bool, ApiError> {
    let answer = state
        .services
        .auth
        .check_preflight_origin(crate::actor::request(
            lobby_proto::auth::CheckPreflightOriginRequest {
                origin: origin.to_owned(),
            },
        ))
        .await?;
    Ok(answer.get_ref().allowed)
}
