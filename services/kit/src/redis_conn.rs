//! One multiplexed Redis connection per service.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[error("redis at {url}: {source}")]
pub struct RedisConnectError {
    url: String,
    source: redis::RedisError,
}

/// Connects with bounded retries and timeouts: the manager's defaults retry a
/// refused connection six times with backoff, which turns a dead Redis into a
/// hung request instead of a prompt error.
pub async fn connect(url: &str) -> Result<ConnectionManager, RedisConnectError> {
    let err = |source| RedisConnectError {
        url: url.to_owned(),
        source,
    };
    let client = redis::Client::open(url).map_err(err)?;
    let config = ConnectionManagerConfig::new()
        .set_number_of_retries(2)
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(5)));
    let manager = ConnectionManager::new_with_config(client, config)
        .await
        .map_err(err)?;
    keep_alive(manager.clone());
    Ok(manager)
}

/// The manager notices a dead connection only when a command fails on it:
/// after a Redis restart, the first request of every service would get an
/// error. A background ping takes that failure instead, so the connection is
/// replaced before a caller needs it.
fn keep_alive(mut manager: ConnectionManager) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_millis(500));
        loop {
            ticker.tick().await;
            let _: Result<String, _> = redis::cmd("PING").query_async(&mut manager).await;
        }
    });
}
