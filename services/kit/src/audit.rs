//! The audit log: who did what to which record, when and from where, one
//! append-only Redis Stream per account (and one for changes that belong to
//! no account, such as rotating the session-JWT signing key). Entries are
//! never edited; trimming past the retention is the only removal.
//!
//! The gateway knows who the caller is (the admin token, or an API key's
//! prefix), the request id and the client's address; it passes them to the
//! services in gRPC metadata ([`Actor`]), and the service that makes the
//! change writes the entry.

use crate::redis_conn::RedisConn;
use crate::{ConfigError, Settings};
use std::collections::HashMap;

const WHO: &str = "lobby-actor";
const REQUEST_ID: &str = crate::grpc::REQUEST_ID_HEADER;
const CLIENT_IP: &str = "lobby-client-ip";
/// Longest metadata value kept: they come from callers.
const MAX_VALUE_CHARS: usize = 128;

/// Who asked for a change, as the gateway saw the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// `admin` (the admin token), `key:<prefix>` (an API key), or
    /// `internal` (a service's own call, with no request behind it).
    pub who: String,
    pub request_id: String,
    pub client_ip: String,
}

impl Default for Actor {
    fn default() -> Self {
        Self {
            who: "internal".to_owned(),
            request_id: String::new(),
            client_ip: String::new(),
        }
    }
}

impl Actor {
    pub fn from_metadata(md: &tonic::metadata::MetadataMap) -> Self {
        let get = |k: &str| {
            md.get(k)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.chars().take(MAX_VALUE_CHARS).collect::<String>())
        };
        let default = Self::default();
        Self {
            who: get(WHO).filter(|w| !w.is_empty()).unwrap_or(default.who),
            request_id: get(REQUEST_ID).unwrap_or_default(),
            client_ip: get(CLIENT_IP).unwrap_or_default(),
        }
    }

    /// Puts the actor on an outgoing request's metadata.
    pub fn attach<T>(&self, req: &mut tonic::Request<T>) {
        for (k, v) in [
            (WHO, &self.who),
            (REQUEST_ID, &self.request_id),
            (CLIENT_IP, &self.client_ip),
        ] {
            if let Ok(v) = v.parse() {
                req.metadata_mut().insert(k, v);
            }
        }
    }
}

/// One entry as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// The stream id: its first part is the time in milliseconds, and it
    /// is the cursor for the next page.
    pub id: String,
    pub at_ms: i64,
    pub who: String,
    /// What was done, e.g. `deleteSession`, `revokeKey`.
    pub event: String,
    /// What it was done to, e.g. `session:<id>`, `key:<prefix>`.
    pub target: String,
    pub request_id: String,
    pub client_ip: String,
}

fn stream_key(account_id: Option<&str>) -> String {
    match account_id {
        Some(a) => format!("{}:{a}:audit", crate::keys::account_tag(a)),
        None => "{audit}:global".to_owned(),
    }
}

#[derive(Clone)]
pub struct AuditLog {
    redis: RedisConn,
    retention_ms: i64,
}

impl AuditLog {
    pub fn new(redis: RedisConn, retention_ms: i64) -> Self {
        Self {
            redis,
            retention_ms,
        }
    }

    /// `LOBBY_AUDIT_RETENTION_DAYS` (default 365).
    pub fn retention_ms(s: &Settings) -> Result<i64, ConfigError> {
        let days: i64 = s.get_or("LOBBY_AUDIT_RETENTION_DAYS", 365)?;
        Settings::ensure(
            "LOBBY_AUDIT_RETENTION_DAYS",
            (1..=3650).contains(&days),
            "must be between 1 and 3650",
        )?;
        Ok(days * 24 * 3600 * 1000)
    }

    /// Appends an entry to the account's log (`None`: the global one), and
    /// trims what is older than the retention. A failure is logged: the
    /// change it records has been made already.
    pub async fn record(&self, account_id: Option<&str>, actor: &Actor, event: &str, target: &str) {
        let oldest_kept = crate::time::now_ms() - self.retention_ms;
        let written: Result<String, redis::RedisError> = redis::cmd("XADD")
            .arg(stream_key(account_id))
            .arg("MINID")
            // Exact: an entry past the retention is gone, not kept until a
            // whole internal node can go.
            .arg("=")
            .arg(oldest_kept.max(0))
            .arg("*")
            .arg("who")
            .arg(&actor.who)
            .arg("event")
            .arg(event)
            .arg("target")
            .arg(target)
            .arg("request_id")
            .arg(&actor.request_id)
            .arg("client_ip")
            .arg(&actor.client_ip)
            .query_async(&mut self.redis.clone())
            .await;
        if let Err(e) = written {
            tracing::error!(event, target, who = %actor.who, error = %e, "audit entry not written");
        }
    }

    /// Up to `limit` entries, newest first, older than the cursor `before`
    /// (a previous page's last id); and the cursor of the next page.
    pub async fn read(
        &self,
        account_id: Option<&str>,
        before: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<AuditEntry>, Option<String>), redis::RedisError> {
        let end = before.map_or_else(|| "+".to_owned(), |b| format!("({b}"));
        let raw: Vec<(String, HashMap<String, String>)> = redis::cmd("XREVRANGE")
            .arg(stream_key(account_id))
            .arg(end)
            .arg("-")
            .arg("COUNT")
            .arg(limit + 1)
            .query_async(&mut self.redis.clone())
            .await?;
        let more = raw.len() > limit;
        let entries: Vec<AuditEntry> = raw
            .into_iter()
            .take(limit)
            .map(|(id, mut f)| {
                let mut take = |k: &str| f.remove(k).unwrap_or_default();
                AuditEntry {
                    at_ms: id
                        .split('-')
                        .next()
                        .and_then(|t| t.parse().ok())
                        .unwrap_or(0),
                    who: take("who"),
                    event: take("event"),
                    target: take("target"),
                    request_id: take("request_id"),
                    client_ip: take("client_ip"),
                    id,
                }
            })
            .collect();
        let next = more.then(|| entries.last().map(|e| e.id.clone())).flatten();
        Ok((entries, next))
    }
}

/// Whether `cursor` is a stream id (`<ms>-<seq>`), as `read` hands out.
pub fn valid_cursor(cursor: &str) -> bool {
    let mut parts = cursor.split('-');
    matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some(ms), Some(seq), None)
            if !ms.is_empty() && !seq.is_empty()
                && ms.bytes().all(|b| b.is_ascii_digit())
                && seq.bytes().all(|b| b.is_ascii_digit())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_actor_travels_in_metadata_and_defaults_to_internal() {
        let actor = Actor {
            who: "key:abc".into(),
            request_id: "r-1".into(),
            client_ip: "203.0.113.7".into(),
        };
        let mut req = tonic::Request::new(());
        actor.attach(&mut req);
        assert_eq!(Actor::from_metadata(req.metadata()), actor);
        assert_eq!(
            Actor::from_metadata(&tonic::metadata::MetadataMap::new()).who,
            "internal"
        );
    }

    #[test]
    fn cursors_are_stream_ids() {
        assert!(valid_cursor("1764000000000-0"));
        for bad in ["", "+", "-", "1-2-3", "abc-1", "(1-0"] {
            assert!(!valid_cursor(bad), "{bad}");
        }
    }
}
