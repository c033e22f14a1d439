//! Seed 004, the records contract: an account's session records created
//! (or got), listed, searched, paginated and deleted.
//!
//! Every call needs an account API key (`Authorization: Bearer`) and the
//! `database-id-hash` of that key's account; `sessions:read` for the GETs,
//! `sessions:write` for POST and DELETE. Errors are `{message, status}`,
//! with the seed's own wording where it has one; server errors are its 499.
//! A key never reaches another account's records: the account comes from
//! the key, never from the request.

use super::iso_time;
use crate::{credentials::require_api_key_for_database, error::ApiError, AppState};
use axum::{
    body::Body,
    extract::{rejection::QueryRejection, Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use lobby_kit::ErrorCode;
use lobby_proto::{
    auth::GetAgentRequest,
    session::{
        CreateRecordRequest, DeleteRecordRequest, ListRecordsRequest, QueryRecordsRequest,
        SessionRecord,
    },
};
use serde::{Deserialize, Serialize};

pub const CREATE_PATH: &str = "/api/exec/session/{id}";
pub const LIST_PATH: &str = "/api/session";
pub const DELETE_PATH: &str = "/api/session/{id}";
pub const AGENT_PATH: &str = "/api/agent/{agent_id}/session";
const MAX_BODY_BYTES: usize = 512 * 1024;
const READ: &str = "sessions:read";
const WRITE: &str = "sessions:write";

const NO_ID: &str = "Invalid request, no id provided within request url";
const MISSING_FIELDS: &str = "Invalid request, missing required fields";
const BAD_QUERY: &str = "Invalid request, bad query parameters";

/// Seed 004's `{message, status}`: its errors, and a deletion's answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RecordsMessage {
    message: String,
    /// The HTTP status again (499 for a server error).
    status: u16,
}

impl RecordsMessage {
    pub fn of(status: StatusCode, text: &str) -> Self {
        Self {
            message: text.to_owned(),
            status: status.as_u16(),
        }
    }
}

/// `{message, status}` with the same HTTP status.
fn message(status: StatusCode, text: &str) -> Response {
    (status, Json(RecordsMessage::of(status, text))).into_response()
}

/// What every seed-004 operation can answer instead.
#[derive(utoipa::IntoResponses)]
pub enum Refusals {
    #[response(
        status = 400,
        description = "A missing id, missing fields or a bad query parameter, in the seed's words"
    )]
    BadRequest(RecordsMessage),
    #[response(status = 401, description = "A missing or invalid API key")]
    Unauthorized(RecordsMessage),
    #[response(
        status = 403,
        description = "The key is revoked or paused, lacks the route's scope, or the `database-id-hash` is not its account's"
    )]
    Forbidden(RecordsMessage),
    #[response(status = 429, description = "A rate limit; `Retry-After` says when")]
    TooMany(RecordsMessage),
    #[response(
        status = 499,
        description = "A server error (the seed's status for one)"
    )]
    ServerError(RecordsMessage),
    #[response(
        status = 503,
        description = "The store is unavailable for a moment (a Redis failover): retry after `Retry-After` seconds"
    )]
    Unavailable(RecordsMessage),
}

/// The paths that name no record: always 400.
#[derive(utoipa::IntoResponses)]
pub enum NoId {
    #[response(
        status = 400,
        description = "`Invalid request, no id provided within request url`"
    )]
    BadRequest(RecordsMessage),
}

fn bad_request(text: &str) -> Response {
    message(StatusCode::BAD_REQUEST, text)
}

fn fail(e: ApiError) -> Response {
    super::Contract::Records.render(e)
}

/// The seed's SessionDTO; times are ISO 8601 in UTC with milliseconds.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    id: String,
    agent_id: String,
    #[schema(required = true)]
    user_name: Option<String>,
    #[schema(required = true)]
    user_email: Option<String>,
    /// `"true"` or `"false"`.
    #[schema(required = true)]
    accept_terms: Option<String>,
    /// The conversation as one JSON array text.
    #[schema(required = true)]
    messages: Option<String>,
    #[schema(required = true)]
    prompt_tokens: Option<i64>,
    #[schema(required = true)]
    completion_tokens: Option<i64>,
    created_at: String,
    updated_at: String,
    /// Set once the session is over.
    #[schema(required = true)]
    finalized_at: Option<String>,
}

