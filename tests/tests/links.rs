//! Seed 002 (shareable links): the contract replayed, every refusal in the
//! seed's `{success: false, …}` shape, uses that are atomic under contention
//! and given back when a start fails, and `/v1/links` behind API-key scopes.

use futures::future::join_all;
use lobby_tests::{avatar_server::AvatarServer, Lobby, LobbyOptions, RoomProvider};
use reqwest::Method;
use serde_json::{json, Value};

async fn start(lobby: &Lobby, gateway: usize, body: Value) -> (u16, Value) {
    let r = lobby
        .http
        .post(format!(
            "{}/v1/links/start-session",
            lobby.gateways[gateway]
        ))
        .json(&body)
        .send()
        .await
        .expect("start");
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}")),
    )
}

fn assert_refused(status: u16, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["error"], want_code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

async fn uses(lobby: &Lobby, link_id: &str) -> u64 {
    let (s, b) = lobby
        .admin_json(Method::GET, &format!("/links/{link_id}"), None)
        .await;
    assert_eq!(s, 200, "{b}");
    b["uses"].as_u64().expect("uses")
}

/// An account and an agent whose avatar (a face) the returned server serves.
async fn account_with_avatar_agent(
    lobby: &Lobby,
    max_concurrency: u32,
) -> (String, String, AvatarServer) {
    let avatars = AvatarServer::start().await;
    let account = lobby.create_account(max_concurrency).await;
    let agent = lobby
        .create_agent(
            &account,
            json!({ "avatar_image_url": avatars.url("face.jpg") }),
        )
        .await;
    (account, agent, avatars)
}

#[tokio::test]
async fn start_session_replays_the_seed_example() {
    let lobby = Lobby::start(LobbyOptions::default()).await;
    let (account, agent, _avatars) = account_with_avatar_agent(&lobby, 3).await;
    let link = lobby.create_link(&account, &agent, json!({})).await;
    let link_id = link["id"].as_str().expect("id");
    assert!(link_id.starts_with("lnk_"));

    let (s, b) = start(
        &lobby,
        0,
        json!({ "link_id": link_id, "aspect_ratio": "1:1" }),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let keys: Vec<&String> = b.as_object().expect("object").keys().collect();
    assert_eq!(
        keys,
        [
            "agent_identity",
            "livekit_url",
            "participant_token",
            "session_id",
            "success"
        ]
    );
    assert_eq!(b["success"], true);
    let session_id = b["session_id"].as_str().expect("session_id");
    assert!(
        session_id.starts_with("sess_")
            && session_id.len() == "sess_01H3Z8G9YR3K2N5M6P7Q8W4T".len(),
        "{session_id}"
    );
    assert_eq!(b["livekit_url"], "ws://127.0.0.1:7880");
    assert_eq!(b["agent_identity"], "lobby-avatar-agent");

    let claims = livekit_api::access_token::TokenVerifier::with_api_key("devkey", "secret")
        .verify(b["participant_token"].as_str().expect("token"))
        .expect("user token verifies");
    assert_eq!(claims.video.room, format!("lobby-{session_id}"));
    assert_ne!(
        claims.sub, "lobby-avatar-agent",
        "the user is not the agent"
    );
    assert!(!claims.video.agent);

    let (s, record) = lobby
        .admin_json(Method::GET, &format!("/sessions/{session_id}"), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(record["kind"], "link");
    assert_eq!(record["link_id"], link_id);
    assert_eq!(record["aspect_ratio"], "1:1");
    assert_eq!(record["agent_identity"], "lobby-avatar-agent");
    assert_eq!(record["status"], "active");
    assert_eq!(uses(&lobby, link_id).await, 1, "the use was counted");
    assert_eq!(
        lobby.active_sessions(&account).await,
        1,
        "it counts against the owner's limits"
    );

    // The agent's token goes to the worker in its job, never to the caller.
    let worker = lobby.worker.as_ref().expect("test worker");
    let job = worker
        .offered()
        .into_iter()
        .find(|j| j.session_id == session_id)
        .expect("the worker was offered the session");
    let agent_claims = livekit_api::access_token::TokenVerifier::with_api_key("devkey", "secret")
        .verify(&job.agent_token)
        .expect("agent token verifies");
    assert_eq!(agent_claims.sub, "lobby-avatar-agent");
    assert_eq!(agent_claims.video.room, claims.video.room, "same room");
    assert!(agent_claims.video.agent);
}

#[tokio::test]
async fn aspect_ratio_defaults_to_4_3_when_missing_or_invalid() {
    let lobby = Lobby::start(LobbyOptions::default()).await;
    let (account, agent, _avatars) = account_with_avatar_agent(&lobby, 10).await;
    let link = lobby.create_link(&account, &agent, json!({})).await;
    let id = link["id"].as_str().expect("id");
    for (ratio, want) in [
        (None, "4:3"),
        (Some(json!("3:4")), "3:4"),
        (Some(json!("16:9")), "4:3"),
        (Some(json!(5)), "4:3"),
        (Some(json!(null)), "4:3"),
    ] {
        let mut body = json!({ "link_id": id });
        if let Some(r) = ratio.clone() {
            body["aspect_ratio"] = r;
        }
        let (s, b) = start(&lobby, 0, body).await;
        assert_eq!(s, 200, "{ratio:?}: {b}");
        let (_, record) = lobby
            .admin_json(
                Method::GET,
                &format!("/sessions/{}", b["session_id"].as_str().expect("id")),
                None,
            )
            .await;
        assert_eq!(record["aspect_ratio"], want, "{ratio:?}");
    }
}

#[tokio::test]
async fn invalid_links_are_refused_in_the_seed_shape() {
    let lobby = Lobby::start(LobbyOptions::default()).await;
    let (account, agent, avatars) = account_with_avatar_agent(&lobby, 10).await;
    let no_avatar = lobby.create_agent(&account, json!({})).await;
    let unpublished = lobby
        .create_agent(
            &account,
            json!({ "avatar_image_url": avatars.url("face.jpg"), "status": "unpublished" }),
        )
        .await;

    let (s, b) = start(&lobby, 0, json!({})).await;
    assert_refused(s, &b, 400, "invalid_request");
    let (s, b) = start(&lobby, 0, json!({ "link_id": "" })).await;
    assert_refused(s, &b, 400, "invalid_request");
    let (s, b) = start(&lobby, 0, json!({ "link_id": 7 })).await;
    assert_refused(s, &b, 400, "invalid_request");
    for unknown in ["lnk_doesnotexist", "not-a-link", "lnk_../../x"] {
        let (s, b) = start(&lobby, 0, json!({ "link_id": unknown })).await;
        assert_refused(s, &b, 404, "link_not_found");
    }

    let inactive = lobby.create_link(&account, &agent, json!({})).await;
    let id = inactive["id"].as_str().expect("id");
    lobby
        .admin_json(Method::POST, &format!("/links/{id}/deactivate"), None)
        .await;
    let (s, b) = start(&lobby, 0, json!({ "link_id": id })).await;
    assert_refused(s, &b, 403, "link_inactive");

    let expiring = lobby
        .create_link(
            &account,
            &agent,
            json!({ "expires_at": lobby_tests::now_ms() + 60_000 }),
        )
        .await;
    let id = expiring["id"].as_str().expect("id");
    assert_eq!(start(&lobby, 0, json!({ "link_id": id })).await.0, 200);
    lobby.advance_clock(60_001);
    let (s, b) = start(&lobby, 0, json!({ "link_id": id })).await;
    assert_refused(s, &b, 410, "link_expired");

    let once = lobby
        .create_link(&account, &agent, json!({ "use_limit": 1 }))
        .await;
    let id = once["id"].as_str().expect("id");
    assert_eq!(start(&lobby, 0, json!({ "link_id": id })).await.0, 200);
    let (s, b) = start(&lobby, 0, json!({ "link_id": id })).await;
    assert_refused(s, &b, 403, "link_used_up");

    for (agent_id, status, code) in [
        (&no_avatar, 422, "avatar_missing"),
        (&unpublished, 403, "agent_unpublished"),
    ] {
        let link = lobby.create_link(&account, agent_id, json!({})).await;
        let id = link["id"].as_str().expect("id");
        let (s, b) = start(&lobby, 0, json!({ "link_id": id })).await;
        assert_refused(s, &b, status, code);
        assert_eq!(
            uses(&lobby, id).await,
            0,
            "{code}: a refused start takes no use"
        );
    }
}

#[tokio::test]
async fn a_refused_or_failed_start_gives_its_use_back() {
    let dead = lobby_tests::free_port();
    let lobby = Lobby::start(LobbyOptions {
        provider: RoomProvider::LiveKit {
            ws_url: format!("ws://127.0.0.1:{dead}"),
            http_url: format!("http://127.0.0.1:{dead}"),
        },
        ..Default::default()
    })
    .await;
    let (account, agent, _avatars) = account_with_avatar_agent(&lobby, 1).await;
    let link = lobby
        .create_link(&account, &agent, json!({ "use_limit": 2 }))
        .await;
    let id = link["id"].as_str().expect("id");
    for _ in 0..3 {
        let (s, b) = start(&lobby, 0, json!({ "link_id": id })).await;
        assert_refused(s, &b, 502, "room_creation_failed");
    }
    assert_eq!(
        uses(&lobby, id).await,
        0,
        "every failed start gave its use back"
    );
    assert_eq!(lobby.active_sessions(&account).await, 0);
}

#[tokio::test]
async fn quota_refusals_are_429_and_give_the_use_back() {
    let lobby = Lobby::start(LobbyOptions::default()).await;
    let (account, agent, _avatars) = account_with_avatar_agent(&lobby, 1).await;
    let link = lobby
        .create_link(&account, &agent, json!({ "use_limit": 5 }))
        .await;
    let id = link["id"].as_str().expect("id");
    assert_eq!(start(&lobby, 0, json!({ "link_id": id })).await.0, 200);
    let r = lobby.start_link(&json!({ "link_id": id })).await;
    assert!(r.headers().get("retry-after").is_some());
    let (s, b) = (r.status().as_u16(), r.json::<Value>().await.expect("json"));
    assert_refused(s, &b, 429, "concurrency_limit");
    assert!(
        b["retry_after_seconds"].as_u64().is_some_and(|r| r > 0),
        "{b}"
    );
    assert_eq!(
        uses(&lobby, id).await,
        1,
        "the refused start's use came back"
    );
}

#[tokio::test]
async fn use_limit_admits_exactly_n_under_contention() {
    const STARTS: usize = 200;
    const LIMIT: u64 = 9;
    let lobby = Lobby::start(LobbyOptions {
        gateways: 2,
        ..Default::default()
    })
    .await;
    let (account, agent, _avatars) = account_with_avatar_agent(&lobby, 1000).await;
    let link = lobby
        .create_link(&account, &agent, json!({ "use_limit": LIMIT }))
        .await;
    let id = link["id"].as_str().expect("id").to_owned();
    let results = join_all((0..STARTS).map(|i| {
        let (lobby, id) = (&lobby, id.clone());
        async move { start(lobby, i % 2, json!({ "link_id": id })).await }
    }))
    .await;
    let admitted = results.iter().filter(|(s, _)| *s == 200).count() as u64;
    let used_up = results
        .iter()
        .filter(|(s, b)| *s == 403 && b["error"] == "link_used_up")
        .count();
    assert_eq!(admitted, LIMIT, "exactly use_limit starts");
    assert_eq!(
        used_up,
        STARTS - LIMIT as usize,
        "every other start is link_used_up"
    );
    assert_eq!(uses(&lobby, &id).await, LIMIT);
}

#[tokio::test]
async fn links_api_needs_an_api_key_with_links_write() {
    let lobby = Lobby::start(LobbyOptions {
        gateways: 2,
        ..Default::default()
    })
    .await;
    let (account, agent, _avatars) = account_with_avatar_agent(&lobby, 3).await;
    let (other_account, other_agent, _other_avatars) = account_with_avatar_agent(&lobby, 3).await;
    let writer = lobby.create_api_key(&account, &["links:write"]).await;
    let reader = lobby.create_api_key(&account, &["sessions:read"]).await;
    let admin = lobby.create_api_key(&account, &["admin"]).await;
    let call = |gateway: usize,
                method: Method,
                path: &str,
                auth: Option<(&'static str, String)>,
                body: Option<Value>| {
        let mut req = lobby
            .http
            .request(method, format!("{}{path}", lobby.gateways[gateway]));
        if let Some((name, value)) = auth {
            req = req.header(name, value);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move {
            let r = req.send().await.expect("call");
            (r.status().as_u16(), r.json::<Value>().await.expect("json"))
        }
    };

    let (s, b) = call(
        0,
        Method::POST,
        "/v1/links",
        None,
        Some(json!({ "agent_id": agent })),
    )
    .await;
    assert_refused(s, &b, 401, "key_missing");
    let (s, b) = call(
        0,
        Method::POST,
        "/v1/links",
        Some(("x-api-key", reader.clone())),
        Some(json!({ "agent_id": agent })),
    )
    .await;
    assert_refused(s, &b, 403, "scope_denied");
    let (s, b) = call(
        0,
        Method::POST,
        "/v1/links",
        Some(("x-api-key", "lby_nope".into())),
        Some(json!({ "agent_id": agent })),
    )
    .await;
    assert_refused(s, &b, 401, "key_malformed");

    let (s, created) = call(
        0,
        Method::POST,
        "/v1/links",
        Some(("x-api-key", writer.clone())),
        Some(json!({ "agent_id": agent, "use_limit": 3 })),
    )
    .await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["success"], true);
    let link_id = created["link"]["id"].as_str().expect("id").to_owned();
    assert_eq!(created["link"]["use_limit"], 3);
    let bearer = Some(("authorization", format!("Bearer {writer}")));
    let (s, listed) = call(1, Method::GET, "/v1/links", bearer.clone(), None).await;
    assert_eq!(s, 200, "{listed}");
    assert_eq!(listed["links"].as_array().expect("links").len(), 1);
    let (s, _) = call(
        1,
        Method::GET,
        &format!("/v1/links/{link_id}"),
        Some(("x-api-key", admin.clone())),
        None,
    )
    .await;
    assert_eq!(s, 200, "admin carries every scope");

    // Another account's agents and links do not exist for this key.
    let (s, b) = call(
        0,
        Method::POST,
        "/v1/links",
        Some(("x-api-key", writer.clone())),
        Some(json!({ "agent_id": other_agent })),
    )
    .await;
    assert_refused(s, &b, 400, "invalid_request");
    let foreign = lobby
        .create_link(&other_account, &other_agent, json!({}))
        .await;
    let foreign_id = foreign["id"].as_str().expect("id");
    let (s, b) = call(
        0,
        Method::GET,
        &format!("/v1/links/{foreign_id}"),
        Some(("x-api-key", writer.clone())),
        None,
    )
    .await;
    assert_refused(s, &b, 404, "link_not_found");
    let (s, b) = call(
        0,
        Method::DELETE,
        &format!("/v1/links/{foreign_id}"),
        Some(("x-api-key", writer.clone())),
        None,
    )
    .await;
    assert_refused(s, &b, 404, "link_not_found");

    let (s, b) = call(
        0,
        Method::DELETE,
        &format!("/v1/links/{link_id}"),
        Some(("x-api-key", writer.clone())),
        None,
    )
    .await;
    assert_eq!((s, &b["link"]["active"]), (200, &json!(false)), "{b}");

    // Revocation reaches every gateway replica within a second (each
    // co-located replica has its own cache, invalidated over pub/sub).
    let prefix = writer.split('_').nth(1).expect("prefix");
    lobby
        .admin_json(Method::POST, &format!("/keys/{prefix}/revoke"), None)
        .await;
    for gateway in 0..2 {
        let began = std::time::Instant::now();
        let (s, b) = loop {
            let (s, b) = call(
                gateway,
                Method::GET,
                "/v1/links",
                Some(("x-api-key", writer.clone())),
                None,
            )
            .await;
            if s == 403 || began.elapsed() > std::time::Duration::from_secs(1) {
                break (s, b);
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        assert_refused(s, &b, 403, "key_revoked");
    }

    let (s, expiring) = lobby
        .admin_json(
            Method::POST,
            &format!("/accounts/{account}/api-keys"),
            Some(json!({ "scopes": ["links:write"], "expires_at_ms": lobby_tests::now_ms() + 10_000 })),
        )
        .await;
    assert_eq!(s, 201);
    let expiring = expiring["key"].as_str().expect("key").to_owned();
    assert_eq!(
        call(
            0,
            Method::GET,
            "/v1/links",
            Some(("x-api-key", expiring.clone())),
            None
        )
        .await
        .0,
        200
    );
    lobby.advance_clock(10_001);
    let (s, b) = call(
        0,
        Method::GET,
        "/v1/links",
        Some(("x-api-key", expiring)),
        None,
    )
    .await;
    assert_refused(s, &b, 401, "key_expired");

    for bad in [
        json!({ "scopes": [] }),
        json!({ "scopes": ["everything"] }),
        json!({ "scopes": ["admin"], "expires_at_ms": 5 }),
    ] {
        let (s, b) = lobby
            .admin_json(
                Method::POST,
                &format!("/accounts/{account}/api-keys"),
                Some(bad),
            )
            .await;
        assert_eq!(
            (s, &b["error_code"]),
            (400, &json!("invalid_request")),
            "{b}"
        );
    }
}
