//! Session records: one Redis hash per session under the account's hash tag,
//! plus a global id → account index (a session id alone names no account).

use crate::error::SessionError;
use lobby_proto::{
    common::Provider,
    session::{Session, SessionEvent, SessionKind, SessionStatus},
};
use redis::{aio::ConnectionManager, AsyncCommands, Script};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Why a session ended. A closed set: the record never holds anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndedReason {
    /// The end API was called (admin route, gRPC, seed 001's end).
    ExplicitEnd,
    /// The provider said the room is gone (LiveKit `room_finished`, Daily `meeting.ended`).
    ProviderRoomFinished,
    /// The last user left the room (LiveKit `participant_left`).
    UserLeft,
    /// The session ran for the agent's `max_session_seconds`.
    MaxDuration,
    /// The session ran for all the minutes it could reserve, fewer than its maximum.
    MinutesExhausted,
    /// The reconciler found the provider no longer has the room (a lost webhook).
    RoomMissing,
    /// The GPU worker running the agent reported the end.
    WorkerReported,
    /// The worker's heartbeats stopped renewing the session's lease (it
    /// crashed or lost its connection).
    LeaseExpired,
    /// The user never joined the room within the user join deadline.
    UserJoinTimeout,
    /// The agent never joined the room within the agent join deadline.
    AgentJoinTimeout,
    /// The agent stayed alone after the last user left, past the agent's
    /// `solo_timeout_seconds`.
    SoloTimeout,
}

impl EndedReason {
    pub const ALL: [EndedReason; 11] = [
        EndedReason::ExplicitEnd,
        EndedReason::ProviderRoomFinished,
        EndedReason::UserLeft,
        EndedReason::MaxDuration,
        EndedReason::MinutesExhausted,
        EndedReason::RoomMissing,
        EndedReason::WorkerReported,
        EndedReason::LeaseExpired,
        EndedReason::UserJoinTimeout,
        EndedReason::AgentJoinTimeout,
        EndedReason::SoloTimeout,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ExplicitEnd => "explicit_end",
            Self::ProviderRoomFinished => "provider_room_finished",
            Self::UserLeft => "user_left",
            Self::MaxDuration => "max_duration",
            Self::MinutesExhausted => "minutes_exhausted",
            Self::RoomMissing => "room_missing",
            Self::WorkerReported => "worker_reported",
            Self::LeaseExpired => "lease_expired",
            Self::UserJoinTimeout => "user_join_timeout",
            Self::AgentJoinTimeout => "agent_join_timeout",
            Self::SoloTimeout => "solo_timeout",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// The indexes the reaper and the reconciler work from. Global keys: they
/// are indexes, never part of an atomic script.
#[derive(Debug, Clone, Copy)]
pub enum Index {
    /// Live sessions with a room, scored by the time they must end by.
    Deadlines,
    /// Worker-run sessions, scored by their lease's end. The rooms service
    /// pushes leases forward on every heartbeat of the session's worker
    /// (`ZADD XX`), so a dead worker's sessions fall due.
    Leases,
    /// Starts not yet resolved, scored by when they count as abandoned (the
    /// service that ran them died): the reaper then releases whatever they
    /// took, idempotently.
    Starting,
    /// Live sessions waiting on someone: a user or the agent who has not
    /// joined yet, or an agent alone since the last user left; scored by the
    /// earliest such deadline.
    Presence,
}

impl Index {
    fn key(self) -> &'static str {
        match self {
            Self::Deadlines => "sessions:deadlines",
            Self::Leases => "sessions:leases",
            Self::Starting => "sessions:starting",
            Self::Presence => "sessions:presence",
        }
    }
}

fn record_key(account_id: &str, session_id: &str) -> String {
    format!("{{{account_id}}}:session:{session_id}")
}

fn index_key(session_id: &str) -> String {
    format!("session_account:{session_id}")
}

fn status_name(s: SessionStatus) -> &'static str {
    match s {
        SessionStatus::Starting => "starting",
        SessionStatus::Active => "active",
        SessionStatus::Ended => "ended",
        SessionStatus::Failed => "failed",
        SessionStatus::Unspecified => "unspecified",
    }
}

