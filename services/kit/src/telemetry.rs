//! Structured logs with `tracing`: human-readable by default, JSON lines when
//! `LOBBY_LOG_FORMAT=json` (what a log pipeline in a cluster wants).

use crate::{ConfigError, Settings};
use tracing_subscriber::{fmt, EnvFilter};

const DEFAULT_FILTER: &str = "info,h2=warn,hyper=warn,tower=warn";

/// How a process logs, read with the rest of its settings.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// An `EnvFilter` directive list, e.g. `info,lobby_kit::metrics=debug`.
    pub filter: String,
    pub json: bool,
}

impl TelemetryConfig {
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        let filter = s.string_or("LOBBY_LOG", DEFAULT_FILTER);
        if let Err(e) = EnvFilter::try_new(&filter) {
            return Err(ConfigError::Invalid {
                setting: "LOBBY_LOG".into(),
                reason: e.to_string(),
            });
        }
        let json = match s.string_or("LOBBY_LOG_FORMAT", "text").as_str() {
            "text" => false,
            "json" => true,
            other => {
                return Err(ConfigError::Invalid {
                    setting: "LOBBY_LOG_FORMAT".into(),
                    reason: format!("{other:?} is not text or json"),
                })
            }
        };
        Ok(Self { filter, json })
    }
}

pub fn init(service: &str, config: &TelemetryConfig) {
    let filter =
        EnvFilter::try_new(&config.filter).unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = fmt().with_env_filter(filter).with_target(true);
    // A second init (the dev binary runs every service in one process) is harmless.
    let _ = if config.json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    tracing::info!(service, "telemetry ready");
}
