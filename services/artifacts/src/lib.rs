//! Lobby's artifacts service: session artifacts in the object store
//! (`accounts/{acct}/sessions/{id}/…`), chunked uploads, signed URLs, and
//! the summary jobs.

pub mod error;
pub mod service;
pub mod signing;
pub mod store;
pub mod summary;
pub mod uploads;

use lobby_kit::{redis_conn::RedisSettings, ConfigError, Settings};
use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};
use store::StoreConfig;
use summary::{jobs::JobSettings, summarizer::SummarizerConfig};

/// `s` split at `sep` into exactly `N` parts, or `None`.
pub(crate) fn split_exact<const N: usize>(s: &str, sep: char) -> Option<[&str; N]> {
    s.split(sep).collect::<Vec<_>>().try_into().ok()
}

#[derive(Debug, Clone)]
pub struct ArtifactsConfig {
    pub listen: SocketAddr,
    /// Mutual TLS for its gRPC (or explicit plaintext).
    pub grpc_tls: lobby_kit::grpc_tls::GrpcTls,
    /// Plaintext health for the kubelet (`LOBBY_PROBES_LISTEN`).
    pub probes_listen: Option<SocketAddr>,
    /// Where `/metrics` is served (`LOBBY_ARTIFACTS_METRICS_LISTEN`): the gRPC calls it
    /// answers and its Redis round trips; `None` serves none.
    pub metrics_listen: Option<SocketAddr>,
    pub redis: RedisSettings,
    /// How it stops on SIGTERM (its binary's drain delay and grace).
    pub shutdown: lobby_kit::shared_settings::ShutdownSettings,
    pub store: StoreConfig,
    pub public_base_url: String,
    /// (key id, secret) for signed URLs and upload ids: the first signs,
    /// all verify.
    pub signing_keys: Vec<(String, Vec<u8>)>,
    pub max_audio_bytes: u64,
    pub jobs: JobSettings,
    /// How often an idle consumer looks for summary jobs.
    pub summary_poll: Duration,
    pub summarizer: SummarizerConfig,
}

