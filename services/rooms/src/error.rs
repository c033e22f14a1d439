use crate::{avatar::AvatarRejection, providers::ProviderError};
use lobby_kit::{grpc::CodedError, ErrorCode};
use tonic::Code;

#[derive(Debug, thiserror::Error)]
pub enum RoomsError {
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
    fn machine_code(&self) -> lobby_kit::ErrorCode {
        match self {
            Self::AvatarRejected(r) => r.machine_code(),
            Self::RoomCreationFailed(_) => ErrorCode::RoomCreationFailed,
            Self::NoWorker(_) => ErrorCode::OrchestratorError,
            Self::InvalidArgument { .. } => ErrorCode::InvalidRequest,
            Self::Store(e) => lobby_kit::redis_conn::error_code(e),
        }
    }

    fn grpc_code(&self) -> Code {
        match self {
            Self::AvatarRejected(_) => Code::FailedPrecondition,
            Self::RoomCreationFailed(_) | Self::NoWorker(_) => Code::Unavailable,
            Self::InvalidArgument { .. } => Code::InvalidArgument,
            Self::Store(e) => lobby_kit::redis_conn::grpc_code(e),
        }
    }
}

impl From<RoomsError> for tonic::Status {
    fn from(e: RoomsError) -> Self {
        lobby_kit::grpc::to_status(&e)
    }
}
