//! Chunked uploads, staged in the object store itself so that any replica
//! can take any part: `uploads/{id}/{part}`, then published at the
//! artifact's key in one step. No reader ever sees half a file, and an
//! upload that is never completed is swept (`sweep_stale`).
//!
//! The upload id is a token sealed by the URL signer: it names the account,
//! session, kind and cap, and expires, so a part cannot be steered at
//! another object or outlive its upload.

use crate::{
    error::ArtifactsError,
    signing::UrlSigner,
    store::{object_key, ArtifactStore, ObjectInfo},
};
use bytes::Bytes;
use lobby_proto::artifacts::ArtifactKind;

/// The largest part one call carries (gRPC's default message cap is 4 MiB).
pub const MAX_PART_BYTES: u32 = 2 * 1024 * 1024;
/// How long an upload may take from Begin to Complete.
pub const UPLOAD_TTL_SECONDS: i64 = 3600;
/// The largest transcript or summary, which travel in one message.
pub const MAX_JSON_BYTES: u64 = 3 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadGrant {
    pub account_id: String,
    pub session_id: String,
    pub kind: ArtifactKind,
    pub staging_id: String,
    pub max_bytes: u64,
}

impl UploadGrant {
    fn payload(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}",
            self.account_id, self.session_id, self.kind as i32, self.staging_id, self.max_bytes
        )
    }

    fn parse(payload: &str) -> Option<Self> {
        let [account, session, kind, staging, max] = crate::split_exact(payload, '|')?;
        Some(Self {
            account_id: account.to_owned(),
            session_id: session.to_owned(),
            kind: ArtifactKind::try_from(kind.parse::<i32>().ok()?).ok()?,
            staging_id: staging.to_owned(),
            max_bytes: max.parse().ok()?,
        })
    }

    pub fn key(&self) -> Result<String, ArtifactsError> {
        object_key(&self.account_id, &self.session_id, self.kind)
    }

    fn staging_prefix(&self) -> String {
        format!("uploads/{}", self.staging_id)
    }

    fn part_key(&self, n: u32) -> String {
        format!("{}/{n:06}", self.staging_prefix())
    }

    fn max_parts(&self) -> u64 {
        self.max_bytes.div_ceil(u64::from(MAX_PART_BYTES)).max(1)
    }
}

#[derive(Clone)]
pub struct Uploads {
    store: ArtifactStore,
    signer: UrlSigner,
    max_audio_bytes: u64,
}

impl Uploads {
    pub fn new(store: ArtifactStore, signer: UrlSigner, max_audio_bytes: u64) -> Self {
        Self {
            store,
            signer,
            max_audio_bytes,
        }
    }

    pub fn cap(&self, kind: ArtifactKind) -> u64 {
        match kind {
            ArtifactKind::ConversationWav => self.max_audio_bytes,
            _ => MAX_JSON_BYTES,
        }
    }

    /// Starts an upload of `kind` for the session; writes nothing yet.
    pub fn begin(
        &self,
        account_id: &str,
        session_id: &str,
        kind: ArtifactKind,
    ) -> Result<(String, UploadGrant), ArtifactsError> {
        let grant = UploadGrant {
            account_id: account_id.to_owned(),
            session_id: session_id.to_owned(),
            kind,
            staging_id: uuid::Uuid::new_v4().simple().to_string(),
            max_bytes: self.cap(kind),
        };
        grant.key()?; // validates the ids and the kind
        let expires = lobby_kit::time::now_ms() / 1000 + UPLOAD_TTL_SECONDS;
        Ok((self.signer.seal_token(&grant.payload(), expires), grant))
    }

    fn open(&self, upload_id: &str) -> Result<UploadGrant, ArtifactsError> {
        self.signer
            .open_token(upload_id, lobby_kit::time::now_ms() / 1000)
            .and_then(|p| UploadGrant::parse(&p))
            .ok_or(ArtifactsError::InvalidArgument {
                field: "upload_id",
                reason: "is not a valid, unexpired upload",
            })
    }

    pub async fn put_part(
        &self,
        upload_id: &str,
        part_number: u32,
        data: Bytes,
    ) -> Result<u64, ArtifactsError> {
        let grant = self.open(upload_id)?;
        if data.len() > MAX_PART_BYTES as usize {
            return Err(ArtifactsError::InvalidArgument {
                field: "data",
                reason: "a part carries at most 2 MiB",
            });
        }
        if u64::from(part_number) >= grant.max_parts() {
            return Err(ArtifactsError::TooLarge {
                max_bytes: grant.max_bytes,
            });
        }
        let size = data.len() as u64;
        self.store.put(&grant.part_key(part_number), data).await?;
        Ok(size)
    }

    /// Checks the staged parts (all there, within the cap, a real WAV for
    /// audio, JSON for the rest), publishes them, and drops the staging.
    /// A refusal drops the staging too: nothing of it stays.
    pub async fn complete(
        &self,
        upload_id: &str,
        part_count: u32,
    ) -> Result<(UploadGrant, ObjectInfo), ArtifactsError> {
        let grant = self.open(upload_id)?;
        let result = self.publish(&grant, part_count).await;
        self.drop_staging(&grant).await;
        result.map(|info| (grant, info))
    }

