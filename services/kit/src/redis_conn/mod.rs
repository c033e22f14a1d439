//! Redis for every service: one multiplexed connection (a single Redis) or
//! one connection per master (a Redis Cluster, `redis_cluster`), and a
//! watcher that knows whether Redis answers right now.
//!
//! Redis being down or still loading its data set (`LOADING` while it
//! replays a large AOF) is a wait, never a reason to exit: a service starts,
//! serves liveness, stays unready until Redis answers `PING`, and follows
//! Redis going away and coming back for as long as it runs. On a cluster a
//! service is ready while any master answers: the accounts of the others are
//! still served while one fails over.

mod watch;

use crate::{
    backoff::Backoff,
    liveness::Heartbeat,
    readiness,
    redis_cluster::{refused_by_the_cluster, ClusterRouter, ClusterTimeouts},
    ConfigError, Readiness, Settings,
};
use futures::StreamExt;
use redis::{
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
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
/// Connecting to one Redis node, its handshake included.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a subscription's connection is asked whether it still answers:
/// a node that froze (or a path that dropped silently) ends the subscription
/// within about twice this, and it is made again on a node that answers.
const SUBSCRIPTION_PING_EVERY: Duration = Duration::from_secs(2);

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
    /// The longest one command may take, every attempt included: a command
    /// to a node that died or froze fails (retryably) after this.
    pub command_timeout: Duration,
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
        let command_timeout_ms: u64 = s.get_or("LOBBY_REDIS_COMMAND_TIMEOUT_MS", 2_000)?;
        Settings::ensure(
            "LOBBY_REDIS_COMMAND_TIMEOUT_MS",
            (100..=60_000).contains(&command_timeout_ms),
            "must be between 100 and 60000",
        )?;
        let url = s.string_or("LOBBY_REDIS_URL", "redis://127.0.0.1:6379");
        let settings = Self {
            url,
            retry_max: Duration::from_millis(retry_max_ms),
            report_after: Duration::from_millis(report_after_ms),
            command_timeout: Duration::from_millis(command_timeout_ms),
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
}

/// One connection to a single Redis or a Redis Cluster: stores and scripts
/// take this and run unchanged on either (every atomic script touches the
/// keys of one hash tag, so one slot).
#[derive(Clone)]
pub enum RedisConn {
    Single(ConnectionManager),
    Cluster(ClusterRouter),
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

/// A connection for `settings`, made lazily: nothing is awaited here.
/// Every command has a deadline, and failing ones are retried only when
/// they did not run; the watcher does the long waiting.
pub fn connect(settings: &RedisSettings) -> Result<RedisConn, redis::RedisError> {
    if settings.is_cluster() {
        let timeouts = ClusterTimeouts {
            connect: CONNECT_TIMEOUT,
            command: settings.command_timeout,
        };
        return Ok(RedisConn::Cluster(ClusterRouter::open(
            &settings.nodes(),
            timeouts,
        )?));
    }
    let client = redis::Client::open(settings.url.as_str())?;
    let config = ConnectionManagerConfig::new()
        .set_number_of_retries(1)
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(settings.command_timeout));
    Ok(RedisConn::Single(ConnectionManager::new_lazy_with_config(
        client, config,
    )?))
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
        let conn = connect(settings).map_err(err)?;
        let (flag, readiness) = readiness::flag();
        // The watcher goes round at least every retry_max plus a ping.
        let heartbeat = Heartbeat::register(
            "the Redis watcher",
            (settings.retry_max + PING_TIMEOUT + HEALTHY_PING_INTERVAL) * 3
                + Duration::from_secs(10),
        );
        tokio::spawn(watch::watch_redis(
            conn.clone(),
            settings.clone(),
            flag,
            heartbeat,
        ));
        Ok(Self {
            conn,
            settings: settings.clone(),
            readiness,
        })
    }

    /// Redis as a `PING` of it (on a cluster, of every master) finds it now,
    /// each allowed `within`: `Ok(None)` when all of it answers,
    /// `Ok(Some(what))` when a cluster serves only some accounts (which
    /// masters fail), `Err` when nothing answers.
    pub async fn check(&self, within: Duration) -> Result<Option<String>, String> {
        let mut conn = self.conn.clone();
        watch::Shards {
            answers: watch::ping_round(&mut conn, &self.settings.url, within).await,
        }
        .summary()
    }

    pub fn connection(&self) -> RedisConn {
        self.conn.clone()
    }

    pub fn settings(&self) -> &RedisSettings {
        &self.settings
    }

    /// The messages of `channels` and `patterns`, on the first node that
    /// takes the subscription (a cluster delivers every PUBLISH to every
    /// node). The stream ends when the connection is lost or stops
    /// answering pings: the caller subscribes again, elsewhere if need be,
    /// and knows it may have missed messages meanwhile.
    pub async fn subscribe(
        &self,
        channels: &[&str],
        patterns: &[&str],
    ) -> Result<impl futures::Stream<Item = redis::Msg> + Send + use<>, redis::RedisError> {
        let pubsub = match &self.conn {
            RedisConn::Cluster(router) => router.pubsub().await?,
            RedisConn::Single(_) => {
                let client = redis::Client::open(self.settings.url.as_str())?;
                tokio::time::timeout(CONNECT_TIMEOUT, client.get_async_pubsub())
                    .await
                    .map_err(|_| {
                        redis::RedisError::from(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "no pub/sub connection in time",
                        ))
                    })??
            }
        };
        let (mut sink, stream) = pubsub.split();
        for channel in channels {
            sink.subscribe(*channel).await?;
        }
        for pattern in patterns {
            sink.psubscribe(*pattern).await?;
        }
        Ok(alive_messages(sink, stream))
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

/// A subscription's messages while its connection answers a ping every
/// [`SUBSCRIPTION_PING_EVERY`]: a frozen node sends no error, only silence.
fn alive_messages(
    sink: redis::aio::PubSubSink,
    stream: redis::aio::PubSubStream,
) -> impl futures::Stream<Item = redis::Msg> + Send {
    futures::stream::unfold(
        (sink, stream, Instant::now()),
        |(mut sink, mut stream, mut pinged)| async move {
            loop {
                let due = (pinged + SUBSCRIPTION_PING_EVERY).into();
                tokio::select! {
                    msg = stream.next() => return msg.map(|m| (m, (sink, stream, pinged))),
                    () = tokio::time::sleep_until(due) => {
                        let pong = tokio::time::timeout(
                            SUBSCRIPTION_PING_EVERY,
                            sink.ping::<redis::Value>(),
                        );
                        if !matches!(pong.await, Ok(Ok(_))) {
                            tracing::warn!("a Redis subscription stopped answering; subscribing again");
                            return None;
                        }
                        pinged = Instant::now();
                    }
                }
            }
        },
    )
}

/// Whether a Redis error means "not now" (Redis down, restarting, loading
/// its data, failing over, a slot moving between masters) rather than a
/// fault in the request: the caller is told to retry.
pub fn is_transient(e: &redis::RedisError) -> bool {
    use redis::ErrorKind;
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(e.kind(), ErrorKind::ClusterConnectionNotFound)
        || matches!(e.kind(), ErrorKind::Server(kind) if refused_by_the_cluster(kind))
        || is_refused_transaction(e)
}

/// A transaction refused as a whole because its commands met a failover
/// (each was redirected or refused while queued).
fn is_refused_transaction(e: &redis::RedisError) -> bool {
    use redis::{ErrorKind, ServerErrorKind};
    e.kind() == ErrorKind::Server(ServerErrorKind::ExecAbort)
        && e.clone().into_server_errors().is_some_and(|queued| {
            !queued.is_empty()
                && queued
                    .iter()
                    .all(|(_, q)| q.kind().is_some_and(refused_by_the_cluster))
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn server_error(reply: &str) -> redis::RedisError {
        match redis::parse_redis_value(format!("-{reply}\r\n").as_bytes()) {
            Ok(Value::ServerError(e)) => e.into(),
            other => panic!("not an error reply: {other:?}"),
        }
    }

    #[test]
    fn a_failover_and_a_timeout_are_transient_and_a_fault_is_not() {
        for reply in [
            "MOVED 3999 127.0.0.1:6381",
            "ASK 3999 127.0.0.1:6381",
            "CLUSTERDOWN The cluster is down",
            "TRYAGAIN Multiple keys request during rehashing of slot",
            "LOADING Redis is loading the dataset in memory",
            "MASTERDOWN Link with MASTER is down",
            "READONLY You can't write against a read only replica.",
        ] {
            let e = server_error(reply);
            assert!(is_transient(&e), "{reply}");
            assert_eq!(
                error_code(&e),
                crate::ErrorCode::StoreUnavailable,
                "{reply}"
            );
            assert_eq!(grpc_code(&e), tonic::Code::Unavailable, "{reply}");
        }
        let timeout = redis::RedisError::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "no answer",
        ));
        assert!(is_transient(&timeout));
        let refused = redis::RedisError::from(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "refused",
        ));
        assert!(is_transient(&refused));
        for reply in [
            "WRONGTYPE Operation against a key",
            "ERR syntax error",
            "NOSCRIPT No matching script",
        ] {
            let e = server_error(reply);
            assert!(!is_transient(&e), "{reply}");
            assert_eq!(error_code(&e), crate::ErrorCode::InternalError, "{reply}");
        }
    }
}
