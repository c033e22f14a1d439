use crate::store::Refusal;
use lobby_kit::{
    grpc::{details, CodedError},
    ErrorCode,
};
use tonic::Code;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("Session {0:?} does not exist")]
    NotFound(String),
    #[error("{field}: {reason}")]
    InvalidArgument { field: &'static str, reason: String },
    #[error("Max concurrency reached")]
    ConcurrencyLimit(Refusal),
    #[error("The account has no session minutes left")]
    MinutesExhausted(Refusal),
    #[error("Link has reached its use limit")]
    LinkUsedUp,
    #[error("Agent exists but is currently unpublished")]
    AgentUnpublished,
    #[error("Agent orchestrator is unreachable or returned an error: {0}")]
    Orchestrator(String),
    #[error("The session has ended; it takes no more writes")]
    Ended,
    #[error("The session's event log is full ({0} events)")]
    EventsFull(u32),
    #[error("The session holds as many messages as it may ({0})")]
    MessagesFull(u32),
    #[error("The agent has {limit} open runs, its limit: end one, or let an idle one time out")]
    OpenRunsLimit { limit: u32 },
    #[error("This webhook event was already received")]
    WebhookReplayed,
    #[error("This webhook event is too old to act on")]
    WebhookStale,
    #[error("The account's home region cannot be reached: {0}")]
    HomeUnreachable(String),
    #[error("The account's home region refused the call: {0}")]
    HomeRefused(String),
    #[error("not a region's call: a call token signed with the regions' secret is required")]
    RegionUnauthenticated,
    #[error("state store: {0}")]
    Store(#[from] redis::RedisError),
    #[error("stored session record is unreadable: {0}")]
    Corrupt(String),
    #[error("sealed data: {0}")]
    Vault(#[from] lobby_vault::VaultError),
}

impl SessionError {
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field,
            reason: reason.into(),
        }
    }
}

impl CodedError for SessionError {
    fn machine_code(&self) -> ErrorCode {
        match self {
            Self::NotFound(_) => ErrorCode::SessionNotFound,
            Self::InvalidArgument { .. } => ErrorCode::InvalidRequest,
            Self::ConcurrencyLimit(_) => ErrorCode::ConcurrencyLimit,
            Self::MinutesExhausted(_) => ErrorCode::MinutesExhausted,
            Self::LinkUsedUp => ErrorCode::LinkUsedUp,
            Self::AgentUnpublished => ErrorCode::AgentUnpublished,
            Self::Orchestrator(_) => ErrorCode::OrchestratorError,
            Self::Ended => ErrorCode::SessionEnded,
            Self::EventsFull(_) => ErrorCode::EventsFull,
            Self::MessagesFull(_) => ErrorCode::MessagesFull,
            Self::OpenRunsLimit { .. } => ErrorCode::OpenRunsLimit,
            Self::WebhookReplayed => ErrorCode::WebhookReplayed,
            Self::WebhookStale => ErrorCode::WebhookStale,
            // The account's state lives there: to the caller, the store is away.
            Self::HomeUnreachable(_) => ErrorCode::StoreUnavailable,
            Self::HomeRefused(_) => ErrorCode::InternalError,
            Self::RegionUnauthenticated => ErrorCode::AuthFailed,
            Self::Store(e) => lobby_kit::redis_conn::error_code(e),
            Self::Corrupt(_) => ErrorCode::InternalError,
            Self::Vault(lobby_vault::VaultError::Store(e)) => lobby_kit::redis_conn::error_code(e),
            Self::Vault(_) => ErrorCode::InternalError,
        }
    }

    fn grpc_code(&self) -> Code {
        match self {
            Self::NotFound(_) => Code::NotFound,
            Self::InvalidArgument { .. } => Code::InvalidArgument,
            Self::ConcurrencyLimit(_)
            | Self::MinutesExhausted(_)
            | Self::EventsFull(_)
            | Self::MessagesFull(_)
            | Self::OpenRunsLimit { .. } => Code::ResourceExhausted,
            Self::LinkUsedUp | Self::Ended | Self::WebhookStale => Code::FailedPrecondition,
            Self::AgentUnpublished => Code::PermissionDenied,
            Self::Orchestrator(_) => Code::Unavailable,
            Self::WebhookReplayed => Code::AlreadyExists,
            Self::HomeUnreachable(_) => Code::Unavailable,
            Self::HomeRefused(_) => Code::Internal,
            Self::RegionUnauthenticated => Code::Unauthenticated,
            Self::Store(e) => lobby_kit::redis_conn::grpc_code(e),
            Self::Corrupt(_) => Code::Internal,
            Self::Vault(lobby_vault::VaultError::Store(e)) => lobby_kit::redis_conn::grpc_code(e),
            Self::Vault(_) => Code::Internal,
        }
    }

    fn details(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::ConcurrencyLimit(r) | Self::MinutesExhausted(r) => vec![
                (details::RETRY_AFTER_MS, r.retry_after_ms.to_string()),
                (details::LIMIT, r.limit.to_string()),
                (details::IN_USE, r.in_use.to_string()),
                (details::SCOPE, r.scope.as_str().to_owned()),
            ],
            _ => Vec::new(),
        }
    }
}

impl From<SessionError> for tonic::Status {
    fn from(e: SessionError) -> Self {
        lobby_kit::grpc::to_status(&e)
    }
}
