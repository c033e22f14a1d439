//! The `lobby.artifacts.v1.Artifacts` gRPC service: adapts the wire to the
//! store, the uploads, the URL signer and the summary jobs.

use crate::{
    error::ArtifactsError,
    signing::{SignatureCheck, UrlSigner, ROUTE_PREFIX},
    store::{content_type, object_key, parse_key, session_prefix, ArtifactStore, ObjectInfo},
    summary::jobs::{Outcome, SummaryJobs},
    uploads::{check_content, Uploads, MAX_PART_BYTES},
};
use bytes::Bytes;
use lobby_proto::artifacts::{self as pb, artifacts_server::Artifacts, ArtifactKind};
use std::{sync::Arc, time::Duration};
use tonic::{Request, Response, Status};

pub const MAX_URL_TTL_SECONDS: u32 = 24 * 3600;
pub const DEFAULT_URL_TTL_SECONDS: u32 = 3600;
/// The most one ReadArtifact returns.
pub const MAX_READ_BYTES: u32 = 1024 * 1024;

pub struct ArtifactsService {
    store: ArtifactStore,
    signer: UrlSigner,
    uploads: Uploads,
    jobs: Arc<SummaryJobs>,
}

impl ArtifactsService {
    pub fn new(
        store: ArtifactStore,
        signer: UrlSigner,
        uploads: Uploads,
        jobs: Arc<SummaryJobs>,
    ) -> Self {
        Self {
            store,
            signer,
            uploads,
            jobs,
        }
    }
}

/// The object an `ArtifactRef` names, validated.
fn key_of(artifact: Option<&pb::ArtifactRef>) -> Result<(pb::ArtifactRef, String), ArtifactsError> {
    let a = artifact.cloned().unwrap_or_default();
    let key = object_key(&a.account_id, &a.session_id, a.kind())?;
    Ok((a, key))
}

fn info(artifact: pb::ArtifactRef, o: ObjectInfo) -> pb::ArtifactInfo {
    pb::ArtifactInfo {
        content_type: content_type(artifact.kind()).to_owned(),
        artifact: Some(artifact),
        key: o.key,
        size_bytes: o.size_bytes,
        updated_at_ms: o.updated_at_ms,
    }
}

fn ttl(requested: u32) -> Result<u32, ArtifactsError> {
    match requested {
        0 => Ok(DEFAULT_URL_TTL_SECONDS),
        t if t <= MAX_URL_TTL_SECONDS => Ok(t),
        _ => Err(ArtifactsError::InvalidArgument {
            field: "ttl_seconds",
            reason: "must be at most 86400",
        }),
    }
}

impl ArtifactsService {
    async fn sign(
        &self,
        method: &str,
        req: pb::SignUrlRequest,
    ) -> Result<pb::SignedUrl, ArtifactsError> {
        let (_, key) = key_of(req.artifact.as_ref())?;
        let ttl = ttl(req.ttl_seconds)?;
        let expires_at = lobby_kit::time::now_ms() / 1000 + i64::from(ttl);
        let url = if method == "GET" {
            // Only an existing object gets a download URL: a caller learns
            // "not found" now, not from a dangling link.
            self.store.stat(&key).await?;
            match self
                .store
                .presign(
                    object_store::signer::Method::GET,
                    &key,
                    Duration::from_secs(ttl.into()),
                )
                .await?
            {
                Some(presigned) => presigned,
                None => self.signer.sign(method, &key, expires_at),
            }
        } else {
            // Uploads always come through the gateway, whatever the store:
            // it enforces the size cap and checks the content before
            // anything is published.
            self.signer.sign(method, &key, expires_at)
        };
        Ok(pb::SignedUrl {
            url,
            expires_at,
            method: method.to_owned(),
        })
    }

