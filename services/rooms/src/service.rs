//! The `lobby.rooms.v1.Rooms` gRPC service: rooms on the providers, avatar
//! checks and GPU worker jobs. It keeps no session state and calls no other
//! service; the session service asks.

use crate::{
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
    livekit: LiveKit,
    daily: Option<Daily>,
    avatars: AvatarValidator,
    workers: WorkerAllocation,
    metrics: crate::metrics::RoomsMetrics,
}

impl RoomsService {
    pub fn new(
        livekit: LiveKit,
        daily: Option<Daily>,
        avatars: AvatarValidator,
        workers: WorkerAllocation,
        metrics: crate::metrics::RoomsMetrics,
    ) -> Self {
        Self {
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
    async fn allocate_worker(
        &self,
        account_id: &str,
        job: JobAssignment,
    ) -> Result<String, RoomsError> {
        let w = &self.workers;
        let now = lobby_kit::time::now_ms();
        let candidates = w.registry.candidates(&w.region, account_id, now).await?;
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

    /// Opens the room (expiring with the session where the provider supports
    /// it) and mints the user's token.
    async fn open(
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

fn provider_of(raw: i32) -> Provider {
    Provider::try_from(raw).unwrap_or(Provider::Livekit)
}

#[tonic::async_trait]
impl Rooms for RoomsService {
    async fn validate_avatar(
        &self,
        req: Request<pb::ValidateAvatarRequest>,
    ) -> Result<Response<pb::ValidateAvatarResponse>, Status> {
        let url = req.into_inner().url;
        require(&url, "url")?;
        if let Err(rejection) = self
            .avatars
            .validate(&url)
            .await
            .map_err(RoomsError::from)?
        {
            tracing::info!(code = %rejection.machine_code(), "avatar refused");
            return Err(RoomsError::AvatarRejected(rejection).into());
        }
        Ok(Response::new(pb::ValidateAvatarResponse {}))
    }

    async fn open_room(
        &self,
        req: Request<pb::OpenRoomRequest>,
    ) -> Result<Response<pb::OpenRoomResponse>, Status> {
        let req = req.into_inner();
        require(&req.session_id, "session_id")?;
        require(&req.participant_identity, "participant_identity")?;
        let provider = provider_of(req.provider);
        let room = lobby_proto::room_name(&req.session_id);
        let opened = async {
            let opened = self
                .open(provider, &room, &req.participant_identity, req.expires_at_s)
                .await?;
            let agent_token = if req.agent_identity.is_empty() {
                String::new()
            } else {
                self.agent_token(provider, &room, &req.agent_identity, req.expires_at_s)
                    .await?
            };
            Ok::<_, ProviderError>((opened, agent_token))
        }
        .await;
        match opened {
            Ok((opened, agent_token)) => {
                self.metrics
                    .rooms_opened
                    .with_label_values(&[match provider {
                        Provider::Daily => "daily",
                        Provider::Livekit | Provider::Unspecified => "livekit",
                    }])
                    .inc();
                Ok(Response::new(pb::OpenRoomResponse {
                    room_name: room,
                    room_url: opened.room_url,
                    token: opened.token,
                    agent_token,
                }))
            }
            Err(e) => {
                // A room created before the agent token failed must not linger.
                self.delete_room(provider, &room).await;
                Err(RoomsError::from(e).into())
            }
        }
    }

    async fn assign_worker(
        &self,
        req: Request<pb::AssignWorkerRequest>,
    ) -> Result<Response<pb::AssignWorkerResponse>, Status> {
        let req = req.into_inner();
        require(&req.session_id, "session_id")?;
        let worker_id = self
            .allocate_worker(
                &req.account_id,
                JobAssignment {
                    job_id: String::new(),
                    session_id: req.session_id,
                    agent_id: req.agent_id,
                    room_url: req.room_url,
                    agent_token: req.agent_token,
                    agent_identity: req.agent_identity,
                    aspect_ratio: req.aspect_ratio,
                    avatar_image_url: req.avatar_image_url,
                    deadline_ms: 0,
                },
            )
            .await?;
        Ok(Response::new(pb::AssignWorkerResponse { worker_id }))
    }

    async fn close_room(
        &self,
        req: Request<pb::CloseRoomRequest>,
    ) -> Result<Response<pb::CloseRoomResponse>, Status> {
        let req = req.into_inner();
        require(&req.session_id, "session_id")?;
        // Empty when the record never learned it: the registry looks,
        // unless no worker was ever asked to run it.
        let worker_released = if req.worker_id.is_empty() && req.needs_no_worker {
            false
        } else {
            self.workers
                .registry
                .release(&req.worker_id, &req.session_id)
                .await
                .map_err(RoomsError::from)?
        };
        let room = if req.room_name.is_empty() {
            lobby_proto::room_name(&req.session_id)
        } else {
            req.room_name
        };
        self.delete_room(provider_of(req.provider), &room).await;
        tracing::debug!(session_id = %req.session_id, worker_released, "room closed");
        Ok(Response::new(pb::CloseRoomResponse { worker_released }))
    }

    async fn existing_rooms(
        &self,
        req: Request<pb::ExistingRoomsRequest>,
    ) -> Result<Response<pb::ExistingRoomsResponse>, Status> {
        let req = req.into_inner();
        let provider = provider_of(req.provider);
        let lazy =
            matches!(provider, Provider::Livekit | Provider::Unspecified) && self.livekit.lazy();
        let known = match provider {
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
            lazy,
        }))
    }

    async fn room_occupancy(
        &self,
        req: Request<pb::RoomOccupancyRequest>,
    ) -> Result<Response<pb::RoomOccupancyResponse>, Status> {
        let req = req.into_inner();
        require(&req.room_name, "room_name")?;
        let occupancy = match provider_of(req.provider) {
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

    async fn worker_jobs(
        &self,
        req: Request<pb::WorkerJobsRequest>,
    ) -> Result<Response<pb::WorkerJobsResponse>, Status> {
        let refs = req.into_inner().jobs;
        let jobs = self
            .workers
            .registry
            .jobs(&refs, lobby_kit::time::now_ms())
            .await
            .map_err(RoomsError::from)?;
        Ok(Response::new(pb::WorkerJobsResponse { jobs }))
    }

    async fn job_ends(
        &self,
        req: Request<pb::JobEndsRequest>,
    ) -> Result<Response<pb::JobEndsResponse>, Status> {
        let after = req.into_inner().after;
        let (ended, cursor) = self
            .workers
            .registry
            .job_ends(&after, lobby_kit::time::now_ms())
            .await
            .map_err(RoomsError::from)?;
        Ok(Response::new(pb::JobEndsResponse { ended, cursor }))
    }
}
