//! The start path as a caller meets it: a refused start writes nothing at
//! all to Redis, and a change of settings (unpublishing an agent, revoking a
//! key) reaches every replica's cache within a second.

use lobby_tests::{Lobby, LobbyOptions, Topology};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[tokio::test]
async fn refused_starts_write_nothing_to_redis() {
    let lobby = Lobby::start(LobbyOptions {
        // No lease renewal during the test: it would rewrite the held slot;
        // and no worker, whose heartbeats are writes of their own.
        extra_env: vec![("LOBBY_SESSION_LEASE_MS".into(), "3600000".into())],
        worker: false,
        ..Default::default()
    })
    .await;
    let account = lobby.create_account(1).await;
    let agent = lobby.create_agent(&account, json!({})).await;
    let narrow = lobby.create_agent(&account, json!({})).await;
    assert_eq!(lobby.connect(&agent, None).await.status(), 200);
    // Warm every cache and let the first start's own writes settle.
    assert_eq!(lobby.connect(&narrow, None).await.status(), 429);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let before = lobby.redis.snapshot().await;
    let mut refused = 0;
    for i in 0..100 {
        let who = if i % 2 == 0 { &agent } else { &narrow };
        let r = lobby.connect(who, None).await;
        assert_eq!(r.status(), 429);
        let body: Value = r.json().await.expect("json");
        assert_eq!(body["error_code"], "concurrency_limit");
        refused += 1;
    }
    let after = lobby.redis.snapshot().await;
    let changed: Vec<&String> = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(v))
        .map(|(k, _)| k)
        .chain(before.keys().filter(|k| !after.contains_key(*k)))
        .collect();
    println!(
        "{refused} refused starts: {} keys before, {} after, {} changed",
        before.len(),
        after.len(),
        changed.len()
    );
    assert!(changed.is_empty(), "refusals changed {changed:?}");
}

