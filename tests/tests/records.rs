//! Seed 004, the records contract: the seed's examples replayed field by
//! field, the create race, the pagination edges, search over sealed fields,
//! cross-account isolation on every route, and Redis holding no personal
//! data in the clear.

use futures::future::join_all;
use lobby_tests::{Lobby, LobbyOptions};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// One account's credentials for the contract.
struct Tenant {
    account: String,
    agent: String,
    key: String,
    database: String,
}

async fn tenant(lobby: &Lobby, scopes: &[&str]) -> Tenant {
    let account = lobby.create_account(5).await;
    let agent = lobby.create_agent(&account, json!({})).await;
    let key = lobby.create_api_key(&account, scopes).await;
    let (s, a) = lobby
        .admin_json(Method::GET, &format!("/accounts/{account}"), None)
        .await;
    assert_eq!(s, 200, "{a}");
    let database = a["database_id_hash"].as_str().expect("hash").to_owned();
    assert_eq!(database.len(), 64, "{a}");
    Tenant {
        account,
        agent,
        key,
        database,
    }
}

const RW: &[&str] = &["sessions:read", "sessions:write"];

async fn call(
    lobby: &Lobby,
    t: &Tenant,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = lobby
        .http
        .request(method, format!("{}{path}", lobby.gateway()))
        .bearer_auth(&t.key)
        .header("database-id-hash", &t.database);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {status} {text:?}")),
    )
}

async fn create(lobby: &Lobby, t: &Tenant, id: &str, body: Value) -> (u16, Value) {
    call(
        lobby,
        t,
        Method::POST,
        &format!("/api/exec/session/{id}"),
        Some(body),
    )
    .await
}

fn alice(agent: &str) -> Value {
    json!({
        "agentId": agent,
        "userName": "Alice",
        "userEmail": "alice@example.com",
        "acceptTerms": "true"
    })
}

fn is_iso_millis(v: &Value) -> bool {
    let s = v.as_str().unwrap_or("");
    s.len() == 24 && s.ends_with('Z') && s.as_bytes()[10] == b'T' && s.as_bytes()[19] == b'.'
}

