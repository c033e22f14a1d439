//! gRPC plumbing: machine error codes carried in `tonic::Status` metadata, and
//! serving a service with health and reflection.

use crate::{ErrorCode, Readiness};
use std::net::SocketAddr;
use tonic::{
    metadata::MetadataValue,
    server::NamedService,
    transport::{Server, ServerTlsConfig},
    Code, Status,
};

/// Metadata key holding the stable machine code of an error (`agent_not_found`).
pub const ERROR_CODE_KEY: &str = "lobby-error-code";

/// Metadata keys of a refusal's details (`concurrency_limit`, `minutes_exhausted`).
pub mod details {
    pub const RETRY_AFTER_MS: &str = "lobby-retry-after-ms";
    pub const LIMIT: &str = "lobby-limit";
    pub const IN_USE: &str = "lobby-in-use";
    pub const SCOPE: &str = "lobby-scope";
}

/// Builds a status whose metadata carries `machine_code` and `details`
/// (extra `lobby-<name>` entries such as `lobby-retry-after-ms`).
pub fn status(
    code: Code,
    machine_code: ErrorCode,
    message: impl Into<String>,
    details: &[(&'static str, String)],
) -> Status {
    let mut status = Status::new(code, message);
    let md = status.metadata_mut();
    md.insert(
        ERROR_CODE_KEY,
        MetadataValue::from_static(machine_code.as_str()),
    );
    for (key, value) in details {
        if let Ok(v) = MetadataValue::try_from(value.as_str()) {
            md.insert(*key, v);
        }
    }
    status
}

/// The machine code a Lobby service attached, if any.
pub fn machine_code(status: &Status) -> Option<ErrorCode> {
    ErrorCode::parse(status.metadata().get(ERROR_CODE_KEY)?.to_str().ok()?)
}

/// A detail entry a Lobby service attached, if any.
pub fn detail<'a>(status: &'a Status, key: &str) -> Option<&'a str> {
    status.metadata().get(key)?.to_str().ok()
}

/// Whether a call failed because the peer service could not be reached, as
/// opposed to the peer answering with an error of its own.
/// The metadata a request's id travels in, from the gateway through every
/// gRPC hop, so each service's logs of one request can be found together.
pub const REQUEST_ID_HEADER: &str = "lobby-request-id";

tokio::task_local! {
    /// The id of the request the current task is serving (set by every
    /// gRPC server, see `metrics::GrpcMetrics`).
    static REQUEST_ID: String;
}

/// The id of the request this task serves, if any.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID
        .try_with(Clone::clone)
        .ok()
        .filter(|id| !id.is_empty())
}

/// Runs `fut` as serving request `id` (empty: none).
pub async fn with_request_id<F: std::future::Future>(id: String, fut: F) -> F::Output {
    REQUEST_ID.scope(id, fut).await
}

/// A call to a peer service that carries the id of the request this task
/// serves.
pub fn outgoing<T>(message: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    if let Some(id) = current_request_id().and_then(|id| id.parse().ok()) {
        req.metadata_mut().insert(REQUEST_ID_HEADER, id);
    }
    if crate::telemetry::is_exporting() {
        let mut context = http::HeaderMap::new();
        crate::telemetry::inject_current(&mut context);
        for (name, value) in &context {
            if let (Ok(name), Ok(Ok(value))) = (
                tonic::metadata::AsciiMetadataKey::from_bytes(name.as_str().as_bytes()),
                value.to_str().map(str::parse),
            ) {
                req.metadata_mut().insert(name, value);
            }
        }
    }
    req
}

/// `fut`, to run on a task of its own, still serving this task's request:
/// its id, and its tracing span (whose fields every log line carries).
pub fn carry<F: std::future::Future>(fut: F) -> impl std::future::Future<Output = F::Output> {
    use tracing::Instrument;
    let id = current_request_id().unwrap_or_default();
    REQUEST_ID
        .scope(id, fut)
        .instrument(tracing::Span::current())
}

pub fn is_unreachable(status: &Status) -> bool {
    machine_code(status).is_none()
        && matches!(
            status.code(),
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown
        )
}

/// A lazily connecting channel to a peer service: a peer that is down at
/// start-up makes calls fail with `Unavailable`, not the caller's start-up.
pub fn lazy_channel(
    uri: &str,
    timeout: std::time::Duration,
    tls: &crate::grpc_tls::GrpcTls,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    Ok(tls
        .endpoint(uri)?
        .connect_timeout(std::time::Duration::from_secs(2))
        .timeout(timeout)
        .tcp_nodelay(true)
        .connect_lazy())
}

/// The health-check name that answers `SERVING` while the process can still
/// recover by itself (liveness, `crate::liveness`); every other name, and
/// the empty one, follows readiness.
pub const LIVENESS: &str = "liveness";

