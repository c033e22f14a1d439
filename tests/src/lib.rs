//! Harness for Lobby's integration tests: real binaries as separate
//! processes, a private `redis-server` on a free port, and optionally a real
//! `livekit-server --dev`. Every process a test starts is killed when the
//! owning guard drops, pass or fail.

pub mod avatar_server;
pub mod daily_mock;
pub mod livekit;
pub mod lobby;
pub mod process;
pub mod redis_server;
pub mod sustained;
pub mod webhooks;
pub mod worker;

pub use lobby::{Lobby, LobbyOptions, RoomProvider, Topology, Webhooks};

/// An HTTP client for tests and benchmarks. livekit-api turns on reqwest's
/// `rustls-no-provider`, so a plain builder panics unless a process-wide
/// crypto provider is installed first (ring, the one livekit-api uses).
pub fn http_client(timeout: std::time::Duration) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(timeout)
        .build()
        .expect("http client")
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// A free TCP port on loopback (bound, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// `n` distinct free TCP ports on loopback, all bound at once before any is
/// released (so they differ from each other).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("no free loopback port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("bound").port())
        .collect()
}

/// A fresh folder for one test's logs and data.
pub fn scratch_dir(label: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir()
        .join("lobby-tests")
        .join(format!("{label}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}
