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
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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

/// Seed 003's error body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ArtifactsError {
    /// In the seed's words, e.g. `Session not found`.
    error: String,
}

impl ArtifactsError {
    pub fn of(text: &str) -> Self {
        Self {
            error: text.to_owned(),
        }
    }
}

/// `{"error": text}` with `status`.
pub fn error(status: StatusCode, text: &str) -> Response {
    (status, Json(ArtifactsError::of(text))).into_response()
}

/// Which sessions the status, transcript and audio routes name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AddressType {
    /// A session of one of the project's agents.
    Project,
    /// A link session (seed 002).
    Instant,
}

/// The status, transcript and audio routes' query, as documented; the
/// handlers read it by hand to refuse its faults in the seed's order.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct TypedQuery {
    #[serde(rename = "sessionId")]
    #[param(min_length = 1)]
    session_id: String,
    #[serde(rename = "type")]
    kind: AddressType,
    /// Required when `type=project`.
    #[serde(rename = "projectId")]
    project_id: Option<String>,
}

/// The summary's query, as documented.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct SummaryQuery {
    #[serde(rename = "sessionId")]
    #[param(min_length = 1)]
    session_id: String,
    /// For a project session; left out, any agent of the account's.
    #[serde(rename = "projectId")]
    project_id: Option<String>,
    /// `1`, `true` or `yes` for a link session.
    instant_voice_links: Option<String>,
}

/// The regeneration's body, as documented.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct RegenerateBody {
    #[serde(rename = "sessionId")]
    #[schema(min_length = 1)]
    session_id: String,
    #[serde(rename = "projectId")]
    project_id: Option<String>,
    /// For a link session: `true`, or `"1"`, `"true"`, `"yes"`.
    instant_voice_links: Option<Value>,
}

/// Where a session stands, for its owner.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionState {
    success: bool,
    session_id: String,
    #[serde(rename = "type")]
    kind: AddressType,
    #[serde(skip_serializing_if = "Option::is_none")]
    project_id: Option<String>,
    /// `starting`, `active`, `ended` or `failed`.
    status: String,
    agent_id: String,
    /// The room's URL, once there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    ws_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_at: Option<String>,
    /// The record's last change: its start, its end, or who joined or left.
    #[serde(skip_serializing_if = "Option::is_none")]
    updated_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    completed_at: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Transcript {
    success: bool,
    session_id: String,
    /// `conversation.json` as the worker wrote it (any JSON).
    transcript: Value,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AudioUrl {
    success: bool,
    session_id: String,
    /// A signed URL to `conversation.wav`, valid about an hour.
    audio_url: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    success: bool,
    session_id: String,
    /// The generated summary (any JSON).
    summary: Value,
}

/// A summary being generated.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SummaryRun {
    /// `false` from the GET (no summary yet), `true` from the regeneration.
    success: bool,
    session_id: String,
    /// `true` from the GET.
    #[serde(skip_serializing_if = "Option::is_none")]
    generating: Option<bool>,
    workflow_id: String,
    run_id: String,
    /// Why the last attempt failed, while the run waits for its retry.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
}

/// What every seed-003 operation can answer instead.
#[derive(utoipa::IntoResponses)]
pub enum Refusals {
    #[response(
        status = 400,
        description = "A missing or malformed parameter, e.g. `sessionId is required`"
    )]
    BadRequest(ArtifactsError),
    #[response(
        status = 401,
        description = "A missing, invalid, revoked or paused API key"
    )]
    Unauthorized(ArtifactsError),
    #[response(status = 403, description = "The key lacks the route's scope")]
    Forbidden(ArtifactsError),
    #[response(
        status = 404,
        description = "No such session of the caller's (`Session not found`), or not that artifact"
    )]
    NotFound(ArtifactsError),
    #[response(status = 429, description = "A rate limit; `Retry-After` says when")]
    TooMany(ArtifactsError),
    #[response(
        status = 500,
        description = "The artifact is unreadable, the summary failed, or an internal error"
    )]
    Internal(ArtifactsError),
    #[response(status = 502, description = "A service is unreachable")]
    BadGateway(ArtifactsError),
    #[response(status = 503, description = "A store is unavailable")]
    Unavailable(ArtifactsError),
    #[response(status = 504, description = "No answer within the request deadline")]
    Timeout(ArtifactsError),
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

/// A session's status.
#[utoipa::path(
    get,
    operation_id = "seed003_status",
    path = STATUS_PATH,
    tag = "seed 003: artifacts",
    params(TypedQuery),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The session's status", body = SessionState),
        Refusals,
    )
)]
pub async fn status(
    State(st): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let (session_id, address, s) = match typed_session(&st, &headers, query.as_deref()).await {
        Ok(found) => found,
        Err(r) => return r.into_response(),
    };
    let project_id = match &address {
        Address::Project(project) => project.clone(),
        Address::Instant => None,
    };
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
    Json(SessionState {
        success: true,
        session_id,
        kind: if address == Address::Instant {
            AddressType::Instant
        } else {
            AddressType::Project
        },
        project_id,
        status: status_name(s.status()).to_owned(),
        agent_id: s.agent_id.clone(),
        ws_url: Some(s.room_url.clone()).filter(|u| !u.is_empty()),
        created_at: iso_time(s.created_at_ms),
        updated_at: iso_time(updated),
        completed_at: iso_time(s.ended_at_ms),
    })
    .into_response()
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

/// A session's transcript.
#[utoipa::path(
    get,
    operation_id = "seed003_transcript",
    path = TRANSCRIPT_PATH,
    tag = "seed 003: artifacts",
    params(TypedQuery),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The transcript", body = Transcript),
        Refusals,
    )
)]
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
        Ok(transcript) => Json(Transcript {
            success: true,
            session_id,
            transcript,
        })
        .into_response(),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("conversation.json for session {session_id} is not valid JSON: {e}"),
        ),
    }
}

/// A signed URL to a session's audio.
#[utoipa::path(
    get,
    operation_id = "seed003_audio",
    path = AUDIO_PATH,
    tag = "seed 003: artifacts",
    params(TypedQuery),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The audio's signed URL", body = AudioUrl),
        Refusals,
    )
)]
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
        Ok(url) => Json(AudioUrl {
            success: true,
            session_id,
            audio_url: url.into_inner().url,
        })
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
        return Json(Summary {
            success: true,
            session_id,
            summary,
        })
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
    let body = SummaryRun {
        success: regenerate,
        session_id,
        generating: (!regenerate).then_some(true),
        workflow_id: state.workflow_id,
        run_id: state.run_id,
        // A run that failed and waits for its retry says why.
        last_error: Some(state.last_error).filter(|e| !e.is_empty()),
    };
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

/// A session's summary, or its generation started.
#[utoipa::path(
    get,
    operation_id = "seed003_summary",
    path = SUMMARY_PATH,
    tag = "seed 003: artifacts",
    params(SummaryQuery),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The summary", body = Summary),
        (status = 202, description = "Being generated", body = SummaryRun),
        Refusals,
    )
)]
pub async fn summary(
    State(st): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    summary_run(&st, &headers, READ, &params(query.as_deref()), false).await
}

/// Generates a session's summary again.
#[utoipa::path(
    post,
    operation_id = "seed003_regenerate",
    path = REGENERATE_PATH,
    tag = "seed 003: artifacts",
    request_body = RegenerateBody,
    security(("api_key" = [])),
    responses(
        (status = 202, description = "Generation started", body = SummaryRun),
        (status = 200, description = "The summary, when it was ready at once", body = Summary),
        Refusals,
    )
)]
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
    use serde_json::json;

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
