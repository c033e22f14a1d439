//! Seed 000 (`POST /v1/public/agents/connect`) end to end: real services as
//! separate processes over gRPC, on a real Redis, LiveKit in token-only mode
//! unless a test says otherwise.

use livekit_api::access_token::TokenVerifier;
use lobby_tests::{Lobby, LobbyOptions, RoomProvider, Topology};
use serde_json::{json, Value};

async fn body(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}")),
    )
}

fn assert_error(status: u16, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error_code"], want_code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "message missing: {body}"
    );
}

#[tokio::test]
async fn connect_returns_session_room_url_and_a_join_token_for_that_room() {
    let lobby = Lobby::start(LobbyOptions::default()).await;
    let account = lobby.create_account(3).await;
    let agent = lobby.create_agent(&account, json!({})).await;

    let r = lobby
        .connect_via(
            0,
            json!({ "agent_id": agent, "client_user_ref": "user-42" }),
            None,
        )
        .await;
    let (status, b) = body(r).await;
    assert_eq!(status, 200, "{b}");
    let keys: Vec<&String> = b.as_object().expect("object").keys().collect();
    assert_eq!(
        keys,
        ["room_url", "session_id", "token"],
        "exactly the seed's fields"
    );
    let session_id = b["session_id"].as_str().expect("session_id");
    uuid::Uuid::parse_str(session_id).expect("session_id is a UUID");
    assert_eq!(b["room_url"], "ws://127.0.0.1:7880");

    let claims = TokenVerifier::with_api_key("devkey", "secret")
        .verify(b["token"].as_str().expect("token"))
        .expect("token verifies with the LiveKit key");
    assert_eq!(claims.sub, "user-42", "identity is the client_user_ref");
    assert!(claims.video.room_join);
    assert_eq!(
        claims.video.room,
        format!("lobby-{session_id}"),
        "join grant for this room only"
    );
    assert!(!claims.video.room_admin && !claims.video.room_create && !claims.video.room_list);

    let r = lobby
        .admin(reqwest::Method::GET, &format!("/sessions/{session_id}"))
        .send()
        .await
        .expect("get session");
    let (status, record) = body(r).await;
    assert_eq!(status, 200);
    assert_eq!(record["status"], "active");
    assert_eq!(record["agent_id"], agent.as_str());
    assert_eq!(record["account_id"], account.as_str());
    assert_eq!(record["client_user_ref"], "user-42");
    assert!(record["started_at_ms"].as_i64().is_some_and(|t| t > 0));
    assert_eq!(lobby.active_sessions(&account).await, 1);
}

#[tokio::test]
async fn each_start_gets_its_own_session_and_generated_identity() {
    let lobby = Lobby::start(LobbyOptions::default()).await;
    let account = lobby.create_account(5).await;
    let agent = lobby.create_agent(&account, json!({})).await;
    let (_, a) = body(lobby.connect(&agent, None).await).await;
    let (_, b) = body(lobby.connect(&agent, None).await).await;
    assert_ne!(a["session_id"], b["session_id"]);
    let verifier = TokenVerifier::with_api_key("devkey", "secret");
    let ca = verifier
        .verify(a["token"].as_str().expect("token"))
        .expect("verifies");
    let cb = verifier
        .verify(b["token"].as_str().expect("token"))
        .expect("verifies");
    assert!(ca.sub.starts_with("user-") && cb.sub.starts_with("user-"));
    assert_ne!(ca.sub, cb.sub);
    assert_ne!(ca.video.room, cb.video.room);
}

