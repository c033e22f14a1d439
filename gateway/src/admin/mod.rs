//! The admin API under `/admin/v1/`, guarded by the bootstrap admin token.
//! Handlers parse, call the owning service, render; validation is the
//! service's (auth owns the catalog and credential rules).

mod accounts;
mod agents;
mod keys;
mod links;
mod projects;
mod sessions;

pub use links::{CreateLinkJson, LinkJson, LinkList};

use crate::{
    error::{ApiError, ErrorBody},
    AppState,
};
use accounts::{
    account_audit, account_usage, create_account, get_account, global_audit, list_accounts,
    rotate_data_key, rotate_database_id_hash, update_account,
};
use agents::{create_agent, get_agent, list_agents, update_agent};
use axum::{
    extract::{Request, State},
    http::header,
    middleware::Next,
    response::{IntoResponse, Response},
    routing::{get, patch, post},
    Router,
};
use keys::{
    create_api_key, create_worker_key, list_agent_keys, list_api_keys, list_worker_keys,
    revoke_key, rotate_agent_key, rotate_signing_key, set_key_active,
};
use links::{create_link, deactivate_link, get_link, list_links};
use projects::{create_project, get_project, list_projects};
use sessions::{end_session, get_session};
use subtle::ConstantTimeEq;

pub(super) const MAX_BODY_BYTES: usize = 64 * 1024;

/// The admin API's part of the OpenAPI document; its paths are relative to
/// `/admin/v1`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    accounts::create_account,
    accounts::list_accounts,
    accounts::get_account,
    accounts::update_account,
    accounts::account_usage,
    accounts::rotate_database_id_hash,
    accounts::rotate_data_key,
    accounts::account_audit,
    accounts::global_audit,
    sessions::list_sessions,
    sessions::get_session,
    sessions::end_session,
    keys::create_api_key,
    keys::list_api_keys,
    keys::rotate_agent_key,
    keys::list_agent_keys,
    keys::create_worker_key,
    keys::list_worker_keys,
    keys::set_key_active,
    keys::revoke_key,
    keys::rotate_signing_key,
    links::create_link,
    links::list_links,
    links::get_link,
    links::deactivate_link,
    projects::create_project,
    projects::list_projects,
    projects::get_project,
    agents::create_agent,
    agents::list_agents,
    agents::get_agent,
    agents::update_agent,
))]
pub struct AdminDoc;

/// What every admin operation can answer instead, in seed 000's envelope.
#[derive(utoipa::IntoResponses)]
pub enum Refusals {
    #[response(
        status = 400,
        description = "Malformed body or parameter (`invalid_request`, naming the field)"
    )]
    BadRequest(ErrorBody),
    #[response(
        status = 401,
        description = "No valid admin token (`Authorization: Bearer <token>`)"
    )]
    Unauthorized(ErrorBody),
    #[response(
        status = 404,
        description = "No such account, project, agent, key, link or session"
    )]
    NotFound(ErrorBody),
    #[response(
        status = 409,
        description = "It exists already, or conflicts with what does"
    )]
    Conflict(ErrorBody),
    #[response(status = 429, description = "A rate limit; `Retry-After` says when")]
    TooMany(ErrorBody),
    #[response(status = 500, description = "An internal error")]
    Internal(ErrorBody),
    #[response(status = 502, description = "A service is unreachable")]
    BadGateway(ErrorBody),
    #[response(status = 503, description = "The store is unavailable")]
    Unavailable(ErrorBody),
    #[response(status = 504, description = "No answer within the request deadline")]
    Timeout(ErrorBody),
}

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/accounts", post(create_account).get(list_accounts))
        .route("/accounts/{id}", get(get_account).patch(update_account))
        .route("/accounts/{id}/usage", get(account_usage))
        .route("/accounts/{id}/sessions", get(sessions::list_sessions))
        .route(
            "/accounts/{id}/database-id-hash/rotate",
            post(rotate_database_id_hash),
        )
        .route("/accounts/{id}/data-keys/rotate", post(rotate_data_key))
        .route("/accounts/{id}/audit", get(account_audit))
        .route("/audit", get(global_audit))
        .route(
            "/accounts/{id}/api-keys",
            post(create_api_key).get(list_api_keys),
        )
        .route("/accounts/{id}/links", post(create_link).get(list_links))
        .route(
            "/accounts/{id}/projects",
            post(create_project).get(list_projects),
        )
        .route("/projects/{id}", get(get_project))
        .route("/agents", post(create_agent).get(list_agents))
        .route("/agents/{id}", get(get_agent).patch(update_agent))
        .route(
            "/agents/{id}/keys",
            post(rotate_agent_key).get(list_agent_keys),
        )
        .route(
            "/workers/{id}/keys",
            post(create_worker_key).get(list_worker_keys),
        )
        .route("/keys/{prefix}", patch(set_key_active))
        .route("/keys/{prefix}/revoke", post(revoke_key))
        .route("/signing-keys/rotate", post(rotate_signing_key))
        .route("/links/{id}", get(get_link))
        .route("/links/{id}/deactivate", post(deactivate_link))
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
        crate::actor::identify("admin".to_owned());
        next.run(req).await
    } else {
        ApiError::new(
            lobby_kit::ErrorCode::Unauthorized,
            "a valid admin token is required as Authorization: Bearer <token>",
        )
        .into_response()
    }
}

pub(super) type ApiResult<T> = Result<T, ApiError>;
