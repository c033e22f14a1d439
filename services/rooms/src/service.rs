//! The `lobby.rooms.v1.Rooms` gRPC service.

use crate::{
    admission::{Admission, Limits, Scope, Semaphores, SlotRequest},
    avatar::AvatarValidator,
    error::RoomsError,
    providers::{daily::Daily, livekit::LiveKit, OpenedRoom, ProviderError},
    workers::{dispatch::Answer, Dispatcher, Registry},
};
use lobby_proto::{
    common::Provider,
    rooms::{self as pb, rooms_server::Rooms},
    workers::JobAssignment,
};
use tonic::{Request, Response, Status};

/// How starts find a GPU worker.
#[derive(Clone)]
pub struct WorkerAllocation {
    pub registry: Registry,
    pub dispatcher: Dispatcher,
    /// The region this rooms service allocates in.
    pub region: String,
    pub accept_timeout: std::time::Duration,
}

pub struct RoomsService {
    semaphores: Semaphores,
    livekit: LiveKit,
    daily: Option<Daily>,
    avatars: AvatarValidator,
    workers: WorkerAllocation,
    metrics: crate::metrics::RoomsMetrics,
}

impl RoomsService {
    pub fn new(
        semaphores: Semaphores,
        livekit: LiveKit,
        daily: Option<Daily>,
        avatars: AvatarValidator,
        workers: WorkerAllocation,
        metrics: crate::metrics::RoomsMetrics,
    ) -> Self {
        Self {
            semaphores,
            livekit,
            daily,
            avatars,
            workers,
            metrics,
        }
    }

    /// Offers the job to the region's workers, least loaded first, each
    /// with its capacity reserved while it decides; returns the one that
    /// accepted. A reject or a timeout gives the capacity back and moves on.
    async fn allocate_worker(&self, job: JobAssignment) -> Result<String, RoomsError> {
        let w = &self.workers;
        let now = lobby_kit::time::now_ms();
        let candidates = w.registry.candidates(&w.region, now).await?;
        let mut tried = 0;
        for worker in candidates {
            if !w
                .registry
                .reserve(&worker.id, &job.session_id, lobby_kit::time::now_ms())
                .await?
            {
                continue; // filled up or went quiet since it was listed
            }
            tried += 1;
            let deadline_ms = lobby_kit::time::now_ms()
                + i64::try_from(w.accept_timeout.as_millis()).unwrap_or(i64::MAX);
            let offer = JobAssignment {
                job_id: uuid::Uuid::new_v4().to_string(),
                deadline_ms,
                ..job.clone()
            };
            let answer = w
                .dispatcher
                .offer(&worker.id, offer, w.accept_timeout)
                .await?;
            let label = match &answer {
                Answer::Accepted => "accepted",
                Answer::Rejected(_) => "rejected",
                Answer::TimedOut => "timed_out",
            };
            self.metrics.worker_offers.with_label_values(&[label]).inc();
            match answer {
                Answer::Accepted => return Ok(worker.id),
                answer => {
                    tracing::info!(worker_id = %worker.id, session_id = %job.session_id, ?answer, "worker declined; trying the next");
                    w.registry.release(&worker.id, &job.session_id).await?;
                }
            }
        }
        Err(RoomsError::NoWorker(if tried == 0 {
            format!("no worker with free capacity in region {}", w.region)
        } else {
            format!("none of the {tried} workers offered the session accepted it")
        }))
    }

    fn daily(&self) -> Result<&Daily, ProviderError> {
        self.daily.as_ref().ok_or(ProviderError::Disabled("daily"))
    }

    /// Opens the room (expiring with the session's reserved minutes where
    /// the provider supports it) and mints the user's token.
    async fn open_room(
        &self,
        provider: Provider,
        room: &str,
        identity: &str,
        expires_at_s: i64,
    ) -> Result<OpenedRoom, ProviderError> {
        match provider {
            Provider::Livekit | Provider::Unspecified => {
                self.livekit.open_room(room, identity).await
            }
            Provider::Daily => self.daily()?.open_room(room, identity, expires_at_s).await,
        }
    }

    /// The agent's token: its own identity, agent (owner) rights, the same room.
    async fn agent_token(
        &self,
        provider: Provider,
        room: &str,
        identity: &str,
        expires_at_s: i64,
    ) -> Result<String, ProviderError> {
        match provider {
            Provider::Livekit | Provider::Unspecified => self.livekit.agent_token(room, identity),
            Provider::Daily => {
                self.daily()?
                    .token(room, identity, true, expires_at_s)
                    .await
            }
        }
    }