#[tokio::test]
async fn unknown_unpublished_and_refused_agents_get_the_seed_errors() {
    let lobby = Lobby::start(LobbyOptions::default()).await;
    let account = lobby.create_account(3).await;
    let draft = lobby
        .create_agent(&account, json!({ "status": "unpublished" }))
        .await;
    let private = lobby
        .create_agent(&account, json!({ "allowed_hostnames": [] }))
        .await;

    let (s, b) = body(lobby.connect("no-such-agent", None).await).await;
    assert_error(s, &b, 404, "agent_not_found");

    let (s, b) = body(lobby.connect(&draft, None).await).await;
    assert_error(s, &b, 403, "agent_unpublished");
    assert_eq!(b["message"], "Agent exists but is currently unpublished");

    // An empty allowlist rejects everyone, with or without an Origin.
    let (s, b) = body(lobby.connect(&private, None).await).await;
    assert_error(s, &b, 403, "auth_failed");
    let (s, b) = body(lobby.connect(&private, Some("https://example.com")).await).await;
    assert_error(s, &b, 403, "auth_failed");
    assert_eq!(
        lobby.active_sessions(&account).await,
        0,
        "refusals take no slot"
    );
}

#[tokio::test]
async fn origin_spoofs_are_refused_and_only_the_exact_origin_is_granted() {
    let lobby = Lobby::start(LobbyOptions::default()).await;
    let account = lobby.create_account(20).await;
    let agent = lobby
        .create_agent(
            &account,
            json!({ "allowed_hostnames": ["https://example.com"] }),
        )
        .await;

    for &spoof in lobby_tests::ORIGIN_SPOOFS {
        let r = lobby.connect(&agent, Some(spoof)).await;
        assert!(
            r.headers().get("access-control-allow-origin").is_none(),
            "{spoof} got a CORS grant"
        );
        let (s, b) = body(r).await;
        assert_error(s, &b, 403, "auth_failed");
    }
    let (s, b) = body(lobby.connect(&agent, None).await).await;
    assert_error(s, &b, 403, "auth_failed");

    let r = lobby.connect(&agent, Some("https://example.com")).await;
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://example.com"
    );
    assert!(r.headers()["vary"]
        .to_str()
        .expect("vary")
        .to_ascii_lowercase()
        .contains("origin"));
    assert_eq!(r.status(), 200);

    let sub = lobby
        .create_agent(&account, json!({ "allowed_hostnames": ["*.example.com"] }))
        .await;
    assert_eq!(
        lobby
            .connect(&sub, Some("https://app.example.com"))
            .await
            .status(),
        200
    );
    assert_eq!(
        lobby
            .connect(&sub, Some("https://example.com"))
            .await
            .status(),
        403
    );
}

#[tokio::test]
async fn cors_preflight_grants_allowed_origins_and_nothing_to_others() {
    let lobby = Lobby::start(LobbyOptions::default()).await;
    let account = lobby.create_account(3).await;
    lobby
        .create_agent(
            &account,
            json!({ "allowed_hostnames": ["https://app.example.com"] }),
        )
        .await;
    let preflight = |origin: &'static str| {
        lobby
            .http
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/v1/public/agents/connect", lobby.gateway()),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let ok = preflight("https://app.example.com")
        .await
        .expect("preflight");
    assert!(ok.status().is_success(), "{}", ok.status());
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert!(ok.headers()["access-control-allow-methods"]
        .to_str()
        .expect("methods")
        .contains("POST"));
    assert!(ok.headers()["access-control-allow-headers"]
        .to_str()
        .expect("headers")
        .contains("content-type"));

    for refused in [
        "https://evil.example.net",
        "https://app.example.com.evil.net",
        "null",
    ] {
        let r = preflight(refused).await.expect("preflight");
        assert!(
            r.headers().get("access-control-allow-origin").is_none(),
            "{refused} was granted"
        );
        assert!(!r.status().is_success());
        assert!(
            r.headers().get("vary").is_some_and(|v| v
                .to_str()
                .unwrap_or("")
                .to_ascii_lowercase()
                .contains("origin")),
            "a refusal a cache could serve to another origin"
        );
    }
}

