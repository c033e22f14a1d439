//! The audit log: every delete, credential change, link change and admin
//! edit leaves an entry saying who, what, which record, when and from where;
//! the log pages newest first, keeps no link id, and trims by age only.

use lobby_tests::{Lobby, LobbyOptions};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeSet;

async fn admin(
    lobby: &Lobby,
    method: Method,
    path: &str,
    body: Option<Value>,
    request_id: &str,
) -> Value {
    let mut req = lobby.admin(method, path).header("x-request-id", request_id);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("admin call");
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert!(status < 300, "{path}: {status} {body}");
    body
}

async fn entries(lobby: &Lobby, account: Option<&str>) -> Vec<Value> {
    let path = match account {
        Some(a) => format!("/accounts/{a}/audit?limit=500"),
        None => "/audit?limit=500".to_owned(),
    };
    let (s, page) = lobby.admin_json(Method::GET, &path, None).await;
    assert_eq!(s, 200, "{page}");
    page["entries"].as_array().expect("entries").clone()
}

fn find<'a>(log: &'a [Value], event: &str, target: &str) -> &'a Value {
    log.iter()
        .find(|e| e["event"] == event && e["target"] == target)
        .unwrap_or_else(|| panic!("no {event} of {target} in {log:#?}"))
}

#[tokio::test]
async fn every_kind_of_change_is_audited_with_who_what_when_and_where() {
    let lobby = Lobby::start(LobbyOptions::default()).await;
    let started = lobby_tests::now_ms();
    let account = admin(
        &lobby,
        Method::POST,
        "/accounts",
        Some(json!({ "name": "audited" })),
        "req-create-account",
    )
    .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    admin(
        &lobby,
        Method::PATCH,
        &format!("/accounts/{account}"),
        Some(json!({ "max_concurrency": 7 })),
        "req-2",
    )
    .await;
    admin(
        &lobby,
        Method::POST,
        &format!("/accounts/{account}/database-id-hash/rotate"),
        None,
        "req-3",
    )
    .await;
    let data_key = admin(
        &lobby,
        Method::POST,
        &format!("/accounts/{account}/data-keys/rotate"),
        None,
        "req-4",
    )
    .await["data_key_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let created = admin(
        &lobby,
        Method::POST,
        "/agents",
        Some(json!({ "account_id": account, "status": "published", "allowed_hostnames": ["*"] })),
        "req-5",
    )
    .await;
    let agent = created["id"].as_str().expect("agent").to_owned();
    admin(
        &lobby,
        Method::PATCH,
        &format!("/agents/{agent}"),
        Some(json!({ "name": "renamed" })),
        "req-6",
    )
    .await;
    let rotated = admin(
        &lobby,
        Method::POST,
        &format!("/agents/{agent}/keys"),
        Some(json!({})),
        "req-7",
    )
    .await;
    let agent_key_prefix = rotated["prefix"].as_str().expect("prefix").to_owned();
    let api = admin(
        &lobby,
        Method::POST,
        &format!("/accounts/{account}/api-keys"),
        Some(json!({ "scopes": ["sessions:read", "sessions:write", "links:write"] })),
        "req-8",
    )
    .await;
    let api_prefix = api["prefix"].as_str().expect("prefix").to_owned();
    let api_key = api["key"].as_str().expect("key").to_owned();
    let worker = admin(
        &lobby,
        Method::POST,
        "/workers/gpu-1/keys",
        Some(json!({ "account_id": account })),
        "req-9",
    )
    .await;
    let worker_prefix = worker["prefix"].as_str().expect("prefix").to_owned();
    admin(
        &lobby,
        Method::PATCH,
        &format!("/keys/{agent_key_prefix}"),
        Some(json!({ "active": false })),
        "req-10",
    )
    .await;
    admin(
        &lobby,
        Method::PATCH,
        &format!("/keys/{agent_key_prefix}"),
        Some(json!({ "active": true })),
        "req-11",
    )
    .await;
    admin(
        &lobby,
        Method::POST,
        &format!("/keys/{worker_prefix}/revoke"),
        None,
        "req-12",
    )
    .await;
    let link = admin(
        &lobby,
        Method::POST,
        &format!("/accounts/{account}/links"),
        Some(json!({ "agent_id": agent })),
        "req-13",
    )
    .await;
    let link_id = link["id"].as_str().expect("link").to_owned();
    admin(
        &lobby,
        Method::POST,
        &format!("/links/{link_id}/deactivate"),
        None,
        "req-14",
    )
    .await;
    let session = lobby
        .connect(&agent, None)
        .await
        .json::<Value>()
        .await
        .expect("json")["session_id"]
        .as_str()
        .expect("session")
        .to_owned();
    admin(
        &lobby,
        Method::POST,
        &format!("/sessions/{session}/end"),
        None,
        "req-15",
    )
    .await;
    let signing = admin(&lobby, Method::POST, "/signing-keys/rotate", None, "req-16").await["kid"]
        .as_str()
        .expect("kid")
        .to_owned();
    let pool_worker = admin(
        &lobby,
        Method::POST,
        "/workers/gpu-2/keys",
        Some(json!({ "pool": "shared" })),
        "req-17",
    )
    .await["prefix"]
        .as_str()
        .expect("prefix")
        .to_owned();

    // With the account's own API key: a record deleted, a link made.
    let database = lobby.database_id_hash(&account).await;
    let as_key = |method: Method, path: &str| {
        lobby
            .http
            .request(method, format!("{}{path}", lobby.gateway()))
            .bearer_auth(&api_key)
            .header("database-id-hash", &database)
            .header("x-request-id", "req-key")
    };
    let r = as_key(Method::POST, "/api/exec/session/rec-1")
        .json(&json!({ "agentId": agent, "userName": "A", "userEmail": "a@b.example" }))
        .send()
        .await
        .expect("create");
    assert_eq!(r.status(), 200);
    assert_eq!(
        as_key(Method::DELETE, "/api/session/rec-1")
            .send()
            .await
            .expect("delete")
            .status(),
        200
    );
    let r = as_key(Method::POST, "/v1/links")
        .json(&json!({ "agent_id": agent }))
        .send()
        .await
        .expect("link");
    assert!(r.status().is_success(), "{}", r.status());

    let log = entries(&lobby, Some(&account)).await;
    let admin_changes = [
        (
            "createAccount",
            format!("account:{account}"),
            "req-create-account",
        ),
        ("updateAccount", format!("account:{account}"), "req-2"),
        (
            "rotateDatabaseIdHash",
            format!("account:{account}"),
            "req-3",
        ),
        ("rotateDataKey", format!("data_key:{data_key}"), "req-4"),
        ("createAgent", format!("agent:{agent}"), "req-5"),
        ("updateAgent", format!("agent:{agent}"), "req-6"),
        ("rotateAgentKey", format!("key:{agent_key_prefix}"), "req-7"),
        ("createApiKey", format!("key:{api_prefix}"), "req-8"),
        ("createWorkerKey", format!("key:{worker_prefix}"), "req-9"),
        ("pauseKey", format!("key:{agent_key_prefix}"), "req-10"),
        ("resumeKey", format!("key:{agent_key_prefix}"), "req-11"),
        ("revokeKey", format!("key:{worker_prefix}"), "req-12"),
        ("endSession", format!("session:{session}"), "req-15"),
    ];
    let mut kinds = BTreeSet::new();
    for (event, target, request_id) in &admin_changes {
        let e = find(&log, event, target);
        assert_eq!(e["who"], "admin", "{e}");
        assert_eq!(e["request_id"], *request_id, "{e}");
        assert_eq!(e["client_ip"], "127.0.0.1", "{e}");
        let at = e["at_ms"].as_i64().expect("at");
        assert!(
            at >= started - 1000 && at <= lobby_tests::now_ms() + 1000,
            "{e}"
        );
        kinds.insert(*event);
    }
    // Links are named by fingerprint: a link id is a credential.
    let links: Vec<&Value> = log
        .iter()
        .filter(|e| e["event"] == "createLink" || e["event"] == "deactivateLink")
        .collect();
    assert_eq!(links.len(), 3, "{links:#?}");
    assert!(
        !serde_json::to_string(&log)
            .expect("json")
            .contains(&link_id),
        "a link id in the log"
    );
    let deleted = find(&log, "deleteSession", "session:rec-1");
    assert_eq!(deleted["who"], format!("key:{api_prefix}"));
    assert_eq!(deleted["request_id"], "req-key");
    assert!(links
        .iter()
        .any(|e| e["who"] == format!("key:{api_prefix}") && e["event"] == "createLink"));
    kinds.extend(["createLink", "deactivateLink", "deleteSession"]);

    // What belongs to no account is in the global log.
    let global = entries(&lobby, None).await;
    find(
        &global,
        "rotateSigningKey",
        &format!("signing_key:{signing}"),
    );
    find(&global, "createWorkerKey", &format!("key:{pool_worker}"));
    kinds.extend(["rotateSigningKey"]);
    println!(
        "audit: {} kinds of change, each with who, what, when and where",
        kinds.len()
    );

    // Another account's log holds none of it.
    let other = lobby.create_account(1).await;
    let theirs = entries(&lobby, Some(&other)).await;
    assert!(
        theirs
            .iter()
            .all(|e| e["target"] == format!("account:{other}")),
        "{theirs:#?}"
    );
}

