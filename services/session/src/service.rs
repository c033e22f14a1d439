//! The `lobby.session.v1.Sessions` gRPC service.

use crate::{
    error::SessionError,
    ids,
    records::{AppendRefusal, EndedReason, Index, SessionStore},
};
use lobby_kit::grpc::{forward_status, is_unreachable, machine_code};
use lobby_proto::{
    auth::{auth_client::AuthClient, IssueSessionTokenRequest},
    common::Provider,
    rooms::{
        rooms_client::RoomsClient, AllocateRoomRequest, ExistingRoomsRequest, ReleaseRoomRequest,
        RoomOccupancyRequest,
    },
    session::{
        self as pb, sessions_server::Sessions, Session, SessionEvent, SessionKind, SessionStatus,
    },
};
use std::time::Duration;
use tonic::{transport::Channel, Request, Response, Status};

/// Seed 000: `client_user_ref` is at most 256 characters.
pub const MAX_CLIENT_USER_REF_CHARS: usize = 256;
/// Seed 001: bounds of one run's metadata and events.
pub const MAX_META_BYTES: usize = 16 * 1024;
pub const MAX_EVENT_PAYLOAD_BYTES: usize = 16 * 1024;
pub const MAX_EVENT_KIND_CHARS: usize = 64;
/// Seed 002: the aspect ratios a worker renders; anything else means 4:3.
pub const ASPECT_RATIOS: [&str; 3] = ["4:3", "3:4", "1:1"];

/// Settings the service applies to every session.
#[derive(Debug, Clone)]
pub struct Policy {
    /// How long the record of a start that failed is kept.
    pub failed_record_ttl_seconds: i64,
    /// The LiveKit identity the avatar agent joins link sessions under.
    pub avatar_agent_identity: String,
    pub max_events_per_session: u32,
    /// How often the reaper ends sessions past their deadline.
    pub reaper_interval: Duration,
    /// How often the reconciler compares live sessions with the provider.
    pub reconcile_interval: Duration,
    /// A session younger than this is left alone by the reconciler (its room
    /// may still be on its way to the provider's listing).
    pub reconcile_grace_ms: i64,
    /// Provider events older than this are refused as stale.
    pub webhook_max_age_ms: i64,
    /// A worker-run session ends this long after its worker's last heartbeat.
    pub lease_ms: i64,
    /// A start still unresolved after this long was abandoned by a crash.
    pub start_timeout_ms: i64,
    /// How long the user and the agent each have to join after the start.
    pub join: crate::presence::JoinDeadlines,
}

/// Cheap to clone: the reaper and the reconciler run on clones.
#[derive(Clone)]
pub struct SessionService {
    store: SessionStore,
    rooms: RoomsClient<Channel>,
    auth: AuthClient<Channel>,
    policy: Policy,
    clock: lobby_kit::time::Clock,
    metrics: crate::metrics::SessionMetrics,
}

/// A peer's error as this service reports it: an unreachable peer is the
/// orchestrator failing; an answer of its own is passed through.
fn peer_failure(status: Status) -> Status {
    if is_unreachable(&status) {
        SessionError::Orchestrator(status.message().to_owned()).into()
    } else {
        forward_status(&status)
    }
}

fn participant_identity(client_user_ref: &str, session_id: &str) -> String {
    if client_user_ref.is_empty() {
        let tail: String = session_id.chars().rev().take(8).collect();
        format!(
            "user-{}",
            tail.chars().rev().collect::<String>().to_ascii_lowercase()
        )
    } else {
        client_user_ref.to_owned()
    }
}

/// Seconds between start and end, never negative.
fn ran_seconds(s: &Session, ended_at_ms: i64) -> u64 {
    if s.started_at_ms > 0 {
        u64::try_from((ended_at_ms - s.started_at_ms).max(0) / 1000).unwrap_or(0)
    } else {
        0
    }
}

fn valid_event_kind(kind: &str) -> bool {
    !kind.is_empty()
        && kind.chars().count() <= MAX_EVENT_KIND_CHARS
        && kind
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'))
}

