//! The `lobby.artifacts.v1.Artifacts` gRPC service.

use crate::{
    error::ArtifactsError,
    signing::UrlSigner,
    store::{object_key, FileStore, ObjectInfo},
};
use lobby_proto::artifacts::{self as pb, artifacts_server::Artifacts, ArtifactKind};
use tonic::{Request, Response, Status};

pub const MAX_URL_TTL_SECONDS: u32 = 24 * 3600;
pub const DEFAULT_URL_TTL_SECONDS: u32 = 3600;

pub struct ArtifactsService {
    store: FileStore,
    signer: UrlSigner,
}

impl ArtifactsService {
    pub fn new(store: FileStore, signer: UrlSigner) -> Self {
        Self { store, signer }
    }
}

fn kind(raw: i32) -> ArtifactKind {
    ArtifactKind::try_from(raw).unwrap_or(ArtifactKind::Unspecified)
}

fn info(session_id: String, kind: ArtifactKind, o: ObjectInfo) -> pb::ArtifactInfo {
    pb::ArtifactInfo {
        session_id,
        kind: kind as i32,
        key: o.key,
        size_bytes: o.size_bytes,
        sha256_hex: o.sha256_hex,
    }
}

#[tonic::async_trait]
impl Artifacts for ArtifactsService {
    async fn put_artifact(
        &self,
        req: Request<pb::PutArtifactRequest>,
    ) -> Result<Response<pb::ArtifactInfo>, Status> {
        let req = req.into_inner();
        let kind = kind(req.kind);
        let key = object_key(&req.session_id, kind)?;
        let stored = self.store.put(&key, &req.content).await?;
        tracing::info!(key, size = stored.size_bytes, "artifact stored");
        Ok(Response::new(info(req.session_id, kind, stored)))
    }

    async fn stat_artifact(
        &self,
        req: Request<pb::StatArtifactRequest>,
    ) -> Result<Response<pb::ArtifactInfo>, Status> {
        let req = req.into_inner();
        let kind = kind(req.kind);
        let key = object_key(&req.session_id, kind)?;
        let stat = self.store.stat(&key).await?;
        Ok(Response::new(info(req.session_id, kind, stat)))
    }

    async fn sign_download_url(
        &self,
        req: Request<pb::SignDownloadUrlRequest>,
    ) -> Result<Response<pb::SignedUrl>, Status> {
        let req = req.into_inner();
        let key = object_key(&req.session_id, kind(req.kind))?;
        let ttl = match req.ttl_seconds {
            0 => DEFAULT_URL_TTL_SECONDS,
            t if t <= MAX_URL_TTL_SECONDS => t,
            _ => {
                return Err(ArtifactsError::InvalidArgument {
                    field: "ttl_seconds",
                    reason: "must be at most 86400",
                }
                .into())
            }
        };
        // Only an existing object gets a URL: a caller learns "not found" now,
        // not from a dangling link.
        self.store.stat(&key).await?;
        let expires_at = lobby_kit::time::now_ms() / 1000 + i64::from(ttl);
        Ok(Response::new(pb::SignedUrl {
            url: self.signer.sign_get(&key, expires_at),
            expires_at,
        }))
    }
}
