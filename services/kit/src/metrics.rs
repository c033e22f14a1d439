//! Prometheus metrics for the gRPC services: a registry each service fills,
//! served as text at `/metrics` on the service's metrics address (off when
//! no address is configured).

use prometheus::{Encoder, Registry, TextEncoder};
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
                let encoder = TextEncoder::new();
                let mut buf = Vec::new();
                if let Err(e) = encoder.encode(&registry.gather(), &mut buf) {
                    tracing::error!(error = %e, "metrics encoding failed");
                }
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        encoder.format_type().to_owned(),
                    )],
                    buf,
                )
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

/// Reads an optional listen address (`LOBBY_<SERVICE>_METRICS_LISTEN`).
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
