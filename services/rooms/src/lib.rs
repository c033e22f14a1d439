//! Lobby's rooms service: admission under Redis-tracked semaphores and
//! minutes, avatar validation, and rooms on the media providers.

pub mod avatar;
pub mod error;
pub mod metrics;
pub mod providers;
pub mod service;
pub mod workers;

use lobby_kit::{ConfigError, Settings};
use lobby_proto::{rooms::rooms_server::RoomsServer, workers::workers_server::WorkersServer};
use providers::livekit::{LiveKitConfig, LiveKitMode, RoomCreation};
use std::{net::SocketAddr, time::Duration};

#[derive(Debug, Clone)]
pub struct RoomsConfig {
    /// The rooms API, for session only (mutual TLS).
    pub listen: SocketAddr,
    /// Mutual TLS for the rooms API; its certificate also serves the
    /// workers' door.
    pub grpc_tls: lobby_kit::grpc_tls::GrpcTls,
    /// Plaintext health for the kubelet (`LOBBY_PROBES_LISTEN`).
    pub probes_listen: Option<SocketAddr>,
    pub redis: lobby_kit::redis_conn::RedisSettings,
    /// How it stops on SIGTERM (its binary's drain delay and grace).
    pub shutdown: lobby_kit::shared_settings::ShutdownSettings,
    pub livekit: LiveKitConfig,
    pub daily: providers::daily::DailyConfig,
    pub avatar: avatar::AvatarConfig,
    pub workers: WorkersConfig,
    /// Where `/metrics` is served; `None` serves none.
    pub metrics_listen: Option<SocketAddr>,
}

#[derive(Debug, Clone)]
pub struct WorkersConfig {
    /// The workers' door: the job stream and nothing else, on its own port
    /// (TLS with the rooms certificate; workers present no certificate,
    /// each its own `wkr_` key).
    pub listen: SocketAddr,
    /// How often an attached worker's key is checked again (revoking a
    /// key closes its stream within this).
    pub key_recheck: Duration,
    /// Where auth, which owns worker keys, answers when it runs in another
    /// process, and how long to wait for it.
    pub auth_url: String,
    pub auth_timeout: Duration,
    pub region: String,
    pub accept_timeout: Duration,
    pub heartbeat_interval: Duration,
    /// A worker silent this long gets no new jobs, and its sessions' leases
    /// are no longer renewed.
    pub heartbeat_expiry: Duration,
}

