//! Provider webhooks: verified here, acted on by the session service.

pub mod daily;
pub mod livekit;

use crate::error::ErrorBody;

/// What a webhook did.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Outcome {
    /// E.g. `ended`, `joined`, `ignored`, `duplicate`, `stale`, `verified`.
    pub action: String,
    /// The session it acted on; empty if none.
    pub session_id: String,
}

impl Outcome {
    fn of(action: &str) -> Self {
        Self {
            action: action.to_owned(),
            session_id: String::new(),
        }
    }
}

impl From<lobby_proto::session::ProviderEventOutcome> for Outcome {
    fn from(o: lobby_proto::session::ProviderEventOutcome) -> Self {
        Self {
            action: o.action,
            session_id: o.session_id,
        }
    }
}

/// What a webhook can answer instead, in seed 000's envelope.
#[derive(utoipa::IntoResponses)]
pub enum Refusals {
    #[response(status = 400, description = "Not the provider's event, or stale")]
    BadRequest(ErrorBody),
    #[response(
        status = 401,
        description = "The signature is missing or does not verify"
    )]
    Unauthorized(ErrorBody),
    #[response(status = 409, description = "Delivered before")]
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
