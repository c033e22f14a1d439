//! One module per public contract (the seeds in `shared/seeds/`).
//!
//! Each contract has its own error envelope. `Contract::of` says which one
//! a path belongs to, so that what the edge refuses before any handler
//! runs (an unknown route, a timeout, a rate limit) answers in the shape
//! the caller of that route parses.

pub mod artifacts;
pub mod links;
pub mod ojin;
pub mod otas;
pub mod records;

use crate::error::ApiError;
use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde_json::json;

/// A time as the seeds write it: ISO 8601, UTC, milliseconds.
pub fn iso_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// Whose error envelope a route answers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contract {
    /// Seed 000 (`{error_code, message, …}`), also the admin API's and the
    /// edge's own.
    Ojin,
    /// Seed 001: `{status: 0, status_description: <code>, message}`.
    Otas,
    /// Seed 002: `{success: false, error: <code>, message[, retry_after_seconds]}`.
    Links,
    /// Seed 004: `{message, status}`; server errors are 499.
    Records,
    /// Seed 003 and the signed artifact URLs: `{error}`; a missing or bad
    /// key is 401, a missing scope 403.
    Artifacts,
}

impl Contract {
    pub fn of(path: &str) -> Self {
        if path.starts_with("/api/agent/v1/session/") {
            Self::Otas
        } else if path.starts_with("/api/session")
            || path.starts_with("/api/exec/session")
            || (path.starts_with("/api/agent/") && path.trim_end_matches('/').ends_with("/session"))
        {
            Self::Records
        } else if path.starts_with("/api/agent/") {
            Self::Otas
        } else if path.starts_with("/v1/links") {
            Self::Links
        } else if path.starts_with("/v1/session/")
            || path.starts_with("/v1/sessions/")
            || path.starts_with("/artifacts/")
        {
            Self::Artifacts
        } else {
            Self::Ojin
        }
    }

    /// The name of the schema of this contract's error envelope, the type
    /// `render` writes, in the OpenAPI document.
    pub fn error_schema(self) -> std::borrow::Cow<'static, str> {
        use utoipa::ToSchema;
        match self {
            Self::Ojin => crate::error::ErrorBody::name(),
            Self::Otas => otas::OtasError::name(),
            Self::Links => links::LinkError::name(),
            Self::Records => records::RecordsMessage::name(),
            Self::Artifacts => artifacts::ArtifactsError::name(),
        }
    }

    /// `e` in this contract's envelope, with `Retry-After` when it has a hint.
    pub fn render(self, e: ApiError) -> Response {
        let body = match self {
            Self::Ojin => return e.into_response(),
            Self::Otas => json!(otas::OtasError::of(&e)),
            Self::Links => json!(links::LinkError::of(&e)),
            Self::Records => {
                // The seed's server errors are 499, in the body and the
                // status; a store away for a moment stays 503 with
                // `Retry-After`, as in every contract: retry, not a fault.
                let transient = e.status == StatusCode::SERVICE_UNAVAILABLE;
                let status = if e.status.is_server_error() && !transient {
                    StatusCode::from_u16(499).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
                } else {
                    e.status
                };
                let body = records::RecordsMessage::of(status, e.message());
                return e.with_retry_header((status, Json(body)).into_response());
            }
            Self::Artifacts => {
                let status = artifacts_status(&e);
                let body = artifacts::ArtifactsError::of(e.message());
                return e.with_retry_header((status, Json(body)).into_response());
            }
        };
        e.with_retry_header((e.status, Json(body)).into_response())
    }
}

/// Seed 003's statuses: every key refusal but a missing scope is 401 (a
/// revoked or inactive key is as bad as a wrong one to this caller).
fn artifacts_status(e: &ApiError) -> StatusCode {
    let key_refusal = e.code().starts_with("key_") || e.code() == "unauthorized";
    if key_refusal {
        StatusCode::UNAUTHORIZED
    } else {
        e.status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_path_answers_in_its_contracts_shape() {
        assert_eq!(
            Contract::of("/api/agent/v1/session/create/"),
            Contract::Otas
        );
        assert_eq!(Contract::of("/v1/links/start-session"), Contract::Links);
        assert_eq!(Contract::of("/v1/public/agents/connect"), Contract::Ojin);
        assert_eq!(Contract::of("/nope"), Contract::Ojin);
        assert_eq!(Contract::of("/api/session"), Contract::Records);
        assert_eq!(Contract::of("/api/session/s-1"), Contract::Records);
        assert_eq!(Contract::of("/api/exec/session/s-1"), Contract::Records);
        assert_eq!(Contract::of("/api/agent/agt_1/session"), Contract::Records);
        assert_eq!(
            Contract::of("/api/agent/v1/session/events/"),
            Contract::Otas
        );
        assert_eq!(Contract::of("/v1/session/status"), Contract::Artifacts);
        assert_eq!(Contract::of("/v1/sessions/summary"), Contract::Artifacts);
        assert_eq!(
            Contract::of("/artifacts/accounts/a/sessions/s/conversation.wav"),
            Contract::Artifacts
        );
    }

    #[tokio::test]
    async fn a_store_away_for_a_moment_is_a_503_with_retry_after_in_every_contract() {
        use http_body_util::BodyExt;
        let status = lobby_kit::grpc::status(
            tonic::Code::Unavailable,
            lobby_kit::ErrorCode::StoreUnavailable,
            "state store: MOVED 3999 127.0.0.1:6381",
            &[],
        );
        for (contract, field) in [
            (Contract::Ojin, "error_code"),
            (Contract::Otas, "status_description"),
            (Contract::Links, "error"),
            (Contract::Records, "message"),
            (Contract::Artifacts, "error"),
        ] {
            let response = contract.render(ApiError::from_status(&status));
            assert_eq!(
                response.status(),
                StatusCode::SERVICE_UNAVAILABLE,
                "{contract:?}"
            );
            assert_eq!(
                response.headers().get("retry-after").map(|v| v.as_bytes()),
                Some(&b"1"[..]),
                "{contract:?}"
            );
            let body = response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes();
            let body: serde_json::Value = serde_json::from_slice(&body).expect("json");
            assert!(body.get(field).is_some(), "{contract:?}: {body}");
        }
    }
}
