use lobby_kit::grpc::CodedError;
use tonic::Code;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("Agent {0:?} does not exist")]
    AgentNotFound(String),
    #[error("Agent exists but is currently unpublished")]
    AgentUnpublished,
    #[error("Origin is not in the agent's allowed hostnames")]
    OriginRefused,
    #[error("Account {0:?} does not exist")]
    AccountNotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("{field}: {reason}")]
    InvalidArgument { field: &'static str, reason: String },
    #[error("the record kept changing under concurrent updates; retry")]
    Conflict,
    #[error("state store: {0}")]
    Store(#[from] redis::RedisError),
    #[error("stored record is unreadable: {0}")]
    Corrupt(#[from] serde_json::Error),
}

impl AuthError {
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field,
            reason: reason.into(),
        }
    }
}

impl CodedError for AuthError {
    fn machine_code(&self) -> &'static str {
        match self {
            Self::AgentNotFound(_) => "agent_not_found",
            Self::AgentUnpublished => "agent_unpublished",
            Self::OriginRefused => "auth_failed",
            Self::AccountNotFound(_) => "account_not_found",
            Self::AlreadyExists(_) => "already_exists",
            Self::InvalidArgument { .. } => "invalid_request",
            Self::Conflict => "conflict",
            Self::Store(_) | Self::Corrupt(_) => "internal_error",
        }
    }

    fn grpc_code(&self) -> Code {
        match self {
            Self::AgentNotFound(_) | Self::AccountNotFound(_) => Code::NotFound,
            Self::AgentUnpublished | Self::OriginRefused => Code::PermissionDenied,
            Self::AlreadyExists(_) => Code::AlreadyExists,
            Self::InvalidArgument { .. } => Code::InvalidArgument,
            Self::Conflict => Code::Aborted,
            Self::Store(_) | Self::Corrupt(_) => Code::Internal,
        }
    }
}

impl From<AuthError> for tonic::Status {
    fn from(e: AuthError) -> Self {
        lobby_kit::grpc::to_status(&e)
    }
}
