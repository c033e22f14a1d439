//! A local stand-in for an OpenAI-compatible chat-completions endpoint: it
//! records every request (to check its shape) and answers as told: with a
//! summary, an error, or not at all until released.

use axum::{extract::State, http::HeaderMap, http::StatusCode, routing::post, Json, Router};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Summary,
    /// HTTP 500 every time.
    Fail,
    /// The first request waits forever (its caller is killed meanwhile);
    /// later ones answer.
    HangFirst,
    /// Every request waits until `release`.
    HoldUntilReleased,
}

#[derive(Clone)]
struct Shared {
    answer: Answer,
    requests: Arc<Mutex<Vec<(HeaderMap, Value)>>>,
    release: Arc<tokio::sync::Notify>,
    released: Arc<std::sync::atomic::AtomicBool>,
}

pub struct SummarizerStandIn {
    pub url: String,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

pub const SUMMARY_TEXT: &str = "The user asked about a refund; the agent confirmed it.";

async fn completions(
    State(s): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let n = {
        let mut requests = s.requests.lock().expect("requests");
        requests.push((headers, body));
        requests.len()
    };
    let hold = match s.answer {
        Answer::HangFirst => n == 1,
        Answer::HoldUntilReleased => !s.released.load(std::sync::atomic::Ordering::SeqCst),
        _ => false,
    };
    if hold {
        if s.answer == Answer::HangFirst {
            std::future::pending::<()>().await;
        }
        s.release.notified().await;
    }
    if s.answer == Answer::Fail {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": {"message": "model overloaded"}})),
        );
    }
    (
        StatusCode::OK,
        Json(json!({
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": SUMMARY_TEXT}, "finish_reason": "stop"}],
        })),
    )
}

impl SummarizerStandIn {
    pub async fn start(answer: Answer) -> Self {
        let shared = Shared {
            answer,
            requests: Arc::default(),
            release: Arc::default(),
            released: Arc::default(),
        };
        let app = Router::new()
            .route("/v1/chat/completions", post(completions))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/v1", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, shared, task }
    }

    /// The requests received so far: headers and JSON body.
    pub fn requests(&self) -> Vec<(HeaderMap, Value)> {
        self.shared.requests.lock().expect("requests").clone()
    }

    /// Lets held requests (and later ones) answer.
    pub fn release(&self) {
        self.shared
            .released
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.shared.release.notify_waiters();
    }

    /// Lobby's settings for this endpoint, with the summarizer's timeout,
    /// the claim idle time and the consumer forget time given (each longer
    /// than the one before, as Lobby requires).
    pub fn settings_timed(
        &self,
        timeout_ms: u64,
        claim_idle_ms: u64,
        forget_ms: u64,
    ) -> Vec<(String, String)> {
        let mut settings = self.settings();
        settings.retain(|(k, _)| k != "LOBBY_SUMMARIZER_TIMEOUT_MS");
        for (k, v) in [
            ("LOBBY_SUMMARIZER_TIMEOUT_MS", timeout_ms),
            ("LOBBY_SUMMARY_CLAIM_IDLE_MS", claim_idle_ms),
            ("LOBBY_SUMMARY_CONSUMER_FORGET_MS", forget_ms),
        ] {
            settings.push((k.to_owned(), v.to_string()));
        }
        settings
    }

    /// Lobby's settings for this endpoint.
    pub fn settings(&self) -> Vec<(String, String)> {
        [
            ("LOBBY_SUMMARIZER", "openai"),
            ("LOBBY_SUMMARIZER_URL", self.url.as_str()),
            ("LOBBY_SUMMARIZER_MODEL", "test-model"),
            ("LOBBY_SUMMARIZER_API_KEY", "sk-test-123"),
            ("LOBBY_SUMMARIZER_TIMEOUT_MS", "1500"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }
}

impl Drop for SummarizerStandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}
