//! Every service process: gRPC health and reflection, and a start-up that
//! refuses a bad setting by name.

use lobby_tests::{process::binary, Lobby, LobbyOptions, Topology};
use std::process::Command;
use tonic_health::pb::{
    health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
};
use tonic_reflection::pb::v1::{
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    ServerReflectionRequest, ServerReflectionResponse,
};

/// Lists a server's services through `grpc.reflection.v1` (tonic-reflection
/// ships no client, so the call goes through tonic's generic client).
async fn channel(url: &str) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(url.to_owned())
        .expect("url")
        .connect()
        .await
        .expect("connect")
}

async fn reflected_services(url: &str) -> Vec<String> {
    let channel = channel(url).await;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let path = http::uri::PathAndQuery::from_static(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    );
    let codec: tonic_prost::ProstCodec<ServerReflectionRequest, ServerReflectionResponse> =
        tonic_prost::ProstCodec::default();
    let mut stream = grpc
        .streaming(
            tonic::Request::new(tokio_stream::once(request)),
            path,
            codec,
        )
        .await
        .expect("reflection call")
        .into_inner();
    let response = stream
        .message()
        .await
        .expect("reflection reply")
        .expect("one reply");
    match response.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected reflection reply: {other:?}"),
    }
}

#[tokio::test]
async fn every_service_serves_health_and_reflection() {
    let lobby = Lobby::start(LobbyOptions {
        // Each service's own gRPC listener.
        topology: Topology::Split,
        ..Default::default()
    })
    .await;
    let expected = [
        ("auth", "lobby.auth.v1.Auth"),
        ("session", "lobby.session.v1.Sessions"),
        ("rooms", "lobby.rooms.v1.Rooms"),
        ("artifacts", "lobby.artifacts.v1.Artifacts"),
    ];
    for (name, service) in expected {
        let url = &lobby
            .grpc
            .iter()
            .find(|(n, _)| *n == name)
            .expect("service url")
            .1;
        let mut health = HealthClient::new(channel(url).await);
        for probe in ["", service] {
            let status = health
                .check(HealthCheckRequest {
                    service: probe.to_owned(),
                })
                .await
                .expect("health check")
                .into_inner()
                .status();
            assert_eq!(
                status,
                ServingStatus::Serving,
                "{name} health for {probe:?}"
            );
        }
        let listed = reflected_services(url).await;
        assert!(
            listed.iter().any(|s| s == service),
            "{name} reflection lists {listed:?}"
        );
        assert!(
            listed.iter().any(|s| s == "grpc.health.v1.Health"),
            "{name}: {listed:?}"
        );
    }
}

#[test]
fn a_bad_setting_stops_start_up_and_names_the_setting() {
    let cases = [
        ("lobby-auth", "LOBBY_AUTH_LISTEN", "not-an-address"),
        ("lobby-rooms", "LOBBY_LIVEKIT_MODE", "sometimes"),
        ("lobby-rooms", "LOBBY_LIVEKIT_URL", "http://wrong-scheme"),
        ("lobby-session", "LOBBY_ROOMS_TIMEOUT_MS", "-5"),
        ("lobby-gateway", "LOBBY_ADMIN_TOKEN", "short"),
        ("lobby-artifacts", "LOBBY_ARTIFACTS_SIGNING_SECRET", "short"),
    ];
    for (bin, setting, value) in cases {
        let out = Command::new(binary(bin))
            .env_clear()
            .env(setting, value)
            .output()
            .expect("run binary");
        assert!(
            !out.status.success(),
            "{bin} started with {setting}={value}"
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(setting),
            "{bin}: error does not name {setting}: {stderr}"
        );
    }
}

#[tokio::test]
async fn rooms_and_session_serve_prometheus_metrics() {
    let (rooms_port, session_port) = (lobby_tests::free_port(), lobby_tests::free_port());
    let lobby = Lobby::start(LobbyOptions {
        // Each service's own metrics listener.
        topology: Topology::Split,
        extra_env: vec![
            (
                "LOBBY_ROOMS_METRICS_LISTEN".into(),
                format!("127.0.0.1:{rooms_port}"),
            ),
            (
                "LOBBY_SESSION_METRICS_LISTEN".into(),
                format!("127.0.0.1:{session_port}"),
            ),
        ],
        ..Default::default()
    })
    .await;
    let account = lobby.create_account(1).await;
    let agent = lobby.create_agent(&account, serde_json::json!({})).await;
    let first: serde_json::Value = lobby
        .connect(&agent, None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(lobby.connect(&agent, None).await.status(), 429);
    lobby
        .end_session(first["session_id"].as_str().expect("id"))
        .await;

    let scrape = |port: u16| {
        let http = lobby.http.clone();
        async move {
            http.get(format!("http://127.0.0.1:{port}/metrics"))
                .send()
                .await
                .expect("scrape")
                .text()
                .await
                .expect("text")
        }
    };
    let rooms = scrape(rooms_port).await;
    assert!(
        rooms.contains("lobby_rooms_rooms_opened_total{provider=\"livekit\"} 1"),
        "{rooms}"
    );
    let session = scrape(session_port).await;
    assert!(
        session.contains("lobby_session_starts_total{outcome=\"active\"} 1"),
        "{session}"
    );
    assert!(
        session.contains("lobby_session_starts_total{outcome=\"refused_account\"} 1"),
        "{session}"
    );
    assert!(
        session.contains("lobby_session_ended_total{reason=\"explicit_end\"} 1"),
        "{session}"
    );
}
