//! A property-based fuzzer driven by the OpenAPI document (PyPI
//! `schemathesis`) against a running Lobby: every documented operation,
//! with generated valid and invalid input. It fails on any 5xx, any status
//! the document does not list for the operation, and any body or content
//! type that does not match the document.
//!
//! The run is seeded with real data (an account, project, agent and its
//! key, a link, a session, a record, a run's token, API keys) so that the
//! generated calls reach past "not found" half of the time; the admin API
//! gets another account's, so that what it changes cannot spoil the
//! public routes' seeds. Bounded:
//! `LOBBY_FUZZ_EXAMPLES` cases per operation (default 25); `LOBBY_FUZZ_SEED`
//! replays a run.

use lobby_tests::{livekit, Lobby, LobbyOptions};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::PathBuf;

/// A dictionary of real values, and the parameters it fills (half the time).
type Dictionary = (&'static str, Vec<String>, &'static [&'static str]);

/// What the fuzzer is told.
struct Seeds {
    admin_token: String,
    api_key: String,
    database_id_hash: String,
    /// For the public routes.
    public: Vec<Dictionary>,
    /// For the admin API: another account's things, so that what the
    /// fuzzer changes there (an agent's provider, an account's limits, a
    /// rotated `database-id-hash`) never turns the public routes' seeds
    /// into ones no call can use.
    admin: Vec<Dictionary>,
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
        for (name, values, _) in self.public.iter().chain(&self.admin) {
            out += &format!("[dictionaries.{name}]\nvalues = {values:?}\n");
        }
        let bindings = |dictionaries: &[Dictionary]| {
            let mut out = String::new();
            for (name, _, places) in dictionaries {
                for place in *places {
                    out += &format!("{place:?} = {{ dictionary = {name:?}, probability = 0.5 }}\n");
                }
            }
            out
        };
        out += "[parameters]\n";
        out += &bindings(&self.public);
        out += "[[operations]]\ninclude-path-regex = \"^/admin/\"\n[operations.parameters]\n";
        out += &bindings(&self.admin);
        out
    }
}

fn text(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("a string: {v}"))
        .to_owned()
}

/// An account with a project, an agent in it, and a link; returns their
/// ids and the agent's key.
async fn account_with_things(lobby: &Lobby) -> [String; 5] {
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
    let link = text(&lobby.create_link(&account, &agent, json!({})).await["id"]);
    [account, project, agent, link, agent_key]
}

async fn connect(lobby: &Lobby, agent: &str) -> String {
    let r = lobby.connect(agent, None).await;
    assert_eq!(r.status(), 200);
    text(&r.json::<Value>().await.expect("JSON")["session_id"])
}

async fn seed(lobby: &Lobby) -> Seeds {
    let [account, project, agent, link, agent_key] = account_with_things(lobby).await;
    let api_key = lobby
        .create_api_key(
            &account,
            &["sessions:read", "sessions:write", "links:write"],
        )
        .await;
    let database_id_hash = lobby.database_id_hash(&account).await;
    let session = connect(lobby, &agent).await;

    let gateway = lobby.gateway();
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

    // The admin API's playground.
    let [other, other_project, other_agent, other_link, _] = account_with_things(lobby).await;
    let other_session = connect(lobby, &other_agent).await;
    // A key the fuzzer may pause or revoke.
    let spare = lobby.create_api_key(&other, &["sessions:read"]).await;
    let spare_prefix = spare.split('_').nth(1).expect("a prefix").to_owned();

    Seeds {
        admin_token: lobby_tests::lobby::ADMIN_TOKEN.to_owned(),
        api_key,
        database_id_hash,
        public: vec![
            ("ids", vec![link.clone(), record.clone()], &["path.id"]),
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
                "projects",
                vec![project],
                &["query.projectId", "body.projectId"],
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
        admin: vec![
            (
                "admin_ids",
                vec![
                    other.clone(),
                    other_project.clone(),
                    other_agent.clone(),
                    other_link,
                    other_session,
                ],
                &["path.id"],
            ),
            ("admin_prefixes", vec![spare_prefix], &["path.prefix"]),
            (
                "admin_accounts",
                vec![other],
                &["query.account_id", "body.account_id"],
            ),
            ("admin_agents", vec![other_agent], &["body.agent_id"]),
            ("admin_projects", vec![other_project], &["body.project_id"]),
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
    let tested: Option<usize> = said
        .lines()
        .find_map(|l| l.trim().strip_prefix("Tested:"))
        .and_then(|n| n.trim().parse().ok());
    assert_eq!(tested, Some(operations), "{said}");
}
