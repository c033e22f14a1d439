//! The workers' door, second part: a worker uploads its sessions'
//! artifacts (`lobby.workers.v1.WorkerArtifacts`). The session service
//! checks that the session is this worker's, then hands the bytes to the
//! artifacts service, which stages them and publishes them whole.
//!
//! Also the session side of deletion: a deleted or purged session's
//! artifacts go with it (`delete_artifacts`).

use crate::{error::SessionError, service::SessionService, worker_records::AuthPeer};
use lobby_kit::artifact_upload::PartWriter;
use lobby_proto::{
    artifacts::{self as apb, ArtifactKind, ArtifactRef, SessionRef, SignUrlRequest},
    workers::{
        worker_artifacts_server::WorkerArtifacts, WorkerArtifact, WorkerArtifactStored,
        WorkerAudioChunk, WorkerTranscript, WorkerUploadUrl, WorkerUploadUrlRequest,
    },
};
use std::sync::Arc;
use tonic::{Request, Response, Status, Streaming};

pub struct WorkerArtifactsService {
    session: Arc<SessionService>,
    auth: AuthPeer,
}

impl WorkerArtifactsService {
    pub fn new(session: Arc<SessionService>, auth: AuthPeer) -> Self {
        Self { session, auth }
    }

    /// The session `session_id` if the calling worker runs it.
    async fn own_session(
        &self,
        metadata: &tonic::metadata::MetadataMap,
        session_id: &str,
    ) -> Result<lobby_proto::session::Session, Status> {
        let worker = crate::worker_records::authenticate(&self.auth, metadata).await?;
        let account = (!worker.account_id.is_empty()).then_some(worker.account_id.as_str());
        Ok(self
            .session
            .worker_session(&worker.worker_id, account, session_id)
            .await?)
    }
}

impl SessionService {
    /// A session the worker runs: it accepted it, and (for an account's
    /// worker) it is of that account. Anything else is not found, so that a
    /// worker learns nothing of other sessions.
    pub async fn worker_session(
        &self,
        worker_id: &str,
        account: Option<&str>,
        session_id: &str,
    ) -> Result<lobby_proto::session::Session, SessionError> {
        if session_id.is_empty() {
            return Err(SessionError::invalid("session_id", "is required"));
        }
        let session = self.store.get(session_id).await?;
        let mine = !worker_id.is_empty()
            && session.worker_id == worker_id
            && account.is_none_or(|a| a == session.account_id);
        if mine {
            Ok(session)
        } else {
            Err(SessionError::NotFound(session_id.to_owned()))
        }
    }

    /// Removes every artifact of the session. Called before its record
    /// goes, so that a failure leaves the record to delete again.
    pub(crate) async fn delete_artifacts(
        &self,
        account_id: &str,
        session_id: &str,
    ) -> Result<(), SessionError> {
        self.artifacts
            .delete_session_artifacts(Request::new(SessionRef {
                account_id: account_id.to_owned(),
                session_id: session_id.to_owned(),
            }))
            .await
            .map_err(|s| SessionError::Orchestrator(format!("artifacts: {}", s.message())))?;
        Ok(())
    }

    /// An upload published for a session deleted meanwhile is removed, so
    /// that a delete racing an upload leaves nothing behind.
    async fn settle_published(
        &self,
        session: &lobby_proto::session::Session,
    ) -> Result<(), Status> {
        if self
            .store
            .get_in(&session.account_id, &session.id)
            .await?
            .is_none()
        {
            self.delete_artifacts(&session.account_id, &session.id)
                .await?;
            return Err(SessionError::NotFound(session.id.clone()).into());
        }
        Ok(())
    }
}

fn artifact_ref(session: &lobby_proto::session::Session, kind: ArtifactKind) -> ArtifactRef {
    ArtifactRef {
        account_id: session.account_id.clone(),
        session_id: session.id.clone(),
        kind: kind as i32,
    }
}

#[tonic::async_trait]
impl WorkerArtifacts for WorkerArtifactsService {
    async fn upload_transcript(
        &self,
        req: Request<WorkerTranscript>,
    ) -> Result<Response<WorkerArtifactStored>, Status> {
        let session = self
            .own_session(req.metadata(), &req.get_ref().session_id)
            .await?;
        let stored = self
            .session
            .artifacts
            .put_artifact(Request::new(apb::PutArtifactRequest {
                artifact: Some(artifact_ref(&session, ArtifactKind::ConversationJson)),
                content: req.into_inner().transcript_json.into_bytes(),
            }))
            .await
            .map_err(|s| lobby_kit::grpc::forward_status(&s))?
            .into_inner();
        self.session.settle_published(&session).await?;
        Ok(Response::new(WorkerArtifactStored {
            session_id: session.id,
            size_bytes: stored.size_bytes,
        }))
    }

    async fn upload_audio(
        &self,
        req: Request<Streaming<WorkerAudioChunk>>,
    ) -> Result<Response<WorkerArtifactStored>, Status> {
        let (metadata, _, mut chunks) = req.into_parts();
        let first = chunks
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("session_id: the stream carried no chunk"))?;
        let session = self.own_session(&metadata, &first.session_id).await?;
        let mut writer = PartWriter::begin(
            self.session.artifacts.as_ref(),
            artifact_ref(&session, ArtifactKind::ConversationWav),
        )
        .await
        .map_err(|s| lobby_kit::grpc::forward_status(&s))?;
        let mut chunk = Some(first);
        while let Some(c) = chunk {
            if let Err(status) = writer.write(&c.data).await {
                writer.abort().await;
                return Err(lobby_kit::grpc::forward_status(&status));
            }
            chunk = match chunks.message().await {
                Ok(next) => next,
                Err(status) => {
                    // The stream broke: publish nothing of it.
                    writer.abort().await;
                    return Err(status);
                }
            };
        }
        let stored = writer
            .finish()
            .await
            .map_err(|s| lobby_kit::grpc::forward_status(&s))?;
        self.session.settle_published(&session).await?;
        Ok(Response::new(WorkerArtifactStored {
            session_id: session.id,
            size_bytes: stored.size_bytes,
        }))
    }

    async fn sign_upload_url(
        &self,
        req: Request<WorkerUploadUrlRequest>,
    ) -> Result<Response<WorkerUploadUrl>, Status> {
        let kind = match req.get_ref().artifact() {
            WorkerArtifact::Transcript => ArtifactKind::ConversationJson,
            WorkerArtifact::Audio => ArtifactKind::ConversationWav,
            WorkerArtifact::Unspecified => {
                return Err(SessionError::invalid("artifact", "must be TRANSCRIPT or AUDIO").into())
            }
        };
        let session = self
            .own_session(req.metadata(), &req.get_ref().session_id)
            .await?;
        let signed = self
            .session
            .artifacts
            .sign_upload_url(Request::new(SignUrlRequest {
                artifact: Some(artifact_ref(&session, kind)),
                ttl_seconds: 0,
            }))
            .await
            .map_err(|s| lobby_kit::grpc::forward_status(&s))?
            .into_inner();
        Ok(Response::new(WorkerUploadUrl {
            url: signed.url,
            expires_at: signed.expires_at,
        }))
    }
}
