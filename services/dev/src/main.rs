//! `lobby-dev`: every service in one process, each on its own loopback port
//! and still talking gRPC to the others, plus an idempotent demo seed.

use lobby_kit::{shutdown::Shutdown, telemetry, Settings};
use lobby_proto::{
    auth::{auth_client::AuthClient, AgentStatus, CreateAccountRequest, CreateAgentRequest},
    common::Provider,
};
use std::time::Duration;
use tokio::task::JoinSet;

const DEMO_ACCOUNT: &str = "acct_demo";
const DEMO_AGENT: &str = "demo-agent";

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    telemetry::init("dev");
    let settings = Settings::from_env()?;
    // Parse every config first so a bad setting stops everything before anything listens.
    let auth = lobby_auth::AuthConfig::from_settings(&settings)?;
    let session = lobby_session::SessionConfig::from_settings(&settings)?;
    let rooms = lobby_rooms::RoomsConfig::from_settings(&settings)?;
    let artifacts = lobby_artifacts::ArtifactsConfig::from_settings(&settings)?;
    let gateway = lobby_gateway::GatewayConfig::from_settings(&settings)?;
    let auth_url = format!("http://{}", auth.listen);
    let gateway_addr = gateway.listen;

    let shutdown = Shutdown::on(lobby_kit::shutdown::signal());
    let mut tasks: JoinSet<(&'static str, Result<(), BoxError>)> = JoinSet::new();
    let s = shutdown.clone();
    tasks.spawn(async move {
        (
            "auth",
            lobby_auth::serve(auth, s.wait()).await.map_err(Into::into),
        )
    });
    let s = shutdown.clone();
    tasks.spawn(async move {
        (
            "session",
            lobby_session::serve(session, s.wait())
                .await
                .map_err(Into::into),
        )
    });
    let s = shutdown.clone();
    tasks.spawn(async move {
        (
            "rooms",
            lobby_rooms::serve(rooms, s.wait())
                .await
                .map_err(Into::into),
        )
    });
    let s = shutdown.clone();
    tasks.spawn(async move {
        (
            "artifacts",
            lobby_artifacts::serve(artifacts, s.wait())
                .await
                .map_err(Into::into),
        )
    });
    let s = shutdown.clone();
    tasks.spawn(async move {
        (
            "gateway",
            lobby_gateway::serve(gateway, s.wait())
                .await
                .map_err(Into::into),
        )
    });

    if settings.string_or("LOBBY_DEV_SEED_DEMO", "true") == "true" {
        let seeded = tokio::select! {
            r = seed_demo(&auth_url) => r,
            Some(done) = tasks.join_next() => Err(exit_reason(done)),
        };
        match seeded {
            Ok(agent_key) => print_banner(gateway_addr, agent_key.as_deref()),
            Err(e) => {
                tracing::error!(error = %e, "demo seed failed; stopping");
                return Err(e);
            }
        }
    }

    // A service failing ends the process; so does shutdown, once every
    // service has drained or the grace period is over (a worker's stream
    // never ends on its own, and must not hold the process).
    let grace = Duration::from_millis(settings.get_or("LOBBY_SHUTDOWN_GRACE_MS", 5_000)?);
    let drained = async {
        while let Some(done) = tasks.join_next().await {
            flatten(done)?;
        }
        Ok::<(), BoxError>(())
    };
    tokio::pin!(drained);
    tokio::select! {
        r = &mut drained => return r,
        () = shutdown.clone().wait() => {}
    }
    match tokio::time::timeout(grace, drained).await {
        Ok(r) => r,
        Err(_) => {
            tracing::warn!(
                grace_ms = grace.as_millis() as u64,
                "services still draining after the grace period; stopping now"
            );
            Ok(())
        }
    }
}

