//! Lobby's auth service: the catalog of accounts and agents, and every
//! decision about who may start a session.

pub mod catalog;
pub mod error;
pub mod origin;
pub mod service;

use lobby_kit::{ConfigError, Settings};
use std::net::SocketAddr;

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub listen: SocketAddr,
    pub redis_url: String,
}

impl AuthConfig {
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        Ok(Self {
            listen: s.get_or(
                "LOBBY_AUTH_LISTEN",
                SocketAddr::from(([127, 0, 0, 1], 50051)),
            )?,
            redis_url: s.string_or("LOBBY_REDIS_URL", "redis://127.0.0.1:6379"),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Redis(#[from] lobby_kit::redis_conn::RedisConnectError),
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Serves the auth gRPC API until `shutdown` resolves.
pub async fn serve(
    config: AuthConfig,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let redis = lobby_kit::redis_conn::connect(&config.redis_url).await?;
    let service = service::AuthService::new(catalog::Catalog::new(redis));
    lobby_kit::grpc::serve(
        config.listen,
        lobby_proto::auth::auth_server::AuthServer::new(service),
        shutdown,
    )
    .await?;
    Ok(())
}
