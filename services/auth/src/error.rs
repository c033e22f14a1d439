use crate::{credentials::KeyRejection, links::LinkRejection, session_jwt::TokenRejection};
use lobby_kit::{grpc::CodedError, ErrorCode};
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
    #[error("Project {0:?} does not exist")]
    ProjectNotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("{field}: {reason}")]
    InvalidArgument { field: &'static str, reason: String },
    #[error("the record kept changing under concurrent updates; retry")]
    Conflict,
    #[error("{}", key_message(*.0))]
    KeyRejected(KeyRejection),
    #[error("{}", token_message(*.0))]
    TokenRejected(TokenRejection),
    #[error("{}", link_message(*.0))]
    LinkRejected(LinkRejection),
    #[error("key {0:?} does not exist")]
    KeyNotFound(String),
    #[error("The database-id-hash header does not match the key's account")]
    DatabaseIdMismatch,
    #[error("The link's agent has no avatar_image_url configured")]
    AvatarMissing,
    #[error("state store: {0}")]
    Store(#[from] redis::RedisError),
    #[error("stored record is unreadable: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("{0}")]
    Internal(String),
}

fn key_message(r: KeyRejection) -> &'static str {
    match r {
        KeyRejection::Missing => "No key was presented",
        KeyRejection::Malformed => "The key is not in the expected format",
        KeyRejection::Invalid => "The key is not valid",
        KeyRejection::Inactive => "The key is inactive",
        KeyRejection::Revoked => "The key has been revoked",
        KeyRejection::Expired => "The key has expired",
        KeyRejection::ScopeDenied => "The key does not carry the scope this call needs",
    }
}

fn token_message(r: TokenRejection) -> &'static str {
    match r {
        TokenRejection::Missing => "No session token was presented",
        TokenRejection::Malformed => "The session token is not a well-formed JWT",
        TokenRejection::Invalid => "The session token is not valid",
        TokenRejection::Expired => "The session token has expired",
    }
}

fn link_message(r: LinkRejection) -> &'static str {
    match r {
        LinkRejection::NotFound => "Link not found",
        LinkRejection::Inactive => "Link is not active",
        LinkRejection::Expired => "Link has expired",
        LinkRejection::UsedUp => "Link has reached its use limit",
    }
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
    fn machine_code(&self) -> lobby_kit::ErrorCode {
        match self {
            Self::AgentNotFound(_) => ErrorCode::AgentNotFound,
            Self::AgentUnpublished => ErrorCode::AgentUnpublished,
            Self::OriginRefused => ErrorCode::AuthFailed,
            Self::AccountNotFound(_) => ErrorCode::AccountNotFound,
            Self::ProjectNotFound(_) => ErrorCode::ProjectNotFound,
            Self::AlreadyExists(_) => ErrorCode::AlreadyExists,
            Self::InvalidArgument { .. } => ErrorCode::InvalidRequest,
            Self::Conflict => ErrorCode::Conflict,
            Self::KeyRejected(r) => match r {
                KeyRejection::Missing => ErrorCode::KeyMissing,
                KeyRejection::Malformed => ErrorCode::KeyMalformed,
                KeyRejection::Invalid => ErrorCode::KeyInvalid,
                KeyRejection::Inactive => ErrorCode::KeyInactive,
                KeyRejection::Revoked => ErrorCode::KeyRevoked,
                KeyRejection::Expired => ErrorCode::KeyExpired,
                KeyRejection::ScopeDenied => ErrorCode::ScopeDenied,
            },
            Self::TokenRejected(r) => match r {
                TokenRejection::Missing => ErrorCode::TokenMissing,
                TokenRejection::Malformed => ErrorCode::TokenMalformed,
                TokenRejection::Invalid => ErrorCode::TokenInvalid,
                TokenRejection::Expired => ErrorCode::TokenExpired,
            },
            Self::LinkRejected(r) => match r {
                LinkRejection::NotFound => ErrorCode::LinkNotFound,
                LinkRejection::Inactive => ErrorCode::LinkInactive,
                LinkRejection::Expired => ErrorCode::LinkExpired,
                LinkRejection::UsedUp => ErrorCode::LinkUsedUp,
            },
            Self::KeyNotFound(_) => ErrorCode::KeyNotFound,
            Self::DatabaseIdMismatch => ErrorCode::DatabaseIdMismatch,
            Self::AvatarMissing => ErrorCode::AvatarMissing,
            Self::Store(e) => lobby_kit::redis_conn::error_code(e),
            Self::Corrupt(_) | Self::Internal(_) => ErrorCode::InternalError,
        }
    }

    fn grpc_code(&self) -> Code {
        match self {
            Self::AgentNotFound(_)
            | Self::AccountNotFound(_)
            | Self::ProjectNotFound(_)
            | Self::KeyNotFound(_) => Code::NotFound,
            Self::AgentUnpublished | Self::OriginRefused | Self::DatabaseIdMismatch => {
                Code::PermissionDenied
            }
            Self::AlreadyExists(_) => Code::AlreadyExists,
            Self::InvalidArgument { .. } => Code::InvalidArgument,
            Self::Conflict => Code::Aborted,
            Self::KeyRejected(
                KeyRejection::Inactive | KeyRejection::Revoked | KeyRejection::ScopeDenied,
            ) => Code::PermissionDenied,
            Self::KeyRejected(_) | Self::TokenRejected(_) => Code::Unauthenticated,
            Self::LinkRejected(LinkRejection::NotFound) => Code::NotFound,
            Self::LinkRejected(_) | Self::AvatarMissing => Code::FailedPrecondition,
            Self::Store(e) => lobby_kit::redis_conn::grpc_code(e),
            Self::Corrupt(_) | Self::Internal(_) => Code::Internal,
        }
    }
}

impl From<AuthError> for tonic::Status {
    fn from(e: AuthError) -> Self {
        lobby_kit::grpc::to_status(&e)
    }
}
