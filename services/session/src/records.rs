//! The session record: its fields as stored (one Redis hash per session),
//! and the closed set of reasons a session ends.

use crate::error::SessionError;
use lobby_proto::{
    common::Provider,
    session::{Session, SessionKind, SessionStatus},
};
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
    /// An agent run had no event for `LOBBY_AGENT_RUN_IDLE_TIMEOUT_SECONDS`.
    IdleTimeout,
}

impl EndedReason {
    pub const ALL: [EndedReason; 12] = [
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
        EndedReason::IdleTimeout,
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
            Self::IdleTimeout => "idle_timeout",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

pub fn status_name(s: SessionStatus) -> &'static str {
    match s {
        SessionStatus::Starting => "starting",
        SessionStatus::Active => "active",
        SessionStatus::Ended => "ended",
        SessionStatus::Failed => "failed",
        SessionStatus::Unspecified => "unspecified",
    }
}

pub fn parse_status(s: &str) -> SessionStatus {
    match s {
        "starting" => SessionStatus::Starting,
        "active" => SessionStatus::Active,
        "ended" => SessionStatus::Ended,
        "failed" => SessionStatus::Failed,
        _ => SessionStatus::Unspecified,
    }
}

pub fn kind_name(k: SessionKind) -> &'static str {
    match k {
        SessionKind::Link => "link",
        SessionKind::AgentRun => "agent_run",
        SessionKind::Record => "record",
        SessionKind::Connect | SessionKind::Unspecified => "connect",
    }
}

pub fn parse_kind(s: &str) -> SessionKind {
    match s {
        "link" => SessionKind::Link,
        "agent_run" => SessionKind::AgentRun,
        "record" => SessionKind::Record,
        _ => SessionKind::Connect,
    }
}

/// A new record's own fields (what it is, who it is for), as stored; the
/// admission script adds its status, times and reservation, and agent runs
/// add theirs in [`run_fields`].
pub fn new_record_fields(s: &Session) -> Vec<(&'static str, String)> {
    vec![
        ("id", s.id.clone()),
        ("account_id", s.account_id.clone()),
        ("agent_id", s.agent_id.clone()),
        ("kind", kind_name(s.kind()).to_owned()),
        ("client_user_ref", s.client_user_ref.clone()),
        ("provider", s.provider().as_str_name().to_owned()),
        ("room_name", s.room_name.clone()),
        ("link_id", s.link_id.clone()),
        ("aspect_ratio", s.aspect_ratio.clone()),
        ("agent_identity", s.agent_identity.clone()),
        ("solo_timeout_seconds", s.solo_timeout_seconds.to_string()),
        (
            "requires_worker",
            if s.requires_worker { "1" } else { "0" }.to_owned(),
        ),
        ("home_region", s.home_region.clone()),
        ("room_url", s.room_url.clone()),
    ]
}

/// A seed-004 record's own fields as it is created (its personal fields,
/// sealed, and its tokens are added by the records API).
pub fn contract_record_fields(
    id: &str,
    account_id: &str,
    agent_id: &str,
    now_ms: i64,
) -> Vec<(&'static str, String)> {
    vec![
        ("id", id.to_owned()),
        ("account_id", account_id.to_owned()),
        ("agent_id", agent_id.to_owned()),
        ("kind", kind_name(SessionKind::Record).to_owned()),
        ("status", status_name(SessionStatus::Active).to_owned()),
        ("created_at_ms", now_ms.to_string()),
        ("updated_at_ms", now_ms.to_string()),
    ]
}

/// Everything an agent run's record holds from the start.
pub fn run_fields(s: &Session) -> Vec<(&'static str, String)> {
    let mut fields = new_record_fields(s);
    fields.extend([
        ("status", status_name(s.status()).to_owned()),
        ("meta_json", s.meta_json.clone()),
        ("created_at_ms", s.created_at_ms.to_string()),
        ("started_at_ms", s.started_at_ms.to_string()),
    ]);
    fields
}

pub fn from_fields(f: &HashMap<String, String>) -> Result<Session, SessionError> {
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
        lease_deadline_ms: num("lease_deadline_ms")?,
        requires_worker: text("requires_worker") == "1",
        room_close_pending: text("room_close_pending") == "1",
        purge_at_ms: num("purge_at_ms")?,
        room_url: text("room_url"),
        home_region: text("home_region"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_what_was_written() {
        let run = Session {
            id: "r1".into(),
            account_id: "acct_a".into(),
            agent_id: "agent".into(),
            status: SessionStatus::Active as i32,
            kind: SessionKind::AgentRun as i32,
            meta_json: "{}".into(),
            created_at_ms: 5,
            started_at_ms: 6,
            requires_worker: true,
            solo_timeout_seconds: 30,
            provider: Provider::Daily as i32,
            ..Default::default()
        };
        let stored: HashMap<String, String> = run_fields(&run)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        assert_eq!(from_fields(&stored).expect("readable"), run);
    }

    #[test]
    fn ended_reasons_round_trip() {
        for r in EndedReason::ALL {
            assert_eq!(EndedReason::parse(r.as_str()), Some(r));
        }
        assert_eq!(EndedReason::parse("because"), None);
    }
}
