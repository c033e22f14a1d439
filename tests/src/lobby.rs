//! A whole Lobby on a private Redis, in either deployment shape:
//! - split: auth, session, rooms, artifacts and one or more gateways as
//!   separate processes talking gRPC (as in Kubernetes);
//! - co-located: one `lobby-server` process per gateway, its services
//!   calling each other in-process (several of them are replicas).
//!
//! `LOBBY_TEST_TOPOLOGY=colocated` makes co-located the default, so the
//! whole suite runs in both shapes; tests about one shape ask for it.

use crate::{
    process::{binary, ChildGuard},
    redis_server::RedisServer,
};
use serde_json::{json, Value};
use std::{path::PathBuf, process::Command, time::Duration};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// Where rooms sends room requests.
#[derive(Debug, Clone)]
pub enum RoomProvider {
    /// Tokens only; no LiveKit server involved.
    TokenOnly,
    /// A LiveKit server at `ws_url` / `http_url` (may be a dead port on purpose).
    LiveKit { ws_url: String, http_url: String },
}

/// How the services are deployed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    Split,
    CoLocated,
}

impl Topology {
    /// What `LOBBY_TEST_TOPOLOGY` asks for (split unless it says colocated).
    pub fn from_env() -> Self {
        match std::env::var("LOBBY_TEST_TOPOLOGY").as_deref() {
            Ok("colocated") => Self::CoLocated,
            _ => Self::Split,
        }
    }
}

#[derive(Debug, Clone)]
pub struct LobbyOptions {
    pub topology: Topology,
    pub provider: RoomProvider,
    pub gateways: usize,
    pub extra_env: Vec<(String, String)>,
    /// Port of the first gateway, when something must know it in advance
    /// (a LiveKit server's webhook URL).
    pub gateway_port: Option<u16>,
    /// Attach a GPU worker that accepts every job (link starts need one).
    pub worker: bool,
    /// Redis with an append-only file, as in production (crash tests).
    pub redis_aof: bool,
    /// A real Redis Cluster of three masters instead of a single Redis.
    pub redis_cluster: bool,
    /// Wait until every gateway reports healthy before returning (the
    /// worker, when asked for, attaches only then).
    pub wait_healthy: bool,
    /// Certificates shared with other Lobbies (regions trust one another's
    /// doors through one CA); `None`: this Lobby's own throwaway ones.
    pub certs: Option<lobby_dev::certs::DevCerts>,
}

impl Default for LobbyOptions {
    fn default() -> Self {
        Self {
            topology: Topology::from_env(),
            provider: RoomProvider::TokenOnly,
            gateways: 1,
            extra_env: Vec::new(),
            gateway_port: None,
            worker: true,
            redis_aof: false,
            redis_cluster: false,
            wait_healthy: true,
            certs: None,
        }
    }
}

pub struct Lobby {
    pub topology: Topology,
    /// The worker attached when `LobbyOptions::worker` is set.
    pub worker: Option<crate::worker::TestWorker>,
    pub dir: PathBuf,
    /// How each process was started (name, binary, its own settings), so a
    /// crashed one can be started again; `env` is what they all share.
    specs: Vec<ServiceSpec>,
    env: Vec<(String, String)>,
    /// Milliseconds added to the services' clock (LOBBY_CLOCK_OFFSET_FILE).
    clock_file: PathBuf,
    pub redis: RedisServer,
    services: Vec<ChildGuard>,
    /// (service, gRPC URL) of auth, session, rooms and artifacts (those of
    /// them that listen in this shape), all behind mutual TLS.
    pub grpc: Vec<(&'static str, String)>,
    /// This Lobby's throwaway CA and per-service certificates.
    pub certs: lobby_dev::certs::DevCerts,
    /// The GPU workers' door (of the first server, when co-located).
    workers_url: String,
    /// The session service's door for what workers write into records.
    records_url: String,
    pub gateways: Vec<String>,
    pub http: reqwest::Client,
}

/// Where a test LiveKit server sends its webhooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Webhooks {
    Off,
    /// To the Lobby's gateway, as in production.
    ToLobby,
    /// To a port nobody listens on: every webhook is lost.
    Lost,
}

/// How one process is started: its name, binary and own settings.
type ServiceSpec = (String, String, Vec<(String, String)>);

fn spawn_service(
    dir: &std::path::Path,
    env: &[(String, String)],
    name: &str,
    bin: &str,
    extra: &[(String, String)],
) -> ChildGuard {
    let mut cmd = Command::new(binary(bin));
    cmd.env_clear();
    cmd.env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd.envs(env.iter().cloned()).envs(extra.iter().cloned());
    ChildGuard::spawn(name, cmd, dir)
}

