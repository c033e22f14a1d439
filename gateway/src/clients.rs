//! gRPC clients of the services behind the gateway. Channels connect lazily:
//! a service that is down makes its calls fail (`orchestrator_error`), never
//! the gateway's start-up.

use lobby_proto::{
    artifacts::artifacts_client::ArtifactsClient, auth::auth_client::AuthClient,
    rooms::rooms_client::RoomsClient, session::sessions_client::SessionsClient,
};
use std::time::Duration;
use tonic::transport::Channel;

#[derive(Clone)]
pub struct Services {
    pub auth: AuthClient<Channel>,
    pub session: SessionsClient<Channel>,
    pub rooms: RoomsClient<Channel>,
    pub artifacts: ArtifactsClient<Channel>,
    /// (service name, channel) for health checks.
    pub channels: Vec<(&'static str, Channel)>,
}

impl Services {
    pub fn connect(
        urls: &crate::UpstreamUrls,
        timeout: Duration,
    ) -> Result<Self, tonic::transport::Error> {
        let auth = lobby_kit::grpc::lazy_channel(&urls.auth, timeout)?;
        let session = lobby_kit::grpc::lazy_channel(&urls.session, timeout)?;
        let rooms = lobby_kit::grpc::lazy_channel(&urls.rooms, timeout)?;
        let artifacts = lobby_kit::grpc::lazy_channel(&urls.artifacts, timeout)?;
        Ok(Self {
            auth: AuthClient::new(auth.clone()),
            session: SessionsClient::new(session.clone()),
            rooms: RoomsClient::new(rooms.clone()),
            artifacts: ArtifactsClient::new(artifacts.clone()),
            channels: vec![
                ("auth", auth),
                ("session", session),
                ("rooms", rooms),
                ("artifacts", artifacts),
            ],
        })
    }
}
