//! Redis for every service: one multiplexed connection, and a watcher that
//! knows whether Redis answers right now.
//!
//! Redis being down or still loading its data set (`LOADING` while it
//! replays a large AOF) is a wait, never a reason to exit: a service starts,
//! serves liveness, stays unready until Redis answers `PING`, and follows
//! Redis going away and coming back for as long as it runs.

use crate::{backoff::Backoff, readiness, ConfigError, Readiness, Settings};
use redis::{
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
    cluster_async::ClusterConnection,
    Cmd, Pipeline, RedisFuture, Value,
};
use std::{
    future::Future,
    time::{Duration, Instant},
};

/// How often a healthy Redis is pinged: how soon an outage is noticed.
const HEALTHY_PING_INTERVAL: Duration = Duration::from_millis(500);
const PING_TIMEOUT: Duration = Duration::from_secs(2);
const FIRST_RETRY: Duration = Duration::from_millis(100);

/// The scheme that names a Redis Cluster by one or more of its nodes:
/// `redis+cluster://host1:port1,host2:port2`.
pub const CLUSTER_SCHEME: &str = "redis+cluster://";

/// The Redis settings every service shares, declared once.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `redis://host:port[/db]`, or a cluster as `redis+cluster://h1:p1,h2:p2`.
    pub url: String,
    /// The longest wait between two attempts while Redis does not answer.
    pub retry_max: Duration,
    /// How long Redis may stay unanswering before it is reported as an
    /// error (and again every such period while it lasts).
    pub report_after: Duration,
}

impl RedisSettings {
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        let retry_max_ms: u64 = s.get_or("LOBBY_REDIS_RETRY_MAX_MS", 2_000)?;
        Settings::ensure(
            "LOBBY_REDIS_RETRY_MAX_MS",
            (100..=60_000).contains(&retry_max_ms),
            "must be between 100 and 60000",
        )?;
        let report_after_ms: u64 = s.get_or("LOBBY_REDIS_UNAVAILABLE_REPORT_MS", 30_000)?;
        Settings::ensure(
            "LOBBY_REDIS_UNAVAILABLE_REPORT_MS",
            report_after_ms >= 1_000,
            "must be at least 1000",
        )?;
        let url = s.string_or("LOBBY_REDIS_URL", "redis://127.0.0.1:6379");
        let settings = Self {
            url,
            retry_max: Duration::from_millis(retry_max_ms),
            report_after: Duration::from_millis(report_after_ms),
        };
        for node in settings.nodes() {
            if let Err(e) = redis::Client::open(node.as_str()) {
                return Err(ConfigError::Invalid {
                    setting: "LOBBY_REDIS_URL".into(),
                    reason: format!("{node}: {e}"),
                });
            }
        }
        Ok(settings)
    }

    pub fn is_cluster(&self) -> bool {
        self.url.starts_with(CLUSTER_SCHEME)
    }

    /// Every node named, each as a plain `redis://` URL.
    pub fn nodes(&self) -> Vec<String> {
        match self.url.strip_prefix(CLUSTER_SCHEME) {
            None => vec![self.url.clone()],
            Some(rest) => {
                let (auth, hosts) = match rest.rsplit_once('@') {
                    Some((auth, hosts)) => (format!("{auth}@"), hosts),
                    None => (String::new(), rest),
                };
                hosts
                    .trim_end_matches('/')
                    .split(',')
                    .filter(|h| !h.trim().is_empty())
                    .map(|h| format!("redis://{auth}{}", h.trim()))
                    .collect()
            }
        }
    }

    /// A single node to subscribe on: Redis Cluster delivers every PUBLISH
    /// to subscribers on any node.
    pub fn pubsub_url(&self) -> String {
        self.nodes()
            .into_iter()
            .next()
            .unwrap_or_else(|| self.url.clone())
    }
}

/// One connection to a single Redis or a Redis Cluster: stores and scripts
/// take this and run unchanged on either (every atomic script touches the
/// keys of one hash tag, so one slot).
#[derive(Clone)]
pub enum RedisConn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// `answer`, its round trip timed into `lobby_redis_round_trip_seconds`.
fn timed<'a, T: Send + 'a>(kind: &'static str, answer: RedisFuture<'a, T>) -> RedisFuture<'a, T> {
    Box::pin(async move {
        let started = std::time::Instant::now();
        let answer = answer.await;
        crate::metrics::observe_redis(kind, answer.is_ok(), started.elapsed());
        answer
    })
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let answer = match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        };
        timed("command", answer)
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let answer = match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        };
        timed("pipeline", answer)
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("redis at {url}: {source}")]
pub struct RedisConnectError {
    url: String,
    source: redis::RedisError,
}

/// A service's Redis: the connection, and whether Redis answers right now.
#[derive(Clone)]
pub struct Redis {
    conn: RedisConn,
    settings: RedisSettings,
    readiness: Readiness,
}