/// Where and how a gRPC server listens.
pub struct Listener {
    pub addr: SocketAddr,
    /// With TLS nothing, health included, answers before the handshake.
    pub tls: Option<ServerTlsConfig>,
    /// Reflection describes every Lobby API: for operators on the internal
    /// network, not for the workers' door.
    pub reflection: bool,
    /// A second, plaintext listener serving health and nothing else: the
    /// kubelet's gRPC probes cannot present a client certificate.
    pub probes: Option<SocketAddr>,
}

/// `LOBBY_PROBES_LISTEN`: where a service answers health checks without
/// TLS (unset: nowhere).
pub fn probes_setting(s: &crate::Settings) -> Result<Option<SocketAddr>, crate::ConfigError> {
    crate::metrics::listen_setting(s, "LOBBY_PROBES_LISTEN")
}

impl Listener {
    /// A service's internal API: mutual TLS, with reflection, and health
    /// for the kubelet on `probes` when set.
    pub fn internal(
        addr: SocketAddr,
        tls: &crate::grpc_tls::GrpcTls,
        probes: Option<SocketAddr>,
    ) -> Self {
        Self {
            addr,
            tls: tls.server_config(),
            reflection: true,
            probes,
        }
    }

    /// The GPU workers' door: server TLS only (each worker authenticates
    /// with its own key), no reflection.
    pub fn workers(addr: SocketAddr, tls: &crate::grpc_tls::GrpcTls) -> Self {
        Self {
            addr,
            tls: tls.server_only_config(),
            reflection: false,
            probes: None,
        }
    }
}

