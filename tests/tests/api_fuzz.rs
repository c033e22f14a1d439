//! A property-based fuzzer driven by the OpenAPI document (PyPI
//! `schemathesis`) against a running Lobby: every documented operation,
//! with generated valid and invalid input. It fails on any 5xx, any status
//! the document does not list for the operation, and any body or content
//! type that does not match the document.
//!
//! The run is seeded with real data (an account, project, agent and its
//! key, a link, a session, a record, a run's token, API keys) so that the
//! generated calls reach past "not found" half of the time. Bounded:
//! `LOBBY_FUZZ_EXAMPLES` cases per operation (default 25); `LOBBY_FUZZ_SEED`
//! replays a run.

use lobby_tests::{livekit, Lobby, LobbyOptions};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::PathBuf;

/// What the fuzzer is told, as (dictionary, values, where they go).
struct Seeds {
    admin_token: String,
    api_key: String,
    database_id_hash: String,
    dictionaries: Vec<(&'static str, Vec<String>, &'static [&'static str])>,
}

impl Seeds {
    /// The schemathesis configuration: credentials per security scheme,
    /// and each dictionary bound, half the time, to where it goes.
    fn config(&self) -> String {
        let mut out = format!(
            "[auth.openapi.admin_token]\nbearer = {:?}\n\
             [auth.openapi.api_key]\napi_key = {:?}\n\
             [auth.openapi.records_key]\nbearer = {:?}\n\
             [auth.openapi.database_id_hash]\napi_key = {:?}\n",
            self.admin_token, self.api_key, self.api_key, self.database_id_hash
        );
        for (name, values, _) in &self.dictionaries {
            out += &format!("[dictionaries.{name}]\nvalues = {values:?}\n");
        }
        out += "[parameters]\n";
        for (name, _, places) in &self.dictionaries {
            for place in *places {
                out += &format!("{place:?} = {{ dictionary = {name:?}, probability = 0.5 }}\n");
            }
        }
        out
    }
}

fn text(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("a string: {v}"))
        .to_owned()
}

async fn seed(lobby: &Lobby) -> Seeds {
    let account = lobby.create_account(3).await;
    let (s, project) = lobby
        .admin_json(
            Method::POST,
            &format!("/accounts/{account}/projects"),
            Some(json!({ "name": "fuzzed" })),
        )
        .await;
    assert_eq!(s, 201, "{project}");
    let project = text(&project["id"]);
    let (agent, agent_key) = lobby
        .create_agent_with_key(&account, json!({ "project_id": project }))
        .await;
    let api_key = lobby
        .create_api_key(
            &account,
            &["sessions:read", "sessions:write", "links:write"],
        )
        .await;
    // A key the fuzzer may pause or revoke; the one it calls with stays.
    let spare = lobby.create_api_key(&account, &["sessions:read"]).await;
    let spare_prefix = spare.split('_').nth(1).expect("a prefix").to_owned();
    let link = text(&lobby.create_link(&account, &agent, json!({})).await["id"]);
    let (s, body) = lobby
        .admin_json(Method::GET, &format!("/accounts/{account}"), None)
        .await;
    assert_eq!(s, 200, "{body}");
    let database_id_hash = text(&body["database_id_hash"]);

    let gateway = lobby.gateway();
    let connect = lobby
        .http
        .post(format!("{gateway}/v1/public/agents/connect"))
        .json(&json!({ "agent_id": agent }))
        .send()
        .await
        .expect("connect");
    assert_eq!(connect.status(), 200);
    let session = text(&connect.json::<Value>().await.expect("JSON")["session_id"]);
    let record = "fuzzed-record".to_owned();
    let created = lobby
        .http
        .post(format!("{gateway}/api/exec/session/{record}"))
        .bearer_auth(&api_key)
        .header("database-id-hash", &database_id_hash)
        .json(&json!({ "agentId": agent, "userName": "Ada", "userEmail": "ada@example.com" }))
        .send()
        .await
        .expect("record");
    assert_eq!(created.status(), 200);
    let run = lobby
        .http
        .post(format!("{gateway}/api/agent/v1/session/create/"))
        .header("x-otas-agent-key", &agent_key)
        .send()
        .await
        .expect("run");
    assert_eq!(run.status(), 200);
    let jwt = text(&run.json::<Value>().await.expect("JSON")["response"]["jwt_token"]);

    Seeds {
        admin_token: lobby_tests::lobby::ADMIN_TOKEN.to_owned(),
        api_key,
        database_id_hash,
        dictionaries: vec![
            (
                "ids",
                vec![
                    account.clone(),
                    project.clone(),
                    agent.clone(),
                    link.clone(),
                    session.clone(),
                    record.clone(),
                ],
                &["path.id"],
            ),
            ("prefixes", vec![spare_prefix], &["path.prefix"]),
            (
                "agents",
                vec![agent],
                &[
                    "path.agent_id",
                    "query.agentId",
                    "body.agent_id",
                    "body.agentId",
                ],
            ),
            (
                "accounts",
                vec![account],
                &["query.account_id", "body.account_id"],
            ),
            (
                "projects",
                vec![project],
                &["query.projectId", "body.project_id", "body.projectId"],
            ),
            ("links", vec![link], &["body.link_id"]),
            (
                "sessions",
                vec![session, record],
                &["query.sessionId", "body.sessionId", "query.id"],
            ),
            ("agent_keys", vec![agent_key], &["header.x-otas-agent-key"]),
            ("runs", vec![jwt], &["header.X-OTAS-AGENT-SESSION-TOKEN"]),
        ],
    }
}

fn schemathesis(python: &str) -> PathBuf {
    PathBuf::from(python).with_file_name("schemathesis")
}

#[tokio::test]
async fn the_fuzzer_finds_no_server_error_and_no_answer_off_the_document() {
    let Some(python) = livekit::project_python() else {
        return;
    };
    let lobby = Lobby::start(LobbyOptions::default()).await;
    let seeds = seed(&lobby).await;
    let config = lobby.dir.join("schemathesis.toml");
    std::fs::write(&config, seeds.config()).expect("write the config");

    let document: Value = lobby
        .http
        .get(format!("{}/openapi.json", lobby.gateway()))
        .send()
        .await
        .expect("document")
        .json()
        .await
        .expect("JSON");
    // The fuzzer leaves out the operation that serves the document itself.
    let operations: usize = document["paths"]
        .as_object()
        .expect("paths")
        .values()
        .map(|p| p.as_object().map_or(0, |m| m.len()))
        .sum::<usize>()
        - 1;

    let examples = std::env::var("LOBBY_FUZZ_EXAMPLES").unwrap_or_else(|_| "25".into());
    let mut command = tokio::process::Command::new(schemathesis(&python));
    command
        .current_dir(&lobby.dir)
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(format!("{}/openapi.json", lobby.gateway()))
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            &examples,
            "--workers",
            "2",
            "--request-timeout",
            "10",
            "--generation-database",
            "none",
            "--no-color",
        ])
        .kill_on_drop(true);
    if let Ok(seed) = std::env::var("LOBBY_FUZZ_SEED") {
        command.args(["--seed", &seed]);
    }
    let out = command.output().await.expect("run schemathesis");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{said}");
    assert!(out.status.success(), "the fuzzer found problems:\n{said}");
    // Every documented operation was exercised, none skipped.
    assert!(
        said.contains(&format!("Tested: {operations}")),
        "not all {operations} operations were tested:\n{said}"
    );
    assert!(said.contains("passed"), "{said}");
}