#[tokio::test]
async fn the_seed_examples_replay_field_by_field() {
    let lobby = Lobby::start(LobbyOptions::default()).await;
    let t = tenant(&lobby, RW).await;

    // 3.3: created, then already exists (a body with no status key).
    let (s, b) = create(&lobby, &t, "session-XYZ", alice(&t.agent)).await;
    assert_eq!(s, 200);
    assert_eq!(
        b,
        json!({ "message": "Session created", "data": { "id": "session-XYZ" }, "status": 200 })
    );
    let (s, b) = create(&lobby, &t, "session-XYZ", alice(&t.agent)).await;
    assert_eq!(s, 200);
    assert_eq!(
        b,
        json!({ "message": "Session already exists", "data": { "id": "session-XYZ" } })
    );
    let (s, b) = create(&lobby, &t, "session-2", json!({ "agentId": t.agent })).await;
    assert_eq!(
        (s, b),
        (
            400,
            json!({ "message": "Invalid request, missing required fields", "status": 400 })
        )
    );
    let (s, b) = call(
        &lobby,
        &t,
        Method::POST,
        "/api/exec/session/",
        Some(alice(&t.agent)),
    )
    .await;
    assert_eq!(
        (s, b),
        (
            400,
            json!({ "message": "Invalid request, no id provided within request url", "status": 400 })
        )
    );
    let (s, b) = create(&lobby, &t, "bad%20id", alice(&t.agent)).await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["status"], 400);

    // 3.1: the list, each session a decrypted SessionDTO.
    let (s, list) = call(
        &lobby,
        &t,
        Method::GET,
        &format!("/api/session?agentId={}", t.agent),
        None,
    )
    .await;
    assert_eq!(s, 200, "{list}");
    let rows = list.as_array().expect("a bare array");
    assert_eq!(rows.len(), 1, "{list}");
    let r = &rows[0];
    let keys: Vec<&str> = r
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    for field in [
        "id",
        "agentId",
        "userName",
        "userEmail",
        "acceptTerms",
        "messages",
        "promptTokens",
        "completionTokens",
        "createdAt",
        "updatedAt",
        "finalizedAt",
    ] {
        assert!(keys.contains(&field), "{field} missing from {r}");
    }
    assert_eq!(r["id"], "session-XYZ");
    assert_eq!(r["agentId"], t.agent.as_str());
    assert_eq!(r["userName"], "Alice");
    assert_eq!(r["userEmail"], "alice@example.com");
    assert_eq!(r["acceptTerms"], "true");
    assert_eq!(r["messages"], Value::Null);
    assert_eq!(r["promptTokens"], Value::Null);
    assert_eq!(r["finalizedAt"], Value::Null);
    assert!(
        is_iso_millis(&r["createdAt"]) && is_iso_millis(&r["updatedAt"]),
        "{r}"
    );
    let (_, by_id) = call(&lobby, &t, Method::GET, "/api/session?id=session-XYZ", None).await;
    assert_eq!(by_id, list);

    // 3.2: delete, then not found, then no id.
    let (s, b) = call(&lobby, &t, Method::DELETE, "/api/session/session-XYZ", None).await;
    assert_eq!(
        (s, b),
        (
            200,
            json!({ "message": "Data deleted successfully!", "status": 200 })
        )
    );
    let (s, b) = call(&lobby, &t, Method::DELETE, "/api/session/session-XYZ", None).await;
    assert_eq!(
        (s, b),
        (400, json!({ "message": "Data not found!", "status": 400 }))
    );
    let (s, b) = call(&lobby, &t, Method::DELETE, "/api/session/", None).await;
    assert_eq!(
        (s, b),
        (
            400,
            json!({ "message": "Invalid request, no id provided within request url", "status": 400 })
        )
    );
    let (_, list) = call(&lobby, &t, Method::GET, "/api/session", None).await;
    assert_eq!(list, json!([]));
    // Nothing of the record is left in Redis.
    let left = lobby.redis.keys("*session-XYZ*").await;
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn messages_come_back_as_sent() {
    let lobby = Lobby::start(LobbyOptions::default()).await;
    let t = tenant(&lobby, RW).await;
    let messages =
        r#"[{"role":"user","content":"Hello"},{"role":"assistant","content":"Hi \"there\""}]"#;
    let mut body = alice(&t.agent);
    body["messages"] = json!(messages);
    assert_eq!(create(&lobby, &t, "m-1", body).await.0, 200);
    let (_, list) = call(&lobby, &t, Method::GET, "/api/session?id=m-1", None).await;
    assert_eq!(list[0]["messages"], messages);
    let mut bad = alice(&t.agent);
    bad["messages"] = json!("not json");
    let (s, b) = create(&lobby, &t, "m-2", bad).await;
    assert_eq!(s, 400, "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_racing_creates_make_one_record_and_overwrite_nothing() {
    let lobby = Lobby::start(LobbyOptions::default()).await;
    let t = tenant(&lobby, RW).await;
    let answers = join_all((0..100).map(|i| {
        let (lobby, t) = (&lobby, &t);
        async move {
            let mut body = alice(&t.agent);
            body["userName"] = json!(format!("racer-{i}"));
            let (s, b) = create(lobby, t, "race-1", body).await;
            assert_eq!(s, 200, "{b}");
            (i, b)
        }
    }))
    .await;
    let created: Vec<usize> = answers
        .iter()
        .filter(|(_, b)| b["message"] == "Session created")
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(created.len(), 1, "{created:?}");
    for (_, b) in &answers {
        assert_eq!(b["data"], json!({ "id": "race-1" }), "{b}");
        if b["message"] == "Session already exists" {
            assert!(b.get("status").is_none(), "{b}");
        }
    }
    let (_, list) = call(&lobby, &t, Method::GET, "/api/session?id=race-1", None).await;
    assert_eq!(
        list[0]["userName"],
        format!("racer-{}", created[0]),
        "the record is the winner's"
    );
    println!("records, create race: 100 racing creates, 1 created, 99 found it");
}

#[tokio::test]
async fn credentials_are_checked_and_a_key_never_reaches_another_account() {
    let lobby = Lobby::start(LobbyOptions::default()).await;
    let a = tenant(&lobby, RW).await;
    let b = tenant(&lobby, RW).await;
    assert_ne!(a.database, b.database);
    assert_eq!(create(&lobby, &a, "a-1", alice(&a.agent)).await.0, 200);

    let with = |key: &str, database: Option<&str>| {
        let mut req = lobby
            .http
            .get(format!("{}/api/session", lobby.gateway()))
            .bearer_auth(key);
        if let Some(d) = database {
            req = req.header("database-id-hash", d);
        }
        async move {
            let r = req.send().await.expect("send");
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.expect("json"))
        }
    };
    let (mut tried, mut refused) = (0, 0);
    for (what, key, database, want) in [
        ("no key", "", Some(a.database.as_str()), 401),
        (
            "a made-up key",
            "sk_made_up_0000",
            Some(a.database.as_str()),
            401,
        ),
        ("no database-id-hash", a.key.as_str(), None, 403),
        (
            "another account's hash",
            a.key.as_str(),
            Some(b.database.as_str()),
            403,
        ),
        ("a near miss", a.key.as_str(), Some(&a.database[..63]), 403),
    ] {
        tried += 1;
        let (s, body) = with(key, database).await;
        assert_eq!(s, want, "{what}: {body}");
        assert_eq!(body["status"], want, "{what}: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
        refused += 1;
    }

    // Scopes: read-only cannot write; write-only cannot read.
    let reader = Tenant {
        key: lobby.create_api_key(&a.account, &["sessions:read"]).await,
        ..tenant_of(&a)
    };
    tried += 2;
    let (s, _) = create(&lobby, &reader, "a-2", alice(&a.agent)).await;
    assert_eq!(s, 403);
    let (s, _) = call(&lobby, &reader, Method::DELETE, "/api/session/a-1", None).await;
    assert_eq!(s, 403);
    refused += 2;
    assert_eq!(
        call(&lobby, &reader, Method::GET, "/api/session", None)
            .await
            .0,
        200
    );
    let writer = Tenant {
        key: lobby.create_api_key(&a.account, &["sessions:write"]).await,
        ..tenant_of(&a)
    };
    tried += 1;
    assert_eq!(
        call(&lobby, &writer, Method::GET, "/api/session", None)
            .await
            .0,
        403
    );
    refused += 1;

    // Account B, with its own valid credentials, sees nothing of A's on
    // any route and cannot write into A's agent.
    tried += 6;
    let (s, list) = call(&lobby, &b, Method::GET, "/api/session", None).await;
    assert_eq!((s, list), (200, json!([])));
    let (s, list) = call(&lobby, &b, Method::GET, "/api/session?id=a-1", None).await;
    assert_eq!((s, list), (200, json!([])));
    let (s, list) = call(
        &lobby,
        &b,
        Method::GET,
        &format!("/api/session?agentId={}", a.agent),
        None,
    )
    .await;
    assert_eq!((s, list), (200, json!([])));
    let (s, page) = call(
        &lobby,
        &b,
        Method::GET,
        &format!("/api/agent/{}/session?query=alice", a.agent),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        (page["total"].clone(), page["rows"].clone()),
        (json!(0), json!([]))
    );
    let (s, body) = call(&lobby, &b, Method::DELETE, "/api/session/a-1", None).await;
    assert_eq!(
        (s, body["message"].clone()),
        (400, json!("Data not found!"))
    );
    let (s, body) = create(&lobby, &b, "b-into-a", alice(&a.agent)).await;
    assert_eq!(s, 400, "{body}");
    refused += 6;
    // A's record is untouched.
    let (_, list) = call(&lobby, &a, Method::GET, "/api/session?id=a-1", None).await;
    assert_eq!(list[0]["userName"], "Alice");

    // A rotated hash: the old one stops matching at once.
    let (s, rotated) = lobby
        .admin_json(
            Method::POST,
            &format!("/accounts/{}/database-id-hash/rotate", a.account),
            None,
        )
        .await;
    assert_eq!(s, 200, "{rotated}");
    assert_ne!(rotated["database_id_hash"], a.database.as_str());
    tried += 1;
    assert_eq!(with(&a.key, Some(&a.database)).await.0, 403);
    refused += 1;
    let fresh = rotated["database_id_hash"].as_str().expect("hash");
    assert_eq!(with(&a.key, Some(fresh)).await.0, 200);
    println!("records, credentials and isolation: {refused} of {tried} refused");
}

fn tenant_of(t: &Tenant) -> Tenant {
    Tenant {
        account: t.account.clone(),
        agent: t.agent.clone(),
        key: t.key.clone(),
        database: t.database.clone(),
    }
}

#[tokio::test]
async fn pagination_orders_and_edges() {
    let lobby = Lobby::start(LobbyOptions::default()).await;
    let t = tenant(&lobby, RW).await;
    let names = ["delta", "Alpha", "charlie", "bravo", "echo"];
    for i in 0..25 {
        let body = json!({
            "agentId": t.agent,
            "userName": format!("{} {i:02}", names[i % 5]),
            "userEmail": format!("user{:02}@{}.example", 24 - i, names[(i + 2) % 5]),
        });
        assert_eq!(create(&lobby, &t, &format!("p-{i:02}"), body).await.0, 200);
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let page = |q: String| {
        let (lobby, t) = (&lobby, &t);
        async move {
            call(
                lobby,
                t,
                Method::GET,
                &format!("/api/agent/{}/session{q}", t.agent),
                None,
            )
            .await
        }
    };
    let ids = |v: &Value| -> Vec<String> {
        v["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| r["id"].as_str().expect("id").to_owned())
            .collect()
    };

    // Defaults: updatedAt descending, 10 a page.
    let (s, first) = page(String::new()).await;
    assert_eq!(s, 200, "{first}");
    assert_eq!(
        (
            first["total"].clone(),
            first["limit"].clone(),
            first["offset"].clone(),
            first["orderBy"].clone(),
            first["query"].clone()
        ),
        (
            json!(25),
            json!(10),
            json!(0),
            json!("updatedAt"),
            json!("")
        )
    );
    assert_eq!(ids(&first)[0], "p-24");
    let (_, last) = page("?limit=10&offset=20".into()).await;
    assert_eq!(ids(&last), ["p-04", "p-03", "p-02", "p-01", "p-00"]);
    let (_, created) = page("?orderBy=createdAt&limit=3".into()).await;
    assert_eq!(ids(&created), ["p-24", "p-23", "p-22"]);
    let (s, past) = page("?offset=30".into()).await;
    assert_eq!(s, 200);
    assert_eq!(
        (past["total"].clone(), past["rows"].clone()),
        (json!(25), json!([]))
    );

    // Names ascending, case-insensitively; every page in order.
    let mut seen = Vec::new();
    for offset in [0, 10, 20] {
        let (_, p) = page(format!("?orderBy=userName&limit=10&offset={offset}")).await;
        seen.extend(
            p["rows"]
                .as_array()
                .expect("rows")
                .iter()
                .map(|r| r["userName"].as_str().expect("name").to_lowercase()),
        );
    }
    assert_eq!(seen.len(), 25);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted);
    assert!(seen[0].starts_with("alpha"));
    let (_, by_email) = page("?orderBy=userEmail&limit=2".into()).await;
    assert_eq!(
        by_email["rows"][0]["userEmail"], "user00@Alpha.example",
        "{by_email}"
    );
    // A change is seen by the next name-ordered page.
    let body = json!({ "agentId": t.agent, "userName": "aaron", "userEmail": "a@a.example" });
    assert_eq!(create(&lobby, &t, "p-new", body).await.0, 200);
    let (_, p) = page("?orderBy=userName&limit=1".into()).await;
    assert_eq!(ids(&p), ["p-new"]);
    assert_eq!(p["total"], 26);

    // The edges: each a clear 400 in the contract's shape.
    let (mut tried, mut refused) = (0, 0);
    for q in [
        "?limit=0",
        "?limit=1000",
        "?limit=-1",
        "?limit=ten",
        "?offset=-5",
        "?orderBy=name",
        "?orderBy=userName%20desc",
    ] {
        tried += 1;
        let (s, b) = page(q.into()).await;
        assert_eq!(s, 400, "{q}: {b}");
        assert_eq!(b["status"], 400, "{b}");
        assert!(
            b["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Invalid request")),
            "{b}"
        );
        refused += 1;
    }
    println!("records, pagination edges: {refused} of {tried} refused");
}

#[tokio::test]
async fn search_matches_substrings_and_id_prefixes_and_never_a_false_positive() {
    let lobby = Lobby::start(LobbyOptions::default()).await;
    let t = tenant(&lobby, RW).await;
    for (id, name, email) in [
        ("conv-100", "Alice Liddell", "alice@wonder.example"),
        ("conv-200", "Bob Stone", "bob@builder.example"),
        // Every trigram of "abcd" (abc, bcd) is here, but not "abcd".
        ("conv-300", "abcxbcd", "x@y.example"),
        ("other-1", "Al", "al@short.example"),
    ] {
        let body = json!({ "agentId": t.agent, "userName": name, "userEmail": email });
        assert_eq!(create(&lobby, &t, id, body).await.0, 200);
    }
    let search = |q: &'static str| {
        let (lobby, t) = (&lobby, &t);
        async move {
            let (s, p) = call(
                lobby,
                t,
                Method::GET,
                &format!("/api/agent/{}/session?query={q}&orderBy=createdAt", t.agent),
                None,
            )
            .await;
            assert_eq!(s, 200, "{p}");
            assert_eq!(p["query"], q);
            let mut ids: Vec<String> = p["rows"]
                .as_array()
                .expect("rows")
                .iter()
                .map(|r| r["id"].as_str().expect("id").to_owned())
                .collect();
            ids.sort();
            assert_eq!(p["total"], ids.len());
            ids
        }
    };
    assert_eq!(search("lidd").await, ["conv-100"]);
    assert_eq!(search("LIDDELL").await, ["conv-100"], "case-insensitive");
    assert_eq!(search("wonder.exa").await, ["conv-100"]);
    assert_eq!(search("builder").await, ["conv-200"]);
    assert_eq!(search("conv-").await, ["conv-100", "conv-200", "conv-300"]);
    assert_eq!(
        search("abcd").await,
        Vec::<String>::new(),
        "a false positive"
    );
    assert_eq!(search("bcd").await, ["conv-300"]);
    assert_eq!(search("zzz").await, Vec::<String>::new());
    // Short queries match whole values only.
    assert_eq!(search("al").await, ["other-1"]);
    assert_eq!(search("Al").await, ["other-1"]);
    assert_eq!(search("a").await, Vec::<String>::new());
}

