//! `make bench`: session starts through the gateway against the raw
//! admission script, measured in the same run on the same Redis.
//!
//! For each deployment shape (co-located `lobby-server`, split processes) and
//! each concurrency: a warm-up, then `POST /v1/public/agents/connect` closed
//! loop, then the admission script called directly (same arguments as a real
//! start) at the same concurrency; the ratio is what everything around the
//! one Redis round trip costs. Then an open-loop run at half the co-located
//! maximum rate reports p99 latency measured from each request's scheduled
//! time (so a slow answer cannot hide the requests queued behind it). Last,
//! rows against a real `livekit-server` with eager and lazy rooms.
//!
//! Sessions are made inert for the run (a lease and join deadlines of an
//! hour), so the sweeper does no renewals meanwhile: what is measured is the
//! start path alone.
//!
//! Then starts across two regions: served in one region for an account
//! homed there, and for one homed in the other (admission over the regions'
//! door), same run.
//!
//! Then the records contract (seed 004) at size: one agent with
//! LOBBY_BENCH_RECORDS records (default 100,000), a page in every `orderBy`
//! and a search, each against the same page read from Redis directly (the
//! ids from the sorted set and the records' hashes, no decryption) as the
//! baseline.
//!
//! Env: LOBBY_BENCH_REQUESTS (per level, default 20000), LOBBY_BENCH_LEVELS
//! (default "1,8,32,64"), LOBBY_BENCH_LIVEKIT_REQUESTS (default 5000),
//! LOBBY_BENCH_RECORDS, LOBBY_BENCH_ONLY (`records`: that part alone),
//! LOBBY_BENCH_OUT (results file).

use futures::{stream, StreamExt};
use lobby_proto::{
    common::Provider,
    session::{Session, SessionKind},
};
use lobby_session::store::{Admission, AdmitMode, AdmitRequest, SessionStore};
use lobby_tests::{Lobby, LobbyOptions, Topology, Webhooks};
use serde_json::json;
use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

#[derive(Debug, Clone)]
struct Run {
    per_second: f64,
    p50: Duration,
    p99: Duration,
    errors: usize,
    /// Every request's latency and the wall time, so rounds can be merged.
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Run {
    /// Several rounds as one run: all their requests over all their time.
    fn merged(runs: &[Run]) -> Run {
        summarize(
            runs.iter()
                .flat_map(|r| r.latencies.iter().copied())
                .collect(),
            runs.iter().map(|r| r.elapsed).sum(),
            runs.iter().map(|r| r.errors).sum(),
        )
    }
}

/// The median of `values` (0 for none).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn summarize(mut latencies: Vec<Duration>, elapsed: Duration, errors: usize) -> Run {
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len().max(1) as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    Run {
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
        errors,
        latencies,
        elapsed,
    }
}

/// Closed loop: `requests` calls of `op` from `concurrency` callers.
async fn closed_loop<F, Fut>(requests: usize, concurrency: usize, op: F) -> Run
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let errors = AtomicUsize::new(0);
    let started = Instant::now();
    let latencies: Vec<Duration> = stream::iter(0..requests)
        .map(|i| {
            let (op, errors) = (&op, &errors);
            async move {
                let t = Instant::now();
                if !op(i).await {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                t.elapsed()
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    summarize(latencies, started.elapsed(), errors.into_inner())
}

/// Open loop: `requests` calls at `rate` per second, each timed from when it
/// was due, whether or not earlier ones have answered.
async fn open_loop<F, Fut>(requests: usize, rate: f64, op: F) -> Run
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let errors = Arc::new(AtomicUsize::new(0));
    let started = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(requests);
    for i in 0..requests {
        let due = started + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due).await;
        let (op, errors) = (op.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            if !op(i).await {
                errors.fetch_add(1, Ordering::Relaxed);
            }
            due.elapsed()
        }));
    }
    let mut latencies = Vec::with_capacity(requests);
    for t in tasks {
        if let Ok(l) = t.await {
            latencies.push(l);
        }
    }
    summarize(latencies, started.elapsed(), errors.load(Ordering::Relaxed))
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

