//! LiveKit: rooms through the RoomService Twirp API, tokens as LiveKit JWTs.

use super::{OpenedRoom, ProviderError};
use livekit_api::services::{ServerError, ServerErrorCode};
use livekit_api::{
    access_token::{AccessToken, VideoGrants},
    services::{
        room::{CreateRoomOptions, RoomClient},
        ServiceError,
    },
};
use std::time::Duration;

const NAME: &str = "livekit";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveKitMode {
    /// Create rooms on the server (production, and `make run` with Go).
    Server,
    /// Mint tokens only; the room is created by LiveKit on first join. Used
    /// where no server runs (a machine without Go) and by the benchmark.
    TokenOnly,
}

/// When a LiveKit room comes to exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomCreation {
    /// `CreateRoom` before the start answers: the room exists (with our
    /// settings) before anyone joins, and a refusal by LiveKit fails the start.
    Eager,
    /// No call at start: the settings travel in the join token and LiveKit
    /// creates the room on the first join. Saves a round trip per start; the
    /// room does not exist until someone joins.
    Lazy,
}

impl std::str::FromStr for RoomCreation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "eager" => Ok(Self::Eager),
            "lazy" => Ok(Self::Lazy),
            other => Err(format!("{other:?} is not eager or lazy")),
        }
    }
}

impl std::fmt::Display for RoomCreation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Eager => "eager",
            Self::Lazy => "lazy",
        })
    }
}

impl std::fmt::Display for LiveKitMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Server => "server",
            Self::TokenOnly => "token_only",
        })
    }
}

