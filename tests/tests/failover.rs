//! Redis failing under a loaded Lobby, as production would see it: a Redis
//! Cluster of three masters with a replica each, a master killed with
//! `kill -9` (and started again later, when it comes back as a replica) or
//! frozen with `SIGSTOP` for longer than the cluster's node timeout; and a
//! single Redis with `appendfsync always` killed and restarted. Meanwhile
//! clients start and end sessions of several accounts, each over its limit.
//!
//! What must hold:
//! - no account ever holds more sessions than its limit (the clients'
//!   history, and Redis sampled every 150 ms);
//! - no admission a client was told of is lost;
//! - the accounts on the masters that did not fail are served throughout;
//! - the failed master's accounts are served again within one second of the
//!   cluster's own failover;
//! - no answer is a 500: a failover is a 503 with `Retry-After`;
//! - once the load is over, no slot is held after one sweep interval.
//!
//! Short by default; `LOBBY_FAILOVER_SECONDS=60` runs a minute of load.

use lobby_tests::{
    failover::{Call, HealthSample, HealthWatch, History, Load, LoadAccount},
    redis_server::{Persistence, RedisServer},
    Lobby, LobbyOptions,
};
use serde_json::json;
use std::time::{Duration, Instant};

const SWEEP_INTERVAL: Duration = Duration::from_millis(250);

/// One failover at a time: each runs six Redis nodes, a Lobby and a load on
/// two cores, and judges timings that a neighbour's load would blur.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
const LIMIT: u32 = 2;
const CLIENTS_PER_ACCOUNT: usize = 3;
/// How soon after the cluster's failover the failed master's accounts must
/// be served again.
const RECOVERY_BOUND: Duration = Duration::from_secs(1);
/// The longest an account whose master never failed may go without an
/// answer (a stall, not one slow request: normal gaps are tens of ms).
const STALL_BOUND: Duration = Duration::from_secs(1);

/// How long the load runs, and when the fault starts and ends, as seconds
/// after the load began.
struct Timeline {
    load: Duration,
    fault_at: Duration,
    mend_at: Duration,
}

