//! Reading credentials off a request; deciding on them is auth's job.

use crate::{error::ApiError, AppState};
use axum::http::{header, HeaderMap};
use lobby_proto::auth::{ApiKeyPrincipal, AuthenticateApiKeyRequest};

/// An account API key from `x-api-key` or `Authorization: Bearer`.
pub fn api_key(headers: &HeaderMap) -> String {
    let from_header = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    let from_bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    from_header.or(from_bearer).unwrap_or("").trim().to_owned()
}

/// Authenticates the request's API key for `scope` (auth checks the key's
/// state and scopes; revocation is seen at once, nothing is cached here).
pub async fn require_api_key(
    state: &AppState,
    headers: &HeaderMap,
    scope: &str,
) -> Result<ApiKeyPrincipal, ApiError> {
    authenticate(state, headers, scope, None).await
}

/// The records contract's credentials: an account API key with `scope`, and
/// the `database-id-hash` header naming that key's account.
pub async fn require_api_key_for_database(
    state: &AppState,
    headers: &HeaderMap,
    scope: &str,
) -> Result<ApiKeyPrincipal, ApiError> {
    let database_id_hash = headers
        .get("database-id-hash")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    authenticate(state, headers, scope, Some(database_id_hash)).await
}

async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    scope: &str,
    database_id_hash: Option<&str>,
) -> Result<ApiKeyPrincipal, ApiError> {
    let principal = state
        .services
        .auth
        .authenticate_api_key(crate::actor::request(AuthenticateApiKeyRequest {
            key: api_key(headers),
            required_scope: scope.to_owned(),
            check_database_id_hash: database_id_hash.is_some(),
            database_id_hash: database_id_hash.unwrap_or("").to_owned(),
        }))
        .await?
        .into_inner();
    crate::actor::identify(format!("key:{}", principal.prefix));
    Ok(principal)
}
