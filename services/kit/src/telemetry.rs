//! Structured logs with `tracing`: human-readable by default, JSON lines when
//! `LOBBY_LOG_FORMAT=json` (what a log pipeline in a cluster wants).

use tracing_subscriber::{fmt, EnvFilter};

pub fn init(service: &str) {
    let filter = EnvFilter::try_from_env("LOBBY_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,h2=warn,hyper=warn,tower=warn"));
    let json = std::env::var("LOBBY_LOG_FORMAT").is_ok_and(|f| f == "json");
    let builder = fmt().with_env_filter(filter).with_target(true);
    // A second init (the dev binary runs every service in one process) is harmless.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    tracing::info!(service, "telemetry ready");
}
