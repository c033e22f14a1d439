//! Lobby's gateway: translates the public REST/JSON contracts (the seeds) and
//! the admin API into gRPC calls on the services. No business rule lives
//! here: parse, call the owning service, render.

pub mod actor;
pub mod admin;
pub mod artifact_urls;
pub mod client_addr;
pub mod clients;
pub mod contracts;
pub mod credentials;
pub mod edge;
pub mod error;
pub mod health;
pub mod json_body;
pub mod metrics;
pub mod openapi;
pub mod regions;
pub mod webhooks;

use axum::{
    extract::FromRef,
    http::HeaderName,
    routing::{delete, get, post},
    Router,
};
use lobby_kit::{ConfigError, Settings};
use std::{net::SocketAddr, sync::Arc, time::Duration};
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub listen: SocketAddr,
    pub redis: lobby_kit::redis_conn::RedisSettings,
    pub upstream: lobby_kit::shared_settings::PeerUrls,
    /// The certificate the gateway presents to the services, and the CA it
    /// trusts them by.
    pub grpc_tls: lobby_kit::grpc_tls::GrpcTls,
    pub upstream_timeout: Duration,
    /// Deadlines, the connection limit and the rate limits of the edge.
    pub edge: edge::EdgeConfig,
    /// `/metrics` on an operator listener of its own instead of the public
    /// one (`LOBBY_GATEWAY_METRICS_LISTEN`).
    pub metrics_listen: Option<SocketAddr>,
    /// `None` disables the admin API (every call answers 401).
    pub admin_token: Option<String>,
    /// The LiveKit key pair webhooks are signed with.
    pub livekit: lobby_kit::shared_settings::LiveKitKeys,
    /// Daily's webhook `hmac` secret (base64); `None` refuses Daily webhooks.
    pub daily_webhook_secret: Option<String>,
    /// The regions and how requests are routed among them.
    pub regions: regions::RegionsConfig,
    /// After the shutdown signal, how long the gateway keeps accepting
    /// requests with `/healthz` answering 503 `draining`, so that a load
    /// balancer takes it out of rotation before it stops listening; and how
    /// long in-flight requests may then take to finish.
    pub shutdown: lobby_kit::shared_settings::ShutdownSettings,
}

pub const MIN_ADMIN_TOKEN_CHARS: usize = 16;

impl GatewayConfig {
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        let admin_token = Some(s.string_or("LOBBY_ADMIN_TOKEN", "")).filter(|t| !t.is_empty());
        if let Some(t) = &admin_token {
            Settings::ensure(
                "LOBBY_ADMIN_TOKEN",
                t.len() >= MIN_ADMIN_TOKEN_CHARS,
                "must be at least 16 characters",
            )?;
        }
        Ok(Self {
            listen: s.get_or(
                "LOBBY_GATEWAY_LISTEN",
                SocketAddr::from(([127, 0, 0, 1], 8080)),
            )?,
            redis: lobby_kit::redis_conn::RedisSettings::from_settings(s)?,
            upstream: lobby_kit::shared_settings::PeerUrls::from_settings(s),
            grpc_tls: lobby_kit::grpc_tls::GrpcTls::from_settings(s)?,
            upstream_timeout: Duration::from_millis(s.get_or("LOBBY_UPSTREAM_TIMEOUT_MS", 20_000)?),
            shutdown: lobby_kit::shared_settings::ShutdownSettings::from_settings(s)?,
            edge: edge::EdgeConfig {
                header_read_timeout: Duration::from_millis(positive(
                    s,
                    "LOBBY_HEADER_READ_TIMEOUT_MS",
                    10_000,
                )?),
                request_timeout: Duration::from_millis(positive(
                    s,
                    "LOBBY_REQUEST_TIMEOUT_MS",
                    30_000,
                )?),
                upload_timeout: Duration::from_millis(positive(
                    s,
                    "LOBBY_UPLOAD_TIMEOUT_MS",
                    600_000,
                )?),
                max_connections: positive(s, "LOBBY_MAX_CONNECTIONS", 10_000)? as usize,
                per_ip_per_minute: s.get_or("LOBBY_RATE_LIMIT_IP_PER_MINUTE", 6_000)?,
                per_agent_per_minute: s.get_or("LOBBY_RATE_LIMIT_AGENT_PER_MINUTE", 3_000)?,
                trusted_proxy_hops: {
                    let hops: usize = s.get_or("LOBBY_TRUSTED_PROXY_HOPS", 0)?;
                    Settings::ensure("LOBBY_TRUSTED_PROXY_HOPS", hops <= 8, "must be at most 8")?;
                    hops
                },
            },
            metrics_listen: lobby_kit::metrics::listen_setting(s, "LOBBY_GATEWAY_METRICS_LISTEN")?,
            admin_token,
            livekit: lobby_kit::shared_settings::LiveKitKeys::from_settings(s)?,
            daily_webhook_secret: Some(s.string_or("LOBBY_DAILY_WEBHOOK_SECRET", ""))
                .filter(|v| !v.is_empty()),
            regions: regions::RegionsConfig::from_settings(s)?,
        })
    }
}

