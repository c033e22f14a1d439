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
    pub redis: lobby_kit::redis_conn::RedisSettings,
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
            redis: lobby_kit::redis_conn::RedisSettings::from_settings(s)?,
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
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Serves the auth gRPC API until `shutdown` resolves.
pub async fn serve(
    config: AuthConfig,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let redis_handle = lobby_kit::redis_conn::Redis::open(&config.redis)?;
    let redis = redis_handle.connection();
    let hasher = credentials::KeyHasher::new(config.key_pepper.as_bytes());
    let tokens = session_jwt::SessionTokens::new(
        redis.clone(),
        hasher.clone(),
        config.session_jwt_ttl_seconds,
    );
    // Ready once Redis answers and a signing key exists (the first start
    // of a deployment makes one).
    let (keys_ready, keys_readiness) = lobby_kit::readiness::flag();
    let ready = lobby_kit::Readiness::all(vec![redis_handle.readiness(), keys_readiness]);
    let ensure_key = {
        let tokens = tokens.clone();
        let clock = config.clock.clone();
        async move {
            redis_handle
                .start_up("signing key ring", || tokens.ensure_key(clock.now_ms()))
                .await;
            keys_ready.set(true);
        }
    };
    let ensure_key = tokio::spawn(ensure_key);
    let service = service::AuthService::new(
        catalog::Catalog::new(redis.clone()),
        credentials::CredentialStore::new(redis.clone(), hasher),
        tokens,
        links::LinkStore::new(redis),
        config.clock,
    );
    let served = lobby_kit::grpc::serve(
        config.listen,
        lobby_proto::auth::auth_server::AuthServer::new(service),
        ready,
        shutdown,
    )
    .await;
    ensure_key.abort();
    Ok(served?)
}