/// Settings that keep sessions inert during the run (see the module doc).
fn inert_sessions() -> Vec<(String, String)> {
    vec![
        ("LOBBY_LOG".into(), "warn".into()),
        ("LOBBY_SESSION_LEASE_MS".into(), "3600000".into()),
        ("LOBBY_USER_JOIN_TIMEOUT_MS".into(), "3600000".into()),
        ("LOBBY_AGENT_JOIN_TIMEOUT_MS".into(), "3600000".into()),
    ]
}

/// A bench account with room for every start, and its agent.
async fn bench_agent(lobby: &Lobby) -> String {
    let account = lobby.create_account(100_000).await;
    lobby
        .patch_account(&account, json!({ "minutes_quota": 100_000_000 }))
        .await;
    lobby
        .create_agent(&account, json!({ "max_session_seconds": 3600 }))
        .await
}

/// One start through the gateway; false on anything but 200.
fn connect_op(
    lobby: &Lobby,
    agent: &str,
) -> impl Fn(usize) -> futures::future::BoxFuture<'static, bool> + Clone + Send + 'static {
    let http = lobby.http.clone();
    let url = format!("{}/v1/public/agents/connect", lobby.gateway());
    let body = json!({ "agent_id": agent }).to_string();
    move |_| {
        let request = http
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone());
        Box::pin(async move {
            match request.send().await {
                Ok(r) => {
                    let ok = r.status() == 200;
                    let _ = r.bytes().await;
                    ok
                }
                Err(_) => false,
            }
        })
    }
}

/// The admission script alone, with the arguments a real start passes.
/// Each run uses its own account (`tag`), as each gateway run does, so both
/// work on sets of the same size.
fn raw_op(
    store: SessionStore,
    tag: String,
) -> impl Fn(usize) -> futures::future::BoxFuture<'static, bool> {
    let account = format!("acct_bench_raw_{}", tag.replace('-', "_"));
    move |i| {
        let (store, tag, account) = (store.clone(), tag.clone(), account.clone());
        Box::pin(async move {
            let sid = format!("raw-{tag}-{i}");
            // The record a real connect start writes.
            let record = Session {
                id: sid.clone(),
                account_id: account.clone(),
                agent_id: "raw".to_owned(),
                room_name: format!("lobby-{sid}"),
                kind: SessionKind::Connect as i32,
                provider: Provider::Livekit as i32,
                ..Default::default()
            };
            let admitted = store
                .admit(&AdmitRequest {
                    session_id: &sid,
                    account_id: &account,
                    agent_id: "raw",
                    account_limit: 1_000_000,
                    agent_limit: 0,
                    max_session_seconds: 3600,
                    quota_seconds: u64::MAX / 4,
                    link: None,
                    lease_ms: 3_600_000,
                    retry_after_max_ms: 15_000,
                    first_check_in_ms: 3_600_000,
                    mode: AdmitMode::Local(&record),
                })
                .await;
            matches!(admitted, Ok(Admission::Admitted { .. }))
        })
    }
}

struct Row {
    shape: &'static str,
    concurrency: usize,
    gateway: Run,
    raw: Option<Run>,
    /// Gateway ÷ raw: the median of the rounds' own ratios, each round
    /// measuring both back to back, so a slow spell of a noisy machine
    /// weighs on both sides of a ratio alike.
    ratio: Option<f64>,
}

/// Rounds per row: gateway then raw, alternating.
const ROUNDS: usize = 5;

async fn closed_loop_rows(
    shape: &'static str,
    topology: Topology,
    levels: &[usize],
    requests: usize,
) -> (Vec<Row>, Lobby) {
    let lobby = Lobby::start(LobbyOptions {
        topology,
        worker: false,
        extra_env: inert_sessions(),
        ..Default::default()
    })
    .await;
    let store = SessionStore::new(lobby.redis.connection().await);
    // Warm up: connections, caches, the scripts loaded in Redis.
    let warm = connect_op(&lobby, &bench_agent(&lobby).await);
    closed_loop(2_000, 32, &warm).await;
    closed_loop(2_000, 32, raw_op(store.clone(), format!("{shape}-warm"))).await;
    let mut rows = Vec::new();
    for &c in levels {
        // A fresh account per run: every run starts from empty sets.
        let (mut gateway, mut raw) = (Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            // A fresh account per round on both sides: sets of the same size.
            let connect = connect_op(&lobby, &bench_agent(&lobby).await);
            gateway.push(closed_loop(requests / ROUNDS, c, &connect).await);
            let account = format!("{shape}-{c}-{round}");
            raw.push(closed_loop(requests / ROUNDS, c, raw_op(store.clone(), account)).await);
        }
        let ratio = median(
            gateway
                .iter()
                .zip(&raw)
                .map(|(g, r)| g.per_second / r.per_second)
                .collect(),
        );
        let (gateway, raw) = (Run::merged(&gateway), Run::merged(&raw));
        eprintln!(
            "{shape} c={c}: gateway {:.0}/s, raw {:.0}/s, paired ratio {ratio:.2}",
            gateway.per_second, raw.per_second
        );
        rows.push(Row {
            shape,
            concurrency: c,
            gateway,
            raw: Some(raw),
            ratio: Some(ratio),
        });
    }
    (rows, lobby)
}

