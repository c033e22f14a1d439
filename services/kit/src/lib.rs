//! Plumbing shared by every Lobby service. Business rules never live here: if
//! two services need the same rule, one owns it and the other calls it.

pub mod artifact_upload;
pub mod audit;
pub mod background;
pub mod backoff;
pub mod config;
pub mod error_code;
pub mod grpc;
pub mod grpc_tls;
pub mod https;
pub mod keys;
pub mod liveness;
pub mod metrics;
pub mod production;
pub mod readiness;
pub mod redis_cluster;
pub mod redis_conn;
pub mod regions;
pub mod shared_settings;
pub mod shutdown;
pub mod telemetry;
pub mod time;

pub use config::{ConfigError, SettingRead, Settings};
pub use error_code::ErrorCode;
pub use readiness::Readiness;

/// Every Lobby binary links this crate, so this is their allocator. A start
/// allocates a lot of small, short-lived buffers (HTTP, protobuf, Redis
/// arguments, tokens); under load the system allocator took about a quarter
/// of the CPU of a start (a `perf` profile of `make bench`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
