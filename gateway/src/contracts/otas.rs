//! Seed 001 (OTAS agent sessions): an agent key mints a per-run session JWT;
//! the JWT then scopes that run's events and its end.
//!
//! Every answer uses the seed's envelope: `{status, status_description,
//! response}` on success, `{status: 0, status_description: <code>, message}`
//! on error.

use crate::{
    error::ApiError,
    json_body::{read_json, read_optional_json},
    AppState,
};
use axum::{
    body::Body,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use lobby_proto::{
    auth::{AuthorizeAgentRunRequest, SessionTokenClaims, VerifySessionTokenRequest},
    session::{
        AppendEventRequest, AppendMessagesRequest, EndSessionRequest, ListEventsRequest,
        SessionEvent, StartAgentRunRequest,
    },
};
use serde::Deserialize;
use serde_json::Value;

pub const CREATE_PATH: &str = "/api/agent/v1/session/create/";
pub const EVENTS_PATH: &str = "/api/agent/v1/session/events/";
pub const END_PATH: &str = "/api/agent/v1/session/end/";
pub const MESSAGES_PATH: &str = "/api/agent/v1/session/messages/";
/// Messages are bigger than events: a conversation's turns, in a batch.
const MAX_MESSAGES_BODY_BYTES: usize = 256 * 1024;
pub const AGENT_KEY_HEADER: &str = "x-otas-agent-key";
pub const SESSION_TOKEN_HEADER: &str = "X-OTAS-AGENT-SESSION-TOKEN";
const MAX_BODY_BYTES: usize = 32 * 1024;

/// Seed 001's envelope of a success.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Answer<T> {
    /// 1.
    status: u8,
    /// What was done, e.g. `agent_session_created`.
    status_description: String,
    response: T,
}

/// Seed 001's error body.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct OtasError {
    /// 0.
    status: u8,
    /// The machine code, e.g. `key_invalid`, `session_ended`.
    status_description: String,
    message: String,
}

impl OtasError {
    pub fn of(e: &ApiError) -> Self {
        Self {
            status: 0,
            status_description: e.code().to_owned(),
            message: e.message().to_owned(),
        }
    }
}

/// What every seed-001 operation can answer instead, in its envelope.
#[derive(utoipa::IntoResponses)]
pub enum Refusals {
    #[response(status = 400, description = "Malformed body (`invalid_request`)")]
    BadRequest(OtasError),
    #[response(
        status = 401,
        description = "A missing, invalid or expired credential (`key_invalid`, `token_invalid`, `token_expired`)"
    )]
    Unauthorized(OtasError),
    #[response(
        status = 403,
        description = "The key is revoked or paused, the agent unpublished, or the run over (`session_ended`)"
    )]
    Forbidden(OtasError),
    #[response(status = 404, description = "No such run or agent")]
    NotFound(OtasError),
    #[response(status = 409, description = "The run's event or message log is full")]
    Conflict(OtasError),
    #[response(
        status = 429,
        description = "A rate or open-runs limit; `Retry-After` says when"
    )]
    TooMany(OtasError),
    #[response(status = 500, description = "An internal error")]
    Internal(OtasError),
    #[response(status = 502, description = "A service is unreachable")]
    BadGateway(OtasError),
    #[response(status = 503, description = "The store is unavailable")]
    Unavailable(OtasError),
    #[response(status = 504, description = "No answer within the request deadline")]
    Timeout(OtasError),
}

/// A new run's session JWT, and the header that carries it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RunToken {
    #[serde(rename = "Header_value")]
    header_value: String,
    jwt_token: String,
}

/// One event of a run, as recorded.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Event {
    seq: u64,
    kind: String,
    /// The payload as sent (any JSON).
    #[schema(value_type = Object)]
    payload: Value,
    /// When it happened (the sender's ms, or the server's).
    timestamp: i64,
    recorded_at: i64,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Events {
    session_id: String,
    events: Vec<Event>,
}

/// The run's totals after an append.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct MessageTotals {
    session_id: String,
    messages: u64,
    prompt_tokens: u64,
    completion_tokens: u64,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RunEnded {
    session_id: String,
    /// `ended`.
    status: String,
    ended_at: i64,
    duration_seconds: u64,
}

fn ok<T: serde::Serialize>(description: &str, response: T) -> Response {
    Json(Answer {
        status: 1,
        status_description: description.to_owned(),
        response,
    })
    .into_response()
}

