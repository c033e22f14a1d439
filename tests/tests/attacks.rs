//! The attack suite: one Lobby, attacked class by class from outside, as an
//! anonymous caller, a tenant, a worker or a process on the internal
//! network would. Every attack must be refused; every refusal over HTTP
//! must be a clear 4xx in the envelope of the contract its route belongs
//! to. It prints, per class, how many attacks were tried and how many were
//! refused (`cargo test -p lobby-tests --test attacks -- --nocapture`).
//!
//! Keep the list growing: every hole found later becomes a case here.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD as B64, Engine};
use lobby_tests::{avatar_server::AvatarServer, Lobby, LobbyOptions};
use reqwest::Method;
use serde_json::{json, Value};
use std::{collections::BTreeMap, time::Duration};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// (tried, refused) per class.
#[derive(Default)]
struct Tally(BTreeMap<&'static str, (u32, u32)>);

impl Tally {
    fn record(&mut self, class: &'static str, refused: bool, what: &str) {
        let entry = self.0.entry(class).or_default();
        entry.0 += 1;
        if refused {
            entry.1 += 1;
        } else {
            eprintln!("NOT REFUSED [{class}] {what}");
        }
    }

    fn print_and_check(&self) {
        println!("\n{:<22} {:>6} {:>8}", "attack class", "tried", "refused");
        for (class, (tried, refused)) in &self.0 {
            println!("{class:<22} {tried:>6} {refused:>8}");
        }
        let failed: Vec<_> = self.0.iter().filter(|(_, (t, r))| t != r).collect();
        assert!(failed.is_empty(), "attacks got through: {failed:?}");
    }
}

/// The machine code of a refusal in the envelope `path`'s contract uses,
/// or `None` when the body is not that envelope.
fn contract_code(path: &str, body: &Value) -> Option<String> {
    let (field, marker_ok) = if path.starts_with("/api/agent/") {
        ("status_description", body["status"] == 0)
    } else if path.starts_with("/v1/links") {
        ("error", body["success"] == false)
    } else {
        ("error_code", true)
    };
    let code = body[field].as_str()?;
    let message = body["message"].as_str().unwrap_or("");
    (marker_ok && !code.is_empty() && !message.is_empty()).then(|| code.to_owned())
}

struct Attacker<'a> {
    lobby: &'a Lobby,
    /// A connection per attack: an attack that gets its connection closed
    /// (as a trickled or oversized request should) must not spill onto the
    /// next one through a pooled connection.
    http: reqwest::Client,
    tally: Tally,
}

impl Attacker<'_> {
    /// Sends one attack; it counts as refused when the answer is a 4xx in
    /// the route's envelope (and, when given, with one of `codes`).
    async fn http(
        &mut self,
        class: &'static str,
        what: &str,
        request: reqwest::RequestBuilder,
        path: &str,
        codes: &[&str],
    ) {
        let refused = match request.send().await {
            Ok(r) => {
                let status = r.status();
                let body: Value = r.json().await.unwrap_or(Value::Null);
                let code = contract_code(path, &body);
                let clear = status.is_client_error() && code.is_some();
                let expected =
                    codes.is_empty() || code.as_deref().is_some_and(|c| codes.contains(&c));
                if !(clear && expected) {
                    eprintln!("[{class}] {what}: {status} {body}");
                }
                clear && expected
            }
            Err(e) => {
                eprintln!("[{class}] {what}: no answer: {e}");
                false
            }
        };
        self.tally.record(class, refused, what);
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(format!("{}{path}", self.lobby.gateway()))
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(format!("{}{path}", self.lobby.gateway()))
    }
}

const CONNECT: &str = "/v1/public/agents/connect";
const CREATE: &str = "/api/agent/v1/session/create/";
const EVENTS: &str = "/api/agent/v1/session/events/";
const LINK_START: &str = "/v1/links/start-session";

