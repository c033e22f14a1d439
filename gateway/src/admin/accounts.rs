//! Accounts and their usage: create, list, get, update, the minutes and
//! slots an account holds, its keys for the records contract, and its
//! audit log.

use super::{ApiResult, MAX_BODY_BYTES};
use crate::{error::ApiError, json_body::read_json, AppState};
use axum::{
    body::Body,
    extract::{rejection::QueryRejection, Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
    Json,
};
use lobby_proto::{auth as pb, session};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct AccountJson {
    id: String,
    name: String,
    max_concurrency: u32,
    minutes_quota: u64,
    created_at_ms: i64,
    updated_at_ms: i64,
    /// The records contract's `database-id-hash` header value.
    database_id_hash: String,
    /// Where its sessions are admitted, wherever they start (omitted:
    /// each region admits on its own).
    #[serde(skip_serializing_if = "String::is_empty")]
    home_region: String,
}

impl From<pb::Account> for AccountJson {
    fn from(a: pb::Account) -> Self {
        Self {
            id: a.id,
            name: a.name,
            max_concurrency: a.max_concurrency,
            minutes_quota: a.minutes_quota,
            created_at_ms: a.created_at_ms,
            updated_at_ms: a.updated_at_ms,
            database_id_hash: a.database_id_hash,
            home_region: a.home_region,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateAccountJson {
    /// Left out, one is made (`acct_…`).
    #[serde(default)]
    id: String,
    #[serde(default)]
    name: String,
    max_concurrency: Option<u32>,
    minutes_quota: Option<u64>,
    home_region: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UpdateAccountJson {
    name: Option<String>,
    max_concurrency: Option<u32>,
    minutes_quota: Option<u64>,
    home_region: Option<String>,
}

#[utoipa::path(
    post,
    operation_id = "admin_create_account",
    path = "/accounts",
    tag = "admin: accounts",
    request_body = CreateAccountJson,
    security(("admin_token" = [])),
    responses(
        (status = 201, description = "Created", body = AccountJson),
        super::Refusals,
    )
)]
pub(super) async fn create_account(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<impl IntoResponse> {
    let req: CreateAccountJson = read_json(&headers, body, MAX_BODY_BYTES).await?;
    let account = st
        .services
        .auth
        .create_account(crate::actor::request(pb::CreateAccountRequest {
            id: req.id,
            name: req.name,
            max_concurrency: req.max_concurrency,
            minutes_quota: req.minutes_quota,
            home_region: req.home_region,
        }))
        .await?
        .into_inner();
    Ok((StatusCode::CREATED, Json(AccountJson::from(account))))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct AccountList {
    accounts: Vec<AccountJson>,
}

#[utoipa::path(
    get,
    operation_id = "admin_list_accounts",
    path = "/accounts",
    tag = "admin: accounts",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Every account", body = AccountList),
        super::Refusals,
    )
)]
pub(super) async fn list_accounts(State(st): State<AppState>) -> ApiResult<Json<AccountList>> {
    let list = st
        .services
        .auth
        .list_accounts(crate::actor::request(pb::ListAccountsRequest {}))
        .await?
        .into_inner();
    let accounts = list.accounts.into_iter().map(AccountJson::from).collect();
    Ok(Json(AccountList { accounts }))
}

#[utoipa::path(
    get,
    operation_id = "admin_get_account",
    path = "/accounts/{id}",
    tag = "admin: accounts",
    params(("id" = String, Path, description = "The account")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The account", body = AccountJson),
        super::Refusals,
    )
)]
pub(super) async fn get_account(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<AccountJson>> {
    let account = st
        .services
        .auth
        .get_account(crate::actor::request(pb::GetAccountRequest { id }))
        .await?
        .into_inner();
    Ok(Json(account.into()))
}

#[utoipa::path(
    post,
    operation_id = "admin_rotate_database_id_hash",
    path = "/accounts/{id}/database-id-hash/rotate",
    tag = "admin: accounts",
    params(("id" = String, Path, description = "The account")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The account, with its new `database_id_hash`", body = AccountJson),
        super::Refusals,
    )
)]
pub(super) async fn rotate_database_id_hash(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<AccountJson>> {
    let account = st
        .services
        .auth
        .rotate_database_id_hash(crate::actor::request(pb::GetAccountRequest { id }))
        .await?
        .into_inner();
    Ok(Json(account.into()))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct DataKeyRotated {
    /// The key new personal data is sealed with from now on.
    data_key_id: String,
}

/// A new data key for the account's sealed personal data (the account must
/// exist: auth is asked first).
#[utoipa::path(
    post,
    operation_id = "admin_rotate_data_key",
    path = "/accounts/{id}/data-keys/rotate",
    tag = "admin: accounts",
    params(("id" = String, Path, description = "The account")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Rotated", body = DataKeyRotated),
        super::Refusals,
    )
)]
pub(super) async fn rotate_data_key(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<DataKeyRotated>> {
    st.services
        .auth
        .get_account(crate::actor::request(pb::GetAccountRequest {
            id: id.clone(),
        }))
        .await?;
    let info = st
        .services
        .session
        .rotate_data_key(crate::actor::request(
            lobby_proto::session::RotateDataKeyRequest { account_id: id },
        ))
        .await?
        .into_inner();
    Ok(Json(DataKeyRotated {
        data_key_id: info.key_id,
    }))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct AuditPage {
    /// Entries per page (0: the default, 50; at most 500).
    #[serde(default)]
    limit: u32,
    /// A previous page's `next`.
    #[serde(default)]
    before: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct AuditEntry {
    /// The entry's cursor.
    id: String,
    at_ms: i64,
    /// Who made the change (`admin`, an API key's prefix, …).
    who: String,
    /// What was done, e.g. `agent.update`.
    event: String,
    /// What it was done to.
    target: String,
    request_id: String,
    client_ip: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct AuditLog {
    entries: Vec<AuditEntry>,
    /// The `before` of the next page; null at the end.
    #[schema(required = true)]
    next: Option<String>,
}

/// An account's audit log, newest first: `{entries, next}`, where `next`
/// (when there is more) is the `before` of the next page.
#[utoipa::path(
    get,
    operation_id = "admin_account_audit",
    path = "/accounts/{id}/audit",
    tag = "admin: audit",
    params(("id" = String, Path, description = "The account"), AuditPage),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "A page of the log", body = AuditLog),
        super::Refusals,
    )
)]
pub(super) async fn account_audit(
    State(st): State<AppState>,
    Path(id): Path<String>,
    page: Result<Query<AuditPage>, QueryRejection>,
) -> ApiResult<Json<AuditLog>> {
    st.services
        .auth
        .get_account(crate::actor::request(pb::GetAccountRequest {
            id: id.clone(),
        }))
        .await?;
    audit_page(&st, id, page).await
}

