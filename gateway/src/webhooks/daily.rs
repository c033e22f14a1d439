//! `POST /webhooks/daily`: Daily signs each webhook with HMAC-SHA256, keyed
//! with the webhook's base64-encoded `hmac` secret, over
//! `<X-Webhook-Timestamp>.<raw body>`, and sends the base64 result in
//! `X-Webhook-Signature`. Only a verified `meeting.ended` reaches the session
//! service (which also refuses replays and stale events).
//!
//! Daily stops delivering to an endpoint after a few answers that are not
//! 200, so every answer about an event it sent is 200: its verification
//! ping (sent before the webhook, and so its secret, exists), and a
//! verified event that is a replay or too old (`action` says which). Only
//! a forgery, which Daily never sends, is refused.

use crate::{error::ApiError, AppState};
use axum::{
    body::Body,
    extract::State,
    http::HeaderMap,
    response::{IntoResponse, Response},
    Json,
};
use base64::{engine::general_purpose::STANDARD as B64, Engine};
use hmac::{Hmac, Mac};
use lobby_proto::{common::Provider, session::ProviderEvent};
use serde::Deserialize;
use sha2::Sha256;

pub const PATH: &str = "/webhooks/daily";
const MAX_BODY_BYTES: usize = 1 << 20;

#[derive(Debug, Deserialize)]
struct DailyEvent {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    /// Seconds since the epoch, with a fraction.
    event_ts: f64,
    #[serde(default)]
    payload: DailyPayload,
}

#[derive(Debug, Default, Deserialize)]
struct DailyPayload {
    #[serde(default)]
    room: String,
}

fn unauthorized(reason: &str) -> ApiError {
    ApiError::new(lobby_kit::ErrorCode::WebhookUnauthorized, reason)
}

/// Checks Daily's signature in constant time.
pub fn verify(secret_b64: &str, timestamp: &str, body: &[u8], signature_b64: &str) -> bool {
    let (Ok(key), Ok(signature)) = (B64.decode(secret_b64), B64.decode(signature_b64.trim()))
    else {
        return false;
    };
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(&key) else {
        return false;
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&signature).is_ok()
}

/// A Daily webhook (HMAC-signed with `LOBBY_DAILY_WEBHOOK_SECRET`):
/// `meeting.ended` ends the session.
#[utoipa::path(
    post,
    operation_id = "webhook_daily_receive",
    path = PATH,
    tag = "webhooks",
    request_body(content = String, content_type = "application/json", description = "Daily's event, as sent"),
    params(
        ("x-webhook-timestamp" = Option<String>, Header, description = "Daily's timestamp"),
        ("x-webhook-signature" = Option<String>, Header, description = "Daily's HMAC-SHA256 over timestamp and body, base64"),
    ),
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

/// Daily's verification request: a JSON object with a `test` field and
/// no event type. It carries nothing to act on, so it needs no signature.
fn is_verification_ping(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(bytes).is_ok_and(|v| {
        v.as_object()
            .is_some_and(|o| o.contains_key("test") && !o.contains_key("type"))
    })
}

async fn handle(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<super::Outcome, ApiError> {
    let bytes = crate::json_body::read_bytes(body, MAX_BODY_BYTES).await?;
    if is_verification_ping(&bytes) {
        return Ok(super::Outcome::of("verified"));
    }
    let Some(secret) = state.daily_webhook_secret.as_deref() else {
        return Err(unauthorized(
            "Daily webhooks are not configured (LOBBY_DAILY_WEBHOOK_SECRET)",
        ));
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let (timestamp, signature) = (header("x-webhook-timestamp"), header("x-webhook-signature"));
    if timestamp.is_empty() || signature.is_empty() || !verify(secret, timestamp, &bytes, signature)
    {
        return Err(unauthorized("the webhook signature does not verify"));
    }
    let event: DailyEvent = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("webhook body is not a Daily event: {e}")))?;
    if event.kind != "meeting.ended" {
        return Ok(super::Outcome::of("ignored"));
    }
    let handled = state
        .services
        .session
        .handle_provider_event(crate::actor::request(ProviderEvent {
            provider: Provider::Daily as i32,
            event_id: event.id,
            created_at_ms: (event.event_ts * 1000.0) as i64,
            kind: "meeting_ended".into(),
            room_name: event.payload.room,
            participant_identity: String::new(),
            participant_is_agent: false,
        }))
        .await;
    match handled {
        Ok(outcome) => Ok(outcome.into_inner().into()),
        Err(status) => match lobby_kit::grpc::machine_code(&status) {
            Some(lobby_kit::ErrorCode::WebhookReplayed) => Ok(super::Outcome::of("duplicate")),
            Some(lobby_kit::ErrorCode::WebhookStale) => Ok(super::Outcome::of("stale")),
            _ => Err(status.into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_signature_verifies() {
        let secret = B64.encode(b"a daily webhook secret");
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"a daily webhook secret").unwrap();
        mac.update(b"1700000000.{\"a\":1}");
        let good = B64.encode(mac.finalize().into_bytes());
        assert!(verify(&secret, "1700000000", b"{\"a\":1}", &good));
        assert!(
            !verify(&secret, "1700000001", b"{\"a\":1}", &good),
            "another timestamp"
        );
        assert!(
            !verify(&secret, "1700000000", b"{\"a\":2}", &good),
            "another body"
        );
        assert!(
            !verify(&B64.encode(b"other"), "1700000000", b"{\"a\":1}", &good),
            "another secret"
        );
        assert!(!verify(&secret, "1700000000", b"{\"a\":1}", "not base64!"));
    }
}
