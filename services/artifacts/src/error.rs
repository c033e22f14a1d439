use lobby_kit::{grpc::CodedError, ErrorCode};
use tonic::Code;

#[derive(Debug, thiserror::Error)]
pub enum ArtifactsError {
    #[error("{field}: {reason}")]
    InvalidArgument {
        field: &'static str,
        reason: &'static str,
    },
    #[error("{0} not found")]
    NotFound(String),
    #[error("object store: {0}")]
    Store(#[from] std::io::Error),
}

impl CodedError for ArtifactsError {
    fn machine_code(&self) -> lobby_kit::ErrorCode {
        match self {
            Self::InvalidArgument { .. } => ErrorCode::InvalidRequest,
            Self::NotFound(_) => ErrorCode::ArtifactNotFound,
            Self::Store(_) => ErrorCode::InternalError,
        }
    }
    fn grpc_code(&self) -> Code {
        match self {
            Self::InvalidArgument { .. } => Code::InvalidArgument,
            Self::NotFound(_) => Code::NotFound,
            Self::Store(_) => Code::Internal,
        }
    }
}

impl From<ArtifactsError> for tonic::Status {
    fn from(e: ArtifactsError) -> Self {
        lobby_kit::grpc::to_status(&e)
    }
}