    async fn summary(
        &self,
        req: pb::SummaryRequest,
        force: bool,
    ) -> Result<pb::SummaryState, ArtifactsError> {
        let session = req.session.unwrap_or_default();
        let summary_key = object_key(
            &session.account_id,
            &session.session_id,
            ArtifactKind::SummaryJson,
        )?;
        // Read once: it is the answer when it stands, and a regenerate
        // replaces it whatever it holds.
        let stored = if force {
            None
        } else {
            match self.store.get(&summary_key).await {
                Ok(body) => Some(body),
                Err(ArtifactsError::NotFound(_)) => None,
                Err(e) => return Err(e),
            }
        };
        if stored.is_none() {
            // No run can succeed without the transcript: say so now rather
            // than through a dead-lettered job.
            let transcript = object_key(
                &session.account_id,
                &session.session_id,
                ArtifactKind::ConversationJson,
            )?;
            self.store.stat(&transcript).await?;
        }
        let start = |force: bool, exists: bool| {
            self.jobs.start(
                force,
                &session.account_id,
                &session.session_id,
                req.duration_seconds,
                exists,
            )
        };
        let mut run = start(force, stored.is_some()).await?;
        let mut stored = stored;
        if run.outcome == Outcome::Ready && stored.is_none() {
            // The run finished after the read above: its summary is there now.
            match self.store.get(&summary_key).await {
                Ok(body) => stored = Some(body),
                // Done, yet gone: made again.
                Err(ArtifactsError::NotFound(_)) => run = start(true, false).await?,
                Err(e) => return Err(e),
            }
        }
        if let (Outcome::Ready, Some(body)) = (&run.outcome, &stored) {
            return Ok(pb::SummaryState {
                ready: true,
                summary_json: String::from_utf8_lossy(body).into_owned(),
                ..Default::default()
            });
        }
        Ok(pb::SummaryState {
            ready: false,
            summary_json: String::new(),
            workflow_id: run.workflow_id,
            run_id: run.run_id,
            attempts: run.attempts,
            last_error: run.last_error,
            failed: run.outcome == Outcome::Failed,
        })
    }
}

#[tonic::async_trait]
impl Artifacts for ArtifactsService {
    async fn put_artifact(
        &self,
        req: Request<pb::PutArtifactRequest>,
    ) -> Result<Response<pb::ArtifactInfo>, Status> {
        let req = req.into_inner();
        let (artifact, key) = key_of(req.artifact.as_ref())?;
        let cap = self.uploads.cap(artifact.kind());
        if req.content.len() as u64 > cap {
            return Err(ArtifactsError::TooLarge { max_bytes: cap }.into());
        }
        check_content(
            artifact.kind(),
            &req.content,
            req.content.len() as u64,
            true,
        )?;
        let stored = self.store.put(&key, Bytes::from(req.content)).await?;
        tracing::info!(key, size = stored.size_bytes, "artifact stored");
        Ok(Response::new(info(artifact, stored)))
    }

    async fn stat_artifact(
        &self,
        req: Request<pb::ArtifactRef>,
    ) -> Result<Response<pb::ArtifactInfo>, Status> {
        let (artifact, key) = key_of(Some(req.get_ref()))?;
        let stat = self.store.stat(&key).await?;
        Ok(Response::new(info(artifact, stat)))
    }

    async fn read_artifact(
        &self,
        req: Request<pb::ReadArtifactRequest>,
    ) -> Result<Response<pb::ArtifactChunk>, Status> {
        let req = req.into_inner();
        let (artifact, key) = key_of(req.artifact.as_ref())?;
        let len = match req.length {
            0 => MAX_READ_BYTES,
            n => n.min(MAX_READ_BYTES),
        };
        let (data, total_size) = self.store.read(&key, req.offset, len.into()).await?;
        Ok(Response::new(pb::ArtifactChunk {
            data: data.to_vec(),
            total_size,
            content_type: content_type(artifact.kind()).to_owned(),
        }))
    }

    async fn delete_session_artifacts(
        &self,
        req: Request<pb::SessionRef>,
    ) -> Result<Response<pb::DeletedArtifacts>, Status> {
        let req = req.into_inner();
        let prefix = session_prefix(&req.account_id, &req.session_id)?;
        let mut deleted = 0;
        for object in self.store.list(&prefix).await.map_err(Status::from)? {
            if self.store.delete(&object.key).await? {
                deleted += 1;
            }
        }
        self.jobs.forget(&req.account_id, &req.session_id).await?;
        if deleted > 0 {
            tracing::info!(
                session = req.session_id,
                deleted,
                "session artifacts deleted"
            );
        }
        Ok(Response::new(pb::DeletedArtifacts { deleted }))
    }

