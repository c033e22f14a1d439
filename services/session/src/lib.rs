//! Lobby's session service: session records and their lifecycle
//! (`starting → active → ended | failed`), and seed-001 run events.

pub mod error;
pub mod ids;
pub mod metrics;
pub mod presence;
pub mod records;
pub mod service;

use lobby_kit::{ConfigError, Settings};
use std::{net::SocketAddr, time::Duration};

#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub listen: SocketAddr,
    pub redis: lobby_kit::redis_conn::RedisSettings,
    pub rooms_url: String,
    pub auth_url: String,
    pub upstream_timeout: Duration,
    pub policy: service::Policy,
    pub clock: lobby_kit::time::Clock,
    /// Where `/metrics` is served; `None` serves none.
    pub metrics_listen: Option<SocketAddr>,
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
        let max_events_per_session = s.get_or("LOBBY_MAX_EVENTS_PER_SESSION", 1000)?;
        Settings::ensure(
            "LOBBY_MAX_EVENTS_PER_SESSION",
            (1..=100_000).contains(&max_events_per_session),
            "must be between 1 and 100000",
        )?;
        Ok(Self {
            listen: s.get_or(
                "LOBBY_SESSION_LISTEN",
                SocketAddr::from(([127, 0, 0, 1], 50052)),
            )?,
            redis: lobby_kit::redis_conn::RedisSettings::from_settings(s)?,
            rooms_url: s.string_or("LOBBY_ROOMS_URL", "http://127.0.0.1:50053"),
            auth_url: s.string_or("LOBBY_AUTH_URL", "http://127.0.0.1:50051"),
            upstream_timeout: Duration::from_millis(s.get_or("LOBBY_ROOMS_TIMEOUT_MS", 15_000)?),
            policy: service::Policy {
                failed_record_ttl_seconds,
                avatar_agent_identity: s
                    .string_or("LOBBY_AVATAR_AGENT_IDENTITY", "lobby-avatar-agent"),
                max_events_per_session,
                reaper_interval: Duration::from_millis(s.get_or("LOBBY_REAPER_INTERVAL_MS", 1000)?),
                reconcile_interval: Duration::from_millis(
                    s.get_or("LOBBY_RECONCILE_INTERVAL_MS", 30_000)?,
                ),
                reconcile_grace_ms: s.get_or("LOBBY_RECONCILE_GRACE_MS", 10_000)?,
                webhook_max_age_ms: s.get_or("LOBBY_WEBHOOK_MAX_AGE_MS", 300_000)?,
                lease_ms: s.get_or("LOBBY_SESSION_LEASE_MS", 30_000)?,
                start_timeout_ms: s.get_or("LOBBY_START_TIMEOUT_MS", 60_000)?,
                join: presence::JoinDeadlines {
                    user_ms: s.get_or("LOBBY_USER_JOIN_TIMEOUT_MS", 120_000)?,
                    agent_ms: s.get_or("LOBBY_AGENT_JOIN_TIMEOUT_MS", 60_000)?,
                },
            },
            clock: lobby_kit::time::Clock::from_settings(s),
            metrics_listen: lobby_kit::metrics::listen_setting(s, "LOBBY_SESSION_METRICS_LISTEN")?,
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

/// Serves the session gRPC API until `shutdown` resolves.
pub async fn serve(
    config: SessionConfig,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let redis = lobby_kit::redis_conn::Redis::open(&config.redis)?;
    let ready = redis.readiness();
    let rooms = lobby_proto::rooms::rooms_client::RoomsClient::new(lobby_kit::grpc::lazy_channel(
        &config.rooms_url,
        config.upstream_timeout,
    )?);
    let auth = lobby_proto::auth::auth_client::AuthClient::new(lobby_kit::grpc::lazy_channel(
        &config.auth_url,
        config.upstream_timeout,
    )?);
    let metrics = metrics::SessionMetrics::new()?;
    let metrics_task = lobby_kit::metrics::spawn(config.metrics_listen, metrics.registry.clone());
    let service = service::SessionService::new(
        records::SessionStore::new(redis.connection()),
        rooms,
        auth,
        config.policy,
        config.clock,
        metrics.clone(),
    );
    let sweeps = [
        tokio::spawn(run_every(
            service.policy().reaper_interval,
            ready.clone(),
            {
                let service = service.clone();
                move || {
                    let service = service.clone();
                    async move { service.reap_due().await.map(|_| ()) }
                }
            },
        )),
        tokio::spawn(run_every(
            service.policy().reconcile_interval,
            ready.clone(),
            {
                let service = service.clone();
                move || {
                    let service = service.clone();
                    async move { service.reconcile().await.map(|_| ()) }
                }
            },
        )),
    ];
    let served = lobby_kit::grpc::serve(
        config.listen,
        lobby_proto::session::sessions_server::SessionsServer::new(service),
        ready,
        shutdown,
    )
    .await;
    for sweep in sweeps.into_iter().chain(metrics_task) {
        sweep.abort();
    }
    served?;
    Ok(())
}

/// Runs `job` every `interval` while Redis answers, until aborted; a failed
/// run is logged and the next one tries again. Several replicas may sweep at
/// once: ending is idempotent, so they only repeat each other's work.
async fn run_every<F, Fut>(interval: Duration, ready: lobby_kit::Readiness, job: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), error::SessionError>>,
{
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        ready.wait().await;
        if let Err(e) = job().await {
            tracing::warn!(error = %e, "background sweep failed; retrying next tick");
        }
    }
}