/// A generated gRPC server (`FooServer::new(..)`), as tonic serves it.
pub trait GrpcService:
    tower_service::Service<
        http::Request<tonic::body::Body>,
        Response = http::Response<tonic::body::Body>,
        Error = std::convert::Infallible,
        Future: Send + 'static,
    > + NamedService
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<T> GrpcService for T where
    T: tower_service::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
            Future: Send + 'static,
        > + NamedService
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// Serves one gRPC service with `grpc.health.v1` (and reflection, when the
/// listener says so) until `shutdown` resolves, draining in-flight calls.
/// Health reports `SERVING` only while `ready` holds.
pub async fn serve<S>(
    listener: Listener,
    service: S,
    ready: Readiness,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error>
where
    S: GrpcService,
{
    serve_routes(
        listener,
        tonic::service::Routes::new(service),
        &[S::NAME],
        ready,
        shutdown,
    )
    .await
}

/// Serves two gRPC services on one listener, like `serve` does one.
pub async fn serve_two<A, B>(
    listener: Listener,
    first: A,
    second: B,
    ready: Readiness,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error>
where
    A: GrpcService,
    B: GrpcService,
{
    serve_routes(
        listener,
        tonic::service::Routes::new(first).add_service(second),
        &[A::NAME, B::NAME],
        ready,
        shutdown,
    )
    .await
}

/// Serves several gRPC services on one listener (named in `names` for
/// their health status), with health, and reflection when the listener
/// says so.
async fn serve_routes(
    listener: Listener,
    routes: tonic::service::Routes,
    names: &[&str],
    ready: Readiness,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let Listener {
        addr,
        tls,
        reflection,
        probes,
    } = listener;
    let with_tls = tls.is_some();
    let mut builder = Server::builder().layer(crate::metrics::GrpcMetricsLayer);
    if let Some(tls) = tls {
        builder = builder.tls_config(tls)?;
    }
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status(LIVENESS, tonic_health::ServingStatus::Serving)
        .await;
    let mut followed: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    followed.push(String::new());
    let health_follows_readiness =
        tokio::spawn(follow_readiness(reporter.clone(), followed.clone(), ready));
    let liveness_follows_heartbeats = tokio::spawn(follow_liveness(reporter.clone()));
    let shutdown = futures::FutureExt::shared(Box::pin(shutdown));
    // Runs beside the API and never decides the outcome: it stops with it.
    let probes_served = {
        let (health, shutdown) = (health.clone(), shutdown.clone());
        async move {
            if let Some(probes_addr) = probes {
                tracing::info!(%probes_addr, "gRPC health for probes listening (plaintext, health only)");
                let served = Server::builder()
                    .add_service(health)
                    .serve_with_shutdown(probes_addr, shutdown)
                    .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, %probes_addr, "the probes listener stopped");
                }
            }
            std::future::pending::<std::convert::Infallible>().await
        }
    };
    let mut routes = routes.add_service(health);
    if reflection {
        match tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(lobby_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
        {
            Ok(reflection) => routes = routes.add_service(reflection),
            Err(e) => tracing::error!(error = %e, "reflection descriptors are invalid"),
        }
    }
    tracing::info!(services = ?names, %addr, tls = with_tls, "gRPC listening");
    let api_served = builder
        .add_routes(routes)
        .serve_with_shutdown(addr, shutdown);
    let served = tokio::select! {
        served = api_served => served,
        never = probes_served => match never {},
    };
    health_follows_readiness.abort();
    liveness_follows_heartbeats.abort();
    served
}

/// How often the `liveness` health status is brought up to date.
const LIVENESS_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// `liveness` is SERVING while every task this process cannot do without
/// still runs (`crate::liveness`): a service waiting for Redis is alive,
/// one whose Redis watcher or cluster topology task is gone is not, and
/// only a restart mends it.
async fn follow_liveness(reporter: tonic_health::server::HealthReporter) {
    let mut was_failing = false;
    loop {
        let failing = crate::liveness::failing();
        if failing.is_some() != was_failing {
            let status = match &failing {
                Some(why) => {
                    tracing::error!(reason = %why, "not alive: the liveness probe will restart this process");
                    tonic_health::ServingStatus::NotServing
                }
                None => tonic_health::ServingStatus::Serving,
            };
            reporter.set_service_status(LIVENESS, status).await;
            was_failing = failing.is_some();
        }
        tokio::time::sleep(LIVENESS_CHECK_EVERY).await;
    }
}

/// Mirrors readiness into the health statuses of `names` while the server
/// runs; from the shutdown signal on, NOT_SERVING whatever readiness says
/// (the server still answers through its drain delay).
async fn follow_readiness(
    reporter: tonic_health::server::HealthReporter,
    names: Vec<String>,
    mut ready: Readiness,
) {
    loop {
        let status = if ready.is_ready() && !crate::shutdown::is_draining() {
            tonic_health::ServingStatus::Serving
        } else {
            tonic_health::ServingStatus::NotServing
        };
        for name in &names {
            reporter.set_service_status(name, status).await;
        }
        if crate::shutdown::is_draining() {
            return;
        }
        tokio::select! {
            () = ready.changed() => {}
            () = crate::shutdown::draining() => {}
        }
    }
}

/// How to ask a service whether it is ready: its readiness in this
/// process, or its gRPC health check in another.
#[derive(Clone)]
pub enum ReadinessProbe {
    Local(Readiness),
    Remote(tonic::transport::Channel),
}

impl ReadinessProbe {
    const CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

    /// `Ok` when ready; otherwise what the service said.
    pub async fn check(&self) -> Result<(), String> {
        use tonic_health::pb::{
            health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
        };
        let channel = match self {
            Self::Local(ready) if ready.is_ready() => return Ok(()),
            Self::Local(_) => return Err("not ready (waiting for Redis or its start-up)".into()),
            Self::Remote(channel) => channel.clone(),
        };
        let mut client = HealthClient::new(channel);
        let call = client.check(HealthCheckRequest {
            service: String::new(),
        });
        match tokio::time::timeout(Self::CHECK_TIMEOUT, call).await {
            Err(_) => Err("timed out".into()),
            Ok(Err(status)) => Err(status.message().to_owned()),
            Ok(Ok(r)) if r.get_ref().status() == ServingStatus::Serving => Ok(()),
            Ok(Ok(r)) => Err(format!("{:?}", r.get_ref().status())),
        }
    }

    /// Waits until ready, checking with capped backoff.
    pub async fn wait(&self, peer: &str) {
        let mut backoff = crate::backoff::Backoff::new(
            std::time::Duration::from_millis(50),
            std::time::Duration::from_secs(2),
        );
        let mut announced = false;
        loop {
            let state = match self.check().await {
                Ok(()) => return,
                Err(state) => state,
            };
            if !announced {
                tracing::info!(peer, state = %state, "waiting for a service to be ready");
                announced = true;
            }
            backoff.wait().await;
        }
    }
}

/// An error with a stable machine code, convertible to a `Status` in one place.
pub trait CodedError: std::fmt::Display {
    /// Stable machine code, e.g. `agent_not_found`.
    fn machine_code(&self) -> ErrorCode;
    fn grpc_code(&self) -> Code;
    /// Extra `lobby-…` metadata entries (retry hints and the like).
    fn details(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
}

/// The one conversion every service uses for its error enum.
pub fn to_status(err: &impl CodedError) -> Status {
    if err.grpc_code() == Code::Internal {
        tracing::error!(code = %err.machine_code(), error = %err, "internal error");
    }
    status(
        err.grpc_code(),
        err.machine_code(),
        err.to_string(),
        &err.details(),
    )
}

/// Re-raises a peer's error with its machine code and `lobby-…` details, and
/// nothing else of the peer's response metadata.
pub fn forward_status(peer: &Status) -> Status {
    let mut status = Status::new(peer.code(), peer.message());
    for entry in peer.metadata().iter() {
        if let tonic::metadata::KeyAndValueRef::Ascii(key, value) = entry {
            if key.as_str().starts_with("lobby-") {
                status.metadata_mut().insert(key.clone(), value.clone());
            }
        }
    }
    status
}