impl Redis {
    /// Returns at once; the connection is made in the background and remade
    /// whenever Redis goes away. Fails only on a malformed URL.
    pub fn open(settings: &RedisSettings) -> Result<Self, RedisConnectError> {
        let err = |source| RedisConnectError {
            url: settings.url.clone(),
            source,
        };
        // Bounded retries and timeouts per attempt: the watcher below does
        // the long waiting, so a request never hangs on a dead Redis.
        let conn = if settings.is_cluster() {
            let client = redis::cluster::ClusterClient::builder(settings.nodes())
                .retries(2)
                .connection_timeout(Duration::from_secs(2))
                .response_timeout(Duration::from_secs(5))
                .build()
                .map_err(err)?;
            RedisConn::Cluster(
                client.get_pending_async_connection_with_config(
                    redis::cluster::ClusterConfig::new()
                        .set_connection_timeout(Duration::from_secs(2))
                        .set_response_timeout(Duration::from_secs(5)),
                ),
            )
        } else {
            let client = redis::Client::open(settings.url.as_str()).map_err(err)?;
            let config = ConnectionManagerConfig::new()
                .set_number_of_retries(1)
                .set_connection_timeout(Some(Duration::from_secs(2)))
                .set_response_timeout(Some(Duration::from_secs(5)));
            RedisConn::Single(ConnectionManager::new_lazy_with_config(client, config).map_err(err)?)
        };
        let (flag, readiness) = readiness::flag();
        tokio::spawn(watch_redis(conn.clone(), settings.clone(), flag));
        Ok(Self {
            conn,
            settings: settings.clone(),
            readiness,
        })
    }

    pub fn connection(&self) -> RedisConn {
        self.conn.clone()
    }

    pub fn settings(&self) -> &RedisSettings {
        &self.settings
    }

    /// A client for pub/sub (one node; a cluster delivers to all).
    pub fn pubsub_client(&self) -> Result<redis::Client, redis::RedisError> {
        redis::Client::open(self.settings.pubsub_url().as_str())
    }

    /// Ready while Redis answers `PING`.
    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }

    /// Runs a start-up step once Redis answers, retrying it with backoff
    /// until it succeeds: a Redis that drops again mid-step is one more wait.
    pub async fn start_up<T, E, F, Fut>(&self, what: &str, mut step: F) -> T
    where
        E: std::fmt::Display,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut backoff = Backoff::new(FIRST_RETRY, self.settings.retry_max);
        loop {
            self.readiness.wait().await;
            match step().await {
                Ok(value) => return value,
                Err(e) => {
                    tracing::warn!(step = what, error = %e, "start-up step failed; retrying");
                    backoff.wait().await;
                }
            }
        }
    }
}

/// Whether a Redis error means "not now" (Redis down, restarting, loading
/// its data, failing over) rather than a fault in the request.
pub fn is_transient(e: &redis::RedisError) -> bool {
    use redis::{ErrorKind, ServerErrorKind};
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(
            e.kind(),
            ErrorKind::Server(
                ServerErrorKind::BusyLoading
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::ClusterDown
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::ReadOnly
            )
        )
}

/// The machine code of a failed Redis call: `store_unavailable` (retry
/// later) for a transient failure, `internal_error` otherwise.
pub fn error_code(e: &redis::RedisError) -> crate::ErrorCode {
    if is_transient(e) {
        crate::ErrorCode::StoreUnavailable
    } else {
        crate::ErrorCode::InternalError
    }
}

/// The gRPC code matching [`error_code`].
pub fn grpc_code(e: &redis::RedisError) -> tonic::Code {
    if is_transient(e) {
        tonic::Code::Unavailable
    } else {
        tonic::Code::Internal
    }
}

/// Pings Redis for as long as anyone follows its readiness. A failed ping
/// also makes the manager replace a dead connection before a request needs it.
async fn watch_redis(mut conn: RedisConn, settings: RedisSettings, flag: readiness::ReadyFlag) {
    let url = settings.url.as_str();
    let mut backoff = Backoff::new(FIRST_RETRY, settings.retry_max);
    let mut down_since: Option<Instant> = Some(Instant::now());
    let mut reported_at: Option<Instant> = None;
    let mut announced = false;
    let mut ever_answered = false;
    while flag.is_observed() {
        let ping = tokio::time::timeout(
            PING_TIMEOUT,
            redis::cmd("PING").query_async::<String>(&mut conn),
        )
        .await;
        let failure = match ping {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!("no answer to PING within {PING_TIMEOUT:?}")),
        };
        match failure {
            None => {
                if let Some(since) = down_since.take() {
                    if ever_answered {
                        tracing::info!(
                            redis = url,
                            after_ms = since.elapsed().as_millis() as u64,
                            "Redis answers again"
                        );
                    } else {
                        tracing::info!(redis = url, "Redis answers");
                    }
                }
                ever_answered = true;
                announced = false;
                reported_at = None;
                flag.set(true);
                backoff.reset();
                tokio::time::sleep(HEALTHY_PING_INTERVAL).await;
            }
            Some(reason) => {
                flag.set(false);
                let since = *down_since.get_or_insert_with(Instant::now);
                let waited = since.elapsed();
                let report_due = waited >= settings.report_after
                    && reported_at.is_none_or(|at| at.elapsed() >= settings.report_after);
                if report_due {
                    tracing::error!(
                        redis = url,
                        waited_s = waited.as_secs(),
                        error = %reason,
                        "Redis has not answered; this service stays unready and keeps retrying (at most every {:?})",
                        settings.retry_max
                    );
                    reported_at = Some(Instant::now());
                    announced = true;
                } else if !announced {
                    tracing::warn!(redis = url, error = %reason, "waiting for Redis");
                    announced = true;
                } else {
                    tracing::debug!(redis = url, error = %reason, "still waiting for Redis");
                }
                backoff.wait().await;
            }
        }
    }
}