fn fail(e: ApiError) -> Response {
    super::Contract::Otas.render(e)
}

fn header_value<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct CreateBody {
    /// Anything the caller wants kept with the run (a JSON object).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    meta: Option<Value>,
}

/// Starts a run of the agent whose key is presented: its session JWT.
#[utoipa::path(
    post,
    operation_id = "seed001_create",
    path = CREATE_PATH,
    tag = "seed 001: agent runs",
    request_body(content = Option<CreateBody>, description = "Optional"),
    params(("x-otas-agent-key" = String, Header, description = "The agent's key")),
    responses(
        (status = 200, description = "Created", body = Answer<RunToken>),
        Refusals,
    )
)]
pub async fn create(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let result = async {
        let body: CreateBody = read_optional_json(&headers, body, MAX_BODY_BYTES).await?;
        let meta = match body.meta {
            None | Some(Value::Null) => "{}".to_owned(),
            Some(m @ Value::Object(_)) => m.to_string(),
            Some(_) => return Err(ApiError::bad_request("meta must be a JSON object")),
        };
        // Auth checks the key and grants the run (its id and JWT); session
        // records it.
        let grant = state
            .services
            .auth
            .authorize_agent_run(crate::actor::request(AuthorizeAgentRunRequest {
                key: header_value(&headers, AGENT_KEY_HEADER).to_owned(),
            }))
            .await?
            .into_inner();
        // Runs count against the agent's rate like any other start.
        let agent_id = grant
            .principal
            .as_ref()
            .map(|p| p.agent_id.as_str())
            .unwrap_or_default();
        crate::edge::limit_agent(&state, agent_id)?;
        state
            .services
            .session
            .start_agent_run(crate::actor::request(StartAgentRunRequest {
                principal: grant.principal,
                session_id: grant.session_id,
                meta_json: meta,
            }))
            .await?;
        Ok::<_, ApiError>(grant.jwt)
    }
    .await;
    match result {
        Ok(jwt) => ok(
            "agent_session_created",
            RunToken {
                header_value: SESSION_TOKEN_HEADER.to_owned(),
                jwt_token: jwt,
            },
        ),
        Err(e) => fail(e),
    }
}

async fn claims(state: &AppState, headers: &HeaderMap) -> Result<SessionTokenClaims, ApiError> {
    Ok(state
        .services
        .auth
        .verify_session_token(crate::actor::request(VerifySessionTokenRequest {
            jwt: header_value(headers, SESSION_TOKEN_HEADER).to_owned(),
        }))
        .await?
        .into_inner())
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct EventBody {
    kind: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    payload: Value,
    /// Milliseconds since the epoch; the server's time when absent.
    #[serde(default)]
    timestamp: Option<i64>,
}

fn event_of(e: &SessionEvent) -> Event {
    Event {
        seq: e.seq,
        kind: e.kind.clone(),
        payload: serde_json::from_str::<Value>(&e.payload_json).unwrap_or(Value::Null),
        timestamp: e.timestamp_ms,
        recorded_at: e.recorded_at_ms,
    }
}

/// Records an event of the run the session JWT names.
#[utoipa::path(
    post,
    operation_id = "seed001_append_event",
    path = EVENTS_PATH,
    tag = "seed 001: agent runs",
    request_body = EventBody,
    params(("X-OTAS-AGENT-SESSION-TOKEN" = String, Header, description = "The run's session JWT")),
    responses(
        (status = 201, description = "Recorded", body = Answer<Event>),
        Refusals,
    )
)]
pub async fn append_event(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let claims = claims(&state, &headers).await?;
        let event: EventBody = read_json(&headers, body, MAX_BODY_BYTES).await?;
        if event.timestamp.is_some_and(|t| t <= 0) {
            return Err(ApiError::bad_request(
                "timestamp must be milliseconds since the Unix epoch",
            ));
        }
        let stored = state
            .services
            .session
            .append_event(crate::actor::request(AppendEventRequest {
                session_id: claims.session_id,
                agent_id: claims.agent_id,
                account_id: claims.account_id,
                kind: event.kind,
                payload_json: event.payload.to_string(),
                timestamp_ms: event.timestamp.unwrap_or(0),
            }))
            .await?
            .into_inner();
        Ok::<_, ApiError>(stored)
    }
    .await;
    match result {
        Ok(e) => (StatusCode::CREATED, ok("event_recorded", event_of(&e))).into_response(),
        Err(e) => fail(e),
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessagesBody {
    /// A JSON array of messages (any shape: the records contract returns
    /// them as sent).
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    messages: Vec<Box<serde_json::value::RawValue>>,
    #[serde(default)]
    prompt_tokens: u32,
    #[serde(default)]
    completion_tokens: u32,
}

/// The run's messages and token usage, for the records contract (seed 004)
/// to list: `{messages?, prompt_tokens?, completion_tokens?}` adds to them.
#[utoipa::path(
    post,
    operation_id = "seed001_append_messages",
    path = MESSAGES_PATH,
    tag = "seed 001: agent runs",
    request_body = MessagesBody,
    params(("X-OTAS-AGENT-SESSION-TOKEN" = String, Header, description = "The run's session JWT")),
    responses(
        (status = 200, description = "Appended: the run's totals", body = Answer<MessageTotals>),
        Refusals,
    )
)]
pub async fn append_messages(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let claims = claims(&state, &headers).await?;
        let added: MessagesBody = read_json(&headers, body, MAX_MESSAGES_BODY_BYTES).await?;
        let texts: Vec<&str> = added.messages.iter().map(|m| m.get()).collect();
        let totals = state
            .services
            .session
            .append_messages(crate::actor::request(AppendMessagesRequest {
                account_id: claims.account_id,
                session_id: claims.session_id.clone(),
                agent_id: claims.agent_id,
                messages_json: format!("[{}]", texts.join(",")),
                prompt_tokens: added.prompt_tokens,
                completion_tokens: added.completion_tokens,
            }))
            .await?
            .into_inner();
        Ok::<_, ApiError>((claims.session_id, totals))
    }
    .await;
    match result {
        Ok((session_id, t)) => ok(
            "agent_session_messages_appended",
            MessageTotals {
                session_id,
                messages: t.messages,
                prompt_tokens: t.prompt_tokens,
                completion_tokens: t.completion_tokens,
            },
        ),
        Err(e) => fail(e),
    }
}

