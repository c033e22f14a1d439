//! A stand-in for Daily's REST API on loopback. Daily cannot be reached from
//! here, so tests run against this server, which answers with the documented
//! response shapes and checks every request against the documented request
//! shapes (`Authorization: Bearer <key>`; `POST /rooms` with `name`, `privacy`
//! and `properties.exp` / `properties.eject_at_room_exp`; `POST
//! /meeting-tokens` with `properties.room_name`, `exp`, `user_name`,
//! `is_owner`; `GET` and `DELETE /rooms/:name`). Every deviation is recorded
//! as a violation for the test to assert on.

use axum::{
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde_json::{json, Value};
use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc, Mutex,
};

pub const API_KEY: &str = "test-daily-api-key";
pub const DOMAIN: &str = "https://lobby-test.daily.co";

#[derive(Default)]
pub struct Recorded {
    pub rooms: Vec<Value>,
    pub tokens: Vec<Value>,
    pub deleted: Vec<String>,
    pub violations: Vec<String>,
}

#[derive(Clone, Default)]
struct Mock {
    recorded: Arc<Mutex<Recorded>>,
    failing: Arc<AtomicBool>,
}

pub struct DailyMock {
    pub base: String,
    mock: Mock,
    task: tokio::task::JoinHandle<()>,
}

fn now_s() -> i64 {
    crate::now_ms() / 1000
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

impl Mock {
    /// The refusal a real Daily would give this request, if any.
    fn refusal(&self, headers: &HeaderMap) -> Option<Response> {
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
        if auth != Some(&format!("Bearer {API_KEY}")) {
            self.violation(format!("bad Authorization header: {auth:?}"));
            return Some(
                (
                    StatusCode::UNAUTHORIZED,
                    Json(json!({ "error": "authentication-error" })),
                )
                    .into_response(),
            );
        }
        if self.failing.load(Ordering::SeqCst) {
            return Some(
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Json(json!({ "error": "server-error" })),
                )
                    .into_response(),
            );
        }
        None
    }

    fn violation(&self, what: String) {
        if let Ok(mut r) = self.recorded.lock() {
            r.violations.push(what);
        }
    }

    fn invalid(&self, what: String) -> Response {
        self.violation(what.clone());
        (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": "invalid-request-error", "info": what })),
        )
            .into_response()
    }
}

async fn create_room(
    State(m): State<Mock>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = m.refusal(&headers) {
        return r;
    }
    let props = &body["properties"];
    if keys(&body) != ["name", "privacy", "properties"]
        || keys(props) != ["eject_at_room_exp", "exp"]
    {
        return m.invalid(format!("unexpected room fields: {body}"));
    }
    let (Some(name), Some(exp)) = (body["name"].as_str(), props["exp"].as_i64()) else {
        return m.invalid(format!("name must be a string and exp an integer: {body}"));
    };
    if exp <= now_s()
        || props["eject_at_room_exp"] != json!(true)
        || body["privacy"] != json!("private")
    {
        return m.invalid(format!(
            "exp must be in the future, eject_at_room_exp true, privacy private: {body}"
        ));
    }
    if let Ok(mut r) = m.recorded.lock() {
        r.rooms.push(body.clone());
    }
    Json(json!({
        "id": format!("room-{name}"),
        "name": name,
        "api_created": true,
        "privacy": "private",
        "url": format!("{DOMAIN}/{name}"),
        "created_at": "2026-11-24T00:00:00.000Z",
        "config": { "exp": exp, "eject_at_room_exp": true },
    }))
    .into_response()
}

async fn create_token(
    State(m): State<Mock>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = m.refusal(&headers) {
        return r;
    }
    let props = &body["properties"];
    if keys(&body) != ["properties"] || keys(props) != ["exp", "is_owner", "room_name", "user_name"]
    {
        return m.invalid(format!("unexpected token fields: {body}"));
    }
    let room = props["room_name"].as_str().unwrap_or("");
    let known = m
        .recorded
        .lock()
        .map(|r| r.rooms.iter().any(|x| x["name"] == room) && !r.deleted.iter().any(|d| d == room))
        .unwrap_or(false);
    if !known
        || !props["is_owner"].is_boolean()
        || props["exp"].as_i64().is_none_or(|e| e <= now_s())
    {
        return m.invalid(format!(
            "token for an unknown room, or a bad exp / is_owner: {body}"
        ));
    }
    let token = format!(
        "daily-token-{}-{}",
        room,
        if props["is_owner"] == json!(true) {
            "owner"
        } else {
            "user"
        }
    );
    if let Ok(mut r) = m.recorded.lock() {
        r.tokens.push(body.clone());
    }
    Json(json!({ "token": token })).into_response()
}

async fn room(State(m): State<Mock>, headers: HeaderMap, Path(name): Path<String>) -> Response {
    if let Some(r) = m.refusal(&headers) {
        return r;
    }
    let exists = m
        .recorded
        .lock()
        .map(|r| r.rooms.iter().any(|x| x["name"] == name.as_str()) && !r.deleted.contains(&name))
        .unwrap_or(false);
    if exists {
        Json(json!({ "name": name, "url": format!("{DOMAIN}/{name}"), "privacy": "private" }))
            .into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "not-found", "info": format!("room {name} was not found") })),
        )
            .into_response()
    }
}

async fn delete_room(
    State(m): State<Mock>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    if let Some(r) = m.refusal(&headers) {
        return r;
    }
    let existed = m
        .recorded
        .lock()
        .map(|mut r| {
            let live =
                r.rooms.iter().any(|x| x["name"] == name.as_str()) && !r.deleted.contains(&name);
            if live {
                r.deleted.push(name.clone());
            }
            live
        })
        .unwrap_or(false);
    if existed {
        Json(json!({ "deleted": true, "name": name })).into_response()
    } else {
        (StatusCode::NOT_FOUND, Json(json!({ "error": "not-found" }))).into_response()
    }
}

impl DailyMock {
    pub async fn start() -> Self {
        let mock = Mock::default();
        let app = Router::new()
            .route("/rooms", post(create_room))
            .route("/rooms/{name}", get(room).delete(delete_room))
            .route("/meeting-tokens", post(create_token))
            .with_state(mock.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { base, mock, task }
    }

    /// The settings that point rooms at this server.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("LOBBY_DAILY_API_URL".into(), self.base.clone()),
            ("LOBBY_DAILY_API_KEY".into(), API_KEY.into()),
        ]
    }

    pub fn recorded<T>(&self, read: impl FnOnce(&Recorded) -> T) -> T {
        read(&self.mock.recorded.lock().expect("mock state"))
    }

    /// Makes every later call fail with a 500, as an outage would.
    pub fn fail(&self, failing: bool) {
        self.mock.failing.store(failing, Ordering::SeqCst);
    }

    /// Removes a room on Daily's side (the meeting ended there).
    pub fn drop_room(&self, name: &str) {
        if let Ok(mut r) = self.mock.recorded.lock() {
            r.deleted.push(name.to_owned());
        }
    }
}

impl Drop for DailyMock {
    fn drop(&mut self) {
        self.task.abort();
    }
}