fn parse_status(s: &str) -> SessionStatus {
    match s {
        "starting" => SessionStatus::Starting,
        "active" => SessionStatus::Active,
        "ended" => SessionStatus::Ended,
        "failed" => SessionStatus::Failed,
        _ => SessionStatus::Unspecified,
    }
}

fn events_key(account_id: &str, session_id: &str) -> String {
    format!("{{{account_id}}}:session:{session_id}:events")
}

fn kind_name(k: SessionKind) -> &'static str {
    match k {
        SessionKind::Link => "link",
        SessionKind::AgentRun => "agent_run",
        SessionKind::Connect | SessionKind::Unspecified => "connect",
    }
}

fn parse_kind(s: &str) -> SessionKind {
    match s {
        "link" => SessionKind::Link,
        "agent_run" => SessionKind::AgentRun,
        _ => SessionKind::Connect,
    }
}

/// One stored event; its sequence number is its position in the log.
#[derive(Debug, Serialize, Deserialize)]
struct StoredEvent {
    kind: String,
    payload: serde_json::Value,
    timestamp_ms: i64,
    recorded_at_ms: i64,
}

/// Why an event was not appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendRefusal {
    NotFound,
    Ended,
    Full,
}

#[derive(Clone)]
pub struct SessionStore {
    redis: ConnectionManager,
    transition: Script,
    append: Script,
}

impl SessionStore {
    pub fn new(redis: ConnectionManager) -> Self {
        Self {
            redis,
            transition: Script::new(include_str!("transition.lua")),
            append: Script::new(include_str!("append_event.lua")),
        }
    }

    /// Writes a new record in its initial status. The index goes first: an
    /// index without a record reads as "not found", never the reverse.
    pub async fn create(&self, s: &Session) -> Result<(), SessionError> {
        let mut conn = self.redis.clone();
        let () = conn.set(index_key(&s.id), &s.account_id).await?;
        let fields: Vec<(&str, String)> = vec![
            ("id", s.id.clone()),
            ("account_id", s.account_id.clone()),
            ("agent_id", s.agent_id.clone()),
            ("status", status_name(s.status()).to_owned()),
            ("kind", kind_name(s.kind()).to_owned()),
            ("client_user_ref", s.client_user_ref.clone()),
            ("provider", s.provider().as_str_name().to_owned()),
            ("room_name", s.room_name.clone()),
            ("link_id", s.link_id.clone()),
            ("aspect_ratio", s.aspect_ratio.clone()),
            ("agent_identity", s.agent_identity.clone()),
            ("meta_json", s.meta_json.clone()),
            ("created_at_ms", s.created_at_ms.to_string()),
            ("started_at_ms", s.started_at_ms.to_string()),
            ("max_session_seconds", s.max_session_seconds.to_string()),
            ("solo_timeout_seconds", s.solo_timeout_seconds.to_string()),
        ];
        let () = conn
            .hset_multiple(record_key(&s.account_id, &s.id), &fields)
            .await?;
        Ok(())
    }

    pub async fn get(&self, session_id: &str) -> Result<Session, SessionError> {
        let mut conn = self.redis.clone();
        let account: Option<String> = conn.get(index_key(session_id)).await?;
        let account = account.ok_or_else(|| SessionError::NotFound(session_id.to_owned()))?;
        let fields: HashMap<String, String> =
            conn.hgetall(record_key(&account, session_id)).await?;
        if fields.is_empty() {
            return Err(SessionError::NotFound(session_id.to_owned()));
        }
        from_fields(&fields)
    }

    /// Lets a record (and its index entry) expire: failed starts are kept
    /// for inspection, not forever, so a flood of refusals cannot grow Redis
    /// without bound.
    pub async fn expire(&self, session: &Session, ttl_seconds: i64) -> Result<(), SessionError> {
        let mut conn = self.redis.clone();
        let () = conn
            .expire(record_key(&session.account_id, &session.id), ttl_seconds)
            .await?;
        let () = conn.expire(index_key(&session.id), ttl_seconds).await?;
        Ok(())
    }

