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

/// The cluster client on its own, while `redis-cli --cluster reshard` moves
/// slots between masters under it: every command and transaction answered,
/// through `ASK` while a slot migrates and `MOVED` once it has.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cluster_client_follows_a_resharding_without_an_error() {
    use lobby_tests::redis_server::RedisServer;
    let dir = lobby_tests::scratch_dir("reshard");
    let redis = RedisServer::start_cluster(&dir, 3, false);
    let conn = redis.connection().await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..16)
        .map(|w| {
            let (mut conn, stop) = (conn.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut done, mut failed) = (0u64, Vec::new());
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    for k in 0..50 {
                        let tag = format!("{{t{}}}", w * 50 + k);
                        let counted: redis::RedisResult<i64> = redis::cmd("INCR")
                            .arg(format!("{tag}:n"))
                            .query_async(&mut conn)
                            .await;
                        // A transaction of the same slot, as the stores send.
                        let both: redis::RedisResult<()> = redis::pipe()
                            .atomic()
                            .hset(format!("{tag}:h"), "f", done)
                            .ignore()
                            .zadd(format!("{tag}:z"), "m", done)
                            .ignore()
                            .query_async(&mut conn)
                            .await;
                        match (counted, both) {
                            (Ok(_), Ok(())) => done += 1,
                            (c, b) => failed.push(format!("{c:?} {b:?}")),
                        }
                    }
                }
                (done, failed)
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let node_id = |port: u16| {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &port.to_string(), "CLUSTER", "MYID"])
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let ports = redis.ports();
    let (from, to) = (node_id(ports[0]), node_id(ports[1]));
    let resharded = tokio::task::spawn_blocking(move || {
        std::process::Command::new("redis-cli")
            .args(["--cluster", "reshard", &format!("127.0.0.1:{}", ports[0])])
            .args(["--cluster-from", &from, "--cluster-to", &to])
            .args(["--cluster-slots", "1500", "--cluster-yes"])
            .args(["--cluster-pipeline", "10"])
            .output()
            .expect("redis-cli --cluster reshard")
    })
    .await
    .expect("reshard");
    assert!(
        resharded.status.success(),
        "reshard failed: {}",
        String::from_utf8_lossy(&resharded.stdout)
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut done, mut failed) = (0, Vec::new());
    for w in workers {
        let (d, mut f) = w.await.expect("worker");
        done += d;
        failed.append(&mut f);
    }
    println!(
        "reshard of 1500 slots under load: {done} commands and transactions answered, {} failed",
        failed.len()
    );
    assert!(done > 0);
    assert!(
        failed.is_empty(),
        "failed during the reshard: {:#?}",
        &failed[..failed.len().min(5)]
    );
}
