//! Redis being slow to come up, or going away under running services, is a
//! wait: the services stay alive (liveness), report unready (readiness),
//! answer callers with a retryable 503, and carry on once Redis answers,
//! with no restart of their own.

use lobby_tests::{
    redis_proxy::{Cut, RedisProxy},
    redis_server::RedisServer,
    Lobby, LobbyOptions, Topology,
};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tonic_health::pb::{
    health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
};

async fn grpc_health(lobby: &Lobby, url: &str, service: &str) -> Option<ServingStatus> {
    let channel = lobby.grpc_channel(url);
    let answer = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .ok()?;
    Some(answer.get_ref().status())
}

async fn status_of(lobby: &Lobby, path: &str) -> u16 {
    match lobby
        .http
        .get(format!("{}{path}", lobby.gateway()))
        .send()
        .await
    {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

/// What the services report while Redis is not answering: alive, and
/// (once each has noticed, within a couple of its pings) unready.
async fn assert_alive_but_unready(lobby: &Lobby, during: &str) {
    assert_eq!(status_of(lobby, "/livez").await, 200, "{during}: /livez");
    assert_eq!(
        status_of(lobby, "/healthz").await,
        503,
        "{during}: /healthz"
    );
    for (name, url) in &lobby.grpc {
        if *name == "artifacts" {
            continue; // it does not use Redis
        }
        // Under load a service may take a moment to listen at all.
        for _ in 0..100 {
            if grpc_health(lobby, url, "liveness").await.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut readiness = None;
        for _ in 0..40 {
            assert_eq!(
                grpc_health(lobby, url, "liveness").await,
                Some(ServingStatus::Serving),
                "{during}: {name} is alive"
            );
            readiness = grpc_health(lobby, url, "").await;
            if readiness == Some(ServingStatus::NotServing) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            readiness,
            Some(ServingStatus::NotServing),
            "{during}: {name} is not ready"
        );
    }
}

async fn start_session(lobby: &Lobby, agent: &str) -> String {
    let r = lobby.connect(agent, None).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    body["session_id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn services_started_while_redis_loads_its_data_come_up_when_it_answers() {
    let dir = lobby_tests::scratch_dir("redis-loading");
    // 100,000 keys, 20 µs apart: several seconds of LOADING.
    let redis = RedisServer::start_loading(&dir, 100_000, 20);
    let began = Instant::now();
    let mut lobby = Lobby::start_on(
        redis,
        dir,
        LobbyOptions {
            worker: false,
            wait_healthy: false,
            ..Default::default()
        },
    )
    .await;
    // Give every service time to come up and meet the loading Redis.
    let mut observed_loading = false;
    for _ in 0..100 {
        if status_of(&lobby, "/livez").await == 200 && status_of(&lobby, "/healthz").await == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if lobby
        .redis
        .answer_to_ping()
        .is_some_and(|a| a.contains("LOADING"))
    {
        assert_alive_but_unready(&lobby, "while Redis loads").await;
        observed_loading = true;
    }
    assert!(
        observed_loading,
        "Redis finished loading before the services could be observed; load more keys"
    );

    lobby.wait_healthy().await;
    let ready_after = began.elapsed();
    assert!(
        lobby.redis.answer_to_ping().as_deref() == Some("PONG"),
        "ready only once Redis answers"
    );
    assert_eq!(
        lobby.exited_services(),
        Vec::<String>::new(),
        "no service exited"
    );
    let auth = match lobby.topology {
        Topology::Split => "auth",
        Topology::CoLocated => "server-0",
    };
    assert!(
        lobby.log(auth).contains("waiting for Redis"),
        "auth says what it waits for:\n{}",
        lobby.log(auth)
    );
    let account = lobby.create_account(2).await;
    let agent = lobby.create_agent(&account, json!({})).await;
    let session = start_session(&lobby, &agent).await;
    lobby.end_session(&session).await;
    println!(
        "redis loading 100000 keys: services alive and unready meanwhile, ready {} ms after start, 0 exits",
        ready_after.as_millis()
    );
}

#[tokio::test]
async fn services_ride_out_a_redis_outage_without_restarting() {
    let mut lobby = Lobby::start(LobbyOptions {
        redis_aof: true,
        worker: false,
        ..Default::default()
    })
    .await;
    let account = lobby.create_account(3).await;
    let agent = lobby.create_agent(&account, json!({})).await;
    let before = start_session(&lobby, &agent).await;
    // appendfsync everysec: give the last writes their second.
    tokio::time::sleep(Duration::from_millis(1200)).await;

    lobby.redis.stop();
    let mut unready = false;
    for _ in 0..60 {
        if status_of(&lobby, "/healthz").await == 503 {
            unready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(unready, "the gateway reports Redis down");
    assert_alive_but_unready(&lobby, "while Redis is down").await;
    // A caller meanwhile gets a retryable answer, not a 500.
    let r = lobby.connect(&agent, None).await;
    assert_eq!(r.status(), 503, "a start while Redis is down");
    assert!(r.headers().contains_key("retry-after"));
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error_code"], "store_unavailable", "{body}");
    // Long enough for every service's retries to back off several times.
    tokio::time::sleep(Duration::from_secs(3)).await;

    lobby.redis.start_again();
    let began = Instant::now();
    lobby.wait_healthy().await;
    let recovered_after = began.elapsed();
    assert_eq!(
        lobby.exited_services(),
        Vec::<String>::new(),
        "no service exited"
    );
    let after = start_session(&lobby, &agent).await;
    for id in [&before, &after] {
        let ended = lobby.end_session(id).await;
        assert_eq!(ended["status"], "ended");
    }
    assert_eq!(lobby.active_sessions(&account).await, 0);
    println!(
        "redis down 3 s under running services: 503 store_unavailable meanwhile, healthy {} ms after it answered, 0 restarts",
        recovered_after.as_millis()
    );
}

/// Freezes the test's Redis (`SIGSTOP`) for `ms`: commands sent meanwhile
/// wait in its socket and run when it thaws, after their deadline passed.
fn freeze_redis(lobby: &mut Lobby, ms: u64) -> tokio::task::JoinHandle<()> {
    let port = lobby.redis.port;
    lobby.redis.freeze_node(port);
    let pid = lobby.redis.pid_of(port);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        let thawed = std::process::Command::new("kill")
            .args(["-CONT", &pid.to_string()])
            .status()
            .expect("kill -CONT");
        assert!(thawed.success());
    })
}

fn slow_redis_options() -> LobbyOptions {
    LobbyOptions {
        worker: false,
        extra_env: vec![
            ("LOBBY_REDIS_COMMAND_TIMEOUT_MS".into(), "500".into()),
            ("LOBBY_SWEEP_INTERVAL_MS".into(), "200".into()),
        ],
        ..Default::default()
    }
}

#[tokio::test]
async fn a_start_whose_admission_answer_is_lost_holds_nothing_a_sweep_interval_later() {
    let mut lobby = Lobby::start(slow_redis_options()).await;
    let account = lobby.create_account(1).await;
    let agent = lobby.create_agent(&account, json!({})).await;
    // Redis knows the admission script after a first start: frozen, it
    // then holds the admission itself, not a NOSCRIPT round.
    let first = start_session(&lobby, &agent).await;
    lobby.end_session(&first).await;
    let thawed = freeze_redis(&mut lobby, 1500);
    let paused_at = Instant::now();
    let r = lobby.connect(&agent, None).await;
    assert_eq!(r.status(), 503, "the admission's answer came too late");
    assert!(r.headers().contains_key("retry-after"));
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error_code"], "store_unavailable", "{body}");
    // The admission runs once Redis thaws (its script was waiting in its
    // socket); within a sweep interval more, it is withdrawn.
    thawed.await.expect("thawed");
    let mut freed_after = None;
    for _ in 0..40 {
        if lobby.active_sessions(&account).await == 0 {
            freed_after = Some(
                paused_at
                    .elapsed()
                    .saturating_sub(Duration::from_millis(1500)),
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let freed_after = freed_after.expect("the lost admission's slot is given back");
    assert!(
        freed_after <= Duration::from_millis(200 * 2 + 200),
        "given back {freed_after:?} after Redis answered; one sweep interval is 200 ms"
    );
    // The account's one slot is free for the next start.
    let next = start_session(&lobby, &agent).await;
    lobby.end_session(&next).await;
    assert_eq!(lobby.active_sessions(&account).await, 0);
    assert_eq!(lobby.usage(&account).await["reserved_seconds"], 0);
    println!("a start whose admission answered after its deadline: 503, its slot free {freed_after:?} after Redis answered");
}

/// A Lobby whose Redis is reached through a proxy that can lose one
/// command on its way, or its answer.
async fn lobby_behind_a_proxy() -> (Lobby, RedisProxy) {
    let dir = lobby_tests::scratch_dir("redis-proxy");
    let redis = RedisServer::start(&dir);
    let proxy = RedisProxy::start(redis.port).await;
    let mut options = slow_redis_options();
    options
        .extra_env
        .push(("LOBBY_REDIS_URL".into(), proxy.url()));
    (Lobby::start_on(redis, dir, options).await, proxy)
}

/// A running session of a new account, behind the proxy, after a first
/// end: Redis knows the end's script, so the command cut next is the end
/// itself, not a NOSCRIPT round.
async fn a_session_behind_a_proxy() -> (Lobby, RedisProxy, String, String) {
    let (lobby, proxy) = lobby_behind_a_proxy().await;
    let account = lobby.create_account(1).await;
    let agent = lobby.create_agent(&account, json!({})).await;
    let first = start_session(&lobby, &agent).await;
    lobby.end_session(&first).await;
    let session = start_session(&lobby, &agent).await;
    (lobby, proxy, account, session)
}

/// The SHA1 the end's script is sent under.
fn finish_script_sha() -> String {
    redis::Script::new(include_str!("../../services/session/src/finish.lua"))
        .get_hash()
        .to_owned()
}

async fn end_answering_503(lobby: &Lobby, session: &str) {
    let r = lobby
        .admin(reqwest::Method::POST, &format!("/sessions/{session}/end"))
        .send()
        .await
        .expect("end");
    assert_eq!(r.status(), 503, "the end's connection was cut");
    assert!(r.headers().contains_key("retry-after"));
}

async fn record_after_a_sweep_interval(lobby: &Lobby, session: &str) -> Value {
    tokio::time::sleep(Duration::from_millis(2 * 200 + 100)).await;
    let (status, record) = lobby
        .admin_json(reqwest::Method::GET, &format!("/sessions/{session}"), None)
        .await;
    assert_eq!(status, 200, "{record}");
    record
}

#[tokio::test]
async fn an_end_lost_on_its_way_to_redis_is_applied_within_a_sweep_interval() {
    let (lobby, proxy, account, session) = a_session_behind_a_proxy().await;
    proxy.cut_next("EVALSHA", &finish_script_sha(), Cut::Before);
    end_answering_503(&lobby, &session).await;
    assert_eq!(proxy.cuts(), 1);
    // Nobody asks again: Lobby applies the end it could not confirm.
    let record = record_after_a_sweep_interval(&lobby, &session).await;
    assert_eq!(record["status"], "ended", "{record}");
    assert_eq!(lobby.active_sessions(&account).await, 0);
    assert_eq!(lobby.usage(&account).await["reserved_seconds"], 0);
}

#[tokio::test]
async fn an_end_whose_answer_is_lost_is_applied_once() {
    let (lobby, proxy, account, session) = a_session_behind_a_proxy().await;
    // Long enough to bill a second, so that billing twice would show.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    proxy.cut_next("EVALSHA", &finish_script_sha(), Cut::After);
    end_answering_503(&lobby, &session).await;
    assert_eq!(proxy.cuts(), 1);
    let record = record_after_a_sweep_interval(&lobby, &session).await;
    assert_eq!(record["status"], "ended", "{record}");
    // The caller's retry finds it ended, and nothing is billed twice.
    let again = lobby.end_session(&session).await;
    assert_eq!(again["ended_at_ms"], record["ended_at_ms"]);
    let usage = lobby.usage(&account).await;
    assert!(record["duration_seconds"].as_u64() >= Some(1), "{record}");
    assert_eq!(
        usage["used_seconds"], record["duration_seconds"],
        "{usage} {record}"
    );
    assert_eq!(usage["reserved_seconds"], 0, "{usage}");
    assert_eq!(lobby.active_sessions(&account).await, 0);
}
