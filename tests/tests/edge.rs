//! The public edge under abuse: unknown routes and methods, made-up HTTP
//! methods, rate limits per address and per agent, a client that trickles
//! its headers, more connections than allowed, a request past its
//! deadline, and `/healthz` in a loop. Every refusal is JSON in the
//! envelope of the contract its path belongs to.

use lobby_tests::{free_port, Lobby, LobbyOptions, RoomProvider};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn options(env: &[(&str, &str)]) -> LobbyOptions {
    LobbyOptions {
        worker: false,
        extra_env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..Default::default()
    }
}

async fn call(lobby: &Lobby, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = lobby
        .http
        .request(method, format!("{}{path}", lobby.gateway()));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    let is_json = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let text = response.text().await.expect("body");
    assert!(is_json, "{path}: a {status} that is not JSON: {text:?}");
    (status, serde_json::from_str(&text).expect("json"))
}

/// The machine code, wherever the path's contract puts it.
fn code_of(path: &str, body: &Value) -> String {
    let field = if path.starts_with("/api/agent/") {
        assert_eq!(body["status"], 0, "{body}");
        "status_description"
    } else if path.starts_with("/v1/links") {
        assert_eq!(body["success"], false, "{body}");
        "error"
    } else {
        "error_code"
    };
    body[field].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json_in_their_contracts_shape() {
    let lobby = Lobby::start(options(&[])).await;
    let cases = [
        (Method::GET, "/nope", 404, "not_found"),
        (
            Method::GET,
            "/v1/public/agents/connect",
            405,
            "method_not_allowed",
        ),
        (
            Method::GET,
            "/api/agent/v1/session/create/",
            405,
            "method_not_allowed",
        ),
        (
            Method::PUT,
            "/v1/links/start-session",
            405,
            "method_not_allowed",
        ),
        (Method::GET, "/v1/links/abc/nope", 404, "not_found"),
        (Method::DELETE, "/healthz", 405, "method_not_allowed"),
    ];
    for (method, path, status, code) in &cases {
        let (got, body) = call(&lobby, method.clone(), path, None).await;
        assert_eq!(got, *status, "{method} {path}: {body}");
        assert_eq!(code_of(path, &body), *code, "{method} {path}: {body}");
    }
    println!(
        "edge, routes: {} of {} refused in JSON",
        cases.len(),
        cases.len()
    );
}

#[tokio::test]
async fn made_up_methods_add_no_metric_series() {
    let lobby = Lobby::start(options(&[])).await;
    for i in 0..40 {
        let method = Method::from_bytes(format!("XMETHOD{i}").as_bytes()).expect("method");
        for path in ["/v1/public/agents/connect", "/nope"] {
            let r = lobby
                .http
                .request(method.clone(), format!("{}{path}", lobby.gateway()))
                .send()
                .await
                .expect("send");
            assert!(r.status().is_client_error(), "{}", r.status());
        }
    }
    let metrics = lobby
        .http
        .get(format!("{}/metrics", lobby.gateway()))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    assert!(
        !metrics.contains("XMETHOD"),
        "a made-up method became a label"
    );
    assert!(metrics.contains("method=\"other\""), "{metrics}");
}

#[tokio::test]
async fn rate_limits_answer_429_in_each_contracts_shape() {
    // Per address: five requests a minute on the public routes.
    let lobby = Lobby::start(options(&[("LOBBY_RATE_LIMIT_IP_PER_MINUTE", "5")])).await;
    let missing = json!({ "agent_id": "agt_missing" });
    for _ in 0..5 {
        let (status, body) = call(
            &lobby,
            Method::POST,
            "/v1/public/agents/connect",
            Some(missing.clone()),
        )
        .await;
        assert_eq!(status, 404, "{body}");
    }
    let (mut tried, mut refused) = (0, 0);
    for (method, path, body) in [
        (
            Method::POST,
            "/v1/public/agents/connect",
            Some(missing.clone()),
        ),
        (Method::POST, "/api/agent/v1/session/create/", None),
        (
            Method::POST,
            "/v1/links/start-session",
            Some(json!({ "link_id": "lnk_x" })),
        ),
        (Method::GET, "/nope", None),
    ] {
        tried += 1;
        let response = lobby
            .http
            .request(method, format!("{}{path}", lobby.gateway()))
            .json(&body.unwrap_or(json!({})))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 429, "{path}");
        assert!(response.headers().contains_key("retry-after"), "{path}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(code_of(path, &body), "rate_limited", "{path}: {body}");
        refused += 1;
    }
    // Operators and providers have their own credentials: not limited.
    assert_eq!(
        lobby
            .http
            .get(format!("{}/healthz", lobby.gateway()))
            .send()
            .await
            .expect("healthz")
            .status(),
        200
    );

    // Per agent: three starts a minute, whoever asks.
    let lobby = Lobby::start(options(&[("LOBBY_RATE_LIMIT_AGENT_PER_MINUTE", "3")])).await;
    let account_b = lobby.create_account(20).await;
    let busy = lobby.create_agent(&account_b, json!({})).await;
    let quiet = lobby.create_agent(&account_b, json!({})).await;
    for _ in 0..3 {
        assert_eq!(lobby.connect(&busy, None).await.status(), 200);
    }
    tried += 1;
    let (status, body) = call(
        &lobby,
        Method::POST,
        "/v1/public/agents/connect",
        Some(json!({ "agent_id": busy })),
    )
    .await;
    assert_eq!(
        (status, code_of("/", &body).as_str()),
        (429, "rate_limited"),
        "{body}"
    );
    refused += 1;
    assert_eq!(
        lobby.connect(&quiet, None).await.status(),
        200,
        "another agent is not held back"
    );
    // Agent runs (seed 001) count against the same per-agent rate.
    let (_, key) = lobby.create_agent_with_key(&account_b, json!({})).await;
    let create = || {
        lobby
            .http
            .post(format!("{}/api/agent/v1/session/create/", lobby.gateway()))
            .header("X-OTAS-AGENT-KEY", &key)
            .send()
    };
    for _ in 0..3 {
        assert_eq!(create().await.expect("create").status(), 200);
    }
    tried += 1;
    let refused_run = create().await.expect("create");
    assert_eq!(refused_run.status(), 429);
    let body: Value = refused_run.json().await.expect("json");
    assert_eq!(
        code_of("/api/agent/v1/session/create/", &body),
        "rate_limited",
        "{body}"
    );
    refused += 1;
    println!("edge, rate limits: {refused} of {tried} attacks refused");
}

/// The per-address limit counts clients, not proxies: behind one trusted
/// proxy the client is the address it appended to `X-Forwarded-For`; with
/// none, the header is the caller's own word and changes nothing.
#[tokio::test]
async fn the_per_address_limit_counts_the_client_behind_a_trusted_proxy_and_ignores_spoofing() {
    let from = |lobby: &Lobby, forwarded: &'static str| {
        lobby
            .http
            .post(format!("{}/v1/public/agents/connect", lobby.gateway()))
            .header("x-forwarded-for", forwarded)
            .json(&json!({ "agent_id": "agt_missing" }))
            .send()
    };
    let status = |r: reqwest::Response| r.status().as_u16();

    // Behind one proxy: two clients, each with its own two a minute; what
    // a client wrote left of the proxy's entry is not read.
    let behind = Lobby::start(options(&[
        ("LOBBY_RATE_LIMIT_IP_PER_MINUTE", "2"),
        ("LOBBY_TRUSTED_PROXY_HOPS", "1"),
    ]))
    .await;
    for _ in 0..2 {
        assert_eq!(status(from(&behind, "203.0.113.1").await.expect("a")), 404);
    }
    assert_eq!(status(from(&behind, "203.0.113.1").await.expect("a")), 429);
    assert_eq!(
        status(from(&behind, "6.6.6.6, 203.0.113.1").await.expect("a")),
        429,
        "a spoofed entry left of the proxy's bought a fresh bucket"
    );
    assert_eq!(
        status(from(&behind, "203.0.113.2").await.expect("b")),
        404,
        "another client behind the same proxy was held back"
    );

    // No proxy trusted: a made-up header is one more request from the peer.
    let direct = Lobby::start(options(&[("LOBBY_RATE_LIMIT_IP_PER_MINUTE", "2")])).await;
    for forwarded in ["198.51.100.1", "198.51.100.2"] {
        assert_eq!(status(from(&direct, forwarded).await.expect("c")), 404);
    }
    assert_eq!(
        status(from(&direct, "198.51.100.3").await.expect("c")),
        429,
        "a spoofed X-Forwarded-For escaped the limit"
    );
    println!("edge, forwarded addresses: 2 of 2 spoofing attempts refused");
}

