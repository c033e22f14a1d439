//! Session records: one Redis hash per session under the account's hash tag,
//! plus a global id → account index (a session id alone names no account).

use crate::error::SessionError;
use lobby_proto::{
    common::Provider,
    session::{Session, SessionStatus},
};
use redis::{aio::ConnectionManager, AsyncCommands, Script};
use std::collections::HashMap;

/// Why a session ended. A closed set: the record never holds anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndedReason {
    /// The end API (admin route or gRPC) was called.
    ExplicitEnd,
}

impl EndedReason {
    pub const ALL: [EndedReason; 1] = [EndedReason::ExplicitEnd];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ExplicitEnd => "explicit_end",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
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

#[derive(Clone)]
pub struct SessionStore {
    redis: ConnectionManager,
    transition: Script,
}

impl SessionStore {
    pub fn new(redis: ConnectionManager) -> Self {
        Self {
            redis,
            transition: Script::new(include_str!("transition.lua")),
        }
    }

    /// Writes a new record in `starting`. The index goes first: an index
    /// without a record reads as "not found", never the reverse.
    pub async fn create(&self, s: &Session) -> Result<(), SessionError> {
        let mut conn = self.redis.clone();
        let () = conn.set(index_key(&s.id), &s.account_id).await?;
        let fields: Vec<(&str, String)> = vec![
            ("id", s.id.clone()),
            ("account_id", s.account_id.clone()),
            ("agent_id", s.agent_id.clone()),
            ("status", status_name(SessionStatus::Starting).to_owned()),
            ("client_user_ref", s.client_user_ref.clone()),
            ("provider", s.provider().as_str_name().to_owned()),
            ("room_name", s.room_name.clone()),
            ("created_at_ms", s.created_at_ms.to_string()),
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