async fn livekit_row(rooms: &'static str, requests: usize, concurrency: usize) -> Option<Row> {
    let mut env = inert_sessions();
    env.push(("LOBBY_LIVEKIT_ROOMS".into(), rooms.into()));
    let (_server, lobby) = Lobby::start_on_livekit(
        "bench (LiveKit)",
        Webhooks::Off,
        LobbyOptions {
            topology: Topology::CoLocated,
            worker: false,
            extra_env: env,
            ..Default::default()
        },
    )
    .await?;
    let agent = bench_agent(&lobby).await;
    let connect = connect_op(&lobby, &agent);
    closed_loop(500, 16, &connect).await;
    let gateway = closed_loop(requests, concurrency, &connect).await;
    eprintln!(
        "livekit {rooms} c={concurrency}: {:.0}/s",
        gateway.per_second
    );
    Some(Row {
        shape: if rooms == "eager" {
            "co-located, LiveKit server, eager rooms"
        } else {
            "co-located, LiveKit server, lazy rooms"
        },
        concurrency,
        gateway,
        raw: None,
        ratio: None,
    })
}

/// What the records part measured.
struct RecordsReport {
    records: usize,
    fill: Duration,
    rows: Vec<(String, Duration, Run, Run)>,
}

/// Seed 004 at size: fills one agent with `records` records through the
/// gateway, then times pages in every order (and a search) against the
/// same page read from Redis directly.
async fn records_rows(records: usize, pages: usize) -> RecordsReport {
    let lobby = Lobby::start(LobbyOptions {
        topology: Topology::CoLocated,
        worker: false,
        extra_env: inert_sessions(),
        ..Default::default()
    })
    .await;
    let account = lobby.create_account(5).await;
    let agent = lobby.create_agent(&account, json!({})).await;
    let key = lobby
        .create_api_key(&account, &["sessions:read", "sessions:write"])
        .await;
    let database = lobby
        .admin_json(reqwest::Method::GET, &format!("/accounts/{account}"), None)
        .await
        .1["database_id_hash"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (http, base) = (lobby.http.clone(), lobby.gateway().to_owned());
    let with_auth =
        move |r: reqwest::RequestBuilder| r.bearer_auth(&key).header("database-id-hash", &database);
    let filled = Instant::now();
    let first = [
        "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Leslie", "Frances",
    ];
    let create = |i: usize| {
        let body = json!({
            "agentId": agent,
            "userName": format!("{} {i:06}", first[i % first.len()]),
            "userEmail": format!("user{:06}@example{}.com", (i * 7919) % records, i % 13),
        })
        .to_string();
        let r = with_auth(http.post(format!("{base}/api/exec/session/rec-{i:06}")))
            .header("content-type", "application/json")
            .body(body);
        async move { r.send().await.is_ok_and(|r| r.status() == 200) }
    };
    let fill_run = closed_loop(records, 32, create).await;
    let fill = filled.elapsed();
    eprintln!(
        "records: {records} created in {:.1} s ({} errors)",
        fill.as_secs_f64(),
        fill_run.errors
    );

    // The baseline: a page of 10 read straight from Redis.
    let conn = lobby.redis.connection().await;
    let tag = lobby_kit::keys::account_tag(&account);
    let index = format!("{tag}:{account}:agent:{agent}:records:updated");
    let raw_page = |i: usize| {
        let (mut conn, index, tag, account) =
            (conn.clone(), index.clone(), tag.clone(), account.clone());
        let offset = (i * 7) % records.saturating_sub(10).max(1);
        async move {
            let ids: Vec<String> = match redis::cmd("ZREVRANGE")
                .arg(&index)
                .arg(offset)
                .arg(offset + 9)
                .query_async(&mut conn)
                .await
            {
                Ok(ids) => ids,
                Err(_) => return false,
            };
            let mut pipe = redis::pipe();
            for id in &ids {
                pipe.cmd("HGETALL")
                    .arg(format!("{tag}:{account}:session:{id}"));
            }
            pipe.query_async::<Vec<redis::Value>>(&mut conn)
                .await
                .is_ok()
        }
    };
    let mut rows = Vec::new();
    for (label, query) in [
        ("updatedAt", "orderBy=updatedAt"),
        ("createdAt", "orderBy=createdAt"),
        ("userName", "orderBy=userName"),
        ("userEmail", "orderBy=userEmail"),
        (
            "search (query=grace 0001)",
            "orderBy=updatedAt&query=grace%200001",
        ),
    ] {
        let url = |i: usize| {
            let offset = (i * 7) % records.saturating_sub(10).max(1);
            format!("{base}/api/agent/{agent}/session?limit=10&offset={offset}&{query}")
        };
        let page = |i: usize| {
            let r = with_auth(http.get(url(i)));
            async move {
                match r.send().await {
                    Ok(r) => r.status() == 200 && r.bytes().await.is_ok(),
                    Err(_) => false,
                }
            }
        };
        // The first page pays for what a name order holds afterwards.
        let cold = Instant::now();
        page(0).await;
        let cold = cold.elapsed();
        let warm = closed_loop(pages, 1, page).await;
        let raw = closed_loop(pages, 1, raw_page).await;
        eprintln!(
            "records {label}: first page {} ms, then p50 {} ms (raw {} ms)",
            ms(cold),
            ms(warm.p50),
            ms(raw.p50)
        );
        rows.push((label.to_owned(), cold, warm, raw));
    }
    RecordsReport {
        records,
        fill,
        rows,
    }
}

fn records_markdown(r: &RecordsReport) -> String {
    let mut out = format!(
        "\n## Records contract (seed 004) at {} records for one agent\n\n\
         Filled through the gateway in {:.1} s. Each row: the first page (what a name order \
         builds and then holds), then pages of 10 at spread offsets one at a time; the baseline \
         reads the same size of page straight from Redis (ids from the sorted set, the records' \
         hashes pipelined, nothing opened).\n\n\
         | order | first page ms | page p50 ms | page p99 ms | errors | raw page p50 ms | page ÷ raw (p50) |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
        r.records,
        r.fill.as_secs_f64()
    );
    for (label, cold, warm, raw) in &r.rows {
        out.push_str(&format!(
            "| {label} | {} | {} | {} | {} | {} | {:.1} |
",
            ms(*cold),
            ms(warm.p50),
            ms(warm.p99),
            warm.errors,
            ms(raw.p50),
            warm.p50.as_secs_f64() / raw.p50.as_secs_f64().max(1e-9)
        ));
    }
    out
}

/// Two co-located regions on loopback, `home` and `away`, trusting one CA.
async fn two_regions() -> (Lobby, Lobby) {
    let dir = lobby_tests::scratch_dir("bench-regions");
    let certs =
        lobby_dev::certs::DevCerts::generate(&dir.join("certs"), lobby_dev::certs::SERVICES)
            .expect("certificates the regions share");
    let ports = lobby_tests::free_ports(4);
    let table = json!([
        {"name": "home", "url": format!("http://127.0.0.1:{}", ports[0]), "latitude": 39.0, "longitude": -77.5,
         "admission_url": format!("https://127.0.0.1:{}", ports[2])},
        {"name": "away", "url": format!("http://127.0.0.1:{}", ports[1]), "latitude": 35.7, "longitude": 139.7,
         "admission_url": format!("https://127.0.0.1:{}", ports[3])},
    ])
    .to_string();
    let mut lobbies = Vec::new();
    for (i, name) in ["home", "away"].into_iter().enumerate() {
        let mut env = inert_sessions();
        env.extend([
            ("LOBBY_REGION".into(), name.into()),
            ("LOBBY_REGIONS".into(), table.clone()),
            (
                "LOBBY_REGION_SECRET".into(),
                "bench-region-secret-0123456789".into(),
            ),
            (
                "LOBBY_SESSION_REGIONS_LISTEN".into(),
                format!("127.0.0.1:{}", ports[2 + i]),
            ),
        ]);
        lobbies.push(
            Lobby::start(LobbyOptions {
                topology: Topology::CoLocated,
                worker: false,
                gateway_port: Some(ports[i]),
                extra_env: env,
                certs: Some(certs.clone()),
                ..Default::default()
            })
            .await,
        );
    }
    let away = lobbies.pop().expect("away");
    (lobbies.pop().expect("home"), away)
}

/// An account homed in `home_region` (in both regions' catalogs), and its
/// agent; starts go to `away`.
async fn homed_agent(home: &Lobby, away: &Lobby, home_region: &str) -> String {
    let account = format!("acct_bench_{home_region}_{}", next_id());
    let agent = format!("agent-{home_region}-{}", next_id());
    for lobby in [home, away] {
        let (s, b) = lobby
            .admin_json(
                reqwest::Method::POST,
                "/accounts",
                Some(
                    json!({"id": account, "name": "bench", "max_concurrency": 100_000,
                            "minutes_quota": 100_000_000, "home_region": home_region}),
                ),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        lobby
            .create_agent_json(&account, json!({"id": agent, "max_session_seconds": 3600}))
            .await;
    }
    agent
}

/// Starts served in `away`, for an account homed there and for one homed
/// in `home` (its admission one more gRPC call away), at each concurrency.
async fn home_rows(levels: &[usize], requests: usize) -> Vec<(usize, Run, Run)> {
    let (home, away) = two_regions().await;
    let warm = connect_op(&away, &homed_agent(&home, &away, "home").await);
    closed_loop(2_000, 32, &warm).await;
    let mut rows = Vec::new();
    for &c in levels {
        let local = connect_op(&away, &homed_agent(&home, &away, "away").await);
        let local = closed_loop(requests, c, &local).await;
        let remote = connect_op(&away, &homed_agent(&home, &away, "home").await);
        let remote = closed_loop(requests, c, &remote).await;
        eprintln!(
            "home elsewhere c={c}: {:.0}/s vs home here {:.0}/s",
            remote.per_second, local.per_second
        );
        rows.push((c, local, remote));
    }
    rows
}

/// A number no earlier call returned (ids of the bench's accounts).
fn next_id() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

#[tokio::main]
async fn main() {
    let records: usize = env_or("LOBBY_BENCH_RECORDS", 100_000);
    if std::env::var("LOBBY_BENCH_ONLY").as_deref() == Ok("records") {
        let report = records_markdown(&records_rows(records, 200).await);
        print!("{report}");
        return;
    }
    let requests: usize = env_or("LOBBY_BENCH_REQUESTS", 20_000);
    let livekit_requests: usize = env_or("LOBBY_BENCH_LIVEKIT_REQUESTS", 5_000);
    let levels: Vec<usize> = std::env::var("LOBBY_BENCH_LEVELS")
        .unwrap_or_else(|_| "1,8,32,64".into())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    let top = levels.iter().copied().max().unwrap_or(64);
    let out = std::env::var("LOBBY_BENCH_OUT").unwrap_or_else(|_| "bench/results/latest.md".into());

    // One shape's closed-loop rows alone, e.g. to profile them.
    let only_shape = match std::env::var("LOBBY_BENCH_ONLY").as_deref() {
        Ok("co-located") => Some(("co-located", Topology::CoLocated)),
        Ok("split") => Some(("split", Topology::Split)),
        _ => None,
    };
    if let Some((shape, topology)) = only_shape {
        let (rows, _lobby) = closed_loop_rows(shape, topology, &levels, requests).await;
        for r in rows {
            let raw = r.raw.map_or(0.0, |raw| raw.per_second);
            println!(
                "{shape} c={}: gateway {:.0}/s p50 {} ms p99 {} ms, raw {raw:.0}/s, ratio {:.2}",
                r.concurrency,
                r.gateway.per_second,
                ms(r.gateway.p50),
                ms(r.gateway.p99),
                r.ratio.unwrap_or_default()
            );
        }
        return;
    }
    let (mut rows, colocated) =
        closed_loop_rows("co-located", Topology::CoLocated, &levels, requests).await;
    let max_rate = rows
        .iter()
        .map(|r| r.gateway.per_second)
        .fold(0.0_f64, f64::max);
    let rate = max_rate / 2.0;
    let agent = bench_agent(&colocated).await;
    let open = open_loop(requests, rate, connect_op(&colocated, &agent)).await;
    eprintln!("open loop at {rate:.0}/s: p99 {}", ms(open.p99));
    drop(colocated);
    let (split_rows, split) = closed_loop_rows("split", Topology::Split, &levels, requests).await;
    drop(split);
    rows.extend(split_rows);
    for rooms in ["eager", "lazy"] {
        if let Some(row) = livekit_row(rooms, livekit_requests, top).await {
            rows.push(row);
        }
    }

    let home = home_rows(&[1, top], requests / 2).await;
    let records_report = records_rows(records, 200).await;

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let mut report = format!(
        "# Lobby benchmark: session starts\n\n\
         Machine: {cores} cores (as the process sees them), {profile} build.\n\n\
         Gateway = `POST /v1/public/agents/connect` (token-only LiveKit unless the row says otherwise).\n\
         Raw = the admission script (`admit.lua`, EVALSHA) called directly on the same Redis with the\n\
         arguments a real start passes, same concurrency, same run. Closed loop, {requests} requests per\n\
         row after a warm-up, in {ROUNDS} rounds alternating gateway and raw; gateway ÷ raw is the median\n\
         of the rounds' own ratios. Errors are counted, not fatal.\n\n\
         | shape | concurrency | gateway starts/s | p50 ms | p99 ms | errors | raw admissions/s | raw p99 ms | gateway ÷ raw |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    for r in &rows {
        let (raw_rate, raw_p99, ratio) = match (&r.raw, r.ratio) {
            (Some(raw), Some(ratio)) => (
                format!("{:.0}", raw.per_second),
                ms(raw.p99),
                format!("{ratio:.2}"),
            ),
            _ => ("–".into(), "–".into(), "–".into()),
        };
        report.push_str(&format!(
            "| {} | {} | {:.0} | {} | {} | {} | {raw_rate} | {raw_p99} | {ratio} |\n",
            r.shape,
            r.concurrency,
            r.gateway.per_second,
            ms(r.gateway.p50),
            ms(r.gateway.p99),
            r.gateway.errors,
        ));
    }
    report.push_str(&format!(
        "\nOpen loop, co-located, {requests} requests at {rate:.0}/s (half the co-located maximum, {max_rate:.0}/s): \
         p50 {} ms, p99 {} ms, {} errors; latency from each request's scheduled time.\n",
        ms(open.p50),
        ms(open.p99),
        open.errors
    ));
    report.push_str(&format!(
        "\n## Home admission across regions\n\n\
         Two co-located regions on loopback. Starts served in one, for an account homed there and \
         for one homed in the other region (admission over the regions' door: one more TLS gRPC \
         call and one more script, then the record written here). Closed loop, {} requests per \
         row. Between real regions, add one round trip between them to each start.\n\n\
         | concurrency | home here starts/s | p50 ms | p99 ms | home elsewhere starts/s | p50 ms | p99 ms | errors | elsewhere ÷ here |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        requests / 2
    ));
    for (c, here, away) in &home {
        report.push_str(&format!(
            "| {c} | {:.0} | {} | {} | {:.0} | {} | {} | {} | {:.2} |\n",
            here.per_second,
            ms(here.p50),
            ms(here.p99),
            away.per_second,
            ms(away.p50),
            ms(away.p99),
            here.errors + away.errors,
            away.per_second / here.per_second
        ));
    }
    report.push_str(&records_markdown(&records_report));
    print!("{report}");
    if let Some(dir) = std::path::Path::new(&out).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    match std::fs::write(&out, &report) {
        Ok(()) => eprintln!("results written to {out}"),
        Err(e) => eprintln!("cannot write {out}: {e}"),
    }
}
