//! `lobby-dev`: `lobby-server` (every service in one process) plus an
//! idempotent demo seed, for `make run`.
//!
//! `lobby-dev certs <dir>` writes a throwaway CA and a certificate per
//! service instead, for trying the split deployment by hand.

use lobby_dev::{
    certs::{DevCerts, SERVICES},
    DevConfig,
};
use lobby_kit::grpc_tls;
use lobby_kit::{shutdown::Shutdown, telemetry, Settings};
use lobby_proto::{
    auth::{
        auth_server::Auth, AgentStatus, CreateAccountRequest, CreateAgentRequest,
        CreateProjectRequest, CreateWorkerKeyRequest, KeyRef, ListWorkerKeysRequest,
    },
    common::Provider,
};
use lobby_server::{BoxError, ServerConfig};
use std::{sync::Arc, time::Duration};
use tonic::Request;

const DEMO_ACCOUNT: &str = "acct_demo";
const DEMO_AGENT: &str = "demo-agent";
const DEMO_PROJECT: &str = "proj_demo";
const DEMO_WORKER: &str = "demo-worker";

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut settings = Settings::from_env()?;
    let _telemetry = telemetry::init(
        "dev",
        &telemetry::TelemetryConfig::from_settings(&settings)?,
    );
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("settings-reference") {
        return print_settings_reference(args.get(2..).unwrap_or_default());
    }
    if let [_, command, dir] = &args[..] {
        if command == "certs" {
            let certs = DevCerts::generate(std::path::Path::new(dir), SERVICES)?;
            println!(
                "wrote {} (the CA) and <service>.pem / <service>.key for {SERVICES:?}",
                certs.ca().display()
            );
            return Ok(());
        }
    }
    let certs = throwaway_certs(&settings)?;
    if let Some(certs) = &certs {
        settings = settings.with(certs.settings("server"));
    }
    let config = ServerConfig::from_settings(&settings)?;
    let workers_door = config.rooms.workers.listen;
    let records_door = config.session.workers_listen;
    let stop = config.shutdown;
    let admin_token = config.gateway.admin_token.clone().unwrap_or_default();
    let shutdown = Shutdown::on(lobby_kit::shutdown::staged(
        lobby_kit::shutdown::signal(),
        stop.drain_delay,
    ));
    let mut started = lobby_server::start(config, &shutdown).await?;

    if DevConfig::from_settings(&settings)?.seed_demo {
        // However long Redis takes to load its data: auth is ready once it answers.
        let auth = started.auth.clone();
        let ready = started.auth_ready.clone();
        let seeded = tokio::select! {
            r = async {
                ready.wait("auth").await;
                let agent_key = seed_demo(auth.clone()).await?;
                Ok((agent_key, fresh_worker_key(auth).await?))
            } => r,
            Some(done) = started.tasks.join_next() => Err(lobby_server::flatten(done)
                .err()
                .unwrap_or_else(|| "a service stopped during start-up".into())),
        };
        match seeded {
            Ok((agent_key, worker_key)) => {
                print_banner(started.gateway, agent_key.as_deref(), &admin_token);
                print_workers_door(workers_door, records_door, certs.as_ref(), &worker_key);
            }
            Err(e) => {
                tracing::error!(error = %e, "demo seed failed; stopping");
                return Err(e);
            }
        }
    }
    lobby_server::run_until_stopped(started, &shutdown, stop.grace).await
}

/// Fresh certificates for this run, unless the operator named their own
/// (or asked for plaintext): a throwaway CA is worth nothing once the run
/// stops, so nothing is kept between runs.
fn throwaway_certs(settings: &Settings) -> Result<Option<DevCerts>, BoxError> {
    let own = settings.peek(grpc_tls::CA_FILE).is_some();
    if own || grpc_tls::plaintext(settings)? {
        return Ok(None);
    }
    let dir = DevConfig::from_settings(settings)?.certs_dir;
    Ok(Some(DevCerts::generate(&dir, SERVICES)?))
}

fn print_workers_door(
    door: std::net::SocketAddr,
    records: std::net::SocketAddr,
    certs: Option<&DevCerts>,
    key: &str,
) {
    let ca = certs.map_or_else(String::new, |c| {
        format!(" LOBBY_WORKER_CA_FILE={}", c.ca().display())
    });
    println!(
        "A GPU worker attaches through the workers' door with its own key (this run's; more with POST /admin/v1/workers/<id>/keys), and writes into its sessions' records through the session service's door:\n  LOBBY_WORKERS_URL=https://{door} LOBBY_SESSION_WORKERS_URL=https://{records}{ca} LOBBY_WORKER_KEY={key} WORKER_ID={DEMO_WORKER} cargo run -p lobby-worker --example accepting_worker\n"
    );
}

