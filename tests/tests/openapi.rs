//! The OpenAPI document Lobby serves at `/openapi.json` is valid OpenAPI 3.1
//! (PyPI `openapi-spec-validator`), and real answers of the operations it
//! covers, successes and refusals, match it: each status is documented and
//! each body fits its schema.

use lobby_tests::{avatar_server::AvatarServer, livekit, Lobby, LobbyOptions};
use reqwest::Method;
use serde_json::{json, Value};

/// One real answer, as the checker reads it.
async fn answer(lobby: &Lobby, path: &str, body: Value) -> Value {
    answer_with(lobby, Method::POST, path, &[], Some(body)).await
}

async fn answer_with(
    lobby: &Lobby,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Value {
    let mut request = lobby
        .http
        .request(method.clone(), format!("{}{path}", lobby.gateway()));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let r = request.send().await.expect("request");
    let status = r.status().as_u16();
    let body: Value = r.json().await.expect("a JSON answer");
    json!({
        "path": path.split('?').next().unwrap_or(path),
        "method": method.as_str().to_ascii_lowercase(),
        "status": status,
        "body": body,
    })
}

/// Seeds 003 and 004, link management, regions, health and the admin API:
/// a success and a refusal of each, as (answer, the status it must have).
async fn the_rest(lobby: &Lobby, account: &str, agent: &str, session: &str) -> Vec<Value> {
    let key = lobby
        .create_api_key(account, &["sessions:read", "sessions:write", "links:write"])
        .await;
    let hash = lobby.database_id_hash(account).await;
    let api = [("x-api-key", key.as_str())];
    let bearer = format!("Bearer {key}");
    let records = [
        ("authorization", bearer.as_str()),
        ("database-id-hash", hash.as_str()),
    ];
    let admin_bearer = format!("Bearer {}", lobby_tests::lobby::ADMIN_TOKEN);
    let admin = [("authorization", admin_bearer.as_str())];
    let mut out = Vec::new();
    let mut expect = Vec::new();
    let mut call = |status: u64, answer: Value| {
        expect.push(status);
        out.push(answer);
    };
    // Seed 003.
    let status = format!("/v1/session/status?sessionId={session}&type=instant");
    call(
        200,
        answer_with(lobby, Method::GET, &status, &api, None).await,
    );
    call(
        401,
        answer_with(lobby, Method::GET, &status, &[], None).await,
    );
    let status = "/v1/session/status?type=instant".to_owned();
    call(
        400,
        answer_with(lobby, Method::GET, &status, &api, None).await,
    );
    let transcript = format!("/v1/session/transcript?sessionId={session}&type=instant");
    call(
        404,
        answer_with(lobby, Method::GET, &transcript, &api, None).await,
    );
    let summary = "/v1/sessions/summary?sessionId=s-nope&instant_voice_links=1";
    call(
        404,
        answer_with(lobby, Method::GET, summary, &api, None).await,
    );
    // Seed 004.
    let create = "/api/exec/session/rec-1";
    let body = json!({ "agentId": agent, "userName": "Ada", "userEmail": "ada@example.com" });
    call(
        200,
        answer_with(lobby, Method::POST, create, &records, Some(body.clone())).await,
    );
    call(
        200,
        answer_with(lobby, Method::POST, create, &records, Some(body)).await,
    );
    call(
        400,
        answer_with(lobby, Method::POST, create, &records, Some(json!({}))).await,
    );
    call(
        200,
        answer_with(lobby, Method::GET, "/api/session", &records, None).await,
    );
    let page = format!("/api/agent/{agent}/session?limit=5&query=ada");
    call(
        200,
        answer_with(lobby, Method::GET, &page, &records, None).await,
    );
    let page = format!("/api/agent/{agent}/session?limit=500");
    call(
        400,
        answer_with(lobby, Method::GET, &page, &records, None).await,
    );
    // A good key without its account's database-id-hash.
    call(
        403,
        answer_with(lobby, Method::GET, "/api/session", &api, None).await,
    );
    call(
        200,
        answer_with(lobby, Method::DELETE, "/api/session/rec-1", &records, None).await,
    );
    call(
        400,
        answer_with(lobby, Method::DELETE, "/api/session/rec-1", &records, None).await,
    );
    // Link management.
    let link = json!({ "agent_id": agent, "use_limit": 3 });
    let created = answer_with(lobby, Method::POST, "/v1/links", &api, Some(link)).await;
    let link_id = created["body"]["link"]["id"]
        .as_str()
        .expect("a link")
        .to_owned();
    call(201, created);
    call(
        200,
        answer_with(lobby, Method::GET, "/v1/links", &api, None).await,
    );
    let one = format!("/v1/links/{link_id}");
    call(200, answer_with(lobby, Method::GET, &one, &api, None).await);
    call(
        200,
        answer_with(lobby, Method::DELETE, &one, &api, None).await,
    );
    call(
        404,
        answer_with(lobby, Method::GET, "/v1/links/lnk_nope", &api, None).await,
    );
    // Regions and health.
    call(
        200,
        answer_with(lobby, Method::GET, "/v1/regions", &[], None).await,
    );
    call(
        200,
        answer_with(lobby, Method::GET, "/v1/regions/nearest", &[], None).await,
    );
    let unknown = "/v1/regions/nearest?region=atlantis";
    call(
        400,
        answer_with(lobby, Method::GET, unknown, &[], None).await,
    );
    call(
        200,
        answer_with(lobby, Method::GET, "/healthz", &[], None).await,
    );
    // Admin.
    for path in [
        format!("/admin/v1/accounts/{account}"),
        format!("/admin/v1/accounts/{account}/usage"),
        format!("/admin/v1/accounts/{account}/sessions"),
        format!("/admin/v1/accounts/{account}/api-keys"),
        format!("/admin/v1/accounts/{account}/links"),
        format!("/admin/v1/accounts/{account}/audit?limit=5"),
        format!("/admin/v1/agents?account_id={account}"),
        format!("/admin/v1/agents/{agent}"),
        format!("/admin/v1/agents/{agent}/keys"),
        format!("/admin/v1/sessions/{session}"),
    ] {
        call(
            200,
            answer_with(lobby, Method::GET, &path, &admin, None).await,
        );
    }
    let end = format!("/admin/v1/sessions/{session}/end");
    call(
        200,
        answer_with(lobby, Method::POST, &end, &admin, Some(json!({}))).await,
    );
    let rotate = "/admin/v1/signing-keys/rotate";
    call(
        200,
        answer_with(lobby, Method::POST, rotate, &admin, Some(json!({}))).await,
    );
    let agents = "/admin/v1/agents";
    let unknown = json!({ "account_id": account, "provider": "zoom" });
    call(
        400,
        answer_with(lobby, Method::POST, agents, &admin, Some(unknown)).await,
    );
    call(
        401,
        answer_with(lobby, Method::GET, "/admin/v1/accounts", &[], None).await,
    );
    call(
        404,
        answer_with(
            lobby,
            Method::GET,
            "/admin/v1/sessions/s-nope",
            &admin,
            None,
        )
        .await,
    );
    let statuses: Vec<u64> = out
        .iter()
        .map(|a| a["status"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(statuses, expect, "{out:#?}");
    out
}

#[tokio::test]
async fn the_served_document_is_valid_and_real_answers_match_it() {
    let Some(python) = livekit::project_python() else {
        return;
    };
    let lobby = Lobby::start(LobbyOptions {
        worker: true,
        ..Default::default()
    })
    .await;
    let avatars = AvatarServer::start().await;
    let r = lobby
        .http
        .get(format!("{}/openapi.json", lobby.gateway()))
        .send()
        .await
        .expect("document");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let document: Value = r.json().await.expect("JSON");

    let account = lobby.create_account(1).await;
    let agent = lobby
        .create_agent(
            &account,
            json!({ "avatar_image_url": avatars.url("face.jpg") }),
        )
        .await;
    let link = lobby
        .create_link(&account, &agent, json!({ "use_limit": 1 }))
        .await;
    let connect = "/v1/public/agents/connect";
    let start = "/v1/links/start-session";
    let answers = vec![
        answer(&lobby, start, json!({ "link_id": link["id"] })).await,
        // Its one use is gone, and the account's one slot is taken.
        answer(&lobby, start, json!({ "link_id": link["id"] })).await,
        answer(&lobby, connect, json!({ "agent_id": agent })).await,
        answer(&lobby, start, json!({ "link_id": "lnk_nope" })).await,
        answer(&lobby, start, json!({ "link": 1 })).await,
        answer(&lobby, connect, json!({ "agent_id": "agt_nope" })).await,
        answer(&lobby, connect, json!({ "agent_id": 7 })).await,
    ];
    let statuses: Vec<u64> = answers
        .iter()
        .map(|a| a["status"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(
        statuses,
        [200, 403, 429, 404, 400, 404, 400],
        "{answers:#?}"
    );
    let mut answers = answers;

    // Seed 001: a run, its events and messages, its end, and refusals.
    let runs_account = lobby.create_account(5).await;
    let (_, agent_key) = lobby.create_agent_with_key(&runs_account, json!({})).await;
    let create = "/api/agent/v1/session/create/";
    let events = "/api/agent/v1/session/events/";
    let created = answer_with(
        &lobby,
        Method::POST,
        create,
        &[("x-otas-agent-key", &agent_key)],
        Some(json!({ "meta": { "ticket": 7 } })),
    )
    .await;
    let jwt = created["body"]["response"]["jwt_token"]
        .as_str()
        .expect("a run's token")
        .to_owned();
    let run = [("X-OTAS-AGENT-SESSION-TOKEN", jwt.as_str())];
    let said = json!({ "kind": "said", "payload": { "text": "hi" } });
    let messages = json!({ "messages": [{ "role": "user", "content": "hi" }], "prompt_tokens": 3 });
    let seed_001 = vec![
        created,
        answer_with(
            &lobby,
            Method::POST,
            create,
            &[("x-otas-agent-key", "agent_nope")],
            None,
        )
        .await,
        answer_with(&lobby, Method::POST, events, &run, Some(said)).await,
        answer_with(
            &lobby,
            Method::POST,
            events,
            &run,
            Some(json!({ "payload": 1 })),
        )
        .await,
        answer_with(&lobby, Method::GET, events, &run, None).await,
        answer_with(
            &lobby,
            Method::POST,
            "/api/agent/v1/session/messages/",
            &run,
            Some(messages),
        )
        .await,
        answer_with(
            &lobby,
            Method::POST,
            "/api/agent/v1/session/end/",
            &run,
            None,
        )
        .await,
        answer_with(
            &lobby,
            Method::POST,
            "/api/agent/v1/session/end/",
            &run,
            None,
        )
        .await,
        answer_with(
            &lobby,
            Method::GET,
            events,
            &[("X-OTAS-AGENT-SESSION-TOKEN", "nope")],
            None,
        )
        .await,
    ];
    let statuses: Vec<u64> = seed_001
        .iter()
        .map(|a| a["status"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(
        statuses,
        [200, 401, 201, 400, 200, 200, 200, 403, 401],
        "{seed_001:#?}"
    );
    answers.extend(seed_001);
    let started = answers[0]["body"]["session_id"]
        .as_str()
        .expect("the link start's session")
        .to_owned();
    answers.extend(the_rest(&lobby, &account, &agent, &started).await);

    let doc_file = lobby.dir.join("openapi.json");
    let answers_file = lobby.dir.join("answers.json");
    std::fs::write(&doc_file, document.to_string()).expect("write");
    std::fs::write(&answers_file, Value::Array(answers).to_string()).expect("write");
    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("py/check_openapi.py");
    let out = std::process::Command::new(&python)
        .arg(script)
        .arg(&doc_file)
        .arg(&answers_file)
        .output()
        .expect("run the checker");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{said}");
    assert!(out.status.success(), "{said}");
}
