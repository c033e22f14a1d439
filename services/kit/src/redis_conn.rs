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
    ConnectionManager::new_with_config(client, config)
        .await
        .map_err(err)
}