impl RoomsConfig {
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        Ok(Self {
            listen: s.get_or(
                "LOBBY_ROOMS_LISTEN",
                SocketAddr::from(([127, 0, 0, 1], 50053)),
            )?,
            grpc_tls: lobby_kit::grpc_tls::GrpcTls::from_settings(s)?,
            probes_listen: lobby_kit::grpc::probes_setting(s)?,
            redis: lobby_kit::redis_conn::RedisSettings::from_settings(s)?,
            shutdown: lobby_kit::shared_settings::ShutdownSettings::from_settings(s)?,
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
                listen: s.get_or(
                    "LOBBY_WORKERS_LISTEN",
                    SocketAddr::from(([127, 0, 0, 1], 50055)),
                )?,
                key_recheck: Duration::from_millis({
                    let ms: u64 = s.get_or("LOBBY_WORKER_KEY_RECHECK_MS", 10_000)?;
                    Settings::ensure(
                        "LOBBY_WORKER_KEY_RECHECK_MS",
                        (100..=600_000).contains(&ms),
                        "must be between 100 and 600000",
                    )?;
                    ms
                }),
                auth_url: lobby_kit::shared_settings::PeerUrls::from_settings(s).auth,
                auth_timeout: Duration::from_millis(s.get_or("LOBBY_AUTH_TIMEOUT_MS", 5_000)?),
                region: lobby_kit::shared_settings::this_region(s),
                accept_timeout: Duration::from_millis(
                    s.get_or("LOBBY_WORKER_ACCEPT_TIMEOUT_MS", 5000)?,
                ),
                heartbeat_interval: Duration::from_millis(
                    s.get_or("LOBBY_WORKER_HEARTBEAT_INTERVAL_MS", 5000)?,
                ),
                heartbeat_expiry: Duration::from_millis(
                    s.get_or("LOBBY_WORKER_HEARTBEAT_EXPIRY_MS", 15_000)?,
                ),
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
    let keys = lobby_kit::shared_settings::LiveKitKeys::from_settings(s)?;
    let token_ttl_seconds: u64 = s.get_or("LOBBY_LIVEKIT_TOKEN_TTL_SECONDS", 3600)?;
    Settings::ensure(
        "LOBBY_LIVEKIT_TOKEN_TTL_SECONDS",
        (60..=86_400).contains(&token_ttl_seconds),
        "must be between 60 and 86400",
    )?;
    Ok(LiveKitConfig {
        mode: s.get_or("LOBBY_LIVEKIT_MODE", LiveKitMode::Server)?,
        room_creation: s.get_or("LOBBY_LIVEKIT_ROOMS", RoomCreation::Eager)?,
        url,
        api_url,
        api_key: keys.api_key,
        api_secret: keys.api_secret,
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
        allow_private_addresses: lobby_kit::shared_settings::avatar_allows_private_addresses(s)?,
        min_side: s.get_or("LOBBY_AVATAR_MIN_SIDE", 128)?,
        max_side: s.get_or("LOBBY_AVATAR_MAX_SIDE", 4096)?,
        url_cache_seconds: s.get_or("LOBBY_AVATAR_CACHE_SECONDS", 600)?,
        decode_max_bytes: s.get_or("LOBBY_AVATAR_DECODE_MAX_BYTES", 96 << 20)?,
        max_concurrent_decodes: s.get_or("LOBBY_AVATAR_MAX_CONCURRENT_DECODES", 2)?,
    };
    Settings::ensure(
        "LOBBY_AVATAR_MAX_CONCURRENT_DECODES",
        (1..=64).contains(&config.max_concurrent_decodes),
        "must be between 1 and 64",
    )?;
    Settings::ensure(
        "LOBBY_AVATAR_DECODE_MAX_BYTES",
        config.decode_max_bytes >= 1 << 20,
        "must be at least 1 MiB",
    )?;
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
    #[error("redis pub/sub: {0}")]
    RedisUrl(#[from] redis::RedisError),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// A started rooms service: what it serves, and whether it can serve now.
/// Dropping it stops its background work.
pub struct Running {
    pub rooms: std::sync::Arc<service::RoomsService>,
    pub workers: std::sync::Arc<workers::stream::WorkersService>,
    pub ready: lobby_kit::Readiness,
    _background: lobby_kit::background::Background,
}

/// Builds the rooms service on `redis` and starts its background work
/// (worker job dispatch, metrics).
pub fn start(
    config: RoomsConfig,
    redis: &lobby_kit::redis_conn::Redis,
    auth: std::sync::Arc<dyn lobby_proto::auth::auth_server::Auth>,
) -> Result<Running, ServeError> {
    let conn = redis.connection();
    let daily = providers::daily::Daily::new(config.daily, lobby_kit::https::client_config()?)?;
    if daily.is_none() {
        tracing::info!("LOBBY_DAILY_API_KEY is not set: agents on Daily cannot start sessions");
    }
    let registry = workers::Registry::new(
        conn.clone(),
        i64::try_from(config.workers.heartbeat_expiry.as_millis()).unwrap_or(i64::MAX),
    );
    let dispatcher = workers::Dispatcher::start(redis.clone());
    let metrics = metrics::RoomsMetrics::new()?;
    let mut background = lobby_kit::background::Background::default();
    if let Some(task) = lobby_kit::metrics::spawn(config.metrics_listen, metrics.registry.clone()) {
        background.adopt(task);
    }
    background.spawn(metrics::watch_worker_capacity(
        metrics.clone(),
        registry.clone(),
        config.workers.region.clone(),
        redis.readiness(),
        std::time::Duration::from_secs(2),
    ));
    let rooms = service::RoomsService::new(
        providers::livekit::LiveKit::new(config.livekit),
        daily,
        avatar::AvatarValidator::new(config.avatar, conn)?,
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
        auth,
        config.workers.heartbeat_interval,
        config.workers.key_recheck,
    );
    Ok(Running {
        rooms: std::sync::Arc::new(rooms),
        workers: std::sync::Arc::new(workers_service),
        ready: redis.readiness(),
        _background: background,
    })
}

/// Serves the rooms gRPC API on its listener and the workers' stream on
/// theirs until `shutdown` resolves. The two never share a port: a worker
/// reaching its door reaches nothing else.
pub async fn serve(
    config: RoomsConfig,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let redis = lobby_kit::redis_conn::Redis::open(&config.redis)?;
    let (listen, workers_listen, probes) =
        (config.listen, config.workers.listen, config.probes_listen);
    let tls = config.grpc_tls.clone();
    let auth = std::sync::Arc::new(lobby_proto::Remote(
        lobby_proto::auth::auth_client::AuthClient::new(lobby_kit::grpc::lazy_channel(
            &config.workers.auth_url,
            config.workers.auth_timeout,
            &tls,
        )?),
    ));
    let running = start(config, &redis, auth)?;
    let shutdown = futures::future::FutureExt::shared(Box::pin(shutdown));
    let api = lobby_kit::grpc::serve(
        lobby_kit::grpc::Listener::internal(listen, &tls, probes),
        RoomsServer::from_arc(running.rooms.clone()),
        running.ready.clone(),
        shutdown.clone(),
    );
    let door = serve_workers(
        &running,
        lobby_kit::grpc::Listener::workers(workers_listen, &tls),
        shutdown,
    );
    tokio::try_join!(api, door)?;
    Ok(())
}

/// Serves only the workers' stream on `listen`, with server-side TLS: the
/// door GPU workers attach through, in every deployment shape.
pub async fn serve_workers(
    running: &Running,
    listener: lobby_kit::grpc::Listener,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    lobby_kit::grpc::serve(
        listener,
        WorkersServer::from_arc(running.workers.clone()),
        running.ready.clone(),
        shutdown,
    )
    .await
}