/// A new key for the demo worker, the earlier ones revoked: a key is shown
/// once, so each run prints its own and none outlives the run that
/// printed it.
async fn fresh_worker_key(auth: Arc<dyn Auth>) -> Result<String, BoxError> {
    let earlier = with_retry(|| {
        let auth = auth.clone();
        async move {
            auth.list_worker_keys(Request::new(ListWorkerKeysRequest {
                worker_id: DEMO_WORKER.into(),
            }))
            .await
        }
    })
    .await?
    .into_inner();
    for key in earlier.keys.into_iter().filter(|k| k.revoked_at_ms == 0) {
        auth.revoke_key(Request::new(KeyRef { prefix: key.prefix }))
            .await?;
    }
    let created = auth
        .create_worker_key(Request::new(CreateWorkerKeyRequest {
            worker_id: DEMO_WORKER.into(),
            account_id: String::new(),
            pool: "default".into(),
            name: "make run".into(),
            expires_at_ms: 0,
        }))
        .await?
        .into_inner();
    Ok(created.key)
}

/// Creates the demo account and agent unless they exist (a restart keeps
/// whatever an operator changed on them).
/// Returns the demo agent's key when this run created the agent (a key is
/// shown once; a restart prints none).
async fn seed_demo(auth: Arc<dyn Auth>) -> Result<Option<String>, BoxError> {
    let created = with_retry(|| {
        let auth = auth.clone();
        async move {
            auth.create_account(Request::new(CreateAccountRequest {
                id: DEMO_ACCOUNT.into(),
                name: "Demo account".into(),
                max_concurrency: Some(5),
                minutes_quota: Some(600),
                home_region: None,
            }))
            .await
        }
    })
    .await;
    created_unless_exists(created)?;
    let created = with_retry(|| {
        let auth = auth.clone();
        async move {
            auth.create_project(Request::new(CreateProjectRequest {
                id: DEMO_PROJECT.into(),
                account_id: DEMO_ACCOUNT.into(),
                name: "Demo project".into(),
            }))
            .await
        }
    })
    .await;
    created_unless_exists(created)?;
    let created = with_retry(|| {
        let auth = auth.clone();
        async move {
            auth.create_agent(Request::new(CreateAgentRequest {
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
                project_id: DEMO_PROJECT.into(),
            }))
            .await
        }
    })
    .await;
    Ok(created_unless_exists(created)?.and_then(|r| r.into_inner().agent_key.map(|k| k.key)))
}

/// What a create answered, `None` when the thing was there already (a
/// restart keeps whatever an operator changed on it).
fn created_unless_exists<T>(created: Result<T, tonic::Status>) -> Result<Option<T>, tonic::Status> {
    match created {
        Ok(r) => Ok(Some(r)),
        Err(s) if s.code() == tonic::Code::AlreadyExists => Ok(None),
        Err(s) => Err(s),
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

fn print_banner(gateway: std::net::SocketAddr, agent_key: Option<&str>, admin_token: &str) {
    println!(
        "\nLobby is running. Start a session with the demo agent:\n\n  curl -sS -X POST http://{gateway}/v1/public/agents/connect \\\n    -H 'Content-Type: application/json' \\\n    -d '{{\"agent_id\": \"{DEMO_AGENT}\"}}'\n"
    );
    match agent_key {
        Some(key) => println!(
            "The demo agent's key (shown once; rotate it with POST /admin/v1/agents/{DEMO_AGENT}/keys):\n  {key}\n  curl -sS -X POST http://{gateway}/api/agent/v1/session/create/ -H 'X-OTAS-AGENT-KEY: {key}'\n"
        ),
        None => println!("The demo agent's key was printed when it was created; rotate it with POST /admin/v1/agents/{DEMO_AGENT}/keys.\n"),
    }
    println!(
        "Session status, transcript, audio and summary (seed 003; the demo agent is in project {DEMO_PROJECT}) take an account API key; make one (shown once) with:\n  curl -sS -X POST http://{gateway}/admin/v1/accounts/{DEMO_ACCOUNT}/api-keys -H 'Authorization: Bearer {admin_token}' -H 'Content-Type: application/json' -d '{{\"scopes\": [\"sessions:read\", \"sessions:write\"]}}'\n  curl -sS 'http://{gateway}/v1/session/status?sessionId=<session_id>&type=project&projectId={DEMO_PROJECT}' -H 'x-api-key: <key>'\n"
    );
    println!("Health: curl -sS http://{gateway}/healthz   (Ctrl-C stops everything)\n");
}

/// `lobby-dev settings-reference [--write <doc>]`: the configuration
/// reference, printed or written between its marks in `<doc>`.
fn print_settings_reference(args: &[String]) -> Result<(), BoxError> {
    use lobby_dev::settings_reference::{entries, render, splice};
    let table = render(&entries()?);
    match args {
        [] => println!("{table}"),
        [flag, doc] if flag == "--write" => {
            let text = std::fs::read_to_string(doc)?;
            std::fs::write(doc, splice(&text, &table)?)?;
        }
        _ => return Err("usage: lobby-dev settings-reference [--write <doc>]".into()),
    }
    Ok(())
}
