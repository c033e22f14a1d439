//! The admin API: bootstrap-token guard, account and agent CRUD with clear
//! 400s, and the idempotent end of a session.

use lobby_tests::{lobby::ADMIN_TOKEN, Lobby, LobbyOptions};
use reqwest::Method;
use serde_json::{json, Value};

async fn call(lobby: &Lobby, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = lobby.admin(method, path);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("admin call");
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}")),
    )
}

#[tokio::test]
async fn admin_api_requires_the_bootstrap_token() {
    let lobby = Lobby::start(LobbyOptions::default()).await;
    let url = format!("{}/admin/v1/accounts", lobby.gateway());
    let none = lobby.http.get(&url).send().await.expect("call");
    assert_eq!(none.status(), 401);
    let body: Value = none.json().await.expect("json");
    assert_eq!(body["error_code"], "unauthorized");
    let wrong = lobby
        .http
        .get(&url)
        .bearer_auth("test-admin-token-0123456780")
        .send()
        .await
        .expect("call");
    assert_eq!(wrong.status(), 401);
    let prefix = lobby
        .http
        .get(&url)
        .bearer_auth(&ADMIN_TOKEN[..10])
        .send()
        .await
        .expect("call");
    assert_eq!(prefix.status(), 401);
    let right = lobby
        .http
        .get(&url)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("call");
    assert_eq!(right.status(), 200);
}

