//! One node of the cluster: its connection, made on a task of its own on
//! first use and again after it broke, and how long to leave it alone after
//! it failed.

use super::Addr;
use redis::{
    aio::MultiplexedConnection, AsyncConnectionConfig, ConnectionInfo, ErrorKind, RedisError,
};
use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// Waits before a node that could not be reached is tried again.
const RECONNECT_FIRST: Duration = Duration::from_millis(50);
const RECONNECT_MAX: Duration = Duration::from_secs(1);

/// One node: its connection, made on first use and again after it broke,
/// and when it may be tried again after failing.
pub(super) struct Node {
    info: ConnectionInfo,
    conn: Mutex<Option<MultiplexedConnection>>,
    /// A connection being made, shared by every command waiting for it.
    connecting: Mutex<Option<Connecting>>,
    backoff: Mutex<Option<(Instant, Duration)>>,
}

type Connecting = futures::future::Shared<
    futures::future::BoxFuture<'static, Result<MultiplexedConnection, String>>,
>;

/// How long a command waits for its node's connection to be made before it
/// looks at the topology again: a connection to a live node takes
/// milliseconds, one to a frozen node its whole connect timeout.
pub(super) const CONNECT_WAIT: Duration = Duration::from_millis(200);

pub(super) fn unreachable(addr: &str, why: impl std::fmt::Display) -> RedisError {
    RedisError::from((
        ErrorKind::Io,
        "Redis node unreachable",
        format!("{addr}: {why}"),
    ))
}

pub(super) fn timed_out(addr: &str, after: Duration) -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("Redis node {addr} did not answer within {after:?}"),
    ))
}

impl Node {
    pub(super) fn new(info: ConnectionInfo) -> Self {
        Self {
            info,
            conn: Mutex::new(None),
            connecting: Mutex::new(None),
            backoff: Mutex::new(None),
        }
    }

    fn current(&self) -> Option<MultiplexedConnection> {
        self.conn.lock().ok().and_then(|c| c.clone())
    }

    fn waiting(&self, addr: &str) -> Result<(), RedisError> {
        let backoff = self.backoff.lock().ok().and_then(|b| *b);
        match backoff {
            Some((until, _)) if Instant::now() < until => Err(unreachable(
                addr,
                format!("tried again in {:?}", until - Instant::now()),
            )),
            _ => Ok(()),
        }
    }

    pub(super) fn is_backing_off(&self) -> bool {
        self.backoff
            .lock()
            .ok()
            .and_then(|b| *b)
            .is_some_and(|(until, _)| Instant::now() < until)
    }

    /// The node failed: drop its connection, wait before the next one.
    pub(super) fn suspect(&self) {
        if let Ok(mut c) = self.conn.lock() {
            c.take();
        }
        if let Ok(mut b) = self.backoff.lock() {
            let wait = b.map_or(RECONNECT_FIRST, |(_, w)| (w * 2).min(RECONNECT_MAX));
            *b = Some((Instant::now() + wait, wait));
        }
    }

    /// The node's connection. A missing one is made on a task of its own:
    /// a command waits for it at most `wait`, then goes back to the
    /// topology (its slot may have moved) rather than hang on a frozen node.
    pub(super) async fn connection(
        self: &Arc<Self>,
        addr: &Addr,
        connect_timeout: Duration,
        wait: Duration,
    ) -> Result<MultiplexedConnection, RedisError> {
        if let Some(c) = self.current() {
            return Ok(c);
        }
        self.waiting(addr)?;
        let pending = {
            let mut slot = self.connecting.lock().unwrap_or_else(|p| p.into_inner());
            match &*slot {
                Some(pending) => pending.clone(),
                None => {
                    let pending = self.clone().connect(addr.clone(), connect_timeout);
                    *slot = Some(pending.clone());
                    pending
                }
            }
        };
        match tokio::time::timeout(wait, pending).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(unreachable(addr, e)),
            Err(_) => Err(unreachable(addr, "still connecting")),
        }
    }

    fn connect(self: Arc<Self>, addr: Addr, timeout: Duration) -> Connecting {
        use futures::FutureExt;
        let task = tokio::spawn(async move {
            let made = async {
                let client = redis::Client::open(self.info.clone()).map_err(|e| e.to_string())?;
                let config = AsyncConnectionConfig::new().set_connection_timeout(Some(timeout));
                tokio::time::timeout(
                    timeout,
                    client.get_multiplexed_async_connection_with_config(&config),
                )
                .await
                .map_err(|_| format!("no connection to {addr} within {timeout:?}"))?
                .map_err(|e| e.to_string())
            }
            .await;
            match &made {
                Ok(conn) => {
                    if let Ok(mut c) = self.conn.lock() {
                        *c = Some(conn.clone());
                    }
                    if let Ok(mut b) = self.backoff.lock() {
                        b.take();
                    }
                }
                Err(_) => self.suspect(),
            }
            if let Ok(mut slot) = self.connecting.lock() {
                slot.take();
            }
            made
        });
        async move { task.await.unwrap_or_else(|e| Err(e.to_string())) }
            .boxed()
            .shared()
    }
}
