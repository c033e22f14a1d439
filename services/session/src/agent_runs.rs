//! Seed 001 agent runs: a record per run (no room, no slot), and its
//! append-only event log, scoped by the run's session JWT.

use crate::{error::SessionError, service::SessionService, store::AppendRefusal};
use lobby_proto::session::{self as pb, Session, SessionEvent, SessionKind, SessionStatus};

/// Seed 001: bounds of one run's metadata and events.
pub const MAX_META_BYTES: usize = 16 * 1024;
pub const MAX_EVENT_PAYLOAD_BYTES: usize = 16 * 1024;
pub const MAX_EVENT_KIND_CHARS: usize = 64;
/// The associated-data name event payloads are sealed under.
const EVENT_PAYLOAD_FIELD: &str = "event";

pub fn valid_event_kind(kind: &str) -> bool {
    !kind.is_empty()
        && kind.chars().count() <= MAX_EVENT_KIND_CHARS
        && kind
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'))
}

/// The run's metadata as stored: a JSON object of bounded size.
pub fn run_meta(meta_json: &str) -> Result<String, SessionError> {
    let meta = if meta_json.is_empty() {
        "{}"
    } else {
        meta_json
    };
    if meta.len() > MAX_META_BYTES {
        return Err(SessionError::invalid(
            "meta",
            "must be at most 16384 bytes of JSON",
        ));
    }
    match serde_json::from_str::<serde_json::Value>(meta) {
        Ok(serde_json::Value::Object(_)) => Ok(meta.to_owned()),
        _ => Err(SessionError::invalid("meta", "must be a JSON object")),
    }
}

impl SessionService {
    pub async fn start_agent_run(
        &self,
        req: pb::StartAgentRunRequest,
    ) -> Result<pb::StartAgentRunResponse, SessionError> {
        let principal = req.principal.unwrap_or_default();
        if principal.account_id.is_empty() || principal.agent_id.is_empty() {
            return Err(SessionError::invalid(
                "principal",
                "account_id and agent_id are required",
            ));
        }
        if req.session_id.is_empty() {
            return Err(SessionError::invalid("session_id", "is required"));
        }
        let meta = run_meta(&req.meta_json)?;
        let now = lobby_kit::time::now_ms();
        let limits = self.policy.runs;
        let run = Session {
            id: req.session_id,
            account_id: principal.account_id,
            agent_id: principal.agent_id,
            status: SessionStatus::Active as i32,
            kind: SessionKind::AgentRun as i32,
            meta_json: meta,
            created_at_ms: now,
            started_at_ms: now,
            ..Default::default()
        };
        let first_check = self.clock.now_ms() + limits.idle_ms;
        if let Err(open) = self.store.create_run(&run, limits, first_check).await? {
            tracing::info!(agent_id = %run.agent_id, open, "agent run refused: open runs at the cap");
            return Err(SessionError::OpenRunsLimit {
                limit: limits.max_open,
            });
        }
        tracing::info!(session_id = %run.id, agent_id = %run.agent_id, "agent run started");
        Ok(pb::StartAgentRunResponse { session_id: run.id })
    }

    pub async fn append_event(
        &self,
        req: pb::AppendEventRequest,
    ) -> Result<SessionEvent, SessionError> {
        if !valid_event_kind(&req.kind) {
            return Err(SessionError::invalid(
                "kind",
                "must be 1-64 characters of letters, digits, '_', '.', ':' or '-'",
            ));
        }
        if req.payload_json.len() > MAX_EVENT_PAYLOAD_BYTES {
            return Err(SessionError::invalid(
                "payload",
                "must be at most 16384 bytes of JSON",
            ));
        }
        let payload = if req.payload_json.is_empty() {
            "null".to_owned()
        } else {
            req.payload_json
        };
        if serde_json::from_str::<serde_json::Value>(&payload).is_err() {
            return Err(SessionError::invalid("payload", "must be JSON"));
        }
        // Payloads are the agent's to fill, so they may hold personal data.
        let keys = self.vault.keys(&req.account_id).await?;
        let now = lobby_kit::time::now_ms();
        let mut event = SessionEvent {
            seq: 0,
            kind: req.kind,
            payload_json: keys.seal_str(&req.session_id, EVENT_PAYLOAD_FIELD, &payload),
            timestamp_ms: if req.timestamp_ms > 0 {
                req.timestamp_ms
            } else {
                now
            },
            recorded_at_ms: now,
        };
        let appended = self
            .store
            .append_event(
                &req.account_id,
                &req.session_id,
                &req.agent_id,
                self.policy.max_events_per_session,
                self.policy.runs.idle_ms,
                &event,
            )
            .await?;
        event.seq = match appended {
            Ok(seq) => seq,
            Err(AppendRefusal::NotFound) => return Err(SessionError::NotFound(req.session_id)),
            Err(AppendRefusal::Ended) => return Err(SessionError::Ended),
            Err(AppendRefusal::Full) => {
                return Err(SessionError::EventsFull(self.policy.max_events_per_session))
            }
        };
        event.payload_json = payload;
        Ok(event)
    }

    pub async fn list_events(
        &self,
        req: pb::ListEventsRequest,
    ) -> Result<Vec<SessionEvent>, SessionError> {
        let mut events = self
            .store
            .events(&req.account_id, &req.session_id, &req.agent_id)
            .await?
            .ok_or_else(|| SessionError::NotFound(req.session_id.clone()))?;
        for e in &mut events {
            if lobby_vault::sealed_key_id(&e.payload_json).is_some() {
                e.payload_json = self
                    .vault
                    .open_str(
                        &req.account_id,
                        &req.session_id,
                        EVENT_PAYLOAD_FIELD,
                        &e.payload_json,
                    )
                    .await?;
            }
        }
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_kinds_are_short_and_plain() {
        assert!(valid_event_kind("turn.started"));
        assert!(!valid_event_kind(""));
        assert!(!valid_event_kind("has space"));
        assert!(!valid_event_kind(&"k".repeat(65)));
    }

    #[test]
    fn meta_is_an_object_of_bounded_size() {
        assert_eq!(run_meta("").ok().as_deref(), Some("{}"));
        assert!(run_meta("[1]").is_err());
        assert!(run_meta(&format!("{{\"a\":\"{}\"}}", "x".repeat(MAX_META_BYTES))).is_err());
    }
}
