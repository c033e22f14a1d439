//! The services behind the gateway, in-process or over gRPC: the handlers
//! call the service traits and cannot tell which. Calls go one way: the
//! gateway asks auth who is calling, then session (the one orchestrator)
//! to act, and artifacts for a session's stored files; it never calls rooms.

pub use lobby_kit::grpc::ReadinessProbe as HealthProbe;
use lobby_proto::{
    artifacts::{artifacts_client::ArtifactsClient, artifacts_server::Artifacts},
    auth::{auth_client::AuthClient, auth_server::Auth},
    session::{sessions_client::SessionsClient, sessions_server::Sessions},
    Remote,
};
use std::{sync::Arc, time::Duration};

#[derive(Clone)]
pub struct Services {
    pub auth: Arc<dyn Auth>,
    pub session: Arc<dyn Sessions>,
    /// Session artifacts: reads, signed URLs, uploads through them, summaries.
    pub artifacts: Arc<dyn Artifacts>,
    /// (service name, probe) for `/healthz`.
    pub health: Vec<(&'static str, HealthProbe)>,
}

impl Services {
    /// Every service in another process, reached over gRPC.
    pub fn remote(
        urls: &lobby_kit::shared_settings::PeerUrls,
        timeout: Duration,
        tls: &lobby_kit::grpc_tls::GrpcTls,
    ) -> Result<Self, tonic::transport::Error> {
        let channel = |url: &str| lobby_kit::grpc::lazy_channel(url, timeout, tls);
        let (auth, session) = (channel(&urls.auth)?, channel(&urls.session)?);
        let (rooms, artifacts) = (channel(&urls.rooms)?, channel(&urls.artifacts)?);
        Ok(Self {
            auth: Arc::new(Remote(AuthClient::new(auth.clone()))),
            session: Arc::new(Remote(SessionsClient::new(session.clone()))),
            artifacts: Arc::new(Remote(ArtifactsClient::new(artifacts.clone()))),
            health: vec![
                ("auth", HealthProbe::Remote(auth)),
                ("session", HealthProbe::Remote(session)),
                ("rooms", HealthProbe::Remote(rooms)),
                ("artifacts", HealthProbe::Remote(artifacts)),
            ],
        })
    }
}
