//! The Daily provider, against a local stand-in for Daily's REST API (Daily
//! cannot be reached from here: `lobby_tests::daily_mock` answers with the
//! documented response shapes and records any request that deviates from
//! the documented request shapes). Daily's `meeting.ended` webhook is signed
//! here exactly as Daily documents it: HMAC-SHA256 under the base64-decoded
//! secret over `<timestamp>.<body>`, base64.

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use lobby_tests::{avatar_server::AvatarServer, daily_mock::DailyMock, Lobby, LobbyOptions};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;
use std::time::Duration;

const WEBHOOK_SECRET: &[u8] = b"daily webhook secret for tests";

async fn lobby_on(daily: &DailyMock, reconcile: bool) -> Lobby {
    let mut env = daily.env();
    env.push((
        "LOBBY_DAILY_WEBHOOK_SECRET".into(),
        B64.encode(WEBHOOK_SECRET),
    ));
    env.push(("LOBBY_RECONCILE_GRACE_MS".into(), "0".into()));
    env.push(("LOBBY_SWEEP_INTERVAL_MS".into(), "100".into()));
    // Rooms are checked at each lease renewal (every third of a lease): a
    // short lease makes the check quick; a long one keeps it out of the way.
    env.push((
        "LOBBY_SESSION_LEASE_MS".into(),
        if reconcile { "900" } else { "3600000" }.into(),
    ));
    Lobby::start(LobbyOptions {
        extra_env: env,
        ..Default::default()
    })
    .await
}

fn signed(body: &str, timestamp: &str) -> String {
    use hmac::Mac;
    let mut mac = <hmac::Hmac<Sha256> as Mac>::new_from_slice(WEBHOOK_SECRET).expect("hmac");
    mac.update(format!("{timestamp}.{body}").as_bytes());
    B64.encode(mac.finalize().into_bytes())
}

async fn record(lobby: &Lobby, id: &str) -> Value {
    lobby
        .admin_json(Method::GET, &format!("/sessions/{id}"), None)
        .await
        .1
}

