//! Verified provider webhooks (the gateway checked their signatures):
//! LiveKit's room and participant events, Daily's `meeting.ended`. Each
//! event is acted on once; a failure lets the provider's retry through.

use crate::{
    error::SessionError,
    records::EndedReason,
    schedule,
    service::{peer_failure, SessionService},
    store::PresenceChange,
};
use lobby_proto::{
    rooms::RoomOccupancyRequest,
    session::{self as pb, Session, SessionStatus},
};
use tonic::{Request, Status};

impl SessionService {
    pub async fn handle_provider_event(
        &self,
        event: pb::ProviderEvent,
    ) -> Result<pb::ProviderEventOutcome, Status> {
        if event.event_id.is_empty() {
            return Err(SessionError::invalid("event_id", "is required").into());
        }
        if event.created_at_ms + self.policy.webhook_max_age_ms < self.clock.now_ms() {
            return Err(SessionError::WebhookStale.into());
        }
        let provider = event.provider().as_str_name();
        let seen_for = u64::try_from(self.policy.webhook_max_age_ms / 1000)
            .unwrap_or(300)
            .max(60)
            * 2;
        let key = format!("{provider}:{}", event.event_id);
        if !self.store.first_sighting(&key, seen_for).await? {
            return Err(SessionError::WebhookReplayed.into());
        }
        let handled = self.act_on_provider_event(event).await;
        if handled.is_err() {
            // The provider retries a failed delivery: let the retry through.
            if let Err(e) = self.store.forget_sighting(&key).await {
                tracing::warn!(error = %e, "could not forget a failed webhook's sighting");
            }
        }
        handled
    }

    /// What a verified, fresh, first-seen provider event does.
    async fn act_on_provider_event(
        &self,
        event: pb::ProviderEvent,
    ) -> Result<pb::ProviderEventOutcome, Status> {
        let outcome = |session_id: String, action: &str| {
            Ok(pb::ProviderEventOutcome {
                session_id,
                action: action.to_owned(),
            })
        };
        // Our rooms are named after their session; any other room is not ours.
        let Some(session_id) = lobby_proto::session_of_room(&event.room_name).map(str::to_owned)
        else {
            return outcome(String::new(), "ignored");
        };
        let session = match self.store.get(&session_id).await {
            Ok(s) => s,
            Err(SessionError::NotFound(_)) => return outcome(String::new(), "ignored"),
            Err(e) => return Err(e.into()),
        };
        let is_agent = event.participant_is_agent
            || (!session.agent_identity.is_empty()
                && event.participant_identity == session.agent_identity);
        if session.status() != SessionStatus::Active {
            return outcome(session_id, "ignored");
        }
        let now = self.clock.now_ms();
        let reason = match event.kind.as_str() {
            "room_finished" | "meeting_ended" => EndedReason::ProviderRoomFinished,
            "participant_joined" => {
                let who = if is_agent {
                    PresenceChange::AgentJoined
                } else {
                    PresenceChange::UserJoined
                };
                let after = self.store.record_presence(&session, who, now).await?;
                self.refresh_schedule(&after).await?;
                return outcome(session_id, "recorded");
            }
            "participant_left" if !is_agent => {
                let occupancy = self
                    .rooms
                    .room_occupancy(Request::new(RoomOccupancyRequest {
                        provider: session.provider,
                        room_name: session.room_name.clone(),
                        agent_identity: session.agent_identity.clone(),
                    }))
                    .await
                    .map_err(peer_failure)?
                    .into_inner();
                if occupancy.exists && occupancy.users > 0 {
                    return outcome(session_id, "ignored");
                }
                if session.solo_timeout_seconds > 0 {
                    // The agent may wait alone a while for the user to come back.
                    let after = self
                        .store
                        .record_presence(&session, PresenceChange::AgentAlone, now)
                        .await?;
                    self.refresh_schedule(&after).await?;
                    return outcome(session_id, "alone");
                }
                EndedReason::UserLeft
            }
            _ => return outcome(session_id, "ignored"),
        };
        // The record is in hand: no second lookup (the end checks its state
        // again, atomically).
        self.end_session(&session, reason, None, None).await?;
        outcome(session_id, "ended")
    }

    /// After presence changed (`s` as it is now): the session's next sweep
    /// check may be sooner.
    async fn refresh_schedule(&self, s: &Session) -> Result<(), SessionError> {
        let at = schedule::next_check(
            s,
            self.clock.now_ms(),
            lobby_kit::time::now_ms(),
            self.policy.timing(),
        );
        self.store.reschedule(s, at).await
    }
}
