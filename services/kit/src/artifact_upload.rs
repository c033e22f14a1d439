//! The client side of the artifacts service's chunked uploads, for the two
//! places bytes arrive from outside: a worker's gRPC stream (session) and a
//! signed PUT (gateway). Whatever size the pieces come in, they go out as
//! parts of the size the upload names, numbered from 0; past the upload's
//! cap the writer refuses (`upload_too_large`); `finish` publishes, and any
//! failure gives the staged parts back.

use crate::ErrorCode;
use lobby_proto::artifacts::{
    artifacts_server::Artifacts, AbortUploadRequest, ArtifactInfo, ArtifactRef,
    CompleteUploadRequest, Upload, UploadPartRequest,
};
use tonic::{Request, Status};

pub struct PartWriter<'a> {
    artifacts: &'a dyn Artifacts,
    upload: Upload,
    buffer: Vec<u8>,
    parts: u32,
    total: u64,
}

impl<'a> PartWriter<'a> {
    /// Starts an upload of `artifact`.
    pub async fn begin(
        artifacts: &'a dyn Artifacts,
        artifact: ArtifactRef,
    ) -> Result<Self, Status> {
        let upload = artifacts
            .begin_upload(Request::new(artifact))
            .await?
            .into_inner();
        Ok(Self {
            artifacts,
            buffer: Vec::with_capacity(upload.max_part_bytes as usize),
            upload,
            parts: 0,
            total: 0,
        })
    }

    /// The most the upload may publish.
    pub fn max_bytes(&self) -> u64 {
        self.upload.max_bytes
    }

    fn too_large(&self) -> Status {
        crate::grpc::status(
            tonic::Code::ResourceExhausted,
            ErrorCode::UploadTooLarge,
            format!(
                "the audio is larger than its cap of {} bytes",
                self.upload.max_bytes
            ),
            &[],
        )
    }

    async fn send(&mut self, part: Vec<u8>) -> Result<(), Status> {
        self.artifacts
            .upload_part(Request::new(UploadPartRequest {
                upload_id: self.upload.upload_id.clone(),
                part_number: self.parts,
                data: part,
            }))
            .await?;
        self.parts += 1;
        Ok(())
    }

    /// Adds `data`, sending every full part.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), Status> {
        self.total += data.len() as u64;
        if self.total > self.upload.max_bytes {
            return Err(self.too_large());
        }
        self.buffer.extend_from_slice(data);
        let part_size = self.upload.max_part_bytes.max(1) as usize;
        while self.buffer.len() >= part_size {
            let rest = self.buffer.split_off(part_size);
            let part = std::mem::replace(&mut self.buffer, rest);
            self.send(part).await?;
        }
        Ok(())
    }

    /// Sends the rest and publishes the whole.
    pub async fn finish(mut self) -> Result<ArtifactInfo, Status> {
        let sent = if !self.buffer.is_empty() || self.parts == 0 {
            let rest = std::mem::take(&mut self.buffer);
            self.send(rest).await
        } else {
            Ok(())
        };
        let completed = match sent {
            Ok(()) => self
                .artifacts
                .complete_upload(Request::new(CompleteUploadRequest {
                    upload_id: self.upload.upload_id.clone(),
                    part_count: self.parts,
                }))
                .await
                .map(tonic::Response::into_inner),
            Err(status) => Err(status),
        };
        if completed.is_err() {
            self.abort().await;
        }
        completed
    }

    /// Gives the staged parts back at once (the artifacts service's sweep
    /// would, later).
    pub async fn abort(self) {
        let _ = self
            .artifacts
            .abort_upload(Request::new(AbortUploadRequest {
                upload_id: self.upload.upload_id,
            }))
            .await;
    }
}