fn timeline() -> Timeline {
    let load: u64 = std::env::var("LOBBY_FAILOVER_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(13)
        .max(13);
    let fault_at = (load / 4).max(3);
    Timeline {
        load: Duration::from_secs(load),
        fault_at: Duration::from_secs(fault_at),
        // Long past the failover: the node comes back while load goes on.
        mend_at: Duration::from_secs(fault_at + 6.max(load / 3)),
    }
}

fn options() -> LobbyOptions {
    LobbyOptions {
        worker: false,
        extra_env: vec![(
            "LOBBY_SWEEP_INTERVAL_MS".into(),
            SWEEP_INTERVAL.as_millis().to_string(),
        )],
        ..Default::default()
    }
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    Kill,
    Freeze,
}

/// Accounts until at least three live on `victim` and three elsewhere.
async fn accounts_around(lobby: &Lobby, victim: Option<u16>) -> Vec<(LoadAccount, bool)> {
    let mut accounts = Vec::new();
    let wanted = if victim.is_some() { 60 } else { 6 };
    for _ in 0..wanted {
        let on_victim = accounts.iter().filter(|(_, v)| *v).count();
        if on_victim >= 3 && accounts.len() - on_victim >= 3 {
            break;
        }
        let id = lobby.create_account(LIMIT).await;
        let is_on_victim = match victim {
            Some(port) => lobby.redis.master_of_account(&id) == Some(port),
            None => true,
        };
        let enough_here = if is_on_victim {
            on_victim >= 3
        } else {
            accounts.len() - on_victim >= 3
        };
        if victim.is_some() && enough_here {
            continue;
        }
        let agent = lobby.create_agent(&id, json!({})).await;
        accounts.push((
            LoadAccount {
                id,
                agent,
                limit: LIMIT,
            },
            is_on_victim,
        ));
    }
    accounts
}

/// Polls the cluster from `from` until another master serves `slot`; when.
async fn failover_seen(redis_ports: Vec<u16>, slot: u16, victim: u16, from: Instant) -> Duration {
    tokio::task::spawn_blocking(move || loop {
        let views: Vec<_> = redis_ports
            .iter()
            .filter(|p| **p != victim)
            .filter_map(|p| {
                let text = RedisServer::cluster_nodes(*p)?;
                Some(lobby_kit::redis_cluster::topology::parse_nodes(
                    &text,
                    &format!("127.0.0.1:{p}"),
                ))
            })
            .collect();
        let owner = lobby_kit::redis_cluster::topology::Topology::merge(&views)
            .owner(slot)
            .cloned();
        if owner.is_some_and(|o| !o.ends_with(&format!(":{victim}"))) {
            return from.elapsed();
        }
        assert!(
            from.elapsed() < Duration::from_secs(60),
            "the cluster did not fail over within a minute"
        );
        std::thread::sleep(Duration::from_millis(50));
    })
    .await
    .expect("failover watch")
}

/// What every failover run must show (the accounts marked `true` are the
/// failed master's, `failover_at` when the cluster replaced it); how long
/// after the failover the slowest of them was served again.
fn judge(
    what: &str,
    history: &History,
    accounts: &[(LoadAccount, bool)],
    fault_at: Duration,
    failover_at: Duration,
) -> Duration {
    let mut slowest = Duration::ZERO;
    let mut longest_gap_elsewhere = Duration::ZERO;
    let statuses = history.statuses();
    println!("{what}: answers by status {statuses:?}");
    for (i, (account, on_victim)) in accounts.iter().enumerate() {
        let odd: Vec<String> = history
            .unexpected(i, &[200, 429, 503])
            .iter()
            .map(|a| format!("{:?} {} at {:?}: {}", a.call, a.status, a.sent, a.body))
            .collect();
        assert!(
            odd.is_empty(),
            "{what}: answers that are neither served nor a retryable 503: {odd:#?}"
        );
        let held = history.most_held_at_once(i);
        let sampled = history.most_sampled(i);
        assert!(
            held <= account.limit as usize && sampled <= u64::from(account.limit),
            "{what}: {} held {held} at once by its clients' history and {sampled} in Redis, over its limit {}",
            account.id,
            account.limit
        );
        let unready: Vec<_> = history
            .answers
            .iter()
            .filter(|a| a.account == i && a.status == 503)
            .collect();
        for a in &unready {
            assert!(
                a.retry_after,
                "{what}: a 503 without Retry-After: {}",
                a.body
            );
        }
        if !*on_victim {
            let gap = history.longest_unserved(i);
            longest_gap_elsewhere = longest_gap_elsewhere.max(gap);
            assert!(
                gap < STALL_BOUND,
                "{what}: {} (its master never failed) went {gap:?} without an answer",
                account.id
            );
            assert!(
                unready.is_empty(),
                "{what}: {} (its master never failed) got {} 503s, the first at {:?}: {}",
                account.id,
                unready.len(),
                unready[0].sent,
                unready[0].body
            );
        } else {
            let served = history
                .first_served_after(i, failover_at)
                .expect("served again after the failover");
            slowest = slowest.max(served.saturating_sub(failover_at));
            assert!(
                served <= failover_at + RECOVERY_BOUND,
                "{what}: {} served again {:?} after the failover (the fault at {fault_at:?}, the failover at {failover_at:?}); the bound is {RECOVERY_BOUND:?}",
                account.id,
                served.saturating_sub(failover_at)
            );
        }
    }
    let lost: Vec<_> = history
        .answers
        .iter()
        .filter(|a| a.call == Call::End && a.status == 404)
        .collect();
    assert!(lost.is_empty(), "{what}: admitted sessions lost: {lost:#?}");
    if accounts.iter().any(|(_, v)| !*v) {
        println!(
            "{what}: the longest wait of an account elsewhere for any answer: {} ms",
            longest_gap_elsewhere.as_millis()
        );
    }
    slowest
}

/// One shard failing over takes the gateway out of no traffic, and says so;
/// liveness never fails.
fn stays_ready_and_alive(what: &str, health: &[HealthSample]) {
    let unready: Vec<_> = health.iter().filter(|h| h.ready != 200).collect();
    assert!(
        unready.is_empty(),
        "{what}: /healthz was not 200: {unready:#?}"
    );
    let dead: Vec<_> = health.iter().filter(|h| h.alive != 200).collect();
    assert!(dead.is_empty(), "{what}: /livez was not 200: {dead:#?}");
    assert!(
        health.iter().any(|h| h.redis.starts_with("degraded")),
        "{what}: /healthz never said Redis was degraded: {health:#?}"
    );
}

/// Once the load is over, every slot is free within one sweep interval
/// (and a moment for the last ends' answers); how long it took.
async fn no_slot_held(lobby: &Lobby, accounts: &[(LoadAccount, bool)], what: &str) -> Duration {
    let mut conn = lobby.redis.connection().await;
    // The connection learns the cluster's topology before the clock starts.
    let _: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut conn).await;
    let began = Instant::now();
    let limit = SWEEP_INTERVAL * 2 + Duration::from_millis(500);
    loop {
        let mut held = Vec::new();
        for (a, _) in accounts {
            let count: redis::RedisResult<u64> = redis::cmd("ZCARD")
                .arg(format!(
                    "{}:{}:slots",
                    lobby_kit::keys::account_tag(&a.id),
                    a.id
                ))
                .query_async(&mut conn)
                .await;
            match count {
                Ok(0) => {}
                other => held.push((a.id.clone(), other)),
            }
        }
        if held.is_empty() {
            return began.elapsed();
        }
        assert!(
            began.elapsed() < limit,
            "{what}: slots still held {limit:?} after the load: {held:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn cluster_master_fails(fault: Fault) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let t = timeline();
    let dir = lobby_tests::scratch_dir("failover");
    let redis = RedisServer::start_cluster_with(&dir, 3, 1, Persistence::AofEverySec);
    let mut lobby = Lobby::start_on(redis, dir, options()).await;
    // The master holding the catalog: its failover must not stop the
    // starts of accounts elsewhere (auth serves its cached entries).
    let catalog_slot = lobby_kit::redis_cluster::key_slot(b"catalog");
    let victim = lobby
        .redis
        .master_of_slot(catalog_slot)
        .expect("the catalog's master");
    let accounts = accounts_around(&lobby, Some(victim)).await;
    let load_accounts: Vec<LoadAccount> = accounts.iter().map(|(a, _)| a.clone()).collect();
    let load = Load::start(&lobby, &load_accounts, CLIENTS_PER_ACCOUNT);
    let began = load.began();
    let health = HealthWatch::start(&lobby, began);
    tokio::time::sleep_until((began + t.fault_at).into()).await;
    match fault {
        Fault::Kill => lobby.redis.kill_node(victim),
        Fault::Freeze => lobby.redis.freeze_node(victim),
    }
    let failover_at = failover_seen(lobby.redis.ports(), catalog_slot, victim, began).await;
    tokio::time::sleep_until((began + t.mend_at).into()).await;
    match fault {
        Fault::Kill => lobby.redis.restart_node(victim),
        Fault::Freeze => lobby.redis.thaw_node(victim),
    }
    tokio::time::sleep_until((began + t.load).into()).await;
    let history = load.finish().await;
    let health = health.finish().await;
    let what = format!("{fault:?} of a master ({:?})", lobby.topology);
    stays_ready_and_alive(&what, &health);
    let recovered = judge(&what, &history, &accounts, t.fault_at, failover_at);
    let freed = no_slot_held(&lobby, &accounts, &what).await;
    let rejoined = lobby
        .redis
        .wait_cluster_ok_within(Duration::from_secs(20))
        .expect("the old master rejoins");
    assert_eq!(
        lobby.exited_services(),
        Vec::<String>::new(),
        "no service exited"
    );
    println!(
        "{what}: {} accounts ({} on the failed master), {} admitted, answers {:?}; fault at {:?}, the cluster's failover {} ms later, its accounts served again {} ms after that; the others never refused; every slot free {} ms after the load; cluster ok {:?} after the load",
        accounts.len(),
        accounts.iter().filter(|(_, v)| *v).count(),
        history.admitted().len(),
        history.statuses(),
        t.fault_at,
        failover_at.saturating_sub(t.fault_at).as_millis(),
        recovered.as_millis(),
        freed.as_millis(),
        rejoined,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_cluster_master_fails_over_without_stopping_the_others() {
    cluster_master_fails(Fault::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_master_frozen_past_the_node_timeout_fails_over_and_returns_as_a_replica() {
    cluster_master_fails(Fault::Freeze).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_single_redis_restarted_with_fsync_always_loses_no_admission() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let t = timeline();
    let dir = lobby_tests::scratch_dir("failover-single");
    let redis = RedisServer::start_single(&dir, Persistence::AofAlways);
    let mut lobby = Lobby::start_on(redis, dir, options()).await;
    let accounts = accounts_around(&lobby, None).await;
    let load_accounts: Vec<LoadAccount> = accounts.iter().map(|(a, _)| a.clone()).collect();
    let load = Load::start(&lobby, &load_accounts, CLIENTS_PER_ACCOUNT);
    let began = load.began();
    let health = HealthWatch::start(&lobby, began);
    tokio::time::sleep_until((began + t.fault_at).into()).await;
    let port = lobby.redis.port;
    lobby.redis.kill_node(port);
    tokio::time::sleep(Duration::from_secs(2)).await;
    lobby.redis.restart_node(port);
    let back_at = began.elapsed();
    tokio::time::sleep_until((began + t.load).into()).await;
    let history = load.finish().await;
    let health = health.finish().await;
    let what = format!("a single Redis restarted ({:?})", lobby.topology);
    // A single Redis down leaves nothing to serve: unready meanwhile, and
    // alive throughout (waiting is not being stuck).
    assert!(health.iter().all(|h| h.alive == 200), "{what}: {health:#?}");
    assert!(health.iter().any(|h| h.ready == 503), "{what}: {health:#?}");
    assert_eq!(
        health.last().map(|h| h.ready),
        Some(200),
        "{what}: {health:#?}"
    );
    let recovered = judge(&what, &history, &accounts, t.fault_at, back_at);
    let freed = no_slot_held(&lobby, &accounts, &what).await;
    assert_eq!(
        lobby.exited_services(),
        Vec::<String>::new(),
        "no service exited"
    );
    println!(
        "{what}: {} accounts, {} admitted, answers {:?}; down at {:?} for 2 s, served again {} ms after it answered; every slot free {} ms after the load",
        accounts.len(),
        history.admitted().len(),
        history.statuses(),
        t.fault_at,
        recovered.as_millis(),
        freed.as_millis(),
    );
}
