//! Prometheus metrics for the gRPC services: a registry each service fills,
//! served as text at `/metrics` on the service's metrics address (off when
//! no address is configured).

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};
use std::{future::Future, net::SocketAddr};

/// Serves `registry` at `GET /metrics` until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    registry: Registry,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), std::io::Error> {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let registry = registry.clone();
            async move {
                let (content_type, body) = encode(&registry);
                ([(axum::http::header::CONTENT_TYPE, content_type)], body)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "metrics listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Starts the metrics server in the background when `addr` is set; the
/// caller aborts the returned task when its service stops.
pub fn spawn(addr: Option<SocketAddr>, registry: Registry) -> Option<tokio::task::JoinHandle<()>> {
    let addr = addr?;
    Some(tokio::spawn(async move {
        if let Err(e) = serve(addr, registry, std::future::pending()).await {
            tracing::error!(%addr, error = %e, "metrics server stopped");
        }
    }))
}

/// Like [`spawn`], for a service with no metrics of its own: only the
/// process's (gRPC calls answered, Redis round trips).
pub fn spawn_process_only(addr: Option<SocketAddr>) -> Option<tokio::task::JoinHandle<()>> {
    spawn(addr, Registry::new())
}

/// Reads an optional listen address (`LOBBY_<SERVICE>_METRICS_LISTEN`),
/// declared where it is called.
#[track_caller]
pub fn listen_setting(
    s: &crate::Settings,
    key: &str,
) -> Result<Option<SocketAddr>, crate::ConfigError> {
    match s.raw(key).filter(|v| !v.trim().is_empty()) {
        None => Ok(None),
        Some(_) => s
            .get_or(key, SocketAddr::from(([127, 0, 0, 1], 0)))
            .map(Some),
    }
}

/// Metrics of the process as a whole, whichever services it runs: gRPC
/// calls served and Redis round trips. Every `/metrics` of the process
/// includes them (see [`encode`]).
pub fn process_registry() -> &'static Registry {
    &PROCESS.registry
}

struct ProcessMetrics {
    registry: Registry,
    grpc_requests: IntCounterVec,
    grpc_seconds: HistogramVec,
    redis_seconds: HistogramVec,
}

static PROCESS: std::sync::LazyLock<ProcessMetrics> = std::sync::LazyLock::new(|| {
    let registry = Registry::new();
    let grpc_requests = IntCounterVec::new(
        Opts::new(
            "lobby_grpc_requests_total",
            "gRPC calls served, by method and status code",
        ),
        &["method", "code"],
    )
    .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
    let grpc_seconds = HistogramVec::new(
        HistogramOpts::new(
            "lobby_grpc_request_seconds",
            "gRPC call latency until the response starts, by method",
        )
        .buckets(LATENCY_BUCKETS.to_vec()),
        &["method"],
    )
    .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
    let redis_seconds = HistogramVec::new(
        HistogramOpts::new(
            "lobby_redis_round_trip_seconds",
            "Redis round trips (a command, a script, or a pipeline), by kind and outcome",
        )
        .buckets(LATENCY_BUCKETS.to_vec()),
        &["kind", "outcome"],
    )
    .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
    for c in [
        Box::new(grpc_requests.clone()) as Box<dyn prometheus::core::Collector>,
        Box::new(grpc_seconds.clone()),
        Box::new(redis_seconds.clone()),
    ] {
        registry
            .register(c)
            .unwrap_or_else(|e| unreachable!("distinct metric names: {e}"));
    }
    ProcessMetrics {
        registry,
        grpc_requests,
        grpc_seconds,
        redis_seconds,
    }
});

/// From 0.1 ms (a Redis round trip on loopback) to 10 s.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5, 10.0,
];

/// One Redis round trip took `elapsed`.
pub fn observe_redis(kind: &'static str, ok: bool, elapsed: std::time::Duration) {
    PROCESS
        .redis_seconds
        .with_label_values(&[kind, if ok { "ok" } else { "error" }])
        .observe(elapsed.as_secs_f64());
}

/// `registry` and the process's metrics, as Prometheus text: (content type, body).
pub fn encode(registry: &Registry) -> (String, Vec<u8>) {
    let encoder = TextEncoder::new();
    let mut families = registry.gather();
    families.extend(process_registry().gather());
    let mut buf = Vec::new();
    if let Err(e) = encoder.encode(&families, &mut buf) {
        tracing::error!(error = %e, "metrics encoding failed");
    }
    (encoder.format_type().to_owned(), buf)
}

/// Counts and times every gRPC call a server answers (a tower layer for
/// `tonic::transport::Server::layer`). A call to a method the server does
/// not have is counted under `unknown`, so made-up paths add no series.
#[derive(Clone, Copy, Default)]
pub struct GrpcMetricsLayer;

impl<S> tower_layer::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;
    fn layer(&self, inner: S) -> GrpcMetrics<S> {
        GrpcMetrics { inner }
    }
}

#[derive(Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
}

impl<S, B, RB> tower_service::Service<http::Request<B>> for GrpcMetrics<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        use tracing::Instrument;
        let method = req.uri().path().to_owned();
        let request_id = req
            .headers()
            .get(crate::grpc::REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        // Every log line of the call names its method and its request.
        let span = tracing::info_span!("grpc", method = %method, request_id = %request_id);
        crate::telemetry::continue_trace(&span, req.headers());
        let started = std::time::Instant::now();
        let answer = {
            let _entered = span.enter();
            self.inner.call(req)
        };
        let answered = async move {
            let answer = crate::grpc::with_request_id(request_id, answer).await;
            // An error status comes in the headers (a trailers-only
            // answer); a success sends its status in the trailers.
            let code = match &answer {
                Ok(r) => r
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("0")
                    .to_owned(),
                Err(_) => "transport".to_owned(),
            };
            let method = if code == "12" {
                "unknown"
            } else {
                method.as_str()
            };
            PROCESS
                .grpc_requests
                .with_label_values(&[method, &code])
                .inc();
            let elapsed = started.elapsed();
            PROCESS
                .grpc_seconds
                .with_label_values(&[method])
                .observe(elapsed.as_secs_f64());
            tracing::debug!(code = %code, elapsed_ms = elapsed.as_millis() as u64, "grpc call answered");
            answer
        };
        Box::pin(answered.instrument(span))
    }
}
