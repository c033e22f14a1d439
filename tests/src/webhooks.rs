//! LiveKit webhooks as the server sends them, for tests that play the
//! provider: a JSON event signed with a JWT from the API key pair whose
//! `sha256` claim is the body's hash.

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The `Authorization` value LiveKit would send for `body`.
pub fn sign(body: &str, secret: &str) -> String {
    livekit_api::access_token::AccessToken::with_api_key(crate::livekit::API_KEY, secret)
        .with_sha256(&B64.encode(Sha256::digest(body.as_bytes())))
        .to_jwt()
        .expect("jwt")
}

/// A webhook event body; `participant` is e.g. `{"identity": "u", "kind": "AGENT"}`.
pub fn event(
    kind: &str,
    id: &str,
    room: &str,
    created_at_s: i64,
    participant: Option<Value>,
) -> String {
    let mut e = json!({ "event": kind, "id": id, "createdAt": created_at_s.to_string(), "room": { "name": room } });
    if let Some(p) = participant {
        e["participant"] = p;
    }
    e.to_string()
}

/// Posts a signed event to the gateway; returns (status, body).
pub async fn post(http: &reqwest::Client, gateway: &str, body: String) -> (u16, Value) {
    let auth = sign(&body, crate::livekit::API_SECRET);
    let r = http
        .post(format!("{gateway}/webhooks/livekit"))
        .header("content-type", "application/webhook+json")
        .header("authorization", auth)
        .body(body)
        .send()
        .await
        .expect("webhook");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}
