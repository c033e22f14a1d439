//! Lobby's auth service: the catalog of accounts and agents, and every
//! decision about who may start a session.

pub mod catalog;
pub mod credentials;
pub mod error;
pub mod links;
pub mod origin;
pub mod service;
pub mod session_jwt;

use lobby_kit::{ConfigError, Settings};
use std::net::SocketAddr;

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub listen: SocketAddr,
    pub redis_url: String,
    /// Server secret keyed into every stored key hash and JWT signing key.
    pub key_pepper: String,
    pub session_jwt_ttl_seconds: i64,
    pub clock: lobby_kit::time::Clock,
}

impl AuthConfig {
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        Ok(Self {
            listen: s.get_or(
                "LOBBY_AUTH_LISTEN",
                SocketAddr::from(([127, 0, 0, 1], 50051)),
            )?,
            redis_url: s.string_or("LOBBY_REDIS_URL", "redis://127.0.0.1:6379"),
            key_pepper: {
                let pepper = s.string_or(
                    "LOBBY_AUTH_KEY_PEPPER",
                    "dev-only-pepper-change-me-in-production",
                );
                Settings::ensure(
                    "LOBBY_AUTH_KEY_PEPPER",
                    pepper.len() >= 16,
                    "must be at least 16 characters",
                )?;
                pepper
            },
            session_jwt_ttl_seconds: {
                let ttl = s.get_or("LOBBY_SESSION_JWT_TTL_SECONDS", 3600)?;
                Settings::ensure(
                    "LOBBY_SESSION_JWT_TTL_SECONDS",
                    (60..=86_400).contains(&ttl),
                    "must be between 60 and 86400",
                )?;
                ttl
            },
            clock: lobby_kit::time::Clock::from_settings(s),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Redis(#[from] lobby_kit::redis_conn::RedisConnectError),
    #[error("signing key ring: {0}")]
    KeyRing(#[from] error::AuthError),
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Serves the auth gRPC API until `shutdown` resolves.
pub async fn serve(
    config: AuthConfig,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let redis = lobby_kit::redis_conn::connect(&config.redis_url).await?;
    let hasher = credentials::KeyHasher::new(config.key_pepper.as_bytes());
    let tokens = session_jwt::SessionTokens::new(
        redis.clone(),
        hasher.clone(),
        config.session_jwt_ttl_seconds,
    );
    tokens.ensure_key(config.clock.now_ms()).await?;
    let service = service::AuthService::new(
        catalog::Catalog::new(redis.clone()),
        credentials::CredentialStore::new(redis.clone(), hasher),
        tokens,
        links::LinkStore::new(redis),
        config.clock,
    );
    lobby_kit::grpc::serve(
        config.listen,
        lobby_proto::auth::auth_server::AuthServer::new(service),
        shutdown,
    )
    .await?;
    Ok(())
}
