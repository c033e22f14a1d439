//! The signed artifact URLs of the filesystem store (`/artifacts/…`): the
//! artifacts service checks the signature (HMAC over method, path, expiry
//! and key id); the gateway streams the bytes.
//!
//! - `GET`/`HEAD`: the file, with single-range requests (`206`, `416`) so
//!   that a browser's `<audio>` element can seek.
//! - `PUT`: a worker's upload. Audio is streamed into parts and published
//!   whole; nothing is visible until the last byte is in and checked.
//!
//! A tampered, expired or path-swapped URL is 403 `{"error": …}`.

use crate::{contracts::artifacts::error, error::ApiError, AppState};
use axum::{
    body::Body,
    extract::State,
    http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
    Json,
};
use bytes::Bytes;
use http_body_util::BodyExt;
use lobby_kit::artifact_upload::PartWriter;
use lobby_kit::ErrorCode;
use lobby_proto::artifacts::{
    ArtifactKind, ArtifactRef, OpenSignedUrlRequest, PutArtifactRequest, ReadArtifactRequest,
    SessionRef,
};
use lobby_proto::session::GetSessionRequest;
use serde::Serialize;

pub const PATH: &str = "/artifacts/{*key}";
/// What one read asks the artifacts service for.
const READ_CHUNK: u32 = 1024 * 1024;
/// The largest JSON artifact a PUT takes.
const MAX_JSON_PUT: usize = 3 * 1024 * 1024;

fn fail(e: ApiError) -> Response {
    crate::contracts::Contract::Artifacts.render(e)
}

/// The object a signed request names, once its signature holds.
async fn open(st: &AppState, method: &str, uri: &Uri) -> Result<ArtifactRef, Response> {
    st.services
        .artifacts
        .open_signed_url(crate::actor::request(OpenSignedUrlRequest {
            method: method.to_owned(),
            path: uri.path().to_owned(),
            query: uri.query().unwrap_or("").to_owned(),
        }))
        .await
        .map(tonic::Response::into_inner)
        .map_err(|s| fail(s.into()))
}

/// A Range no byte of the object satisfies (416).
#[derive(Debug, PartialEq, Eq)]
pub struct Unsatisfiable;

/// A single byte range of an object of `size` bytes: `Ok(None)` for the
/// whole object (no Range, or one this route does not serve, which RFC
/// 9110 lets a server ignore), `Err` when it cannot be satisfied.
pub fn byte_range(header: Option<&str>, size: u64) -> Result<Option<(u64, u64)>, Unsatisfiable> {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((start, end)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (start, end) = (start.trim(), end.trim());
    let range = match (start.parse::<u64>(), end.parse::<u64>()) {
        (Ok(s), Ok(e)) if s <= e => (s, e.min(size.saturating_sub(1))),
        (Ok(_), Ok(_)) => return Ok(None),
        (Ok(s), Err(_)) if end.is_empty() => (s, size.saturating_sub(1)),
        // A suffix: the last n bytes.
        (Err(_), Ok(n)) if start.is_empty() && n > 0 => {
            (size.saturating_sub(n), size.saturating_sub(1))
        }
        _ => return Ok(None),
    };
    if size == 0 || range.0 >= size {
        return Err(Unsatisfiable);
    }
    Ok(Some(range))
}

/// A signed URL's query, as the artifacts service writes it.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct Signature {
    /// Seconds since the epoch after which the URL is refused.
    expires: u64,
    /// The signing key's id.
    kid: String,
    /// HMAC-SHA256 over method, path, expiry and key id.
    sig: String,
}

/// What a signed URL can answer instead (seed 003's `{error}`).
#[derive(utoipa::IntoResponses)]
pub enum Refusals {
    #[response(status = 400, description = "The body could not be read")]
    BadRequest(crate::contracts::artifacts::ArtifactsError),
    #[response(
        status = 403,
        description = "The signature is missing, wrong or expired, or signed for another method or path"
    )]
    Forbidden(crate::contracts::artifacts::ArtifactsError),
    #[response(status = 404, description = "No such file (or its session is gone)")]
    NotFound(crate::contracts::artifacts::ArtifactsError),
    #[response(status = 413, description = "Larger than the artifact's cap")]
    TooLarge(crate::contracts::artifacts::ArtifactsError),
    #[response(status = 429, description = "A rate limit; `Retry-After` says when")]
    TooMany(crate::contracts::artifacts::ArtifactsError),
    #[response(status = 500, description = "An internal error")]
    Internal(crate::contracts::artifacts::ArtifactsError),
    #[response(status = 502, description = "A service is unreachable")]
    BadGateway(crate::contracts::artifacts::ArtifactsError),
    #[response(status = 503, description = "The store is unavailable")]
    Unavailable(crate::contracts::artifacts::ArtifactsError),
    #[response(status = 504, description = "No answer within the request deadline")]
    Timeout(crate::contracts::artifacts::ArtifactsError),
}

