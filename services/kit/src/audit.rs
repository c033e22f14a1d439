//! The audit log: who did what to which record, when and from where, one
//! log per account (and one for changes that belong to no account, such as
//! rotating the session-JWT signing key). A log is an append-only Redis
//! Stream per writing service, merged on reading. Entries are never edited;
//! trimming past the retention is the only removal.
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

/// Who writes a stream. Each service appends to its own stream, so each
/// Redis key has one owner; a read merges them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AuditWriter {
    /// Auth: accounts, projects, agents, keys, links, signing keys.
    Catalog,
    /// Session: ends, deletions and reads of session records.
    Sessions,
}

/// The streams of one log, in the order that breaks ties between entries
/// of the same stream id. `None` is the single stream every writer shared
/// before each had its own: read until its entries pass the retention,
/// written no more.
const SOURCES: [Option<AuditWriter>; 3] = [
    None,
    Some(AuditWriter::Catalog),
    Some(AuditWriter::Sessions),
];

fn stream_key(account_id: Option<&str>, writer: Option<AuditWriter>) -> String {
    let log = match account_id {
        Some(a) => format!("{}:{a}:audit", crate::keys::account_tag(a)),
        None => "{audit}:global".to_owned(),
    };
    match writer {
        None => log,
        Some(AuditWriter::Catalog) => format!("{log}:catalog"),
        Some(AuditWriter::Sessions) => format!("{log}:sessions"),
    }
}

/// A position in the merged log: a stream id, and which stream (by its
/// place in [`SOURCES`]) for entries of the same id in several streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Position {
    ms: u64,
    seq: u64,
    source: usize,
}

