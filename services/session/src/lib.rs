//! Lobby's session service: the one orchestrator of a session's start and
//! end, its records and their lifecycle (`active → ended | failed`), the
//! admission (slots and minutes in Redis), the sweeper, and seed-001 runs.

pub mod agent_runs;
pub mod error;
mod give_back;
pub mod grpc;
pub mod home;
pub mod ids;
pub mod metrics;
pub mod presence;
pub mod provider_events;
pub mod record_store;
pub mod records;
pub mod records_api;
pub mod schedule;
pub mod service;
pub mod start;
pub mod store;
pub mod sweep;
pub mod worker_artifacts;
pub mod worker_records;

use lobby_kit::{ConfigError, Settings};
use std::{net::SocketAddr, sync::Arc, time::Duration};

#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub listen: SocketAddr,
    /// Mutual TLS for its gRPC (or explicit plaintext).
    pub grpc_tls: lobby_kit::grpc_tls::GrpcTls,
    /// Plaintext health for the kubelet (`LOBBY_PROBES_LISTEN`).
    pub probes_listen: Option<SocketAddr>,
    pub redis: lobby_kit::redis_conn::RedisSettings,
    /// How it stops on SIGTERM (its binary's drain delay and grace).
    pub shutdown: lobby_kit::shared_settings::ShutdownSettings,
    /// Where the rooms service answers when it runs in another process.
    pub rooms_url: String,
    /// Where auth answers (it vouches for GPU workers' keys).
    pub auth_url: String,
    /// Where artifacts answers (uploads from workers; deletes).
    pub artifacts_url: String,
    /// The workers' door: what GPU workers write into their sessions'
    /// records, with server-side TLS only.
    pub workers_listen: SocketAddr,
    pub upstream_timeout: Duration,
    pub policy: service::Policy,
    /// What seals the records' personal fields (`LOBBY_MASTER_KEYS`).
    pub master_keys: lobby_vault::MasterKeys,
    /// How long an account's unwrapped keys are held (a data key rotated
    /// on another replica seals this one's writes after at most this).
    pub vault_cache_ttl: Duration,
    /// How long audit entries are kept (`LOBBY_AUDIT_RETENTION_DAYS`).
    pub audit_retention_ms: i64,
    pub clock: lobby_kit::time::Clock,
    /// Where `/metrics` is served; `None` serves none.
    pub metrics_listen: Option<SocketAddr>,
    /// The regions, this one, and the secret their calls are signed with:
    /// sessions of accounts homed elsewhere are admitted there.
    pub regions: lobby_kit::regions::RegionList,
    /// The regions' door: where other regions ask for holds on the accounts
    /// homed here (server TLS; listens only when there are several regions).
    pub regions_listen: SocketAddr,
    /// How long a call to another region's home admission may take.
    pub region_timeout: Duration,
}

