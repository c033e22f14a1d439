//! The one set of machine error codes every service answers with (carried in
//! gRPC metadata as `lobby-error-code`) and the gateway maps, exhaustively,
//! to each public contract's status and body.

macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident => $code:literal,)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                }
            }

            pub fn parse(code: &str) -> Option<Self> {
                match code {
                    $($code => Some(ErrorCode::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

error_codes! {
    AgentNotFound => "agent_not_found",
    AgentUnpublished => "agent_unpublished",
    /// The Origin is not on the agent's allowlist (seed 000).
    AuthFailed => "auth_failed",
    ConcurrencyLimit => "concurrency_limit",
    MinutesExhausted => "minutes_exhausted",
    RoomCreationFailed => "room_creation_failed",
    /// A peer service (or every GPU worker) is unreachable or refused.
    OrchestratorError => "orchestrator_error",
    InternalError => "internal_error",
    /// Redis is down, restarting or loading: retry shortly.
    StoreUnavailable => "store_unavailable",
    InvalidRequest => "invalid_request",
    AccountNotFound => "account_not_found",
    SessionNotFound => "session_not_found",
    ArtifactNotFound => "artifact_not_found",
    /// A signed artifact URL that is tampered, expired, or used for another
    /// method or object.
    SignatureInvalid => "signature_invalid",
    /// An artifact upload past its size cap.
    UploadTooLarge => "upload_too_large",
    ProjectNotFound => "project_not_found",
    KeyNotFound => "key_not_found",
    AlreadyExists => "already_exists",
    /// A concurrent update won; retry the read-modify-write.
    Conflict => "conflict",
    KeyMissing => "key_missing",
    KeyMalformed => "key_malformed",
    KeyInvalid => "key_invalid",
    KeyExpired => "key_expired",
    KeyInactive => "key_inactive",
    KeyRevoked => "key_revoked",
    ScopeDenied => "scope_denied",
    /// The records contract's `database-id-hash` is not the key's account's.
    DatabaseIdMismatch => "database_id_mismatch",
    /// A worker key used to register under another worker's id.
    WorkerIdMismatch => "worker_id_mismatch",
    TokenMissing => "token_missing",
    TokenMalformed => "token_malformed",
    TokenInvalid => "token_invalid",
    TokenExpired => "token_expired",
    SessionEnded => "session_ended",
    EventsFull => "events_full",
    /// A session's message list holds as many messages as it may.
    MessagesFull => "messages_full",
    /// An agent has as many open runs (seed 001) as it may.
    OpenRunsLimit => "open_runs_limit",
    LinkNotFound => "link_not_found",
    LinkInactive => "link_inactive",
    LinkExpired => "link_expired",
    LinkUsedUp => "link_used_up",
    AvatarMissing => "avatar_missing",
    AvatarInvalidUrl => "avatar_invalid_url",
    AvatarAddressRefused => "avatar_address_refused",
    AvatarUnreachable => "avatar_unreachable",
    AvatarTimeout => "avatar_timeout",
    AvatarTooLarge => "avatar_too_large",
    AvatarUnsupportedFormat => "avatar_unsupported_format",
    AvatarBadDimensions => "avatar_bad_dimensions",
    AvatarNoFace => "avatar_no_face",
    WebhookReplayed => "webhook_replayed",
    WebhookStale => "webhook_stale",
    /// A webhook whose signature does not verify.
    WebhookUnauthorized => "webhook_unauthorized",
    /// The admin API without a valid admin token.
    Unauthorized => "unauthorized",
    /// Too many requests from one address, or for one agent: retry later.
    RateLimited => "rate_limited",
    /// No such route at the edge.
    RouteNotFound => "not_found",
    /// The route exists, not with this method.
    MethodNotAllowed => "method_not_allowed",
    /// The request took longer than the edge allows.
    Timeout => "timeout",
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(*code));
        }
        assert_eq!(ErrorCode::parse("teapot"), None);
    }
}
