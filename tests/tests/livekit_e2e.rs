//! Against a real `livekit-server --dev` on loopback: the room exists on the
//! server after a start, LiveKit's own Python SDK accepts the token we mint,
//! and ending the session deletes the room.

use lobby_tests::{avatar_server::AvatarServer, livekit, Lobby, LobbyOptions, Webhooks};
use serde_json::{json, Value};

#[tokio::test]
async fn started_session_has_a_real_room_and_a_token_livekit_accepts() {
    let Some((server, lobby)) = Lobby::start_on_livekit(
        "started_session_has_a_real_room_and_a_token_livekit_accepts",
        Webhooks::Off,
        LobbyOptions::default(),
    )
    .await
    else {
        return;
    };
    let account = lobby.create_account(2).await;
    let agent = lobby.create_agent(&account, json!({})).await;

    let r = lobby
        .connect_via(
            0,
            json!({ "agent_id": agent, "client_user_ref": "caller-7" }),
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    let session_id = body["session_id"].as_str().expect("id");
    let room = format!("lobby-{session_id}");
    assert_eq!(body["room_url"], server.ws_url().as_str());

    let rooms = server
        .room_client()
        .list_rooms(vec![room.clone()])
        .await
        .expect("list rooms");
    assert_eq!(rooms.len(), 1, "the room exists on the LiveKit server");
    assert_eq!(rooms[0].name, room);
    assert_eq!(rooms[0].max_participants, 4);
    assert_eq!(rooms[0].empty_timeout, 300);

    let claims = livekit::verify_with_python_sdk(body["token"].as_str().expect("token"));
    assert_eq!(claims["verified"], true, "{claims}");
    assert_eq!(claims["identity"], "caller-7");
    assert_eq!(claims["room"], room.as_str());
    assert_eq!(claims["room_join"], true);
    assert_eq!(claims["room_admin"], false);

    // A token signed with another secret must be refused by the same SDK,
    // so the check above is not vacuous.
    let forged =
        livekit_api::access_token::AccessToken::with_api_key(livekit::API_KEY, "not-the-secret")
            .with_identity("caller-7")
            .to_jwt()
            .expect("forged token");
    assert_eq!(livekit::verify_with_python_sdk(&forged)["verified"], false);

    lobby.end_session(session_id).await;
    let rooms = server
        .room_client()
        .list_rooms(vec![room])
        .await
        .expect("list rooms");
    assert!(rooms.is_empty(), "ending the session deletes the room");
}

#[tokio::test]
async fn link_start_mints_distinct_user_and_agent_tokens_for_one_room() {
    let Some((server, lobby)) = Lobby::start_on_livekit(
        "link_start_mints_distinct_user_and_agent_tokens_for_one_room",
        Webhooks::Off,
        LobbyOptions::default(),
    )
    .await
    else {
        return;
    };
    let avatars = AvatarServer::start().await;
    let account = lobby.create_account(2).await;
    let agent = lobby
        .create_agent(
            &account,
            json!({ "avatar_image_url": avatars.url("face.jpg") }),
        )
        .await;
    let link = lobby.create_link(&account, &agent, json!({})).await;
    let r = lobby.start_link(&json!({ "link_id": link["id"] })).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["livekit_url"], server.ws_url().as_str());
    let session_id = body["session_id"].as_str().expect("id");
    let room = format!("lobby-{session_id}");
    let rooms = server
        .room_client()
        .list_rooms(vec![room.clone()])
        .await
        .expect("list rooms");
    assert_eq!(
        rooms.len(),
        1,
        "a new room with a unique name exists on the server"
    );

    // The agent's token went to the worker in its job.
    let agent_token = lobby
        .worker
        .as_ref()
        .expect("test worker")
        .offered()
        .into_iter()
        .find(|j| j.session_id == session_id)
        .expect("the worker was offered the session")
        .agent_token;
    let user = livekit::verify_with_python_sdk(body["participant_token"].as_str().expect("token"));
    let agent = livekit::verify_with_python_sdk(&agent_token);
    assert_eq!(
        (user["verified"].clone(), agent["verified"].clone()),
        (json!(true), json!(true))
    );
    assert_eq!(user["room"], room.as_str());
    assert_eq!(agent["room"], room.as_str());
    assert_eq!(agent["identity"], body["agent_identity"]);
    assert_ne!(user["identity"], agent["identity"]);
    assert_eq!(
        (user["agent"].clone(), agent["agent"].clone()),
        (json!(false), json!(true))
    );
}

