//! Seed 003, session artifacts: a session's status, transcript, audio (as a
//! signed URL) and summary, for the account whose API key calls.
//!
//! Addressing: `type=project` (with its `projectId`) names a session of one
//! of that project's agents; `type=instant` names a link session (seed
//! 002). The summary routes say instant with `instant_voice_links` and
//! may leave `projectId` out. A session that does not match, or is another
//! account's, is 404 `Session not found`: existence never leaks.
//!
//! Credentials: an account API key (`x-api-key` or `Authorization:
//! Bearer`), `sessions:read` for the GETs and `sessions:write` for
//! regenerate; a missing or bad key is 401, a missing scope 403. Errors are
//! `{"error": …}` with the seed's wording.

use crate::{credentials::require_api_key, error::ApiError, AppState};
use axum::{
    body::Body,
    extract::{RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use lobby_kit::ErrorCode;
use lobby_proto::{
    artifacts::{
        ArtifactKind, ArtifactRef, ReadArtifactRequest, SessionRef, SignUrlRequest, SummaryRequest,
    },
    auth::GetAgentRequest,
    session::{GetSessionRequest, Session, SessionKind, SessionStatus},
};
use serde_json::{json, Map, Value};

pub const STATUS_PATH: &str = "/v1/session/status";
pub const TRANSCRIPT_PATH: &str = "/v1/session/transcript";
pub const AUDIO_PATH: &str = "/v1/session/audio";
pub const SUMMARY_PATH: &str = "/v1/sessions/summary";
pub const REGENERATE_PATH: &str = "/v1/sessions/summary/regenerate";

const READ: &str = "sessions:read";
const WRITE: &str = "sessions:write";
const MAX_BODY_BYTES: usize = 16 * 1024;
/// The largest transcript served (what the artifacts service accepts).
const MAX_TRANSCRIPT_BYTES: u64 = 3 * 1024 * 1024;

const NO_SESSION_ID: &str = "sessionId is required";
const BAD_TYPE: &str = "type must be \"project\" or \"instant\"";
const NO_PROJECT_ID: &str = "projectId is required when type=project";
const NOT_FOUND: &str = "Session not found";

/// `{"error": text}` with `status`.
pub fn error(status: StatusCode, text: &str) -> Response {
    (status, Json(json!({ "error": text }))).into_response()
}

fn fail(e: ApiError) -> Response {
    super::Contract::Artifacts.render(e)
}

/// Why a request is refused before its answer is built.
#[derive(Debug)]
enum Refusal {
    /// In the seed's words.
    Said(StatusCode, &'static str),
    /// A service's error, mapped.
    Failed(ApiError),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Self::Said(status, text) => error(status, text),
            Self::Failed(e) => fail(e),
        }
    }
}

/// Which sessions a request may name.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Address {
    /// A session of an agent of this project (not a link session); `None`:
    /// of any agent (the summary routes, without `projectId`).
    Project(Option<String>),
    /// A link session.
    Instant,
}

/// The query's parameters; a repeated one counts once, first value wins.
fn params(raw: Option<&str>) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        out.entry(k.into_owned())
            .or_insert(Value::String(v.into_owned()));
    }
    out
}

fn text<'a>(p: &'a Map<String, Value>, name: &str) -> &'a str {
    p.get(name)
        .and_then(Value::as_str)
        .map(str::trim)
        .unwrap_or("")
}

/// The status, transcript and audio routes' parameters, checked in the
/// seed's order.
fn typed_address(p: &Map<String, Value>) -> Result<(String, Address), Refusal> {
    let session_id = text(p, "sessionId");
    if session_id.is_empty() {
        return Err(Refusal::Said(StatusCode::BAD_REQUEST, NO_SESSION_ID));
    }
    let address = match text(p, "type") {
        "project" => {
            let project = text(p, "projectId");
            if project.is_empty() {
                return Err(Refusal::Said(StatusCode::BAD_REQUEST, NO_PROJECT_ID));
            }
            Address::Project(Some(project.to_owned()))
        }
        "instant" => Address::Instant,
        _ => return Err(Refusal::Said(StatusCode::BAD_REQUEST, BAD_TYPE)),
    };
    Ok((session_id.to_owned(), address))
}

