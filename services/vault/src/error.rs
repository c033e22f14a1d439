#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// A sealed value names a data key this account does not have (yet:
    /// another replica may have just rotated; reload and try once more).
    #[error("data key {0:?} is unknown")]
    UnknownDataKey(String),
    /// A wrapped data key names a master key the configuration lacks.
    #[error("master key {0:?} is not configured")]
    UnknownMasterKey(String),
    /// Not in the sealed format, or it does not authenticate: tampered,
    /// truncated, moved to another record or field, or under another key.
    #[error("sealed value does not open: {0}")]
    Tampered(&'static str),
    #[error("state store: {0}")]
    Store(#[from] redis::RedisError),
}
