//! Harness for Lobby's integration tests: real binaries as separate
//! processes, a private `redis-server` on a free port, and optionally a real
//! `livekit-server --dev`. Every process a test starts is killed when the
//! owning guard drops, pass or fail.

pub mod avatar_server;
pub mod daily_mock;
pub mod failover;
pub mod livekit;
pub mod lobby;
pub mod otlp_collector;
pub mod process;
pub mod redis_proxy;
pub mod redis_server;
pub mod s3_server;
pub mod summarizer_standin;
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

/// Near misses of the origin `https://example.com`: none may pass an
/// allowlist that holds only it.
pub const ORIGIN_SPOOFS: &[&str] = &[
    "https://example.com.evil.net",
    "https://evilexample.com",
    "null",
    "https://EXAMPLE.COM",
    "https://example.com:8443",
    "http://example.com",
    "https://sub.example.com",
    "https://example.com/",
];

/// Ports handed to test servers come from below the kernel's ephemeral range
/// (32768 and up here), so an outgoing connection of a busy test binary can
/// never take a port between our probe and the server's own bind, which is
/// how a port picked with `bind(0)` got lost. The band leaves room for a
/// Redis Cluster bus port (`port + 10000`) that stays below it too.
const PORT_BAND: std::ops::Range<u16> = 12_000..22_000;

/// A free TCP port on loopback, distinct from every other port this process
/// handed out, drawn at random from `PORT_BAND` so that test binaries running
/// side by side rarely probe the same one.
pub fn free_port() -> u16 {
    free_ports(1)[0]
}

/// `n` distinct free TCP ports on loopback (see `free_port`).
pub fn free_ports(n: usize) -> Vec<u16> {
    use std::hash::{BuildHasher, Hasher};
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let state = std::collections::hash_map::RandomState::new();
    let span = u64::from(PORT_BAND.end - PORT_BAND.start);
    let mut ports = Vec::with_capacity(n);
    for attempt in 0u64.. {
        if ports.len() == n {
            break;
        }
        assert!(attempt < 100_000, "no free loopback port in {PORT_BAND:?}");
        let mut hasher = state.build_hasher();
        hasher.write_u64(attempt);
        let port = PORT_BAND.start + (hasher.finish() % span) as u16;
        let bindable = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
        if !handed_out.contains(&port) && bindable(port) && bindable(port + 10_000) {
            handed_out.push(port);
            ports.push(port);
        }
    }
    ports
}

/// A fresh folder for one test's logs and data.
pub fn scratch_dir(label: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir()
        .join("lobby-tests")
        .join(format!("{label}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}