/// `instant_voice_links`: "1", "true" or "yes" (a JSON `true` in a body).
fn instant_flag(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => {
            matches!(s.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes")
        }
        Some(Value::Number(n)) => n.as_u64() == Some(1),
        _ => false,
    }
}

/// The summary routes' parameters (query or body).
fn summary_address(p: &Map<String, Value>) -> Result<(String, Address), Refusal> {
    let session_id = text(p, "sessionId");
    if session_id.is_empty() {
        return Err(Refusal::Said(StatusCode::BAD_REQUEST, NO_SESSION_ID));
    }
    let address = if instant_flag(p.get("instant_voice_links")) {
        Address::Instant
    } else {
        Address::Project(Some(text(p, "projectId").to_owned()).filter(|p| !p.is_empty()))
    };
    Ok((session_id.to_owned(), address))
}

/// The caller's session if `address` names it; 404 `Session not found`
/// for anything else, another account's session included.
async fn resolve(
    st: &AppState,
    account_id: &str,
    session_id: &str,
    address: &Address,
) -> Result<Session, Refusal> {
    let not_found = || Refusal::Said(StatusCode::NOT_FOUND, NOT_FOUND);
    let found = st
        .services
        .session
        .get_session(crate::actor::request(GetSessionRequest {
            session_id: session_id.to_owned(),
            account_id: account_id.to_owned(),
        }))
        .await;
    let session = match found {
        Ok(s) => s.into_inner(),
        Err(s) if lobby_kit::grpc::machine_code(&s) == Some(ErrorCode::SessionNotFound) => {
            return Err(not_found())
        }
        Err(s) => return Err(Refusal::Failed(s.into())),
    };
    let is_link = session.kind() == SessionKind::Link;
    match address {
        Address::Instant if is_link => Ok(session),
        Address::Project(None) if !is_link => Ok(session),
        Address::Project(Some(project)) if !is_link => {
            let agent = st
                .services
                .auth
                .get_agent(crate::actor::request(GetAgentRequest {
                    id: session.agent_id.clone(),
                }))
                .await;
            match agent {
                Ok(a)
                    if a.get_ref().project_id == *project
                        && a.get_ref().account_id == account_id =>
                {
                    Ok(session)
                }
                Ok(_) => Err(not_found()),
                Err(s) if lobby_kit::grpc::machine_code(&s) == Some(ErrorCode::AgentNotFound) => {
                    Err(not_found())
                }
                Err(s) => Err(Refusal::Failed(s.into())),
            }
        }
        _ => Err(not_found()),
    }
}

/// Authenticates, then resolves the session the query names.
async fn authorized(
    st: &AppState,
    headers: &HeaderMap,
    scope: &str,
    address: Result<(String, Address), Refusal>,
) -> Result<(String, Address, Session), Refusal> {
    let principal = require_api_key(st, headers, scope)
        .await
        .map_err(Refusal::Failed)?;
    let (session_id, address) = address?;
    let session = resolve(st, &principal.account_id, &session_id, &address).await?;
    Ok((session_id, address, session))
}

/// A time the record has (0: it has none, so the field is left out).
fn iso_time(ms: i64) -> Option<String> {
    (ms > 0).then(|| super::iso_time(ms))
}

fn status_name(s: SessionStatus) -> &'static str {
    match s {
        SessionStatus::Starting | SessionStatus::Unspecified => "starting",
        SessionStatus::Active => "active",
        SessionStatus::Ended => "ended",
        SessionStatus::Failed => "failed",
    }
}

fn artifact(session: &Session, kind: ArtifactKind) -> ArtifactRef {
    ArtifactRef {
        account_id: session.account_id.clone(),
        session_id: session.id.clone(),
        kind: kind as i32,
    }
}

fn is_missing(s: &tonic::Status) -> bool {
    // An id the store cannot hold (seed 004 allows a leading dot) has no
    // artifacts either.
    matches!(
        lobby_kit::grpc::machine_code(s),
        Some(ErrorCode::ArtifactNotFound | ErrorCode::InvalidRequest)
    )
}

