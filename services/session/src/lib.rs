//! Lobby's session service: session records and their lifecycle
//! (`starting → active → ended | failed`).

pub mod error;
pub mod records;
pub mod service;

use lobby_kit::{ConfigError, Settings};
use std::{net::SocketAddr, time::Duration};

#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub listen: SocketAddr,
    pub redis_url: String,
    pub rooms_url: String,
    pub rooms_timeout: Duration,
    /// How long the record of a start that failed (refused, no room) is kept.
    pub failed_record_ttl_seconds: i64,
}

impl SessionConfig {
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        Ok(Self {
            listen: s.get_or(
                "LOBBY_SESSION_LISTEN",
                SocketAddr::from(([127, 0, 0, 1], 50052)),
            )?,
            redis_url: s.string_or("LOBBY_REDIS_URL", "redis://127.0.0.1:6379"),
            rooms_url: s.string_or("LOBBY_ROOMS_URL", "http://127.0.0.1:50053"),
            rooms_timeout: Duration::from_millis(s.get_or("LOBBY_ROOMS_TIMEOUT_MS", 15_000)?),
            failed_record_ttl_seconds: {
                let ttl = s.get_or("LOBBY_FAILED_SESSION_TTL_SECONDS", 7 * 24 * 3600)?;
                Settings::ensure(
                    "LOBBY_FAILED_SESSION_TTL_SECONDS",
                    ttl > 0,
                    "must be positive",
                )?;
                ttl
            },
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Redis(#[from] lobby_kit::redis_conn::RedisConnectError),
    #[error("gRPC: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Serves the session gRPC API until `shutdown` resolves.
pub async fn serve(
    config: SessionConfig,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let redis = lobby_kit::redis_conn::connect(&config.redis_url).await?;
    let rooms = lobby_proto::rooms::rooms_client::RoomsClient::new(lobby_kit::grpc::lazy_channel(
        &config.rooms_url,
        config.rooms_timeout,
    )?);
    let service = service::SessionService::new(
        records::SessionStore::new(redis),
        rooms,
        config.failed_record_ttl_seconds,
    );
    lobby_kit::grpc::serve(
        config.listen,
        lobby_proto::session::sessions_server::SessionsServer::new(service),
        shutdown,
    )
    .await?;
    Ok(())
}
