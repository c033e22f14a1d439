//! Prometheus metrics served at `/metrics`.

use axum::{
    extract::{MatchedPath, Request, State},
    http::header,
    middleware::Next,
    response::{IntoResponse, Response},
};
use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry};
use std::time::Instant;

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    requests: HistogramVec,
    pub connect_errors: IntCounterVec,
    /// Requests the edge refused or abandoned, by why.
    pub edge_refusals: IntCounterVec,
    /// Connections closed at accept: over the connection limit.
    pub refused_connections: IntCounter,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = HistogramVec::new(
            HistogramOpts::new(
                "lobby_gateway_request_seconds",
                "HTTP requests by route and status",
            ),
            &["method", "route", "status"],
        )?;
        let connect_errors = IntCounterVec::new(
            Opts::new(
                "lobby_gateway_connect_errors_total",
                "Refused or failed session starts by error code",
            ),
            &["error_code"],
        )?;
        let edge_refusals = IntCounterVec::new(
            Opts::new(
                "lobby_gateway_edge_refusals_total",
                "Requests refused or abandoned at the edge (rate_limited_ip, rate_limited_agent, timeout)",
            ),
            &["reason"],
        )?;
        let refused_connections = IntCounter::new(
            "lobby_gateway_connections_refused_total",
            "Connections closed at accept because the connection limit was reached",
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(connect_errors.clone()))?;
        registry.register(Box::new(edge_refusals.clone()))?;
        registry.register(Box::new(refused_connections.clone()))?;
        Ok(Self {
            registry,
            requests,
            connect_errors,
            edge_refusals,
            refused_connections,
        })
    }
}

/// Records every request under its route template, not its raw path, and
/// under a closed set of methods, so neither ids in paths nor made-up
/// methods can grow the label set.
pub async fn track(State(metrics): State<Metrics>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(req.method());
    let started = Instant::now();
    let response = next.run(req).await;
    metrics.observe(method, &route, &response, started);
    response
}

impl Metrics {
    pub fn observe(&self, method: &str, route: &str, response: &Response, started: Instant) {
        self.requests
            .with_label_values(&[method, route, response.status().as_str()])
            .observe(started.elapsed().as_secs_f64());
    }
}

pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method as M;
    match *method {
        M::GET => "GET",
        M::POST => "POST",
        M::PUT => "PUT",
        M::PATCH => "PATCH",
        M::DELETE => "DELETE",
        M::OPTIONS => "OPTIONS",
        M::HEAD => "HEAD",
        _ => "other",
    }
}

/// Prometheus metrics, when the public listener serves them
/// (`LOBBY_GATEWAY_METRICS_LISTEN` unset).
#[utoipa::path(
    get,
    operation_id = "metrics",
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Prometheus' text format", content_type = "text/plain", body = String),
        (status = 404, description = "Served on the operators' listener instead (`route_not_found`)", body = crate::error::ErrorBody),
    )
)]
pub async fn render(State(metrics): State<Metrics>) -> impl IntoResponse {
    let (content_type, body) = lobby_kit::metrics::encode(&metrics.registry);
    ([(header::CONTENT_TYPE, content_type)], body)
}
