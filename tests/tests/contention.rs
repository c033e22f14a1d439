//! Admission under contention through two gateway processes.

use futures::future::join_all;
use lobby_tests::{Lobby, LobbyOptions};
use serde_json::{json, Value};

const STARTS: usize = 500;
const LIMIT: u32 = 7;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admission_never_exceeds_limit_under_contention() {
    let lobby = Lobby::start(LobbyOptions {
        gateways: 2,
        ..Default::default()
    })
    .await;
    let account = lobby.create_account(LIMIT).await;
    let agent = lobby.create_agent(&account, json!({})).await;

    let starts = (0..STARTS).map(|i| {
        let lobby = &lobby;
        let agent = agent.clone();
        async move {
            let r = lobby
                .connect_via(i % 2, json!({ "agent_id": agent }), None)
                .await;
            let status = r.status().as_u16();
            let body: Value = r.json().await.expect("json body");
            (status, body)
        }
    });
    let results = join_all(starts).await;

    let admitted: Vec<&Value> = results
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| b)
        .collect();
    let refused = results
        .iter()
        .filter(|(s, b)| *s == 429 && b["error_code"] == "concurrency_limit")
        .count();
    assert_eq!(
        admitted.len(),
        LIMIT as usize,
        "exactly the limit is admitted"
    );
    assert_eq!(
        refused,
        STARTS - LIMIT as usize,
        "every other start is a 429"
    );
    assert_eq!(lobby.active_sessions(&account).await, u64::from(LIMIT));

    for b in admitted {
        lobby
            .end_session(b["session_id"].as_str().expect("id"))
            .await;
    }
    assert_eq!(
        lobby.active_sessions(&account).await,
        0,
        "no slot held after all end"
    );
}
