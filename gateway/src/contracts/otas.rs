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
use serde_json::{json, Value};

pub const CREATE_PATH: &str = "/api/agent/v1/session/create/";
pub const EVENTS_PATH: &str = "/api/agent/v1/session/events/";
pub const END_PATH: &str = "/api/agent/v1/session/end/";
pub const MESSAGES_PATH: &str = "/api/agent/v1/session/messages/";
/// Messages are bigger than events: a conversation's turns, in a batch.
const MAX_MESSAGES_BODY_BYTES: usize = 256 * 1024;
pub const AGENT_KEY_HEADER: &str = "x-otas-agent-key";
pub const SESSION_TOKEN_HEADER: &str = "X-OTAS-AGENT-SESSION-TOKEN";
const MAX_BODY_BYTES: usize = 32 * 1024;

fn ok(description: &str, response: Value) -> Response {
    Json(json!({ "status": 1, "status_description": description, "response": response }))
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

#[derive(Debug, Default, Deserialize)]
struct CreateBody {
    #[serde(default)]
    meta: Option<Value>,
}

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
            json!({ "Header_value": SESSION_TOKEN_HEADER, "jwt_token": jwt }),
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

#[derive(Debug, Default, Deserialize)]
struct EventBody {
    kind: String,
    #[serde(default)]
    payload: Value,
    /// Milliseconds since the epoch; the server's time when absent.
    #[serde(default)]
    timestamp: Option<i64>,
}

fn event_json(e: &SessionEvent) -> Value {
    json!({
        "seq": e.seq,
        "kind": e.kind,
        "payload": serde_json::from_str::<Value>(&e.payload_json).unwrap_or(Value::Null),
        "timestamp": e.timestamp_ms,
        "recorded_at": e.recorded_at_ms,
    })
}

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
        Ok(e) => (StatusCode::CREATED, ok("event_recorded", event_json(&e))).into_response(),
        Err(e) => fail(e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MessagesBody {
    /// A JSON array of messages (any shape: the records contract returns
    /// them as sent).
    #[serde(default)]
    messages: Vec<Box<serde_json::value::RawValue>>,
    #[serde(default)]
    prompt_tokens: u32,
    #[serde(default)]
    completion_tokens: u32,
}

/// The run's messages and token usage, for the records contract (seed 004)
/// to list: `{messages?, prompt_tokens?, completion_tokens?}` adds to them.
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
            json!({
                "session_id": session_id,
                "messages": t.messages,
                "prompt_tokens": t.prompt_tokens,
                "completion_tokens": t.completion_tokens,
            }),
        ),
        Err(e) => fail(e),
    }
}

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
            json!({ "session_id": session_id, "events": events.iter().map(event_json).collect::<Vec<_>>() }),
        ),
        Err(e) => fail(e),
    }
}

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
            json!({ "session_id": s.id, "status": "ended", "ended_at": s.ended_at_ms, "duration_seconds": s.duration_seconds }),
        ),
        Err(e) => fail(e),
    }
}
