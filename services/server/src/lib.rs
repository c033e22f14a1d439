//! Every Lobby service in one process, for small deployments and `make run`.
//!
//! `LOBBY_PEERS` chooses how the services reach each other, with one code
//! path either way (the callers hold the service traits):
//! - `in_process` (the default): direct calls through the generated service
//!   traits, no serialisation, no network. Only the gateway and the workers'
//!   stream listen.
//! - `grpc`: each service on its own port, calling the others over gRPC, as
//!   separate processes do in Kubernetes.

use lobby_kit::{
    grpc::ReadinessProbe, redis_conn::Redis, shutdown::Shutdown, ConfigError, Settings,
};
use lobby_proto::{auth::auth_server::Auth, Remote};
use std::{net::SocketAddr, sync::Arc, time::Duration};
use tokio::task::JoinSet;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How the services in this process reach each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peers {
    InProcess,
    Grpc,
}

impl std::fmt::Display for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::InProcess => "in_process",
            Self::Grpc => "grpc",
        })
    }
}

impl std::str::FromStr for Peers {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "in_process" => Ok(Self::InProcess),
            "grpc" => Ok(Self::Grpc),
            other => Err(format!("{other:?} is not in_process or grpc")),
        }
    }
}

/// Every service's own config, all parsed before anything starts, so a bad
/// setting stops everything before anything listens.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub peers: Peers,
    pub auth: lobby_auth::AuthConfig,
    pub session: lobby_session::SessionConfig,
    pub rooms: lobby_rooms::RoomsConfig,
    pub artifacts: lobby_artifacts::ArtifactsConfig,
    pub gateway: lobby_gateway::GatewayConfig,
    /// The drain delay, and how long services may drain after it.
    pub shutdown: lobby_kit::shared_settings::ShutdownSettings,
}

impl ServerConfig {
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        Ok(Self {
            peers: s.get_or("LOBBY_PEERS", Peers::InProcess)?,
            auth: lobby_auth::AuthConfig::from_settings(s)?,
            session: lobby_session::SessionConfig::from_settings(s)?,
            rooms: lobby_rooms::RoomsConfig::from_settings(s)?,
            artifacts: lobby_artifacts::ArtifactsConfig::from_settings(s)?,
            gateway: lobby_gateway::GatewayConfig::from_settings(s)?,
            shutdown: lobby_kit::shared_settings::ShutdownSettings::from_settings(s)?,
        })
    }
}