impl Lobby {
    pub async fn start(options: LobbyOptions) -> Self {
        let dir = crate::scratch_dir("lobby");
        let redis = if options.redis_cluster {
            RedisServer::start_cluster(&dir, 3, options.redis_aof)
        } else {
            RedisServer::start_with(&dir, options.redis_aof)
        };
        Self::start_on(redis, dir, options).await
    }

    /// Starts the services on `redis`, whatever state it is in (it may
    /// still be loading its data); `dir` holds the logs.
    pub async fn start_on(redis: RedisServer, dir: PathBuf, options: LobbyOptions) -> Self {
        let clock_file = dir.join("clock-offset-ms");
        std::fs::write(&clock_file, "0").expect("clock file");
        // Every port at once, so that no two of this Lobby's are the same
        // (four services, and per gateway its own, plus a co-located
        // server's workers' and artifacts' listeners).
        let gateways_wanted = options.gateways.max(1);
        let mut ports = crate::free_ports(6 + gateways_wanted * 4).into_iter();
        let mut port = || ports.next().expect("enough ports");
        let (auth, session, rooms, artifacts) = (port(), port(), port(), port());
        let workers = port();
        let records_door = port();
        let certs = match &options.certs {
            Some(shared) => shared.clone(),
            None => {
                lobby_dev::certs::DevCerts::generate(&dir.join("certs"), lobby_dev::certs::SERVICES)
                    .expect("throwaway certificates")
            }
        };
        let mut env: Vec<(String, String)> = vec![
            ("LOBBY_REDIS_URL".into(), redis.url()),
            ("LOBBY_AUTH_LISTEN".into(), format!("127.0.0.1:{auth}")),
            (
                "LOBBY_SESSION_LISTEN".into(),
                format!("127.0.0.1:{session}"),
            ),
            ("LOBBY_ROOMS_LISTEN".into(), format!("127.0.0.1:{rooms}")),
            (
                "LOBBY_WORKERS_LISTEN".into(),
                format!("127.0.0.1:{workers}"),
            ),
            (
                "LOBBY_SESSION_WORKERS_LISTEN".into(),
                format!("127.0.0.1:{records_door}"),
            ),
            (
                "LOBBY_ARTIFACTS_LISTEN".into(),
                format!("127.0.0.1:{artifacts}"),
            ),
            ("LOBBY_AUTH_URL".into(), format!("https://127.0.0.1:{auth}")),
            (
                "LOBBY_SESSION_URL".into(),
                format!("https://127.0.0.1:{session}"),
            ),
            (
                "LOBBY_ROOMS_URL".into(),
                format!("https://127.0.0.1:{rooms}"),
            ),
            (
                "LOBBY_ARTIFACTS_URL".into(),
                format!("https://127.0.0.1:{artifacts}"),
            ),
            (
                "LOBBY_ARTIFACTS_DIR".into(),
                dir.join("artifacts").display().to_string(),
            ),
            ("LOBBY_ADMIN_TOKEN".into(), ADMIN_TOKEN.into()),
            ("LOBBY_LOG".into(), "info".into()),
            // The tests' avatar server is on loopback.
            ("LOBBY_AVATAR_ALLOW_PRIVATE_ADDRESSES".into(), "true".into()),
            ("LOBBY_WORKER_KEY_RECHECK_MS".into(), "300".into()),
            ("LOBBY_WORKER_ACCEPT_TIMEOUT_MS".into(), "1000".into()),
            ("LOBBY_WORKER_HEARTBEAT_INTERVAL_MS".into(), "200".into()),
            ("LOBBY_WORKER_HEARTBEAT_EXPIRY_MS".into(), "1000".into()),
            // Summary jobs are looked for often, and a dead consumer's job
            // is claimed again within seconds rather than a minute.
            ("LOBBY_SUMMARY_POLL_MS".into(), "100".into()),
            ("LOBBY_SUMMARY_CLAIM_IDLE_MS".into(), "2000".into()),
            // Tests start far more sessions a minute from one address than
            // a caller would; the edge suite sets its own limits.
            ("LOBBY_RATE_LIMIT_IP_PER_MINUTE".into(), "0".into()),
            ("LOBBY_RATE_LIMIT_AGENT_PER_MINUTE".into(), "0".into()),
            (
                "LOBBY_CLOCK_OFFSET_FILE".into(),
                clock_file.display().to_string(),
            ),
        ];
        match &options.provider {
            RoomProvider::TokenOnly => env.push(("LOBBY_LIVEKIT_MODE".into(), "token_only".into())),
            RoomProvider::LiveKit { ws_url, http_url } => {
                env.push(("LOBBY_LIVEKIT_MODE".into(), "server".into()));
                env.push(("LOBBY_LIVEKIT_URL".into(), ws_url.clone()));
                env.push(("LOBBY_LIVEKIT_API_URL".into(), http_url.clone()));
                env.push(("LOBBY_LIVEKIT_REQUEST_TIMEOUT_MS".into(), "2000".into()));
            }
        }
        env.extend(options.extra_env.iter().cloned());

        // Each process presents its own service's certificate.
        let mut specs: Vec<ServiceSpec> = match options.topology {
            Topology::Split => vec![
                ("auth".into(), "lobby-auth".into(), certs.settings("auth")),
                (
                    "session".into(),
                    "lobby-session".into(),
                    certs.settings("session"),
                ),
                (
                    "rooms".into(),
                    "lobby-rooms".into(),
                    certs.settings("rooms"),
                ),
                (
                    "artifacts".into(),
                    "lobby-artifacts".into(),
                    certs.settings("artifacts"),
                ),
            ],
            Topology::CoLocated => Vec::new(),
        };
        let mut gateways = Vec::new();
        let mut workers_urls = Vec::new();
        for i in 0..gateways_wanted {
            let gateway_port = match (i, options.gateway_port) {
                (0, Some(p)) => p,
                _ => port(),
            };
            let listen = (
                "LOBBY_GATEWAY_LISTEN".into(),
                format!("127.0.0.1:{gateway_port}"),
            );
            match options.topology {
                Topology::Split => {
                    let mut own = certs.settings("gateway");
                    own.push(listen);
                    specs.push((format!("gateway-{i}"), "lobby-gateway".into(), own))
                }
                Topology::CoLocated => {
                    // Each server is a whole replica: its own workers' and
                    // artifacts' listeners (the first one takes the shared ones).
                    let (door, uploads, records) = if i == 0 {
                        (workers, artifacts, records_door)
                    } else {
                        (port(), port(), port())
                    };
                    workers_urls.push(format!("https://127.0.0.1:{door}"));
                    let mut own = certs.settings("server");
                    own.extend([
                        listen,
                        ("LOBBY_PEERS".into(), "in_process".into()),
                        ("LOBBY_WORKERS_LISTEN".into(), format!("127.0.0.1:{door}")),
                        (
                            "LOBBY_SESSION_WORKERS_LISTEN".into(),
                            format!("127.0.0.1:{records}"),
                        ),
                        (
                            "LOBBY_ARTIFACTS_LISTEN".into(),
                            format!("127.0.0.1:{uploads}"),
                        ),
                    ]);
                    specs.push((format!("server-{i}"), "lobby-server".into(), own))
                }
            }
            gateways.push(format!("http://127.0.0.1:{gateway_port}"));
        }
        // Signed artifact URLs point at the first gateway.
        if !env.iter().any(|(k, _)| k == "LOBBY_PUBLIC_URL") {
            env.push(("LOBBY_PUBLIC_URL".into(), gateways[0].clone()));
        }
        let services = specs
            .iter()
            .map(|(name, bin, extra)| spawn_service(&dir, &env, name, bin, extra))
            .collect();
        let http = crate::http_client(Duration::from_secs(30));
        // Co-located servers call their services in-process; of the
        // internal APIs only artifacts listens.
        let (grpc, workers_url) = match options.topology {
            Topology::Split => (
                vec![
                    ("auth", format!("https://127.0.0.1:{auth}")),
                    ("session", format!("https://127.0.0.1:{session}")),
                    ("rooms", format!("https://127.0.0.1:{rooms}")),
                    ("artifacts", format!("https://127.0.0.1:{artifacts}")),
                ],
                format!("https://127.0.0.1:{workers}"),
            ),
            Topology::CoLocated => (
                vec![("artifacts", format!("https://127.0.0.1:{artifacts}"))],
                workers_urls[0].clone(),
            ),
        };
        let mut lobby = Self {
            topology: options.topology,
            worker: None,
            specs,
            env,
            dir,
            clock_file,
            redis,
            services,
            grpc,
            certs,
            workers_url,
            records_url: format!("https://127.0.0.1:{records_door}"),
            gateways,
            http,
        };
        if !options.wait_healthy {
            return lobby;
        }
        lobby.wait_healthy().await;
        if options.worker {
            let worker = crate::worker::TestWorker::start(
                &lobby.workers_door(),
                "test-worker",
                100,
                crate::worker::Behavior::Accept,
            )
            .await;
            lobby.worker = Some(worker);
        }
        lobby
    }

