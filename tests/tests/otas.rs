//! Seed 001 (OTAS agent sessions): the contract replayed, every key and JWT
//! attack refused in the seed's envelope, events scoped to one session, and
//! signing-key rotation.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD as B64, Engine};
use lobby_tests::{Lobby, LobbyOptions};
use reqwest::Method;
use serde_json::{json, Value};

const CREATE: &str = "/api/agent/v1/session/create/";
const EVENTS: &str = "/api/agent/v1/session/events/";
const END: &str = "/api/agent/v1/session/end/";
const TOKEN_HEADER: &str = "X-OTAS-AGENT-SESSION-TOKEN";

struct Call<'a> {
    lobby: &'a Lobby,
}

impl Call<'_> {
    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .lobby
            .http
            .request(method, format!("{}{path}", self.lobby.gateway()));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        let text = r.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}")),
        )
    }

    async fn create(&self, key: &str, body: Option<Value>) -> (u16, Value) {
        self.send(Method::POST, CREATE, &[("X-OTAS-AGENT-KEY", key)], body)
            .await
    }

    async fn token(&self, key: &str) -> String {
        let (s, b) = self.create(key, None).await;
        assert_eq!(s, 200, "{b}");
        b["response"]["jwt_token"].as_str().expect("jwt").to_owned()
    }

    async fn event(&self, token: &str, kind: &str) -> (u16, Value) {
        self.send(
            Method::POST,
            EVENTS,
            &[(TOKEN_HEADER, token)],
            Some(json!({ "kind": kind, "payload": { "n": kind } })),
        )
        .await
    }

    async fn events(&self, token: &str) -> (u16, Value) {
        self.send(Method::GET, EVENTS, &[(TOKEN_HEADER, token)], None)
            .await
    }
}

