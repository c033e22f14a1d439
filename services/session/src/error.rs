use lobby_kit::grpc::CodedError;
use tonic::Code;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("Session {0:?} does not exist")]
    NotFound(String),
    #[error("{field}: {reason}")]
    InvalidArgument { field: &'static str, reason: String },
    #[error("Agent orchestrator is unreachable or returned an error: {0}")]
    Orchestrator(String),
    #[error("Session was ended while it was starting")]
    EndedWhileStarting,
    #[error("The session has ended; it takes no more writes")]
    Ended,
    #[error("The session's event log is full ({0} events)")]
    EventsFull(u32),
    #[error("This webhook event was already received")]
    WebhookReplayed,
    #[error("This webhook event is too old to act on")]
    WebhookStale,
    #[error("state store: {0}")]
    Store(#[from] redis::RedisError),
    #[error("stored session record is unreadable: {0}")]
    Corrupt(String),
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
    fn machine_code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "session_not_found",
            Self::InvalidArgument { .. } => "invalid_request",
            Self::Orchestrator(_) => "orchestrator_error",
            Self::EndedWhileStarting | Self::Ended => "session_ended",
            Self::EventsFull(_) => "events_full",
            Self::WebhookReplayed => "webhook_replayed",
            Self::WebhookStale => "webhook_stale",
            Self::Store(e) => lobby_kit::redis_conn::error_code(e),
            Self::Corrupt(_) => "internal_error",
        }
    }

    fn grpc_code(&self) -> Code {
        match self {
            Self::NotFound(_) => Code::NotFound,
            Self::InvalidArgument { .. } => Code::InvalidArgument,
            Self::Orchestrator(_) => Code::Unavailable,
            Self::EndedWhileStarting => Code::Aborted,
            Self::Ended => Code::FailedPrecondition,
            Self::EventsFull(_) => Code::ResourceExhausted,
            Self::WebhookReplayed => Code::AlreadyExists,
            Self::WebhookStale => Code::FailedPrecondition,
            Self::Store(e) => lobby_kit::redis_conn::grpc_code(e),
            Self::Corrupt(_) => Code::Internal,
        }
    }
}

impl From<SessionError> for tonic::Status {
    fn from(e: SessionError) -> Self {
        lobby_kit::grpc::to_status(&e)
    }
}