fn no_transcript(session_id: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        &format!("conversation.json not found for session {session_id}"),
    )
}

/// The status, transcript and audio routes' caller and session.
async fn typed_session(
    st: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<(String, Address, Session), Refusal> {
    authorized(st, headers, READ, typed_address(&params(query))).await
}

pub async fn status(
    State(st): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let (session_id, address, s) = match typed_session(&st, &headers, query.as_deref()).await {
        Ok(found) => found,
        Err(r) => return r.into_response(),
    };
    let mut body = json!({
        "success": true,
        "sessionId": session_id,
        "type": if address == Address::Instant { "instant" } else { "project" },
        "status": status_name(s.status()),
        "agentId": s.agent_id,
    });
    if let Address::Project(Some(project)) = &address {
        body["projectId"] = json!(project);
    }
    if !s.room_url.is_empty() {
        body["wsUrl"] = json!(s.room_url);
    }
    // The record's last change: its start, its end, or who joined or left.
    let updated = [
        s.created_at_ms,
        s.started_at_ms,
        s.ended_at_ms,
        s.user_joined_at_ms,
        s.agent_joined_at_ms,
        s.alone_since_ms,
    ]
    .into_iter()
    .max()
    .unwrap_or(0);
    for (field, ms) in [
        ("createdAt", s.created_at_ms),
        ("updatedAt", updated),
        ("completedAt", s.ended_at_ms),
    ] {
        if let Some(t) = iso_time(ms) {
            body[field] = json!(t);
        }
    }
    Json(body).into_response()
}

/// The whole of a small artifact, read in the service's chunks.
async fn read_all(st: &AppState, a: &ArtifactRef, cap: u64) -> Result<Vec<u8>, tonic::Status> {
    let mut out = Vec::new();
    loop {
        let chunk = st
            .services
            .artifacts
            .read_artifact(crate::actor::request(ReadArtifactRequest {
                artifact: Some(a.clone()),
                offset: out.len() as u64,
                length: 0,
            }))
            .await?
            .into_inner();
        if chunk.total_size > cap {
            return Err(tonic::Status::failed_precondition(
                "the artifact is larger than served",
            ));
        }
        let done =
            chunk.data.is_empty() || out.len() as u64 + chunk.data.len() as u64 >= chunk.total_size;
        out.extend_from_slice(&chunk.data);
        if done {
            return Ok(out);
        }
    }
}

pub async fn transcript(
    State(st): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let (session_id, _, s) = match typed_session(&st, &headers, query.as_deref()).await {
        Ok(found) => found,
        Err(r) => return r.into_response(),
    };
    let raw = match read_all(
        &st,
        &artifact(&s, ArtifactKind::ConversationJson),
        MAX_TRANSCRIPT_BYTES,
    )
    .await
    {
        Ok(raw) => raw,
        Err(e) if is_missing(&e) => return no_transcript(&session_id),
        Err(e) => return fail(e.into()),
    };
    match serde_json::from_slice::<Value>(&raw) {
        Ok(transcript) => Json(json!({
            "success": true,
            "sessionId": session_id,
            "transcript": transcript,
        }))
        .into_response(),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("conversation.json for session {session_id} is not valid JSON: {e}"),
        ),
    }
}

pub async fn audio(
    State(st): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let (session_id, _, s) = match typed_session(&st, &headers, query.as_deref()).await {
        Ok(found) => found,
        Err(r) => return r.into_response(),
    };
    let signed = st
        .services
        .artifacts
        .sign_download_url(crate::actor::request(SignUrlRequest {
            artifact: Some(artifact(&s, ArtifactKind::ConversationWav)),
            ttl_seconds: 0,
        }))
        .await;
    match signed {
        Ok(url) => Json(json!({
            "success": true,
            "sessionId": session_id,
            "audioUrl": url.into_inner().url,
        }))
        .into_response(),
        Err(e) if is_missing(&e) => error(
            StatusCode::NOT_FOUND,
            &format!("Audio file not found for session {session_id}"),
        ),
        Err(e) => fail(e.into()),
    }
}

