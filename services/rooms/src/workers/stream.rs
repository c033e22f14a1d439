//! The `lobby.workers.v1.Workers` service: one bidirectional stream per
//! worker, authenticated by the worker's own key (`wkr_…`, from auth).
//!
//! The key names the worker id it may register as, and whose sessions it
//! may run. Everything the worker says afterwards is taken as that worker's
//! alone: its heartbeats, its answers to the jobs offered to it, its end
//! reports for the sessions it holds. The key is checked again while the
//! stream lasts, so revoking it ends the stream.

use super::{
    dispatch::{Answer, Dispatcher},
    registry::{valid_worker_id, Registry, WorkerScope},
};
use lobby_proto::auth::{auth_server::Auth, AuthenticateWorkerRequest};
use lobby_proto::workers::{self as pb, server_message, worker_message, workers_server::Workers};
use std::{
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};
use tokio_stream::{wrappers::ReceiverStream, Stream};
use tonic::{Request, Response, Status, Streaming};

pub const MAX_CAPACITY: u32 = 1000;
static CONNECTIONS: AtomicU64 = AtomicU64::new(1);

/// How long a drained stream still reads what its worker sent before it
/// saw the drain (an end report, say) before it closes.
const DRAIN_READ_WINDOW: std::time::Duration = std::time::Duration::from_secs(3);

pub struct WorkersService {
    registry: Registry,
    dispatcher: Dispatcher,
    /// Who owns worker keys.
    auth: Arc<dyn Auth>,
    heartbeat_interval: Duration,
    /// How often an attached worker's key is checked again.
    key_recheck: Duration,
}

/// A worker as its key describes it.
#[derive(Debug, Clone)]
struct WorkerIdentity {
    worker_id: String,
    serves: WorkerScope,
}

impl WorkersService {
    pub fn new(
        registry: Registry,
        dispatcher: Dispatcher,
        auth: Arc<dyn Auth>,
        heartbeat_interval: Duration,
        key_recheck: Duration,
    ) -> Self {
        Self {
            registry,
            dispatcher,
            auth,
            heartbeat_interval,
            key_recheck,
        }
    }

    fn presented_key<T>(req: &Request<T>) -> String {
        req.metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("")
            .trim()
            .to_owned()
    }
}

/// Asks auth whose key this is. Auth's refusal goes back to the worker
/// as it is (`key_invalid`, `key_revoked`, …).
async fn authenticate(auth: &Arc<dyn Auth>, key: &str) -> Result<WorkerIdentity, Status> {
    let principal = auth
        .authenticate_worker(Request::new(AuthenticateWorkerRequest {
            key: key.to_owned(),
        }))
        .await
        .map_err(|s| lobby_kit::grpc::forward_status(&s))?
        .into_inner();
    Ok(WorkerIdentity {
        worker_id: principal.worker_id,
        serves: WorkerScope {
            account_id: principal.account_id,
            pool: principal.pool,
        },
    })
}

/// Whether auth answered that the key itself is no good (revoked, expired,
/// paused, unknown), as opposed to not answering.
fn refuses_the_key(status: &Status) -> bool {
    use lobby_kit::ErrorCode as C;
    matches!(
        lobby_kit::grpc::machine_code(status),
        Some(
            C::KeyMissing
                | C::KeyMalformed
                | C::KeyInvalid
                | C::KeyExpired
                | C::KeyInactive
                | C::KeyRevoked
        )
    )
}

fn invalid(message: &str) -> Status {
    lobby_kit::grpc::status(
        tonic::Code::InvalidArgument,
        lobby_kit::ErrorCode::InvalidRequest,
        message,
        &[],
    )
}

type ServerStream = Pin<Box<dyn Stream<Item = Result<pb::ServerMessage, Status>> + Send>>;

#[tonic::async_trait]
impl Workers for WorkersService {
    type AttachStream = ServerStream;

