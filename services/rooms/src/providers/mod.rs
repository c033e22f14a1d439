//! Media providers that host the WebRTC rooms.

pub mod daily;
pub mod livekit;

/// Why a provider could not open, join or close a room.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("{provider} refused or was unreachable: {reason}")]
    Unavailable {
        provider: &'static str,
        reason: String,
    },
    #[error("{provider} token could not be minted: {reason}")]
    Token {
        provider: &'static str,
        reason: String,
    },
    #[error("provider {0} is not enabled on this deployment")]
    Disabled(&'static str),
}

/// A room opened for a session, and the end user's way into it.
#[derive(Debug, Clone)]
pub struct OpenedRoom {
    pub room_url: String,
    pub token: String,
}
