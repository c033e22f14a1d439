//! The public edge: what stands between the internet and the handlers.
//!
//! - A connection limit, and a deadline for reading a request's headers
//!   (a client trickling bytes holds a connection for that long at most).
//! - A deadline per request, answered with a JSON 504.
//! - Per-address and per-agent rate limits on the public routes, answered
//!   with a 429 and `Retry-After`.
//! - JSON 404 and 405 answers for routes that do not exist.
//!
//! Every refusal is rendered in the envelope of the contract the path
//! belongs to (`Contract::of`).

use crate::{contracts::Contract, error::ApiError, AppState};
use axum::{
    extract::{ConnectInfo, Request, State},
    http::{Method, Uri},
    middleware::Next,
    response::Response,
    Router,
};
use governor::{clock::Clock, state::keyed::DashMapStateStore, Quota, RateLimiter};
use lobby_kit::ErrorCode;
use std::{net::IpAddr, net::SocketAddr, num::NonZeroU32, sync::Arc, time::Duration};

/// The edge's settings (part of `GatewayConfig`).
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    pub header_read_timeout: Duration,
    pub request_timeout: Duration,
    /// The deadline of an upload to a signed artifact URL (a long audio
    /// file from a slow link needs more than an API call).
    pub upload_timeout: Duration,
    pub max_connections: usize,
    /// Requests per minute from one address on the public routes; 0: no limit.
    pub per_ip_per_minute: u32,
    /// Session starts per minute for one agent; 0: no limit.
    pub per_agent_per_minute: u32,
    /// Reverse proxies in front of the gateway whose `X-Forwarded-For`
    /// entries are believed (see `client_addr`); 0: the TCP peer is the client.
    pub trusted_proxy_hops: usize,
}

type KeyedLimiter<K> = RateLimiter<K, DashMapStateStore<K>, governor::clock::DefaultClock>;

/// `per_minute` a minute, all of them at once at most; `None` for 0.
fn keyed<K: std::hash::Hash + Eq + Clone>(per_minute: u32) -> Option<KeyedLimiter<K>> {
    NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n)))
}

/// The rate limiters, shared by every request of this gateway replica.
pub struct Limits {
    per_ip: Option<KeyedLimiter<IpAddr>>,
    per_agent: Option<KeyedLimiter<String>>,
    clock: governor::clock::DefaultClock,
}

impl Limits {
    pub fn new(config: &EdgeConfig) -> Self {
        Self {
            per_ip: keyed(config.per_ip_per_minute),
            per_agent: keyed(config.per_agent_per_minute),
            clock: governor::clock::DefaultClock::default(),
        }
    }

    fn refused(&self, not_until: governor::NotUntil<governor::clock::QuantaInstant>) -> ApiError {
        let wait = not_until.wait_time_from(self.clock.now());
        let mut e = ApiError::public(ErrorCode::RateLimited);
        e.body.retry_after_seconds = Some(wait.as_secs().max(1));
        e
    }

    pub fn check_ip(&self, ip: IpAddr) -> Result<(), ApiError> {
        match &self.per_ip {
            Some(limiter) => limiter.check_key(&ip).map_err(|n| self.refused(n)),
            None => Ok(()),
        }
    }

    /// Called once a start names a real agent, so that made-up ids do not
    /// fill the limiter.
    pub fn check_agent(&self, agent_id: &str) -> Result<(), ApiError> {
        match &self.per_agent {
            Some(limiter) => limiter
                .check_key(&agent_id.to_owned())
                .map_err(|n| self.refused(n)),
            None => Ok(()),
        }
    }

    /// Forgets addresses and agents whose buckets are full again, so the
    /// limiters' memory follows the current traffic, not all traffic ever.
    pub fn forget_idle(&self) {
        if let Some(l) = &self.per_ip {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(l) = &self.per_agent {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

/// The per-agent limit on starts, checked once the agent is known to exist
/// (so made-up ids never reach the limiter).
pub fn limit_agent(state: &AppState, agent_id: &str) -> Result<(), ApiError> {
    state.limits.check_agent(agent_id).inspect_err(|_| {
        state
            .metrics
            .edge_refusals
            .with_label_values(&["rate_limited_agent"])
            .inc();
    })
}

/// Routes the per-address limit does not cover: they have their own
/// credentials (admin token, provider signatures) or are for operators.
pub fn unlimited(path: &str) -> bool {
    ["/admin/", "/webhooks/", "/healthz", "/livez", "/metrics"]
        .iter()
        .any(|p| path.starts_with(p))
}

/// The per-address limit, then the request under its deadline.
pub async fn guard(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    // The URI shares its buffer: kept for the timeout's log line without a
    // copy per request.
    let uri = req.uri().clone();
    let contract = Contract::of(uri.path());
    let client = state.client_ip(peer.ip(), req.headers());
    if !unlimited(uri.path()) {
        if let Err(e) = state.limits.check_ip(client) {
            state
                .metrics
                .edge_refusals
                .with_label_values(&["rate_limited_ip"])
                .inc();
            return contract.render(e);
        }
    }
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    // Every log line while serving it names the request.
    let span = tracing::info_span!("request", request_id = %request_id);
    lobby_kit::telemetry::continue_callers_trace(&span, req.headers());
    let handled = tracing::Instrument::instrument(
        crate::actor::scope(request_id, client.to_string(), next.run(req)),
        span,
    );
    let deadline = if uri.path().starts_with("/artifacts/") {
        state.upload_timeout
    } else {
        state.request_timeout
    };
    match tokio::time::timeout(deadline, handled).await {
        Ok(response) => response,
        Err(_) => {
            state
                .metrics
                .edge_refusals
                .with_label_values(&["timeout"])
                .inc();
            tracing::warn!(
                path = uri.path(),
                "request abandoned at the edge's deadline"
            );
            contract.render(ApiError::public(ErrorCode::Timeout))
        }
    }
}

pub async fn not_found(State(state): State<AppState>, method: Method, uri: Uri) -> Response {
    refuse_route(&state, &method, &uri, ErrorCode::RouteNotFound)
}

pub async fn method_not_allowed(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
) -> Response {
    refuse_route(&state, &method, &uri, ErrorCode::MethodNotAllowed)
}

/// Counted under the route `unmatched` (the metrics layer sees matched
/// routes only), and under the closed set of method labels.
fn refuse_route(state: &AppState, method: &Method, uri: &Uri, code: ErrorCode) -> Response {
    let started = std::time::Instant::now();
    let response = Contract::of(uri.path()).render(ApiError::public(code));
    state.metrics.observe(
        crate::metrics::method_label(method),
        "unmatched",
        &response,
        started,
    );
    response
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains the
/// open connections. Connections past `max_connections` are closed as soon
/// as they are accepted; a request whose headers have not all arrived
/// within `header_read_timeout` loses its connection.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    config: &EdgeConfig,
    refused_connections: prometheus::IntCounter,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    use hyper_util::{
        rt::{TokioExecutor, TokioIo, TokioTimer},
        server::{conn::auto, graceful::GracefulShutdown},
        service::TowerToHyperService,
    };
    use tower::ServiceExt;
    let slots = Arc::new(tokio::sync::Semaphore::new(config.max_connections));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: pause, not spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refused_connections.inc();
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = app
            .clone()
            .map_request(move |mut req: Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req
            });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service))
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
            drop(slot);
        });
    }
    graceful.shutdown().await;
}