/// `GET`/`HEAD` of a signed URL.
#[utoipa::path(
    get,
    operation_id = "artifact_url_download",
    path = "/artifacts/{key}",
    tag = "seed 003: artifacts",
    params(
        ("key" = String, Path, description = "The object's key, slashes included: `accounts/<account>/sessions/<session>/<file>`"),
        ("Range" = Option<String>, Header, description = "One byte range, e.g. `bytes=0-1023`"),
        Signature,
    ),
    responses(
        (status = 200, description = "The file: `conversation.wav` or a JSON artifact", content(
            (crate::openapi::Binary = "audio/wav"),
            (serde_json::Value = "application/json"),
        )),
        (status = 206, description = "The range asked for", content(
            (crate::openapi::Binary = "audio/wav"),
            (crate::openapi::Binary = "application/json"),
        )),
        (status = 416, description = "No byte of the file is in the range", body = crate::contracts::artifacts::ArtifactsError),
        Refusals,
    )
)]
pub async fn download(
    State(st): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    // HEAD is the GET it precedes: signed as GET.
    let artifact = match open(&st, "GET", &uri).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let stat = st
        .services
        .artifacts
        .stat_artifact(crate::actor::request(artifact.clone()))
        .await;
    let stat = match stat {
        Ok(f) => f.into_inner(),
        Err(s) => return fail(s.into()),
    };
    let size = stat.size_bytes;
    let range = byte_range(
        headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
        size,
    );
    let (status, start, end) = match range {
        Ok(None) => (StatusCode::OK, 0, size),
        Ok(Some((a, b))) => (StatusCode::PARTIAL_CONTENT, a, b + 1),
        Err(Unsatisfiable) => {
            let mut r = error(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "the range is outside the file",
            );
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
    };
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, stat.content_type)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_LENGTH, end - start)
        .header(header::CACHE_CONTROL, "private, max-age=3600");
    if status == StatusCode::PARTIAL_CONTENT {
        builder = builder.header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{size}", end - 1),
        );
    }
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from_stream(read_stream(st, artifact, start, end))
    };
    builder
        .body(body)
        .unwrap_or_else(|_| fail(ApiError::public(ErrorCode::InternalError)))
}

/// The bytes `start..end` of the artifact, a chunk per call, as they come.
fn read_stream(
    st: AppState,
    artifact: ArtifactRef,
    start: u64,
    end: u64,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::try_unfold(start, move |offset| {
        let (st, artifact) = (st.clone(), artifact.clone());
        async move {
            if offset >= end {
                return Ok(None);
            }
            let want = (end - offset).min(u64::from(READ_CHUNK)) as u32;
            let chunk = st
                .services
                .artifacts
                .read_artifact(crate::actor::request(ReadArtifactRequest {
                    artifact: Some(artifact),
                    offset,
                    length: want,
                }))
                .await
                .map_err(|s| std::io::Error::other(s.message().to_owned()))?
                .into_inner();
            if chunk.data.is_empty() {
                // The object shrank (replaced) mid-read: end the body short
                // rather than loop.
                return Err(std::io::Error::other(
                    "the artifact changed while it was read",
                ));
            }
            let next = offset + chunk.data.len() as u64;
            Ok(Some((Bytes::from(chunk.data), next)))
        }
    })
}

/// `HEAD` of a signed URL (signed as its `GET`): the file's headers.
#[utoipa::path(
    head,
    operation_id = "artifact_url_head",
    path = "/artifacts/{key}",
    tag = "seed 003: artifacts",
    params(
        ("key" = String, Path, description = "The object's key, slashes included"),
        ("Range" = Option<String>, Header, description = "One byte range, e.g. `bytes=0-1023`"),
        Signature,
    ),
    responses(
        (status = 200, description = "The file's headers"),
        (status = 206, description = "The range's headers"),
        (status = 403, description = "The signature is missing, wrong or expired, or signed for another path"),
        (status = 404, description = "No such file"),
        (status = 416, description = "No byte of the file is in the range"),
        (status = 500, description = "An internal error"),
        (status = 502, description = "A service is unreachable"),
        (status = 503, description = "The store is unavailable"),
    )
)]
pub async fn head(st: State<AppState>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    download(st, method, uri, headers).await
}