impl SessionConfig {
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        let failed_record_ttl_seconds =
            s.get_or("LOBBY_FAILED_SESSION_TTL_SECONDS", 7 * 24 * 3600)?;
        Settings::ensure(
            "LOBBY_FAILED_SESSION_TTL_SECONDS",
            failed_record_ttl_seconds > 0,
            "must be positive",
        )?;
        let ended_record_ttl_seconds =
            s.get_or("LOBBY_ENDED_SESSION_TTL_SECONDS", 30 * 24 * 3600)?;
        Settings::ensure(
            "LOBBY_ENDED_SESSION_TTL_SECONDS",
            ended_record_ttl_seconds > 0,
            "must be positive",
        )?;
        let avatar_agent_identity =
            s.string_or("LOBBY_AVATAR_AGENT_IDENTITY", "lobby-avatar-agent");
        // `user-…` is where users' identities live (see participant_identity).
        Settings::ensure(
            "LOBBY_AVATAR_AGENT_IDENTITY",
            !avatar_agent_identity.is_empty() && !avatar_agent_identity.starts_with("user-"),
            "must be set and must not start with user-",
        )?;
        let max_events_per_session = s.get_or("LOBBY_MAX_EVENTS_PER_SESSION", 1000)?;
        Settings::ensure(
            "LOBBY_MAX_EVENTS_PER_SESSION",
            (1..=100_000).contains(&max_events_per_session),
            "must be between 1 and 100000",
        )?;
        let max_open_runs: u32 = s.get_or("LOBBY_AGENT_RUN_MAX_OPEN", 1000)?;
        Settings::ensure(
            "LOBBY_AGENT_RUN_MAX_OPEN",
            (1..=1_000_000).contains(&max_open_runs),
            "must be between 1 and 1000000",
        )?;
        let run_idle_seconds: i64 = s.get_or("LOBBY_AGENT_RUN_IDLE_TIMEOUT_SECONDS", 3600)?;
        Settings::ensure(
            "LOBBY_AGENT_RUN_IDLE_TIMEOUT_SECONDS",
            (1..=30 * 24 * 3600).contains(&run_idle_seconds),
            "must be between 1 and 2592000 (30 days)",
        )?;
        let max_messages_per_session: u32 = s.get_or("LOBBY_MAX_MESSAGES_PER_SESSION", 10_000)?;
        Settings::ensure(
            "LOBBY_MAX_MESSAGES_PER_SESSION",
            (1..=1_000_000).contains(&max_messages_per_session),
            "must be between 1 and 1000000",
        )?;
        let records_list_max: u64 = s.get_or("LOBBY_RECORDS_LIST_MAX", 1000)?;
        Settings::ensure(
            "LOBBY_RECORDS_LIST_MAX",
            (1..=100_000).contains(&records_list_max),
            "must be between 1 and 100000",
        )?;
        let lease_ms: i64 = s.get_or("LOBBY_SESSION_LEASE_MS", 15_000)?;
        Settings::ensure(
            "LOBBY_SESSION_LEASE_MS",
            (300..=3_600_000).contains(&lease_ms),
            "must be between 300 and 3600000",
        )?;
        let retry_after_max_seconds: i64 = s.get_or("LOBBY_RETRY_AFTER_MAX_SECONDS", 15)?;
        Settings::ensure(
            "LOBBY_RETRY_AFTER_MAX_SECONDS",
            (1..=3600).contains(&retry_after_max_seconds),
            "must be between 1 and 3600",
        )?;
        let sweep_interval_ms: u64 = s.get_or("LOBBY_SWEEP_INTERVAL_MS", 1000)?;
        Settings::ensure(
            "LOBBY_SWEEP_INTERVAL_MS",
            (10..=60_000).contains(&sweep_interval_ms),
            "must be between 10 and 60000",
        )?;
        // Leases are renewed once a third of them has passed: the sweeper
        // must come round well within that, or healthy sessions lapse.
        Settings::ensure(
            "LOBBY_SWEEP_INTERVAL_MS",
            i64::try_from(sweep_interval_ms).unwrap_or(i64::MAX) * 3 <= lease_ms,
            "must be at most a third of LOBBY_SESSION_LEASE_MS",
        )?;
        Ok(Self {
            listen: s.get_or(
                "LOBBY_SESSION_LISTEN",
                SocketAddr::from(([127, 0, 0, 1], 50052)),
            )?,
            grpc_tls: lobby_kit::grpc_tls::GrpcTls::from_settings(s)?,
            probes_listen: lobby_kit::grpc::probes_setting(s)?,
            redis: lobby_kit::redis_conn::RedisSettings::from_settings(s)?,
            shutdown: lobby_kit::shared_settings::ShutdownSettings::from_settings(s)?,
            rooms_url: lobby_kit::shared_settings::PeerUrls::from_settings(s).rooms,
            auth_url: lobby_kit::shared_settings::PeerUrls::from_settings(s).auth,
            artifacts_url: lobby_kit::shared_settings::PeerUrls::from_settings(s).artifacts,
            workers_listen: s.get_or(
                "LOBBY_SESSION_WORKERS_LISTEN",
                SocketAddr::from(([127, 0, 0, 1], 50056)),
            )?,
            upstream_timeout: Duration::from_millis(s.get_or("LOBBY_ROOMS_TIMEOUT_MS", 15_000)?),
            policy: service::Policy {
                failed_record_ttl_seconds,
                ended_record_ttl_seconds,
                avatar_agent_identity,
                max_events_per_session,
                records_list_max,
                max_messages_per_session,
                runs: store::RunLimits {
                    max_open: max_open_runs,
                    idle_ms: run_idle_seconds * 1000,
                },
                sweep_interval: Duration::from_millis(sweep_interval_ms),
                reconcile_grace_ms: s.get_or("LOBBY_RECONCILE_GRACE_MS", 10_000)?,
                webhook_max_age_ms: s.get_or("LOBBY_WEBHOOK_MAX_AGE_MS", 300_000)?,
                lease_ms,
                retry_after_max_ms: retry_after_max_seconds * 1000,
                join: presence::JoinDeadlines {
                    user_ms: s.get_or("LOBBY_USER_JOIN_TIMEOUT_MS", 120_000)?,
                    agent_ms: s.get_or("LOBBY_AGENT_JOIN_TIMEOUT_MS", 60_000)?,
                },
            },
            master_keys: lobby_vault::MasterKeys::from_settings(s)?,
            audit_retention_ms: lobby_kit::audit::AuditLog::retention_ms(s)?,
            vault_cache_ttl: Duration::from_millis(s.get_or("LOBBY_VAULT_CACHE_TTL_MS", 5_000)?),
            clock: lobby_kit::time::Clock::from_settings(s),
            metrics_listen: lobby_kit::metrics::listen_setting(s, "LOBBY_SESSION_METRICS_LISTEN")?,
            regions: lobby_kit::regions::RegionList::from_settings(s)?,
            regions_listen: s.get_or(
                "LOBBY_SESSION_REGIONS_LISTEN",
                SocketAddr::from(([127, 0, 0, 1], 50058)),
            )?,
            region_timeout: Duration::from_millis(s.get_or("LOBBY_REGION_CALL_TIMEOUT_MS", 3_000)?),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Redis(#[from] lobby_kit::redis_conn::RedisConnectError),
    #[error("gRPC: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// A started session service: what it serves, and whether it can serve now.
/// Dropping it stops its sweeper.
pub struct Running {
    pub service: Arc<service::SessionService>,
    /// What the workers' door serves.
    pub workers: Arc<worker_records::WorkerRecordsService>,
    pub worker_artifacts: Arc<worker_artifacts::WorkerArtifactsService>,
    /// What other regions ask of this one, as the accounts' home; `None`
    /// with one region.
    pub home_admission: Option<Arc<home::HomeAdmissionService>>,
    pub ready: lobby_kit::Readiness,
    _background: lobby_kit::background::Background,
}

/// The services session calls, each in-process or remote.
pub struct Peers {
    pub rooms: service::RoomsPeer,
    /// It vouches for GPU workers' keys at the workers' door.
    pub auth: worker_records::AuthPeer,
    pub artifacts: service::ArtifactsPeer,
}

/// Builds the session service on `redis`, talking to its peers, and starts
/// its sweeper.
pub fn start(
    config: SessionConfig,
    redis: &lobby_kit::redis_conn::Redis,
    peers: Peers,
) -> Result<Running, ServeError> {
    let metrics = metrics::SessionMetrics::new()?;
    let mut background = lobby_kit::background::Background::default();
    if let Some(task) = lobby_kit::metrics::spawn(config.metrics_listen, metrics.registry.clone()) {
        background.adopt(task);
    }
    let ready = redis.readiness();
    let storage = service::Storage::new(redis, &config);
    background.spawn(metrics::watch_redis(
        metrics.clone(),
        storage.sessions.clone(),
        redis.connection(),
        ready.clone(),
        std::time::Duration::from_secs(2),
    ));
    let home_admission = config.regions.is_multi().then(|| {
        Arc::new(home::HomeAdmissionService::new(
            storage.sessions.clone(),
            config.regions.clone(),
            config.policy.lease_ms,
            config.policy.retry_after_max_ms,
        ))
    });
    let homes = home::HomeRegions::new(
        config.regions.clone(),
        &config.grpc_tls,
        config.region_timeout,
    )?;
    let service = service::SessionService::new(
        storage,
        peers.rooms,
        peers.artifacts,
        config.policy,
        config.clock,
        metrics,
        homes,
    );
    background.spawn(sweep_forever(service.clone(), ready.clone()));
    background.spawn(give_back::settle_forever(
        service.clone(),
        ready.clone(),
        service.policy().sweep_interval,
    ));
    let service = Arc::new(service);
    Ok(Running {
        workers: Arc::new(worker_records::WorkerRecordsService::new(
            service.clone(),
            peers.auth.clone(),
        )),
        worker_artifacts: Arc::new(worker_artifacts::WorkerArtifactsService::new(
            service.clone(),
            peers.auth,
        )),
        service,
        home_admission,
        ready,
        _background: background,
    })
}

/// Serves the session gRPC API until `shutdown` resolves, with rooms in
/// another process.
pub async fn serve(
    config: SessionConfig,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let redis = lobby_kit::redis_conn::Redis::open(&config.redis)?;
    let rooms: service::RoomsPeer = Arc::new(lobby_proto::Remote(
        lobby_proto::rooms::rooms_client::RoomsClient::new(lobby_kit::grpc::lazy_channel(
            &config.rooms_url,
            config.upstream_timeout,
            &config.grpc_tls,
        )?),
    ));
    let auth: worker_records::AuthPeer = Arc::new(lobby_proto::Remote(
        lobby_proto::auth::auth_client::AuthClient::new(lobby_kit::grpc::lazy_channel(
            &config.auth_url,
            config.upstream_timeout,
            &config.grpc_tls,
        )?),
    ));
    let artifacts: service::ArtifactsPeer = Arc::new(lobby_proto::Remote(
        lobby_proto::artifacts::artifacts_client::ArtifactsClient::new(
            lobby_kit::grpc::lazy_channel(
                &config.artifacts_url,
                config.upstream_timeout,
                &config.grpc_tls,
            )?,
        ),
    ));
    let listener =
        lobby_kit::grpc::Listener::internal(config.listen, &config.grpc_tls, config.probes_listen);
    let door = lobby_kit::grpc::Listener::workers(config.workers_listen, &config.grpc_tls);
    let regions_door = lobby_kit::grpc::Listener::workers(config.regions_listen, &config.grpc_tls);
    let running = start(
        config,
        &redis,
        Peers {
            rooms,
            auth,
            artifacts,
        },
    )?;
    let shutdown = futures::future::FutureExt::shared(Box::pin(shutdown));
    let api = lobby_kit::grpc::serve(
        listener,
        lobby_proto::session::sessions_server::SessionsServer::from_arc(running.service.clone()),
        running.ready.clone(),
        shutdown.clone(),
    );
    tokio::try_join!(
        api,
        serve_workers(&running, door, shutdown.clone()),
        serve_regions(&running, regions_door, shutdown)
    )?;
    Ok(())
}

/// Serves other regions' calls on the accounts homed here on `listener`
/// (server TLS; each call carries its region's signed token), when there
/// are several regions; with one, listens on nothing and waits for
/// `shutdown` like the others (a service that returns early has failed).
pub async fn serve_regions(
    running: &Running,
    listener: lobby_kit::grpc::Listener,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let Some(home) = running.home_admission.clone() else {
        shutdown.await;
        return Ok(());
    };
    lobby_kit::grpc::serve(
        listener,
        lobby_proto::regions::home_admission_server::HomeAdmissionServer::from_arc(home),
        running.ready.clone(),
        shutdown,
    )
    .await
}

/// Serves only what GPU workers write into their sessions (records and
/// artifacts) on `listener` (server-side TLS), in every deployment shape.
pub async fn serve_workers(
    running: &Running,
    listener: lobby_kit::grpc::Listener,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    lobby_kit::grpc::serve_two(
        listener,
        lobby_proto::workers::worker_records_server::WorkerRecordsServer::from_arc(
            running.workers.clone(),
        ),
        lobby_proto::workers::worker_artifacts_server::WorkerArtifactsServer::from_arc(
            running.worker_artifacts.clone(),
        ),
        running.ready.clone(),
        shutdown,
    )
    .await
}

/// Sweeps every `sweep_interval` while Redis answers. A failed sweep is
/// logged and the next one tries again.
async fn sweep_forever(service: service::SessionService, ready: lobby_kit::Readiness) {
    let mut ticker = tokio::time::interval(service.policy().sweep_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        ready.wait().await;
        if let Err(e) = service.sweep().await {
            tracing::warn!(error = %e, "sweep failed; retrying next tick");
        }
    }
}
