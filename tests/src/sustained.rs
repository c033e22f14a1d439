//! A sustained run of starts with every service killed (`kill -9`) in the
//! middle of it, then restarted, and an audit of what Redis still holds:
//! every slot must belong to a live session that a sweeper will end.

use crate::{Lobby, LobbyOptions};
use futures::StreamExt;
use serde_json::json;
use std::{
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

/// What one run did, and what it left.
#[derive(Debug, Default, Clone, Copy)]
pub struct CrashReport {
    pub tried: usize,
    pub admitted: usize,
    pub failed: usize,
    /// Slots held after the restart and one lease period.
    pub held: usize,
    /// What the bucket's count of slots held (the slots gauge) says then:
    /// the account is the only one in its bucket, so it must equal `held`.
    pub counted: i64,
    /// Of those, slots whose session no sweeper will end (must be 0): no
    /// live record, or no entry in its bucket's sweep index.
    pub unswept: usize,
}

/// Drives `total` connects at `concurrency`, kills every service once
/// `kill_at` of them were admitted (mid-run, however fast the build is),
/// lets the run finish against the dead services, restarts
/// them and waits `settle` (one lease period and a sweep) before auditing.
pub async fn kill_everything_mid_run(
    lobby: &mut Lobby,
    account: &str,
    agent: &str,
    total: usize,
    concurrency: usize,
    kill_at: usize,
    settle: Duration,
) -> CrashReport {
    let admitted = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    let http = crate::http_client(Duration::from_secs(5));
    let url = format!("{}/v1/public/agents/connect", lobby.gateway());
    let body = json!({ "agent_id": agent }).to_string();
    let run = futures::stream::iter(0..total)
        .map(|_| {
            let request = http
                .post(&url)
                .header("content-type", "application/json")
                .body(body.clone());
            let (admitted, failed) = (&admitted, &failed);
            async move {
                match request.send().await {
                    Ok(r) if r.status() == 200 => admitted.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<()>>();
    let began = Instant::now();
    let killer = async {
        while admitted.load(Ordering::Relaxed) < kill_at {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        admitted.load(Ordering::Relaxed)
    };
    tokio::pin!(run);
    let admitted_before_kill = tokio::select! {
        _ = &mut run => panic!("the run ended before the kill; raise the number of starts"),
        n = killer => n,
    };
    let kill_at_time = began.elapsed();
    lobby.crash_all();
    run.await;
    println!(
        "sustained run: {} admitted before the kill at {:?}, run over after {:?}",
        admitted_before_kill,
        kill_at_time,
        began.elapsed()
    );
    lobby.restart_all().await;
    tokio::time::sleep(settle).await;
    let (held, unswept, counted) = audit(lobby, account).await;
    CrashReport {
        tried: total,
        admitted: admitted.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
        held,
        counted,
        unswept,
    }
}

/// (slots held, slots of sessions no sweeper will end, the bucket's count
/// of slots held) for the account, read in one script so that a sweeper
/// ending a session meanwhile cannot make a slot look orphaned (every key
/// read shares the account's slot).
pub async fn audit(lobby: &Lobby, account: &str) -> (usize, usize, i64) {
    const AUDIT: &str = r"
        local held = redis.call('ZRANGE', KEYS[1], 0, -1)
        local unswept = 0
        for _, sid in ipairs(held) do
          local status = redis.call('HGET', ARGV[1] .. sid, 'status')
          local due = redis.call('ZSCORE', KEYS[2], ARGV[2] .. sid)
          if status ~= 'active' or not due then unswept = unswept + 1 end
        end
        return {#held, unswept, tonumber(redis.call('GET', KEYS[3])) or 0}";
    let mut conn = lobby.redis.connection().await;
    let tag = lobby_kit::keys::account_tag(account);
    let (held, unswept, counted): (usize, usize, i64) = redis::Script::new(AUDIT)
        .key(format!("{tag}:{account}:slots"))
        .key(format!("{tag}:due"))
        .key(format!("{tag}:slots_in_use"))
        .arg(format!("{tag}:{account}:session:"))
        .arg(format!("{account}|"))
        .invoke_async(&mut conn)
        .await
        .expect("audit");
    (held, unswept, counted)
}

/// The run that found the ghosts: `kill -9` of every service in the middle
/// of a sustained run of 10,000 starts, then a restart. After one lease
/// period no slot may be held by a session that no sweeper will end, and
/// once the user-join deadline has passed for all of them, none is held.
pub async fn no_unswept_slot_after_a_kill_mid_run(redis_cluster: bool) {
    let lease = Duration::from_millis(1500);
    let mut lobby = Lobby::start(LobbyOptions {
        worker: false,
        redis_aof: true,
        redis_cluster,
        extra_env: vec![
            (
                "LOBBY_SESSION_LEASE_MS".into(),
                lease.as_millis().to_string(),
            ),
            ("LOBBY_SWEEP_INTERVAL_MS".into(), "100".into()),
            ("LOBBY_USER_JOIN_TIMEOUT_MS".into(), "4000".into()),
            ("LOBBY_LOG".into(), "warn".into()),
        ],
        ..Default::default()
    })
    .await;
    let account = lobby.create_account(100_000).await;
    lobby
        .patch_account(&account, json!({ "minutes_quota": 100_000_000 }))
        .await;
    let agent = lobby.create_agent(&account, json!({})).await;
    let report = kill_everything_mid_run(
        &mut lobby,
        &account,
        &agent,
        10_000,
        40,
        2_500,
        lease + Duration::from_millis(500),
    )
    .await;
    let shape = if redis_cluster {
        "cluster"
    } else {
        "single Redis"
    };
    println!(
        "kill -9 of every service mid-run ({shape}, {:?}): starts tried {}, admitted {}, failed {}, slots held after one lease {} (counted {}), held by sessions no sweeper will end {}",
        lobby.topology, report.tried, report.admitted, report.failed, report.held, report.counted, report.unswept
    );
    assert!(
        report.admitted > 0,
        "the run admitted nothing before the kill"
    );
    assert_eq!(
        report.unswept, 0,
        "slots held by sessions no sweeper will end"
    );
    assert_eq!(
        report.counted, report.held as i64,
        "the slots gauge's count follows the slots through the crash"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut left = audit(&lobby, &account).await;
    while (left.0 > 0 || left.2 != 0) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        left = audit(&lobby, &account).await;
    }
    if left != (0, 0, 0) {
        panic!(
            "slots still held after the join deadline: {left:?}; their sessions: {:#?}",
            held_sessions(&lobby, &account).await
        );
    }
}

/// The records (and sweep scores) of the sessions holding the account's slots.
async fn held_sessions(
    lobby: &Lobby,
    account: &str,
) -> Vec<(String, Option<f64>, Vec<(String, String)>)> {
    let mut conn = lobby.redis.connection().await;
    let tag = lobby_kit::keys::account_tag(account);
    let held: Vec<String> = redis::cmd("ZRANGE")
        .arg(format!("{tag}:{account}:slots"))
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    let mut out = Vec::new();
    for sid in held {
        let record: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(format!("{tag}:{account}:session:{sid}"))
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        let due: Option<f64> = redis::cmd("ZSCORE")
            .arg(format!("{tag}:due"))
            .arg(format!("{account}|{sid}"))
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        out.push((sid, due, record));
    }
    out
}