/// The run's events, in order.
#[utoipa::path(
    get,
    operation_id = "seed001_list_events",
    path = EVENTS_PATH,
    tag = "seed 001: agent runs",
    params(("X-OTAS-AGENT-SESSION-TOKEN" = String, Header, description = "The run's session JWT")),
    responses(
        (status = 200, description = "Listed", body = Answer<Events>),
        Refusals,
    )
)]
pub async fn list_events(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let result = async {
        let claims = claims(&state, &headers).await?;
        let session_id = claims.session_id.clone();
        let list = state
            .services
            .session
            .list_events(crate::actor::request(ListEventsRequest {
                session_id: claims.session_id,
                agent_id: claims.agent_id,
                account_id: claims.account_id,
            }))
            .await?
            .into_inner();
        Ok::<_, ApiError>((session_id, list.events))
    }
    .await;
    match result {
        Ok((session_id, events)) => ok(
            "events_listed",
            Events {
                session_id,
                events: events.iter().map(event_of).collect(),
            },
        ),
        Err(e) => fail(e),
    }
}

/// Ends the run the session JWT names.
#[utoipa::path(
    post,
    operation_id = "seed001_end",
    path = END_PATH,
    tag = "seed 001: agent runs",
    params(("X-OTAS-AGENT-SESSION-TOKEN" = String, Header, description = "The run's session JWT")),
    responses(
        (status = 200, description = "Ended", body = Answer<RunEnded>),
        Refusals,
    )
)]
pub async fn end(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let result = async {
        let claims = claims(&state, &headers).await?;
        // Session checks, atomically with the end, that the token's agent
        // owns the run and that it is still live.
        let ended = state
            .services
            .session
            .end_session(crate::actor::request(EndSessionRequest {
                session_id: claims.session_id,
                reason: String::new(),
                as_agent_id: claims.agent_id,
                as_account_id: claims.account_id,
            }))
            .await?
            .into_inner();
        Ok::<_, ApiError>(ended)
    }
    .await;
    match result {
        Ok(s) => ok(
            "agent_session_ended",
            RunEnded {
                session_id: s.id,
                status: "ended".to_owned(),
                ended_at: s.ended_at_ms,
                duration_seconds: s.duration_seconds,
            },
        ),
        Err(e) => fail(e),
    }
}
