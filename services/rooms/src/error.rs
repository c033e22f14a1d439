use crate::{admission::Refusal, avatar::AvatarRejection, providers::ProviderError};
use lobby_kit::grpc::CodedError;
use tonic::Code;

/// Metadata keys of a `concurrency_limit` refusal.
pub const RETRY_AFTER_MS: &str = "lobby-retry-after-ms";
pub const LIMIT: &str = "lobby-limit";
pub const IN_USE: &str = "lobby-in-use";
pub const SCOPE: &str = "lobby-scope";

#[derive(Debug, thiserror::Error)]
pub enum RoomsError {
    #[error("Max concurrency reached")]
    ConcurrencyLimit(Refusal),
    #[error("The account has no session minutes left")]
    MinutesExhausted(Refusal),
    #[error("{0}")]
    AvatarRejected(AvatarRejection),
    #[error("Agent orchestrator is unreachable or returned an error: {0}")]
    NoWorker(String),
    #[error("WebRTC room could not be created: {0}")]
    RoomCreationFailed(#[from] ProviderError),
    #[error("{field}: {reason}")]
    InvalidArgument {
        field: &'static str,
        reason: &'static str,
    },
    #[error("state store: {0}")]
    Store(#[from] redis::RedisError),
}

impl CodedError for RoomsError {
    fn machine_code(&self) -> &'static str {
        match self {
            Self::ConcurrencyLimit(_) => "concurrency_limit",
            Self::MinutesExhausted(_) => "minutes_exhausted",
            Self::AvatarRejected(r) => r.machine_code(),
            Self::RoomCreationFailed(_) => "room_creation_failed",
            Self::NoWorker(_) => "orchestrator_error",
            Self::InvalidArgument { .. } => "invalid_request",
            Self::Store(e) => lobby_kit::redis_conn::error_code(e),
        }
    }

    fn grpc_code(&self) -> Code {
        match self {
            Self::AvatarRejected(_) => Code::FailedPrecondition,
            Self::ConcurrencyLimit(_) | Self::MinutesExhausted(_) => Code::ResourceExhausted,
            Self::RoomCreationFailed(_) | Self::NoWorker(_) => Code::Unavailable,
            Self::InvalidArgument { .. } => Code::InvalidArgument,
            Self::Store(e) => lobby_kit::redis_conn::grpc_code(e),
        }
    }

    fn details(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::ConcurrencyLimit(r) | Self::MinutesExhausted(r) => vec![
                (RETRY_AFTER_MS, r.retry_after_ms.to_string()),
                (LIMIT, r.limit.to_string()),
                (IN_USE, r.in_use.to_string()),
                (SCOPE, r.scope.as_str().to_owned()),
            ],
            _ => Vec::new(),
        }
    }
}

impl From<RoomsError> for tonic::Status {
    fn from(e: RoomsError) -> Self {
        lobby_kit::grpc::to_status(&e)
    }
}
