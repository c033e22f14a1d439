//! The `lobby.workers.v1.Workers` service: one bidirectional stream per
//! worker, authenticated by the worker token.

use super::{
    dispatch::{Answer, Dispatcher},
    registry::{valid_worker_id, Registry},
};
use lobby_proto::workers::{self as pb, server_message, worker_message, workers_server::Workers};
use std::{
    pin::Pin,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};
use subtle::ConstantTimeEq;
use tokio_stream::{wrappers::ReceiverStream, Stream};
use tonic::{Request, Response, Status, Streaming};

pub const MAX_CAPACITY: u32 = 1000;
static CONNECTIONS: AtomicU64 = AtomicU64::new(1);

pub struct WorkersService {
    registry: Registry,
    dispatcher: Dispatcher,
    /// Empty refuses every worker.
    token: String,
    heartbeat_interval: Duration,
}

impl WorkersService {
    pub fn new(
        registry: Registry,
        dispatcher: Dispatcher,
        token: String,
        heartbeat_interval: Duration,
    ) -> Self {
        Self {
            registry,
            dispatcher,
            token,
            heartbeat_interval,
        }
    }

    fn authenticate<T>(&self, req: &Request<T>) -> Result<(), Status> {
        let presented = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let ok =
            !self.token.is_empty() && bool::from(presented.as_bytes().ct_eq(self.token.as_bytes()));
        if ok {
            Ok(())
        } else {
            Err(lobby_kit::grpc::status(
                tonic::Code::Unauthenticated,
                lobby_kit::ErrorCode::KeyInvalid,
                "a valid worker token is required as authorization: Bearer <token>",
                &[],
            ))
        }
    }
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
        self.authenticate(&req)?;
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
            .register(
                &worker_id,
                &register.region,
                register.capacity,
                &register.labels,
                &connection_id,
                now,
            )
            .await
            .map_err(|e| Status::internal(e.to_string()))?;

        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let registered = pb::ServerMessage {
            message: Some(server_message::Message::Registered(pb::Registered {
                worker_id: worker_id.clone(),
                heartbeat_interval_ms: u32::try_from(self.heartbeat_interval.as_millis())
                    .unwrap_or(u32::MAX),
            })),
        };
        let _ = tx.send(Ok(registered)).await;
        let connection = CONNECTIONS.fetch_add(1, Ordering::Relaxed);
        self.dispatcher.attach(&worker_id, connection, tx);
        tracing::info!(worker_id, region = %register.region, capacity = register.capacity, "worker connected");

        let (registry, dispatcher) = (self.registry.clone(), self.dispatcher.clone());
        tokio::spawn(async move {
            loop {
                let message = match inbound.message().await {
                    Ok(Some(m)) => m,
                    Ok(None) | Err(_) => break,
                };
                let handled = match message.message {
                    Some(worker_message::Message::Heartbeat(h)) => registry
                        .heartbeat(&worker_id, h.load, lobby_kit::time::now_ms())
                        .await
                        .map_err(|e| e.to_string()),
                    Some(worker_message::Message::Accepted(a)) => dispatcher
                        .answer(&a.job_id, Answer::Accepted)
                        .await
                        .map_err(|e| e.to_string()),
                    Some(worker_message::Message::Rejected(r)) => dispatcher
                        .answer(&r.job_id, Answer::Rejected(r.reason))
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
            dispatcher.detach(&worker_id, connection);
            if let Err(e) = registry.disconnected(&worker_id, &connection_id).await {
                tracing::warn!(worker_id, error = %e, "could not mark the worker disconnected");
            }
            tracing::info!(worker_id, "worker disconnected");
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
