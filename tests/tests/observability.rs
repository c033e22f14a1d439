//! The dashboard and the alert rules in deploy/observability name only
//! metrics Lobby exports: a Lobby with every metrics listener on runs a
//! little of everything (a worker's session started and ended, a start
//! refused at the limit, one at the edge's rate limit), and every metric the
//! two files name must be among what its processes serve.

use lobby_tests::{free_port, Lobby, LobbyOptions};
use serde_json::json;
use std::{collections::BTreeSet, time::Duration};

/// Every family a `/metrics` page declares (`# TYPE <name> …`).
async fn families(lobby: &Lobby, url: &str, into: &mut BTreeSet<String>) {
    for _ in 0..50 {
        if let Ok(r) = lobby.http.get(url).send().await {
            let text = r.text().await.unwrap_or_default();
            into.extend(
                text.lines()
                    .filter_map(|l| l.strip_prefix("# TYPE "))
                    .filter_map(|l| l.split(' ').next())
                    .map(str::to_owned),
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("nothing serves {url}");
}

/// The Lobby metric names a file mentions, histogram suffixes removed.
fn named_in(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("lobby_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let base = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        names.insert(base.to_owned());
        rest = &tail[end..];
    }
    names
}

#[tokio::test]
async fn the_dashboard_and_alerts_name_only_exported_metrics() {
    let listens: Vec<(&str, String)> = ["SESSION", "ROOMS", "AUTH", "ARTIFACTS"]
        .into_iter()
        .map(|s| (s, format!("127.0.0.1:{}", free_port())))
        .collect();
    let mut env: Vec<(String, String)> = listens
        .iter()
        .map(|(s, l)| (format!("LOBBY_{s}_METRICS_LISTEN"), l.clone()))
        .collect();
    env.push(("LOBBY_RATE_LIMIT_AGENT_PER_MINUTE".into(), "3".into()));
    let lobby = Lobby::start(LobbyOptions {
        extra_env: env,
        ..Default::default()
    })
    .await;
    let account = lobby.create_account(1).await;
    // A GPU worker's session, started and ended; a start refused at the
    // account's limit meanwhile.
    let agent = lobby
        .create_agent(&account, json!({ "requires_worker": true }))
        .await;
    let r = lobby.connect(&agent, None).await;
    assert_eq!(r.status(), 200);
    let session: serde_json::Value = r.json().await.expect("json");
    let refused = lobby.connect(&agent, None).await;
    assert_eq!(refused.status(), 429);
    let ended = lobby
        .end_session(session["session_id"].as_str().expect("id"))
        .await;
    assert_eq!(ended["status"], "ended", "{ended}");
    // The edge's per-agent rate limit (3 a minute) refuses the fourth.
    let r = lobby.connect(&agent, None).await;
    assert_eq!(r.status(), 200);
    let r = lobby.connect(&agent, None).await;
    assert_eq!(r.status(), 429);

    let mut exported = BTreeSet::new();
    families(
        &lobby,
        &format!("{}/metrics", lobby.gateway()),
        &mut exported,
    )
    .await;
    for (_, listen) in &listens {
        families(&lobby, &format!("http://{listen}/metrics"), &mut exported).await;
    }
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/observability");
    for file in ["dashboard.json", "alerts.yaml"] {
        let text = std::fs::read_to_string(format!("{root}/{file}")).expect(file);
        if file.ends_with(".json") {
            serde_json::from_str::<serde_json::Value>(&text).expect("the dashboard is JSON");
        }
        let named = named_in(&text);
        assert!(named.len() >= 8, "{file} names {named:?}");
        let missing: Vec<_> = named.difference(&exported).collect();
        assert!(
            missing.is_empty(),
            "{file} names metrics no Lobby process exports: {missing:?}; exported: {exported:?}"
        );
    }
}

/// A request's id (the caller's `X-Request-Id`, or one the gateway makes)
/// travels with every gRPC call it causes, and every service's JSON log
/// lines about it carry it.
#[tokio::test]
async fn a_requests_id_is_in_the_logs_of_every_service_it_reached() {
    let lobby = Lobby::start(LobbyOptions {
        worker: false,
        extra_env: vec![
            ("LOBBY_LOG_FORMAT".into(), "json".into()),
            ("LOBBY_LOG".into(), "info,lobby_kit::metrics=debug".into()),
        ],
        ..Default::default()
    })
    .await;
    let account = lobby.create_account(2).await;
    let agent = lobby.create_agent(&account, json!({})).await;
    let id = "req-trace-7f3a9c";
    let r = lobby
        .http
        .post(format!("{}/v1/public/agents/connect", lobby.gateway()))
        .header("x-request-id", id)
        .json(&json!({ "agent_id": agent }))
        .send()
        .await
        .expect("connect");
    assert_eq!(r.status(), 200);
    let reached: &[&str] = match lobby.topology {
        // Auth vouched for the caller, session admitted, rooms opened the room.
        lobby_tests::Topology::Split => &["auth", "session", "rooms"],
        lobby_tests::Topology::CoLocated => &["server-0"],
    };
    for name in reached {
        let mut log = String::new();
        for _ in 0..50 {
            log = lobby.log(name);
            if log.contains(id) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let line = log.lines().find(|l| l.contains(id));
        let line = line.unwrap_or_else(|| panic!("{name} logged nothing of {id}:\n{log}"));
        let parsed: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
        assert!(
            parsed
                .to_string()
                .contains(&format!("\"request_id\":\"{id}\"")),
            "{name}: {line}"
        );
    }
}

/// A gauge's value on a `/metrics` page, once it is served.
async fn gauge(lobby: &Lobby, url: &str, name: &str) -> Option<i64> {
    let text = lobby.http.get(url).send().await.ok()?.text().await.ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as i64)
}

/// Polls until the gauge reads `want` (they refresh every 2 s).
async fn gauge_reaches(lobby: &Lobby, url: &str, name: &str, want: i64) {
    let mut seen = None;
    for _ in 0..60 {
        seen = gauge(lobby, url, name).await;
        if seen == Some(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{name} at {url}: {seen:?}, not {want}");
}

#[tokio::test]
async fn the_slots_and_worker_capacity_gauges_follow_what_is_held() {
    let (session, rooms) = (free_port(), free_port());
    let lobby = Lobby::start(LobbyOptions {
        extra_env: vec![
            (
                "LOBBY_SESSION_METRICS_LISTEN".into(),
                format!("127.0.0.1:{session}"),
            ),
            (
                "LOBBY_ROOMS_METRICS_LISTEN".into(),
                format!("127.0.0.1:{rooms}"),
            ),
        ],
        // The harness's worker: capacity 100.
        worker: true,
        ..Default::default()
    })
    .await;
    let session = format!("http://127.0.0.1:{session}/metrics");
    let rooms = format!("http://127.0.0.1:{rooms}/metrics");
    gauge_reaches(&lobby, &rooms, "lobby_rooms_workers_live", 1).await;
    gauge_reaches(&lobby, &rooms, "lobby_rooms_worker_capacity", 100).await;

    // Two accounts (so two of the store's buckets, most likely), three
    // sessions on GPU workers and two without.
    let mut ids = Vec::new();
    for (account, agent_fields, starts) in [
        (
            lobby.create_account(10).await,
            json!({ "requires_worker": true }),
            3,
        ),
        (lobby.create_account(10).await, json!({}), 2),
    ] {
        let agent = lobby.create_agent(&account, agent_fields).await;
        for _ in 0..starts {
            let r = lobby.connect(&agent, None).await;
            assert_eq!(r.status(), 200);
            let body: serde_json::Value = r.json().await.expect("json");
            ids.push(body["session_id"].as_str().expect("id").to_owned());
        }
    }
    gauge_reaches(&lobby, &session, "lobby_session_slots_in_use", 5).await;
    gauge_reaches(&lobby, &rooms, "lobby_rooms_worker_capacity_reserved", 3).await;

    // One of each ends; a second end of the same session frees nothing more.
    for id in [&ids[0], &ids[3], &ids[0]] {
        lobby.end_session(id).await;
    }
    gauge_reaches(&lobby, &session, "lobby_session_slots_in_use", 3).await;
    gauge_reaches(&lobby, &rooms, "lobby_rooms_worker_capacity_reserved", 2).await;
}

#[tokio::test]
async fn traces_reach_a_collector_as_one_trace_across_the_services() {
    let collector = lobby_tests::otlp_collector::OtlpCollector::start().await;
    let lobby = Lobby::start(LobbyOptions {
        extra_env: vec![
            ("LOBBY_OTLP_ENDPOINT".into(), collector.url.clone()),
            // So that the test knows the trace id: the caller's.
            ("LOBBY_OTLP_TRUST_CALLER_TRACES".into(), "true".into()),
            // The batch processor's own setting: export within 200 ms.
            ("OTEL_BSP_SCHEDULE_DELAY".into(), "200".into()),
        ],
        worker: false,
        ..Default::default()
    })
    .await;
    let account = lobby.create_account(5).await;
    let agent = lobby.create_agent(&account, json!({})).await;
    // The caller's own trace: Lobby's spans must join it.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let r = lobby
        .http
        .post(format!("{}/v1/public/agents/connect", lobby.gateway()))
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .json(&json!({ "agent_id": agent }))
        .send()
        .await
        .expect("connect");
    assert_eq!(r.status(), 200);

    // What each process must have traced, in this trace.
    let wanted: &[(&str, &str)] = match lobby.topology {
        lobby_tests::Topology::Split => &[
            ("lobby-gateway", "request"),
            ("lobby-auth", "grpc"),
            ("lobby-session", "grpc"),
            ("lobby-rooms", "grpc"),
        ],
        lobby_tests::Topology::CoLocated => &[("lobby-server", "request")],
    };
    let mut spans = Vec::new();
    for _ in 0..100 {
        spans = collector
            .spans()
            .into_iter()
            .filter(|s| s.trace_id == trace_id)
            .collect::<Vec<_>>();
        if wanted.iter().all(|(service, name)| {
            spans
                .iter()
                .any(|s| s.service == *service && s.name == *name)
        }) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (service, name) in wanted {
        assert!(
            spans
                .iter()
                .any(|s| s.service == *service && s.name == *name),
            "no {name} span from {service} in the caller's trace: {spans:#?}"
        );
    }
    // The gateway's span continues the caller's; every other span's parent
    // is a span of this trace (the hops link up).
    let request = spans
        .iter()
        .find(|s| s.name == "request")
        .expect("request span");
    assert_eq!(request.parent_span_id, caller_span, "{request:?}");
    let ids: BTreeSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    for span in &spans {
        if span.name != "request" {
            assert!(
                ids.contains(span.parent_span_id.as_str()),
                "{span:?} has a parent outside the trace"
            );
        }
    }
    let start = spans.iter().find(|s| {
        s.attribute("method")
            .is_some_and(|m| m.ends_with("/StartSession"))
    });
    if lobby.topology == lobby_tests::Topology::Split {
        assert!(start.is_some(), "no StartSession span: {spans:#?}");
    }
}
