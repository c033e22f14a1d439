//! The gateway's one mapping from service errors to HTTP: a gRPC status with
//! a Lobby machine code becomes a status code and the seed-000 body
//! `{error_code, message[, retry_after_seconds, limit, in_use, scope]}`.

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use lobby_kit::{
    grpc::{detail, details, is_unreachable, machine_code},
    ErrorCode,
};
use serde::Serialize;

/// The HTTP status of every machine code: exhaustive, so a new code cannot
/// fall through to a 500 unnoticed.
pub fn http_status(code: ErrorCode) -> StatusCode {
    use ErrorCode as C;
    match code {
        C::InvalidRequest | C::WebhookStale => StatusCode::BAD_REQUEST,
        C::KeyMissing
        | C::KeyMalformed
        | C::KeyInvalid
        | C::KeyExpired
        | C::TokenMissing
        | C::TokenMalformed
        | C::TokenInvalid
        | C::TokenExpired
        | C::WebhookUnauthorized
        | C::Unauthorized => StatusCode::UNAUTHORIZED,
        C::AgentUnpublished
        | C::AuthFailed
        | C::KeyInactive
        | C::KeyRevoked
        | C::ScopeDenied
        | C::DatabaseIdMismatch
        | C::WorkerIdMismatch
        | C::SessionEnded
        | C::LinkInactive
        | C::LinkUsedUp
        | C::SignatureInvalid => StatusCode::FORBIDDEN,
        C::AgentNotFound
        | C::AccountNotFound
        | C::SessionNotFound
        | C::ArtifactNotFound
        | C::ProjectNotFound
        | C::KeyNotFound
        | C::LinkNotFound => StatusCode::NOT_FOUND,
        C::AlreadyExists | C::Conflict | C::EventsFull | C::MessagesFull | C::WebhookReplayed => {
            StatusCode::CONFLICT
        }
        C::LinkExpired => StatusCode::GONE,
        C::UploadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        C::AvatarMissing
        | C::AvatarInvalidUrl
        | C::AvatarAddressRefused
        | C::AvatarUnreachable
        | C::AvatarTimeout
        | C::AvatarTooLarge
        | C::AvatarUnsupportedFormat
        | C::AvatarBadDimensions
        | C::AvatarNoFace => StatusCode::UNPROCESSABLE_ENTITY,
        C::ConcurrencyLimit | C::MinutesExhausted | C::OpenRunsLimit => {
            StatusCode::TOO_MANY_REQUESTS
        }
        C::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        C::RoomCreationFailed | C::OrchestratorError => StatusCode::BAD_GATEWAY,
        C::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        C::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        C::RouteNotFound => StatusCode::NOT_FOUND,
        C::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        C::Timeout => StatusCode::GATEWAY_TIMEOUT,
    }
}

/// Seed 000's wording for its own codes (and fixed wording where a
/// service's message could carry internals); `None` keeps the service's
/// message, which names the offending field.
fn public_message(code: ErrorCode) -> Option<&'static str> {
    use ErrorCode as C;
    match code {
        C::AgentNotFound => Some("Agent ID does not exist or is not visible to the caller"),
        C::AgentUnpublished => Some("Agent exists but is currently unpublished"),
        C::AuthFailed => Some("Hostname allowlist validation failed"),
        C::ConcurrencyLimit => Some("Max concurrency reached"),
        C::RoomCreationFailed => Some("WebRTC room could not be created"),
        C::OrchestratorError => Some("Agent orchestrator is unreachable or returned an error"),
        C::InternalError => Some("Unexpected server error"),
        C::MinutesExhausted => Some("The account has no session minutes left"),
        C::StoreUnavailable => Some("The service is temporarily unavailable; retry shortly"),
        C::RateLimited => Some("Too many requests; retry after the given time"),
        C::RouteNotFound => Some("No such route"),
        C::MethodNotAllowed => Some("This route does not take this method"),
        C::Timeout => Some("The request took too long and was abandoned"),
        _ => None,
    }
}

/// Seed 000's error body, also the admin API's and the edge's own.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status: http_status(code),
            body: Box::new(ErrorBody {
                error_code: code.as_str().to_owned(),
                message: message.into(),
                retry_after_seconds: None,
                limit: None,
                in_use: None,
                scope: None,
            }),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
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
                Self::public(ErrorCode::OrchestratorError)
            } else {
                tracing::error!(code = ?status.code(), error = %status.message(), "unmapped service error");
                Self::public(ErrorCode::InternalError)
            };
        };
        let mut err = Self::new(code, public_message(code).unwrap_or(status.message()));
        match code {
            ErrorCode::ConcurrencyLimit => {
                let retry_ms: u64 = detail(status, details::RETRY_AFTER_MS)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1000);
                // Whole seconds, rounded up, never 0: "retry now" would only hit the limit again.
                err.body.retry_after_seconds = Some(retry_ms.div_ceil(1000).max(1));
                err.body.limit = detail(status, details::LIMIT).and_then(|v| v.parse().ok());
                err.body.in_use = detail(status, details::IN_USE).and_then(|v| v.parse().ok());
                err.body.scope = detail(status, details::SCOPE).map(str::to_owned);
            }
            ErrorCode::StoreUnavailable => err.body.retry_after_seconds = Some(1),
            _ => {}
        }
        err
    }

    /// An error in the words `public_message` gives it.
    pub fn public(code: ErrorCode) -> Self {
        Self::new(code, public_message(code).unwrap_or(code.as_str()))
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