/// (`#[track_caller]`: the configuration reference names the line that
/// calls it as the setting's declaration.)
#[track_caller]
fn positive(s: &Settings, key: &str, default: u64) -> Result<u64, ConfigError> {
    let value: u64 = s.get_or(key, default)?;
    Settings::ensure(key, value > 0, "must be positive")?;
    Ok(value)
}

/// What every handler reads; cheap to clone (axum clones it per request).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub services: clients::Services,
    pub redis: lobby_kit::redis_conn::Redis,
    pub admin_token: Option<String>,
    pub metrics: metrics::Metrics,
    pub livekit_webhooks: livekit_api::webhooks::WebhookReceiver,
    pub daily_webhook_secret: Option<String>,
    pub limits: edge::Limits,
    pub request_timeout: Duration,
    pub upload_timeout: Duration,
    pub trusted_proxy_hops: usize,
    pub regions: Arc<regions::Regions>,
}

impl Shared {
    /// The client's address: the one another region's gateway vouched for
    /// when it proxied the request here, or the one the TCP peer and the
    /// trusted proxies give (`client_addr`).
    pub fn client_ip(
        &self,
        peer: std::net::IpAddr,
        headers: &axum::http::HeaderMap,
    ) -> std::net::IpAddr {
        self.regions
            .vouched_client(headers)
            .unwrap_or_else(|| client_addr::client_ip(peer, headers, self.trusted_proxy_hops))
    }
}

impl FromRef<AppState> for metrics::Metrics {
    fn from_ref(state: &AppState) -> Self {
        state.metrics.clone()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("upstream: {0}")]
    Upstream(#[from] tonic::transport::Error),
    #[error(transparent)]
    Redis(#[from] lobby_kit::redis_conn::RedisConnectError),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error(transparent)]
    Regions(#[from] regions::locate::LocatorError),
    #[error("listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The public router; `/metrics` is on it unless `metrics_public` is false
/// (then an operator listener serves it).
pub fn router(state: AppState, metrics_public: bool) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    let mut routes = Router::new()
        .route(
            contracts::ojin::PATH,
            post(contracts::ojin::connect).options(contracts::ojin::preflight),
        )
        .route(contracts::otas::CREATE_PATH, post(contracts::otas::create))
        .route(
            contracts::otas::EVENTS_PATH,
            post(contracts::otas::append_event).get(contracts::otas::list_events),
        )
        .route(contracts::otas::END_PATH, post(contracts::otas::end))
        .route(
            contracts::otas::MESSAGES_PATH,
            post(contracts::otas::append_messages),
        )
        .route(
            contracts::links::START_PATH,
            post(contracts::links::start_session),
        )
        .route(
            contracts::links::LINKS_PATH,
            post(contracts::links::create_link).get(contracts::links::list_links),
        )
        .route(
            contracts::links::LINK_PATH,
            get(contracts::links::get_link).delete(contracts::links::delete_link),
        )
        .route(
            contracts::links::DEACTIVATE_PATH,
            post(contracts::links::deactivate_link),
        )
        .route(
            contracts::records::CREATE_PATH,
            post(contracts::records::create),
        )
        .route("/api/exec/session", post(contracts::records::no_id))
        .route("/api/exec/session/", post(contracts::records::no_id_slash))
        .route(
            contracts::records::LIST_PATH,
            get(contracts::records::list).delete(contracts::records::delete_without_id),
        )
        .route(
            "/api/session/",
            delete(contracts::records::delete_without_id_slash),
        )
        .route(
            contracts::records::DELETE_PATH,
            delete(contracts::records::delete),
        )
        .route(
            contracts::records::AGENT_PATH,
            get(contracts::records::query),
        )
        .route(
            contracts::artifacts::STATUS_PATH,
            get(contracts::artifacts::status),
        )
        .route(
            contracts::artifacts::TRANSCRIPT_PATH,
            get(contracts::artifacts::transcript),
        )
        .route(
            contracts::artifacts::AUDIO_PATH,
            get(contracts::artifacts::audio),
        )
        .route(
            contracts::artifacts::SUMMARY_PATH,
            get(contracts::artifacts::summary),
        )
        .route(
            contracts::artifacts::REGENERATE_PATH,
            post(contracts::artifacts::regenerate),
        )
        .route(
            artifact_urls::PATH,
            get(artifact_urls::download)
                .head(artifact_urls::head)
                .put(artifact_urls::upload),
        )
        .route(regions::routing::LIST_PATH, get(regions::routing::list))
        .route(
            regions::routing::NEAREST_PATH,
            get(regions::routing::nearest),
        )
        .route(openapi::PATH, get(openapi::serve))
        .route(webhooks::livekit::PATH, post(webhooks::livekit::receive))
        .route(webhooks::daily::PATH, post(webhooks::daily::receive))
        .nest("/admin/v1", admin::router(state.clone()))
        .route("/healthz", get(health::healthz))
        .route("/livez", get(health::livez));
    if metrics_public {
        routes = routes.route("/metrics", get(metrics::render));
    }
    routes
        .route_layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::track,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            regions::routing::route,
        ))
        .fallback(edge::not_found)
        .method_not_allowed_fallback(edge::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            edge::guard,
        ))
        .with_state(state)
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

/// The span of one request. Its path is logged with link ids blanked out:
/// a link id is a credential (anyone holding it can start sessions).
fn request_span(req: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    // The path is rebuilt only when the span would be recorded.
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return tracing::Span::none();
    }
    let path: Vec<&str> = req
        .uri()
        .path()
        .split('/')
        .map(|segment| {
            if segment.starts_with("lnk_") {
                "lnk_…"
            } else {
                segment
            }
        })
        .collect();
    tracing::debug_span!("request", method = %req.method(), path = %path.join("/"))
}