impl std::str::FromStr for LiveKitMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "server" => Ok(Self::Server),
            "token_only" => Ok(Self::TokenOnly),
            other => Err(format!("{other:?} is not server or token_only")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct LiveKitConfig {
    pub mode: LiveKitMode,
    pub room_creation: RoomCreation,
    /// What clients connect to (`ws://…`/`wss://…`), returned as `room_url`.
    pub url: String,
    /// Where the RoomService API answers (`http(s)://…`).
    pub api_url: String,
    pub api_key: String,
    pub api_secret: String,
    pub token_ttl: Duration,
    /// Seconds an empty room lives before LiveKit closes it.
    pub empty_timeout_seconds: u32,
    pub max_participants: u32,
    pub request_timeout: Duration,
}

pub struct LiveKit {
    config: LiveKitConfig,
    rooms: Option<RoomClient>,
}

impl LiveKit {
    pub fn new(config: LiveKitConfig) -> Self {
        let rooms = (config.mode == LiveKitMode::Server).then(|| {
            RoomClient::with_api_key(&config.api_url, &config.api_key, &config.api_secret)
                .with_failover(false)
                .with_request_timeout(config.request_timeout)
        });
        if rooms.is_none() {
            tracing::warn!(
                url = %config.url,
                "LiveKit token-only mode: join tokens are minted but no room is created on a server"
            );
        }
        Self { config, rooms }
    }

    /// Creates the room (server mode, eager) and mints the participant's
    /// join token; a lazy room is left to LiveKit to create on first join.
    pub async fn open_room(&self, room: &str, identity: &str) -> Result<OpenedRoom, ProviderError> {
        let lazy = self.config.room_creation == RoomCreation::Lazy;
        if let (Some(client), false) = (&self.rooms, lazy) {
            let options = CreateRoomOptions {
                empty_timeout: self.config.empty_timeout_seconds,
                max_participants: self.config.max_participants,
                ..Default::default()
            };
            client
                .create_room(room, options)
                .await
                .map_err(|e| ProviderError::Unavailable {
                    provider: NAME,
                    reason: e.to_string(),
                })?;
        }
        let token = self.join_token(room, identity)?;
        Ok(OpenedRoom {
            room_url: self.config.url.clone(),
            token,
        })
    }

    /// A token that lets `identity` join `room` and nothing else.
    pub fn join_token(&self, room: &str, identity: &str) -> Result<String, ProviderError> {
        self.token(room, identity, false)
    }

    /// The avatar agent's token: its own identity, marked as an agent
    /// participant, allowed to update its own metadata, same room only.
    pub fn agent_token(&self, room: &str, identity: &str) -> Result<String, ProviderError> {
        self.token(room, identity, true)
    }

    fn token(&self, room: &str, identity: &str, agent: bool) -> Result<String, ProviderError> {
        // The room's settings ride in every token: a lazy room is created
        // from them by whoever joins first, and an eager one ignores them.
        let room_config = livekit_protocol::RoomConfiguration {
            name: room.to_owned(),
            empty_timeout: self.config.empty_timeout_seconds,
            max_participants: self.config.max_participants,
            ..Default::default()
        };
        AccessToken::with_api_key(&self.config.api_key, &self.config.api_secret)
            .with_room_config(room_config)
            .with_identity(identity)
            .with_name(identity)
            .with_ttl(self.config.token_ttl)
            .with_grants(VideoGrants {
                room_join: true,
                room: room.to_owned(),
                can_publish: Some(true),
                can_subscribe: Some(true),
                can_publish_data: Some(true),
                can_update_own_metadata: agent.then_some(true),
                agent,
                ..Default::default()
            })
            .to_jwt()
            .map_err(|e| ProviderError::Token {
                provider: NAME,
                reason: e.to_string(),
            })
    }

    /// Whether rooms come to exist only on their first join.
    pub fn lazy(&self) -> bool {
        self.rooms.is_some() && self.config.room_creation == RoomCreation::Lazy
    }

    /// Which of `names` exist on the server; `None` in token-only mode, where
    /// rooms are never created and so their absence means nothing.
    pub async fn existing_rooms(
        &self,
        names: Vec<String>,
    ) -> Result<Option<Vec<String>>, ProviderError> {
        let Some(client) = &self.rooms else {
            return Ok(None);
        };
        let rooms = client
            .list_rooms(names)
            .await
            .map_err(|e| ProviderError::Unavailable {
                provider: NAME,
                reason: e.to_string(),
            })?;
        Ok(Some(rooms.into_iter().map(|r| r.name).collect()))
    }

    /// (users, agents) in `room`, or `None` when the room does not exist.
    pub async fn occupancy(
        &self,
        room: &str,
        agent_identity: &str,
    ) -> Result<Option<(u32, u32)>, ProviderError> {
        let Some(client) = &self.rooms else {
            return Ok(None);
        };
        match client.list_participants(room).await {
            Ok(participants) => {
                let agents = participants
                    .iter()
                    .filter(|p| {
                        p.kind == livekit_protocol::participant_info::Kind::Agent as i32
                            || (!agent_identity.is_empty() && p.identity == agent_identity)
                    })
                    .count();
                let users = participants.len() - agents;
                Ok(Some((
                    u32::try_from(users).unwrap_or(u32::MAX),
                    u32::try_from(agents).unwrap_or(u32::MAX),
                )))
            }
            Err(ServiceError::Twirp(ServerError::Twirp(code)))
                if code.code == ServerErrorCode::NOT_FOUND =>
            {
                Ok(None)
            }
            Err(e) => Err(ProviderError::Unavailable {
                provider: NAME,
                reason: e.to_string(),
            }),
        }
    }

    /// Deletes the room so nobody stays in a session that has ended. A room
    /// that no longer exists counts as deleted.
    pub async fn delete_room(&self, room: &str) -> Result<(), ProviderError> {
        let Some(client) = &self.rooms else {
            return Ok(());
        };
        match client.delete_room(room).await {
            Ok(()) => Ok(()),
            Err(ServiceError::Twirp(ServerError::Twirp(code)))
                if code.code == ServerErrorCode::NOT_FOUND =>
            {
                Ok(())
            }
            Err(e) => Err(ProviderError::Unavailable {
                provider: NAME,
                reason: e.to_string(),
            }),
        }
    }
}
