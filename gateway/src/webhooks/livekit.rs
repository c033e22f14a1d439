//! `POST /webhooks/livekit`: LiveKit signs each webhook with a JWT in
//! `Authorization` (issued with our API key, signed with its secret) whose
//! `sha256` claim is the body's hash. Only a verified event reaches the
//! session service, which refuses replays and stale events and ends the
//! session on `room_finished` or when the last user leaves.

use crate::{error::ApiError, AppState};
use axum::{
    body::Body,
    extract::State,
    http::{header, HeaderMap},
    response::{IntoResponse, Response},
    Json,
};
use livekit_api::webhooks::{WebhookError, WebhookReceiver};
use livekit_protocol::participant_info::Kind;
use lobby_proto::{common::Provider, session::ProviderEvent};

pub const PATH: &str = "/webhooks/livekit";
const MAX_BODY_BYTES: usize = 1 << 20;

pub fn receiver(api_key: &str, api_secret: &str) -> WebhookReceiver {
    WebhookReceiver::new(livekit_api::access_token::TokenVerifier::with_api_key(
        api_key, api_secret,
    ))
}

fn unauthorized(reason: &str) -> ApiError {
    ApiError::new(lobby_kit::ErrorCode::WebhookUnauthorized, reason)
}

/// A LiveKit webhook (signed with the server's API key pair): a user
/// leaving ends the session at once.
#[utoipa::path(
    post,
    operation_id = "webhook_livekit_receive",
    path = PATH,
    tag = "webhooks",
    request_body(content = String, content_type = "application/webhook+json", description = "LiveKit's event, as sent"),
    params(("Authorization" = String, Header, description = "LiveKit's signed token over the body")),
    responses(
        (status = 200, description = "Handled", body = super::Outcome),
        super::Refusals,
    )
)]
pub async fn receive(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    match handle(&state, &headers, body).await {
        Ok(outcome) => Json(outcome).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn handle(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<super::Outcome, ApiError> {
    let bytes = crate::json_body::read_bytes(body, MAX_BODY_BYTES).await?;
    let body = std::str::from_utf8(&bytes)
        .map_err(|_| ApiError::bad_request("webhook body is not UTF-8"))?;
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).trim())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| unauthorized("the webhook carries no Authorization token"))?;
    let event = state
        .livekit_webhooks
        .receive(body, token)
        .map_err(|e| match e {
            WebhookError::InvalidData(e) => {
                ApiError::bad_request(format!("webhook body is not a LiveKit event: {e}"))
            }
            other => unauthorized(&format!("the webhook signature does not verify: {other}")),
        })?;
    let room_name = event
        .room
        .as_ref()
        .map(|r| r.name.clone())
        .unwrap_or_default();
    let (participant_identity, participant_is_agent) = event
        .participant
        .as_ref()
        .map(|p| (p.identity.clone(), p.kind == Kind::Agent as i32))
        .unwrap_or_default();
    let outcome = state
        .services
        .session
        .handle_provider_event(crate::actor::request(ProviderEvent {
            provider: Provider::Livekit as i32,
            event_id: event.id,
            created_at_ms: event.created_at.saturating_mul(1000),
            kind: event.event,
            room_name,
            participant_identity,
            participant_is_agent,
        }))
        .await?
        .into_inner();
    Ok(outcome.into())
}
