//! `make bench`: session starts per second and p50/p99 latency through the
//! gateway (LiveKit token-only, so LiveKit's own latency is excluded), side by
//! side with the raw admission script called directly on the same Redis at the
//! same concurrency. The ratio says what the gateway, auth, session and rooms
//! hops cost on top of the one Redis script every start runs.
//!
//! Env: LOBBY_BENCH_REQUESTS (per level, default 2000),
//! LOBBY_BENCH_LEVELS (default "1,8,32,64"), LOBBY_BENCH_OUT (results file).

use futures::future::join_all;
use lobby_session::store::{Admission, AdmitRequest, SessionStore};
use lobby_tests::{Lobby, LobbyOptions};
use serde_json::json;
use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

struct Run {
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

fn summarize(mut latencies: Vec<Duration>, elapsed: Duration) -> Run {
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
    Run {
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
    }
}

/// Runs `requests` calls of `op` from `concurrency` workers; returns each
/// call's latency and the wall time of the whole run.
async fn drive<F, Fut>(requests: usize, concurrency: usize, op: F) -> Run
where
    F: Fn(usize) -> Fut + Clone,
    Fut: std::future::Future<Output = ()>,
{
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers = (0..concurrency).map(|_| {
        let next = next.clone();
        let op = op.clone();
        async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    break latencies;
                }
                let t = Instant::now();
                op(i).await;
                latencies.push(t.elapsed());
            }
        }
    });
    let latencies: Vec<Duration> = join_all(workers).await.into_iter().flatten().collect();
    summarize(latencies, started.elapsed())
}

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let requests: usize = env_or("LOBBY_BENCH_REQUESTS", 2000);
    let levels: Vec<usize> = std::env::var("LOBBY_BENCH_LEVELS")
        .unwrap_or_else(|_| "1,8,32,64".into())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    let out = std::env::var("LOBBY_BENCH_OUT").unwrap_or_else(|_| "bench/results/latest.md".into());

    let lobby = Lobby::start(LobbyOptions {
        extra_env: vec![("LOBBY_LOG".into(), "warn".into())],
        ..Default::default()
    })
    .await;
    let account = lobby.create_account(100_000).await;
    lobby
        .admin(reqwest::Method::PATCH, &format!("/accounts/{account}"))
        .json(&json!({ "minutes_quota": 100_000_000 }))
        .send()
        .await
        .expect("raise the bench account's minutes");
    let agent = lobby
        .create_agent(&account, json!({ "max_session_seconds": 3600 }))
        .await;
    let store = SessionStore::new(lobby.redis.connection().await);
    let url = format!("{}/v1/public/agents/connect", lobby.gateway());
    let body = json!({ "agent_id": agent }).to_string();

    let mut rows = Vec::new();
    for (round, &c) in levels.iter().enumerate() {
        let http = lobby.http.clone();
        let (url, body) = (url.clone(), body.clone());
        let gateway = drive(requests, c, move |_| {
            let req = http
                .post(&url)
                .header("content-type", "application/json")
                .body(body.clone());
            async move {
                let r = req.send().await.expect("start request");
                assert_eq!(
                    r.status(),
                    200,
                    "bench start refused: {}",
                    r.text().await.unwrap_or_default()
                );
                let _ = r.bytes().await;
            }
        })
        .await;

        // Same script, same Redis, its own account so the sets match in size.
        let store = store.clone();
        let raw = drive(requests, c, move |i| {
            let store = store.clone();
            async move {
                let sid = format!("bench-{round}-{i}");
                let admitted = store
                    .admit(&AdmitRequest {
                        session_id: &sid,
                        account_id: "acct_bench_raw",
                        agent_id: "raw",
                        account_limit: 100_000,
                        agent_limit: 0,
                        max_session_seconds: 3600,
                        quota_seconds: u64::MAX / 4,
                        link: None,
                        lease_ms: 15_000,
                        retry_after_max_ms: 15_000,
                        first_check_in_ms: 5_000,
                        fields: Vec::new(),
                    })
                    .await
                    .expect("admit");
                assert!(matches!(admitted, Admission::Admitted { .. }));
            }
        })
        .await;
        rows.push((c, gateway, raw));
    }

    let mut report = String::from(
        "# Lobby benchmark: session starts\n\n\
         Gateway = `POST /v1/public/agents/connect` through gateway → auth → session → rooms (LiveKit token-only).\n\
         Baseline = the admission Lua script (EVALSHA) called directly on the same Redis, same concurrency, same run.\n\n\
         | concurrency | gateway starts/s | p50 ms | p99 ms | raw admissions/s | p50 ms | p99 ms | gateway ÷ raw |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (c, g, r) in &rows {
        report.push_str(&format!(
            "| {c} | {:.0} | {} | {} | {:.0} | {} | {} | {:.3} |\n",
            g.per_second,
            ms(g.p50),
            ms(g.p99),
            r.per_second,
            ms(r.p50),
            ms(r.p99),
            g.per_second / r.per_second
        ));
    }
    report.push_str(&format!(
        "\n{requests} requests per level; debug or release as built by bench/run.sh (release).\n"
    ));
    print!("{report}");
    if let Some(dir) = std::path::Path::new(&out).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(e) = std::fs::write(&out, &report) {
        eprintln!("cannot write {out}: {e}");
    } else {
        eprintln!("results written to {out}");
    }
}