impl From<&SessionRecord> for Record {
    fn from(r: &SessionRecord) -> Self {
        Self {
            id: r.id.clone(),
            agent_id: r.agent_id.clone(),
            user_name: r.user_name.clone(),
            user_email: r.user_email.clone(),
            accept_terms: r.accept_terms.clone(),
            messages: r.messages.clone(),
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            created_at: iso_time(r.created_at_ms),
            updated_at: iso_time(r.updated_at_ms),
            finalized_at: (r.finalized_at_ms > 0).then(|| iso_time(r.finalized_at_ms)),
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateBody {
    /// One of the key's account's agents.
    #[schema(required = true, nullable = false, min_length = 1)]
    agent_id: Option<String>,
    #[schema(required = true, nullable = false, min_length = 1)]
    user_name: Option<String>,
    #[schema(required = true, nullable = false, min_length = 1)]
    user_email: Option<String>,
    /// `"true"` or `"false"`.
    accept_terms: Option<String>,
    /// The conversation as one JSON array text.
    messages: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RecordId {
    id: String,
}

/// A create's answer: `Session created` (with `status`) or `Session
/// already exists` (without, as the seed has it).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RecordCreated {
    message: String,
    data: RecordId,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
}

/// One page of an agent's records.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordPage {
    rows: Vec<Record>,
    /// How many match, over all pages.
    total: u64,
    limit: u32,
    offset: u32,
    order_by: String,
    query: String,
}

fn required(v: &Option<String>) -> bool {
    v.as_deref().is_some_and(|s| !s.trim().is_empty())
}

/// A handler's answer: its errors in the contract's envelope.
async fn answer(
    handled: impl std::future::Future<Output = Result<Response, ApiError>>,
) -> Response {
    handled.await.unwrap_or_else(fail)
}

const NOT_THIS_ACCOUNTS_AGENT: &str = "Invalid request, agentId names no agent of this account";

/// Creates a session record, or gets the one with that id.
#[utoipa::path(
    post,
    operation_id = "seed004_create",
    path = CREATE_PATH,
    tag = "seed 004: records",
    params(("id" = String, Path, description = "The record's id")),
    request_body = CreateBody,
    security(
        ("records_key" = [], "database_id_hash" = []),
        ("api_key" = [], "database_id_hash" = []),
    ),
    responses(
        (status = 200, description = "Created, or already there", body = RecordCreated),
        Refusals,
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    answer(async {
        let principal = require_api_key_for_database(&state, &headers, WRITE).await?;
        if id.trim().is_empty() {
            return Ok(bad_request(NO_ID));
        }
        let bytes = crate::json_body::read_bytes(body, MAX_BODY_BYTES).await?;
        let Ok(req) = serde_json::from_slice::<CreateBody>(&bytes) else {
            return Ok(bad_request(MISSING_FIELDS));
        };
        if !(required(&req.agent_id) && required(&req.user_name) && required(&req.user_email)) {
            return Ok(bad_request(MISSING_FIELDS));
        }
        let agent_id = req.agent_id.unwrap_or_default();
        // The agent must be the key's account's: a record never points across.
        let agent = state
            .services
            .auth
            .get_agent(crate::actor::request(GetAgentRequest {
                id: agent_id.clone(),
            }))
            .await
            .map_err(ApiError::from);
        match agent {
            Ok(a) if a.get_ref().account_id == principal.account_id => {}
            Ok(_) => return Ok(bad_request(NOT_THIS_ACCOUNTS_AGENT)),
            Err(e) if e.code() == ErrorCode::AgentNotFound.as_str() => {
                return Ok(bad_request(NOT_THIS_ACCOUNTS_AGENT))
            }
            Err(e) => return Err(e),
        }
        let created = state
            .services
            .session
            .create_record(crate::actor::request(CreateRecordRequest {
                account_id: principal.account_id,
                id: id.clone(),
                agent_id,
                user_name: req.user_name,
                user_email: req.user_email,
                accept_terms: req.accept_terms,
                messages: req.messages,
            }))
            .await?
            .into_inner()
            .created;
        let answer = if created {
            RecordCreated {
                message: "Session created".to_owned(),
                data: RecordId { id },
                status: Some(200),
            }
        } else {
            // The seed's body for this case has no status key.
            RecordCreated {
                message: "Session already exists".to_owned(),
                data: RecordId { id },
                status: None,
            }
        };
        Ok(Json(answer).into_response())
    })
    .await
}

/// `POST /api/exec/session` and `DELETE /api/session` with no id.
#[utoipa::path(
    post,
    operation_id = "seed004_no_id",
    path = "/api/exec/session",
    tag = "seed 004: records",
    responses(NoId)
)]
pub async fn no_id() -> Response {
    bad_request(NO_ID)
}

/// `DELETE /api/session`: the same 400, documented on its own path.
#[utoipa::path(
    delete,
    operation_id = "seed004_delete_without_id",
    path = LIST_PATH,
    tag = "seed 004: records",
    responses(NoId)
)]
pub async fn delete_without_id() -> Response {
    bad_request(NO_ID)
}

/// `POST /api/exec/session/`: the same 400.
#[utoipa::path(
    post,
    operation_id = "seed004_no_id_slash",
    path = "/api/exec/session/",
    tag = "seed 004: records",
    responses(NoId)
)]
pub async fn no_id_slash() -> Response {
    bad_request(NO_ID)
}

/// `DELETE /api/session/`: the same 400.
#[utoipa::path(
    delete,
    operation_id = "seed004_delete_without_id_slash",
    path = "/api/session/",
    tag = "seed 004: records",
    responses(NoId)
)]
pub async fn delete_without_id_slash() -> Response {
    bad_request(NO_ID)
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only the record with this id.
    #[serde(default)]
    id: String,
    /// Only this agent's records.
    #[serde(default)]
    agent_id: String,
}