    async fn publish(
        &self,
        grant: &UploadGrant,
        part_count: u32,
    ) -> Result<ObjectInfo, ArtifactsError> {
        let mut staged = self.store.list(&grant.staging_prefix()).await?;
        staged.sort_by(|a, b| a.key.cmp(&b.key));
        let expected: Vec<String> = (0..part_count).map(|n| grant.part_key(n)).collect();
        let present: Vec<&str> = staged.iter().map(|o| o.key.as_str()).collect();
        if part_count == 0 || present != expected.iter().map(String::as_str).collect::<Vec<_>>() {
            return Err(ArtifactsError::InvalidArgument {
                field: "part_count",
                reason: "does not match the parts uploaded (numbered from 0, none missing)",
            });
        }
        let total: u64 = staged.iter().map(|o| o.size_bytes).sum();
        if total > grant.max_bytes {
            return Err(ArtifactsError::TooLarge {
                max_bytes: grant.max_bytes,
            });
        }
        let first = self.store.get(&expected[0]).await?;
        check_content(grant.kind, &first, total, part_count == 1)?;
        self.store
            .publish_parts(&grant.key()?, first, &expected[1..])
            .await
    }

    pub async fn abort(&self, upload_id: &str) -> Result<(), ArtifactsError> {
        let grant = self.open(upload_id)?;
        self.drop_staging(&grant).await;
        Ok(())
    }

    async fn drop_staging(&self, grant: &UploadGrant) {
        match self.store.list(&grant.staging_prefix()).await {
            Ok(parts) => {
                for part in parts {
                    if let Err(e) = self.store.delete(&part.key).await {
                        tracing::warn!(key = part.key, error = %e, "staged part not deleted; the sweep retries");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "staging not listed; the sweep retries"),
        }
    }

    /// Deletes staged parts older than an upload can live. Returns how many.
    pub async fn sweep_stale(&self) -> Result<usize, ArtifactsError> {
        let cutoff = lobby_kit::time::now_ms() - 2 * UPLOAD_TTL_SECONDS * 1000;
        let mut removed = 0;
        for part in self.store.list("uploads").await? {
            if part.updated_at_ms < cutoff && self.store.delete(&part.key).await? {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// What a published artifact must be: a WAV (RIFF header read by `hound`)
/// for audio, JSON for the rest. `first` is the first part; `whole` says it
/// is the entire object.
pub fn check_content(
    kind: ArtifactKind,
    first: &[u8],
    total: u64,
    whole: bool,
) -> Result<(), ArtifactsError> {
    match kind {
        ArtifactKind::ConversationWav => {
            let not_wav = ArtifactsError::InvalidArgument {
                field: "content",
                reason: "is not a WAV file (RIFF/WAVE with a fmt and a data chunk)",
            };
            let reader = hound::WavReader::new(std::io::Cursor::new(first)).map_err(|_| not_wav)?;
            let spec = reader.spec();
            let data_bytes = u64::from(reader.len()) * u64::from(spec.bits_per_sample / 8);
            if spec.channels == 0 || spec.sample_rate == 0 || data_bytes > total {
                return Err(ArtifactsError::InvalidArgument {
                    field: "content",
                    reason: "is a WAV whose header does not fit its size",
                });
            }
            Ok(())
        }
        _ if whole => serde_json::from_slice::<serde::de::IgnoredAny>(first)
            .map(|_| ())
            .map_err(|_| ArtifactsError::InvalidArgument {
                field: "content",
                reason: "is not valid JSON",
            }),
        // JSON artifacts are small: published whole, never in parts.
        _ => Err(ArtifactsError::InvalidArgument {
            field: "kind",
            reason: "only audio is uploaded in parts",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(samples: usize) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 16_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::new(&mut out, spec).unwrap();
        for i in 0..samples {
            w.write_sample((i % 100) as i16).unwrap();
        }
        w.finalize().unwrap();
        out.into_inner()
    }

    #[test]
    fn only_real_wavs_and_json_are_accepted() {
        let audio = wav(1000);
        let len = audio.len() as u64;
        assert!(check_content(ArtifactKind::ConversationWav, &audio, len, true).is_ok());
        assert!(check_content(ArtifactKind::ConversationWav, &audio[..200], len, false).is_ok());
        // A header that claims more samples than the object holds.
        assert!(check_content(ArtifactKind::ConversationWav, &audio, 100, true).is_err());
        assert!(check_content(ArtifactKind::ConversationWav, b"not audio", 9, true).is_err());
        assert!(check_content(ArtifactKind::ConversationJson, b"{\"a\":1}", 7, true).is_ok());
        assert!(check_content(ArtifactKind::ConversationJson, b"{\"a\":", 5, true).is_err());
    }

    #[test]
    fn grants_round_trip_and_refuse_extra_fields() {
        let g = UploadGrant {
            account_id: "acct_1".into(),
            session_id: "s1".into(),
            kind: ArtifactKind::ConversationWav,
            staging_id: "abc".into(),
            max_bytes: 10,
        };
        assert_eq!(UploadGrant::parse(&g.payload()), Some(g.clone()));
        assert_eq!(UploadGrant::parse(&format!("{}|x", g.payload())), None);
    }
}