    async fn attach(
        &self,
        req: Request<Streaming<pb::WorkerMessage>>,
    ) -> Result<Response<ServerStream>, Status> {
        if lobby_kit::shutdown::is_draining() {
            // Told to leave, a worker must land on another replica.
            return Err(Status::unavailable(
                "this rooms replica is shutting down; reconnect",
            ));
        }
        let key = Self::presented_key(&req);
        let identity = authenticate(&self.auth, &key).await?;
        let mut inbound = req.into_inner();
        let Some(pb::WorkerMessage {
            message: Some(worker_message::Message::Register(register)),
        }) = inbound.message().await?
        else {
            return Err(invalid("the first message must be Register"));
        };
        if !valid_worker_id(&register.worker_id) {
            return Err(invalid(
                "worker_id must be 1-64 letters, digits, '-', '_' or '.'",
            ));
        }
        if register.worker_id != identity.worker_id {
            return Err(lobby_kit::grpc::status(
                tonic::Code::PermissionDenied,
                lobby_kit::ErrorCode::WorkerIdMismatch,
                format!(
                    "this key belongs to worker {:?}, not {:?}",
                    identity.worker_id, register.worker_id
                ),
                &[],
            ));
        }
        if register.region.is_empty() || !(1..=MAX_CAPACITY).contains(&register.capacity) {
            return Err(invalid(
                "region is required and capacity must be between 1 and 1000",
            ));
        }
        let worker_id = register.worker_id.clone();
        let now = lobby_kit::time::now_ms();
        // Unique across replicas: only this connection may later mark the
        // worker disconnected.
        let connection_id = uuid::Uuid::new_v4().to_string();
        self.registry
            .register(&register, &identity.serves, &connection_id, now)
            .await
            .map_err(|e| Status::internal(e.to_string()))?;

        // Reservations keep a worker's unanswered offers within its
        // capacity, so a worker that reads its stream never fills this; one
        // that does has stopped reading, and is dropped (see dispatch).
        let (tx, rx) = tokio::sync::mpsc::channel(register.capacity as usize + 16);
        let registered = pb::ServerMessage {
            message: Some(server_message::Message::Registered(pb::Registered {
                worker_id: worker_id.clone(),
                heartbeat_interval_ms: u32::try_from(self.heartbeat_interval.as_millis())
                    .unwrap_or(u32::MAX),
            })),
        };
        let _ = tx.send(Ok(registered)).await;
        // Kept beside the dispatcher's, to tell the worker to leave when
        // this process drains.
        let drain_tx = tx.clone();
        let connection = CONNECTIONS.fetch_add(1, Ordering::Relaxed);
        let mut released = self.dispatcher.attach(&worker_id, connection, tx);
        tracing::info!(worker_id, region = %register.region, capacity = register.capacity, account_id = %identity.serves.account_id, pool = %identity.serves.pool, "worker connected");

        let (registry, dispatcher) = (self.registry.clone(), self.dispatcher.clone());
        let auth = self.auth.clone();
        let mut recheck = tokio::time::interval(self.key_recheck);
        recheck.tick().await; // the first tick is now: the key was just checked
        tokio::spawn(async move {
            let mut drained_at: Option<tokio::time::Instant> = None;
            loop {
                // Once told to leave, the worker closes its side; what it
                // sent before is still handled, for a few seconds at most.
                let leave_by = async {
                    match drained_at {
                        Some(at) => tokio::time::sleep_until(at + DRAIN_READ_WINDOW).await,
                        None => std::future::pending().await,
                    }
                };
                let message = tokio::select! {
                    read = inbound.message() => match read {
                        Ok(Some(m)) => m,
                        Ok(None) | Err(_) => break,
                    },
                    () = lobby_kit::shutdown::draining(), if drained_at.is_none() => {
                        // No more jobs here; the worker reconnects elsewhere.
                        dispatcher.detach(&worker_id, connection);
                        let drain = pb::ServerMessage {
                            message: Some(server_message::Message::Drain(pb::Drain {
                                reason: "this rooms replica is shutting down; reconnect".into(),
                            })),
                        };
                        let _ = drain_tx.send(Ok(drain)).await;
                        tracing::info!(worker_id, "worker told to reconnect elsewhere");
                        drained_at = Some(tokio::time::Instant::now());
                        continue;
                    }
                    () = leave_by => break,
                    // Dropped by the dispatcher (it stopped reading its
                    // jobs), or replaced by a newer connection.
                    _ = &mut released, if drained_at.is_none() => break,
                    _ = recheck.tick() => {
                        match authenticate(&auth, &key).await {
                            Ok(now) if now.worker_id == worker_id && now.serves == identity.serves => continue,
                            Ok(_) => tracing::warn!(worker_id, "worker key changed hands; stream closed"),
                            // Only auth refusing the key ends the stream: auth
                            // or its Redis being away is not the worker's fault.
                            Err(s) if !refuses_the_key(&s) => continue,
                            Err(s) => tracing::warn!(worker_id, error = %s.message(), "worker key no longer valid; stream closed"),
                        }
                        break;
                    }
                };
                let handled = match message.message {
                    Some(worker_message::Message::Heartbeat(h)) => registry
                        .heartbeat(&worker_id, h.load, lobby_kit::time::now_ms())
                        .await
                        .map_err(|e| e.to_string()),
                    Some(worker_message::Message::Accepted(a)) => dispatcher
                        .answer(&worker_id, &a.job_id, Answer::Accepted)
                        .await
                        .map_err(|e| e.to_string()),
                    Some(worker_message::Message::Rejected(r)) => dispatcher
                        .answer(&worker_id, &r.job_id, Answer::Rejected(r.reason))
                        .await
                        .map_err(|e| e.to_string()),
                    // Recorded here and read by the session service, which
                    // ends the session: rooms calls no one.
                    Some(worker_message::Message::SessionEnded(e)) => registry
                        .job_ended(&worker_id, &e.session_id, &e.reason, lobby_kit::time::now_ms())
                        .await
                        .map(|taken| {
                            if !taken {
                                tracing::info!(worker_id, session_id = %e.session_id, "end report for a session this worker does not hold; ignored");
                            }
                        })
                        .map_err(|e| e.to_string()),
                    Some(worker_message::Message::Register(_)) | None => Ok(()),
                };
                if let Err(e) = handled {
                    tracing::warn!(worker_id, error = %e, "worker message not handled");
                }
            }
            // Gone: no new jobs until it reconnects.
            drop(drain_tx);
            dispatcher.detach(&worker_id, connection);
            if let Err(e) = registry.disconnected(&worker_id, &connection_id).await {
                tracing::warn!(worker_id, error = %e, "could not mark the worker disconnected");
            }
            tracing::info!(worker_id, "worker disconnected");
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
