//! Lobby on a real Redis Cluster (three masters on loopback): admission
//! under contention, a start and its end, and kill -9 of every service in
//! the middle of a sustained run. Every atomic script touches one slot (the
//! account's bucket tag); a cross-slot script would fail here at once.

use futures::future::join_all;
use lobby_tests::{avatar_server::AvatarServer, Lobby, LobbyOptions};
use reqwest::Method;
use serde_json::{json, Value};

fn on_cluster() -> LobbyOptions {
    LobbyOptions {
        redis_cluster: true,
        gateways: 2,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admission_never_exceeds_limit_under_contention_on_a_cluster() {
    const STARTS: usize = 500;
    const LIMIT: u32 = 7;
    let lobby = Lobby::start(on_cluster()).await;
    let account = lobby.create_account(LIMIT).await;
    let agent = lobby.create_agent(&account, json!({})).await;
    let results = join_all((0..STARTS).map(|i| {
        let (lobby, agent) = (&lobby, agent.clone());
        async move {
            let r = lobby
                .connect_via(i % 2, json!({ "agent_id": agent }), None)
                .await;
            r.status().as_u16()
        }
    }))
    .await;
    let admitted = results.iter().filter(|s| **s == 200).count();
    let refused = results.iter().filter(|s| **s == 429).count();
    println!("cluster contention: {STARTS} starts, limit {LIMIT}: admitted {admitted}, refused {refused}");
    assert_eq!(
        (admitted, refused),
        (LIMIT as usize, STARTS - LIMIT as usize)
    );
    assert_eq!(lobby.active_sessions(&account).await, u64::from(LIMIT));
}

#[tokio::test]
async fn a_start_and_its_end_on_a_cluster() {
    let lobby = Lobby::start(on_cluster()).await;
    // Accounts spread over the buckets, so over the masters: several of them.
    for _ in 0..3 {
        let account = lobby.create_account(2).await;
        let agent = lobby.create_agent(&account, json!({})).await;
        let r = lobby.connect(&agent, None).await;
        assert_eq!(r.status(), 200);
        let started: Value = r.json().await.expect("json");
        let id = started["session_id"].as_str().expect("id");
        let (s, record) = lobby
            .admin_json(Method::GET, &format!("/sessions/{id}"), None)
            .await;
        assert_eq!((s, record["status"].as_str()), (200, Some("active")));
        assert_eq!(lobby.active_sessions(&account).await, 1);
        let ended = lobby.end_session(id).await;
        assert_eq!(ended["status"], "ended");
        assert_eq!(lobby.active_sessions(&account).await, 0);
    }
    // A link start: its use counted atomically with the slot, and a worker's
    // keys (under the worker's own tag) reserved and freed.
    let avatars = AvatarServer::start().await;
    let account = lobby.create_account(2).await;
    let agent = lobby
        .create_agent(
            &account,
            json!({ "avatar_image_url": avatars.url("face.jpg") }),
        )
        .await;
    let link = lobby
        .create_link(&account, &agent, json!({ "use_limit": 1 }))
        .await;
    let started = lobby.start_link(&json!({ "link_id": link["id"] })).await;
    assert_eq!(started.status(), 200);
    let body: Value = started.json().await.expect("json");
    let again = lobby.start_link(&json!({ "link_id": link["id"] })).await;
    assert_eq!(again.status(), 403, "the link's one use is taken");
    let ended = lobby
        .end_session(body["session_id"].as_str().expect("id"))
        .await;
    assert_eq!(ended["status"], "ended");
    assert_eq!(lobby.active_sessions(&account).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_every_service_mid_run_leaves_no_unswept_slot_on_a_cluster() {
    lobby_tests::sustained::no_unswept_slot_after_a_kill_mid_run(true).await;
}