/// A started server: its serving tasks, and auth (in-process or remote) for
/// whoever seeds data into it.
pub struct Started {
    pub tasks: JoinSet<(&'static str, Result<(), BoxError>)>,
    pub auth: Arc<dyn Auth>,
    pub auth_ready: ReadinessProbe,
    pub gateway: SocketAddr,
    /// In-process services and their background work live as long as this.
    _running: Option<InProcess>,
}

struct InProcess {
    _auth: lobby_auth::Running,
    _session: Arc<lobby_session::Running>,
    _rooms: Arc<lobby_rooms::Running>,
    _artifacts: Arc<lobby_artifacts::Running>,
}

fn named<E: Into<BoxError>>(
    name: &'static str,
    done: Result<(), E>,
) -> (&'static str, Result<(), BoxError>) {
    (name, done.map_err(Into::into))
}

/// Starts every service as `config.peers` says.
pub async fn start(config: ServerConfig, shutdown: &Shutdown) -> Result<Started, BoxError> {
    let gateway_addr = config.gateway.listen;
    let mut tasks = JoinSet::new();
    match config.peers {
        Peers::Grpc => {
            let auth_url = format!("https://{}", config.auth.listen);
            let config_tls = config.auth.grpc_tls.clone();
            let s = shutdown.clone();
            tasks.spawn(
                async move { named("auth", lobby_auth::serve(config.auth, s.wait()).await) },
            );
            let s = shutdown.clone();
            tasks.spawn(async move {
                named(
                    "session",
                    lobby_session::serve(config.session, s.wait()).await,
                )
            });
            let s = shutdown.clone();
            tasks.spawn(
                async move { named("rooms", lobby_rooms::serve(config.rooms, s.wait()).await) },
            );
            let s = shutdown.clone();
            tasks.spawn(async move {
                named(
                    "artifacts",
                    lobby_artifacts::serve(config.artifacts, s.wait()).await,
                )
            });
            let s = shutdown.clone();
            tasks.spawn(async move {
                named(
                    "gateway",
                    lobby_gateway::serve(config.gateway, s.wait()).await,
                )
            });
            let channel =
                lobby_kit::grpc::lazy_channel(&auth_url, Duration::from_secs(5), &config_tls)?;
            Ok(Started {
                tasks,
                auth: Arc::new(Remote(lobby_proto::auth::auth_client::AuthClient::new(
                    channel.clone(),
                ))),
                auth_ready: ReadinessProbe::Remote(channel),
                gateway: gateway_addr,
                _running: None,
            })
        }
        Peers::InProcess => {
            // One Redis connection (and one watcher) for every service.
            let redis = Redis::open(&config.auth.redis)?;
            let auth = lobby_auth::start(config.auth, &redis);
            let workers_listener = lobby_kit::grpc::Listener::workers(
                config.rooms.workers.listen,
                &config.rooms.grpc_tls,
            );
            let rooms = Arc::new(lobby_rooms::start(
                config.rooms,
                &redis,
                auth.service.clone(),
            )?);
            let records_door = lobby_kit::grpc::Listener::workers(
                config.session.workers_listen,
                &config.session.grpc_tls,
            );
            let regions_door = lobby_kit::grpc::Listener::workers(
                config.session.regions_listen,
                &config.session.grpc_tls,
            );
            let artifacts_listener = lobby_kit::grpc::Listener::internal(
                config.artifacts.listen,
                &config.artifacts.grpc_tls,
                None,
            );
            let artifacts = Arc::new(lobby_artifacts::start(config.artifacts, &redis)?);
            let session = Arc::new(lobby_session::start(
                config.session,
                &redis,
                lobby_session::Peers {
                    rooms: rooms.rooms.clone(),
                    auth: auth.service.clone(),
                    artifacts: artifacts.service.clone(),
                },
            )?);
            let services = lobby_gateway::clients::Services {
                auth: auth.service.clone(),
                session: session.service.clone(),
                artifacts: artifacts.service.clone(),
                health: vec![
                    ("auth", ReadinessProbe::Local(auth.ready.clone())),
                    ("session", ReadinessProbe::Local(session.ready.clone())),
                    ("rooms", ReadinessProbe::Local(rooms.ready.clone())),
                    ("artifacts", ReadinessProbe::Local(artifacts.ready.clone())),
                ],
            };
            // Only what lives outside this process listens: the public edge,
            // the GPU workers' stream, artifact uploads, and (with several
            // regions) the other regions' calls.
            let s = shutdown.clone();
            let gateway_redis = redis.clone();
            tasks.spawn(async move {
                named(
                    "gateway",
                    lobby_gateway::serve_with(config.gateway, services, gateway_redis, s.wait())
                        .await,
                )
            });
            let s = shutdown.clone();
            let workers = rooms.clone();
            tasks.spawn(async move {
                named(
                    "workers",
                    lobby_rooms::serve_workers(&workers, workers_listener, s.wait()).await,
                )
            });
            let s = shutdown.clone();
            let records = session.clone();
            tasks.spawn(async move {
                named(
                    "worker records",
                    lobby_session::serve_workers(&records, records_door, s.wait()).await,
                )
            });
            let s = shutdown.clone();
            let home = session.clone();
            tasks.spawn(async move {
                named(
                    "regions' door",
                    lobby_session::serve_regions(&home, regions_door, s.wait()).await,
                )
            });
            let s = shutdown.clone();
            let served = artifacts.clone();
            tasks.spawn(async move {
                named(
                    "artifacts",
                    lobby_artifacts::serve_on(artifacts_listener, &served, s.wait()).await,
                )
            });
            Ok(Started {
                tasks,
                auth: auth.service.clone(),
                auth_ready: ReadinessProbe::Local(auth.ready.clone()),
                gateway: gateway_addr,
                _running: Some(InProcess {
                    _auth: auth,
                    _session: session,
                    _rooms: rooms,
                    _artifacts: artifacts,
                }),
            })
        }
    }
}

/// Runs until a service fails, or until shutdown: then every service has
/// `grace` to drain (a worker's stream never ends on its own, and must not
/// hold the process).
pub async fn run_until_stopped(
    mut started: Started,
    shutdown: &Shutdown,
    grace: Duration,
) -> Result<(), BoxError> {
    let drained = async {
        while let Some(done) = started.tasks.join_next().await {
            flatten(done)?;
        }
        Ok::<(), BoxError>(())
    };
    lobby_kit::shutdown::serve_with_grace(drained, shutdown, grace)
        .await
        .map(drop)
}

/// A finished service task as an error (a service that stops on its own
/// before shutdown has failed).
pub fn flatten(
    done: Result<(&'static str, Result<(), BoxError>), tokio::task::JoinError>,
) -> Result<(), BoxError> {
    match done {
        Ok((_, Ok(()))) => Ok(()),
        Ok((name, Err(e))) => Err(format!("{name} stopped: {e}").into()),
        Err(e) => Err(format!("a service task panicked: {e}").into()),
    }
}
