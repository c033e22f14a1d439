//! The start path as a caller meets it: a refused start writes nothing at
//! all to Redis, and a change of settings (unpublishing an agent, revoking a
//! key) reaches every replica's cache within a second.

use lobby_tests::{
    avatar_server::AvatarServer, redis_server::RedisServer, Lobby, LobbyOptions, Topology,
};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[tokio::test]
async fn refused_starts_write_nothing_to_redis() {
    let lobby = Lobby::start(LobbyOptions {
        // No lease renewal during the test: it would rewrite the held slot.
        extra_env: vec![("LOBBY_SESSION_LEASE_MS".into(), "3600000".into())],
        // Link starts need a worker; its heartbeats are writes of its own
        // (to its `{w:<id>}:worker` hash): that hash is compared without
        // the fields they rewrite.
        worker: true,
        ..Default::default()
    })
    .await;
    let avatars = AvatarServer::start().await;
    let face = json!({ "avatar_image_url": avatars.url("face.jpg") });
    // Full: one slot, taken.
    let full = lobby.create_account(1).await;
    let agent = lobby.create_agent(&full, face.clone()).await;
    let narrow = lobby.create_agent(&full, json!({})).await;
    let link_to_full = lobby.create_link(&full, &agent, json!({})).await;
    // Out of minutes: the first start reserves the whole minute.
    let spent = lobby.create_account(10).await;
    lobby
        .patch_account(&spent, json!({ "minutes_quota": 1 }))
        .await;
    let minute_agent = lobby
        .create_agent(&spent, json!({ "max_session_seconds": 60 }))
        .await;
    // A link used up.
    let roomy = lobby.create_account(10).await;
    let link_agent = lobby.create_agent(&roomy, face).await;
    let used_up = lobby
        .create_link(&roomy, &link_agent, json!({ "use_limit": 1 }))
        .await;

    let l = &lobby;
    let link_start = move |link: &Value| {
        l.http
            .post(format!("{}/v1/links/start-session", l.gateways[0]))
            .json(&json!({ "link_id": link["id"] }))
            .send()
    };
    assert_eq!(l.connect(&agent, None).await.status(), 200);
    assert_eq!(l.connect(&minute_agent, None).await.status(), 200);
    assert_eq!(link_start(&used_up).await.expect("start").status(), 200);

    // Each kind of refusal once: it warms every cache (catalog, avatar)
    // and lets the admitted starts' own writes settle.
    let (agent, narrow, minute_agent) = (&agent, &narrow, &minute_agent);
    let (used_up, link_to_full) = (&used_up, &link_to_full);
    let refuse = move |i: usize| async move {
        let r = match i % 5 {
            0 => l.connect(agent, None).await,
            1 => l.connect(narrow, None).await,
            2 => l.connect(minute_agent, None).await,
            3 => link_start(used_up).await.expect("start"),
            _ => link_start(link_to_full).await.expect("start"),
        };
        let status = r.status().as_u16();
        let retry_header = r
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().expect("header").to_owned());
        let body: Value = r.json().await.expect("json");
        (i % 5, status, retry_header, body)
    };
    for i in 0..5 {
        refuse(i).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The worker's hash minus what its heartbeats rewrite: a refused start
    // must not reserve its capacity either.
    let worker_fields = || async {
        let mut conn = lobby.redis.connection().await;
        let mut all: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
            .arg("{w:test-worker}:worker")
            .query_async(&mut conn)
            .await
            .expect("hgetall");
        all.remove("last_seen_ms");
        all.remove("load");
        all
    };
    let worker_before = worker_fields().await;
    assert!(worker_before.contains_key("reserved"), "{worker_before:?}");
    let before = lobby.redis.snapshot().await;
    let mut refused = [0; 5];
    for i in 0..100 {
        let (kind, status, retry_header, body) = refuse(i).await;
        let code = |field: &str| body[field].as_str().unwrap_or_default().to_owned();
        match kind {
            0 | 1 => {
                assert_eq!(
                    (status, code("error_code")),
                    (429, "concurrency_limit".into()),
                    "{body}"
                );
                // The only lease runs an hour: the hint is the cap (15 s by
                // default), never the hour and never 0.
                assert_eq!(body["retry_after_seconds"], 15, "{body}");
                assert_eq!(retry_header.as_deref(), Some("15"));
            }
            2 => assert_eq!(
                (status, code("error_code")),
                (429, "minutes_exhausted".into()),
                "{body}"
            ),
            3 => assert_eq!(
                (status, code("error")),
                (403, "link_used_up".into()),
                "{body}"
            ),
            _ => assert_eq!(
                (status, code("error")),
                (429, "concurrency_limit".into()),
                "{body}"
            ),
        }
        refused[kind] += 1;
    }
    let after = lobby.redis.snapshot().await;
    assert_eq!(
        worker_fields().await,
        worker_before,
        "a refusal touched the worker"
    );
    let heartbeat = |k: &String| k.starts_with("{w:") && k.ends_with("}:worker");
    let changed: Vec<String> = RedisServer::writes_between(&before, &after)
        .into_iter()
        .filter(|k| !heartbeat(k))
        .collect();
    println!(
        "refused starts (full, full, minutes, link used up, link to full): {refused:?}; {} keys before, {} after, {} changed",
        before.len(),
        after.len(),
        changed.len()
    );
    assert!(changed.is_empty(), "refusals changed {changed:?}");
    let (s, link) = lobby
        .admin_json(
            Method::GET,
            &format!("/links/{}", link_to_full["id"].as_str().expect("id")),
            None,
        )
        .await;
    assert_eq!(s, 200, "{link}");
    assert_eq!(link["uses"], 0, "a refused link start used none: {link}");
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