    /// Appends an event if `agent_id` owns the live session and its log has room.
    pub async fn append_event(
        &self,
        account_id: &str,
        session_id: &str,
        agent_id: &str,
        max_events: u32,
        event: &SessionEvent,
    ) -> Result<Result<u64, AppendRefusal>, SessionError> {
        let stored = StoredEvent {
            kind: event.kind.clone(),
            payload: serde_json::from_str(&event.payload_json)
                .map_err(|e| SessionError::invalid("payload", e.to_string()))?,
            timestamp_ms: event.timestamp_ms,
            recorded_at_ms: event.recorded_at_ms,
        };
        let json =
            serde_json::to_string(&stored).map_err(|e| SessionError::Corrupt(e.to_string()))?;
        let mut conn = self.redis.clone();
        let reply: (i64, redis::Value) = self
            .append
            .key(record_key(account_id, session_id))
            .key(events_key(account_id, session_id))
            .arg(agent_id)
            .arg(max_events)
            .arg(json)
            .invoke_async(&mut conn)
            .await?;
        Ok(match reply {
            (1, redis::Value::Int(seq)) => Ok(u64::try_from(seq).unwrap_or(0)),
            (_, redis::Value::BulkString(r)) if r == b"ended" => Err(AppendRefusal::Ended),
            (_, redis::Value::BulkString(r)) if r == b"full" => Err(AppendRefusal::Full),
            _ => Err(AppendRefusal::NotFound),
        })
    }

    /// The session's events in order, or `None` if `agent_id` does not own it.
    pub async fn events(
        &self,
        account_id: &str,
        session_id: &str,
        agent_id: &str,
    ) -> Result<Option<Vec<SessionEvent>>, SessionError> {
        let mut conn = self.redis.clone();
        let owner: Option<String> = conn
            .hget(record_key(account_id, session_id), "agent_id")
            .await?;
        if owner.as_deref() != Some(agent_id) {
            return Ok(None);
        }
        let raw: Vec<String> = conn
            .lrange(events_key(account_id, session_id), 0, -1)
            .await?;
        raw.iter()
            .enumerate()
            .map(|(i, r)| {
                let e: StoredEvent =
                    serde_json::from_str(r).map_err(|e| SessionError::Corrupt(e.to_string()))?;
                Ok(SessionEvent {
                    seq: i as u64 + 1,
                    kind: e.kind,
                    payload_json: e.payload.to_string(),
                    timestamp_ms: e.timestamp_ms,
                    recorded_at_ms: e.recorded_at_ms,
                })
            })
            .collect::<Result<Vec<_>, SessionError>>()
            .map(Some)
    }

    pub async fn track(
        &self,
        index: Index,
        session_id: &str,
        at_ms: i64,
    ) -> Result<(), SessionError> {
        let mut conn = self.redis.clone();
        let () = conn.zadd(index.key(), session_id, at_ms).await?;
        Ok(())
    }

    pub async fn untrack(&self, index: Index, session_id: &str) -> Result<(), SessionError> {
        let mut conn = self.redis.clone();
        let () = conn.zrem(index.key(), session_id).await?;
        Ok(())
    }

    /// Removes a session from every index (it ended or failed for good).
    pub async fn untrack_all(&self, session_id: &str) -> Result<(), SessionError> {
        for index in [
            Index::Deadlines,
            Index::Leases,
            Index::Starting,
            Index::Presence,
        ] {
            self.untrack(index, session_id).await?;
        }
        Ok(())
    }

    /// Up to `limit` sessions of `index` due at or before `now_ms`.
    pub async fn due(
        &self,
        index: Index,
        now_ms: i64,
        limit: isize,
    ) -> Result<Vec<String>, SessionError> {
        let mut conn = self.redis.clone();
        Ok(conn
            .zrangebyscore_limit(index.key(), "-inf", now_ms, 0, limit)
            .await?)
    }

    /// Every live session with a room, oldest deadline first.
    pub async fn live(&self) -> Result<Vec<String>, SessionError> {
        let mut conn = self.redis.clone();
        Ok(conn.zrange(Index::Deadlines.key(), 0, -1).await?)
    }

    /// True the first time an event id is seen within `ttl_seconds`.
    pub async fn first_sighting(&self, key: &str, ttl_seconds: u64) -> Result<bool, SessionError> {
        let mut conn = self.redis.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(format!("webhook_seen:{key}"))
            .arg(1)
            .arg("NX")
            .arg("EX")
            .arg(ttl_seconds)
            .query_async(&mut conn)
            .await?;
        Ok(set.is_some())
    }

