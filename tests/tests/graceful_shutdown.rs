//! SIGTERM, as Kubernetes sends it, in the middle of a burst of starts: the
//! gateway takes itself out of rotation (`/healthz` 503 `draining`), keeps
//! serving through its drain delay, lets every request in flight finish, and
//! exits by itself. No start is lost (every one is answered) and none is
//! left half-done (each answered start is a live session, nothing else is).
//! The gRPC services do the same (health NOT_SERVING from the signal on),
//! and a draining rooms service tells its GPU workers to reconnect
//! elsewhere: they do, with their sessions still running.

use lobby_tests::{
    worker::{Behavior, TestWorker},
    Lobby, LobbyOptions, Topology,
};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const DRAIN_DELAY_MS: u64 = 1_500;

/// A Lobby whose processes drain for `delay_ms` after SIGTERM, then have
/// 15 s to finish; no worker.
fn draining_after(delay_ms: u64) -> LobbyOptions {
    LobbyOptions {
        worker: false,
        extra_env: vec![
            ("LOBBY_SHUTDOWN_DRAIN_DELAY_MS".into(), delay_ms.to_string()),
            ("LOBBY_SHUTDOWN_GRACE_MS".into(), "15000".into()),
        ],
        ..Default::default()
    }
}

/// An account and agent with room for every start of a burst (and its
/// stragglers): no limit, minutes or session length refuses one.
async fn room_for_a_burst(lobby: &Lobby) -> (String, String) {
    let account = lobby.create_account(1_000).await;
    lobby
        .patch_account(&account, json!({ "minutes_quota": 1_000_000 }))
        .await;
    let agent = lobby
        .create_agent(&account, json!({ "max_session_seconds": 600 }))
        .await;
    (account, agent)
}

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
    let mut lobby = Lobby::start(draining_after(DRAIN_DELAY_MS)).await;
    let (account, agent) = room_for_a_burst(&lobby).await;
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

/// The process that runs the rooms service in this topology.
fn rooms_process(lobby: &Lobby) -> &'static str {
    match lobby.topology {
        Topology::Split => "rooms",
        Topology::CoLocated => "server-0",
    }
}

#[tokio::test]
async fn sigterm_to_the_session_service_during_200_starts_loses_none() {
    if Topology::from_env() != Topology::Split {
        // Co-located, the session service is the server process: the test
        // above covers it.
        return;
    }
    let mut lobby = Lobby::start(draining_after(DRAIN_DELAY_MS)).await;
    let (account, agent) = room_for_a_burst(&lobby).await;
    let burst: Vec<_> = (0..200).map(|_| start(&lobby, &agent)).collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    lobby.terminate("session");
    let all = answers(burst).await;
    let exited = lobby
        .wait_exit("session", Duration::from_secs(20))
        .await
        .expect("the session service exits by itself after draining");
    assert!(exited.success(), "{exited:?}");
    let failures: Vec<_> = all.iter().filter(|a| !matches!(a, Ok((200, _)))).collect();
    assert!(
        failures.is_empty(),
        "{} of 200 starts not answered 200, e.g. {:?}",
        failures.len(),
        failures.first()
    );
    lobby.restart("session").await;
    assert_eq!(lobby.active_sessions(&account).await, 200);
}

#[tokio::test]
async fn a_draining_rooms_service_sends_its_workers_elsewhere_and_their_sessions_run_on() {
    let mut lobby = Lobby::start(draining_after(500)).await;
    let worker = TestWorker::start(&lobby.workers_door(), "drained", 4, Behavior::Accept).await;
    let account = lobby.create_account(10).await;
    let agent = lobby
        .create_agent(&account, json!({ "requires_worker": true }))
        .await;
    let (status, first) = match start(&lobby, &agent).await.expect("task") {
        Ok(answer) => answer,
        Err(e) => panic!("start: {e}"),
    };
    assert_eq!(status, 200, "{first}");
    let session_id = first["session_id"].as_str().expect("id").to_owned();

    let rooms = rooms_process(&lobby);
    let signalled = Instant::now();
    lobby.terminate(rooms);
    // The worker's stream is the one long-lived call: the process could not
    // finish draining while it stayed open.
    let exited = lobby
        .wait_exit(rooms, Duration::from_secs(20))
        .await
        .expect("rooms exits by itself once its workers left");
    assert!(exited.success(), "{exited:?}");
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "it did not wait out the grace period: {:?}",
        signalled.elapsed()
    );
    lobby.restart(rooms).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while worker.handle.reconnects() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Once: the draining replica refused it meanwhile (UNAVAILABLE), so it
    // waited for a replica that serves instead of attaching to it again.
    assert_eq!(
        worker.handle.reconnects(),
        1,
        "the worker did not attach again, or attached to the draining replica"
    );
    // Its session runs on (the worker kept heartbeating through the new
    // stream), and new jobs reach it there.
    let (s, record) = lobby
        .admin_json(
            reqwest::Method::GET,
            &format!("/sessions/{session_id}"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{record}");
    assert_eq!(record["status"], "active", "{record}");
    // (The session service's channel to rooms may take a moment to find
    // the restarted process: a start meanwhile is refused whole, 502.)
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, second) = match start(&lobby, &agent).await.expect("task") {
            Ok(answer) => answer,
            Err(e) => panic!("start: {e}"),
        };
        if status == 200 {
            break;
        }
        assert!(
            status == 502 && Instant::now() < deadline,
            "{status} {second}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let offered: std::collections::HashSet<String> = worker
        .offered()
        .into_iter()
        .map(|job| job.session_id)
        .collect();
    assert!(offered.len() >= 2, "{offered:?}");
    // And its end report goes through the new stream.
    worker
        .handle
        .session_ended(&session_id, "finished")
        .await
        .expect("report");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, record) = lobby
            .admin_json(
                reqwest::Method::GET,
                &format!("/sessions/{session_id}"),
                None,
            )
            .await;
        if record["status"] == "ended" {
            break;
        }
        assert!(Instant::now() < deadline, "not ended: {record}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_python_sdk_reconnects_when_rooms_drains() {
    let Some(python) = lobby_tests::livekit::project_python() else {
        return;
    };
    let mut lobby = Lobby::start(draining_after(300)).await;
    let repo = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut cmd = std::process::Command::new(&python);
    cmd.arg(repo.join("tests/py/draining_worker.py"))
        .env("PYTHONPATH", repo.join("sdk/worker-python"))
        .env("LOBBY_WORKERS_URL", lobby.workers_door().url)
        .env("LOBBY_WORKER_CA_FILE", lobby.certs.ca())
        .env(
            "LOBBY_WORKER_KEY",
            lobby
                .workers_door()
                .key_for("py-drained", json!({ "pool": "default" }))
                .await,
        )
        .env("WORKER_ID", "py-drained");
    let worker = lobby_tests::process::ChildGuard::spawn("py-drained", cmd, &lobby.dir);
    let said = |what: &str| worker.log_tail().lines().any(|l| l.trim() == what);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !said("reconnects=0") {
        assert!(Instant::now() < deadline, "{}", worker.log_tail());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rooms = rooms_process(&lobby);
    lobby.terminate(rooms);
    let exited = lobby.wait_exit(rooms, Duration::from_secs(10)).await;
    assert!(
        exited.is_some_and(|e| e.success()),
        "rooms did not exit by itself: the worker kept its stream open? {}",
        worker.log_tail()
    );
    lobby.restart(rooms).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !said("reconnects=1") {
        assert!(Instant::now() < deadline, "{}", worker.log_tail());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