impl ArtifactsConfig {
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        let signing_secret = s.string_or(
            "LOBBY_ARTIFACTS_SIGNING_SECRET",
            lobby_kit::production::dev_default("LOBBY_ARTIFACTS_SIGNING_SECRET"),
        );
        Settings::ensure(
            "LOBBY_ARTIFACTS_SIGNING_SECRET",
            signing_secret.len() >= 16,
            "must be at least 16 characters",
        )?;
        let mut signing_keys = vec![(
            s.string_or("LOBBY_ARTIFACTS_SIGNING_KEY_ID", "k1"),
            signing_secret.into_bytes(),
        )];
        // Keys rotated out keep verifying the URLs they signed (an hour).
        for entry in s
            .string_or("LOBBY_ARTIFACTS_PREVIOUS_SIGNING_KEYS", "")
            .split(',')
            .filter(|e| !e.trim().is_empty())
        {
            let parsed = entry.trim().split_once(':');
            Settings::ensure(
                "LOBBY_ARTIFACTS_PREVIOUS_SIGNING_KEYS",
                parsed.is_some_and(|(id, secret)| !id.is_empty() && secret.len() >= 16),
                "must be a comma-separated list of <key id>:<secret of 16+ characters>",
            )?;
            if let Some((id, secret)) = parsed {
                signing_keys.push((id.to_owned(), secret.as_bytes().to_vec()));
            }
        }
        let store = match s.string_or("LOBBY_ARTIFACTS_STORE", "fs").as_str() {
            "fs" => StoreConfig::Filesystem {
                root: PathBuf::from(s.string_or("LOBBY_ARTIFACTS_DIR", ".run/artifacts")),
            },
            "s3" => {
                let bucket = s.string_or("LOBBY_S3_BUCKET", "");
                Settings::ensure(
                    "LOBBY_S3_BUCKET",
                    !bucket.is_empty(),
                    "is required with LOBBY_ARTIFACTS_STORE=s3",
                )?;
                StoreConfig::S3 {
                    bucket,
                    endpoint: s.string_or("LOBBY_S3_ENDPOINT", ""),
                    region: s.string_or("LOBBY_S3_REGION", "us-east-1"),
                    access_key_id: s.string_or("LOBBY_S3_ACCESS_KEY_ID", ""),
                    secret_access_key: s.string_or("LOBBY_S3_SECRET_ACCESS_KEY", ""),
                }
            }
            _ => {
                return Err(ConfigError::Invalid {
                    setting: "LOBBY_ARTIFACTS_STORE".into(),
                    reason: "must be fs or s3".into(),
                })
            }
        };
        let summarizer_timeout =
            Duration::from_millis(s.get_or("LOBBY_SUMMARIZER_TIMEOUT_MS", 30_000)?);
        let summarizer = match s.string_or("LOBBY_SUMMARIZER", "textrank").as_str() {
            "textrank" => SummarizerConfig::TextRank,
            "openai" => {
                let url = s.string_or("LOBBY_SUMMARIZER_URL", "");
                Settings::ensure("LOBBY_SUMMARIZER_URL", url.starts_with("http"), "is required with LOBBY_SUMMARIZER=openai (the API base URL, e.g. https://api.openai.com/v1)")?;
                SummarizerConfig::OpenAi {
                    url,
                    model: s.string_or("LOBBY_SUMMARIZER_MODEL", "gpt-4o-mini"),
                    api_key: s.string_or("LOBBY_SUMMARIZER_API_KEY", ""),
                    timeout: summarizer_timeout,
                }
            }
            _ => {
                return Err(ConfigError::Invalid {
                    setting: "LOBBY_SUMMARIZER".into(),
                    reason: "must be textrank or openai".into(),
                })
            }
        };
        let claim_idle = Duration::from_millis(s.get_or("LOBBY_SUMMARY_CLAIM_IDLE_MS", 60_000)?);
        // A job still being worked on must not look abandoned.
        Settings::ensure(
            "LOBBY_SUMMARY_CLAIM_IDLE_MS",
            claim_idle > summarizer_timeout || matches!(summarizer, SummarizerConfig::TextRank),
            "must be longer than LOBBY_SUMMARIZER_TIMEOUT_MS",
        )?;
        let forget_consumers_after =
            Duration::from_millis(s.get_or("LOBBY_SUMMARY_CONSUMER_FORGET_MS", 600_000)?);
        Settings::ensure(
            "LOBBY_SUMMARY_CONSUMER_FORGET_MS",
            forget_consumers_after >= claim_idle,
            "must be at least LOBBY_SUMMARY_CLAIM_IDLE_MS",
        )?;
        let max_attempts: u32 = s.get_or("LOBBY_SUMMARY_MAX_ATTEMPTS", 5)?;
        Settings::ensure(
            "LOBBY_SUMMARY_MAX_ATTEMPTS",
            max_attempts >= 1,
            "must be at least 1",
        )?;
        Ok(Self {
            listen: s.get_or(
                "LOBBY_ARTIFACTS_LISTEN",
                SocketAddr::from(([127, 0, 0, 1], 50054)),
            )?,
            grpc_tls: lobby_kit::grpc_tls::GrpcTls::from_settings(s)?,
            probes_listen: lobby_kit::grpc::probes_setting(s)?,
            metrics_listen: lobby_kit::metrics::listen_setting(
                s,
                "LOBBY_ARTIFACTS_METRICS_LISTEN",
            )?,
            redis: RedisSettings::from_settings(s)?,
            shutdown: lobby_kit::shared_settings::ShutdownSettings::from_settings(s)?,
            store,
            public_base_url: s.string_or("LOBBY_PUBLIC_URL", "http://127.0.0.1:8080"),
            signing_keys,
            max_audio_bytes: s.get_or("LOBBY_ARTIFACTS_MAX_AUDIO_BYTES", 512 * 1024 * 1024)?,
            jobs: JobSettings {
                max_attempts,
                claim_idle,
                state_ttl: Duration::from_secs(
                    s.get_or::<u64>("LOBBY_SUMMARY_STATE_TTL_DAYS", 30)? * 86_400,
                ),
                forget_consumers_after,
            },
            summary_poll: Duration::from_millis(s.get_or("LOBBY_SUMMARY_POLL_MS", 500)?),
            summarizer,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Redis(#[from] lobby_kit::redis_conn::RedisConnectError),
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("object store: {0}")]
    Store(#[from] error::ArtifactsError),
}

pub struct Running {
    pub service: Arc<service::ArtifactsService>,
    pub ready: lobby_kit::Readiness,
    _background: lobby_kit::background::Background,
}

/// Builds the artifacts service on `redis` and starts its background work:
/// the summary consumer and the sweep of abandoned uploads.
pub fn start(
    config: ArtifactsConfig,
    redis: &lobby_kit::redis_conn::Redis,
) -> Result<Running, ServeError> {
    let store = store::ArtifactStore::open(&config.store)?;
    let signer = signing::UrlSigner::new(config.signing_keys, config.public_base_url);
    let uploads = uploads::Uploads::new(store.clone(), signer.clone(), config.max_audio_bytes);
    let jobs = Arc::new(summary::jobs::SummaryJobs::new(
        redis.connection(),
        config.jobs,
    ));
    let summarizer = Arc::new(summary::summarizer::Summarizer::new(config.summarizer));
    let mut background = lobby_kit::background::Background::default();
    if let Some(task) = lobby_kit::metrics::spawn_process_only(config.metrics_listen) {
        background.adopt(task);
    }
    background.spawn(summary::worker::run(
        jobs.clone(),
        store.clone(),
        summarizer,
        config.summary_poll,
    ));
    let sweeper = uploads.clone();
    background.spawn(async move {
        loop {
            match sweeper.sweep_stale().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(parts = n, "abandoned upload parts deleted"),
                Err(e) => tracing::warn!(error = %e, "sweeping abandoned uploads failed"),
            }
            tokio::time::sleep(Duration::from_secs(600)).await;
        }
    });
    Ok(Running {
        service: Arc::new(service::ArtifactsService::new(store, signer, uploads, jobs)),
        ready: redis.readiness(),
        _background: background,
    })
}

/// Serves `running`'s gRPC API on `listener` until `shutdown` resolves.
pub async fn serve_on(
    listener: lobby_kit::grpc::Listener,
    running: &Running,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    lobby_kit::grpc::serve(
        listener,
        lobby_proto::artifacts::artifacts_server::ArtifactsServer::from_arc(
            running.service.clone(),
        ),
        running.ready.clone(),
        shutdown,
    )
    .await
}

/// Serves the artifacts gRPC API until `shutdown` resolves.
pub async fn serve(
    config: ArtifactsConfig,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let redis = lobby_kit::redis_conn::Redis::open(&config.redis)?;
    let listener =
        lobby_kit::grpc::Listener::internal(config.listen, &config.grpc_tls, config.probes_listen);
    let running = start(config, &redis)?;
    serve_on(listener, &running, shutdown).await?;
    Ok(())
}