async fn summary_run(
    st: &AppState,
    headers: &HeaderMap,
    scope: &str,
    p: &Map<String, Value>,
    regenerate: bool,
) -> Response {
    let (session_id, _, s) = match authorized(st, headers, scope, summary_address(p)).await {
        Ok(found) => found,
        Err(r) => return r.into_response(),
    };
    let req = crate::actor::request(SummaryRequest {
        session: Some(SessionRef {
            account_id: s.account_id.clone(),
            session_id: s.id.clone(),
        }),
        duration_seconds: s.duration_seconds,
    });
    let artifacts = &st.services.artifacts;
    let state = if regenerate {
        artifacts.regenerate_summary(req).await
    } else {
        artifacts.get_summary(req).await
    };
    let state = match state {
        Ok(state) => state.into_inner(),
        Err(e) if is_missing(&e) => return no_transcript(&session_id),
        Err(e) => return fail(e.into()),
    };
    if state.ready {
        let summary: Value = serde_json::from_str(&state.summary_json).unwrap_or(Value::Null);
        return Json(json!({ "success": true, "sessionId": session_id, "summary": summary }))
            .into_response();
    }
    if state.failed {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!(
                "Summary generation failed after {} attempts: {} (POST {REGENERATE_PATH} tries again)",
                state.attempts, state.last_error
            ),
        );
    }
    let mut body = if regenerate {
        json!({ "success": true, "sessionId": session_id })
    } else {
        json!({ "success": false, "sessionId": session_id, "generating": true })
    };
    body["workflowId"] = json!(state.workflow_id);
    body["runId"] = json!(state.run_id);
    // A run that failed and waits for its retry says why.
    if !state.last_error.is_empty() {
        body["lastError"] = json!(state.last_error);
    }
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

pub async fn summary(
    State(st): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    summary_run(&st, &headers, READ, &params(query.as_deref()), false).await
}

pub async fn regenerate(State(st): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    // Authentication comes before reading what the body asks.
    if let Err(e) = require_api_key(&st, &headers, WRITE).await {
        return fail(e);
    }
    let bytes = match crate::json_body::read_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.message()),
    };
    let p: Map<String, Value> = if bytes.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return error(StatusCode::BAD_REQUEST, "the body must be a JSON object"),
            Err(e) => return error(StatusCode::BAD_REQUEST, &format!("invalid JSON body: {e}")),
        }
    };
    summary_run(&st, &headers, WRITE, &p, true).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_typed_routes_check_their_parameters_in_the_seeds_order() {
        let check = |q: &str| match typed_address(&params(Some(q))) {
            Ok((id, a)) => Ok((id, a)),
            Err(r) => Err(r.into_response().status()),
        };
        assert_eq!(check(""), Err(StatusCode::BAD_REQUEST));
        assert_eq!(check("type=nope"), Err(StatusCode::BAD_REQUEST));
        assert_eq!(check("sessionId=s1"), Err(StatusCode::BAD_REQUEST));
        assert_eq!(
            check("sessionId=s1&type=project"),
            Err(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            check("sessionId=s1&type=project&projectId=proj_1"),
            Ok(("s1".into(), Address::Project(Some("proj_1".into()))))
        );
        assert_eq!(
            check("sessionId=s1&type=instant"),
            Ok(("s1".into(), Address::Instant))
        );
        assert_eq!(
            check("sessionId=s1&sessionId=s2&type=instant"),
            Ok(("s1".into(), Address::Instant))
        );
    }

    #[test]
    fn instant_voice_links_takes_the_seeds_spellings() {
        for yes in ["1", "true", "yes", "TRUE"] {
            assert!(instant_flag(Some(&json!(yes))), "{yes}");
        }
        for no in ["0", "false", "no", ""] {
            assert!(!instant_flag(Some(&json!(no))), "{no}");
        }
        assert!(instant_flag(Some(&json!(true))));
        assert!(!instant_flag(None));
    }
}