/// A browser on an origin some agent allows can read every refusal that
/// is not about its origin: no such agent, unpublished, a bad body.
#[tokio::test]
async fn refusals_not_about_the_origin_are_readable_by_an_allowed_origin() {
    let lobby = Lobby::start(LobbyOptions::default()).await;
    let account = lobby.create_account(3).await;
    let origin = "https://app.example.com";
    lobby
        .create_agent(&account, json!({ "allowed_hostnames": [origin] }))
        .await;
    let unpublished = lobby
        .create_agent(
            &account,
            json!({ "allowed_hostnames": [origin], "status": "unpublished" }),
        )
        .await;
    let post = |body: Value, from: &'static str| {
        lobby
            .http
            .post(format!("{}/v1/public/agents/connect", lobby.gateway()))
            .header("origin", from)
            .json(&body)
            .send()
    };
    for (request, code) in [
        (json!({ "agent_id": "agt_nobody" }), "agent_not_found"),
        (json!({ "agent_id": unpublished }), "agent_unpublished"),
        (json!({ "agent": "typo" }), "invalid_request"),
    ] {
        let r = post(request.clone(), origin).await.expect("send");
        assert_eq!(
            r.headers()
                .get("access-control-allow-origin")
                .map(|v| v.to_str().unwrap_or("")),
            Some(origin),
            "{code} unreadable by the browser"
        );
        let (_, b) = body(r).await;
        assert_eq!(b["error_code"], code, "{b}");
        let stranger = post(request, "https://evil.example.net")
            .await
            .expect("send");
        assert!(
            stranger
                .headers()
                .get("access-control-allow-origin")
                .is_none(),
            "{code} granted to an origin no agent allows"
        );
    }
}

/// A preflight carries no body, so it cannot name the agent: it is granted
/// to origins some agent allows. The tenant boundary is the request itself:
/// another tenant's origin is refused there, unreadably and with no write.
#[tokio::test]
async fn a_preflight_granted_for_one_tenant_does_not_reach_another_tenants_agent() {
    let lobby = Lobby::start(LobbyOptions::default()).await;
    let (tenant_a, tenant_b) = (lobby.create_account(3).await, lobby.create_account(3).await);
    let a_origin = "https://a.example.com";
    lobby
        .create_agent(&tenant_a, json!({ "allowed_hostnames": [a_origin] }))
        .await;
    let b_agent = lobby
        .create_agent(
            &tenant_b,
            json!({ "allowed_hostnames": ["https://b.example.com"] }),
        )
        .await;
    let preflight = lobby
        .http
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/v1/public/agents/connect", lobby.gateway()),
        )
        .header("origin", a_origin)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("preflight");
    assert!(preflight.status().is_success());

    let before = lobby.redis.snapshot().await;
    let r = lobby
        .http
        .post(format!("{}/v1/public/agents/connect", lobby.gateway()))
        .header("origin", a_origin)
        .json(&json!({ "agent_id": b_agent }))
        .send()
        .await
        .expect("post");
    assert!(
        r.headers().get("access-control-allow-origin").is_none(),
        "tenant A's page may not read tenant B's answer"
    );
    let (s, b) = body(r).await;
    assert_error(s, &b, 403, "auth_failed");
    assert_eq!(lobby.redis.snapshot().await, before, "the refusal wrote");
    assert_eq!(lobby.active_sessions(&tenant_b).await, 0);
}

