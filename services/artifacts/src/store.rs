//! The object store, through `object_store`: the local filesystem by default,
//! S3-compatible storage by config. Every object of a session sits under its
//! account: `accounts/{accountId}/sessions/{sessionId}/{name}`.
//!
//! Publishing is atomic in both: the filesystem store writes a staging file
//! and renames it into place, S3 makes an object visible only once its PUT
//! (or multipart upload) completes.

use crate::error::ArtifactsError;
use bytes::Bytes;
use futures::TryStreamExt;
use lobby_proto::artifacts::ArtifactKind;
use object_store::{
    aws::{AmazonS3, AmazonS3Builder},
    local::LocalFileSystem,
    path::Path,
    ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart,
};
use std::{sync::Arc, time::Duration};

/// Where the artifacts live, from config.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    Filesystem {
        root: std::path::PathBuf,
    },
    S3 {
        bucket: String,
        /// Empty: AWS itself; otherwise any S3-compatible endpoint (path-style).
        endpoint: String,
        region: String,
        access_key_id: String,
        secret_access_key: String,
    },
}

/// The names a session's artifacts have; nothing else is stored for it.
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

pub fn kind_of_name(name: &str) -> Option<ArtifactKind> {
    [
        ArtifactKind::ConversationJson,
        ArtifactKind::ConversationWav,
        ArtifactKind::SummaryJson,
    ]
    .into_iter()
    .find(|k| file_name(*k).ok() == Some(name))
}

pub fn content_type(kind: ArtifactKind) -> &'static str {
    match kind {
        ArtifactKind::ConversationWav => "audio/wav",
        _ => "application/json",
    }
}

/// Ids become path segments: refuse anything that could escape or alias.
pub fn validate_id(field: &'static str, id: &str) -> Result<(), ArtifactsError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(ArtifactsError::InvalidArgument {
            field,
            reason: "must be 1-128 letters, digits, '-' or '_'",
        })
    }
}

/// The folder of one session's artifacts.
pub fn session_prefix(account_id: &str, session_id: &str) -> Result<String, ArtifactsError> {
    validate_id("account_id", account_id)?;
    validate_id("session_id", session_id)?;
    Ok(format!("accounts/{account_id}/sessions/{session_id}"))
}

pub fn object_key(
    account_id: &str,
    session_id: &str,
    kind: ArtifactKind,
) -> Result<String, ArtifactsError> {
    Ok(format!(
        "{}/{}",
        session_prefix(account_id, session_id)?,
        file_name(kind)?
    ))
}

/// The inverse of `object_key`, for a key read off a signed URL's path.
pub fn parse_key(key: &str) -> Option<(String, String, ArtifactKind)> {
    let ["accounts", account, "sessions", session, name] = crate::split_exact(key, '/')? else {
        return None;
    };
    let kind = kind_of_name(name)?;
    // Round-tripping rejects ids `object_key` would not have made.
    (object_key(account, session, kind).ok()? == key)
        .then(|| (account.into(), session.into(), kind))
}

#[derive(Debug, Clone)]
pub struct ObjectInfo {
    pub key: String,
    pub size_bytes: u64,
    pub updated_at_ms: i64,
}

#[derive(Clone)]
pub struct ArtifactStore {
    objects: Arc<dyn ObjectStore>,
    /// Set for S3: downloads and uploads go straight to it, presigned.
    s3: Option<Arc<AmazonS3>>,
}

impl ArtifactStore {
    pub fn open(config: &StoreConfig) -> Result<Self, ArtifactsError> {
        match config {
            StoreConfig::Filesystem { root } => {
                std::fs::create_dir_all(root)?;
                let fs = LocalFileSystem::new_with_prefix(root)?;
                Ok(Self {
                    objects: Arc::new(fs),
                    s3: None,
                })
            }
            StoreConfig::S3 {
                bucket,
                endpoint,
                region,
                access_key_id,
                secret_access_key,
            } => {
                // object_store's HTTP client finds no TLS provider on its own.
                lobby_kit::grpc_tls::install_crypto_provider();
                let mut builder = AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_region(region)
                    .with_access_key_id(access_key_id)
                    .with_secret_access_key(secret_access_key);
                if !endpoint.is_empty() {
                    // S3-compatible servers address buckets by path, and
                    // local ones speak plain HTTP (without `allow_http`
                    // every request fails with "builder error").
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_virtual_hosted_style_request(false)
                        .with_allow_http(endpoint.starts_with("http://"));
                }
                let s3 = Arc::new(builder.build()?);
                Ok(Self {
                    objects: s3.clone(),
                    s3: Some(s3),
                })
            }
        }
    }

    pub fn is_s3(&self) -> bool {
        self.s3.is_some()
    }

    pub async fn put(&self, key: &str, content: Bytes) -> Result<ObjectInfo, ArtifactsError> {
        let size = content.len() as u64;
        self.objects
            .put(&Path::from(key), PutPayload::from(content))
            .await?;
        Ok(ObjectInfo {
            key: key.to_owned(),
            size_bytes: size,
            updated_at_ms: lobby_kit::time::now_ms(),
        })
    }

