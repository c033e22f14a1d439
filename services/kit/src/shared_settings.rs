//! Settings more than one service reads, each declared here once.

use crate::{ConfigError, Settings};

/// Where each service answers when it runs in another process.
#[derive(Debug, Clone)]
pub struct PeerUrls {
    pub auth: String,
    pub session: String,
    pub rooms: String,
    pub artifacts: String,
}

impl PeerUrls {
    pub fn from_settings(s: &Settings) -> Self {
        Self {
            auth: s.string_or("LOBBY_AUTH_URL", "http://127.0.0.1:50051"),
            session: s.string_or("LOBBY_SESSION_URL", "http://127.0.0.1:50052"),
            rooms: s.string_or("LOBBY_ROOMS_URL", "http://127.0.0.1:50053"),
            artifacts: s.string_or("LOBBY_ARTIFACTS_URL", "http://127.0.0.1:50054"),
        }
    }
}

/// The LiveKit API key pair: rooms signs join tokens with it, the gateway
/// verifies LiveKit's webhooks with it. The defaults are `livekit-server
/// --dev`'s pair.
#[derive(Debug, Clone)]
pub struct LiveKitKeys {
    pub api_key: String,
    pub api_secret: String,
}

impl LiveKitKeys {
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        use crate::production::dev_default;
        let api_key = s.string_or(
            "LOBBY_LIVEKIT_API_KEY",
            dev_default("LOBBY_LIVEKIT_API_KEY"),
        );
        let api_secret = s.string_or(
            "LOBBY_LIVEKIT_API_SECRET",
            dev_default("LOBBY_LIVEKIT_API_SECRET"),
        );
        Settings::ensure(
            "LOBBY_LIVEKIT_API_KEY",
            !api_key.is_empty(),
            "must not be empty",
        )?;
        Settings::ensure(
            "LOBBY_LIVEKIT_API_SECRET",
            !api_secret.is_empty(),
            "must not be empty",
        )?;
        Ok(Self {
            api_key,
            api_secret,
        })
    }
}

/// `LOBBY_REGION`: the region this process serves.
pub fn this_region(s: &Settings) -> String {
    s.string_or("LOBBY_REGION", "local")
}

/// `LOBBY_ENV`: whether this process runs in production, where development
/// defaults and debugging switches are refused.
pub fn is_production(s: &Settings) -> Result<bool, ConfigError> {
    match s.string_or("LOBBY_ENV", "development").as_str() {
        "development" => Ok(false),
        "production" => Ok(true),
        other => Err(ConfigError::Invalid {
            setting: "LOBBY_ENV".into(),
            reason: format!("{other:?} is not development or production"),
        }),
    }
}

/// `LOBBY_AVATAR_ALLOW_PRIVATE_ADDRESSES`: whether avatar fetches may reach
/// private and loopback addresses (tests only; production refuses it).
pub fn avatar_allows_private_addresses(s: &Settings) -> Result<bool, ConfigError> {
    s.get_or("LOBBY_AVATAR_ALLOW_PRIVATE_ADDRESSES", false)
}

/// How a process stops on SIGTERM: how long it keeps serving while
/// unready (`LOBBY_SHUTDOWN_DRAIN_DELAY_MS`), so load balancers stop
/// sending before it stops accepting; and how long it may then drain what
/// is in flight before it exits anyway (`LOBBY_SHUTDOWN_GRACE_MS`).
#[derive(Debug, Clone, Copy)]
pub struct ShutdownSettings {
    pub drain_delay: std::time::Duration,
    pub grace: std::time::Duration,
}

impl ShutdownSettings {
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        let delay: u64 = s.get_or("LOBBY_SHUTDOWN_DRAIN_DELAY_MS", 0)?;
        Settings::ensure(
            "LOBBY_SHUTDOWN_DRAIN_DELAY_MS",
            delay <= 120_000,
            "must be at most 120000",
        )?;
        // Counted from the end of the drain delay; Kubernetes'
        // terminationGracePeriodSeconds must cover both.
        let grace: u64 = s.get_or("LOBBY_SHUTDOWN_GRACE_MS", 5_000)?;
        Settings::ensure(
            "LOBBY_SHUTDOWN_GRACE_MS",
            (1..=600_000).contains(&grace),
            "must be between 1 and 600000",
        )?;
        Ok(Self {
            drain_delay: std::time::Duration::from_millis(delay),
            grace: std::time::Duration::from_millis(grace),
        })
    }
}
