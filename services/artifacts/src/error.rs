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
    #[error("the upload is larger than its cap of {max_bytes} bytes")]
    TooLarge { max_bytes: u64 },
    /// Tampered, expired, for another method or object: one answer, on purpose.
    #[error("the signed URL is not valid")]
    SignatureInvalid,
    #[error("object store: {0}")]
    Io(#[from] std::io::Error),
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    #[error("state store: {0}")]
    Redis(#[from] redis::RedisError),
}

impl CodedError for ArtifactsError {
    fn machine_code(&self) -> lobby_kit::ErrorCode {
        match self {
            Self::InvalidArgument { .. } => ErrorCode::InvalidRequest,
            Self::NotFound(_) => ErrorCode::ArtifactNotFound,
            Self::TooLarge { .. } => ErrorCode::UploadTooLarge,
            Self::SignatureInvalid => ErrorCode::SignatureInvalid,
            Self::Io(_) | Self::Store(_) => ErrorCode::InternalError,
            Self::Redis(e) => lobby_kit::redis_conn::error_code(e),
        }
    }
    fn grpc_code(&self) -> Code {
        match self {
            Self::InvalidArgument { .. } => Code::InvalidArgument,
            Self::NotFound(_) => Code::NotFound,
            Self::TooLarge { .. } => Code::ResourceExhausted,
            Self::SignatureInvalid => Code::PermissionDenied,
            Self::Io(_) | Self::Store(_) => Code::Internal,
            Self::Redis(e) => lobby_kit::redis_conn::grpc_code(e),
        }
    }
}

impl From<ArtifactsError> for tonic::Status {
    fn from(e: ArtifactsError) -> Self {
        lobby_kit::grpc::to_status(&e)
    }
}
