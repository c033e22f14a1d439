//! What `make run` and the tests need beside the services themselves.

pub mod certs;
pub mod settings_help;
pub mod settings_reference;

use lobby_kit::{ConfigError, Settings};
use std::path::PathBuf;

/// What `lobby-dev` adds to `lobby-server`'s settings.
#[derive(Debug, Clone)]
pub struct DevConfig {
    /// Seed the demo account, project, agent and worker key.
    pub seed_demo: bool,
    /// Where this run's throwaway certificates are written.
    pub certs_dir: PathBuf,
}

impl DevConfig {
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        Ok(Self {
            seed_demo: s.get_or("LOBBY_DEV_SEED_DEMO", true)?,
            certs_dir: s.string_or("LOBBY_DEV_CERTS_DIR", ".run/certs").into(),
        })
    }
}