/// Two replicas, each with its own cache (co-located servers): a change
/// made through one is seen by the other within a second, not at its TTL.
#[tokio::test]
async fn unpublishing_and_revoking_reach_every_replica_within_a_second() {
    let lobby = Lobby::start(LobbyOptions {
        topology: Topology::CoLocated,
        gateways: 2,
        ..Default::default()
    })
    .await;
    let account = lobby.create_account(100).await;
    let (agent, agent_key) = lobby.create_agent_with_key(&account, json!({})).await;
    let run = |i: usize| {
        lobby
            .http
            .post(format!(
                "{}/api/agent/v1/session/create/",
                lobby.gateways[i]
            ))
            .header("x-otas-agent-key", agent_key.clone())
            .send()
    };
    // Replica 1 has both cached.
    assert_eq!(
        lobby
            .connect_via(1, json!({ "agent_id": agent }), None)
            .await
            .status(),
        200
    );
    assert_eq!(run(1).await.expect("run").status(), 200);

    // Unpublished through replica 0.
    let (s, _) = lobby
        .admin_json(
            Method::PATCH,
            &format!("/agents/{agent}"),
            Some(json!({ "status": "unpublished" })),
        )
        .await;
    assert_eq!(s, 200);
    let began = Instant::now();
    let mut unpublished_after = None;
    while began.elapsed() < Duration::from_secs(5) {
        let r = lobby
            .connect_via(1, json!({ "agent_id": agent }), None)
            .await;
        if r.status() == 403 {
            let body: Value = r.json().await.expect("json");
            assert_eq!(body["error_code"], "agent_unpublished");
            unpublished_after = Some(began.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let unpublished_after = unpublished_after.expect("replica 1 never saw the unpublish");

    // The key revoked through replica 0.
    let prefix = agent_key.split('_').nth(1).expect("prefix").to_owned();
    let (s, _) = lobby
        .admin_json(Method::POST, &format!("/keys/{prefix}/revoke"), None)
        .await;
    assert_eq!(s, 200);
    let began = Instant::now();
    let mut revoked_after = None;
    while began.elapsed() < Duration::from_secs(5) {
        let r = run(1).await.expect("run");
        if r.status() == 403 {
            let body: Value = r.json().await.expect("json");
            assert_eq!(body["status_description"], "key_revoked");
            revoked_after = Some(began.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let revoked_after = revoked_after.expect("replica 1 never saw the revocation");

    // An allowlist change: only auth's (cached) origin check can refuse it.
    let other = lobby.create_agent(&account, json!({})).await;
    let from = |origin: &'static str| {
        let other = other.clone();
        let lobby = &lobby;
        async move {
            lobby
                .connect_via(1, json!({ "agent_id": other }), Some(origin))
                .await
                .status()
        }
    };
    assert_eq!(
        from("https://else.example").await,
        200,
        "cached as allowing all"
    );
    let (s, _) = lobby
        .admin_json(
            Method::PATCH,
            &format!("/agents/{other}"),
            Some(json!({ "allowed_hostnames": ["https://only.example"] })),
        )
        .await;
    assert_eq!(s, 200);
    let began = Instant::now();
    let mut narrowed_after = None;
    while began.elapsed() < Duration::from_secs(5) {
        if from("https://else.example").await == 403 {
            narrowed_after = Some(began.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let narrowed_after = narrowed_after.expect("replica 1 never saw the new allowlist");
    println!(
        "changes seen by the other replica: unpublish after {} ms (exact in the admission script), key revocation after {} ms, allowlist after {} ms (cache TTL 5000 ms)",
        unpublished_after.as_millis(),
        revoked_after.as_millis(),
        narrowed_after.as_millis()
    );
    assert!(unpublished_after < Duration::from_secs(1));
    assert!(revoked_after < Duration::from_secs(1));
    assert!(narrowed_after < Duration::from_secs(1));
}

/// A signing key revoked through one replica stops verifying on the other
/// within a second: its cached copy goes with the change message, not at
/// its TTL. A plain rotation leaves earlier tokens verifying.
#[tokio::test]
async fn a_revoked_signing_key_stops_verifying_on_every_replica_within_a_second() {
    let lobby = Lobby::start(LobbyOptions {
        topology: Topology::CoLocated,
        gateways: 2,
        ..Default::default()
    })
    .await;
    let account = lobby.create_account(100).await;
    let (_, agent_key) = lobby.create_agent_with_key(&account, json!({})).await;
    let run = |i: usize| {
        let agent_key = agent_key.clone();
        let lobby = &lobby;
        async move {
            let r = lobby
                .http
                .post(format!(
                    "{}/api/agent/v1/session/create/",
                    lobby.gateways[i]
                ))
                .header("x-otas-agent-key", agent_key)
                .send()
                .await
                .expect("run");
            assert_eq!(r.status(), 200);
            let body: Value = r.json().await.expect("json");
            body["response"]["jwt_token"]
                .as_str()
                .expect("jwt")
                .to_owned()
        }
    };
    let events = |i: usize, jwt: String| {
        let lobby = &lobby;
        async move {
            let r = lobby
                .http
                .get(format!(
                    "{}/api/agent/v1/session/events/",
                    lobby.gateways[i]
                ))
                .header("X-OTAS-AGENT-SESSION-TOKEN", jwt)
                .send()
                .await
                .expect("events");
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.expect("json"))
        }
    };
    // Replica 1 has the first key cached, from verifying a token it signed.
    let first = run(1).await;
    assert_eq!(events(1, first.clone()).await.0, 200);

    // A plain rotation: earlier tokens keep verifying everywhere.
    let (s, rotated) = lobby
        .admin_json(Method::POST, "/signing-keys/rotate", None)
        .await;
    assert_eq!(s, 200, "{rotated}");
    assert_eq!(rotated["previous_revoked"], false, "{rotated}");
    let second = run(1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(events(1, first.clone()).await.0, 200);
    assert_eq!(events(1, second.clone()).await.0, 200);

    // The second key leaked: rotated away and revoked through replica 0.
    let (s, revoked) = lobby
        .admin_json(
            Method::POST,
            "/signing-keys/rotate",
            Some(json!({ "revoke_previous": true })),
        )
        .await;
    assert_eq!(s, 200, "{revoked}");
    assert_eq!(revoked["previous_kid"], rotated["kid"], "{revoked}");
    assert_eq!(revoked["previous_revoked"], true, "{revoked}");
    let began = Instant::now();
    let mut refused_after = None;
    while began.elapsed() < Duration::from_secs(5) {
        let (status, body) = events(1, second.clone()).await;
        if status == 401 {
            assert_eq!(body["status_description"], "token_invalid", "{body}");
            refused_after = Some(began.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused_after = refused_after.expect("replica 1 kept verifying a revoked key");
    println!(
        "a revoked signing key refused by the other replica after {} ms (cache TTL 5000 ms)",
        refused_after.as_millis()
    );
    assert!(refused_after < Duration::from_secs(1));
    // Retired before the revoked one, the first key was not revoked with it.
    assert_eq!(events(1, first).await.0, 200);
    let third = run(0).await;
    assert_eq!(events(1, third).await.0, 200);
    // A body that is not the route's is a 400, and rotates nothing.
    let (s, body) = lobby
        .admin_json(
            Method::POST,
            "/signing-keys/rotate",
            Some(json!({ "revoke_previous": "yes" })),
        )
        .await;
    assert_eq!(s, 400, "{body}");
}
