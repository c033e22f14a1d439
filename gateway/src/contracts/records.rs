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
use serde::Deserialize;
use serde_json::{json, Value};

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

/// `{message, status}` with the same HTTP status.
fn message(status: StatusCode, text: &str) -> Response {
    (
        status,
        Json(json!({ "message": text, "status": status.as_u16() })),
    )
        .into_response()
}

fn bad_request(text: &str) -> Response {
    message(StatusCode::BAD_REQUEST, text)
}

fn fail(e: ApiError) -> Response {
    super::Contract::Records.render(e)
}

/// The seed's SessionDTO; times are ISO 8601 in UTC with milliseconds.
pub fn record_json(r: &SessionRecord) -> Value {
    json!({
        "id": r.id,
        "agentId": r.agent_id,
        "userName": r.user_name,
        "userEmail": r.user_email,
        "acceptTerms": r.accept_terms,
        "messages": r.messages,
        "promptTokens": r.prompt_tokens,
        "completionTokens": r.completion_tokens,
        "createdAt": iso_time(r.created_at_ms),
        "updatedAt": iso_time(r.updated_at_ms),
        "finalizedAt": (r.finalized_at_ms > 0).then(|| iso_time(r.finalized_at_ms)),
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateBody {
    agent_id: Option<String>,
    user_name: Option<String>,
    user_email: Option<String>,
    accept_terms: Option<String>,
    messages: Option<String>,
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
        Ok(if created {
            Json(json!({ "message": "Session created", "data": { "id": id }, "status": 200 }))
                .into_response()
        } else {
            // The seed's body for this case has no status key.
            Json(json!({ "message": "Session already exists", "data": { "id": id } }))
                .into_response()
        })
    })
    .await
}

/// `POST /api/exec/session` and `DELETE /api/session` with no id.
pub async fn no_id() -> Response {
    bad_request(NO_ID)
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListParams {
    #[serde(default)]
    id: String,
    #[serde(default)]
    agent_id: String,
}

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
        Ok(Json(records.iter().map(record_json).collect::<Vec<_>>()).into_response())
    })
    .await
}

/// The paginated query's parameters, read by hand so that each bad one
/// gets its own clear 400.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageParams {
    limit: Option<String>,
    offset: Option<String>,
    order_by: Option<String>,
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
        Ok(Json(json!({
            "rows": page.rows.iter().map(record_json).collect::<Vec<_>>(),
            "total": page.total,
            "limit": limit,
            "offset": offset,
            "orderBy": order_by,
            "query": query,
        }))
        .into_response())
    })
    .await
}

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