/// Lazy rooms (`LOBBY_LIVEKIT_ROOMS=lazy`): no `CreateRoom` at start; the
/// room's settings ride in the token and the real server creates the room,
/// with them, when the user joins. Until then the sweeper must not take the
/// missing room for a lost one.
#[tokio::test]
async fn a_lazy_room_is_created_by_the_first_join_with_the_settings_in_the_token() {
    const TEST: &str = "a_lazy_room_is_created_by_the_first_join_with_the_settings_in_the_token";
    let options = LobbyOptions {
        extra_env: vec![
            ("LOBBY_LIVEKIT_ROOMS".into(), "lazy".into()),
            ("LOBBY_LIVEKIT_MAX_PARTICIPANTS".into(), "3".into()),
            ("LOBBY_LIVEKIT_EMPTY_TIMEOUT_SECONDS".into(), "77".into()),
            // Lease checks every 300 ms, rooms counted missing at once.
            ("LOBBY_SESSION_LEASE_MS".into(), "900".into()),
            ("LOBBY_SWEEP_INTERVAL_MS".into(), "100".into()),
            ("LOBBY_RECONCILE_GRACE_MS".into(), "0".into()),
        ],
        ..Default::default()
    };
    let Some((server, lobby)) = Lobby::start_on_livekit(TEST, Webhooks::Off, options).await else {
        return;
    };
    let account = lobby.create_account(2).await;
    let agent = lobby.create_agent(&account, json!({})).await;
    let r = lobby.connect(&agent, None).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    let session_id = body["session_id"].as_str().expect("id").to_owned();
    let room = format!("lobby-{session_id}");
    let rooms = server.room_client();
    assert!(
        rooms
            .list_rooms(vec![room.clone()])
            .await
            .expect("list")
            .is_empty(),
        "a lazy room does not exist before anyone joins"
    );
    // Several lease checks pass with the room still missing: the session lives.
    tokio::time::sleep(std::time::Duration::from_millis(2_000)).await;
    let (_, record) = lobby
        .admin_json(
            reqwest::Method::GET,
            &format!("/sessions/{session_id}"),
            None,
        )
        .await;
    assert_eq!(record["status"], "active", "{record}");

    // The user joins with LiveKit's own SDK and the token we minted.
    let joiner = tokio::process::Command::new(livekit::python())
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("py/join_as_user.py"))
        .args([
            &server.ws_url(),
            body["token"].as_str().expect("token"),
            "nobody",
            "4",
        ])
        .kill_on_drop(true)
        .output();
    let created = async {
        for _ in 0..100 {
            let found = rooms.list_rooms(vec![room.clone()]).await.expect("list");
            if let Some(r) = found.into_iter().next() {
                return Some(r);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        None
    };
    let (joined, created) = tokio::join!(joiner, created);
    let created = created.unwrap_or_else(|| {
        panic!(
            "the first join did not create the room: {:?}",
            joined
                .as_ref()
                .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        )
    });
    assert_eq!(
        (created.max_participants, created.empty_timeout),
        (3, 77),
        "the room was created with the settings from the token"
    );
    // It joined and left cleanly (it exits 1 only because no agent was
    // there to publish audio: this test has no worker).
    let joined = joined.expect("join_as_user.py");
    let seen: Value = serde_json::from_slice(&joined.stdout).unwrap_or_else(|_| {
        panic!(
            "the join failed: {}",
            String::from_utf8_lossy(&joined.stderr)
        )
    });
    assert_eq!(seen["agent_seen"], false);
}