#[tokio::test]
async fn concurrency_limit_is_429_with_derived_retry_after_and_frees_on_end() {
    let lobby = Lobby::start(LobbyOptions {
        extra_env: vec![("LOBBY_SESSION_LEASE_MS".into(), "8000".into())],
        ..Default::default()
    })
    .await;
    let account = lobby.create_account(1).await;
    let agent = lobby
        .create_agent(&account, json!({ "max_session_seconds": 120 }))
        .await;

    let (s, first) = body(lobby.connect(&agent, None).await).await;
    assert_eq!(s, 200, "{first}");
    let r = lobby.connect(&agent, None).await;
    let retry_header: u64 = r.headers()["retry-after"]
        .to_str()
        .expect("header")
        .parse()
        .expect("seconds");
    let (s, b) = body(r).await;
    assert_error(s, &b, 429, "concurrency_limit");
    assert_eq!(b["message"], "Max concurrency reached");
    let retry = b["retry_after_seconds"]
        .as_u64()
        .expect("retry_after_seconds");
    // Derived from the only lease (8 s, renewed while the session lives),
    // not from the session's 120 s length, and not the 15 s cap.
    assert!((6..=8).contains(&retry), "retry_after_seconds {retry}");
    assert_eq!(retry, retry_header);
    assert_eq!(b["scope"], "account");
    assert_eq!(b["limit"], 1);
    assert_eq!(b["in_use"], 1);

    let ended = lobby
        .end_session(first["session_id"].as_str().expect("id"))
        .await;
    assert_eq!(ended["status"], "ended");
    assert_eq!(lobby.active_sessions(&account).await, 0);
    let (s, b) = body(lobby.connect(&agent, None).await).await;
    assert_eq!(s, 200, "the ended session's slot is free again: {b}");
}

#[tokio::test]
async fn agent_limit_refuses_with_agent_scope_while_the_account_has_room() {
    let lobby = Lobby::start(LobbyOptions::default()).await;
    let account = lobby.create_account(10).await;
    let narrow = lobby
        .create_agent(&account, json!({ "max_concurrency": 2 }))
        .await;
    let other = lobby.create_agent(&account, json!({})).await;
    for _ in 0..2 {
        assert_eq!(lobby.connect(&narrow, None).await.status(), 200);
    }
    let (s, b) = body(lobby.connect(&narrow, None).await).await;
    assert_error(s, &b, 429, "concurrency_limit");
    assert_eq!(b["scope"], "agent");
    assert_eq!(b["limit"], 2);
    assert_eq!(
        lobby.connect(&other, None).await.status(),
        200,
        "the account still has slots"
    );
}

#[tokio::test]
async fn livekit_down_is_room_creation_failed_and_the_slot_is_released() {
    let dead = lobby_tests::free_port();
    let lobby = Lobby::start(LobbyOptions {
        provider: RoomProvider::LiveKit {
            ws_url: format!("ws://127.0.0.1:{dead}"),
            http_url: format!("http://127.0.0.1:{dead}"),
        },
        ..Default::default()
    })
    .await;
    let account = lobby.create_account(1).await;
    let agent = lobby.create_agent(&account, json!({})).await;
    for _ in 0..3 {
        // With a limit of 1, a leaked slot would turn the next try into a 429.
        let (s, b) = body(lobby.connect(&agent, None).await).await;
        assert_error(s, &b, 502, "room_creation_failed");
        assert_eq!(b["message"], "WebRTC room could not be created");
    }
    assert_eq!(lobby.active_sessions(&account).await, 0);

    // Each failed start left a `failed` record naming why, set to expire.
    let mut redis = lobby.redis.connection().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!(
            "{}:{account}:session:*",
            lobby_kit::keys::account_tag(&account)
        ))
        .query_async(&mut redis)
        .await
        .expect("keys");
    assert_eq!(keys.len(), 3);
    for key in keys {
        let (status, code): (String, String) = redis::cmd("HMGET")
            .arg(&key)
            .arg("status")
            .arg("failure_code")
            .query_async(&mut redis)
            .await
            .expect("record");
        assert_eq!(
            (status.as_str(), code.as_str()),
            ("failed", "room_creation_failed")
        );
        let ttl: i64 = redis::cmd("TTL")
            .arg(&key)
            .query_async(&mut redis)
            .await
            .expect("ttl");
        assert!(ttl > 0, "failed records expire");
    }
}

