//! A real `livekit-server --dev` on free loopback ports.
//!
//! The binary comes from `scripts/ensure-livekit.sh` (`make test` runs it).
//! When it is absent the LiveKit tests skip loudly, unless
//! `LOBBY_REQUIRE_LIVEKIT=1` (set by CI once the install succeeded) turns the
//! absence into a failure.

use crate::process::ChildGuard;
use std::{path::Path, path::PathBuf, process::Command, time::Duration};

pub const API_KEY: &str = "devkey";
pub const API_SECRET: &str = "secret";

pub fn binary() -> Option<PathBuf> {
    let candidates = [
        std::env::var("LOBBY_LIVEKIT_BIN").ok().map(PathBuf::from),
        std::env::var("LOBBY_TOOLS_DIR")
            .ok()
            .map(|d| PathBuf::from(d).join("bin/livekit-server")),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools/bin/livekit-server")),
    ];
    candidates.into_iter().flatten().find(|p| p.exists())
}

/// The binary, or `None` after a loud skip message.
pub fn binary_or_skip(test: &str) -> Option<PathBuf> {
    match binary() {
        Some(b) => Some(b),
        None if std::env::var("LOBBY_REQUIRE_LIVEKIT").is_ok_and(|v| v == "1") => {
            panic!("{test}: livekit-server is required (LOBBY_REQUIRE_LIVEKIT=1) but was not found; run scripts/ensure-livekit.sh")
        }
        None => {
            eprintln!(
                "\n*** SKIPPING {test}: no livekit-server binary (set LOBBY_LIVEKIT_BIN or run scripts/ensure-livekit.sh) ***\n"
            );
            None
        }
    }
}

pub struct LiveKitServer {
    pub port: u16,
    _guard: ChildGuard,
}

impl LiveKitServer {
    pub async fn start(binary: &Path, dir: &Path) -> Self {
        Self::start_with_webhook(binary, dir, None).await
    }

    /// Starts the server with its webhooks (signed with the API key) sent
    /// to `webhook_url`.
    pub async fn start_with_webhook(binary: &Path, dir: &Path, webhook_url: Option<&str>) -> Self {
        // Another test binary may bind a port between our probe and
        // LiveKit's own bind; then LiveKit exits at once and new ports fix it.
        for _ in 0..3 {
            match Self::try_start(binary, dir, webhook_url).await {
                Ok(server) => return server,
                Err(log) if log.contains("address already in use") => continue,
                Err(log) => panic!("livekit-server did not become ready: {log}"),
            }
        }
        panic!("livekit-server found its ports taken three times in a row")
    }

    async fn try_start(
        binary: &Path,
        dir: &Path,
        webhook_url: Option<&str>,
    ) -> Result<Self, String> {
        let [port, rtc_tcp, rtc_udp] = crate::free_ports(3)[..] else {
            unreachable!("free_ports(3) returns three ports")
        };
        let mut config = format!(
            "port: {port}\nbind_addresses: [\"127.0.0.1\"]\nrtc:\n  tcp_port: {rtc_tcp}\n  udp_port: {rtc_udp}\n  use_external_ip: false\n  node_ip: 127.0.0.1\nkeys:\n  {API_KEY}: {API_SECRET}\n"
        );
        if let Some(url) = webhook_url {
            config.push_str(&format!(
                "webhook:\n  api_key: {API_KEY}\n  urls:\n    - {url}\n"
            ));
        }
        let mut cmd = Command::new(binary);
        cmd.arg("--dev").arg("--config-body").arg(config);
        let guard = ChildGuard::spawn(&format!("livekit-{port}"), cmd, dir);
        let server = Self {
            port,
            _guard: guard,
        };
        server.wait_ready().await?;
        Ok(server)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn room_client(&self) -> livekit_api::services::room::RoomClient {
        livekit_api::services::room::RoomClient::with_api_key(&self.http_url(), API_KEY, API_SECRET)
            .with_failover(false)
    }

    /// Ok once the server answers; otherwise the tail of its log.
    async fn wait_ready(&self) -> Result<(), String> {
        let client = self.room_client();
        for _ in 0..200 {
            if client.list_rooms(vec![]).await.is_ok() {
                return Ok(());
            }
            let log = self._guard.log_tail();
            if log.contains("address already in use") {
                return Err(log);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!("port {}: {}", self.port, self._guard.log_tail()))
    }
}

/// The project venv's python (LiveKit's SDKs, the Python worker SDK).
pub fn python() -> String {
    std::env::var("LOBBY_PYTHON").unwrap_or_else(|_| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../.venv/bin/python")
            .display()
            .to_string()
    })
}

/// The project venv's Python; `None` (the caller skips, saying so) when
/// there is none and nothing asked for one (`make test` sets
/// `LOBBY_PYTHON` and makes the venv).
pub fn project_python() -> Option<String> {
    let python = python();
    if PathBuf::from(&python).exists() {
        return Some(python);
    }
    assert!(
        std::env::var_os("LOBBY_PYTHON").is_none(),
        "LOBBY_PYTHON names no interpreter: {python}"
    );
    eprintln!("no project venv ({python}): `make test` makes one; skipped");
    None
}

/// Verifies `token` with LiveKit's own Python SDK and returns its claims.
pub fn verify_with_python_sdk(token: &str) -> serde_json::Value {
    let python = python();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("py/verify_livekit_token.py");
    let out = Command::new(&python)
        .arg(&script)
        .args([API_KEY, API_SECRET, token])
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {python} (run scripts/ensure-venv.sh or set LOBBY_PYTHON): {e}")
        });
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "token verifier printed no JSON: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}