/// The key's account's session records.
#[utoipa::path(
    get,
    operation_id = "seed004_list",
    path = LIST_PATH,
    tag = "seed 004: records",
    params(ListParams),
    security(
        ("records_key" = [], "database_id_hash" = []),
        ("api_key" = [], "database_id_hash" = []),
    ),
    responses(
        (status = 200, description = "The records", body = Vec<Record>),
        Refusals,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Response {
    answer(async {
        let principal = require_api_key_for_database(&state, &headers, READ).await?;
        let Ok(Query(params)) = params else {
            return Ok(bad_request(BAD_QUERY));
        };
        let records = state
            .services
            .session
            .list_records(crate::actor::request(ListRecordsRequest {
                account_id: principal.account_id,
                id: params.id,
                agent_id: params.agent_id,
            }))
            .await?
            .into_inner()
            .records;
        Ok(Json(records.iter().map(Record::from).collect::<Vec<_>>()).into_response())
    })
    .await
}

/// The paginated query's parameters, read by hand so that each bad one
/// gets its own clear 400.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// 1 to 100; 10 when left out.
    #[param(value_type = Option<u32>)]
    limit: Option<String>,
    /// From 0.
    #[param(value_type = Option<u32>)]
    offset: Option<String>,
    /// `userName`, `userEmail`, `createdAt` or `updatedAt` (the default).
    order_by: Option<String>,
    /// Text to find in the user's name or email.
    query: Option<String>,
}

/// `limit`, `offset` and `orderBy`, or why they are refused.
fn page_window(params: &PageParams) -> Result<(u32, u32, String), &'static str> {
    let number = |v: &Option<String>, default: u32| -> Option<u32> {
        match v.as_deref().map(str::trim) {
            None | Some("") => Some(default),
            Some(text) => text.parse().ok(),
        }
    };
    let limit = number(&params.limit, 10)
        .filter(|n| (1..=100).contains(n))
        .ok_or("limit must be a whole number between 1 and 100")?;
    let offset = number(&params.offset, 0).ok_or("offset must be a whole number from 0")?;
    let order_by = match params.order_by.as_deref().unwrap_or("") {
        "" => "updatedAt",
        o @ ("userName" | "userEmail" | "createdAt" | "updatedAt") => o,
        _ => return Err("orderBy must be one of userName, userEmail, createdAt, updatedAt"),
    };
    Ok((limit, offset, order_by.to_owned()))
}

/// One page of an agent's records, searched and ordered.
#[utoipa::path(
    get,
    operation_id = "seed004_query",
    path = AGENT_PATH,
    tag = "seed 004: records",
    params(("agent_id" = String, Path, description = "The agent"), PageParams),
    security(
        ("records_key" = [], "database_id_hash" = []),
        ("api_key" = [], "database_id_hash" = []),
    ),
    responses(
        (status = 200, description = "The page", body = RecordPage),
        Refusals,
    )
)]
pub async fn query(
    State(state): State<AppState>,
    Path(agent_id): Path<String>,
    headers: HeaderMap,
    params: Result<Query<PageParams>, QueryRejection>,
) -> Response {
    answer(async {
        let principal = require_api_key_for_database(&state, &headers, READ).await?;
        let Ok(Query(params)) = params else {
            return Ok(bad_request(BAD_QUERY));
        };
        let (limit, offset, order_by) = match page_window(&params) {
            Ok(w) => w,
            Err(reason) => return Ok(bad_request(&format!("Invalid request, {reason}"))),
        };
        let query = params.query.unwrap_or_default();
        let page = state
            .services
            .session
            .query_records(crate::actor::request(QueryRecordsRequest {
                account_id: principal.account_id,
                agent_id,
                limit,
                offset,
                order_by: order_by.clone(),
                query: query.clone(),
            }))
            .await?
            .into_inner();
        Ok(Json(RecordPage {
            rows: page.rows.iter().map(Record::from).collect(),
            total: page.total,
            limit,
            offset,
            order_by,
            query,
        })
        .into_response())
    })
    .await
}

/// Deletes a session record.
#[utoipa::path(
    delete,
    operation_id = "seed004_delete",
    path = DELETE_PATH,
    tag = "seed 004: records",
    params(("id" = String, Path, description = "The record's id")),
    security(
        ("records_key" = [], "database_id_hash" = []),
        ("api_key" = [], "database_id_hash" = []),
    ),
    responses(
        (status = 200, description = "`Data deleted successfully!`", body = RecordsMessage),
        Refusals,
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    answer(async {
        let principal = require_api_key_for_database(&state, &headers, WRITE).await?;
        if id.trim().is_empty() {
            return Ok(bad_request(NO_ID));
        }
        let deleted = state
            .services
            .session
            .delete_record(crate::actor::request(DeleteRecordRequest {
                account_id: principal.account_id,
                id,
            }))
            .await?
            .into_inner()
            .deleted;
        Ok(if deleted {
            message(StatusCode::OK, "Data deleted successfully!")
        } else {
            bad_request("Data not found!")
        })
    })
    .await
}