/// Serves the gateway until `shutdown` resolves, with every service in
/// another process.
pub async fn serve(
    config: GatewayConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let services =
        clients::Services::remote(&config.upstream, config.upstream_timeout, &config.grpc_tls)?;
    let redis = lobby_kit::redis_conn::Redis::open(&config.redis)?;
    serve_with(config, services, redis, shutdown).await
}

/// Serves the gateway on `services` (in-process or remote) until `shutdown`
/// resolves (give it [`lobby_kit::shutdown::staged`]: `/healthz` answers 503
/// `draining` from the signal on), then lets in-flight requests finish.
pub async fn serve_with(
    config: GatewayConfig,
    services: clients::Services,
    redis: lobby_kit::redis_conn::Redis,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    if config.admin_token.is_none() {
        tracing::warn!("LOBBY_ADMIN_TOKEN is not set: the admin API refuses every call");
    }
    let state = AppState(Arc::new(Shared {
        services,
        redis,
        admin_token: config.admin_token,
        metrics: metrics::Metrics::new()?,
        livekit_webhooks: webhooks::livekit::receiver(
            &config.livekit.api_key,
            &config.livekit.api_secret,
        ),
        daily_webhook_secret: config.daily_webhook_secret,
        limits: edge::Limits::new(&config.edge),
        request_timeout: config.edge.request_timeout,
        upload_timeout: config.edge.upload_timeout,
        trusted_proxy_hops: config.edge.trusted_proxy_hops,
        regions: Arc::new(regions::Regions::new(
            config.regions,
            config.upstream_timeout,
        )?),
    }));
    let mut background = lobby_kit::background::Background::default();
    if let Some(task) =
        lobby_kit::metrics::spawn(config.metrics_listen, state.metrics.registry.clone())
    {
        background.adopt(task);
    }
    if let Some(task) = state.regions.spawn_probes() {
        background.adopt(task);
    }
    background.spawn({
        let state = state.clone();
        async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            loop {
                every.tick().await;
                state.limits.forget_idle();
            }
        }
    });
    let refused_connections = state.metrics.refused_connections.clone();
    let app = router(state, config.metrics_listen.is_none());
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: config.listen,
            source,
        })?;
    tracing::info!(addr = %config.listen, "gateway listening");
    edge::serve(listener, app, &config.edge, refused_connections, shutdown).await;
    Ok(())
}