impl SessionService {
    pub fn new(
        store: SessionStore,
        rooms: RoomsClient<Channel>,
        auth: AuthClient<Channel>,
        policy: Policy,
        clock: lobby_kit::time::Clock,
        metrics: crate::metrics::SessionMetrics,
    ) -> Self {
        Self {
            store,
            rooms,
            auth,
            policy,
            clock,
            metrics,
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Ends a session: one idempotent step whatever asked for it. Releases
    /// first, so an unreachable rooms service leaves the record live (and the
    /// end retryable) rather than ended with its slot still held.
    pub async fn end(&self, session_id: &str, reason: EndedReason) -> Result<Session, Status> {
        let session = self.store.get(session_id).await?;
        let live = [SessionStatus::Starting, SessionStatus::Active];
        if !live.contains(&session.status()) {
            self.store.untrack_all(&session.id).await?;
            return Ok(session);
        }
        let ended_at = lobby_kit::time::now_ms();
        let ran = ran_seconds(&session, ended_at);
        self.release(&session, ran).await?;
        let moved = self
            .store
            .transition(
                &session,
                &live,
                SessionStatus::Ended,
                &[
                    ("ended_at_ms", ended_at.to_string()),
                    ("ended_reason", reason.as_str().to_owned()),
                    ("duration_seconds", ran.to_string()),
                ],
            )
            .await?;
        self.store.untrack_all(&session.id).await?;
        if moved {
            self.metrics
                .ended
                .with_label_values(&[reason.as_str()])
                .inc();
            tracing::info!(session_id = %session.id, reason = reason.as_str(), duration_seconds = ran, "session ended");
        }
        Ok(self.store.get(&session.id).await?)
    }

    /// One sweep: ends sessions past their deadline (`max_duration`, or
    /// `minutes_exhausted` when they could reserve less than their maximum)
    /// or past their lease (`lease_expired`: the worker stopped renewing it),
    /// and cleans up starts that a crash abandoned.
    pub async fn reap_due(&self) -> Result<usize, SessionError> {
        let now = self.clock.now_ms();
        let mut ended = 0;
        for id in self.store.due(Index::Deadlines, now, 100).await? {
            let reason = match self.store.get(&id).await {
                Ok(s) if s.reserved_seconds < u64::from(s.max_session_seconds) => {
                    EndedReason::MinutesExhausted
                }
                Ok(_) => EndedReason::MaxDuration,
                Err(SessionError::NotFound(_)) => {
                    self.store.untrack_all(&id).await?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            ended += usize::from(self.end_logged(&id, reason).await);
        }
        // Leases follow wall time, like the heartbeats that renew them; the
        // (test-movable) clock is for calendar expiries, not liveness.
        for id in self
            .store
            .due(Index::Leases, lobby_kit::time::now_ms(), 100)
            .await?
        {
            ended += usize::from(self.end_logged(&id, EndedReason::LeaseExpired).await);
        }
        for id in self.store.due(Index::Presence, now, 100).await? {
            match self.store.get(&id).await {
                Ok(s) if s.status() == SessionStatus::Active => {
                    match crate::presence::verdict(&s, self.policy.join, now) {
                        Some(reason) => ended += usize::from(self.end_logged(&id, reason).await),
                        None => self.refresh_presence(&s).await?,
                    }
                }
                Ok(_) | Err(SessionError::NotFound(_)) => {
                    self.store.untrack(Index::Presence, &id).await?
                }
                Err(e) => return Err(e),
            }
        }
        for id in self.store.due(Index::Starting, now, 100).await? {
            if let Err(e) = self.clean_up_start(&id).await {
                tracing::warn!(session_id = %id, error = %e.message(), "abandoned start not cleaned up yet; will retry");
            }
        }
        Ok(ended)
    }

    /// Puts the session's next presence check in the index, or takes it
    /// out when nobody is awaited any more.
    async fn refresh_presence(&self, s: &Session) -> Result<(), SessionError> {
        match crate::presence::next_check(s, self.policy.join) {
            Some(at) => self.store.track(Index::Presence, &s.id, at).await,
            None => self.store.untrack(Index::Presence, &s.id).await,
        }
    }

    async fn end_logged(&self, id: &str, reason: EndedReason) -> bool {
        match self.end(id, reason).await {
            Ok(_) => true,
            Err(status) if status.code() == tonic::Code::NotFound => {
                let _ = self.store.untrack_all(id).await;
                false
            }
            Err(status) => {
                tracing::warn!(session_id = %id, error = %status.message(), "sweep could not end a session; will retry");
                false
            }
        }
    }

    /// A start nobody finished (its service died mid-way): give back
    /// whatever it may have taken (slots, minutes, worker capacity, room;
    /// releasing is idempotent) and mark it failed.
    async fn clean_up_start(&self, id: &str) -> Result<(), Status> {
        let session = match self.store.get(id).await {
            Ok(s) => s,
            Err(SessionError::NotFound(_)) => {
                return Ok(self.store.untrack(Index::Starting, id).await?)
            }
            Err(e) => return Err(e.into()),
        };
        if session.status() == SessionStatus::Active {
            return Ok(self.store.untrack(Index::Starting, id).await?);
        }
        // Rooms derives the room when the record has none (the start died
        // before writing it).
        let abandoned = session;
        self.release(&abandoned, 0).await?;
        if abandoned.status() == SessionStatus::Starting {
            self.mark_failed(&abandoned, "start_abandoned").await;
        }
        self.store.untrack(Index::Starting, id).await?;
        tracing::info!(session_id = %id, "abandoned start cleaned up");
        Ok(())
    }

    /// Compares live sessions with the provider's rooms and ends those whose
    /// room is gone: a lost webhook must not keep a slot or bill minutes.
    pub async fn reconcile(&self) -> Result<usize, SessionError> {
        let now = self.clock.now_ms();
        let mut candidates = Vec::new();
        for id in self.store.live().await? {
            match self.store.get(&id).await {
                Ok(s)
                    if s.started_at_ms > 0
                        && s.started_at_ms + self.policy.reconcile_grace_ms <= now
                        && !s.room_name.is_empty() =>
                {
                    candidates.push(s)
                }
                Ok(_) => {}
                Err(SessionError::NotFound(_)) => self.store.untrack_all(&id).await?,
                Err(e) => return Err(e),
            }
        }
        let mut ended = 0;
        for provider in [Provider::Livekit, Provider::Daily] {
            let group: Vec<&Session> = candidates
                .iter()
                .filter(|s| s.provider() == provider)
                .collect();
            if group.is_empty() {
                continue;
            }
            let answer = self
                .rooms
                .clone()
                .existing_rooms(ExistingRoomsRequest {
                    provider: provider as i32,
                    room_names: group.iter().map(|s| s.room_name.clone()).collect(),
                })
                .await;
            let answer = match answer {
                Ok(a) => a.into_inner(),
                Err(status) => {
                    tracing::warn!(provider = provider.as_str_name(), error = %status.message(), "reconciler could not list rooms");
                    continue;
                }
            };
            if !answer.authoritative {
                continue;
            }
            for s in group
                .into_iter()
                .filter(|s| !answer.existing.contains(&s.room_name))
            {
                if self.end(&s.id, EndedReason::RoomMissing).await.is_ok() {
                    ended += 1;
                }
            }
        }
        Ok(ended)
    }

    /// Records why a start failed; the record then expires.
    async fn mark_failed(&self, session: &Session, code: &str) {
        let marked = self
            .store
            .transition(
                session,
                &[SessionStatus::Starting],
                SessionStatus::Failed,
                &[("failure_code", code.to_owned())],
            )
            .await;
        let expired = match marked {
            Ok(_) => {
                self.store
                    .expire(session, self.policy.failed_record_ttl_seconds)
                    .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = expired {
            tracing::error!(session_id = %session.id, error = %e, "could not mark the failed start");
        }
    }

    async fn release(&self, s: &Session, used_seconds: u64) -> Result<(), Status> {
        if s.kind() == SessionKind::AgentRun {
            return Ok(()); // a run holds no slot and no room
        }
        self.rooms
            .clone()
            .release_room(ReleaseRoomRequest {
                session_id: s.id.clone(),
                account_id: s.account_id.clone(),
                agent_id: s.agent_id.clone(),
                room_name: s.room_name.clone(),
                provider: s.provider,
                used_seconds,
                worker_id: s.worker_id.clone(),
            })
            .await
            .map(|_| ())
            .map_err(peer_failure)
    }
}

#[tonic::async_trait]
impl Sessions for SessionService {
    async fn start_session(
        &self,
        req: Request<pb::StartSessionRequest>,
    ) -> Result<Response<pb::StartSessionResponse>, Status> {
        let req = req.into_inner();
        if req.account_id.is_empty() || req.agent_id.is_empty() {
            return Err(
                SessionError::invalid("agent_id", "account_id and agent_id are required").into(),
            );
        }
        if req.client_user_ref.chars().count() > MAX_CLIENT_USER_REF_CHARS {
            return Err(
                SessionError::invalid("client_user_ref", "must be at most 256 characters").into(),
            );
        }
        let kind = match req.kind() {
            SessionKind::Link => SessionKind::Link,
            SessionKind::AgentRun => {
                return Err(
                    SessionError::invalid("kind", "agent runs start with StartAgentRun").into(),
                );
            }
            SessionKind::Connect | SessionKind::Unspecified => SessionKind::Connect,
        };
        let now = lobby_kit::time::now_ms();
        let (id, aspect_ratio, agent_identity) = match kind {
            SessionKind::Link => {
                let ratio = if ASPECT_RATIOS.contains(&req.aspect_ratio.as_str()) {
                    req.aspect_ratio.clone()
                } else {
                    "4:3".to_owned()
                };
                (
                    ids::sess(now),
                    ratio,
                    self.policy.avatar_agent_identity.clone(),
                )
            }
            // A worker joins as the agent, so it needs its own identity.
            _ if req.requires_worker => (
                ids::uuid(),
                "4:3".to_owned(),
                self.policy.avatar_agent_identity.clone(),
            ),
            _ => (ids::uuid(), String::new(), String::new()),
        };
        let session = Session {
            id,
            account_id: req.account_id.clone(),
            agent_id: req.agent_id.clone(),
            status: SessionStatus::Starting as i32,
            kind: kind as i32,
            client_user_ref: req.client_user_ref.clone(),
            provider: req.provider,
            link_id: req.link_id.clone(),
            aspect_ratio,
            agent_identity: agent_identity.clone(),
            created_at_ms: now,
            max_session_seconds: req.limits.as_ref().map_or(0, |l| l.max_session_seconds),
            solo_timeout_seconds: req.solo_timeout_seconds,
            ..Default::default()
        };
        self.store.create(&session).await?;
        // Indexed before anything is taken, so a crash from here on leaves a
        // start the reaper will find and clean up.
        self.store
            .track(
                Index::Starting,
                &session.id,
                now + self.policy.start_timeout_ms,
            )
            .await?;

        let allocated = self
            .rooms
            .clone()
            .allocate_room(AllocateRoomRequest {
                session_id: session.id.clone(),
                account_id: req.account_id,
                agent_id: req.agent_id,
                limits: req.limits,
                provider: req.provider,
                participant_identity: participant_identity(&req.client_user_ref, &session.id),
                agent_identity: agent_identity.clone(),
                avatar_image_url: req.avatar_image_url.clone(),
                requires_worker: req.requires_worker,
                aspect_ratio: session.aspect_ratio.clone(),
            })
            .await;
        let room = match allocated {
            Ok(r) => r.into_inner(),
            Err(status) => {
                // A refusal from rooms means it released what it took; an
                // unreachable rooms may have taken a slot before it died, so
                // the start stays indexed for the reaper to release.
                let answered = !is_unreachable(&status);
                let failure = peer_failure(status);
                let code = machine_code(&failure).unwrap_or("internal_error");
                self.mark_failed(&session, code).await;
                self.metrics.starts.with_label_values(&[code]).inc();
                if answered {
                    self.store.untrack(Index::Starting, &session.id).await?;
                }
                tracing::info!(session_id = %session.id, code, "session start failed");
                return Err(failure);
            }
        };
        let held = Session {
            room_name: room.room_name.clone(),
            worker_id: room.worker_id.clone(),
            ..session
        };
        let started = async {
            if !room.agent_token.is_empty() {
                self.store.set_agent_token(&held, &room.agent_token).await?;
            }
            self.store
                .transition(
                    &held,
                    &[SessionStatus::Starting],
                    SessionStatus::Active,
                    &[
                        ("started_at_ms", lobby_kit::time::now_ms().to_string()),
                        ("room_name", room.room_name.clone()),
                        ("reserved_seconds", room.reserved_seconds.to_string()),
                        ("deadline_ms", room.lease_deadline_ms.to_string()),
                        ("worker_id", room.worker_id.clone()),
                    ],
                )
                .await
        }
        .await;
        let started = match started {
            // Indexed before the answer goes out, so the reaper and the
            // reconciler see every session a caller was told about.
            Ok(true) => {
                async {
                    self.store
                        .track(Index::Deadlines, &held.id, room.lease_deadline_ms)
                        .await?;
                    if !held.worker_id.is_empty() {
                        let lease = lobby_kit::time::now_ms() + self.policy.lease_ms;
                        self.store.track(Index::Leases, &held.id, lease).await?;
                    }
                    let started = Session {
                        started_at_ms: self.clock.now_ms(),
                        ..held.clone()
                    };
                    if let Some(at) = crate::presence::next_check(&started, self.policy.join) {
                        self.store.track(Index::Presence, &held.id, at).await?;
                    }
                    self.store.untrack(Index::Starting, &held.id).await?;
                    Ok(true)
                }
                .await
            }
            other => other,
        };
        match started {
            Ok(true) => {}
            // Ended while the room was being opened: give the room back.
            Ok(false) => {
                self.release(&held, 0).await?;
                return Err(SessionError::EndedWhileStarting.into());
            }
            Err(e) => {
                if let Err(release_err) = self.release(&held, 0).await {
                    tracing::error!(session_id = %held.id, error = %release_err, "release after a failed record write failed; the lease will expire it");
                }
                self.mark_failed(&held, "internal_error").await;
                return Err(e.into());
            }
        }
        self.metrics.starts.with_label_values(&["active"]).inc();
        tracing::info!(session_id = %held.id, account_id = %held.account_id, agent_id = %held.agent_id, "session active");
        Ok(Response::new(pb::StartSessionResponse {
            session_id: held.id,
            room_url: room.room_url,
            token: room.token,
            room_name: room.room_name,
            agent_identity,
        }))
    }

    async fn end_session(
        &self,
        req: Request<pb::EndSessionRequest>,
    ) -> Result<Response<Session>, Status> {
        let req = req.into_inner();
        let reason = if req.reason.is_empty() {
            EndedReason::ExplicitEnd
        } else {
            EndedReason::parse(&req.reason).ok_or_else(|| {
                SessionError::invalid("reason", "is not a documented ended reason")
            })?
        };
        Ok(Response::new(self.end(&req.session_id, reason).await?))
    }

    async fn get_session(
        &self,
        req: Request<pb::GetSessionRequest>,
    ) -> Result<Response<Session>, Status> {
        Ok(Response::new(
            self.store.get(&req.into_inner().session_id).await?,
        ))
    }

    async fn start_agent_run(
        &self,
        req: Request<pb::StartAgentRunRequest>,
    ) -> Result<Response<pb::StartAgentRunResponse>, Status> {
        let req = req.into_inner();
        if req.account_id.is_empty() || req.agent_id.is_empty() {
            return Err(
                SessionError::invalid("agent_id", "account_id and agent_id are required").into(),
            );
        }
        let meta = if req.meta_json.is_empty() {
            "{}".to_owned()
        } else {
            req.meta_json
        };
        if meta.len() > MAX_META_BYTES {
            return Err(
                SessionError::invalid("meta", "must be at most 16384 bytes of JSON").into(),
            );
        }
        match serde_json::from_str::<serde_json::Value>(&meta) {
            Ok(serde_json::Value::Object(_)) => {}
            _ => return Err(SessionError::invalid("meta", "must be a JSON object").into()),
        }
        let now = lobby_kit::time::now_ms();
        let session = Session {
            id: ids::uuid(),
            account_id: req.account_id,
            agent_id: req.agent_id,
            status: SessionStatus::Starting as i32,
            kind: SessionKind::AgentRun as i32,
            meta_json: meta,
            created_at_ms: now,
            ..Default::default()
        };
        self.store.create(&session).await?;
        let issued = self
            .auth
            .clone()
            .issue_session_token(IssueSessionTokenRequest {
                session_id: session.id.clone(),
                agent_id: session.agent_id.clone(),
                account_id: session.account_id.clone(),
            })
            .await;
        let token = match issued {
            Ok(t) => t.into_inner(),
            Err(status) => {
                let failure = peer_failure(status);
                self.mark_failed(&session, machine_code(&failure).unwrap_or("internal_error"))
                    .await;
                return Err(failure);
            }
        };
        self.store
            .transition(
                &session,
                &[SessionStatus::Starting],
                SessionStatus::Active,
                &[("started_at_ms", lobby_kit::time::now_ms().to_string())],
            )
            .await?;
        tracing::info!(session_id = %session.id, agent_id = %session.agent_id, kid = %token.kid, "agent run started");
        Ok(Response::new(pb::StartAgentRunResponse {
            session_id: session.id,
            jwt: token.jwt,
        }))
    }

    async fn append_event(
        &self,
        req: Request<pb::AppendEventRequest>,
    ) -> Result<Response<SessionEvent>, Status> {
        let req = req.into_inner();
        if !valid_event_kind(&req.kind) {
            return Err(SessionError::invalid(
                "kind",
                "must be 1-64 characters of letters, digits, '_', '.', ':' or '-'",
            )
            .into());
        }
        if req.payload_json.len() > MAX_EVENT_PAYLOAD_BYTES {
            return Err(
                SessionError::invalid("payload", "must be at most 16384 bytes of JSON").into(),
            );
        }
        let now = lobby_kit::time::now_ms();
        let mut event = SessionEvent {
            seq: 0,
            kind: req.kind,
            payload_json: if req.payload_json.is_empty() {
                "null".to_owned()
            } else {
                req.payload_json
            },
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
                &event,
            )
            .await?;
        event.seq = match appended {
            Ok(seq) => seq,
            Err(AppendRefusal::NotFound) => {
                return Err(SessionError::NotFound(req.session_id).into())
            }
            Err(AppendRefusal::Ended) => return Err(SessionError::Ended.into()),
            Err(AppendRefusal::Full) => {
                return Err(SessionError::EventsFull(self.policy.max_events_per_session).into())
            }
        };
        Ok(Response::new(event))
    }

    async fn list_events(
        &self,
        req: Request<pb::ListEventsRequest>,
    ) -> Result<Response<pb::ListEventsResponse>, Status> {
        let req = req.into_inner();
        let events = self
            .store
            .events(&req.account_id, &req.session_id, &req.agent_id)
            .await?
            .ok_or_else(|| SessionError::NotFound(req.session_id.clone()))?;
        Ok(Response::new(pb::ListEventsResponse { events }))
    }

    async fn handle_provider_event(
        &self,
        req: Request<pb::ProviderEvent>,
    ) -> Result<Response<pb::ProviderEventOutcome>, Status> {
        let event = req.into_inner();
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
}

impl SessionService {
    /// What a verified, fresh, first-seen provider event does.
    async fn act_on_provider_event(
        &self,
        event: pb::ProviderEvent,
    ) -> Result<Response<pb::ProviderEventOutcome>, Status> {
        let outcome = |session_id: String, action: &str| {
            Ok(Response::new(pb::ProviderEventOutcome {
                session_id,
                action: action.to_owned(),
            }))
        };
        // Our rooms are named after their session; any other room is not ours.
        let Some(session_id) = event.room_name.strip_prefix("lobby-").map(str::to_owned) else {
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
                let mut fields: Vec<(&str, String)> = Vec::new();
                if is_agent && session.agent_joined_at_ms == 0 {
                    fields.push(("agent_joined_at_ms", now.to_string()));
                }
                if !is_agent {
                    if session.user_joined_at_ms == 0 {
                        fields.push(("user_joined_at_ms", now.to_string()));
                    }
                    fields.push(("alone_since_ms", "0".into())); // a user is back
                }
                if !fields.is_empty() {
                    self.store.set_fields(&session, &fields).await?;
                }
                self.refresh_presence(&self.store.get(&session_id).await?)
                    .await?;
                return outcome(session_id, "recorded");
            }
            "participant_left" if !is_agent => {
                let occupancy = self
                    .rooms
                    .clone()
                    .room_occupancy(RoomOccupancyRequest {
                        provider: session.provider,
                        room_name: session.room_name.clone(),
                        agent_identity: session.agent_identity.clone(),
                    })
                    .await
                    .map_err(peer_failure)?
                    .into_inner();
                if occupancy.exists && occupancy.users > 0 {
                    return outcome(session_id, "ignored");
                }
                if session.solo_timeout_seconds > 0 {
                    // The agent may wait alone a while for the user to come back.
                    self.store
                        .set_fields(&session, &[("alone_since_ms", now.to_string())])
                        .await?;
                    self.refresh_presence(&self.store.get(&session_id).await?)
                        .await?;
                    return outcome(session_id, "alone");
                }
                EndedReason::UserLeft
            }
            _ => return outcome(session_id, "ignored"),
        };
        self.end(&session_id, reason).await?;
        outcome(session_id, "ended")
    }
}
