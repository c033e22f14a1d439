//! Lobby's rooms service: admission under Redis-tracked semaphores and
//! minutes, avatar validation, and rooms on the media providers.

pub mod admission;
pub mod avatar;
pub mod error;
pub mod metrics;
pub mod providers;
pub mod service;
pub mod tls;
pub mod workers;

use lobby_kit::{ConfigError, Settings};
use lobby_proto::{rooms::rooms_server::RoomsServer, workers::workers_server::WorkersServer};
use providers::livekit::{LiveKitConfig, LiveKitMode};
use std::{net::SocketAddr, time::Duration};
use tonic::server::NamedService;

#[derive(Debug, Clone)]
pub struct RoomsConfig {
    pub listen: SocketAddr,
    pub redis: lobby_kit::redis_conn::RedisSettings,
    pub livekit: LiveKitConfig,
    pub daily: providers::daily::DailyConfig,
    pub avatar: avatar::AvatarConfig,
    pub workers: WorkersConfig,
    /// Where `/metrics` is served; `None` serves none.
    pub metrics_listen: Option<SocketAddr>,
}

#[derive(Debug, Clone)]
pub struct WorkersConfig {
    /// Workers present it as `authorization: Bearer <token>`; empty refuses all.
    pub token: String,
    pub region: String,
    pub accept_timeout: Duration,
    pub heartbeat_interval: Duration,
    /// A worker silent this long gets no new jobs.
    pub heartbeat_expiry: Duration,
    /// Where the workers' "session ended" reports go.
    pub session_url: String,
    /// How far a heartbeat pushes its sessions' leases (the session
    /// service reads the same LOBBY_SESSION_LEASE_MS).
    pub session_lease: Duration,
}

impl RoomsConfig {
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        Ok(Self {
            listen: s.get_or(
                "LOBBY_ROOMS_LISTEN",
                SocketAddr::from(([127, 0, 0, 1], 50053)),
            )?,
            redis: lobby_kit::redis_conn::RedisSettings::from_settings(s)?,
            livekit: livekit_config(s)?,
            daily: providers::daily::DailyConfig {
                api_url: s.string_or("LOBBY_DAILY_API_URL", "https://api.daily.co/v1"),
                api_key: s.string_or("LOBBY_DAILY_API_KEY", ""),
                request_timeout: Duration::from_millis(
                    s.get_or("LOBBY_DAILY_REQUEST_TIMEOUT_MS", 5000)?,
                ),
            },
            avatar: avatar_config(s)?,
            metrics_listen: lobby_kit::metrics::listen_setting(s, "LOBBY_ROOMS_METRICS_LISTEN")?,
            workers: WorkersConfig {
                token: s.string_or("LOBBY_WORKER_TOKEN", ""),
                region: s.string_or("LOBBY_REGION", "local"),
                accept_timeout: Duration::from_millis(
                    s.get_or("LOBBY_WORKER_ACCEPT_TIMEOUT_MS", 5000)?,
                ),
                heartbeat_interval: Duration::from_millis(
                    s.get_or("LOBBY_WORKER_HEARTBEAT_INTERVAL_MS", 5000)?,
                ),
                heartbeat_expiry: Duration::from_millis(
                    s.get_or("LOBBY_WORKER_HEARTBEAT_EXPIRY_MS", 15_000)?,
                ),
                session_url: s.string_or("LOBBY_SESSION_URL", "http://127.0.0.1:50052"),
                session_lease: Duration::from_millis(s.get_or("LOBBY_SESSION_LEASE_MS", 30_000)?),
            },
        })
    }
}

fn livekit_config(s: &Settings) -> Result<LiveKitConfig, ConfigError> {
    let url = s.string_or("LOBBY_LIVEKIT_URL", "ws://127.0.0.1:7880");
    Settings::ensure(
        "LOBBY_LIVEKIT_URL",
        url.starts_with("ws://") || url.starts_with("wss://"),
        "must be a ws:// or wss:// URL",
    )?;
    // The API answers on the same host over HTTP(S) unless told otherwise.
    let derived_api = url.replacen("ws", "http", 1);
    let api_url = s.string_or("LOBBY_LIVEKIT_API_URL", &derived_api);
    Settings::ensure(
        "LOBBY_LIVEKIT_API_URL",
        api_url.starts_with("http://") || api_url.starts_with("https://"),
        "must be an http:// or https:// URL",
    )?;
    let api_key = s.string_or("LOBBY_LIVEKIT_API_KEY", "devkey");
    let api_secret = s.string_or("LOBBY_LIVEKIT_API_SECRET", "secret");
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
    let token_ttl_seconds: u64 = s.get_or("LOBBY_LIVEKIT_TOKEN_TTL_SECONDS", 3600)?;
    Settings::ensure(
        "LOBBY_LIVEKIT_TOKEN_TTL_SECONDS",
        (60..=86_400).contains(&token_ttl_seconds),
        "must be between 60 and 86400",
    )?;
    Ok(LiveKitConfig {
        mode: s.get_or("LOBBY_LIVEKIT_MODE", LiveKitMode::Server)?,
        url,
        api_url,
        api_key,
        api_secret,
        token_ttl: Duration::from_secs(token_ttl_seconds),
        empty_timeout_seconds: s.get_or("LOBBY_LIVEKIT_EMPTY_TIMEOUT_SECONDS", 300)?,
        max_participants: s.get_or("LOBBY_LIVEKIT_MAX_PARTICIPANTS", 4)?,
        request_timeout: Duration::from_millis(s.get_or("LOBBY_LIVEKIT_REQUEST_TIMEOUT_MS", 5000)?),
    })
}