fn flatten(
    done: Result<(&'static str, Result<(), BoxError>), tokio::task::JoinError>,
) -> Result<(), BoxError> {
    match done {
        Ok((_, Ok(()))) => Ok(()),
        Ok((name, Err(e))) => Err(format!("{name} stopped: {e}").into()),
        Err(e) => Err(format!("a service task panicked: {e}").into()),
    }
}

fn exit_reason(
    done: Result<(&'static str, Result<(), BoxError>), tokio::task::JoinError>,
) -> BoxError {
    flatten(done)
        .err()
        .unwrap_or_else(|| "a service stopped during start-up".into())
}

/// Creates the demo account and agent unless they exist (a restart keeps
/// whatever an operator changed on them).
/// Returns the demo agent's key when this run created the agent (a key is
/// shown once; a restart prints none).
async fn seed_demo(auth_url: &str) -> Result<Option<String>, BoxError> {
    let channel = lobby_kit::grpc::lazy_channel(auth_url, Duration::from_secs(5))?;
    let auth = AuthClient::new(channel.clone());
    // However long Redis takes to load its data: auth is ready once it answers.
    lobby_kit::grpc::wait_until_serving(channel, "auth").await;
    let created = with_retry(|| {
        let mut auth = auth.clone();
        async move {
            auth.create_account(CreateAccountRequest {
                id: DEMO_ACCOUNT.into(),
                name: "Demo account".into(),
                max_concurrency: Some(5),
                minutes_quota: Some(600),
            })
            .await
        }
    })
    .await;
    match created {
        Ok(_) => {}
        Err(s) if s.code() == tonic::Code::AlreadyExists => {}
        Err(s) => return Err(s.into()),
    }
    let created = with_retry(|| {
        let mut auth = auth.clone();
        async move {
            auth.create_agent(CreateAgentRequest {
                id: DEMO_AGENT.into(),
                account_id: DEMO_ACCOUNT.into(),
                name: "Demo agent".into(),
                status: AgentStatus::Published as i32,
                allowed_hostnames: vec!["*".into()],
                max_concurrency: Some(0),
                max_session_seconds: Some(600),
                avatar_image_url: String::new(),
                provider: Provider::Livekit as i32,
                requires_worker: false,
                solo_timeout_seconds: 0,
            })
            .await
        }
    })
    .await;
    match created {
        Ok(r) => Ok(r.into_inner().agent_key.map(|k| k.key)),
        Err(s) if s.code() == tonic::Code::AlreadyExists => Ok(None),
        Err(s) => Err(s.into()),
    }
}

/// Retries a call that failed because Redis went away between the
/// readiness check and the call; any other answer is returned.
async fn with_retry<T, F, Fut>(mut call: F) -> Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    let mut backoff =
        lobby_kit::backoff::Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    loop {
        match call().await {
            Err(s) if s.code() == tonic::Code::Unavailable => {
                tracing::info!(error = %s.message(), "demo seed waiting for the store");
                backoff.wait().await;
            }
            other => return other,
        }
    }
}

fn print_banner(gateway: std::net::SocketAddr, agent_key: Option<&str>) {
    println!(
        "\nLobby is running. Start a session with the demo agent:\n\n  curl -sS -X POST http://{gateway}/v1/public/agents/connect \\\n    -H 'Content-Type: application/json' \\\n    -d '{{\"agent_id\": \"{DEMO_AGENT}\"}}'\n"
    );
    match agent_key {
        Some(key) => println!(
            "The demo agent's key (shown once; rotate it with POST /admin/v1/agents/{DEMO_AGENT}/keys):\n  {key}\n  curl -sS -X POST http://{gateway}/api/agent/v1/session/create/ -H 'X-OTAS-AGENT-KEY: {key}'\n"
        ),
        None => println!("The demo agent's key was printed when it was created; rotate it with POST /admin/v1/agents/{DEMO_AGENT}/keys.\n"),
    }
    println!("Health: curl -sS http://{gateway}/healthz   (Ctrl-C stops everything)\n");
}