#[tokio::test]
async fn the_log_pages_newest_first_across_its_writers_and_trims_by_age_only() {
    let lobby = Lobby::start(LobbyOptions {
        extra_env: vec![("LOBBY_AUDIT_RETENTION_DAYS".into(), "1".into())],
        ..Default::default()
    })
    .await;
    // An entry from long ago in the stream every service shared before
    // each had its own, as if written then.
    let account = "acct_audit_trim";
    let log = format!("{}:{account}:audit", lobby_kit::keys::account_tag(account));
    let mut conn = lobby.redis.connection().await;
    let writer = conn.clone();
    let xadd = |stream: String, id: String, event: &'static str| {
        let mut conn = writer.clone();
        async move {
            let _: String = redis::cmd("XADD")
                .arg(&stream)
                .arg(&id)
                .arg("who")
                .arg("admin")
                .arg("event")
                .arg(event)
                .query_async(&mut conn)
                .await
                .expect("xadd");
        }
    };
    xadd(log.clone(), "1000-0".into(), "ancient").await;
    let (s, b) = lobby
        .admin_json(Method::POST, "/accounts", Some(json!({ "id": account })))
        .await;
    assert_eq!(s, 201, "{b}");
    for i in 0..7 {
        let (s, _) = lobby
            .admin_json(
                Method::PATCH,
                &format!("/accounts/{account}"),
                Some(json!({ "name": format!("n{i}") })),
            )
            .await;
        assert_eq!(s, 200);
    }
    // Auth wrote its own stream. Entries of the very same stream id in the
    // sessions' stream and the shared one must each appear once, whichever
    // page boundary falls between them.
    let catalog: Vec<(String, std::collections::HashMap<String, String>)> = redis::cmd("XRANGE")
        .arg(format!("{log}:catalog"))
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .expect("xrange");
    assert_eq!(catalog.len(), 8, "auth writes the catalog stream");
    // Writing trims the stream shared before the split too: the ancient
    // entry is gone from Redis, not only hidden.
    let shared_before: usize = redis::cmd("XLEN")
        .arg(&log)
        .query_async(&mut conn)
        .await
        .expect("xlen");
    assert_eq!(
        shared_before, 0,
        "the retention trims the old shared stream"
    );
    // The third newest: the first page ends after the sessions' entry of it.
    let shared_id = catalog[5].0.clone();
    xadd(format!("{log}:sessions"), shared_id.clone(), "fromSessions").await;
    xadd(log.clone(), shared_id.clone(), "fromBeforeTheSplit").await;

    let mut seen = Vec::new();
    let mut events = Vec::new();
    let mut before = String::new();
    loop {
        let path = format!(
            "/accounts/{account}/audit?limit=3{}",
            if before.is_empty() {
                String::new()
            } else {
                format!("&before={before}")
            }
        );
        let (s, page) = lobby.admin_json(Method::GET, &path, None).await;
        assert_eq!(s, 200, "{page}");
        let entries = page["entries"].as_array().expect("entries");
        assert!(entries.len() <= 3);
        for e in entries {
            seen.push(e["id"].as_str().expect("id").to_owned());
            events.push(e["event"].as_str().expect("event").to_owned());
        }
        match page["next"].as_str() {
            Some(next) => before = next.to_owned(),
            None => break,
        }
    }
    // createAccount + 7 updates, and the two of the shared id; the ancient
    // entry is past the retention.
    assert_eq!(seen.len(), 10, "{seen:?}");
    let key = |id: &String| {
        let parts: Vec<u64> = id.split('-').map(|p| p.parse().expect("number")).collect();
        std::cmp::Reverse(parts)
    };
    let mut sorted = seen.clone();
    sorted.sort_by_key(key);
    sorted.dedup();
    assert_eq!(seen, sorted, "newest first, each once");
    for event in ["fromSessions", "fromBeforeTheSplit", "createAccount"] {
        assert_eq!(
            events.iter().filter(|e| *e == event).count(),
            1,
            "{event}: {events:?}"
        );
    }
    assert!(!events.contains(&"ancient".to_owned()));
    for bad in ["?limit=501", "?before=zzz", "?limit=x"] {
        let (s, b) = lobby
            .admin_json(
                Method::GET,
                &format!("/accounts/{account}/audit{bad}"),
                None,
            )
            .await;
        assert_eq!(s, 400, "{bad}: {b}");
    }
    let (s, _) = lobby
        .admin_json(Method::GET, "/accounts/acct_missing/audit", None)
        .await;
    assert_eq!(s, 404);
}