/// The log of changes that belong to no account (signing-key rotations,
/// pool worker keys).
#[utoipa::path(
    get,
    operation_id = "admin_global_audit",
    path = "/audit",
    tag = "admin: audit",
    params(AuditPage),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "A page of the log", body = AuditLog),
        super::Refusals,
    )
)]
pub(super) async fn global_audit(
    State(st): State<AppState>,
    page: Result<Query<AuditPage>, QueryRejection>,
) -> ApiResult<Json<AuditLog>> {
    audit_page(&st, String::new(), page).await
}

async fn audit_page(
    st: &AppState,
    account_id: String,
    page: Result<Query<AuditPage>, QueryRejection>,
) -> ApiResult<Json<AuditLog>> {
    let Query(page) = page.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let r = st
        .services
        .session
        .list_audit(crate::actor::request(
            lobby_proto::session::ListAuditRequest {
                account_id,
                before: page.before,
                limit: page.limit,
            },
        ))
        .await?
        .into_inner();
    let entries = r
        .entries
        .into_iter()
        .map(|e| AuditEntry {
            id: e.id,
            at_ms: e.at_ms,
            who: e.who,
            event: e.event,
            target: e.target,
            request_id: e.request_id,
            client_ip: e.client_ip,
        })
        .collect();
    Ok(Json(AuditLog {
        entries,
        next: (!r.next.is_empty()).then_some(r.next),
    }))
}

#[utoipa::path(
    patch,
    operation_id = "admin_update_account",
    path = "/accounts/{id}",
    tag = "admin: accounts",
    params(("id" = String, Path, description = "The account")),
    request_body = UpdateAccountJson,
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The account, updated", body = AccountJson),
        super::Refusals,
    )
)]
pub(super) async fn update_account(
    State(st): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<AccountJson>> {
    let req: UpdateAccountJson = read_json(&headers, body, MAX_BODY_BYTES).await?;
    let account = st
        .services
        .auth
        .update_account(crate::actor::request(pb::UpdateAccountRequest {
            id,
            name: req.name,
            max_concurrency: req.max_concurrency,
            minutes_quota: req.minutes_quota,
            home_region: req.home_region,
        }))
        .await?
        .into_inner();
    Ok(Json(account.into()))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct Usage {
    account_id: String,
    /// Sessions holding a slot now.
    active_sessions: u64,
    minutes_quota: u64,
    used_seconds: u64,
    /// Held by running sessions until they end.
    reserved_seconds: u64,
    remaining_seconds: u64,
}

/// Sessions holding a slot, and minutes used, reserved and left.
#[utoipa::path(
    get,
    operation_id = "admin_account_usage",
    path = "/accounts/{id}/usage",
    tag = "admin: accounts",
    params(("id" = String, Path, description = "The account")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The account's usage", body = Usage),
        super::Refusals,
    )
)]
pub(super) async fn account_usage(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Usage>> {
    // 404 for an unknown account rather than a usage of zero.
    let account = st
        .services
        .auth
        .get_account(crate::actor::request(pb::GetAccountRequest {
            id: id.clone(),
        }))
        .await?
        .into_inner();
    let usage = st
        .services
        .session
        .get_account_usage(crate::actor::request(session::GetAccountUsageRequest {
            account_id: id,
        }))
        .await?
        .into_inner();
    let quota_seconds = account.minutes_quota.saturating_mul(60);
    let remaining = quota_seconds.saturating_sub(usage.used_seconds + usage.reserved_seconds);
    Ok(Json(Usage {
        account_id: usage.account_id,
        active_sessions: usage.active_sessions.into(),
        minutes_quota: account.minutes_quota,
        used_seconds: usage.used_seconds,
        reserved_seconds: usage.reserved_seconds,
        remaining_seconds: remaining,
    }))
}