    async fn delete_room(&self, provider: Provider, room: &str) {
        let result = match provider {
            Provider::Livekit | Provider::Unspecified => self.livekit.delete_room(room).await,
            Provider::Daily => match self.daily() {
                Ok(daily) => daily.delete_room(room).await,
                Err(e) => Err(e),
            },
        };
        if let Err(e) = result {
            // LiveKit closes an empty room after empty_timeout; Daily at exp.
            tracing::warn!(room, error = %e, "room could not be deleted");
        }
    }
}

/// Room names are derived, never caller-chosen, so one session has one room.
pub fn room_name(session_id: &str) -> String {
    format!("lobby-{session_id}")
}

fn require(value: &str, field: &'static str) -> Result<(), RoomsError> {
    if value.is_empty() {
        Err(RoomsError::InvalidArgument {
            field,
            reason: "is required",
        })
    } else {
        Ok(())
    }
}

#[tonic::async_trait]
impl Rooms for RoomsService {
    async fn allocate_room(
        &self,
        req: Request<pb::AllocateRoomRequest>,
    ) -> Result<Response<pb::AllocateRoomResponse>, Status> {
        let req = req.into_inner();
        require(&req.session_id, "session_id")?;
        require(&req.account_id, "account_id")?;
        require(&req.agent_id, "agent_id")?;
        require(&req.participant_identity, "participant_identity")?;
        let limits = req.limits.unwrap_or_default();
        if limits.account_max_concurrency == 0 || limits.max_session_seconds == 0 {
            return Err(RoomsError::InvalidArgument {
                field: "limits",
                reason: "account_max_concurrency and max_session_seconds must be positive",
            }
            .into());
        }
        // Before anything is taken: a bad avatar costs the account nothing.
        if !req.avatar_image_url.is_empty() {
            if let Err(rejection) = self
                .avatars
                .validate(&req.avatar_image_url)
                .await
                .map_err(RoomsError::from)?
            {
                tracing::info!(session_id = %req.session_id, code = rejection.machine_code(), "avatar refused");
                return Err(RoomsError::AvatarRejected(rejection).into());
            }
        }
        let slot = SlotRequest {
            session_id: &req.session_id,
            account_id: &req.account_id,
            agent_id: &req.agent_id,
        };
        let admitted = self
            .semaphores
            .admit(
                slot,
                Limits {
                    wanted_seconds: u64::from(limits.max_session_seconds),
                    account_limit: limits.account_max_concurrency,
                    agent_limit: limits.agent_max_concurrency,
                    quota_seconds: limits.quota_seconds,
                },
            )
            .await
            .map_err(RoomsError::from)?;
        let outcome = match &admitted {
            Admission::Admitted { .. } => "admitted",
            Admission::Refused(r) => match r.scope {
                Scope::Account => "refused_account",
                Scope::Agent => "refused_agent",
                Scope::Minutes => "refused_minutes",
            },
        };
        self.metrics.admissions.with_label_values(&[outcome]).inc();
        let (lease_deadline_ms, reserved_seconds) = match admitted {
            Admission::Admitted {
                lease_deadline_ms,
                reserved_seconds,
            } => (lease_deadline_ms, reserved_seconds),
            Admission::Refused(r) if r.scope == Scope::Minutes => {
                return Err(RoomsError::MinutesExhausted(r).into())
            }
            Admission::Refused(r) => return Err(RoomsError::ConcurrencyLimit(r).into()),
        };

        let provider = Provider::try_from(req.provider).unwrap_or(Provider::Livekit);
        let room = room_name(&req.session_id);
        // The room lives as long as the reservation, and a little longer so
        // that Lobby, not the provider, is the one to end the session.
        let expires_at_s = lease_deadline_ms / 1000 + 30;
        let allocated = async {
            let opened = self
                .open_room(provider, &room, &req.participant_identity, expires_at_s)
                .await?;
            let agent_token = if req.agent_identity.is_empty() {
                String::new()
            } else {
                self.agent_token(provider, &room, &req.agent_identity, expires_at_s)
                    .await?
            };
            let worker_id = if req.requires_worker {
                self.allocate_worker(JobAssignment {
                    job_id: String::new(),
                    session_id: req.session_id.clone(),
                    agent_id: req.agent_id.clone(),
                    room_url: opened.room_url.clone(),
                    agent_token: agent_token.clone(),
                    agent_identity: req.agent_identity.clone(),
                    aspect_ratio: req.aspect_ratio.clone(),
                    avatar_image_url: req.avatar_image_url.clone(),
                    deadline_ms: 0,
                })
                .await?
            } else {
                String::new()
            };
            Ok::<_, RoomsError>((opened, agent_token, worker_id))
        }
        .await;
        match allocated {
            Ok((opened, agent_token, worker_id)) => {
                tracing::info!(session_id = %req.session_id, account_id = %req.account_id, room, reserved_seconds, worker_id, "room allocated");
                Ok(Response::new(pb::AllocateRoomResponse {
                    room_name: room,
                    room_url: opened.room_url,
                    token: opened.token,
                    lease_deadline_ms,
                    agent_token,
                    reserved_seconds,
                    worker_id,
                }))
            }
            Err(e) => {
                // Nothing a failed start took may stay held; it ran for 0 s.
                if let Err(release_err) = self.semaphores.release(slot, 0).await {
                    tracing::error!(session_id = %req.session_id, error = %release_err, "slot release after failed start failed; the lease will expire it");
                }
                self.delete_room(provider, &room).await;
                tracing::warn!(session_id = %req.session_id, error = %e, "start failed after admission");
                Err(e.into())
            }
        }
    }