/// A stored upload.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Uploaded {
    success: bool,
    session_id: String,
    size_bytes: u64,
}

/// `PUT` to a signed upload URL (a GPU worker's transcript or audio).
#[utoipa::path(
    put,
    operation_id = "artifact_url_upload",
    path = "/artifacts/{key}",
    tag = "seed 003: artifacts",
    params(
        ("key" = String, Path, description = "The object's key, slashes included"),
        Signature,
    ),
    request_body(content = crate::openapi::Binary, content_type = "application/octet-stream", description = "The file"),
    responses(
        (status = 200, description = "Stored", body = Uploaded),
        Refusals,
    )
)]
pub async fn upload(
    State(st): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let artifact = match open(&st, "PUT", &uri).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let stored = if artifact.kind() == ArtifactKind::ConversationWav {
        upload_parts(&st, &artifact, &headers, body).await
    } else {
        let bytes = match crate::json_body::read_bytes(body, MAX_JSON_PUT).await {
            Ok(b) => b,
            Err(e) => return error(StatusCode::PAYLOAD_TOO_LARGE, e.message()),
        };
        st.services
            .artifacts
            .put_artifact(crate::actor::request(PutArtifactRequest {
                artifact: Some(artifact.clone()),
                content: bytes.to_vec(),
            }))
            .await
            .map(|r| r.into_inner().size_bytes)
            .map_err(|s| fail(s.into()))
    };
    let size = match stored {
        Ok(size) => size,
        Err(r) => return r,
    };
    // A session deleted while its upload ran takes the upload with it.
    let still_there = st
        .services
        .session
        .get_session(crate::actor::request(GetSessionRequest {
            session_id: artifact.session_id.clone(),
            account_id: artifact.account_id.clone(),
        }))
        .await;
    if let Err(s) = still_there {
        if lobby_kit::grpc::machine_code(&s) == Some(ErrorCode::SessionNotFound) {
            let _ = st
                .services
                .artifacts
                .delete_session_artifacts(crate::actor::request(SessionRef {
                    account_id: artifact.account_id.clone(),
                    session_id: artifact.session_id.clone(),
                }))
                .await;
            return error(StatusCode::NOT_FOUND, "Session not found");
        }
    }
    Json(Uploaded {
        success: true,
        session_id: artifact.session_id,
        size_bytes: size,
    })
    .into_response()
}

/// Streams the body into the artifacts service's parts, then publishes
/// them; anything that fails gives the staged parts back.
async fn upload_parts(
    st: &AppState,
    artifact: &ArtifactRef,
    headers: &HeaderMap,
    mut body: Body,
) -> Result<u64, Response> {
    let mut writer = PartWriter::begin(st.services.artifacts.as_ref(), artifact.clone())
        .await
        .map_err(|s| fail(s.into()))?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > writer.max_bytes()) {
        // Refused before a byte is staged.
        return Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "the audio is larger than its cap of {} bytes",
                writer.max_bytes()
            ),
        ));
    }
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            writer.abort().await;
            return Err(error(
                StatusCode::BAD_REQUEST,
                "the request body could not be read",
            ));
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        if let Err(status) = writer.write(&data).await {
            writer.abort().await;
            return Err(fail(status.into()));
        }
    }
    writer
        .finish()
        .await
        .map(|info| info.size_bytes)
        .map_err(|s| fail(s.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(byte_range(None, 100), Ok(None));
        assert_eq!(byte_range(Some("bytes=0-9"), 100), Ok(Some((0, 9))));
        assert_eq!(byte_range(Some("bytes=90-"), 100), Ok(Some((90, 99))));
        assert_eq!(byte_range(Some("bytes=-10"), 100), Ok(Some((90, 99))));
        assert_eq!(byte_range(Some("bytes=-500"), 100), Ok(Some((0, 99))));
        assert_eq!(byte_range(Some("bytes=50-500"), 100), Ok(Some((50, 99))));
        assert_eq!(byte_range(Some("bytes=100-"), 100), Err(Unsatisfiable));
        assert_eq!(byte_range(Some("bytes=0-1,5-6"), 100), Ok(None));
        assert_eq!(byte_range(Some("bytes=9-1"), 100), Ok(None));
        assert_eq!(byte_range(Some("items=0-1"), 100), Ok(None));
        assert_eq!(byte_range(Some("bytes=0-"), 0), Err(Unsatisfiable));
    }
}
