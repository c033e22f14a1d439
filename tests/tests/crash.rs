//! Crash tests with `kill -9`: a worker mid-session, the rooms service
//! mid-start, the session service mid-end, and Redis restarted with AOF on.
//! Afterwards no slot, minute or worker capacity is held by a dead session
//! and no live session lost its record. Each test prints its figures.

use futures::future::join_all;
use lobby_rooms::workers::Registry;
use lobby_tests::{
    avatar_server::AvatarServer,
    process::{binary, ChildGuard},
    worker::{Behavior, TestWorker},
    Lobby, LobbyOptions, Topology,
};
use reqwest::Method;
use serde_json::{json, Value};
use std::{process::Command, time::Duration};

fn crash_env() -> Vec<(String, String)> {
    vec![
        ("LOBBY_SESSION_LEASE_MS".into(), "1500".into()),
        ("LOBBY_SWEEP_INTERVAL_MS".into(), "100".into()),
    ]
}

/// Polls until `check` holds, for at most `within`.
async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn record(lobby: &Lobby, id: &str) -> (u16, Value) {
    lobby
        .admin_json(Method::GET, &format!("/sessions/{id}"), None)
        .await
}

async fn link_for_avatar_agent(lobby: &Lobby, account: &str, avatars: &AvatarServer) -> String {
    let agent = lobby
        .create_agent(
            account,
            json!({ "avatar_image_url": avatars.url("face.jpg") }),
        )
        .await;
    lobby.create_link(account, &agent, json!({})).await["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

async fn link_start(lobby: &Lobby, link: &str) -> (u16, Value) {
    let r = lobby.start_link(&json!({ "link_id": link })).await;
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// What an account and a worker still hold.
async fn held(lobby: &Lobby, account: &str, worker: &str) -> (u64, u64, u32) {
    let usage = lobby.usage(account).await;
    let registry = Registry::new(lobby.redis.connection().await, 10_000);
    let capacity = registry
        .state(worker)
        .await
        .expect("state")
        .map_or(0, |w| w.reserved);
    (
        usage["active_sessions"].as_u64().unwrap_or(u64::MAX),
        usage["reserved_seconds"].as_u64().unwrap_or(u64::MAX),
        capacity,
    )
}

#[tokio::test]
async fn a_worker_killed_mid_session_leaves_nothing_held() {
    let lobby = Lobby::start(LobbyOptions {
        worker: false,
        extra_env: crash_env(),
        ..Default::default()
    })
    .await;
    let avatars = AvatarServer::start().await;
    let account = lobby.create_account(20).await;
    let link = link_for_avatar_agent(&lobby, &account, &avatars).await;

    // The Rust example worker, as its own process, so it can die for real.
    let mut cmd = Command::new(binary("examples/accepting_worker"));
    cmd.env("LOBBY_WORKERS_URL", lobby.workers_door().url)
        .env("LOBBY_WORKER_CA_FILE", lobby.certs.ca())
        .env(
            "LOBBY_WORKER_KEY",
            lobby
                .workers_door()
                .key_for("doomed", serde_json::json!({ "pool": "default" }))
                .await,
        )
        .env("WORKER_ID", "doomed")
        .env("WORKER_CAPACITY", "10")
        .env("SESSION_SECONDS", "3600");
    let mut worker = ChildGuard::spawn("doomed-worker", cmd, &lobby.dir);
    let registry = Registry::new(lobby.redis.connection().await, 10_000);
    assert!(
        eventually(Duration::from_secs(10), || async {
            registry
                .state("doomed")
                .await
                .ok()
                .flatten()
                .is_some_and(|w| w.connected)
        })
        .await,
        "the worker did not attach: {}",
        worker.log_tail()
    );

    const STARTS: usize = 5;
    let mut sessions = Vec::new();
    for _ in 0..STARTS {
        let (status, body) = link_start(&lobby, &link).await;
        assert_eq!(status, 200, "{body}");
        sessions.push(body["session_id"].as_str().expect("id").to_owned());
    }
    // Leases outlive a few heartbeats while the worker lives.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(
        held(&lobby, &account, "doomed").await.0,
        STARTS as u64,
        "heartbeats renew the leases"
    );

    worker.kill(); // kill -9
    let killed_at = std::time::Instant::now();
    let freed = eventually(Duration::from_secs(8), || async {
        held(&lobby, &account, "doomed").await.0 == 0
    })
    .await;
    let freed_after = killed_at.elapsed();
    // The worker counts as gone once its heartbeats are missed for
    // LOBBY_WORKER_HEARTBEAT_EXPIRY_MS (1 s here); from then on nothing
    // renews its sessions' leases, which run out within one lease (1.5 s).
    assert!(freed, "the dead worker's slots were never freed");
    assert!(
        freed_after <= Duration::from_millis(1_000 + 1_500 + 700),
        "slots freed {freed_after:?} after the worker died: more than one lease past its heartbeat expiry"
    );
    println!("worker kill -9: its sessions' slots freed {} ms after (heartbeat expiry 1000 ms + lease 1500 ms)", freed_after.as_millis());
    let all_ended = eventually(Duration::from_secs(8), || async {
        let mut ended = 0;
        for id in &sessions {
            if record(&lobby, id).await.1["ended_reason"] == "lease_expired" {
                ended += 1;
            }
        }
        ended == STARTS
    })
    .await;
    assert!(
        all_ended,
        "every session of the dead worker ended with lease_expired"
    );
    let (slots, minutes, capacity) = held(&lobby, &account, "doomed").await;
    println!("worker kill -9: starts tried {STARTS}, admitted {STARTS}, leaked slots {slots}, reserved seconds {minutes}, worker capacity {capacity}");
    assert_eq!((slots, minutes, capacity), (0, 0, 0));
}

#[tokio::test]
async fn the_rooms_service_killed_mid_start_leaves_nothing_held() {
    let mut env = crash_env();
    // Starts wait on a silent worker long enough to be killed mid-way.
    env.push(("LOBBY_WORKER_ACCEPT_TIMEOUT_MS".into(), "4000".into()));
    let mut lobby = Lobby::start(LobbyOptions {
        topology: Topology::Split,
        worker: false,
        extra_env: env,
        ..Default::default()
    })
    .await;
    let avatars = AvatarServer::start().await;
    let account = lobby.create_account(20).await;
    let link = link_for_avatar_agent(&lobby, &account, &avatars).await;
    let _silent = TestWorker::start(&lobby.workers_door(), "silent", 20, Behavior::Silent).await;

    const STARTS: usize = 6;
    let starts = join_all((0..STARTS).map(|_| link_start(&lobby, &link)));
    let killer = async {
        tokio::time::sleep(Duration::from_millis(600)).await;
        lobby.crash("rooms");
    };
    let (results, ()) = tokio::join!(starts, killer);
    let admitted = results.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(
        admitted, 0,
        "no start can succeed without the rooms service: {results:?}"
    );
    assert!(
        results
            .iter()
            .all(|(s, b)| *s == 502 && b["error"] == "orchestrator_error"),
        "{results:?}"
    );

    lobby.restart("rooms").await;
    // The reaper releases what the dead rooms service had taken.
    let clean = eventually(Duration::from_secs(10), || async {
        held(&lobby, &account, "silent").await == (0, 0, 0)
    })
    .await;
    let (slots, minutes, capacity) = held(&lobby, &account, "silent").await;
    println!("rooms kill -9 mid-start: starts tried {STARTS}, admitted {admitted}, leaked slots {slots}, reserved seconds {minutes}, worker capacity {capacity}");
    assert!(
        clean,
        "held after cleanup: slots {slots}, seconds {minutes}, worker capacity {capacity}"
    );
    let uses = lobby
        .admin_json(Method::GET, &format!("/links/{link}"), None)
        .await
        .1["uses"]
        .clone();
    assert_eq!(uses, json!(0), "every failed start gave its link use back");
}

#[tokio::test]
async fn the_session_service_killed_mid_end_keeps_every_record_and_frees_on_retry() {
    let mut lobby = Lobby::start(LobbyOptions {
        topology: Topology::Split,
        extra_env: crash_env(),
        ..Default::default()
    })
    .await;
    let account = lobby.create_account(100).await;
    let agent = lobby
        .create_agent(&account, json!({ "max_session_seconds": 300 }))
        .await;
    const STARTS: usize = 80;
    let mut sessions = Vec::new();
    for _ in 0..STARTS {
        let r: Value = lobby
            .connect(&agent, None)
            .await
            .json()
            .await
            .expect("json");
        sessions.push(r["session_id"].as_str().expect("id").to_owned());
    }
    let ends = join_all(sessions.iter().map(|id| {
        lobby
            .admin(Method::POST, &format!("/sessions/{id}/end"))
            .send()
    }));
    let killer = async {
        tokio::time::sleep(Duration::from_millis(4)).await;
        lobby.crash("session");
    };
    let (ends, ()) = tokio::join!(ends, killer);
    let ended_before_kill = ends
        .iter()
        .filter(|r| r.as_ref().is_ok_and(|r| r.status() == 200))
        .count();

    lobby.restart("session").await;
    for id in &sessions {
        let (status, r) = record(&lobby, id).await;
        assert_eq!(status, 200, "no session lost its record: {id}");
        assert!(r["status"] == "active" || r["status"] == "ended", "{r}");
        // The end is idempotent: retrying finishes what the crash cut short.
        let retried = lobby.end_session(id).await;
        assert_eq!(retried["status"], "ended");
    }
    let usage = lobby.usage(&account).await;
    println!(
        "session kill -9 mid-end: sessions {STARTS}, ended before the kill {ended_before_kill}, leaked slots {}, reserved seconds {}",
        usage["active_sessions"], usage["reserved_seconds"]
    );
    assert_eq!(
        (
            usage["active_sessions"].clone(),
            usage["reserved_seconds"].clone()
        ),
        (json!(0), json!(0))
    );
}

#[tokio::test]
async fn redis_restarted_with_aof_keeps_sessions_and_their_slots() {
    let mut env = crash_env();
    // Leases outlast the restart: what is tested here is the AOF (a Redis
    // down longer than a lease frees its slots, by design).
    env.push(("LOBBY_SESSION_LEASE_MS".into(), "15000".into()));
    let mut lobby = Lobby::start(LobbyOptions {
        redis_aof: true,
        extra_env: env,
        ..Default::default()
    })
    .await;
    let account = lobby.create_account(10).await;
    let agent = lobby
        .create_agent(&account, json!({ "max_concurrency": 3 }))
        .await;
    let mut sessions = Vec::new();
    for _ in 0..3 {
        let r: Value = lobby
            .connect(&agent, None)
            .await
            .json()
            .await
            .expect("json");
        sessions.push(r["session_id"].as_str().expect("id").to_owned());
    }
    lobby.end_session(&sessions[0]).await;
    // appendfsync everysec: give the last writes their second.
    tokio::time::sleep(Duration::from_millis(1200)).await;

    lobby.redis.crash_and_restart(); // kill -9, then the same port and AOF
    let healthy = eventually(Duration::from_secs(10), || async {
        lobby
            .http
            .get(format!("{}/healthz", lobby.gateway()))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(healthy, "services reconnect to the restarted Redis");
    // Each service's keep-alive ping replaces its dead connection within 0.5 s.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(record(&lobby, &sessions[0]).await.1["status"], "ended");
    for id in &sessions[1..] {
        assert_eq!(
            record(&lobby, id).await.1["status"],
            "active",
            "live sessions kept their records"
        );
    }
    assert_eq!(lobby.active_sessions(&account).await, 2, "and their slots");
    // The agent limit still counts them: one more fits, then it is full.
    assert_eq!(lobby.connect(&agent, None).await.status(), 200);
    assert_eq!(lobby.connect(&agent, None).await.status(), 429);
    for id in &sessions[1..] {
        lobby.end_session(id).await;
    }
    println!(
        "redis kill -9 + AOF restart: sessions 3, records kept 3, slots held by live sessions 2"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_every_service_mid_run_leaves_no_unswept_slot() {
    lobby_tests::sustained::no_unswept_slot_after_a_kill_mid_run(false).await;
}