    /// `kill -9` by pid, usable while requests to the service are in flight.
    pub fn crash(&self, name: &str) {
        let pid = self
            .services
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| s.pid())
            .unwrap_or_else(|| panic!("no running service named {name}"));
        let status = Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -9 {pid} failed");
    }

    /// `kill -9` of every service process at once (Redis aside).
    pub fn crash_all(&mut self) {
        for service in &mut self.services {
            service.kill();
        }
    }

    /// Changes a setting every service shares, for the next (re)start.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
    }

    /// Starts every service again (after [`Lobby::crash_all`]), as their
    /// orchestrator would, and waits until the gateways see them up.
    pub async fn restart_all(&mut self) {
        self.services = self
            .specs
            .iter()
            .map(|(name, bin, extra)| spawn_service(&self.dir, &self.env, name, bin, extra))
            .collect();
        self.wait_healthy().await;
    }

    /// Starts a service killed with [`Lobby::kill`] or [`Lobby::crash`] again, as its
    /// orchestrator would, and waits until the gateways see everything up.
    pub async fn restart(&mut self, name: &str) {
        let (_, bin, extra) = self
            .specs
            .iter()
            .find(|(n, _, _)| n == name)
            .unwrap_or_else(|| panic!("no service named {name}"))
            .clone();
        let fresh = spawn_service(&self.dir, &self.env, name, &bin, &extra);
        if let Some(slot) = self.services.iter_mut().find(|s| s.name == name) {
            *slot = fresh;
        }
        self.wait_healthy().await;
    }

    /// A real `livekit-server --dev` and a Lobby using it, or `None` after a
    /// loud skip when the server binary is absent (see `livekit::binary_or_skip`).
    pub async fn start_on_livekit(
        test: &str,
        webhooks: Webhooks,
        options: LobbyOptions,
    ) -> Option<(crate::livekit::LiveKitServer, Lobby)> {
        let bin = crate::livekit::binary_or_skip(test)?;
        let gateway_port = options.gateway_port.unwrap_or_else(crate::free_port);
        let target = match webhooks {
            Webhooks::Off => None,
            Webhooks::ToLobby => Some(gateway_port),
            Webhooks::Lost => Some(crate::free_port()),
        };
        let url = target.map(|port| format!("http://127.0.0.1:{port}/webhooks/livekit"));
        let dir = crate::scratch_dir("livekit");
        let server =
            crate::livekit::LiveKitServer::start_with_webhook(&bin, &dir, url.as_deref()).await;
        let lobby = Lobby::start(LobbyOptions {
            provider: RoomProvider::LiveKit {
                ws_url: server.ws_url(),
                http_url: server.http_url(),
            },
            gateway_port: Some(gateway_port),
            ..options
        })
        .await;
        Some((server, lobby))
    }

    /// Where GPU workers attach, and the CA to trust it by.
    pub fn workers_door(&self) -> crate::worker::WorkerDoor {
        crate::worker::WorkerDoor {
            url: self.workers_url.clone(),
            records_url: self.records_url.clone(),
            ca_pem: std::fs::read_to_string(self.certs.ca()).expect("the test CA"),
            gateway: self.gateway().to_owned(),
            http: self.http.clone(),
        }
    }

    /// The TLS an internal caller uses (the gateway's certificate).
    pub fn grpc_tls(&self) -> lobby_kit::grpc_tls::GrpcTls {
        let settings = lobby_kit::Settings::from_pairs(self.certs.settings("gateway"));
        lobby_kit::grpc_tls::GrpcTls::from_settings(&settings).expect("the test certificates")
    }

    /// A channel to an internal service, presenting the gateway's certificate.
    pub fn grpc_channel(&self, url: &str) -> tonic::transport::Channel {
        lobby_kit::grpc::lazy_channel(url, Duration::from_secs(5), &self.grpc_tls())
            .expect("a valid URL")
    }

    /// The services that are no longer running (none, normally).
    pub fn exited_services(&mut self) -> Vec<String> {
        self.services
            .iter_mut()
            .filter_map(|s| (!s.is_running()).then(|| s.name.clone()))
            .collect()
    }

    /// The names of this Lobby's service processes.
    pub fn service_names(&self) -> Vec<String> {
        self.services.iter().map(|s| s.name.clone()).collect()
    }

    /// Log of one service, whole.
    pub fn log(&self, name: &str) -> String {
        self.services
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| std::fs::read_to_string(&s.log).ok())
            .unwrap_or_default()
    }

    /// Waits (up to a minute) until every gateway's `/healthz` is 200.
    pub async fn wait_healthy(&self) {
        for gateway in &self.gateways {
            let mut last = String::new();
            let healthy = 'wait: {
                for _ in 0..1200 {
                    match self.http.get(format!("{gateway}/healthz")).send().await {
                        Ok(r) if r.status() == 200 => break 'wait true,
                        Ok(r) => last = r.text().await.unwrap_or_default(),
                        Err(e) => last = e.to_string(),
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                false
            };
            if !healthy {
                let logs: Vec<String> = self
                    .services
                    .iter()
                    .map(|s| format!("--- {}\n{}", s.name, s.log_tail()))
                    .collect();
                panic!(
                    "Lobby did not become healthy ({last}); logs in {}:\n{}",
                    self.dir.display(),
                    logs.join("\n")
                );
            }
        }
    }

    /// Moves the services' clock forward by `ms` (expiry without sleeping).
    pub fn advance_clock(&self, ms: i64) {
        let now: i64 = std::fs::read_to_string(&self.clock_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        std::fs::write(&self.clock_file, (now + ms).to_string()).expect("clock file");
    }

    pub fn gateway(&self) -> &str {
        &self.gateways[0]
    }

    /// Sends SIGTERM to one process (it is left to exit by itself).
    pub fn terminate(&self, name: &str) {
        self.services
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no service named {name}"))
            .terminate();
    }

    /// Waits up to `within` for one process to exit; its exit status, or
    /// `None` if it is still running.
    pub async fn wait_exit(
        &mut self,
        name: &str,
        within: Duration,
    ) -> Option<std::process::ExitStatus> {
        let service = self
            .services
            .iter_mut()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no service named {name}"));
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Some(status) = service.exit_status() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// The first gateway's process: the gateway itself when split, the
    /// whole server when co-located.
    pub fn gateway_process(&self) -> &'static str {
        match self.topology {
            Topology::Split => "gateway-0",
            Topology::CoLocated => "server-0",
        }
    }

    /// Kills one service process (`auth`, `session`, `rooms`, …) with SIGKILL.
    pub fn kill(&mut self, name: &str) {
        let service = self
            .services
            .iter_mut()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no service named {name}"));
        service.kill();
    }

    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}/admin/v1{path}", self.gateway()))
            .bearer_auth(ADMIN_TOKEN)
    }

    /// Creates an account and returns its id.
    pub async fn create_account(&self, max_concurrency: u32) -> String {
        let r = self
            .admin(reqwest::Method::POST, "/accounts")
            .json(&json!({ "name": "test", "max_concurrency": max_concurrency }))
            .send()
            .await
            .expect("create account");
        assert_eq!(
            r.status(),
            201,
            "create account: {}",
            r.text().await.unwrap_or_default()
        );
        r.json::<Value>().await.expect("account json")["id"]
            .as_str()
            .expect("id")
            .to_owned()
    }

    /// Creates a published agent and returns its id.
    pub async fn create_agent(&self, account_id: &str, fields: Value) -> String {
        self.create_agent_json(account_id, fields).await["id"]
            .as_str()
            .expect("id")
            .to_owned()
    }

    /// Creates a published agent (as `create_agent_json`); returns its id
    /// and its first agent key.
    pub async fn create_agent_with_key(&self, account_id: &str, fields: Value) -> (String, String) {
        let created = self.create_agent_json(account_id, fields).await;
        let field = |v: &Value| v.as_str().expect("agent id and key").to_owned();
        (field(&created["id"]), field(&created["agent_key"]["key"]))
    }

    /// Creates a published agent; `fields` override the defaults. Returns the
    /// whole answer, with the agent's first key under `agent_key.key`.
    pub async fn create_agent_json(&self, account_id: &str, fields: Value) -> Value {
        let mut body = json!({
            "account_id": account_id,
            "status": "published",
            "allowed_hostnames": ["*"],
        });
        if let (Some(b), Some(f)) = (body.as_object_mut(), fields.as_object()) {
            b.extend(f.clone());
        }
        let r = self
            .admin(reqwest::Method::POST, "/agents")
            .json(&body)
            .send()
            .await
            .expect("create agent");
        assert_eq!(
            r.status(),
            201,
            "create agent: {}",
            r.text().await.unwrap_or_default()
        );
        r.json::<Value>().await.expect("agent json")
    }

    /// An admin call with a JSON body; returns (status, body).
    pub async fn admin_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.admin(method, path);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("admin call");
        let status = r.status().as_u16();
        let text = r.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Creates an account API key with `scopes` and returns the full key.
    pub async fn create_api_key(&self, account_id: &str, scopes: &[&str]) -> String {
        let (s, b) = self
            .admin_json(
                reqwest::Method::POST,
                &format!("/accounts/{account_id}/api-keys"),
                Some(json!({ "scopes": scopes })),
            )
            .await;
        assert_eq!(s, 201, "create api key: {b}");
        b["key"].as_str().expect("key").to_owned()
    }

    /// Creates a link through the admin API; `fields` add to `agent_id`.
    pub async fn create_link(&self, account_id: &str, agent_id: &str, fields: Value) -> Value {
        let mut body = json!({ "agent_id": agent_id });
        if let (Some(b), Some(f)) = (body.as_object_mut(), fields.as_object()) {
            b.extend(f.clone());
        }
        let (s, b) = self
            .admin_json(
                reqwest::Method::POST,
                &format!("/accounts/{account_id}/links"),
                Some(body),
            )
            .await;
        assert_eq!(s, 201, "create link: {b}");
        b
    }

    /// Sets an account's fields through the admin API.
    pub async fn patch_account(&self, account_id: &str, fields: Value) {
        let (s, b) = self
            .admin_json(
                reqwest::Method::PATCH,
                &format!("/accounts/{account_id}"),
                Some(fields),
            )
            .await;
        assert_eq!(s, 200, "patch account: {b}");
    }

    pub async fn usage(&self, account_id: &str) -> Value {
        let (s, b) = self
            .admin_json(
                reqwest::Method::GET,
                &format!("/accounts/{account_id}/usage"),
                None,
            )
            .await;
        assert_eq!(s, 200, "usage: {b}");
        b
    }

    /// `POST /v1/public/agents/connect` on gateway `i`, with an optional Origin.
    pub async fn connect_via(
        &self,
        i: usize,
        body: Value,
        origin: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self
            .http
            .post(format!("{}/v1/public/agents/connect", self.gateways[i]))
            .json(&body);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        req.send().await.expect("connect request")
    }

    /// `POST /v1/links/start-session` (seed 002) on the first gateway.
    pub async fn start_link(&self, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/links/start-session", self.gateway()))
            .json(body)
            .send()
            .await
            .expect("start-session request")
    }

    pub async fn connect(&self, agent_id: &str, origin: Option<&str>) -> reqwest::Response {
        self.connect_via(0, json!({ "agent_id": agent_id }), origin)
            .await
    }

    pub async fn end_session(&self, session_id: &str) -> Value {
        let r = self
            .admin(
                reqwest::Method::POST,
                &format!("/sessions/{session_id}/end"),
            )
            .send()
            .await
            .expect("end session");
        assert_eq!(
            r.status(),
            200,
            "end session: {}",
            r.text().await.unwrap_or_default()
        );
        r.json().await.expect("session json")
    }

    /// The account's `database_id_hash` (the records contract's header).
    pub async fn database_id_hash(&self, account_id: &str) -> String {
        let (status, account) = self
            .admin_json(
                reqwest::Method::GET,
                &format!("/accounts/{account_id}"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{account}");
        account["database_id_hash"]
            .as_str()
            .expect("database_id_hash")
            .to_owned()
    }

    /// `GET /api/session?{query}` of the records contract, as the account
    /// (a fresh read key): the listed records.
    pub async fn records(&self, account_id: &str, query: &str) -> Value {
        let key = self.create_api_key(account_id, &["sessions:read"]).await;
        let r = self
            .http
            .get(format!("{}/api/session?{query}", self.gateway()))
            .bearer_auth(key)
            .header("database-id-hash", self.database_id_hash(account_id).await)
            .send()
            .await
            .expect("records");
        assert_eq!(r.status(), 200);
        r.json().await.expect("records json")
    }

    pub async fn active_sessions(&self, account_id: &str) -> u64 {
        let r = self
            .admin(
                reqwest::Method::GET,
                &format!("/accounts/{account_id}/usage"),
            )
            .send()
            .await
            .expect("usage");
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.expect("usage json")["active_sessions"]
            .as_u64()
            .expect("count")
    }
}
