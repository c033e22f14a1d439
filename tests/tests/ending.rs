//! Ending a session every way this deployment can notice it: the reaper at
//! the deadline (max duration, or reserved minutes run out), a verified
//! LiveKit webhook, and the reconciler when the webhook never arrives. Each
//! way frees the slot; the provider's room goes with the session.

use lobby_tests::{
    livekit,
    webhooks::{event, sign},
    Lobby, LobbyOptions, Topology, Webhooks,
};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

/// Polls the record until it has ended, for at most `within`.
async fn ended(lobby: &Lobby, session_id: &str, within: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let (s, record) = lobby
            .admin_json(Method::GET, &format!("/sessions/{session_id}"), None)
            .await;
        assert_eq!(s, 200, "{record}");
        if record["status"] == "ended" || tokio::time::Instant::now() > deadline {
            return record;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A fast sweeper. Rooms are reconciled at each lease renewal (every third
/// of a lease): short leases only when that is the subject, so the
/// reconciler cannot beat a webhook to the session another test is watching.
fn fast_sweeps(reconcile: bool) -> Vec<(String, String)> {
    let lease_ms = if reconcile { "900" } else { "3600000" };
    vec![
        ("LOBBY_SWEEP_INTERVAL_MS".into(), "100".into()),
        ("LOBBY_SESSION_LEASE_MS".into(), lease_ms.into()),
        ("LOBBY_RECONCILE_GRACE_MS".into(), "0".into()),
    ]
}

async fn start(lobby: &Lobby, agent: &str) -> String {
    let r: Value = lobby.connect(agent, None).await.json().await.expect("json");
    r["session_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no session: {r}"))
        .to_owned()
}

#[tokio::test]
async fn the_reaper_ends_sessions_at_max_duration_or_when_minutes_run_out() {
    let lobby = Lobby::start(LobbyOptions {
        extra_env: fast_sweeps(false),
        ..Default::default()
    })
    .await;
    let account = lobby.create_account(5).await;
    let agent = lobby
        .create_agent(&account, json!({ "max_session_seconds": 60 }))
        .await;
    let full = start(&lobby, &agent).await;

    let short = lobby.create_account(5).await;
    lobby
        .patch_account(&short, json!({ "minutes_quota": 1 }))
        .await;
    let long_agent = lobby
        .create_agent(&short, json!({ "max_session_seconds": 600 }))
        .await;
    let cut_short = start(&lobby, &long_agent).await;

    // Nothing ends early.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        ended(&lobby, &full, Duration::ZERO).await["status"],
        "active"
    );

    lobby.advance_clock(61_000);
    let record = ended(&lobby, &full, Duration::from_secs(5)).await;
    assert_eq!(
        (record["status"].clone(), record["ended_reason"].clone()),
        (json!("ended"), json!("max_duration"))
    );
    let record = ended(&lobby, &cut_short, Duration::from_secs(5)).await;
    assert_eq!(record["ended_reason"], "minutes_exhausted", "{record}");
    assert_eq!(lobby.active_sessions(&account).await, 0);
    assert_eq!(lobby.active_sessions(&short).await, 0);
    assert_eq!(lobby.usage(&short).await["reserved_seconds"], 0);
}

/// A LiveKit server whose webhooks go to the gateway (or are lost).
async fn lobby_with_livekit(
    test: &str,
    webhooks_reach_lobby: bool,
    reconcile: bool,
) -> Option<(livekit::LiveKitServer, Lobby)> {
    let webhooks = if webhooks_reach_lobby {
        Webhooks::ToLobby
    } else {
        Webhooks::Lost
    };
    let options = LobbyOptions {
        extra_env: fast_sweeps(reconcile),
        ..Default::default()
    };
    Lobby::start_on_livekit(test, webhooks, options).await
}

#[tokio::test]
async fn a_room_finished_webhook_ends_the_session() {
    let Some((server, lobby)) =
        lobby_with_livekit("a_room_finished_webhook_ends_the_session", true, false).await
    else {
        return;
    };
    let account = lobby.create_account(1).await;
    let agent = lobby.create_agent(&account, json!({})).await;
    let session = start(&lobby, &agent).await;
    let room = format!("lobby-{session}");

    // The room ends on the provider's side; LiveKit tells us by webhook.
    server
        .room_client()
        .delete_room(&room)
        .await
        .expect("delete room");
    let record = ended(&lobby, &session, Duration::from_secs(10)).await;
    assert_eq!(record["ended_reason"], "provider_room_finished", "{record}");
    assert_eq!(
        lobby.active_sessions(&account).await,
        0,
        "the slot came back"
    );
    assert_eq!(lobby.connect(&agent, None).await.status(), 200);
}

#[tokio::test]
async fn the_reconciler_ends_sessions_whose_webhook_was_lost() {
    let Some((server, lobby)) = lobby_with_livekit(
        "the_reconciler_ends_sessions_whose_webhook_was_lost",
        false,
        true,
    )
    .await
    else {
        return;
    };
    let account = lobby.create_account(2).await;
    let agent = lobby.create_agent(&account, json!({})).await;
    let gone = start(&lobby, &agent).await;
    let kept = start(&lobby, &agent).await;
    server
        .room_client()
        .delete_room(&format!("lobby-{gone}"))
        .await
        .expect("delete room");

    let record = ended(&lobby, &gone, Duration::from_secs(10)).await;
    assert_eq!(record["ended_reason"], "room_missing", "{record}");
    assert_eq!(
        ended(&lobby, &kept, Duration::ZERO).await["status"],
        "active",
        "a room that exists is left alone"
    );
    assert_eq!(lobby.active_sessions(&account).await, 1);
}

#[tokio::test]
async fn max_duration_deletes_the_room_on_the_provider() {
    let Some((server, lobby)) =
        lobby_with_livekit("max_duration_deletes_the_room_on_the_provider", true, false).await
    else {
        return;
    };
    let account = lobby.create_account(1).await;
    let agent = lobby
        .create_agent(&account, json!({ "max_session_seconds": 30 }))
        .await;
    let session = start(&lobby, &agent).await;
    let room = format!("lobby-{session}");
    assert_eq!(
        server
            .room_client()
            .list_rooms(vec![room.clone()])
            .await
            .expect("list")
            .len(),
        1
    );
    lobby.advance_clock(31_000);
    let record = ended(&lobby, &session, Duration::from_secs(5)).await;
    assert_eq!(record["ended_reason"], "max_duration", "{record}");
    assert!(server
        .room_client()
        .list_rooms(vec![room])
        .await
        .expect("list")
        .is_empty());
}

#[tokio::test]
async fn unsigned_tampered_stale_and_replayed_webhooks_are_refused() {
    let lobby = Lobby::start(LobbyOptions::default()).await;
    let account = lobby.create_account(3).await;
    let agent = lobby.create_agent(&account, json!({})).await;
    let session = start(&lobby, &agent).await;
    let room = format!("lobby-{session}");
    let now_s = lobby_tests::now_ms() / 1000;
    let post = |body: String, auth: Option<String>| {
        let mut req = lobby
            .http
            .post(format!("{}/webhooks/livekit", lobby.gateway()))
            .header("content-type", "application/webhook+json")
            .body(body);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        async move {
            let r = req.send().await.expect("post");
            (r.status().as_u16(), r.json::<Value>().await.expect("json"))
        }
    };

    let finished = event("room_finished", "EV_finished", &room, now_s, None);
    let (s, b) = post(finished.clone(), None).await;
    assert_eq!((s, &b["error_code"]), (401, &json!("webhook_unauthorized")));
    let (s, _) = post(finished.clone(), Some(sign(&finished, "not-the-secret"))).await;
    assert_eq!(s, 401, "signed with another secret");
    let tampered = event(
        "room_finished",
        "EV_finished",
        "lobby-someone-else",
        now_s,
        None,
    );
    let (s, _) = post(tampered, Some(sign(&finished, livekit::API_SECRET))).await;
    assert_eq!(s, 401, "the body does not match the signed hash");
    let stale = event("room_finished", "EV_stale", &room, now_s - 3600, None);
    let (s, b) = post(stale.clone(), Some(sign(&stale, livekit::API_SECRET))).await;
    assert_eq!((s, &b["error_code"]), (400, &json!("webhook_stale")));

    // The agent leaving is not the user leaving; an unknown room is not ours.
    let agent_left = event(
        "participant_left",
        "EV_agent_left",
        &room,
        now_s,
        Some(json!({ "identity": "lobby-avatar-agent", "kind": "AGENT" })),
    );
    let (s, b) = post(
        agent_left.clone(),
        Some(sign(&agent_left, livekit::API_SECRET)),
    )
    .await;
    assert_eq!((s, &b["action"]), (200, &json!("ignored")), "{b}");
    let foreign = event(
        "room_finished",
        "EV_foreign",
        "someone-elses-room",
        now_s,
        None,
    );
    let (s, b) = post(foreign.clone(), Some(sign(&foreign, livekit::API_SECRET))).await;
    assert_eq!((s, &b["action"]), (200, &json!("ignored")));
    assert_eq!(
        ended(&lobby, &session, Duration::ZERO).await["status"],
        "active"
    );

    let (s, b) = post(finished.clone(), Some(sign(&finished, livekit::API_SECRET))).await;
    assert_eq!(
        (s, &b["action"], &b["session_id"]),
        (200, &json!("ended"), &json!(session)),
        "{b}"
    );
    let record = ended(&lobby, &session, Duration::ZERO).await;
    assert_eq!(record["ended_reason"], "provider_room_finished");
    let (s, b) = post(finished.clone(), Some(sign(&finished, livekit::API_SECRET))).await;
    assert_eq!((s, &b["error_code"]), (409, &json!("webhook_replayed")));
    assert_eq!(lobby.active_sessions(&account).await, 0);
}

#[tokio::test]
async fn a_webhook_whose_delivery_failed_is_acted_on_when_retried() {
    let mut lobby = Lobby::start(LobbyOptions {
        // About separate processes: one of them is killed.
        topology: Topology::Split,
        ..Default::default()
    })
    .await;
    let account = lobby.create_account(2).await;
    let agent = lobby.create_agent(&account, json!({})).await;
    let session = start(&lobby, &agent).await;
    let left = event(
        "participant_left",
        "EV_left_once",
        &format!("lobby-{session}"),
        lobby_tests::now_ms() / 1000,
        Some(json!({ "identity": "the-user" })),
    );
    // Rooms is down: whether the user was the last cannot be known yet.
    lobby.kill("rooms");
    let (s, b) = lobby_tests::webhooks::post(&lobby.http, lobby.gateway(), left.clone()).await;
    assert_eq!(s, 502, "{b}");
    lobby.restart("rooms").await;
    // LiveKit retries the same event: it must not be refused as a replay.
    let (s, b) = lobby_tests::webhooks::post(&lobby.http, lobby.gateway(), left).await;
    assert_eq!((s, &b["action"]), (200, &json!("ended")), "{b}");
    let record = ended(&lobby, &session, Duration::ZERO).await;
    assert_eq!(record["ended_reason"], "user_left");
    assert_eq!(lobby.active_sessions(&account).await, 0);
}

/// Ended records are kept for LOBBY_ENDED_SESSION_TTL_SECONDS, then go,
/// lookup and all.
#[tokio::test]
async fn ended_records_expire_after_their_retention() {
    let lobby = Lobby::start(LobbyOptions {
        extra_env: vec![("LOBBY_ENDED_SESSION_TTL_SECONDS".into(), "2".into())],
        worker: false,
        ..Default::default()
    })
    .await;
    let account = lobby.create_account(2).await;
    let agent = lobby.create_agent(&account, json!({})).await;
    let session = start(&lobby, &agent).await;
    lobby.end_session(&session).await;
    let (status, record) = lobby
        .admin_json(reqwest::Method::GET, &format!("/sessions/{session}"), None)
        .await;
    assert_eq!(
        (status, &record["status"]),
        (200, &json!("ended")),
        "{record}"
    );
    // The sweeper purges it at the end of its retention (2 s), within a
    // sweep or two.
    let began = std::time::Instant::now();
    loop {
        let (status, body) = lobby
            .admin_json(reqwest::Method::GET, &format!("/sessions/{session}"), None)
            .await;
        let left = lobby.redis.keys(&format!("*{session}*")).await;
        if status == 404 && left.is_empty() {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(8),
            "kept past its retention: {body} {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut conn = lobby.redis.connection().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("*{session}*"))
        .query_async(&mut conn)
        .await
        .expect("keys");
    assert!(keys.is_empty(), "left behind: {keys:?}");
    // Nor does any index still name it (the records contract's, the sweep's).
    for key in lobby.redis.keys("*").await {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .expect("type");
        if kind == "zset" {
            let members: Vec<String> = redis::cmd("ZRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .query_async(&mut conn)
                .await
                .expect("zrange");
            assert!(
                members.iter().all(|m| !m.contains(&session)),
                "{key} still names the purged session"
            );
        }
    }
}