#[tokio::test]
async fn connect_on_a_daily_agent_opens_a_daily_room_with_an_expiring_token() {
    let daily = DailyMock::start().await;
    let lobby = lobby_on(&daily, false).await;
    let account = lobby.create_account(2).await;
    let agent = lobby
        .create_agent(
            &account,
            json!({ "provider": "daily", "max_session_seconds": 900 }),
        )
        .await;
    let r = lobby
        .connect_via(
            0,
            json!({ "agent_id": agent, "client_user_ref": "caller-1" }),
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    let b: Value = r.json().await.expect("json");
    let session_id = b["session_id"].as_str().expect("id").to_owned();
    let room = format!("lobby-{session_id}");
    assert_eq!(
        b["room_url"],
        format!("https://lobby-test.daily.co/{room}"),
        "seed 000's room_url is the Daily room"
    );
    assert_eq!(b["token"], format!("daily-token-{room}-user"));

    let now_s = lobby_tests::now_ms() / 1000;
    daily.recorded(|r| {
        assert!(
            r.violations.is_empty(),
            "requests off Daily's documented shape: {:?}",
            r.violations
        );
        assert_eq!(r.rooms.len(), 1);
        let exp = r.rooms[0]["properties"]["exp"].as_i64().expect("exp");
        assert!(
            (now_s + 900..=now_s + 940).contains(&exp),
            "the room expires with the reservation: {exp}"
        );
        assert_eq!(r.tokens.len(), 1);
        let props = &r.tokens[0]["properties"];
        assert_eq!(props["room_name"], room.as_str());
        assert_eq!(props["user_name"], "caller-1");
        assert_eq!(props["is_owner"], false);
        assert_eq!(props["exp"], r.rooms[0]["properties"]["exp"]);
    });

    lobby.end_session(&session_id).await;
    daily.recorded(|r| {
        assert_eq!(
            r.deleted,
            std::slice::from_ref(&room),
            "ending deletes the Daily room"
        )
    });
    assert_eq!(lobby.active_sessions(&account).await, 0);
}

#[tokio::test]
async fn a_link_start_on_daily_mints_a_user_token_and_an_owner_token_for_the_agent() {
    let daily = DailyMock::start().await;
    let avatars = AvatarServer::start().await;
    let lobby = lobby_on(&daily, false).await;
    let account = lobby.create_account(2).await;
    let agent = lobby
        .create_agent(
            &account,
            json!({ "provider": "daily", "avatar_image_url": avatars.url("face.jpg") }),
        )
        .await;
    let link = lobby.create_link(&account, &agent, json!({})).await;
    let r = lobby.start_link(&json!({ "link_id": link["id"] })).await;
    assert_eq!(r.status(), 200);
    daily.recorded(|r| {
        assert!(r.violations.is_empty(), "{:?}", r.violations);
        let owners: Vec<&Value> = r
            .tokens
            .iter()
            .filter(|t| t["properties"]["is_owner"] == true)
            .collect();
        assert_eq!((r.tokens.len(), owners.len()), (2, 1));
        assert_eq!(owners[0]["properties"]["user_name"], "lobby-avatar-agent");
    });
}

#[tokio::test]
async fn daily_down_is_room_creation_failed_and_frees_the_slot() {
    let daily = DailyMock::start().await;
    let lobby = lobby_on(&daily, false).await;
    let account = lobby.create_account(1).await;
    let agent = lobby
        .create_agent(&account, json!({ "provider": "daily" }))
        .await;
    daily.fail(true);
    for _ in 0..2 {
        let r = lobby.connect(&agent, None).await;
        assert_eq!(r.status(), 502);
        let b: Value = r.json().await.expect("json");
        assert_eq!(b["error_code"], "room_creation_failed");
    }
    assert_eq!(lobby.active_sessions(&account).await, 0);
    daily.fail(false);
    assert_eq!(lobby.connect(&agent, None).await.status(), 200);
}

#[tokio::test]
async fn a_signed_meeting_ended_webhook_ends_the_session_and_a_forged_one_does_not() {
    let daily = DailyMock::start().await;
    let lobby = lobby_on(&daily, false).await;
    let account = lobby.create_account(1).await;
    let agent = lobby
        .create_agent(&account, json!({ "provider": "daily" }))
        .await;
    let b: Value = lobby
        .connect(&agent, None)
        .await
        .json()
        .await
        .expect("json");
    let session_id = b["session_id"].as_str().expect("id").to_owned();
    let now = lobby_tests::now_ms() as f64 / 1000.0;
    let body = json!({
        "version": "1.0.0",
        "type": "meeting.ended",
        "id": "ev-meeting-ended-1",
        "payload": { "start_ts": now - 30.0, "end_ts": now, "meeting_id": "m-1", "room": format!("lobby-{session_id}") },
        "event_ts": now,
    })
    .to_string();
    let timestamp = format!("{}", now as i64);
    let post = |signature: String| {
        lobby
            .http
            .post(format!("{}/webhooks/daily", lobby.gateway()))
            .header("content-type", "application/json")
            .header("x-webhook-timestamp", timestamp.clone())
            .header("x-webhook-signature", signature)
            .body(body.clone())
            .send()
    };
    let forged = post(B64.encode([1u8; 32])).await.expect("post");
    assert_eq!(forged.status(), 401);
    assert_eq!(record(&lobby, &session_id).await["status"], "active");

    let ok = post(signed(&body, &timestamp)).await.expect("post");
    assert_eq!(ok.status(), 200);
    let outcome: Value = ok.json().await.expect("json");
    assert_eq!(outcome["action"], "ended", "{outcome}");
    let ended = record(&lobby, &session_id).await;
    assert_eq!(ended["ended_reason"], "provider_room_finished");
    assert_eq!(lobby.active_sessions(&account).await, 0);
    // Daily stops delivering after a few non-200 answers: a verified replay
    // is answered 200, and acted on no further.
    let replay = post(signed(&body, &timestamp)).await.expect("post");
    assert_eq!(replay.status(), 200, "a replay");
    let replay: Value = replay.json().await.expect("json");
    assert_eq!(replay["action"], "duplicate", "{replay}");

    // A verified event too old to act on: 200, "stale".
    let old = now - 3600.0;
    let stale_body = json!({
        "version": "1.0.0",
        "type": "meeting.ended",
        "id": "ev-meeting-ended-old",
        "payload": { "room": format!("lobby-{session_id}") },
        "event_ts": old,
    })
    .to_string();
    let stale_ts = format!("{}", old as i64);
    let stale = lobby
        .http
        .post(format!("{}/webhooks/daily", lobby.gateway()))
        .header("x-webhook-timestamp", stale_ts.clone())
        .header("x-webhook-signature", signed(&stale_body, &stale_ts))
        .body(stale_body)
        .send()
        .await
        .expect("post");
    assert_eq!(stale.status(), 200);
    let stale: Value = stale.json().await.expect("json");
    assert_eq!(stale["action"], "stale", "{stale}");
}

/// Daily checks an endpoint before it creates the webhook (and so before
/// the secret exists): the check is unsigned and must get a 200.
#[tokio::test]
async fn dailys_verification_ping_is_answered_200() {
    let daily = DailyMock::start().await;
    let lobby = lobby_on(&daily, false).await;
    let ping = lobby
        .http
        .post(format!("{}/webhooks/daily", lobby.gateway()))
        .header("content-type", "application/json")
        .body(r#"{"test":"test"}"#)
        .send()
        .await
        .expect("post");
    assert_eq!(ping.status(), 200);
    // Anything else unsigned is still refused.
    let unsigned = lobby
        .http
        .post(format!("{}/webhooks/daily", lobby.gateway()))
        .body(r#"{"type":"meeting.ended","id":"x","event_ts":1,"test":"test"}"#)
        .send()
        .await
        .expect("post");
    assert_eq!(unsigned.status(), 401);
}

#[tokio::test]
async fn the_reconciler_ends_daily_sessions_whose_room_is_gone() {
    let daily = DailyMock::start().await;
    let lobby = lobby_on(&daily, true).await;
    let account = lobby.create_account(2).await;
    let agent = lobby
        .create_agent(&account, json!({ "provider": "daily" }))
        .await;
    let b: Value = lobby
        .connect(&agent, None)
        .await
        .json()
        .await
        .expect("json");
    let session_id = b["session_id"].as_str().expect("id").to_owned();
    daily.drop_room(&format!("lobby-{session_id}"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut state = record(&lobby, &session_id).await;
    while state["status"] != "ended" && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        state = record(&lobby, &session_id).await;
    }
    assert_eq!(state["ended_reason"], "room_missing", "{state}");
    assert_eq!(lobby.active_sessions(&account).await, 0);
}
