//! The `lobby.session.v1.Sessions` gRPC service.

use crate::{
    error::SessionError,
    records::{EndedReason, SessionStore},
};
use lobby_kit::grpc::{forward_status, is_unreachable, machine_code};
use lobby_proto::{
    rooms::{rooms_client::RoomsClient, AllocateRoomRequest, ReleaseRoomRequest},
    session::{self as pb, sessions_server::Sessions, Session, SessionStatus},
};
use tonic::{transport::Channel, Request, Response, Status};

/// Seed 000: `client_user_ref` is at most 256 characters.
pub const MAX_CLIENT_USER_REF_CHARS: usize = 256;

pub struct SessionService {
    store: SessionStore,
    rooms: RoomsClient<Channel>,
    failed_record_ttl_seconds: i64,
}

impl SessionService {
    pub fn new(
        store: SessionStore,
        rooms: RoomsClient<Channel>,
        failed_record_ttl_seconds: i64,
    ) -> Self {
        Self {
            store,
            rooms,
            failed_record_ttl_seconds,
        }
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
                    .expire(session, self.failed_record_ttl_seconds)
                    .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = expired {
            tracing::error!(session_id = %session.id, error = %e, "could not mark the failed start");
        }
    }

    /// A rooms error as this service reports it: an unreachable rooms service
    /// is the orchestrator failing; an answer of its own is passed through.
    fn rooms_failure(status: Status) -> Status {
        if is_unreachable(&status) {
            SessionError::Orchestrator(status.message().to_owned()).into()
        } else {
            forward_status(&status)
        }
    }

    async fn release(&self, s: &Session) -> Result<(), Status> {
        self.rooms
            .clone()
            .release_room(ReleaseRoomRequest {
                session_id: s.id.clone(),
                account_id: s.account_id.clone(),
                agent_id: s.agent_id.clone(),
                room_name: s.room_name.clone(),
                provider: s.provider,
            })
            .await
            .map(|_| ())
            .map_err(Self::rooms_failure)
    }
}

fn participant_identity(client_user_ref: &str, session_id: &str) -> String {
    if client_user_ref.is_empty() {
        format!("user-{}", &session_id[..8.min(session_id.len())])
    } else {
        client_user_ref.to_owned()
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
        let session = Session {
            id: uuid::Uuid::new_v4().to_string(),
            account_id: req.account_id.clone(),
            agent_id: req.agent_id.clone(),
            status: SessionStatus::Starting as i32,
            client_user_ref: req.client_user_ref.clone(),
            room_name: String::new(),
            provider: req.provider,
            created_at_ms: lobby_kit::time::now_ms(),
            ..Default::default()
        };
        self.store.create(&session).await?;

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
            })
            .await;
        let room = match allocated {
            Ok(r) => r.into_inner(),
            Err(status) => {
                let failure = Self::rooms_failure(status);
                let code = machine_code(&failure).unwrap_or("internal_error");
                self.mark_failed(&session, code).await;
                tracing::info!(session_id = %session.id, code, "session start failed");
                return Err(failure);
            }
        };

        let started = self
            .store
            .transition(
                &session,
                &[SessionStatus::Starting],
                SessionStatus::Active,
                &[
                    ("started_at_ms", lobby_kit::time::now_ms().to_string()),
                    ("room_name", room.room_name.clone()),
                ],
            )
            .await;
        match started {
            Ok(true) => {}
            // Ended while the room was being opened: give the room back.
            Ok(false) => {
                let ended = Session {
                    room_name: room.room_name.clone(),
                    ..session
                };
                self.release(&ended).await?;
                return Err(SessionError::EndedWhileStarting.into());
            }
            Err(e) => {
                let held = Session {
                    room_name: room.room_name.clone(),
                    ..session
                };
                if let Err(release_err) = self.release(&held).await {
                    tracing::error!(session_id = %held.id, error = %release_err, "release after a failed record write failed; the lease will expire it");
                }
                return Err(e.into());
            }
        }
        tracing::info!(session_id = %session.id, account_id = %session.account_id, agent_id = %session.agent_id, "session active");
        Ok(Response::new(pb::StartSessionResponse {
            session_id: session.id,
            room_url: room.room_url,
            token: room.token,
            room_name: room.room_name,
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
        let session = self.store.get(&req.session_id).await?;
        let live = [SessionStatus::Starting, SessionStatus::Active];
        if !live.contains(&session.status()) {
            return Ok(Response::new(session));
        }
        // Release first: if rooms is unreachable the record stays live and the
        // caller can retry, rather than an ended record with a slot still held.
        self.release(&session).await?;
        let ended_at = lobby_kit::time::now_ms();
        let duration = if session.started_at_ms > 0 {
            ((ended_at - session.started_at_ms).max(0) / 1000).to_string()
        } else {
            "0".to_owned()
        };
        let moved = self
            .store
            .transition(
                &session,
                &live,
                SessionStatus::Ended,
                &[
                    ("ended_at_ms", ended_at.to_string()),
                    ("ended_reason", reason.as_str().to_owned()),
                    ("duration_seconds", duration),
                ],
            )
            .await?;
        if moved {
            tracing::info!(session_id = %session.id, reason = reason.as_str(), "session ended");
        }
        Ok(Response::new(self.store.get(&session.id).await?))
    }

    async fn get_session(
        &self,
        req: Request<pb::GetSessionRequest>,
    ) -> Result<Response<Session>, Status> {
        Ok(Response::new(
            self.store.get(&req.into_inner().session_id).await?,
        ))
    }
}
