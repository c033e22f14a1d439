//! Every service process: gRPC health and reflection behind mutual TLS, a
//! refusal for every caller without a certificate from Lobby's CA, and a
//! start-up that refuses a bad setting by name.

use lobby_tests::{process::binary, scratch_dir, Lobby, LobbyOptions, Topology};
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
async fn reflected_services(
    channel: tonic::transport::Channel,
) -> Result<Vec<String>, tonic::Status> {
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
        .await?
        .into_inner();
    let response = stream.message().await?.expect("one reply");
    match response.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            Ok(list.service.into_iter().map(|s| s.name).collect())
        }
        other => panic!("unexpected reflection reply: {other:?}"),
    }
}

async fn health(channel: tonic::transport::Channel) -> Result<ServingStatus, tonic::Status> {
    let answer = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await?;
    Ok(answer.into_inner().status())
}

/// TLS as some caller other than a Lobby service would try it.
fn tls_as(certs: &lobby_dev::certs::DevCerts, name: &str) -> lobby_kit::grpc_tls::GrpcTls {
    lobby_kit::grpc_tls::GrpcTls::from_settings(&lobby_kit::Settings::from_pairs(
        certs.settings(name),
    ))
    .expect("certificates")
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
        let mut health = HealthClient::new(lobby.grpc_channel(url));
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
        let listed = reflected_services(lobby.grpc_channel(url))
            .await
            .expect("reflection");
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

/// The internal services answer only callers holding a certificate from
/// Lobby's CA: with no TLS, with TLS but no certificate, or with a
/// certificate from another CA, nothing answers, not even health. The
/// workers' door serves the job stream only: no rooms API, no reflection.
#[tokio::test]
async fn internal_grpc_refuses_callers_without_a_certificate_from_lobbys_ca() {
    let lobby = Lobby::start(LobbyOptions {
        topology: Topology::Split,
        worker: false,
        ..Default::default()
    })
    .await;
    let stranger = lobby_dev::certs::DevCerts::generate(&scratch_dir("stranger-ca"), &["gateway"])
        .expect("another CA");
    let ca_pem = std::fs::read_to_string(lobby.certs.ca()).expect("ca");
    let (mut tried, mut refused) = (0, 0);
    for (name, url) in &lobby.grpc {
        let plaintext = lobby_kit::grpc::lazy_channel(
            url,
            std::time::Duration::from_secs(5),
            &lobby_kit::grpc_tls::GrpcTls::Plaintext,
        )
        .expect("url");
        let no_certificate = tonic::transport::Endpoint::from_shared(url.clone())
            .expect("url")
            .tls_config(
                tonic::transport::ClientTlsConfig::new()
                    .ca_certificate(tonic::transport::Certificate::from_pem(&ca_pem)),
            )
            .expect("tls")
            .connect_lazy();
        let other_ca = lobby_kit::grpc::lazy_channel(
            url,
            std::time::Duration::from_secs(5),
            &tls_as(&stranger, "gateway"),
        )
        .expect("url");
        for (how, channel) in [
            ("plaintext", plaintext),
            ("TLS without a client certificate", no_certificate),
            ("a certificate from another CA", other_ca),
        ] {
            tried += 1;
            let answer = health(channel).await;
            assert!(
                answer.is_err(),
                "{name} answered a caller with {how}: {answer:?}"
            );
            refused += 1;
        }
        assert_eq!(
            health(lobby.grpc_channel(url)).await.ok(),
            Some(ServingStatus::Serving),
            "{name} answers a caller with Lobby's certificate"
        );
    }

    // The door: TLS, no client certificate asked, the stream only.
    let door = lobby.workers_door();
    let door_channel = tonic::transport::Endpoint::from_shared(door.url.clone())
        .expect("url")
        .tls_config(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(&door.ca_pem)),
        )
        .expect("tls")
        .connect_lazy();
    let rooms_call = lobby_proto::rooms::rooms_client::RoomsClient::new(door_channel.clone())
        .existing_rooms(lobby_proto::rooms::ExistingRoomsRequest::default())
        .await;
    tried += 1;
    assert_eq!(
        rooms_call.as_ref().map_err(|s| s.code()).err(),
        Some(tonic::Code::Unimplemented),
        "the rooms API is not behind the workers' door: {rooms_call:?}"
    );
    refused += 1;
    tried += 1;
    assert!(
        reflected_services(door_channel.clone()).await.is_err(),
        "no reflection behind the workers' door"
    );
    refused += 1;
    let plaintext_door = tonic::transport::Endpoint::from_shared(door.url.replace("https", "http"))
        .expect("url")
        .connect_lazy();
    tried += 1;
    assert!(
        health(plaintext_door).await.is_err(),
        "the door speaks TLS only"
    );
    refused += 1;
    assert_eq!(
        health(door_channel).await.ok(),
        Some(ServingStatus::Serving)
    );
    println!("internal gRPC: {refused} of {tried} attacks refused");
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
        ("lobby-session", "LOBBY_TLS_CA_FILE", "/nonexistent/ca.pem"),
        ("lobby-gateway", "LOBBY_TLS_KEY_FILE", "/etc/hostname"),
    ];
    let certs = lobby_dev::certs::DevCerts::generate(&scratch_dir("bad-settings"), &["auth"])
        .expect("certificates");
    for (bin, setting, value) in cases {
        let out = Command::new(binary(bin))
            .env_clear()
            .envs(certs.settings("auth"))
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
    // Production refuses the development secrets and the example Secret's
    // placeholders, naming each, in every binary.
    for bin in ["lobby-auth", "lobby-gateway", "lobby-server"] {
        let out = Command::new(binary(bin))
            .env_clear()
            .envs(certs.settings("auth"))
            .env("LOBBY_ENV", "production")
            .env("LOBBY_LIVEKIT_API_SECRET", "replace-me")
            .output()
            .expect("run binary");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{bin} started in production with dev secrets"
        );
        for named in [
            "LOBBY_AUTH_KEY_PEPPER",
            "LOBBY_LIVEKIT_API_KEY",
            "LOBBY_LIVEKIT_API_SECRET is an example placeholder",
            "LOBBY_ARTIFACTS_SIGNING_SECRET",
            "LOBBY_MASTER_KEYS",
        ] {
            assert!(
                stderr.contains(named),
                "{bin} does not name {named}: {stderr}"
            );
        }
    }
    // No certificate configured at all: the error says what to set.
    let out = Command::new(binary("lobby-rooms"))
        .env_clear()
        .output()
        .expect("run binary");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("LOBBY_TLS_CA_FILE"),
        "{stderr}"
    );
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
    let used = session
        .lines()
        .find_map(|l| l.strip_prefix("lobby_redis_used_memory_bytes "))
        .and_then(|v| v.trim().parse::<u64>().ok());
    assert!(
        used.is_some_and(|b| b > 0),
        "Redis memory in use: {session}"
    );
}

