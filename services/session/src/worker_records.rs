//! The workers' door of the session service: what a GPU worker writes into
//! the records of the sessions it runs (`lobby.workers.v1.WorkerRecords`).
//!
//! Served on its own TLS listener (`LOBBY_SESSION_WORKERS_LISTEN`), apart
//! from the internal API. Each call carries the worker's own key; auth says
//! whose it is, and the write itself checks, atomically, that the session
//! is this worker's and of the account its key serves.

use crate::service::SessionService;
use lobby_proto::{
    auth::{auth_server::Auth, AuthenticateWorkerRequest, WorkerPrincipal},
    workers::{worker_records_server::WorkerRecords, WorkerMessages, WorkerMessagesAppended},
};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The auth service, in-process or over gRPC.
pub type AuthPeer = Arc<dyn Auth>;

pub struct WorkerRecordsService {
    session: Arc<SessionService>,
    auth: AuthPeer,
}

impl WorkerRecordsService {
    pub fn new(session: Arc<SessionService>, auth: AuthPeer) -> Self {
        Self { session, auth }
    }
}

/// The worker whose key the call carries (`authorization: Bearer <key>`).
/// Auth's refusal goes back as it is (key_invalid, key_revoked, …).
pub(crate) async fn authenticate(
    auth: &AuthPeer,
    metadata: &tonic::metadata::MetadataMap,
) -> Result<WorkerPrincipal, Status> {
    let key = metadata
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .trim()
        .to_owned();
    Ok(auth
        .authenticate_worker(Request::new(AuthenticateWorkerRequest { key }))
        .await
        .map_err(|s| lobby_kit::grpc::forward_status(&s))?
        .into_inner())
}

#[tonic::async_trait]
impl WorkerRecords for WorkerRecordsService {
    async fn append_messages(
        &self,
        req: Request<WorkerMessages>,
    ) -> Result<Response<WorkerMessagesAppended>, Status> {
        let worker = authenticate(&self.auth, req.metadata()).await?;
        let account = (!worker.account_id.is_empty()).then_some(worker.account_id.as_str());
        let (messages, prompt_tokens, completion_tokens) = self
            .session
            .worker_append_messages(&worker.worker_id, account, req.get_ref())
            .await
            .map_err(Status::from)?;
        Ok(Response::new(WorkerMessagesAppended {
            messages,
            prompt_tokens,
            completion_tokens,
        }))
    }
}
