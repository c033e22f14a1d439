//! Reading a JSON request body so that every way it can be wrong is a 400 in
//! the contract's own body, never axum's plain-text rejections or a 500.

use crate::error::ApiError;
use axum::{
    body::Body,
    http::{header, HeaderMap},
};
use serde::de::DeserializeOwned;

/// Reads at most `limit` bytes of `body` as JSON of type `T`.
pub async fn read_json<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<T, ApiError> {
    require_json_content_type(headers)?;
    parse_json(&read_bytes(body, limit).await?)
}

/// Like [`read_json`], but an absent (empty) body means `T::default()`.
pub async fn read_optional_json<T: DeserializeOwned + Default>(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<T, ApiError> {
    let bytes = read_bytes(body, limit).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    require_json_content_type(headers)?;
    parse_json(&bytes)
}

/// How much of an oversized body is read and thrown away before the
/// refusal: a client still sending when the connection closes sees a reset,
/// not the 413, so up to this much it is let finish first.
const DRAIN_LIMIT: usize = 8 << 20;

/// The body, if it is at most `limit` bytes; a 400 otherwise, once the
/// rest (up to `DRAIN_LIMIT`) has been read and dropped.
pub async fn read_bytes(body: Body, limit: usize) -> Result<bytes::Bytes, ApiError> {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut kept = bytes::BytesMut::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|_| ApiError::bad_request("the request body could not be read"))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        seen = seen.saturating_add(data.len());
        if seen <= limit {
            kept.extend_from_slice(&data);
        } else if seen > DRAIN_LIMIT {
            break;
        }
    }
    if seen > limit {
        // The seeds answer every bad request body with their 400.
        return Err(ApiError::bad_request(format!(
            "request body is larger than {limit} bytes"
        )));
    }
    Ok(kept.freeze())
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "request body is empty; expected a JSON object",
        ));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

fn require_json_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = value.split(';').next().unwrap_or("").trim();
    if mime.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "Content-Type must be application/json",
        ))
    }
}