fn avatar_config(s: &Settings) -> Result<avatar::AvatarConfig, ConfigError> {
    let config = avatar::AvatarConfig {
        max_bytes: s.get_or("LOBBY_AVATAR_MAX_BYTES", 5 << 20)?,
        fetch_timeout: Duration::from_millis(s.get_or("LOBBY_AVATAR_FETCH_TIMEOUT_MS", 5000)?),
        max_redirects: s.get_or("LOBBY_AVATAR_MAX_REDIRECTS", 3)?,
        allow_private_addresses: s.get_or("LOBBY_AVATAR_ALLOW_PRIVATE_ADDRESSES", false)?,
        min_side: s.get_or("LOBBY_AVATAR_MIN_SIDE", 128)?,
        max_side: s.get_or("LOBBY_AVATAR_MAX_SIDE", 4096)?,
        url_cache_seconds: s.get_or("LOBBY_AVATAR_CACHE_SECONDS", 600)?,
    };
    Settings::ensure(
        "LOBBY_AVATAR_MIN_SIDE",
        config.min_side >= 24 && config.min_side <= config.max_side,
        "must be at least 24 and at most LOBBY_AVATAR_MAX_SIDE",
    )?;
    Settings::ensure(
        "LOBBY_AVATAR_MAX_SIDE",
        config.max_side <= 16_384,
        "must be at most 16384",
    )?;
    Settings::ensure(
        "LOBBY_AVATAR_MAX_BYTES",
        config.max_bytes >= 1024,
        "must be at least 1024",
    )?;
    Settings::ensure(
        "LOBBY_AVATAR_CACHE_SECONDS",
        config.url_cache_seconds >= 1,
        "must be positive",
    )?;
    Ok(config)
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Redis(#[from] lobby_kit::redis_conn::RedisConnectError),
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("face detection model: {0}")]
    Model(#[from] std::io::Error),
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("Daily client: {0}")]
    Daily(#[from] reqwest::Error),
    #[error("redis: {0}")]
    RedisUrl(#[from] redis::RedisError),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// Serves the rooms gRPC API until `shutdown` resolves.
pub async fn serve(
    config: RoomsConfig,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let redis_handle = lobby_kit::redis_conn::Redis::open(&config.redis)?;
    let redis = redis_handle.connection();
    let daily = providers::daily::Daily::new(config.daily, tls::client_config()?)?;
    if daily.is_none() {
        tracing::info!("LOBBY_DAILY_API_KEY is not set: agents on Daily cannot start sessions");
    }
    if config.workers.token.is_empty() {
        tracing::warn!(
            "LOBBY_WORKER_TOKEN is not set: no GPU worker can attach, so starts that need one fail"
        );
    }
    let registry = workers::Registry::new(
        redis.clone(),
        i64::try_from(config.workers.heartbeat_expiry.as_millis()).unwrap_or(i64::MAX),
    );
    let dispatcher = workers::Dispatcher::start(
        redis::Client::open(config.redis.url.as_str())?,
        redis_handle.clone(),
    );
    let sessions = lobby_proto::session::sessions_client::SessionsClient::new(
        lobby_kit::grpc::lazy_channel(&config.workers.session_url, Duration::from_secs(10))?,
    );
    let metrics = metrics::RoomsMetrics::new()?;
    let metrics_task = lobby_kit::metrics::spawn(config.metrics_listen, metrics.registry.clone());
    let rooms = service::RoomsService::new(
        admission::Semaphores::new(redis.clone()),
        providers::livekit::LiveKit::new(config.livekit),
        daily,
        avatar::AvatarValidator::new(config.avatar, redis)?,
        service::WorkerAllocation {
            registry: registry.clone(),
            dispatcher: dispatcher.clone(),
            region: config.workers.region,
            accept_timeout: config.workers.accept_timeout,
        },
        metrics,
    );
    let workers_service = workers::stream::WorkersService::new(
        registry,
        dispatcher,
        sessions,
        config.workers.token,
        config.workers.heartbeat_interval,
        config.workers.session_lease,
    );
    let routes = tonic::service::Routes::new(RoomsServer::new(rooms))
        .add_service(WorkersServer::new(workers_service));
    let served = lobby_kit::grpc::serve_routes(
        config.listen,
        routes,
        &[
            <RoomsServer<service::RoomsService> as NamedService>::NAME,
            <WorkersServer<workers::stream::WorkersService> as NamedService>::NAME,
        ],
        redis_handle.readiness(),
        shutdown,
    )
    .await;
    if let Some(task) = metrics_task {
        task.abort();
    }
    served?;
    Ok(())
}
