//! Plumbing shared by every Lobby service. Business rules never live here: if
//! two services need the same rule, one owns it and the other calls it.

pub mod background;
pub mod backoff;
pub mod config;
pub mod error_code;
pub mod grpc;
pub mod keys;
pub mod metrics;
pub mod readiness;
pub mod redis_conn;
pub mod shutdown;
pub mod telemetry;
pub mod time;

pub use config::{ConfigError, Settings};
pub use error_code::ErrorCode;
pub use readiness::Readiness;
