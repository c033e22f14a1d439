//! Lobby's auth service: the catalog of accounts and agents, and every
//! decision about who may start a session.

pub mod cache;
pub mod catalog;
pub mod credentials;
pub mod error;
mod grpc;
mod handlers;
pub mod links;
pub mod origin;
pub mod service;
pub mod session_jwt;

use lobby_kit::{ConfigError, Settings};
use std::{net::SocketAddr, sync::Arc};

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub listen: SocketAddr,
    /// Mutual TLS for its gRPC (or explicit plaintext).
    pub grpc_tls: lobby_kit::grpc_tls::GrpcTls,
    /// Plaintext health for the kubelet (`LOBBY_PROBES_LISTEN`).
    pub probes_listen: Option<SocketAddr>,
    /// Where `/metrics` is served (`LOBBY_AUTH_METRICS_LISTEN`): the gRPC calls it
    /// answers and its Redis round trips; `None` serves none.
    pub metrics_listen: Option<SocketAddr>,
    pub redis: lobby_kit::redis_conn::RedisSettings,
    /// How it stops on SIGTERM (its binary's drain delay and grace).
    pub shutdown: lobby_kit::shared_settings::ShutdownSettings,
    /// Server secret keyed into every stored key hash and JWT signing key.
    pub key_pepper: String,
    pub session_jwt_ttl_seconds: i64,
    /// How long a cached catalog entry may be served if its invalidation
    /// message was lost, and how much longer while its reload fails
    /// because Redis is away for a moment.
    pub cache: cache::CacheTimes,
    /// How long audit entries are kept (`LOBBY_AUDIT_RETENTION_DAYS`).
    pub audit_retention_ms: i64,
    pub clock: lobby_kit::time::Clock,
    /// The regions an account may be homed in, and this one (new accounts'
    /// default home).
    pub regions: lobby_kit::regions::RegionList,
}

impl AuthConfig {
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        Ok(Self {
            listen: s.get_or(
                "LOBBY_AUTH_LISTEN",
                SocketAddr::from(([127, 0, 0, 1], 50051)),
            )?,
            grpc_tls: lobby_kit::grpc_tls::GrpcTls::from_settings(s)?,
            probes_listen: lobby_kit::grpc::probes_setting(s)?,
            metrics_listen: lobby_kit::metrics::listen_setting(s, "LOBBY_AUTH_METRICS_LISTEN")?,
            redis: lobby_kit::redis_conn::RedisSettings::from_settings(s)?,
            shutdown: lobby_kit::shared_settings::ShutdownSettings::from_settings(s)?,
            key_pepper: {
                let pepper = s.string_or(
                    "LOBBY_AUTH_KEY_PEPPER",
                    lobby_kit::production::dev_default("LOBBY_AUTH_KEY_PEPPER"),
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
            audit_retention_ms: lobby_kit::audit::AuditLog::retention_ms(s)?,
            cache: {
                let ms: u64 = s.get_or("LOBBY_CATALOG_CACHE_TTL_MS", 5_000)?;
                Settings::ensure(
                    "LOBBY_CATALOG_CACHE_TTL_MS",
                    (1..=600_000).contains(&ms),
                    "must be between 1 and 600000",
                )?;
                let stale_ms: u64 = s.get_or("LOBBY_CATALOG_CACHE_STALE_MS", 60_000)?;
                Settings::ensure(
                    "LOBBY_CATALOG_CACHE_STALE_MS",
                    stale_ms <= 3_600_000,
                    "must be at most 3600000",
                )?;
                cache::CacheTimes {
                    ttl: std::time::Duration::from_millis(ms),
                    stale_allowance: std::time::Duration::from_millis(stale_ms),
                }
            },
            clock: lobby_kit::time::Clock::from_settings(s),
            regions: lobby_kit::regions::RegionList::from_settings(s)?,
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

/// A started auth service: what it serves, and whether it can serve now.
/// Dropping it stops its background work.
pub struct Running {
    pub service: Arc<service::AuthService>,
    pub ready: lobby_kit::Readiness,
    _background: lobby_kit::background::Background,
}

/// Builds the auth service on `redis`: its caches follow every replica's
/// writes, and it is ready once a signing key exists and the accounts'
/// admission settings are written.
pub fn start(config: AuthConfig, redis: &lobby_kit::redis_conn::Redis) -> Running {
    let conn = redis.connection();
    let cache = Arc::new(cache::CatalogCache::with_times(config.cache));
    let hasher = credentials::KeyHasher::new(config.key_pepper.as_bytes());
    let tokens = session_jwt::SessionTokens::new(
        conn.clone(),
        hasher.clone(),
        config.session_jwt_ttl_seconds,
        cache.clone(),
    );
    let catalog = catalog::Catalog::new(conn.clone(), cache.clone());
    let mut background = lobby_kit::background::Background::default();
    if let Some(task) = lobby_kit::metrics::spawn_process_only(config.metrics_listen) {
        background.adopt(task);
    }
    background.spawn(cache::follow_changes(redis.clone(), cache.clone()));
    let (started, started_readiness) = lobby_kit::readiness::flag();
    background.spawn({
        let (redis, tokens, catalog, clock) = (
            redis.clone(),
            tokens.clone(),
            catalog.clone(),
            config.clock.clone(),
        );
        async move {
            redis
                .start_up("signing key ring", || tokens.ensure_key(clock.now_ms()))
                .await;
            let synced = redis
                .start_up("admission settings", || catalog.sync_settings())
                .await;
            tracing::info!(
                records = synced,
                "admission settings in step with the catalog"
            );
            started.set(true);
        }
    });
    let service = service::AuthService::new(
        catalog,
        credentials::CredentialStore::new(conn.clone(), hasher, cache.clone()),
        tokens,
        links::LinkStore::new(conn.clone(), cache),
        config.clock,
        lobby_kit::audit::AuditLog::new(
            conn,
            config.audit_retention_ms,
            lobby_kit::audit::AuditWriter::Catalog,
        ),
        config.regions,
    );
    Running {
        service: Arc::new(service),
        ready: lobby_kit::Readiness::all(vec![redis.readiness(), started_readiness]),
        _background: background,
    }
}

/// Serves the auth gRPC API until `shutdown` resolves.
pub async fn serve(
    config: AuthConfig,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let redis = lobby_kit::redis_conn::Redis::open(&config.redis)?;
    let listener =
        lobby_kit::grpc::Listener::internal(config.listen, &config.grpc_tls, config.probes_listen);
    let running = start(config, &redis);
    lobby_kit::grpc::serve(
        listener,
        lobby_proto::auth::auth_server::AuthServer::from_arc(running.service.clone()),
        running.ready.clone(),
        shutdown,
    )
    .await?;
    Ok(())
}
