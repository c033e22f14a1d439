//! The gateway's one mapping from service errors to HTTP: a gRPC status with
//! a Lobby machine code becomes a status code and the seed-000 body
//! `{error_code, message[, retry_after_seconds, limit, in_use, scope]}`.

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use lobby_kit::grpc::{detail, is_unreachable, machine_code};
use serde::Serialize;

/// Metadata keys rooms attaches to a `concurrency_limit` refusal.
const RETRY_AFTER_MS: &str = "lobby-retry-after-ms";
const LIMIT: &str = "lobby-limit";
const IN_USE: &str = "lobby-in-use";
const SCOPE: &str = "lobby-scope";

#[derive(Debug, Clone, Serialize)]
pub struct ErrorBody {
    pub error_code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_use: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// Boxed: errors travel through every handler's `Result`, keep it small.
    pub body: Box<ErrorBody>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: Box::new(ErrorBody {
                error_code: code.to_owned(),
                message: message.into(),
                retry_after_seconds: None,
                limit: None,
                in_use: None,
                scope: None,
            }),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub fn code(&self) -> &str {
        &self.body.error_code
    }

    pub fn message(&self) -> &str {
        &self.body.message
    }

    /// Adds the `Retry-After` header when the failure carries a retry hint.
    pub fn with_retry_header(&self, mut response: Response) -> Response {
        if let Some(secs) = self.body.retry_after_seconds {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }

    /// Maps a service's error. Seed-000 codes get the seed's wording so that
    /// no internal detail leaks to public callers; other codes (admin API)
    /// keep the service's message, which names the offending field.
    pub fn from_status(status: &tonic::Status) -> Self {
        let Some(code) = machine_code(status) else {
            return if is_unreachable(status) {
                tracing::warn!(error = %status.message(), "a service is unreachable");
                Self::new(
                    StatusCode::BAD_GATEWAY,
                    "orchestrator_error",
                    "Agent orchestrator is unreachable or returned an error",
                )
            } else {
                tracing::error!(code = ?status.code(), error = %status.message(), "unmapped service error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "Unexpected server error",
                )
            };
        };
        let (http, message): (StatusCode, Option<&str>) = match code {
            "agent_not_found" => (
                StatusCode::NOT_FOUND,
                Some("Agent ID does not exist or is not visible to the caller"),
            ),
            "agent_unpublished" => (
                StatusCode::FORBIDDEN,
                Some("Agent exists but is currently unpublished"),
            ),
            "auth_failed" => (
                StatusCode::FORBIDDEN,
                Some("Hostname allowlist validation failed"),
            ),
            "concurrency_limit" => (
                StatusCode::TOO_MANY_REQUESTS,
                Some("Max concurrency reached"),
            ),
            "room_creation_failed" => (
                StatusCode::BAD_GATEWAY,
                Some("WebRTC room could not be created"),
            ),
            "orchestrator_error" => (
                StatusCode::BAD_GATEWAY,
                Some("Agent orchestrator is unreachable or returned an error"),
            ),
            "internal_error" => (
                StatusCode::INTERNAL_SERVER_ERROR,
                Some("Unexpected server error"),
            ),
            "minutes_exhausted" => (
                StatusCode::TOO_MANY_REQUESTS,
                Some("The account has no session minutes left"),
            ),
            "invalid_request" => (StatusCode::BAD_REQUEST, None),
            "key_missing" | "key_malformed" | "key_invalid" | "key_expired" => {
                (StatusCode::UNAUTHORIZED, None)
            }
            "key_inactive" | "key_revoked" | "scope_denied" => (StatusCode::FORBIDDEN, None),
            "token_missing" | "token_malformed" | "token_invalid" | "token_expired" => {
                (StatusCode::UNAUTHORIZED, None)
            }
            "session_ended" | "link_inactive" | "link_used_up" => (StatusCode::FORBIDDEN, None),
            "link_expired" => (StatusCode::GONE, None),
            // avatar_missing and every avatar validation failure (avatar_no_face, …).
            c if c.starts_with("avatar_") => (StatusCode::UNPROCESSABLE_ENTITY, None),
            "account_not_found" | "session_not_found" | "artifact_not_found" | "link_not_found"
            | "key_not_found" => (StatusCode::NOT_FOUND, None),
            "already_exists" | "conflict" | "events_full" | "webhook_replayed" => {
                (StatusCode::CONFLICT, None)
            }
            "webhook_stale" => (StatusCode::BAD_REQUEST, None),
            // Redis is down, restarting or loading its data: try again shortly.
            "store_unavailable" => (
                StatusCode::SERVICE_UNAVAILABLE,
                Some("The service is temporarily unavailable; retry shortly"),
            ),
            _ => (
                StatusCode::INTERNAL_SERVER_ERROR,
                Some("Unexpected server error"),
            ),
        };
        let mut err = Self::new(http, code, message.unwrap_or(status.message()));
        if code == "concurrency_limit" {
            let retry_ms: u64 = detail(status, RETRY_AFTER_MS)
                .and_then(|v| v.parse().ok())
                .unwrap_or(1000);
            // Whole seconds, rounded up, never 0: "retry now" would only hit the limit again.
            err.body.retry_after_seconds = Some(retry_ms.div_ceil(1000).max(1));
            err.body.limit = detail(status, LIMIT).and_then(|v| v.parse().ok());
            err.body.in_use = detail(status, IN_USE).and_then(|v| v.parse().ok());
            err.body.scope = detail(status, SCOPE).map(str::to_owned);
        }
        if code == "store_unavailable" {
            err.body.retry_after_seconds = Some(1);
        }
        err
    }
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        Self::from_status(&status)
    }
}

/// Seed 000's body (and the admin API's): `{error_code, message, …}`.
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let response = (self.status, Json(&self.body)).into_response();
        self.with_retry_header(response)
    }
}
