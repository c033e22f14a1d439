//! SIGTERM, as Kubernetes sends it, in the middle of a burst of starts: the
//! gateway takes itself out of rotation (`/healthz` 503 `draining`), keeps
//! serving through its drain delay, lets every request in flight finish, and
//! exits by itself. No start is lost (every one is answered) and none is
//! left half-done (each answered start is a live session, nothing else is).

use lobby_tests::{Lobby, LobbyOptions};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const DRAIN_DELAY_MS: u64 = 1_500;

/// A start on its own task: its status and body, or why it got none.
fn start(lobby: &Lobby, agent: &str) -> tokio::task::JoinHandle<Result<(u16, Value), String>> {
    let request = lobby
        .http
        .post(format!("{}/v1/public/agents/connect", lobby.gateway()))
        .json(&json!({ "agent_id": agent }));
    tokio::spawn(async move {
        let r = request.send().await.map_err(|e| e.to_string())?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    })
}

async fn answers(
    tasks: Vec<tokio::task::JoinHandle<Result<(u16, Value), String>>>,
) -> Vec<Result<(u16, Value), String>> {
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("start task"));
    }
    out
}

#[tokio::test]
async fn sigterm_during_200_starts_loses_none_and_leaves_none_half_done() {
    let mut lobby = Lobby::start(LobbyOptions {
        worker: false,
        extra_env: vec![
            (
                "LOBBY_SHUTDOWN_DRAIN_DELAY_MS".into(),
                DRAIN_DELAY_MS.to_string(),
            ),
            ("LOBBY_SHUTDOWN_GRACE_MS".into(), "15000".into()),
        ],
        ..Default::default()
    })
    .await;
    let account = lobby.create_account(1_000).await;
    lobby
        .patch_account(&account, json!({ "minutes_quota": 1_000_000 }))
        .await;
    let agent = lobby
        .create_agent(&account, json!({ "max_session_seconds": 600 }))
        .await;
    let process = lobby.gateway_process();

    let burst: Vec<_> = (0..200).map(|_| start(&lobby, &agent)).collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let signalled = Instant::now();
    lobby.terminate(process);
    // Out of rotation at once, while still serving: a load balancer that
    // has not noticed yet loses nothing.
    let mut draining = Value::Null;
    for _ in 0..20 {
        let r = lobby
            .http
            .get(format!("{}/healthz", lobby.gateway()))
            .send()
            .await
            .expect("healthz while draining");
        if r.status() == 503 {
            draining = r.json().await.expect("json");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(draining["status"], "draining", "{draining}");
    let late: Vec<_> = (0..20).map(|_| start(&lobby, &agent)).collect();

    let mut all = answers(burst).await;
    all.extend(answers(late).await);
    let exited = lobby
        .wait_exit(process, Duration::from_secs(20))
        .await
        .expect("the gateway exits by itself after draining");
    assert!(exited.success(), "{exited:?}");
    assert!(
        signalled.elapsed() >= Duration::from_millis(DRAIN_DELAY_MS),
        "it kept serving through the drain delay"
    );
    let failures: Vec<_> = all.iter().filter(|a| !matches!(a, Ok((200, _)))).collect();
    assert!(
        failures.is_empty(),
        "{} of {} starts not answered 200, e.g. {:?}",
        failures.len(),
        all.len(),
        failures.first()
    );
    let ids: std::collections::HashSet<&str> = all
        .iter()
        .filter_map(|a| a.as_ref().ok()?.1["session_id"].as_str())
        .collect();
    assert_eq!(ids.len(), 220);

    // Nothing half-done: exactly the answered sessions hold a slot.
    lobby.restart(process).await;
    assert_eq!(lobby.active_sessions(&account).await, 220);
}
