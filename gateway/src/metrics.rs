//! Prometheus metrics served at `/metrics`.

use axum::{
    extract::{MatchedPath, Request, State},
    http::header,
    middleware::Next,
    response::{IntoResponse, Response},
};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};
use std::time::Instant;

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: HistogramVec,
    pub connect_errors: IntCounterVec,
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
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(connect_errors.clone()))?;
        Ok(Self {
            registry,
            requests,
            connect_errors,
        })
    }
}

/// Records every request under its route template, not its raw path, so ids
/// in paths do not explode the label set.
pub async fn track(State(metrics): State<Metrics>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(req).await;
    metrics
        .requests
        .with_label_values(&[method.as_str(), route.as_str(), response.status().as_str()])
        .observe(started.elapsed().as_secs_f64());
    response
}

pub async fn render(State(metrics): State<Metrics>) -> impl IntoResponse {
    let mut buf = Vec::new();
    let encoder = TextEncoder::new();
    if let Err(e) = encoder.encode(&metrics.registry.gather(), &mut buf) {
        tracing::error!(error = %e, "metrics encoding failed");
    }
    (
        [(header::CONTENT_TYPE, encoder.format_type().to_owned())],
        buf,
    )
}