#[tokio::test]
async fn a_client_trickling_its_headers_loses_the_connection() {
    let lobby = Lobby::start(options(&[("LOBBY_HEADER_READ_TIMEOUT_MS", "500")])).await;
    let addr = lobby.gateway().trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    stream
        .write_all(b"POST /v1/public/agents/connect HTTP/1.1\r\nHost: lobby\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 256];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await;
    let closed = match read {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(n)) => String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"),
        Err(_) => false,
    };
    assert!(closed, "the connection outlived the header deadline");
    println!("edge, slow headers: 1 of 1 refused");
}

#[tokio::test]
async fn connections_past_the_limit_are_closed_at_once() {
    let lobby = Lobby::start(options(&[("LOBBY_MAX_CONNECTIONS", "4")])).await;
    let addr = lobby.gateway().trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    let mut closed = 0;
    for _ in 0..8 {
        let mut stream = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        let mut buf = [0u8; 16];
        match tokio::time::timeout(Duration::from_millis(300), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => closed += 1,
            _ => held.push(stream),
        }
    }
    assert!(
        closed >= 4,
        "only {closed} of 8 were closed with room for 4"
    );
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let fresh = lobby_tests::http_client(Duration::from_secs(5));
    let metrics = fresh
        .get(format!("{}/metrics", lobby.gateway()))
        .send()
        .await
        .expect("a connection once the others are gone")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.lines().any(|l| l.starts_with("lobby_gateway_connections_refused_total")
            && !l.ends_with(" 0")),
        "{metrics}"
    );
    println!("edge, connection limit: {closed} of {closed} extra connections refused");
}