impl Position {
    /// `<ms>-<seq>-<source>`; a cursor from before the split is
    /// `<ms>-<seq>`, an entry of the shared stream.
    fn parse(cursor: &str) -> Option<Self> {
        let parts: Vec<&str> = cursor.split('-').collect();
        let number = |p: &str| {
            (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                .then(|| p.parse::<u64>().ok())
                .flatten()
        };
        let (ms, seq, source) = match parts[..] {
            [ms, seq] => (number(ms)?, number(seq)?, 0),
            [ms, seq, source] => (number(ms)?, number(seq)?, number(source)? as usize),
            _ => return None,
        };
        (source < SOURCES.len()).then_some(Self { ms, seq, source })
    }

    fn cursor(&self) -> String {
        format!("{}-{}-{}", self.ms, self.seq, self.source)
    }

    /// The XREVRANGE end for `source` that yields only entries before this
    /// position: its own id included when `source` sorts before it.
    fn end_for(&self, source: usize) -> String {
        if source < self.source {
            format!("{}-{}", self.ms, self.seq)
        } else {
            format!("({}-{}", self.ms, self.seq)
        }
    }
}

#[derive(Clone)]
pub struct AuditLog {
    redis: RedisConn,
    retention_ms: i64,
    writer: AuditWriter,
}

impl AuditLog {
    pub fn new(redis: RedisConn, retention_ms: i64, writer: AuditWriter) -> Self {
        Self {
            redis,
            retention_ms,
            writer,
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

    /// Appends an entry to this writer's stream of the account's log
    /// (`None`: the global one), and trims what is older than the
    /// retention. A failure is logged: the change it records has been made
    /// already.
    pub async fn record(&self, account_id: Option<&str>, actor: &Actor, event: &str, target: &str) {
        let oldest_kept = crate::time::now_ms() - self.retention_ms;
        let mut pipe = redis::pipe();
        // The stream every writer shared before is written no more: trimmed
        // here, it empties (and is gone) once the retention has passed.
        pipe.cmd("XTRIM")
            .arg(stream_key(account_id, None))
            .arg("MINID")
            .arg("=")
            .arg(oldest_kept.max(0))
            .ignore();
        pipe.cmd("XADD")
            .arg(stream_key(account_id, Some(self.writer)))
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
            .arg(&actor.client_ip);
        let written: Result<(String,), redis::RedisError> =
            pipe.query_async(&mut self.redis.clone()).await;
        if let Err(e) = written {
            tracing::error!(event, target, who = %actor.who, error = %e, "audit entry not written");
        }
    }

    /// Up to `limit` entries of every writer's stream, newest first, before
    /// the cursor `before` (a previous page's last id); and the cursor of
    /// the next page. The streams share the account's hash tag, so one
    /// pipeline reads them all.
    pub async fn read(
        &self,
        account_id: Option<&str>,
        before: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<AuditEntry>, Option<String>), redis::RedisError> {
        let before = before.and_then(Position::parse);
        let oldest_kept = (crate::time::now_ms() - self.retention_ms).max(0);
        let mut pipe = redis::pipe();
        for (source, writer) in SOURCES.iter().enumerate() {
            let end = before.map_or_else(|| "+".to_owned(), |b| b.end_for(source));
            pipe.cmd("XREVRANGE")
                .arg(stream_key(account_id, *writer))
                .arg(end)
                // The shared stream is never trimmed again: its retention
                // is applied here.
                .arg(oldest_kept)
                .arg("COUNT")
                .arg(limit + 1);
        }
        let streams: Vec<Vec<(String, HashMap<String, String>)>> =
            pipe.query_async(&mut self.redis.clone()).await?;
        let mut merged: Vec<(Position, HashMap<String, String>)> = streams
            .into_iter()
            .enumerate()
            .flat_map(|(source, entries)| {
                entries.into_iter().filter_map(move |(id, fields)| {
                    let (ms, seq) = id.split_once('-')?;
                    Some((
                        Position {
                            ms: ms.parse().ok()?,
                            seq: seq.parse().ok()?,
                            source,
                        },
                        fields,
                    ))
                })
            })
            .collect();
        merged.sort_by_key(|entry| std::cmp::Reverse(entry.0));
        let more = merged.len() > limit;
        let entries: Vec<AuditEntry> = merged
            .into_iter()
            .take(limit)
            .map(|(at, mut f)| {
                let mut take = |k: &str| f.remove(k).unwrap_or_default();
                AuditEntry {
                    at_ms: at.ms as i64,
                    who: take("who"),
                    event: take("event"),
                    target: take("target"),
                    request_id: take("request_id"),
                    client_ip: take("client_ip"),
                    id: at.cursor(),
                }
            })
            .collect();
        let next = more.then(|| entries.last().map(|e| e.id.clone())).flatten();
        Ok((entries, next))
    }
}

/// Whether `cursor` is a position `read` hands out (or, from before each
/// writer had its own stream, a bare stream id).
pub fn valid_cursor(cursor: &str) -> bool {
    Position::parse(cursor).is_some()
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
    fn cursors_are_positions_in_the_merged_log() {
        assert!(valid_cursor("1764000000000-0"));
        assert!(valid_cursor("1764000000000-0-2"));
        for bad in ["", "+", "-", "1-2-3", "1-2-3-4", "abc-1", "(1-0", "1--0"] {
            assert!(!valid_cursor(bad), "{bad}");
        }
    }

    #[test]
    fn a_page_ends_between_entries_of_the_same_id_in_two_streams() {
        // The catalog's entry 5-0 was on the last page; the sessions'
        // entry 5-0 sorts after it and was not.
        let at = Position::parse("5-0-2").unwrap();
        assert_eq!(at.end_for(0), "5-0");
        assert_eq!(at.end_for(1), "5-0");
        assert_eq!(at.end_for(2), "(5-0");
        // A bare stream id (from before the split) is the shared stream's.
        let old = Position::parse("5-0").unwrap();
        assert!((0..SOURCES.len()).all(|s| old.end_for(s) == "(5-0"));
        assert!(Position::parse("5-1-0").unwrap() > Position::parse("5-0-2").unwrap());
    }
}