/// The kubelet's gRPC probes cannot present a certificate: a service
/// answers them on its own plaintext listener, which serves health and
/// nothing else.
#[tokio::test]
async fn the_probes_listener_serves_health_only_and_in_plaintext() {
    let dir = scratch_dir("probes");
    let certs = lobby_dev::certs::DevCerts::generate(&dir.join("certs"), &["artifacts"])
        .expect("certificates");
    let [api, probes] = lobby_tests::free_ports(2)[..] else {
        unreachable!()
    };
    // Health follows readiness, and artifacts is ready once its Redis
    // (the summary jobs') answers.
    let redis = lobby_tests::redis_server::RedisServer::start_with(&dir, false);
    let mut cmd = Command::new(binary("lobby-artifacts"));
    cmd.env_clear()
        .envs(certs.settings("artifacts"))
        .env("LOBBY_REDIS_URL", redis.url())
        .env("LOBBY_ARTIFACTS_LISTEN", format!("127.0.0.1:{api}"))
        .env("LOBBY_PROBES_LISTEN", format!("127.0.0.1:{probes}"))
        .env("LOBBY_ARTIFACTS_DIR", dir.join("store"));
    let _artifacts = lobby_tests::process::ChildGuard::spawn("artifacts", cmd, &dir);
    let plaintext = |port: u16| {
        tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .expect("url")
            .connect_lazy()
    };
    let mut answered = None;
    for _ in 0..100 {
        answered = health(plaintext(probes)).await.ok();
        if answered.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        answered,
        Some(ServingStatus::Serving),
        "probes answer health"
    );
    let api_call =
        lobby_proto::artifacts::artifacts_client::ArtifactsClient::new(plaintext(probes))
            .stat_artifact(lobby_proto::artifacts::ArtifactRef::default())
            .await;
    assert_eq!(
        api_call.map_err(|s| s.code()).err(),
        Some(tonic::Code::Unimplemented),
        "the probes listener serves no API"
    );
    assert!(
        health(plaintext(api)).await.is_err(),
        "the API port itself still wants mutual TLS"
    );
}