#[tokio::test]
async fn a_request_past_its_deadline_is_a_json_504_and_releases_what_it_took() {
    // A "LiveKit" that accepts connections and never answers.
    let blackhole = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = blackhole.local_addr().expect("addr").port();
    let _held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = blackhole.accept().await {
            open.push(stream);
        }
    });
    let lobby = Lobby::start(LobbyOptions {
        provider: RoomProvider::LiveKit {
            ws_url: format!("ws://127.0.0.1:{port}"),
            http_url: format!("http://127.0.0.1:{port}"),
        },
        ..options(&[
            ("LOBBY_REQUEST_TIMEOUT_MS", "700"),
            ("LOBBY_LIVEKIT_REQUEST_TIMEOUT_MS", "3000"),
        ])
    })
    .await;
    let account = lobby.create_account(2).await;
    let agent = lobby.create_agent(&account, json!({})).await;
    let started = std::time::Instant::now();
    let (status, body) = call(
        &lobby,
        Method::POST,
        "/v1/public/agents/connect",
        Some(json!({ "agent_id": agent })),
    )
    .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (504, Some("timeout")),
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered at the deadline"
    );
    // The start goes on behind the answer, fails at LiveKit's own timeout,
    // and gives back what it took.
    let mut active = u64::MAX;
    for _ in 0..100 {
        active = lobby.active_sessions(&account).await;
        if active == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(active, 0, "the abandoned start released its slot");
}