    /// Publishes `first` followed by the `rest` (staged objects) at `key` in
    /// one step, streaming: memory holds about one multipart chunk at a time.
    /// The first part comes in already read (its content was checked).
    pub async fn publish_parts(
        &self,
        key: &str,
        first: Bytes,
        rest: &[String],
    ) -> Result<ObjectInfo, ArtifactsError> {
        let upload = self.objects.put_multipart(&Path::from(key)).await?;
        // Buffers to S3's 5 MiB minimum part size; the filesystem writes a
        // staging file that `finish` renames into place.
        let mut writer = WriteMultipart::new(upload);
        let mut size = first.len() as u64;
        writer.put(first);
        for part in rest {
            let bytes = match self.objects.get(&Path::from(part.as_str())).await {
                Ok(got) => got.bytes().await,
                Err(e) => Err(e),
            };
            match bytes {
                Ok(bytes) => {
                    size += bytes.len() as u64;
                    writer.wait_for_capacity(2).await?;
                    writer.put(bytes);
                }
                Err(e) => {
                    // Nothing was published; the store drops the staging.
                    let _ = writer.abort().await;
                    return Err(e.into());
                }
            }
        }
        writer.finish().await?;
        Ok(ObjectInfo {
            key: key.to_owned(),
            size_bytes: size,
            updated_at_ms: lobby_kit::time::now_ms(),
        })
    }

    pub async fn stat(&self, key: &str) -> Result<ObjectInfo, ArtifactsError> {
        let meta = self
            .objects
            .head(&Path::from(key))
            .await
            .map_err(|e| not_found(e, key))?;
        Ok(ObjectInfo {
            key: key.to_owned(),
            size_bytes: meta.size,
            updated_at_ms: meta.last_modified.timestamp_millis(),
        })
    }

    pub async fn get(&self, key: &str) -> Result<Bytes, ArtifactsError> {
        let got = self
            .objects
            .get(&Path::from(key))
            .await
            .map_err(|e| not_found(e, key))?;
        Ok(got.bytes().await?)
    }

    /// `len` bytes from `offset` (fewer at the end), and the object's size.
    pub async fn read(
        &self,
        key: &str,
        offset: u64,
        len: u64,
    ) -> Result<(Bytes, u64), ArtifactsError> {
        let size = self.stat(key).await?.size_bytes;
        if offset >= size || len == 0 {
            return Ok((Bytes::new(), size));
        }
        let end = size.min(offset.saturating_add(len));
        let data = self
            .objects
            .get_range(&Path::from(key), offset..end)
            .await
            .map_err(|e| not_found(e, key))?;
        Ok((data, size))
    }

    /// Deletes `key`; a missing object is not an error (deletes are retried).
    pub async fn delete(&self, key: &str) -> Result<bool, ArtifactsError> {
        match self.objects.delete(&Path::from(key)).await {
            Ok(()) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Every object under `prefix`, with when it was last written.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, ArtifactsError> {
        let metas: Vec<_> = self
            .objects
            .list(Some(&Path::from(prefix)))
            .try_collect()
            .await?;
        Ok(metas
            .into_iter()
            .map(|m| ObjectInfo {
                key: m.location.to_string(),
                size_bytes: m.size,
                updated_at_ms: m.last_modified.timestamp_millis(),
            })
            .collect())
    }

    /// A presigned S3 URL for `method` on `key`; `None` for the filesystem.
    pub async fn presign(
        &self,
        method: object_store::signer::Method,
        key: &str,
        ttl: Duration,
    ) -> Result<Option<String>, ArtifactsError> {
        use object_store::signer::Signer;
        let Some(s3) = &self.s3 else {
            return Ok(None);
        };
        let url = s3.signed_url(method, &Path::from(key), ttl).await?;
        Ok(Some(url.to_string()))
    }
}

fn not_found(e: object_store::Error, key: &str) -> ArtifactsError {
    match e {
        object_store::Error::NotFound { .. } => ArtifactsError::NotFound(key.to_owned()),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_escape_the_store_and_parse_back() {
        assert!(object_key("acct_1", "../etc", ArtifactKind::SummaryJson).is_err());
        assert!(object_key("acct_1", "a/b", ArtifactKind::SummaryJson).is_err());
        assert!(object_key("../x", "s1", ArtifactKind::SummaryJson).is_err());
        let key = object_key("acct_1", "s-1", ArtifactKind::ConversationWav).unwrap();
        assert_eq!(key, "accounts/acct_1/sessions/s-1/conversation.wav");
        assert_eq!(
            parse_key(&key),
            Some(("acct_1".into(), "s-1".into(), ArtifactKind::ConversationWav))
        );
        for bad in [
            "accounts/acct_1/sessions/s-1/other.bin",
            "accounts/acct_1/sessions/s-1/conversation.wav/x",
            "accounts/acct_1/sessions/../conversation.wav",
            "accounts/acct_1/sessions/s%2F1/conversation.wav",
            "sessions/s-1/conversation.wav",
        ] {
            assert_eq!(parse_key(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn put_read_ranges_and_delete() {
        let root = std::env::temp_dir().join(format!("lobby-store-{}", uuid::Uuid::new_v4()));
        let store = ArtifactStore::open(&StoreConfig::Filesystem { root: root.clone() }).unwrap();
        let key = object_key("acct_1", "s1", ArtifactKind::SummaryJson).unwrap();
        store
            .put(&key, Bytes::from_static(b"0123456789"))
            .await
            .unwrap();
        assert_eq!(store.stat(&key).await.unwrap().size_bytes, 10);
        let (data, size) = store.read(&key, 3, 4).await.unwrap();
        assert_eq!((&data[..], size), (&b"3456"[..], 10));
        let (tail, _) = store.read(&key, 8, 100).await.unwrap();
        assert_eq!(&tail[..], b"89");
        assert!(store.read(&key, 10, 5).await.unwrap().0.is_empty());
        assert!(store.delete(&key).await.unwrap());
        assert!(!store.delete(&key).await.unwrap());
        assert!(matches!(
            store.stat(&key).await,
            Err(ArtifactsError::NotFound(_))
        ));
        std::fs::remove_dir_all(root).unwrap();
    }
}