    /// Sets fields of a record as they are, whatever its status.
    pub async fn set_fields(
        &self,
        session: &Session,
        fields: &[(&str, String)],
    ) -> Result<(), SessionError> {
        let mut conn = self.redis.clone();
        let () = conn
            .hset_multiple(record_key(&session.account_id, &session.id), fields)
            .await?;
        Ok(())
    }

    /// Forgets a sighting, so a retry of an event that failed is acted on.
    pub async fn forget_sighting(&self, key: &str) -> Result<(), SessionError> {
        let mut conn = self.redis.clone();
        let () = conn.del(format!("webhook_seen:{key}")).await?;
        Ok(())
    }

    /// Keeps the agent's token on the record, for the worker only.
    pub async fn set_agent_token(
        &self,
        session: &Session,
        token: &str,
    ) -> Result<(), SessionError> {
        let mut conn = self.redis.clone();
        let () = conn
            .hset(
                record_key(&session.account_id, &session.id),
                "agent_token",
                token,
            )
            .await?;
        Ok(())
    }

    /// Moves `session` from one of `from` to `to`, writing `fields` with it.
    /// Returns whether this call made the move.
    pub async fn transition(
        &self,
        session: &Session,
        from: &[SessionStatus],
        to: SessionStatus,
        fields: &[(&str, String)],
    ) -> Result<bool, SessionError> {
        let mut conn = self.redis.clone();
        let from: Vec<&str> = from.iter().map(|s| status_name(*s)).collect();
        let mut invocation = self
            .transition
            .key(record_key(&session.account_id, &session.id));
        invocation.arg(from.join(",")).arg(status_name(to));
        for (k, v) in fields {
            invocation.arg(*k).arg(v);
        }
        let moved: i64 = invocation.invoke_async(&mut conn).await?;
        match moved {
            1 => Ok(true),
            0 => Ok(false),
            _ => Err(SessionError::NotFound(session.id.clone())),
        }
    }
}

fn from_fields(f: &HashMap<String, String>) -> Result<Session, SessionError> {
    let text = |k: &str| f.get(k).cloned().unwrap_or_default();
    let num = |k: &str| -> Result<i64, SessionError> {
        match f.get(k) {
            None => Ok(0),
            Some(v) => v
                .parse()
                .map_err(|_| SessionError::Corrupt(format!("field {k} is not a number"))),
        }
    };
    Ok(Session {
        id: text("id"),
        account_id: text("account_id"),
        agent_id: text("agent_id"),
        status: parse_status(&text("status")) as i32,
        client_user_ref: text("client_user_ref"),
        room_name: text("room_name"),
        provider: Provider::from_str_name(&text("provider")).unwrap_or(Provider::Livekit) as i32,
        created_at_ms: num("created_at_ms")?,
        started_at_ms: num("started_at_ms")?,
        ended_at_ms: num("ended_at_ms")?,
        ended_reason: text("ended_reason"),
        failure_code: text("failure_code"),
        duration_seconds: u64::try_from(num("duration_seconds")?).unwrap_or(0),
        kind: parse_kind(&text("kind")) as i32,
        link_id: text("link_id"),
        aspect_ratio: text("aspect_ratio"),
        agent_identity: text("agent_identity"),
        meta_json: text("meta_json"),
        reserved_seconds: u64::try_from(num("reserved_seconds")?).unwrap_or(0),
        deadline_ms: num("deadline_ms")?,
        max_session_seconds: u32::try_from(num("max_session_seconds")?).unwrap_or(0),
        worker_id: text("worker_id"),
        solo_timeout_seconds: u32::try_from(num("solo_timeout_seconds")?).unwrap_or(0),
        user_joined_at_ms: num("user_joined_at_ms")?,
        agent_joined_at_ms: num("agent_joined_at_ms")?,
        alone_since_ms: num("alone_since_ms")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ended_reasons_round_trip() {
        for r in EndedReason::ALL {
            assert_eq!(EndedReason::parse(r.as_str()), Some(r));
        }
        assert_eq!(EndedReason::parse("because"), None);
    }
}