fn assert_refused(status: u16, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["status"], 0, "{body}");
    assert_eq!(body["status_description"], want_code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

fn jwt_parts(jwt: &str) -> (Value, Value) {
    let mut parts = jwt.split('.');
    let decode = |p: Option<&str>| -> Value {
        serde_json::from_slice(&B64.decode(p.expect("part")).expect("base64")).expect("json")
    };
    (decode(parts.next()), decode(parts.next()))
}

async fn agent_with_key(lobby: &Lobby) -> (String, String, String) {
    let account = lobby.create_account(5).await;
    let (agent, key) = lobby.create_agent_with_key(&account, json!({})).await;
    (account, agent, key)
}

#[tokio::test]
async fn create_replays_the_seed_example_and_binds_the_jwt_to_one_session() {
    let lobby = Lobby::start(LobbyOptions::default()).await;
    let call = Call { lobby: &lobby };
    let (account, agent, key) = agent_with_key(&lobby).await;
    assert!(key.starts_with("agent_"), "{key}");

    let (s, b) = call
        .create(
            &key,
            Some(json!({ "meta": { "task": "summarize", "input_length": 512 } })),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["status"], 1);
    assert_eq!(b["status_description"], "agent_session_created");
    assert_eq!(b["response"]["Header_value"], "X-OTAS-AGENT-SESSION-TOKEN");
    let keys: Vec<&String> = b.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["response", "status", "status_description"]);
    let response_keys: Vec<&String> = b["response"].as_object().expect("object").keys().collect();
    assert_eq!(response_keys, ["Header_value", "jwt_token"]);

    let jwt = b["response"]["jwt_token"].as_str().expect("jwt");
    let (header, claims) = jwt_parts(jwt);
    assert_eq!(header["alg"], "HS256");
    assert!(header["kid"].as_str().is_some_and(|k| !k.is_empty()));
    assert_eq!(claims["sub"], agent.as_str());
    assert_eq!(claims["acct"], account.as_str());
    assert!(claims["exp"].as_i64() > claims["iat"].as_i64());
    let session_id = claims["sid"].as_str().expect("sid");
    let (s, record) = lobby
        .admin_json(Method::GET, &format!("/sessions/{session_id}"), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(record["kind"], "agent_run");
    assert_eq!(
        record["meta"],
        json!({ "task": "summarize", "input_length": 512 })
    );

    // Every call is a new session; the body is optional and meta defaults to {}.
    let (_, second) = jwt_parts(&call.token(&key).await);
    assert_ne!(second["sid"], claims["sid"]);
    let (s, record) = lobby
        .admin_json(
            Method::GET,
            &format!("/sessions/{}", second["sid"].as_str().expect("sid")),
            None,
        )
        .await;
    assert_eq!((s, &record["meta"]), (200, &json!({})));

    for bad_meta in [
        json!({ "meta": [1] }),
        json!({ "meta": "x" }),
        json!({ "meta": 5 }),
    ] {
        let (s, b) = call.create(&key, Some(bad_meta)).await;
        assert_refused(s, &b, 400, "invalid_request");
    }
    let (s, b) = call
        .create(&key, Some(json!({ "meta": { "pad": "x".repeat(40_000) } })))
        .await;
    assert_refused(s, &b, 400, "invalid_request");
}

#[tokio::test]
async fn agent_key_attacks_are_refused() {
    let lobby = Lobby::start(LobbyOptions::default()).await;
    let call = Call { lobby: &lobby };
    let (account, agent, key) = agent_with_key(&lobby).await;
    let prefix = key.split('_').nth(1).expect("prefix").to_owned();

    let (s, b) = call.send(Method::POST, CREATE, &[], None).await;
    assert_refused(s, &b, 401, "key_missing");
    for malformed in [
        "agent_",
        "not-a-key",
        "agent_abc_def",
        &format!("lby_{prefix}_0123456789abcdef0123"),
    ] {
        let (s, b) = call.create(malformed, None).await;
        assert_refused(s, &b, 401, "key_malformed");
    }
    let (s, b) = call
        .create("agent_UnknownPrefix1_0123456789abcdef0123456789", None)
        .await;
    assert_refused(s, &b, 401, "key_invalid");
    let wrong_secret = format!("agent_{prefix}_{}", "x".repeat(40));
    let (s, b) = call.create(&wrong_secret, None).await;
    assert_refused(s, &b, 401, "key_invalid");
    // An account key is not an agent key, even when valid.
    let api_key = lobby.create_api_key(&account, &["sessions:read"]).await;
    let (s, b) = call.create(&api_key, None).await;
    assert_refused(s, &b, 401, "key_malformed");

    let (s, _) = lobby
        .admin_json(
            Method::PATCH,
            &format!("/keys/{prefix}"),
            Some(json!({ "active": false })),
        )
        .await;
    assert_eq!(s, 200);
    let (s, b) = call.create(&key, None).await;
    assert_refused(s, &b, 403, "key_inactive");
    lobby
        .admin_json(
            Method::PATCH,
            &format!("/keys/{prefix}"),
            Some(json!({ "active": true })),
        )
        .await;
    assert_eq!(call.create(&key, None).await.0, 200);

    // Rotation with a grace period: the old key works until it ends.
    let (s, rotated) = lobby
        .admin_json(
            Method::POST,
            &format!("/agents/{agent}/keys"),
            Some(json!({ "previous_key_grace_seconds": 60 })),
        )
        .await;
    assert_eq!(s, 201, "{rotated}");
    let new_key = rotated["key"].as_str().expect("key").to_owned();
    assert_eq!(
        call.create(&key, None).await.0,
        200,
        "old key within its grace"
    );
    assert_eq!(call.create(&new_key, None).await.0, 200);
    lobby.advance_clock(61_000);
    let (s, b) = call.create(&key, None).await;
    assert_refused(s, &b, 401, "key_expired");
    assert_eq!(call.create(&new_key, None).await.0, 200);

    // Rotation without grace revokes at once; an explicit revoke does too.
    let (_, newest) = lobby
        .admin_json(Method::POST, &format!("/agents/{agent}/keys"), None)
        .await;
    let (s, b) = call.create(&new_key, None).await;
    assert_refused(s, &b, 403, "key_revoked");
    let newest_key = newest["key"].as_str().expect("key");
    let newest_prefix = newest["prefix"].as_str().expect("prefix");
    assert_eq!(call.create(newest_key, None).await.0, 200);
    lobby
        .admin_json(Method::POST, &format!("/keys/{newest_prefix}/revoke"), None)
        .await;
    let (s, b) = call.create(newest_key, None).await;
    assert_refused(s, &b, 403, "key_revoked");

    // Keys are listed without secrets.
    let (_, list) = lobby
        .admin_json(Method::GET, &format!("/agents/{agent}/keys"), None)
        .await;
    let keys = list["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 3);
    assert!(keys
        .iter()
        .all(|k| k.get("key").is_none() && k.get("hmac").is_none()));
}

#[tokio::test]
async fn an_expiring_agent_key_stops_at_its_expiry() {
    let lobby = Lobby::start(LobbyOptions::default()).await;
    let call = Call { lobby: &lobby };
    let (_, agent, _) = agent_with_key(&lobby).await;
    let now_ms = lobby_tests::now_ms();
    let (s, k) = lobby
        .admin_json(
            Method::POST,
            &format!("/agents/{agent}/keys"),
            Some(json!({ "expires_at_ms": now_ms + 3_600_000 })),
        )
        .await;
    assert_eq!(s, 201, "{k}");
    let key = k["key"].as_str().expect("key");
    assert_eq!(call.create(key, None).await.0, 200);
    lobby.advance_clock(3_600_001);
    let (s, b) = call.create(key, None).await;
    assert_refused(s, &b, 401, "key_expired");
}

#[tokio::test]
async fn events_are_scoped_to_their_session_and_ended_sessions_take_no_writes() {
    let lobby = Lobby::start(LobbyOptions::default()).await;
    let call = Call { lobby: &lobby };
    let (_, _, key) = agent_with_key(&lobby).await;
    let a = call.token(&key).await;
    let b = call.token(&key).await;

    for kind in ["tool.call", "llm.response", "step:3"] {
        let (s, body) = call.event(&a, kind).await;
        assert_eq!(s, 201, "{body}");
        assert_eq!(
            (body["status"].clone(), body["status_description"].clone()),
            (json!(1), json!("event_recorded"))
        );
    }
    let (s, listed) = call.events(&a).await;
    assert_eq!(s, 200, "{listed}");
    let events = listed["response"]["events"].as_array().expect("events");
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(kinds, ["tool.call", "llm.response", "step:3"], "in order");
    assert_eq!(
        events
            .iter()
            .map(|e| e["seq"].as_u64().unwrap_or(0))
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(events[1]["payload"], json!({ "n": "llm.response" }));

    let (_, other) = call.events(&b).await;
    assert_eq!(
        other["response"]["events"],
        json!([]),
        "session B sees none of A's events"
    );

    for bad in [
        json!({ "kind": "" }),
        json!({ "kind": "has space" }),
        json!({ "payload": 1 }),
        json!({ "kind": "k", "timestamp": -5 }),
    ] {
        let (s, body) = call
            .send(
                Method::POST,
                EVENTS,
                &[(TOKEN_HEADER, a.as_str())],
                Some(bad),
            )
            .await;
        assert_refused(s, &body, 400, "invalid_request");
    }
    let (s, body) = call
        .send(
            Method::POST,
            EVENTS,
            &[(TOKEN_HEADER, a.as_str())],
            Some(json!({ "kind": "big", "payload": "x".repeat(20_000) })),
        )
        .await;
    assert_refused(s, &body, 400, "invalid_request");

    let (s, ended) = call
        .send(Method::POST, END, &[(TOKEN_HEADER, a.as_str())], None)
        .await;
    assert_eq!(s, 200, "{ended}");
    assert_eq!(ended["status_description"], "agent_session_ended");
    let (s, body) = call.event(&a, "late").await;
    assert_refused(s, &body, 403, "session_ended");
    let (s, body) = call
        .send(Method::POST, END, &[(TOKEN_HEADER, a.as_str())], None)
        .await;
    assert_refused(s, &body, 403, "session_ended");
    assert_eq!(
        call.events(&a).await.0,
        200,
        "an ended session's log stays readable"
    );
    assert_eq!(call.event(&b, "still-open").await.0, 201);
}

#[tokio::test]
async fn the_event_log_is_bounded_per_session() {
    let lobby = Lobby::start(LobbyOptions {
        extra_env: vec![("LOBBY_MAX_EVENTS_PER_SESSION".into(), "3".into())],
        ..Default::default()
    })
    .await;
    let call = Call { lobby: &lobby };
    let (_, _, key) = agent_with_key(&lobby).await;
    let t = call.token(&key).await;
    for i in 0..3 {
        assert_eq!(call.event(&t, &format!("e{i}")).await.0, 201);
    }
    let (s, b) = call.event(&t, "one-too-many").await;
    assert_refused(s, &b, 409, "events_full");
}

#[tokio::test]
async fn session_token_attacks_are_refused() {
    let lobby = Lobby::start(LobbyOptions::default()).await;
    let call = Call { lobby: &lobby };
    let (_, _, key) = agent_with_key(&lobby).await;
    let jwt = call.token(&key).await;
    let (header, claims) = jwt_parts(&jwt);
    let parts: Vec<&str> = jwt.split('.').collect();
    let enc = |v: &Value| B64.encode(serde_json::to_vec(v).expect("json"));

    let (s, b) = call.send(Method::GET, EVENTS, &[], None).await;
    assert_refused(s, &b, 401, "token_missing");
    for malformed in ["abc", "a.b", "a.b.c.d"] {
        let (s, b) = call.events(malformed).await;
        assert!(s == 401, "{malformed}: {b}");
        assert!(
            ["token_malformed", "token_invalid"]
                .contains(&b["status_description"].as_str().unwrap_or("")),
            "{b}"
        );
    }

    let mut other_sid = claims.clone();
    other_sid["sid"] = json!("another-session");
    let tampered = format!("{}.{}.{}", parts[0], enc(&other_sid), parts[2]);
    let mut none_header = header.clone();
    none_header["alg"] = json!("none");
    let alg_none = format!("{}.{}.", enc(&none_header), parts[1]);
    let mut rs_header = header.clone();
    rs_header["alg"] = json!("RS256");
    let rs_confusion = format!("{}.{}.{}", enc(&rs_header), parts[1], parts[2]);
    let mut wrong_kid = header.clone();
    wrong_kid["kid"] = json!("k-does-not-exist");
    let wrong_kid = format!("{}.{}.{}", enc(&wrong_kid), parts[1], parts[2]);
    let mut no_kid = header.clone();
    no_kid.as_object_mut().expect("object").remove("kid");
    let no_kid = format!("{}.{}.{}", enc(&no_kid), parts[1], parts[2]);
    let forged_sig = format!("{}.{}.{}", parts[0], parts[1], B64.encode([7u8; 32]));
    for (label, token) in [
        ("tampered claims", tampered),
        ("alg none", alg_none),
        ("HS/RS confusion", rs_confusion),
        ("wrong kid", wrong_kid),
        ("no kid", no_kid),
        ("forged signature", forged_sig),
    ] {
        let (s, b) = call.events(&token).await;
        assert_eq!(s, 401, "{label}: {b}");
        assert_eq!(b["status_description"], "token_invalid", "{label}: {b}");
        let (s, _) = call.event(&token, "x").await;
        assert_eq!(s, 401, "{label} must not write");
    }

    assert_eq!(call.events(&jwt).await.0, 200);
    lobby.advance_clock(3_600_000 + 1_000);
    let (s, b) = call.events(&jwt).await;
    assert_refused(s, &b, 401, "token_expired");
}

#[tokio::test]
async fn tokens_signed_before_a_key_rotation_verify_until_they_expire() {
    let lobby = Lobby::start(LobbyOptions::default()).await;
    let call = Call { lobby: &lobby };
    let (_, _, key) = agent_with_key(&lobby).await;
    let before = call.token(&key).await;
    let (s, rotated) = lobby
        .admin_json(Method::POST, "/signing-keys/rotate", None)
        .await;
    assert_eq!(s, 200, "{rotated}");
    let after = call.token(&key).await;
    let kid = |t: &str| jwt_parts(t).0["kid"].as_str().expect("kid").to_owned();
    assert_ne!(kid(&before), kid(&after), "new tokens use the new key");
    assert_eq!(kid(&after), rotated["kid"].as_str().expect("kid"));
    assert_eq!(
        call.events(&before).await.0,
        200,
        "the old key still verifies its tokens"
    );
    assert_eq!(call.events(&after).await.0, 200);

    // Half a lifetime later both still work; past the old token's expiry it stops.
    lobby.advance_clock(1_800_000);
    assert_eq!(call.events(&before).await.0, 200);
    lobby.advance_clock(1_800_001);
    let (s, b) = call.events(&before).await;
    assert_refused(s, &b, 401, "token_expired");
}

/// A run's token is worth no more than what granted it: revoking the agent
/// key that minted it, or unpublishing the agent, stops it at once.
#[tokio::test]
async fn session_tokens_stop_with_their_key_or_their_agent() {
    let lobby = Lobby::start(LobbyOptions::default()).await;
    let call = Call { lobby: &lobby };
    let (_, agent, key) = agent_with_key(&lobby).await;
    let jwt = call.token(&key).await;
    assert_eq!(call.events(&jwt).await.0, 200);
    let prefix = key.split('_').nth(1).expect("prefix").to_owned();
    let (s, b) = lobby
        .admin_json(Method::POST, &format!("/keys/{prefix}/revoke"), None)
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = call.events(&jwt).await;
    assert_refused(s, &b, 403, "key_revoked");
    let (s, _) = call.event(&jwt, "after-revocation").await;
    assert_eq!(s, 403, "a revoked key's run takes no writes");

    let (s, rotated) = lobby
        .admin_json(Method::POST, &format!("/agents/{agent}/keys"), None)
        .await;
    assert_eq!(s, 201, "{rotated}");
    let fresh = call.token(rotated["key"].as_str().expect("key")).await;
    assert_eq!(call.events(&fresh).await.0, 200);
    let (s, b) = lobby
        .admin_json(
            Method::PATCH,
            &format!("/agents/{agent}"),
            Some(json!({ "status": "unpublished" })),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = call.events(&fresh).await;
    assert_refused(s, &b, 403, "agent_unpublished");
}

/// The run a session JWT opened, as the admin API shows it.
async fn run_record(lobby: &Lobby, jwt: &str) -> Value {
    let sid = jwt_parts(jwt).1["sid"]
        .as_str()
        .expect("sid claim")
        .to_owned();
    let (s, record) = lobby
        .admin_json(Method::GET, &format!("/sessions/{sid}"), None)
        .await;
    assert_eq!(s, 200, "{record}");
    record
}

#[tokio::test]
async fn an_agent_has_a_bounded_number_of_open_runs_and_a_refusal_writes_nothing() {
    let lobby = Lobby::start(LobbyOptions {
        extra_env: vec![("LOBBY_AGENT_RUN_MAX_OPEN".into(), "3".into())],
        ..Default::default()
    })
    .await;
    let call = Call { lobby: &lobby };
    let (account, _, key) = agent_with_key(&lobby).await;
    let mut runs = Vec::new();
    for _ in 0..3 {
        runs.push(call.token(&key).await);
    }
    let before = lobby.redis.snapshot().await;
    let (s, b) = call.create(&key, None).await;
    assert_refused(s, &b, 429, "open_runs_limit");
    assert_eq!(
        lobby.redis.snapshot().await,
        before,
        "a refused run wrote to Redis"
    );

    // Another agent of the same account has its own cap.
    let (_, other_key) = lobby.create_agent_with_key(&account, json!({})).await;
    call.token(&other_key).await;

    // Ending a run gives its place back.
    let (s, ended) = call
        .send(Method::POST, END, &[(TOKEN_HEADER, runs[0].as_str())], None)
        .await;
    assert_eq!(s, 200, "{ended}");
    call.token(&key).await;
    let (s, b) = call.create(&key, None).await;
    assert_refused(s, &b, 429, "open_runs_limit");
}

#[tokio::test]
async fn an_idle_run_ends_and_gives_its_place_back_while_a_busy_one_stays_open() {
    let lobby = Lobby::start(LobbyOptions {
        extra_env: vec![
            ("LOBBY_AGENT_RUN_MAX_OPEN".into(), "2".into()),
            ("LOBBY_AGENT_RUN_IDLE_TIMEOUT_SECONDS".into(), "2".into()),
        ],
        ..Default::default()
    })
    .await;
    let call = Call { lobby: &lobby };
    let (_, _, key) = agent_with_key(&lobby).await;
    let idle = call.token(&key).await;
    let busy = call.token(&key).await;
    // The busy run sends an event every half second for 4 s: twice its
    // idle timeout, so only its events keep it open.
    for i in 0..8 {
        assert_eq!(call.event(&busy, &format!("tick{i}")).await.0, 201);
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let record = run_record(&lobby, &idle).await;
        if record["status"] == "ended" {
            assert_eq!(record["ended_reason"], "idle_timeout", "{record}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the idle run never ended: {record}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(run_record(&lobby, &busy).await["status"], "active");
    let (s, b) = call.event(&idle, "too-late").await;
    assert_refused(s, &b, 403, "session_ended");
    // The idle run's place is free again: a new run opens beside the busy one.
    call.token(&key).await;
}