    async fn begin_upload(
        &self,
        req: Request<pb::ArtifactRef>,
    ) -> Result<Response<pb::Upload>, Status> {
        let a = req.into_inner();
        let (upload_id, grant) = self.uploads.begin(&a.account_id, &a.session_id, a.kind())?;
        Ok(Response::new(pb::Upload {
            upload_id,
            max_bytes: grant.max_bytes,
            max_part_bytes: MAX_PART_BYTES,
        }))
    }

    async fn upload_part(
        &self,
        req: Request<pb::UploadPartRequest>,
    ) -> Result<Response<pb::UploadPartAccepted>, Status> {
        let req = req.into_inner();
        let size = self
            .uploads
            .put_part(&req.upload_id, req.part_number, Bytes::from(req.data))
            .await?;
        Ok(Response::new(pb::UploadPartAccepted { size_bytes: size }))
    }

    async fn complete_upload(
        &self,
        req: Request<pb::CompleteUploadRequest>,
    ) -> Result<Response<pb::ArtifactInfo>, Status> {
        let req = req.into_inner();
        let (grant, stored) = self
            .uploads
            .complete(&req.upload_id, req.part_count)
            .await?;
        tracing::info!(
            key = stored.key,
            size = stored.size_bytes,
            "artifact upload published"
        );
        let artifact = pb::ArtifactRef {
            account_id: grant.account_id,
            session_id: grant.session_id,
            kind: grant.kind as i32,
        };
        Ok(Response::new(info(artifact, stored)))
    }

    async fn abort_upload(
        &self,
        req: Request<pb::AbortUploadRequest>,
    ) -> Result<Response<pb::UploadAborted>, Status> {
        self.uploads.abort(&req.get_ref().upload_id).await?;
        Ok(Response::new(pb::UploadAborted {}))
    }

    async fn sign_download_url(
        &self,
        req: Request<pb::SignUrlRequest>,
    ) -> Result<Response<pb::SignedUrl>, Status> {
        Ok(Response::new(self.sign("GET", req.into_inner()).await?))
    }

    async fn sign_upload_url(
        &self,
        req: Request<pb::SignUrlRequest>,
    ) -> Result<Response<pb::SignedUrl>, Status> {
        let req = req.into_inner();
        let (artifact, _) = key_of(req.artifact.as_ref())?;
        if artifact.kind() == ArtifactKind::SummaryJson {
            return Err(ArtifactsError::InvalidArgument {
                field: "kind",
                reason: "summaries are written by Lobby, not uploaded",
            }
            .into());
        }
        Ok(Response::new(self.sign("PUT", req).await?))
    }

    async fn open_signed_url(
        &self,
        req: Request<pb::OpenSignedUrlRequest>,
    ) -> Result<Response<pb::ArtifactRef>, Status> {
        let req = req.into_inner();
        let now = lobby_kit::time::now_ms() / 1000;
        let named = req
            .path
            .strip_prefix(ROUTE_PREFIX)
            .and_then(parse_key)
            .filter(|_| {
                self.signer
                    .verify_request(&req.method, &req.path, &req.query, now)
                    == SignatureCheck::Valid
            });
        let Some((account_id, session_id, kind)) = named else {
            return Err(ArtifactsError::SignatureInvalid.into());
        };
        Ok(Response::new(pb::ArtifactRef {
            account_id,
            session_id,
            kind: kind as i32,
        }))
    }

    async fn get_summary(
        &self,
        req: Request<pb::SummaryRequest>,
    ) -> Result<Response<pb::SummaryState>, Status> {
        Ok(Response::new(self.summary(req.into_inner(), false).await?))
    }

    async fn regenerate_summary(
        &self,
        req: Request<pb::SummaryRequest>,
    ) -> Result<Response<pb::SummaryState>, Status> {
        Ok(Response::new(self.summary(req.into_inner(), true).await?))
    }
}