#[tokio::test]
async fn a_service_down_is_orchestrator_error() {
    let mut lobby = Lobby::start(LobbyOptions {
        // About separate processes: one of them is killed.
        topology: Topology::Split,
        ..Default::default()
    })
    .await;
    let account = lobby.create_account(3).await;
    let agent = lobby.create_agent(&account, json!({})).await;

    lobby.kill("rooms");
    let (s, b) = body(lobby.connect(&agent, None).await).await;
    assert_error(s, &b, 502, "orchestrator_error");

    lobby.kill("session");
    let (s, b) = body(lobby.connect(&agent, None).await).await;
    assert_error(s, &b, 502, "orchestrator_error");

    let health = lobby
        .http
        .get(format!("{}/healthz", lobby.gateway()))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 503);
}

#[tokio::test]
async fn redis_down_is_a_retryable_503_without_internals_in_the_message() {
    let mut lobby = Lobby::start(LobbyOptions::default()).await;
    let account = lobby.create_account(3).await;
    let agent = lobby.create_agent(&account, json!({})).await;
    lobby.redis.stop();
    let (s, b) = body(lobby.connect(&agent, None).await).await;
    assert_error(s, &b, 503, "store_unavailable");
    assert_eq!(
        b["message"],
        "The service is temporarily unavailable; retry shortly"
    );
    let health = lobby
        .http
        .get(format!("{}/healthz", lobby.gateway()))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 503);
}

#[tokio::test]
async fn bad_input_is_a_400_in_the_seed_body_and_takes_nothing() {
    let lobby = Lobby::start(LobbyOptions::default()).await;
    let account = lobby.create_account(1).await;
    let agent = lobby.create_agent(&account, json!({})).await;
    let url = format!("{}/v1/public/agents/connect", lobby.gateway());
    let raw = |content_type: Option<&'static str>, payload: String| {
        let mut req = lobby.http.post(&url).body(payload);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        req.send()
    };
    let json_ct = Some("application/json");
    let cases: Vec<(&str, Option<&'static str>, String)> = vec![
        ("invalid JSON", json_ct, "{\"agent_id\": ".into()),
        ("empty body", json_ct, String::new()),
        ("JSON array", json_ct, "[]".into()),
        (
            "wrong content type",
            Some("text/plain"),
            json!({ "agent_id": agent }).to_string(),
        ),
        (
            "no content type",
            None,
            json!({ "agent_id": agent }).to_string(),
        ),
        ("missing agent_id", json_ct, "{}".into()),
        (
            "empty agent_id",
            json_ct,
            json!({ "agent_id": "" }).to_string(),
        ),
        (
            "agent_id of the wrong type",
            json_ct,
            json!({ "agent_id": 7 }).to_string(),
        ),
        (
            "client_user_ref of the wrong type",
            json_ct,
            json!({ "agent_id": agent, "client_user_ref": 7 }).to_string(),
        ),
        (
            "client_user_ref too long",
            json_ct,
            json!({ "agent_id": agent, "client_user_ref": "x".repeat(257) }).to_string(),
        ),
        (
            "oversized body",
            json_ct,
            json!({ "agent_id": agent, "pad": "x".repeat(40_000) }).to_string(),
        ),
    ];
    for (label, ct, payload) in cases {
        let r = raw(ct, payload).await.expect("request");
        let (s, b) = body(r).await;
        assert_eq!(s, 400, "{label}: {b}");
        assert_eq!(b["error_code"], "invalid_request", "{label}: {b}");
        assert!(
            b["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{label}: {b}"
        );
    }
    assert_eq!(
        lobby.active_sessions(&account).await,
        0,
        "no bad request took a slot"
    );

    // The boundaries that must pass: 256 characters, unknown fields, charset.
    let ok = raw(
        Some("application/json; charset=utf-8"),
        json!({ "agent_id": agent, "client_user_ref": "é".repeat(256), "widget_version": 3 })
            .to_string(),
    )
    .await
    .expect("request");
    assert_eq!(ok.status(), 200);
}