#[tokio::test]
async fn redis_holds_no_personal_data_in_the_clear_and_a_tampered_field_is_an_error() {
    let lobby = Lobby::start(LobbyOptions::default()).await;
    let t = tenant(&lobby, RW).await;
    let secrets = [
        "Zebediah",
        "zeb.quux@plaintext.example",
        "whisper-of-the-message",
    ];
    let body = json!({
        "agentId": t.agent,
        "userName": "Zebediah Quux",
        "userEmail": secrets[1],
        "acceptTerms": "true",
        "messages": format!(r#"[{{"role":"user","content":"{}"}}]"#, secrets[2]),
    });
    assert_eq!(create(&lobby, &t, "pii-1", body).await.0, 200);
    let (_, list) = call(&lobby, &t, Method::GET, "/api/session?id=pii-1", None).await;
    assert_eq!(list[0]["userName"], "Zebediah Quux");
    let snapshot = lobby.redis.snapshot().await;
    for (key, (dump, _)) in &snapshot {
        let text = String::from_utf8_lossy(dump).to_lowercase();
        for s in secrets {
            assert!(
                !key.to_lowercase().contains(&s.to_lowercase()),
                "{key} names {s}"
            );
            assert!(!text.contains(&s.to_lowercase()), "{key} holds {s}");
        }
        assert!(
            !text.contains("zebed") && !text.contains("quux"),
            "{key} holds a piece of a name"
        );
    }
    println!(
        "records, plaintext scan: {} keys read, none holds personal data",
        snapshot.len()
    );

    // A sealed field altered in Redis: an error, never garbage.
    let record = lobby
        .redis
        .keys("*:session:pii-1")
        .await
        .pop()
        .expect("record key");
    let mut conn = lobby.redis.connection().await;
    let sealed: String = redis::AsyncCommands::hget(&mut conn, &record, "user_name")
        .await
        .expect("hget");
    let mut tampered = sealed.into_bytes();
    let i = tampered.len() - 3;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let () = redis::AsyncCommands::hset(
        &mut conn,
        &record,
        "user_name",
        String::from_utf8(tampered).expect("utf8"),
    )
    .await
    .expect("hset");
    let (s, b) = call(&lobby, &t, Method::GET, "/api/session?id=pii-1", None).await;
    assert_eq!(s, 499, "{b}");
    assert_eq!(b["status"], 499);
    assert!(!b.to_string().contains("Zebediah"), "{b}");
}

/// Every records script touches one slot (the account's): on a Cluster a
/// cross-slot one would fail at once.
#[tokio::test]
async fn the_records_contract_on_a_redis_cluster() {
    let lobby = Lobby::start(LobbyOptions {
        redis_cluster: true,
        ..Default::default()
    })
    .await;
    let t = tenant(&lobby, RW).await;
    assert_eq!(create(&lobby, &t, "c-1", alice(&t.agent)).await.0, 200);
    assert_eq!(
        create(&lobby, &t, "c-1", alice(&t.agent)).await.1["message"],
        "Session already exists"
    );
    let (s, p) = call(
        &lobby,
        &t,
        Method::GET,
        &format!("/api/agent/{}/session?query=alic&orderBy=userName", t.agent),
        None,
    )
    .await;
    assert_eq!((s, p["total"].clone()), (200, json!(1)), "{p}");
    let (s, _) = call(&lobby, &t, Method::DELETE, "/api/session/c-1", None).await;
    assert_eq!(s, 200);
    assert!(lobby.redis.keys("*c-1*").await.is_empty());
}

/// The data key id a record's sealed `userName` names, read from Redis.
async fn sealing_key_of(lobby: &Lobby, id: &str) -> String {
    let record = lobby
        .redis
        .keys(&format!("*:session:{id}"))
        .await
        .pop()
        .expect("record key");
    let mut conn = lobby.redis.connection().await;
    let sealed: String = redis::AsyncCommands::hget(&mut conn, &record, "user_name")
        .await
        .expect("hget");
    lobby_vault::sealed_key_id(&sealed)
        .expect("a sealed value")
        .to_owned()
}

#[tokio::test]
async fn rotated_data_and_master_keys_keep_old_records_readable() {
    let master = |spec: &[(&str, u8)]| {
        spec.iter()
            .map(|(id, b)| {
                format!(
                    "{id}:{}",
                    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [*b; 32])
                )
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut lobby = Lobby::start(LobbyOptions {
        extra_env: vec![("LOBBY_MASTER_KEYS".into(), master(&[("m1", 1)]))],
        worker: false,
        ..Default::default()
    })
    .await;
    let t = tenant(&lobby, RW).await;
    assert_eq!(create(&lobby, &t, "before", alice(&t.agent)).await.0, 200);
    let first_key = sealing_key_of(&lobby, "before").await;

    // A data key rotation: new writes use the new key, old ones still read.
    let (s, rotated) = lobby
        .admin_json(
            Method::POST,
            &format!("/accounts/{}/data-keys/rotate", t.account),
            None,
        )
        .await;
    assert_eq!(s, 200, "{rotated}");
    let second_key = rotated["data_key_id"].as_str().expect("id").to_owned();
    assert_ne!(second_key, first_key);
    assert_eq!(create(&lobby, &t, "after", alice(&t.agent)).await.0, 200);
    assert_eq!(sealing_key_of(&lobby, "after").await, second_key);
    assert_eq!(sealing_key_of(&lobby, "before").await, first_key);
    assert_eq!(user_names(&lobby, &t).await, ["Alice", "Alice"]);
    let (s, _) = lobby
        .admin_json(Method::POST, "/accounts/acct_nobody/data-keys/rotate", None)
        .await;
    assert_eq!(s, 404);

    // A master key rotation: the new key first, the old one kept; then the
    // old one dropped once the account's keys were used (rewrapped).
    lobby.crash_all();
    lobby.set_env("LOBBY_MASTER_KEYS", &master(&[("m2", 2), ("m1", 1)]));
    lobby.restart_all().await;
    assert_eq!(user_names(&lobby, &t).await, ["Alice", "Alice"]);
    lobby.crash_all();
    lobby.set_env("LOBBY_MASTER_KEYS", &master(&[("m2", 2)]));
    lobby.restart_all().await;
    assert_eq!(
        user_names(&lobby, &t).await,
        ["Alice", "Alice"],
        "read without the old master"
    );
    assert_eq!(create(&lobby, &t, "latest", alice(&t.agent)).await.0, 200);
}

async fn user_names(lobby: &Lobby, t: &Tenant) -> Vec<String> {
    let (s, list) = call(lobby, t, Method::GET, "/api/session", None).await;
    assert_eq!(s, 200, "{list}");
    list.as_array()
        .expect("array")
        .iter()
        .map(|r| r["userName"].as_str().unwrap_or("?").to_owned())
        .collect()
}

/// Sessions started through seeds 000-002 are records too: listed with their
/// own ids, `finalizedAt` their end, after the named records in name orders.
#[tokio::test]
async fn sessions_started_through_the_other_contracts_are_listed_with_their_own_ids() {
    let lobby = Lobby::start(LobbyOptions::default()).await;
    let t = tenant(&lobby, RW).await;
    assert_eq!(create(&lobby, &t, "named-1", alice(&t.agent)).await.0, 200);
    let started: Value = lobby
        .connect(&t.agent, None)
        .await
        .json()
        .await
        .expect("json");
    let connect_id = started["session_id"].as_str().expect("session").to_owned();
    let (_, run_id) = start_run(&lobby, &t.agent).await;

    let (_, list) = call(
        &lobby,
        &t,
        Method::GET,
        &format!("/api/session?agentId={}", t.agent),
        None,
    )
    .await;
    let ids: BTreeSet<&str> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        ids,
        BTreeSet::from(["named-1", connect_id.as_str(), run_id.as_str()])
    );
    let connect = list
        .as_array()
        .expect("array")
        .iter()
        .find(|r| r["id"] == connect_id.as_str())
        .expect("listed");
    assert_eq!(connect["userName"], Value::Null);
    assert_eq!(connect["finalizedAt"], Value::Null);

    let ended = lobby.end_session(&connect_id).await;
    let (_, list) = call(
        &lobby,
        &t,
        Method::GET,
        &format!("/api/session?id={connect_id}"),
        None,
    )
    .await;
    let finalized = list[0]["finalizedAt"]
        .as_str()
        .expect("finalizedAt once ended");
    let ended_ms = ended["ended_at_ms"].as_i64().expect("ended_at_ms");
    assert_eq!(
        finalized,
        chrono_like(ended_ms),
        "finalizedAt is the end time"
    );
    assert_eq!(list[0]["updatedAt"], list[0]["finalizedAt"]);

    let (_, page) = call(
        &lobby,
        &t,
        Method::GET,
        &format!("/api/agent/{}/session?orderBy=userName", t.agent),
        None,
    )
    .await;
    assert_eq!(page["total"], 3, "{page}");
    assert_eq!(page["rows"][0]["id"], "named-1", "named records first");
    let (_, page) = call(
        &lobby,
        &t,
        Method::GET,
        &format!(
            "/api/agent/{}/session?orderBy=userEmail&offset=1&limit=1",
            t.agent
        ),
        None,
    )
    .await;
    assert_eq!(page["rows"].as_array().expect("rows").len(), 1, "{page}");
    assert_ne!(page["rows"][0]["id"], "named-1");
    let (_, page) = call(
        &lobby,
        &t,
        Method::GET,
        &format!("/api/agent/{}/session?orderBy=updatedAt&limit=1", t.agent),
        None,
    )
    .await;
    assert_eq!(
        page["rows"][0]["id"],
        connect_id.as_str(),
        "the end updated it last"
    );

    // Deleting a live session ends it first: its slot comes back.
    let live: Value = lobby
        .connect(&t.agent, None)
        .await
        .json()
        .await
        .expect("json");
    let live_id = live["session_id"].as_str().expect("session");
    assert_eq!(lobby.active_sessions(&t.account).await, 1);
    let (s, b) = call(
        &lobby,
        &t,
        Method::DELETE,
        &format!("/api/session/{live_id}"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        lobby.active_sessions(&t.account).await,
        0,
        "the slot stayed held"
    );
    assert!(lobby.redis.keys(&format!("*{live_id}*")).await.is_empty());
}

/// `ms` as the contract writes times: ISO 8601, UTC, milliseconds.
fn chrono_like(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

/// The other personal data Lobby stores is sealed too: a start's
/// `client_user_ref` and a run's event payloads, opened for those who may
/// read them.
#[tokio::test]
async fn client_user_refs_and_event_payloads_are_sealed_at_rest() {
    let lobby = Lobby::start(LobbyOptions::default()).await;
    let t = tenant(&lobby, RW).await;
    let r = lobby
        .connect_via(
            0,
            json!({ "agent_id": t.agent, "client_user_ref": "Quillon-user-ref" }),
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    let session: Value = r.json().await.expect("json");
    let sid = session["session_id"].as_str().expect("session");
    let (_, record) = lobby
        .admin_json(Method::GET, &format!("/sessions/{sid}"), None)
        .await;
    assert_eq!(record["client_user_ref"], "Quillon-user-ref", "{record}");

    let (jwt, _) = start_run(&lobby, &t.agent).await;
    let events = format!("{}/api/agent/v1/session/events/", lobby.gateway());
    let r = lobby
        .http
        .post(&events)
        .header("X-OTAS-AGENT-SESSION-TOKEN", &jwt)
        .json(&json!({ "kind": "turn", "payload": { "said": "Quillon whispers" } }))
        .send()
        .await
        .expect("event");
    assert_eq!(r.status(), 201);
    let listed: Value = lobby
        .http
        .get(&events)
        .header("X-OTAS-AGENT-SESSION-TOKEN", &jwt)
        .send()
        .await
        .expect("events")
        .json()
        .await
        .expect("json");
    assert_eq!(
        listed["response"]["events"][0]["payload"],
        json!({ "said": "Quillon whispers" }),
        "{listed}"
    );

    let snapshot = lobby.redis.snapshot().await;
    for (key, (dump, _)) in &snapshot {
        let text = String::from_utf8_lossy(dump).to_lowercase();
        assert!(
            !text.contains("quillon"),
            "{key} holds personal data in the clear"
        );
    }
}

/// An agent adds its run's messages and token usage through the run's
/// token; the records contract lists them, decrypted, and Redis holds them
/// sealed.
#[tokio::test]
async fn an_agent_adds_messages_and_token_usage_to_its_run() {
    let lobby = Lobby::start(LobbyOptions {
        extra_env: vec![("LOBBY_MAX_MESSAGES_PER_SESSION".into(), "3".into())],
        ..Default::default()
    })
    .await;
    let t = tenant(&lobby, RW).await;
    let (jwt, sid) = start_run(&lobby, &t.agent).await;
    let add = |jwt: String, body: Value| {
        let lobby = &lobby;
        async move {
            let r = lobby
                .http
                .post(format!(
                    "{}/api/agent/v1/session/messages/",
                    lobby.gateway()
                ))
                .header("X-OTAS-AGENT-SESSION-TOKEN", jwt)
                .json(&body)
                .send()
                .await
                .expect("messages");
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.expect("json"))
        }
    };
    let (s, b) = add(
        jwt.clone(),
        json!({ "messages": [{ "role": "user", "content": "Wenceslas asks" }], "prompt_tokens": 34 }),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["status_description"], "agent_session_messages_appended");
    let (s, b) = add(
        jwt.clone(),
        json!({ "messages": [{ "role": "assistant", "content": "Hi" }], "completion_tokens": 76, "prompt_tokens": 1 }),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (
            b["response"]["messages"].clone(),
            b["response"]["prompt_tokens"].clone(),
            b["response"]["completion_tokens"].clone()
        ),
        (json!(2), json!(35), json!(76))
    );

    let (_, list) = call(
        &lobby,
        &t,
        Method::GET,
        &format!("/api/session?id={sid}"),
        None,
    )
    .await;
    let r = &list[0];
    assert_eq!(
        r["messages"],
        // As sent (the test's JSON writer orders keys).
        json!([{ "role": "user", "content": "Wenceslas asks" }, { "role": "assistant", "content": "Hi" }])
            .to_string(),
        "{r}"
    );
    assert_eq!(
        (r["promptTokens"].clone(), r["completionTokens"].clone()),
        (json!(35), json!(76))
    );
    for (key, (dump, _)) in lobby.redis.snapshot().await {
        assert!(
            !String::from_utf8_lossy(&dump).contains("Wenceslas"),
            "{key} holds a message in the clear"
        );
    }

    // The edges, each refused in the seed-001 envelope.
    let (s, b) = add(jwt.clone(), json!({ "messages": [1, 2] })).await;
    assert_eq!(
        (s, b["status_description"].clone()),
        (409, json!("messages_full")),
        "{b}"
    );
    let (s, b) = add(jwt.clone(), json!({})).await;
    assert_eq!(
        (s, b["status_description"].clone()),
        (400, json!("invalid_request")),
        "{b}"
    );
    let (s, b) = add(jwt.clone(), json!({ "messages": "not an array" })).await;
    assert_eq!(s, 400, "{b}");
    let (s, _) = add("not.a.jwt".into(), json!({ "prompt_tokens": 1 })).await;
    assert_eq!(s, 401);
    let r = lobby
        .http
        .post(format!("{}/api/agent/v1/session/end/", lobby.gateway()))
        .header("X-OTAS-AGENT-SESSION-TOKEN", &jwt)
        .send()
        .await
        .expect("end");
    assert_eq!(r.status(), 200);
    let (s, b) = add(jwt, json!({ "prompt_tokens": 1 })).await;
    assert_eq!(
        (s, b["status_description"].clone()),
        (403, json!("session_ended")),
        "{b}"
    );
}

/// Opens a seed-001 run for `agent` (with a fresh agent key): its session
/// JWT and its session id.
async fn start_run(lobby: &Lobby, agent: &str) -> (String, String) {
    let (s, rotated) = lobby
        .admin_json(
            Method::POST,
            &format!("/agents/{agent}/keys"),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 201, "{rotated}");
    let run: Value = lobby
        .http
        .post(format!("{}/api/agent/v1/session/create/", lobby.gateway()))
        .header("X-OTAS-AGENT-KEY", rotated["key"].as_str().expect("key"))
        .send()
        .await
        .expect("run")
        .json()
        .await
        .expect("json");
    let jwt = run["response"]["jwt_token"]
        .as_str()
        .expect("jwt")
        .to_owned();
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            jwt.split('.').nth(1).expect("claims"),
        )
        .expect("b64"),
    )
    .expect("json");
    let sid = claims["sid"].as_str().expect("sid").to_owned();
    (jwt, sid)
}