#[tokio::test]
async fn every_attack_is_refused_with_a_clear_4xx_in_its_contracts_shape() {
    let lobby = Lobby::start(LobbyOptions {
        extra_env: vec![
            // The real rule: the avatar fetch may not reach private addresses.
            (
                "LOBBY_AVATAR_ALLOW_PRIVATE_ADDRESSES".into(),
                "false".into(),
            ),
            ("LOBBY_HEADER_READ_TIMEOUT_MS".into(), "800".into()),
            // The one run the JWT attacks use is all this agent may open.
            ("LOBBY_AGENT_RUN_MAX_OPEN".into(), "1".into()),
        ],
        ..Default::default()
    })
    .await;
    let avatars = AvatarServer::start().await;
    let account = lobby.create_account(10).await;
    let (agent, agent_key) = lobby
        .create_agent_with_key(
            &account,
            json!({ "allowed_hostnames": ["https://example.com"] }),
        )
        .await;
    let mut a = Attacker {
        lobby: &lobby,
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client"),
        tally: Tally::default(),
    };

    // Origin: spoofs of an allowed origin.
    for &spoof in lobby_tests::ORIGIN_SPOOFS {
        let r = a
            .post(CONNECT)
            .header("origin", spoof)
            .json(&json!({ "agent_id": agent }));
        a.http("origin", spoof, r, CONNECT, &["auth_failed"]).await;
    }
    let r = a.post(CONNECT).json(&json!({ "agent_id": agent }));
    a.http(
        "origin",
        "no Origin on a non-wildcard agent",
        r,
        CONNECT,
        &["auth_failed"],
    )
    .await;

    // Agent keys on the seed-001 create.
    let api_key = lobby.create_api_key(&account, &["admin"]).await;
    let mut altered = agent_key.clone();
    let last = altered.pop().expect("non-empty");
    altered.push(if last == 'a' { 'b' } else { 'a' });
    for (what, key) in [
        ("no key", String::new()),
        ("malformed", "agent_".to_owned()),
        (
            "made up",
            "agent_abcdefgh1234_0123456789abcdef0123456789abcd".to_owned(),
        ),
        ("one character changed", altered),
        ("an account API key", api_key.clone()),
        ("SQL in the key", "agent_' OR 1=1 --".to_owned()),
    ] {
        let r = a.post(CREATE).header("X-OTAS-AGENT-KEY", key);
        a.http("keys", what, r, CREATE, &[]).await;
    }

    // Session JWTs.
    let granted: Value = a
        .post(CREATE)
        .header("X-OTAS-AGENT-KEY", &agent_key)
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let jwt = granted["response"]["jwt_token"]
        .as_str()
        .expect("jwt")
        .to_owned();
    let parts: Vec<&str> = jwt.split('.').collect();
    let decode =
        |p: &str| -> Value { serde_json::from_slice(&B64.decode(p).expect("b64")).expect("json") };
    let enc = |v: &Value| B64.encode(serde_json::to_vec(v).expect("json"));
    let (header, claims) = (decode(parts[0]), decode(parts[1]));
    let mut other = claims.clone();
    other["sid"] = json!("another-session");
    let mut none = header.clone();
    none["alg"] = json!("none");
    let mut rs = header.clone();
    rs["alg"] = json!("RS256");
    let mut kid = header.clone();
    kid["kid"] = json!("k-nope");
    let mut long_lived = claims.clone();
    long_lived["exp"] = json!(4_102_444_800_i64);
    for (what, token) in [
        (
            "tampered session id",
            format!("{}.{}.{}", parts[0], enc(&other), parts[2]),
        ),
        ("alg none", format!("{}.{}.", enc(&none), parts[1])),
        (
            "HS/RS confusion",
            format!("{}.{}.{}", enc(&rs), parts[1], parts[2]),
        ),
        (
            "unknown kid",
            format!("{}.{}.{}", enc(&kid), parts[1], parts[2]),
        ),
        (
            "extended expiry",
            format!("{}.{}.{}", parts[0], enc(&long_lived), parts[2]),
        ),
        (
            "forged signature",
            format!("{}.{}.{}", parts[0], parts[1], B64.encode([7u8; 32])),
        ),
        ("not a JWT", "a.b".to_owned()),
    ] {
        let r = a.get(EVENTS).header("X-OTAS-AGENT-SESSION-TOKEN", token);
        a.http("session JWTs", what, r, EVENTS, &[]).await;
    }
    let r = a.post(CREATE).header("X-OTAS-AGENT-KEY", &agent_key);
    a.http(
        "keys",
        "a run past the agent's cap",
        r,
        CREATE,
        &["open_runs_limit"],
    )
    .await;
    // The key that signed the genuine token leaked: rotated away and revoked.
    let (s, _) = lobby
        .admin_json(
            reqwest::Method::POST,
            "/signing-keys/rotate",
            Some(json!({ "revoke_previous": true })),
        )
        .await;
    assert_eq!(s, 200);
    let r = a.get(EVENTS).header("X-OTAS-AGENT-SESSION-TOKEN", &jwt);
    a.http(
        "session JWTs",
        "signed by a revoked key",
        r,
        EVENTS,
        &["token_invalid"],
    )
    .await;

    // Links: guessed, malformed, deactivated.
    let face_agent = lobby
        .create_agent(
            &account,
            json!({ "avatar_image_url": avatars.url("face.jpg") }),
        )
        .await;
    let link = lobby.create_link(&account, &face_agent, json!({})).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let _ = lobby
        .admin_json(Method::POST, &format!("/links/{link}/deactivate"), None)
        .await;
    for (what, id) in [
        ("guessed", "lnk_AAAAAAAAAAAAAAAAAAAAAAAA".to_owned()),
        ("path traversal", "lnk_../../admin".to_owned()),
        ("a Redis glob", "lnk_*".to_owned()),
        ("empty", String::new()),
        ("deactivated", link.clone()),
    ] {
        let r = a.post(LINK_START).json(&json!({ "link_id": id }));
        a.http("links", what, r, LINK_START, &[]).await;
    }
    for (what, path) in [
        ("link admin without a key", "/v1/links".to_owned()),
        ("someone's link without a key", format!("/v1/links/{link}")),
    ] {
        let r = a.get(&path);
        a.http("links", what, r, &path, &[]).await;
    }

    // SSRF through the avatar fetch (a link start validates the avatar).
    let private = avatars.url("face.jpg");
    let port = private
        .split(':')
        .nth(2)
        .and_then(|p| p.split('/').next())
        .unwrap_or("80")
        .to_owned();
    for (what, url) in [
        ("loopback", private.clone()),
        (
            "cloud metadata",
            "http://169.254.169.254/latest/meta-data/".to_owned(),
        ),
        ("IPv6 loopback", format!("http://[::1]:{port}/face.jpg")),
        (
            "NAT64 of loopback",
            format!("http://[64:ff9b::7f00:1]:{port}/face.jpg"),
        ),
        (
            "6to4 of 10.0.0.1",
            "http://[2002:a00:1::1]/face.jpg".to_owned(),
        ),
        (
            "IPv4-mapped loopback",
            format!("http://[::ffff:127.0.0.1]:{port}/face.jpg"),
        ),
        ("a file URL", "file:///etc/passwd".to_owned()),
        ("gopher", "gopher://127.0.0.1:6379/_INFO".to_owned()),
        (
            "decimal loopback",
            format!("http://2130706433:{port}/face.jpg"),
        ),
        (
            "localhost by name",
            format!("http://localhost:{port}/face.jpg"),
        ),
    ] {
        // An agent may not even be given a URL that is not http(s).
        let (status, created) = lobby
            .admin_json(
                Method::POST,
                "/agents",
                Some(json!({
                    "account_id": account,
                    "status": "published",
                    "allowed_hostnames": ["*"],
                    "avatar_image_url": url,
                })),
            )
            .await;
        if status != 201 {
            let clear = status == 400 && contract_code("/admin/v1/agents", &created).is_some();
            a.tally.record("SSRF", clear, what);
            continue;
        }
        let ssrf_agent = created["id"].as_str().expect("id").to_owned();
        let id = lobby.create_link(&account, &ssrf_agent, json!({})).await["id"]
            .as_str()
            .expect("id")
            .to_owned();
        let r = a.post(LINK_START).json(&json!({ "link_id": id }));
        a.http(
            "SSRF",
            what,
            r,
            LINK_START,
            &["avatar_address_refused", "avatar_invalid_url"],
        )
        .await;
    }

    // Oversized and malformed input.
    let big = "x".repeat(2 << 20);
    for (what, request, path) in [
        (
            "2 MiB body",
            a.post(CONNECT)
                .header("content-type", "application/json")
                .body(big.clone()),
            CONNECT,
        ),
        (
            "not JSON",
            a.post(CONNECT)
                .header("content-type", "application/json")
                .body("{\"agent_id\":"),
            CONNECT,
        ),
        (
            "JSON, wrong type",
            a.post(CONNECT).json(&json!({ "agent_id": 42 })),
            CONNECT,
        ),
        ("an array", a.post(CONNECT).json(&json!([1, 2, 3])), CONNECT),
        (
            "text/plain",
            a.post(CONNECT)
                .header("content-type", "text/plain")
                .body("{}"),
            CONNECT,
        ),
        (
            "agent id of 10,000 characters",
            a.post(CONNECT)
                .json(&json!({ "agent_id": "a".repeat(10_000) })),
            CONNECT,
        ),
        (
            "client_user_ref of 10,000 characters",
            a.post(CONNECT)
                .json(&json!({ "agent_id": agent, "client_user_ref": "u".repeat(10_000) })),
            CONNECT,
        ),
        (
            "a NUL in the agent id",
            a.post(CONNECT).json(&json!({ "agent_id": "agt\u{0}x" })),
            CONNECT,
        ),
        (
            "2 MiB link start",
            a.post(LINK_START)
                .header("content-type", "application/json")
                .body(big.clone()),
            LINK_START,
        ),
        (
            "deeply nested JSON",
            a.post(CONNECT)
                .header("content-type", "application/json")
                .body(format!("{}{}", "[".repeat(100_000), "]".repeat(100_000))),
            CONNECT,
        ),
    ] {
        a.http("oversized, malformed", what, request, path, &[])
            .await;
    }
    let event_body = json!({ "type": "x", "payload": "p".repeat(100_000) });
    let r = a
        .post(EVENTS)
        .header("X-OTAS-AGENT-SESSION-TOKEN", &jwt)
        .json(&event_body);
    a.http("oversized, malformed", "a 100 KB event", r, EVENTS, &[])
        .await;

    // Edge: routes and methods that do not exist, a trickled request.
    for (method, path) in [
        (Method::GET, "/admin/v1/../../etc/passwd"),
        (Method::GET, "/.env"),
        (Method::DELETE, CONNECT),
        (Method::from_bytes(b"PROPFIND").expect("method"), "/"),
    ] {
        let r = a
            .http
            .request(method.clone(), format!("{}{path}", lobby.gateway()));
        a.http("edge", &format!("{method} {path}"), r, path, &[])
            .await;
    }
    let addr = lobby.gateway().trim_start_matches("http://").to_owned();
    let mut slow = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    slow.write_all(b"POST /v1/public/agents/connect HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 64];
    let cut = matches!(
        tokio::time::timeout(Duration::from_secs(5), slow.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    ) || String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 408");
    a.tally
        .record("edge", cut, "headers trickled past the deadline");

    // The admin API without its token, or with a tenant's key.
    for (what, token) in [
        ("no token", None),
        ("a tenant's admin-scoped key", Some(api_key.clone())),
        (
            "a near miss",
            Some(format!("{}x", lobby_tests::lobby::ADMIN_TOKEN)),
        ),
    ] {
        let mut r = a.get("/admin/v1/accounts");
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        a.http("admin", what, r, "/admin/v1/accounts", &["unauthorized"])
            .await;
    }

    // Workers: the door without a key, with someone else's, or another kind.
    let door = lobby.workers_door();
    for (what, key) in [
        ("no key", String::new()),
        (
            "made up",
            "wkr_abcdefgh12_0123456789abcdef0123456789".to_owned(),
        ),
        ("an agent key", agent_key.clone()),
        ("an account key", api_key.clone()),
    ] {
        let attached =
            lobby_worker::Worker::attach(door.config_with_key("intruder", &key, "local", 2)).await;
        a.tally.record("workers", attached.is_err(), what);
    }
    let someone = door.key_for("someone", json!({ "pool": "default" })).await;
    let taken =
        lobby_worker::Worker::attach(door.config_with_key("victim", &someone, "local", 2)).await;
    a.tally
        .record("workers", taken.is_err(), "another worker's id");

    // Internal gRPC from a process without Lobby's certificate.
    for (name, url) in &lobby.grpc {
        let plaintext = lobby_kit::grpc::lazy_channel(
            url,
            Duration::from_secs(5),
            &lobby_kit::grpc_tls::GrpcTls::Plaintext,
        )
        .expect("url");
        let answered = tonic_health::pb::health_client::HealthClient::new(plaintext)
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await;
        a.tally.record("internal gRPC", answered.is_err(), name);
    }

    a.tally.print_and_check();
}
