//! The session service's state and the steps every flow shares: asking
//! rooms, ending a session, failing a start. The flows themselves live in
//! `start`, `sweep`, `provider_events` and `agent_runs`; `grpc` adapts them
//! to the wire.

use crate::{
    error::SessionError,
    records::EndedReason,
    store::{Finish, Finished, SessionStore},
};
use lobby_kit::grpc::{forward_status, is_unreachable};
use lobby_proto::{
    rooms::{rooms_server::Rooms, CloseRoomRequest},
    session::{Session, SessionKind, SessionStatus},
};
use std::{sync::Arc, time::Duration};
use tonic::Status;

/// The rooms service, in-process or over gRPC: the session service cannot tell.
pub type RoomsPeer = Arc<dyn Rooms>;
/// The artifacts service, in-process or over gRPC.
pub type ArtifactsPeer = Arc<dyn lobby_proto::artifacts::artifacts_server::Artifacts>;

/// Settings the service applies to every session.
#[derive(Debug, Clone)]
pub struct Policy {
    /// How long the record of a start that failed is kept.
    pub failed_record_ttl_seconds: i64,
    /// How long an ended record (and its event log, and its id lookup) is
    /// kept.
    pub ended_record_ttl_seconds: i64,
    /// The LiveKit identity the avatar agent joins link sessions under.
    pub avatar_agent_identity: String,
    pub max_events_per_session: u32,
    /// Seed 001 runs: how many one agent may have open, and how long one
    /// stays open without an event.
    pub runs: crate::store::RunLimits,
    /// How often the sweeper looks for sessions that came due.
    pub sweep_interval: Duration,
    /// A room younger than this may be missing from the provider's listing.
    pub reconcile_grace_ms: i64,
    /// Provider events older than this are refused as stale.
    pub webhook_max_age_ms: i64,
    /// The most messages one session's record holds.
    pub max_messages_per_session: u32,
    /// The most records the records contract's unpaginated list returns.
    pub records_list_max: u64,
    /// How long a slot is held without renewal: how soon a crashed
    /// holder's slot frees.
    pub lease_ms: i64,
    /// The longest `retry_after` a refusal advises.
    pub retry_after_max_ms: i64,
    /// How long the user and the agent each have to join after the start.
    pub join: crate::presence::JoinDeadlines,
}

impl Policy {
    /// How soon a step that could not be taken is tried again, and how
    /// often a lease comes up for renewal: a third of a lease, so a holder
    /// gets two more chances before its lease runs out.
    pub fn recheck_ms(&self) -> i64 {
        (self.lease_ms / 3).max(1)
    }

    pub fn timing(&self) -> crate::schedule::Timing {
        crate::schedule::Timing {
            lease_ms: self.lease_ms,
            join: self.join,
        }
    }
}

/// Cheap to clone: the sweeper runs on a clone.
#[derive(Clone)]
pub struct SessionService {
    pub(crate) store: SessionStore,
    pub(crate) records: crate::record_store::RecordStore,
    pub(crate) vault: lobby_vault::KeyVault,
    pub(crate) name_orders: Arc<crate::records_api::NameOrders>,
    pub(crate) audit: lobby_kit::audit::AuditLog,
    pub(crate) rooms: RoomsPeer,
    pub(crate) artifacts: ArtifactsPeer,
    pub(crate) policy: Policy,
    pub(crate) clock: lobby_kit::time::Clock,
    pub(crate) metrics: crate::metrics::SessionMetrics,
    /// Other regions' home admission, for accounts homed there.
    pub(crate) home: crate::home::HomeRegions,
    /// Where the sweeper's read of worker end reports stands.
    pub(crate) job_ends_cursor: Arc<tokio::sync::Mutex<String>>,
    /// The room URL the last LiveKit room had (one URL for every room): a
    /// start records it with its admission, and writes the URL again only
    /// when its room's differs. Daily rooms each have their own.
    pub(crate) last_room_urls: Arc<std::sync::RwLock<std::collections::HashMap<i32, String>>>,
    /// Admissions, give-backs and ends whose answer Redis lost, settled
    /// once it answers (`give_back`).
    pub(crate) give_backs: crate::give_back::GiveBacks,
}

/// A peer's error as this service reports it: an unreachable peer is the
/// orchestrator failing; an answer of its own is passed through.
pub(crate) fn peer_failure(status: Status) -> Status {
    if is_unreachable(&status) {
        SessionError::Orchestrator(status.message().to_owned()).into()
    } else {
        forward_status(&status)
    }
}

/// Everything the service keeps in Redis, by what it is.
pub struct Storage {
    pub sessions: SessionStore,
    pub records: crate::record_store::RecordStore,
    pub vault: lobby_vault::KeyVault,
    pub audit: lobby_kit::audit::AuditLog,
}

