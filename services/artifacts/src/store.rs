//! The object store: `sessions/{sessionId}/{name}` under a root folder.
//! Writes go to a temporary file renamed into place, so a reader never sees a
//! half-written artifact.

use crate::error::ArtifactsError;
use lobby_proto::artifacts::ArtifactKind;
use sha2::{Digest, Sha256};
use std::path::PathBuf;

pub const MAX_ARTIFACT_BYTES: usize = 64 * 1024 * 1024;

pub fn file_name(kind: ArtifactKind) -> Result<&'static str, ArtifactsError> {
    match kind {
        ArtifactKind::ConversationJson => Ok("conversation.json"),
        ArtifactKind::ConversationWav => Ok("conversation.wav"),
        ArtifactKind::SummaryJson => Ok("summary.json"),
        ArtifactKind::Unspecified => Err(ArtifactsError::InvalidArgument {
            field: "kind",
            reason: "must name an artifact",
        }),
    }
}

/// Session ids become path segments: refuse anything that could escape.
pub fn validate_session_id(id: &str) -> Result<(), ArtifactsError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(ArtifactsError::InvalidArgument {
            field: "session_id",
            reason: "must be 1-128 letters, digits, '-' or '_'",
        })
    }
}

pub fn object_key(session_id: &str, kind: ArtifactKind) -> Result<String, ArtifactsError> {
    validate_session_id(session_id)?;
    Ok(format!("sessions/{session_id}/{}", file_name(kind)?))
}

#[derive(Debug, Clone)]
pub struct ObjectInfo {
    pub key: String,
    pub size_bytes: u64,
    pub sha256_hex: String,
}

#[derive(Debug, Clone)]
pub struct FileStore {
    root: PathBuf,
}

impl FileStore {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    pub async fn put(&self, key: &str, content: &[u8]) -> Result<ObjectInfo, ArtifactsError> {
        if content.len() > MAX_ARTIFACT_BYTES {
            return Err(ArtifactsError::InvalidArgument {
                field: "content",
                reason: "is larger than 64 MiB",
            });
        }
        let path = self.root.join(key);
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        tokio::fs::write(&tmp, content).await?;
        tokio::fs::rename(&tmp, &path).await?;
        Ok(ObjectInfo {
            key: key.to_owned(),
            size_bytes: content.len() as u64,
            sha256_hex: hex::encode(Sha256::digest(content)),
        })
    }

    pub async fn stat(&self, key: &str) -> Result<ObjectInfo, ArtifactsError> {
        let path = self.root.join(key);
        let content = match tokio::fs::read(&path).await {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ArtifactsError::NotFound(key.to_owned()))
            }
            Err(e) => return Err(e.into()),
        };
        Ok(ObjectInfo {
            key: key.to_owned(),
            size_bytes: content.len() as u64,
            sha256_hex: hex::encode(Sha256::digest(&content)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_escape_the_store() {
        assert!(object_key("../etc", ArtifactKind::SummaryJson).is_err());
        assert!(object_key("a/b", ArtifactKind::SummaryJson).is_err());
        assert_eq!(
            object_key("s-1", ArtifactKind::ConversationWav).unwrap(),
            "sessions/s-1/conversation.wav"
        );
    }

    #[tokio::test]
    async fn put_then_stat_reports_size_and_digest() {
        let root = std::env::temp_dir().join(format!("lobby-store-{}", std::process::id()));
        let store = FileStore::new(root.clone());
        let key = object_key("s1", ArtifactKind::SummaryJson).unwrap();
        let put = store.put(&key, b"{}").await.unwrap();
        let stat = store.stat(&key).await.unwrap();
        assert_eq!(put.size_bytes, 2);
        assert_eq!(put.sha256_hex, stat.sha256_hex);
        assert!(matches!(
            store.stat("sessions/none/summary.json").await,
            Err(ArtifactsError::NotFound(_))
        ));
        std::fs::remove_dir_all(root).unwrap();
    }
}
