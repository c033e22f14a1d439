//! Presence rules, driven by signed LiveKit webhooks: the user and the agent
//! each have a join deadline, and after the last user leaves an agent with a
//! `solo_timeout_seconds` waits alone that long (a user coming back cancels
//! it) before the session ends.

use lobby_tests::{webhooks, Lobby, LobbyOptions};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

fn env() -> Vec<(String, String)> {
    vec![
        ("LOBBY_SWEEP_INTERVAL_MS".into(), "100".into()),
        ("LOBBY_USER_JOIN_TIMEOUT_MS".into(), "120000".into()),
        ("LOBBY_AGENT_JOIN_TIMEOUT_MS".into(), "60000".into()),
    ]
}

async fn status_after(lobby: &Lobby, id: &str, wait: Duration) -> Value {
    tokio::time::sleep(wait).await;
    lobby
        .admin_json(Method::GET, &format!("/sessions/{id}"), None)
        .await
        .1
}

struct Room<'a> {
    lobby: &'a Lobby,
    name: String,
    agent: String,
    n: u32,
}

impl Room<'_> {
    async fn send(&mut self, kind: &str, identity: &str) -> Value {
        self.n += 1;
        let participant = if identity == self.agent {
            json!({ "identity": identity, "kind": "AGENT" })
        } else {
            json!({ "identity": identity })
        };
        let body = webhooks::event(
            kind,
            &format!("EV_{}_{}", self.name, self.n),
            &self.name,
            lobby_tests::now_ms() / 1000,
            Some(participant),
        );
        let (s, b) = webhooks::post(&self.lobby.http, self.lobby.gateway(), body).await;
        assert_eq!(s, 200, "{b}");
        b
    }
}

async fn worker_session(lobby: &Lobby, solo_timeout_seconds: u32) -> (String, String) {
    let account = lobby.create_account(5).await;
    let agent = lobby
        .create_agent(
            &account,
            json!({ "requires_worker": true, "solo_timeout_seconds": solo_timeout_seconds }),
        )
        .await;
    let r: Value = lobby
        .connect(&agent, None)
        .await
        .json()
        .await
        .expect("json");
    let id = r["session_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_owned();
    let (_, record) = lobby
        .admin_json(Method::GET, &format!("/sessions/{id}"), None)
        .await;
    (
        id,
        record["agent_identity"]
            .as_str()
            .expect("agent identity")
            .to_owned(),
    )
}

#[tokio::test]
async fn a_user_who_never_joins_ends_the_session() {
    let lobby = Lobby::start(LobbyOptions {
        extra_env: env(),
        ..Default::default()
    })
    .await;
    let account = lobby.create_account(2).await;
    let agent = lobby.create_agent(&account, json!({})).await;
    let r: Value = lobby
        .connect(&agent, None)
        .await
        .json()
        .await
        .expect("json");
    let id = r["session_id"].as_str().expect("id").to_owned();
    lobby.advance_clock(119_000);
    assert_eq!(
        status_after(&lobby, &id, Duration::from_millis(400)).await["status"],
        "active"
    );
    lobby.advance_clock(2_000);
    let record = status_after(&lobby, &id, Duration::from_millis(600)).await;
    assert_eq!(record["ended_reason"], "user_join_timeout", "{record}");
    assert_eq!(lobby.active_sessions(&account).await, 0);
}

#[tokio::test]
async fn an_agent_that_never_joins_ends_the_session() {
    let lobby = Lobby::start(LobbyOptions {
        extra_env: env(),
        ..Default::default()
    })
    .await;
    let (id, agent) = worker_session(&lobby, 0).await;
    let mut room = Room {
        lobby: &lobby,
        name: format!("lobby-{id}"),
        agent,
        n: 0,
    };
    assert_eq!(
        room.send("participant_joined", "the-user").await["action"],
        "recorded"
    );
    lobby.advance_clock(61_000);
    let record = status_after(&lobby, &id, Duration::from_millis(600)).await;
    assert_eq!(record["ended_reason"], "agent_join_timeout", "{record}");
}

#[tokio::test]
async fn once_both_joined_no_join_deadline_ends_the_session() {
    let lobby = Lobby::start(LobbyOptions {
        extra_env: env(),
        ..Default::default()
    })
    .await;
    let (id, agent) = worker_session(&lobby, 0).await;
    let mut room = Room {
        lobby: &lobby,
        name: format!("lobby-{id}"),
        agent: agent.clone(),
        n: 0,
    };
    room.send("participant_joined", &agent).await;
    room.send("participant_joined", "the-user").await;
    lobby.advance_clock(200_000);
    assert_eq!(
        status_after(&lobby, &id, Duration::from_millis(500)).await["status"],
        "active"
    );
}

#[tokio::test]
async fn an_agent_alone_past_its_solo_timeout_ends_the_session_unless_the_user_returns() {
    let lobby = Lobby::start(LobbyOptions {
        extra_env: env(),
        ..Default::default()
    })
    .await;
    let (id, agent) = worker_session(&lobby, 30).await;
    let mut room = Room {
        lobby: &lobby,
        name: format!("lobby-{id}"),
        agent: agent.clone(),
        n: 0,
    };
    room.send("participant_joined", &agent).await;
    room.send("participant_joined", "the-user").await;
    // The user leaves: the agent waits alone instead of ending at once...
    assert_eq!(
        room.send("participant_left", "the-user").await["action"],
        "alone"
    );
    lobby.advance_clock(20_000);
    assert_eq!(
        status_after(&lobby, &id, Duration::from_millis(400)).await["status"],
        "active"
    );
    // ...the user comes back, which cancels the wait...
    room.send("participant_joined", "the-user").await;
    lobby.advance_clock(20_000);
    assert_eq!(
        status_after(&lobby, &id, Duration::from_millis(400)).await["status"],
        "active"
    );
    // ...and leaves for good: 30 s alone ends it.
    room.send("participant_left", "the-user").await;
    lobby.advance_clock(31_000);
    let record = status_after(&lobby, &id, Duration::from_millis(600)).await;
    assert_eq!(record["ended_reason"], "solo_timeout", "{record}");
}