impl Storage {
    pub fn new(redis: &lobby_kit::redis_conn::Redis, config: &crate::SessionConfig) -> Self {
        Self {
            sessions: SessionStore::new(redis.connection()),
            records: crate::record_store::RecordStore::new(redis.connection()),
            vault: lobby_vault::KeyVault::new(
                redis.connection(),
                config.master_keys.clone(),
                config.vault_cache_ttl,
            ),
            audit: lobby_kit::audit::AuditLog::new(
                redis.connection(),
                config.audit_retention_ms,
                lobby_kit::audit::AuditWriter::Sessions,
            ),
        }
    }
}

impl SessionService {
    pub fn new(
        storage: Storage,
        rooms: RoomsPeer,
        artifacts: ArtifactsPeer,
        policy: Policy,
        clock: lobby_kit::time::Clock,
        metrics: crate::metrics::SessionMetrics,
        home: crate::home::HomeRegions,
    ) -> Self {
        Self {
            store: storage.sessions,
            records: storage.records,
            vault: storage.vault,
            name_orders: Arc::default(),
            audit: storage.audit,
            rooms,
            artifacts,
            policy,
            clock,
            metrics,
            home,
            job_ends_cursor: Arc::default(),
            last_room_urls: Arc::default(),
            give_backs: crate::give_back::GiveBacks::default(),
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Ends a session: one idempotent step whatever asked for it. The room
    /// is closed first, so an unreachable rooms service leaves the session
    /// live (and the end retryable) rather than ended with its room open.
    /// `owner` = (account, agent) restricts the end to that agent's session
    /// (checked again atomically by the end itself).
    pub async fn end(
        &self,
        session_id: &str,
        reason: EndedReason,
        ended_at_ms: Option<i64>,
        owner: Option<(&str, &str)>,
    ) -> Result<Session, Status> {
        let session = match owner {
            None => self.store.get(session_id).await?,
            Some((account, agent)) => self
                .store
                .get_in(account, session_id)
                .await?
                .filter(|s| s.agent_id == agent)
                .ok_or_else(|| SessionError::NotFound(session_id.to_owned()))?,
        };
        self.end_session(&session, reason, ended_at_ms, owner.map(|o| o.1))
            .await
    }

    /// Ends `session` (as read; the end itself checks its state again,
    /// atomically). `as_agent` makes it a run's own end: only that agent's,
    /// and only while live.
    pub(crate) async fn end_session(
        &self,
        session: &Session,
        reason: EndedReason,
        ended_at_ms: Option<i64>,
        as_agent: Option<&str>,
    ) -> Result<Session, Status> {
        if !is_live(session) {
            // The admin end is idempotent; a run's own end is a write its
            // token may no longer make.
            return match as_agent {
                None => Ok(session.clone()),
                Some(_) => Err(SessionError::Ended.into()),
            };
        }
        // The record first, then the room: deleting the room makes the
        // provider report it finished, and that report must find the
        // session already ended for the reason this end gives.
        let ended_at = ended_at_ms.unwrap_or_else(lobby_kit::time::now_ms);
        let finished = self
            .store
            .finish(
                session,
                Finish::Ended(reason),
                ended_at,
                as_agent.unwrap_or(""),
                self.policy.ended_record_ttl_seconds,
                self.clock.now_ms() + self.policy.ended_record_ttl_seconds * 1000,
            )
            .await;
        let finished = match finished {
            Ok(finished) => finished,
            Err(e) => {
                // It may have ended it: the caller retries, and the end is
                // applied here too once Redis answers (once, between them).
                if crate::give_back::outcome_unknown(&e) {
                    self.owe(
                        session,
                        crate::give_back::Owed::End {
                            reason,
                            ended_at_ms: ended_at,
                            as_agent: as_agent.unwrap_or("").to_owned(),
                        },
                    );
                }
                return Err(e.into());
            }
        };
        match finished {
            Finished::Missing | Finished::Withdrawn => {
                return Err(SessionError::NotFound(session.id.clone()).into())
            }
            Finished::Now => self.after_end(session, reason, ended_at).await,
            Finished::Already if as_agent.is_some() => return Err(SessionError::Ended.into()),
            Finished::Already => {}
        }
        Ok(self
            .store
            .get_in(&session.account_id, &session.id)
            .await?
            .unwrap_or_else(|| session.clone()))
    }

    /// What follows the end of a session, by whoever ended it: the count,
    /// the hold at home, the lookup's expiry, the room.
    pub(crate) async fn after_end(&self, session: &Session, reason: EndedReason, ended_at: i64) {
        self.metrics
            .ended
            .with_label_values(&[reason.as_str()])
            .inc();
        tracing::info!(session_id = %session.id, reason = reason.as_str(), "session ended");
        let ran_ms = ended_at - session.started_at_ms;
        self.release_at_home(session, false, u64::try_from(ran_ms / 1000).unwrap_or(0))
            .await;
        // The record expires; its lookup goes with it.
        if let Err(e) = self
            .store
            .expire_lookup(session, self.policy.ended_record_ttl_seconds)
            .await
        {
            tracing::warn!(session_id = %session.id, error = %e, "the ended session's id lookup keeps no expiry");
        }
        if session.kind() != SessionKind::AgentRun {
            if let Err(status) = self.close_room(session).await {
                self.close_room_later(session, &status).await;
            }
        }
    }

    /// Gives back everything a start took after admission (slots, minutes,
    /// the link use; room and worker through rooms) and marks it failed.
    /// When Redis cannot be told, it is owed and given back once it answers.
    pub(crate) async fn fail_start(&self, session: &Session, code: lobby_kit::ErrorCode) {
        let closed = self.close_room(session);
        let finished = async {
            self.store
                .finish(
                    session,
                    Finish::Failed(code.as_str()),
                    lobby_kit::time::now_ms(),
                    "",
                    self.policy.failed_record_ttl_seconds,
                    self.clock.now_ms() + self.policy.failed_record_ttl_seconds * 1000,
                )
                .await?;
            // The record expires; its lookup goes with it.
            self.store
                .expire_lookup(session, self.policy.failed_record_ttl_seconds)
                .await
        };
        let (closed, finished, ()) =
            tokio::join!(closed, finished, self.release_at_home(session, true, 0));
        match finished {
            Err(e) if crate::give_back::outcome_unknown(&e) => {
                self.owe(session, crate::give_back::Owed::Fail(code));
            }
            Err(e) => {
                // Its lease runs out and the sweeper ends it (closing the
                // room): nothing stays held.
                tracing::error!(session_id = %session.id, error = %e, "failed start not given back; its lease will free it");
            }
            Ok(()) => {
                if let Err(status) = closed {
                    self.close_room_later(session, &status).await;
                }
            }
        }
        self.metrics
            .starts
            .with_label_values(&[code.as_str()])
            .inc();
    }

    /// What follows a failed start's give-back settled later: the lookup's
    /// expiry and the room (closed again: closing is idempotent).
    pub(crate) async fn after_failed_start(&self, session: &Session) {
        if let Err(e) = self
            .store
            .expire_lookup(session, self.policy.failed_record_ttl_seconds)
            .await
        {
            tracing::warn!(session_id = %session.id, error = %e, "the failed start's id lookup keeps no expiry");
        }
        if let Err(status) = self.close_room(session).await {
            self.close_room_later(session, &status).await;
        }
    }

    /// Gives back the hold the account's home region took for `session`
    /// (nothing to do for a session admitted here). When home cannot be
    /// reached, its hold runs out within a lease there instead.
    async fn release_at_home(&self, session: &Session, failed: bool, ran_seconds: u64) {
        if session.home_region.is_empty() {
            return;
        }
        let released = self
            .home
            .release(
                &session.home_region,
                lobby_proto::regions::ReleaseHoldRequest {
                    session_id: session.id.clone(),
                    account_id: session.account_id.clone(),
                    agent_id: session.agent_id.clone(),
                    failed,
                    ran_seconds,
                },
            )
            .await;
        if let Err(e) = released {
            tracing::warn!(session_id = %session.id, home = %session.home_region, error = %e, "hold not given back; it runs out within a lease at home");
        }
    }

    /// Rooms did not close a finished session's room (it is unreachable):
    /// the sweeper closes it, and frees its worker, once rooms answers.
    async fn close_room_later(&self, session: &Session, status: &Status) {
        tracing::warn!(session_id = %session.id, error = %status.message(), "room not closed yet; the sweeper will");
        let retry_at = self.clock.now_ms() + self.policy.recheck_ms();
        if let Err(e) = self.store.close_room_later(session, retry_at).await {
            tracing::error!(session_id = %session.id, error = %e, "could not schedule the room's close");
        }
    }

    pub(crate) async fn close_room(&self, s: &Session) -> Result<(), Status> {
        self.rooms
            .close_room(lobby_kit::grpc::outgoing(CloseRoomRequest {
                session_id: s.id.clone(),
                room_name: s.room_name.clone(),
                provider: s.provider,
                worker_id: s.worker_id.clone(),
                needs_no_worker: !s.requires_worker,
            }))
            .await
            .map(|_| ())
            .map_err(peer_failure)
    }
}

/// The associated-data name `client_user_ref` is sealed under.
pub const CLIENT_USER_REF_FIELD: &str = "client_user_ref";

impl SessionService {
    /// The record as callers see it: its sealed fields opened (a value
    /// stored before sealing existed passes through).
    pub async fn opened(&self, mut s: Session) -> Result<Session, SessionError> {
        if lobby_vault::sealed_key_id(&s.client_user_ref).is_some() {
            s.client_user_ref = self
                .vault
                .open_str(
                    &s.account_id,
                    &s.id,
                    CLIENT_USER_REF_FIELD,
                    &s.client_user_ref,
                )
                .await?;
        }
        Ok(s)
    }
}

pub(crate) fn is_live(s: &Session) -> bool {
    matches!(s.status(), SessionStatus::Starting | SessionStatus::Active)
}