    async fn release_room(
        &self,
        req: Request<pb::ReleaseRoomRequest>,
    ) -> Result<Response<pb::ReleaseRoomResponse>, Status> {
        let req = req.into_inner();
        require(&req.session_id, "session_id")?;
        require(&req.account_id, "account_id")?;
        require(&req.agent_id, "agent_id")?;
        let released = self
            .semaphores
            .release(
                SlotRequest {
                    session_id: &req.session_id,
                    account_id: &req.account_id,
                    agent_id: &req.agent_id,
                },
                req.used_seconds,
            )
            .await
            .map_err(RoomsError::from)?;
        if let Err(e) = self
            .workers
            .registry
            .release(&req.worker_id, &req.session_id)
            .await
        {
            tracing::error!(session_id = %req.session_id, worker_id = %req.worker_id, error = %e, "worker capacity not released");
            return Err(RoomsError::from(e).into());
        }
        // A start that died before recording its room still may have opened
        // it: rooms names every room, so it knows which one to delete.
        let room = if req.room_name.is_empty() {
            room_name(&req.session_id)
        } else {
            req.room_name.clone()
        };
        let provider = Provider::try_from(req.provider).unwrap_or(Provider::Livekit);
        self.delete_room(provider, &room).await;
        tracing::info!(session_id = %req.session_id, released, "room released");
        Ok(Response::new(pb::ReleaseRoomResponse { released }))
    }

    async fn get_account_usage(
        &self,
        req: Request<pb::GetAccountUsageRequest>,
    ) -> Result<Response<pb::AccountUsage>, Status> {
        let account_id = req.into_inner().account_id;
        require(&account_id, "account_id")?;
        let usage = self
            .semaphores
            .usage(&account_id)
            .await
            .map_err(RoomsError::from)?;
        Ok(Response::new(pb::AccountUsage {
            account_id,
            active_sessions: usage.active_sessions,
            used_seconds: usage.used_seconds,
            reserved_seconds: usage.reserved_seconds,
        }))
    }

    async fn existing_rooms(
        &self,
        req: Request<pb::ExistingRoomsRequest>,
    ) -> Result<Response<pb::ExistingRoomsResponse>, Status> {
        let req = req.into_inner();
        let known = match Provider::try_from(req.provider).unwrap_or(Provider::Livekit) {
            Provider::Livekit | Provider::Unspecified => self
                .livekit
                .existing_rooms(req.room_names)
                .await
                .map_err(RoomsError::from)?,
            Provider::Daily => match &self.daily {
                Some(daily) => Some(
                    daily
                        .existing_rooms(req.room_names)
                        .await
                        .map_err(RoomsError::from)?,
                ),
                None => None,
            },
        };
        Ok(Response::new(pb::ExistingRoomsResponse {
            authoritative: known.is_some(),
            existing: known.unwrap_or_default(),
        }))
    }

    async fn room_occupancy(
        &self,
        req: Request<pb::RoomOccupancyRequest>,
    ) -> Result<Response<pb::RoomOccupancyResponse>, Status> {
        let req = req.into_inner();
        require(&req.room_name, "room_name")?;
        let occupancy = match Provider::try_from(req.provider).unwrap_or(Provider::Livekit) {
            Provider::Livekit | Provider::Unspecified => self
                .livekit
                .occupancy(&req.room_name, &req.agent_identity)
                .await
                .map_err(RoomsError::from)?,
            Provider::Daily => None,
        };
        Ok(Response::new(match occupancy {
            Some((users, agents)) => pb::RoomOccupancyResponse {
                exists: true,
                users,
                agents,
            },
            None => pb::RoomOccupancyResponse::default(),
        }))
    }
}
