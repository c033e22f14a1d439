//! The services behind the gateway, in-process or over gRPC: the handlers
//! call the service traits and cannot tell which. Calls go one way: the
//! gateway asks auth who is calling, then session (the one orchestrator)
//! to act; it never calls rooms.

pub use lobby_kit::grpc::ReadinessProbe as HealthProbe;
use lobby_proto::{
    auth::{auth_client::AuthClient, auth_server::Auth},
    session::{sessions_client::SessionsClient, sessions_server::Sessions},
    Remote,
};
use std::{sync::Arc, time::Duration};

#[derive(Clone)]
pub struct Services {
    pub auth: Arc<dyn Auth>,
    pub session: Arc<dyn Sessions>,
    /// (service name, probe) for `/healthz`.
    pub health: Vec<(&'static str, HealthProbe)>,
}

impl Services {
    /// Every service in another process, reached over gRPC.
    pub fn remote(
        urls: &lobby_kit::shared_settings::PeerUrls,
        timeout: Duration,
    ) -> Result<Self, tonic::transport::Error> {
        let auth = lobby_kit::grpc::lazy_channel(&urls.auth, timeout)?;
        let session = lobby_kit::grpc::lazy_channel(&urls.session, timeout)?;
        let rooms = lobby_kit::grpc::lazy_channel(&urls.rooms, timeout)?;
        let artifacts = lobby_kit::grpc::lazy_channel(&urls.artifacts, timeout)?;
        Ok(Self {
            auth: Arc::new(Remote(AuthClient::new(auth.clone()))),
            session: Arc::new(Remote(SessionsClient::new(session.clone()))),
            health: vec![
                ("auth", HealthProbe::Remote(auth)),
                ("session", HealthProbe::Remote(session)),
                ("rooms", HealthProbe::Remote(rooms)),
                ("artifacts", HealthProbe::Remote(artifacts)),
            ],
        })
    }
}
