//! Lobby's artifacts service: session artifacts (`sessions/{id}/…`) in the
//! object store, and signed download URLs for them.

pub mod error;
pub mod service;
pub mod signing;
pub mod store;

use lobby_kit::{ConfigError, Settings};
use std::{net::SocketAddr, path::PathBuf};

#[derive(Debug, Clone)]
pub struct ArtifactsConfig {
    pub listen: SocketAddr,
    /// Mutual TLS for its gRPC (or explicit plaintext).
    pub grpc_tls: lobby_kit::grpc_tls::GrpcTls,
    /// Plaintext health for the kubelet (`LOBBY_PROBES_LISTEN`).
    pub probes_listen: Option<SocketAddr>,
    pub store_dir: PathBuf,
    pub public_base_url: String,
    pub signing_key_id: String,
    pub signing_secret: String,
}

impl ArtifactsConfig {
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        let signing_secret = s.string_or(
            "LOBBY_ARTIFACTS_SIGNING_SECRET",
            lobby_kit::production::dev_default("LOBBY_ARTIFACTS_SIGNING_SECRET"),
        );
        Settings::ensure(
            "LOBBY_ARTIFACTS_SIGNING_SECRET",
            signing_secret.len() >= 16,
            "must be at least 16 characters",
        )?;
        Ok(Self {
            listen: s.get_or(
                "LOBBY_ARTIFACTS_LISTEN",
                SocketAddr::from(([127, 0, 0, 1], 50054)),
            )?,
            grpc_tls: lobby_kit::grpc_tls::GrpcTls::from_settings(s)?,
            probes_listen: lobby_kit::grpc::probes_setting(s)?,
            store_dir: PathBuf::from(s.string_or("LOBBY_ARTIFACTS_DIR", ".run/artifacts")),
            public_base_url: s.string_or("LOBBY_PUBLIC_URL", "http://127.0.0.1:8080"),
            signing_key_id: s.string_or("LOBBY_ARTIFACTS_SIGNING_KEY_ID", "k1"),
            signing_secret,
        })
    }
}

/// Builds the artifacts service (the filesystem store needs nothing to
/// come up first, so it is ready at once).
pub fn start(config: ArtifactsConfig) -> std::sync::Arc<service::ArtifactsService> {
    std::sync::Arc::new(service::ArtifactsService::new(
        store::FileStore::new(config.store_dir),
        signing::UrlSigner::new(
            config.signing_key_id,
            config.signing_secret.into_bytes(),
            config.public_base_url,
        ),
    ))
}

/// Serves `service`'s gRPC API on `listen` until `shutdown` resolves.
pub async fn serve_on(
    listener: lobby_kit::grpc::Listener,
    service: std::sync::Arc<service::ArtifactsService>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    lobby_kit::grpc::serve(
        listener,
        lobby_proto::artifacts::artifacts_server::ArtifactsServer::from_arc(service),
        lobby_kit::Readiness::always(),
        shutdown,
    )
    .await
}

/// Serves the artifacts gRPC API until `shutdown` resolves.
pub async fn serve(
    config: ArtifactsConfig,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let listener =
        lobby_kit::grpc::Listener::internal(config.listen, &config.grpc_tls, config.probes_listen);
    serve_on(listener, start(config), shutdown).await
}