#[tokio::test]
async fn healthz_in_a_loop_opens_no_redis_connections() {
    let lobby = Lobby::start(options(&[])).await;
    let received = || async {
        let mut conn = lobby.redis.connection().await;
        let info: String = redis::cmd("INFO")
            .arg("stats")
            .query_async(&mut conn)
            .await
            .expect("info");
        info.lines()
            .find_map(|l| l.strip_prefix("total_connections_received:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .expect("total_connections_received")
    };
    let before = received().await;
    for _ in 0..100 {
        let r = lobby
            .http
            .get(format!("{}/healthz", lobby.gateway()))
            .send()
            .await
            .expect("healthz");
        assert_eq!(r.status(), 200);
    }
    let opened = received().await - before;
    // The two INFO calls above open one each.
    assert!(
        opened <= 4,
        "100 health checks opened {opened} Redis connections"
    );
}

#[tokio::test]
async fn metrics_can_move_to_an_operator_listener() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let lobby = Lobby::start(options(&[("LOBBY_GATEWAY_METRICS_LISTEN", &listen)])).await;
    let (status, body) = call(&lobby, Method::GET, "/metrics", None).await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (404, Some("not_found"))
    );
    let scraped = scrape(&lobby, &listen).await;
    assert!(
        scraped.contains("lobby_gateway_request_seconds"),
        "{scraped}"
    );
}

/// Scrapes `http://{listen}/metrics`, waiting for it to listen.
async fn scrape(lobby: &Lobby, listen: &str) -> String {
    for _ in 0..50 {
        if let Ok(r) = lobby
            .http
            .get(format!("http://{listen}/metrics"))
            .send()
            .await
        {
            return r.text().await.unwrap_or_default();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("nothing serves /metrics on {listen}");
}

/// The value of the first sample of `name` whose labels contain `labels`.
fn sample(scraped: &str, name: &str, labels: &str) -> Option<f64> {
    scraped
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(labels))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test]
async fn every_service_counts_its_grpc_calls_and_redis_round_trips() {
    let (auth, artifacts) = (free_port(), free_port());
    let (auth, artifacts) = (
        format!("127.0.0.1:{auth}"),
        format!("127.0.0.1:{artifacts}"),
    );
    let lobby = Lobby::start(options(&[
        ("LOBBY_AUTH_METRICS_LISTEN", &auth),
        ("LOBBY_ARTIFACTS_METRICS_LISTEN", &artifacts),
    ]))
    .await;
    let account = lobby.create_account(5).await;
    let agent = lobby.create_agent(&account, json!({})).await;
    let r = lobby.connect(&agent, None).await;
    assert_eq!(r.status(), 200);
    // A made-up method is answered UNIMPLEMENTED and adds no series.
    let channel = lobby.grpc_channel(&lobby.grpc[0].1);
    let mut made_up = tonic::client::Grpc::new(channel);
    made_up.ready().await.expect("channel");
    let _ = made_up
        .unary::<(), (), _>(
            tonic::Request::new(()),
            http::uri::PathAndQuery::from_static("/lobby.made.Up/Nothing"),
            tonic_prost::ProstCodec::default(),
        )
        .await;
    for listen in [&auth, &artifacts] {
        let scraped = scrape(&lobby, listen).await;
        assert!(
            sample(
                &scraped,
                "lobby_redis_round_trip_seconds_count",
                "outcome=\"ok\""
            )
            .is_some_and(|n| n > 0.0),
            "{listen}: {scraped}"
        );
        assert!(!scraped.contains("made.Up"), "{scraped}");
    }
    if lobby.topology == lobby_tests::Topology::Split {
        // Auth in its own process: the principal it gave the gateway.
        let scraped = scrape(&lobby, &auth).await;
        assert!(
            sample(
                &scraped,
                "lobby_grpc_requests_total",
                "method=\"/lobby.auth.v1.Auth/"
            )
            .is_some_and(|n| n > 0.0),
            "{scraped}"
        );
        assert!(
            sample(
                &scraped,
                "lobby_grpc_requests_total",
                "code=\"12\",method=\"unknown\""
            )
            .is_some_and(|n| n >= 1.0),
            "{scraped}"
        );
        assert!(scraped.contains("lobby_grpc_request_seconds_bucket"));
    }
}