#[tokio::test]
async fn accounts_are_created_read_updated_and_listed() {
    let lobby = Lobby::start(LobbyOptions::default()).await;
    let (s, a) = call(
        &lobby,
        Method::POST,
        "/accounts",
        Some(json!({ "name": "Acme" })),
    )
    .await;
    assert_eq!(s, 201, "{a}");
    let id = a["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("acct_"));
    assert_eq!(a["max_concurrency"], 5, "default");
    assert_eq!(a["minutes_quota"], 600, "default");

    let (s, got) = call(&lobby, Method::GET, &format!("/accounts/{id}"), None).await;
    assert_eq!((s, &got["name"]), (200, &json!("Acme")));

    let (s, upd) = call(
        &lobby,
        Method::PATCH,
        &format!("/accounts/{id}"),
        Some(json!({ "max_concurrency": 9 })),
    )
    .await;
    assert_eq!(s, 200, "{upd}");
    assert_eq!(upd["max_concurrency"], 9);
    assert_eq!(upd["name"], "Acme", "untouched fields stay");

    let (s, list) = call(&lobby, Method::GET, "/accounts", None).await;
    assert_eq!(s, 200);
    assert!(list["accounts"]
        .as_array()
        .expect("list")
        .iter()
        .any(|a| a["id"] == id.as_str()));

    let (s, dup) = call(&lobby, Method::POST, "/accounts", Some(json!({ "id": id }))).await;
    assert_eq!((s, &dup["error_code"]), (409, &json!("already_exists")));
    let (s, missing) = call(&lobby, Method::GET, "/accounts/acct_nope", None).await;
    assert_eq!(
        (s, &missing["error_code"]),
        (404, &json!("account_not_found"))
    );

    for (label, body) in [
        ("zero concurrency", json!({ "max_concurrency": 0 })),
        ("negative concurrency", json!({ "max_concurrency": -1 })),
        ("unknown field", json!({ "max_concurency": 3 })),
        ("bad id", json!({ "id": "acct_../x" })),
        ("wrong type", json!({ "name": 5 })),
    ] {
        let (s, e) = call(&lobby, Method::POST, "/accounts", Some(body)).await;
        assert_eq!(
            (s, &e["error_code"]),
            (400, &json!("invalid_request")),
            "{label}: {e}"
        );
    }
    let (s, e) = call(
        &lobby,
        Method::PATCH,
        &format!("/accounts/{id}"),
        Some(json!({ "max_concurrency": 0 })),
    )
    .await;
    assert_eq!(s, 400, "{e}");
}

#[tokio::test]
async fn agents_are_created_read_updated_and_listed_per_account() {
    let lobby = Lobby::start(LobbyOptions::default()).await;
    let account = lobby.create_account(3).await;
    let other = lobby.create_account(3).await;
    let (s, a) = call(
        &lobby,
        Method::POST,
        "/agents",
        Some(json!({
            "id": "support-bot",
            "account_id": account,
            "allowed_hostnames": ["Example.COM", "https://*.example.org", "http://localhost:3000"],
            "max_concurrency": 2,
            "max_session_seconds": 900,
            "avatar_image_url": "https://cdn.example.com/a.png",
            "provider": "livekit"
        })),
    )
    .await;
    assert_eq!(s, 201, "{a}");
    assert_eq!(
        a["status"], "unpublished",
        "agents start unpublished unless told"
    );
    assert_eq!(
        a["allowed_hostnames"],
        json!([
            "example.com",
            "https://*.example.org",
            "http://localhost:3000"
        ]),
        "entries are stored canonical"
    );
    lobby
        .create_agent(&other, json!({ "id": "elsewhere" }))
        .await;

    let (s, upd) = call(
        &lobby,
        Method::PATCH,
        "/agents/support-bot",
        Some(json!({ "status": "published", "allowed_hostnames": ["*"] })),
    )
    .await;
    assert_eq!(s, 200, "{upd}");
    assert_eq!(upd["status"], "published");
    assert_eq!(upd["allowed_hostnames"], json!(["*"]));
    assert_eq!(upd["max_session_seconds"], 900);
    let (s, e) = call(
        &lobby,
        Method::PATCH,
        "/agents/support-bot",
        Some(json!({ "solo_timeout_seconds": 86_401 })),
    )
    .await;
    assert_eq!(
        (s, &e["error_code"]),
        (400, &json!("invalid_request")),
        "a solo wait past a day: {e}"
    );

    let (s, list) = call(
        &lobby,
        Method::GET,
        &format!("/agents?account_id={account}"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let ids: Vec<&str> = list["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .filter_map(|a| a["id"].as_str())
        .collect();
    assert_eq!(ids, ["support-bot"]);

    for (label, body) in [
        ("unknown account", json!({ "account_id": "acct_nope" })),
        (
            "bad hostname",
            json!({ "account_id": account, "allowed_hostnames": ["https://a.com/path"] }),
        ),
        (
            "bad wildcard",
            json!({ "account_id": account, "allowed_hostnames": ["*.com"] }),
        ),
        (
            "zero session length",
            json!({ "account_id": account, "max_session_seconds": 0 }),
        ),
        (
            "solo wait past a day",
            json!({ "account_id": account, "solo_timeout_seconds": 86_401 }),
        ),
        (
            "bad status",
            json!({ "account_id": account, "status": "live" }),
        ),
        (
            "bad provider",
            json!({ "account_id": account, "provider": "zoom" }),
        ),
        (
            "bad avatar url",
            json!({ "account_id": account, "avatar_image_url": "ftp://x" }),
        ),
        (
            "bad id",
            json!({ "account_id": account, "id": "has space" }),
        ),
        ("missing account", json!({})),
    ] {
        let (s, e) = call(&lobby, Method::POST, "/agents", Some(body)).await;
        assert_eq!(
            (s, &e["error_code"]),
            (400, &json!("invalid_request")),
            "{label}: {e}"
        );
    }
    let (s, e) = call(&lobby, Method::GET, "/agents/nope", None).await;
    assert_eq!((s, &e["error_code"]), (404, &json!("agent_not_found")));
}

#[tokio::test]
async fn ending_a_session_is_idempotent_and_frees_its_slot() {
    let lobby = Lobby::start(LobbyOptions::default()).await;
    let account = lobby.create_account(2).await;
    let agent = lobby.create_agent(&account, json!({})).await;
    let r: Value = lobby
        .connect(&agent, None)
        .await
        .json()
        .await
        .expect("json");
    let id = r["session_id"].as_str().expect("id");
    assert_eq!(lobby.active_sessions(&account).await, 1);

    let first = lobby.end_session(id).await;
    assert_eq!(first["status"], "ended");
    assert_eq!(first["ended_reason"], "explicit_end");
    assert!(first["ended_at_ms"].as_i64().is_some_and(|t| t > 0));
    let second = lobby.end_session(id).await;
    assert_eq!(first, second, "a second end changes nothing");
    assert_eq!(lobby.active_sessions(&account).await, 0);

    let (s, e) = call(&lobby, Method::POST, "/sessions/not-a-session/end", None).await;
    assert_eq!((s, &e["error_code"]), (404, &json!("session_not_found")));
    let (s, e) = call(
        &lobby,
        Method::POST,
        &format!("/sessions/{id}/end"),
        Some(json!({ "reason": "because" })),
    )
    .await;
    assert_eq!((s, &e["error_code"]), (400, &json!("invalid_request")));
}

/// Credentials never reach the logs, even at debug level: not a link id
/// (anyone holding one starts sessions), not a key, not the admin token.
#[tokio::test]
async fn no_credential_appears_in_any_log() {
    let lobby = lobby_tests::Lobby::start(lobby_tests::LobbyOptions {
        extra_env: vec![("LOBBY_LOG".into(), "debug".into())],
        ..Default::default()
    })
    .await;
    let avatars = lobby_tests::avatar_server::AvatarServer::start().await;
    let account = lobby.create_account(5).await;
    let (agent, agent_key) = lobby
        .create_agent_with_key(
            &account,
            serde_json::json!({ "avatar_image_url": avatars.url("face.jpg") }),
        )
        .await;
    let link = lobby
        .create_link(&account, &agent, serde_json::json!({}))
        .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let started = lobby
        .start_link(&serde_json::json!({ "link_id": link, "aspect_ratio": "1:1" }))
        .await;
    assert_eq!(started.status(), 200);
    let _ = lobby
        .admin_json(Method::GET, &format!("/links/{link}"), None)
        .await;
    let _ = lobby
        .admin_json(Method::POST, &format!("/links/{link}/deactivate"), None)
        .await;
    let run = lobby
        .http
        .post(format!("{}/api/agent/v1/session/create/", lobby.gateway()))
        .header("X-OTAS-AGENT-KEY", &agent_key)
        .send()
        .await
        .expect("create");
    assert_eq!(run.status(), 200);
    let worker_key = lobby
        .workers_door()
        .key_for("logged", serde_json::json!({ "pool": "default" }))
        .await;
    let mut tried = 0;
    for secret in [
        &link,
        &agent_key,
        &worker_key,
        &lobby_tests::lobby::ADMIN_TOKEN.to_owned(),
    ] {
        tried += 1;
        for name in lobby.service_names() {
            let log = lobby.log(&name);
            assert!(!log.is_empty(), "{name} logged nothing at debug");
            assert!(
                !log.contains(secret.as_str()),
                "{name}'s log holds a credential"
            );
        }
    }
    println!("logs: {tried} of {tried} credentials kept out of every log");
}

/// A revocation racing a re-activation of the same key is never undone:
/// every change to a key is a compare-and-set.
#[tokio::test]
async fn a_revocation_racing_other_key_changes_always_sticks() {
    let lobby = Lobby::start(LobbyOptions::default()).await;
    let account = lobby.create_account(5).await;
    let mut rounds = 0;
    for _ in 0..20 {
        let key = lobby.create_api_key(&account, &["sessions:read"]).await;
        let prefix = key.split('_').nth(1).expect("prefix").to_owned();
        let toggles = (0..8).map(|i| {
            let prefix = prefix.clone();
            let lobby = &lobby;
            async move {
                lobby
                    .admin_json(
                        Method::PATCH,
                        &format!("/keys/{prefix}"),
                        Some(json!({ "active": i % 2 == 0 })),
                    )
                    .await
            }
        });
        let revoke_path = format!("/keys/{prefix}/revoke");
        let revoke = lobby.admin_json(Method::POST, &revoke_path, None);
        let (_, (status, _)) = tokio::join!(futures::future::join_all(toggles), revoke);
        assert_eq!(status, 200);
        let (_, keys) = lobby
            .admin_json(Method::GET, &format!("/accounts/{account}/api-keys"), None)
            .await;
        let key = keys["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .find(|k| k["prefix"] == prefix.as_str())
            .expect("the key")
            .clone();
        assert!(
            key["revoked_at_ms"].as_i64().is_some_and(|t| t > 0),
            "revocation lost: {key}"
        );
        rounds += 1;
    }
    println!("keys: {rounds} of {rounds} raced revocations stuck");
}
