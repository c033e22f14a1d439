//! The `lobby` CLI against a running Lobby: every group of commands, table
//! and JSON output, the token from the environment or a config file, and
//! refusals reported in the API's words with a failing exit status.

use lobby_tests::{process::binary, Lobby, LobbyOptions};
use serde_json::{json, Value};

struct Cli<'a> {
    lobby: &'a Lobby,
}

/// What one run printed, and whether it succeeded.
struct Ran {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", self.stdout, self.stderr))
    }
}

impl Cli<'_> {
    /// `lobby <args>` with the admin URL and token in the environment.
    async fn run(&self, args: &[&str]) -> Ran {
        self.run_with(
            args,
            &[
                ("LOBBY_ADMIN_URL", self.lobby.gateway()),
                ("LOBBY_ADMIN_TOKEN", lobby_tests::lobby::ADMIN_TOKEN),
            ],
        )
        .await
    }

    async fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Ran {
        let out = tokio::process::Command::new(binary("lobby"))
            .args(args)
            .env_clear()
            .env("HOME", lobby_tests::scratch_dir("cli-home"))
            .envs(env.iter().copied())
            .output()
            .await
            .expect("lobby runs");
        Ran {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// A command that must succeed, as JSON.
    async fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let ran = self.run(&all).await;
        assert!(ran.ok, "lobby {args:?}: {}", ran.stderr);
        ran.json()
    }
}

#[tokio::test]
async fn the_cli_covers_the_admin_api_as_tables_and_json() {
    let lobby = Lobby::start(LobbyOptions {
        worker: false,
        ..Default::default()
    })
    .await;
    let cli = Cli { lobby: &lobby };

    // Accounts, as a table and as JSON.
    let created = cli
        .json(&[
            "accounts",
            "create",
            "--id",
            "acct_cli",
            "--name",
            "CLI",
            "--max-concurrency",
            "3",
        ])
        .await;
    assert_eq!(
        (created["id"].as_str(), created["max_concurrency"].as_u64()),
        (Some("acct_cli"), Some(3))
    );
    let table = cli.run(&["accounts", "list"]).await;
    assert!(table.ok, "{}", table.stderr);
    let mut lines = table.stdout.lines();
    assert!(
        lines
            .next()
            .is_some_and(|h| h.starts_with("ID") && h.contains("MAX_CONCURRENCY")),
        "{}",
        table.stdout
    );
    assert!(
        lines.any(|l| l.starts_with("acct_cli") && l.contains("CLI")),
        "{}",
        table.stdout
    );
    let updated = cli
        .json(&["accounts", "update", "acct_cli", "--minutes-quota", "1000"])
        .await;
    assert_eq!(
        (updated["minutes_quota"].as_u64(), updated["name"].as_str()),
        (Some(1000), Some("CLI"))
    );

    // A project, and an agent in it.
    let project = cli
        .json(&[
            "projects",
            "create",
            "--account",
            "acct_cli",
            "--name",
            "P",
            "--id",
            "proj_cli",
        ])
        .await;
    assert_eq!(project["id"], "proj_cli");
    let listed = cli
        .json(&["projects", "list", "--account", "acct_cli"])
        .await;
    assert_eq!(listed["projects"][0]["id"], "proj_cli");
    let agent = cli
        .json(&[
            "agents",
            "create",
            "--account",
            "acct_cli",
            "--id",
            "cli-agent",
            "--status",
            "published",
            "--allowed-hostname",
            "*",
            "--project",
            "proj_cli",
        ])
        .await;
    assert_eq!(
        (agent["id"].as_str(), agent["project_id"].as_str()),
        (Some("cli-agent"), Some("proj_cli"))
    );
    let agents = cli.json(&["agents", "list", "--account", "acct_cli"]).await;
    assert_eq!(agents["agents"].as_array().map(Vec::len), Some(1));
    let shown = cli.run(&["agents", "show", "cli-agent"]).await;
    assert!(
        shown
            .stdout
            .lines()
            .any(|l| l.starts_with("status") && l.contains("published")),
        "{}",
        shown.stdout
    );

    // Sessions: listed, shown, ended; usage follows.
    let r = lobby.connect("cli-agent", None).await;
    assert_eq!(r.status(), 200);
    let started: Value = r.json().await.expect("json");
    let id = started["session_id"].as_str().expect("id");
    let sessions = cli
        .json(&["sessions", "list", "--account", "acct_cli"])
        .await;
    assert_eq!(sessions["sessions"][0]["id"], id);
    assert_eq!(
        cli.json(&["sessions", "show", id]).await["status"],
        "active"
    );
    assert_eq!(cli.json(&["usage", "acct_cli"]).await["active_sessions"], 1);
    assert_eq!(cli.json(&["sessions", "end", id]).await["status"], "ended");
    assert_eq!(cli.json(&["usage", "acct_cli"]).await["active_sessions"], 0);

    // Keys: an API key made, listed, paused, revoked; a worker key.
    let key = cli
        .json(&[
            "keys",
            "create",
            "--account",
            "acct_cli",
            "--name",
            "ops",
            "--scope",
            "sessions:read",
        ])
        .await;
    let prefix = key["prefix"].as_str().expect("prefix").to_owned();
    let keys = cli.json(&["keys", "list", "--account", "acct_cli"]).await;
    assert!(keys["keys"]
        .as_array()
        .is_some_and(|k| k.iter().any(|k| k["prefix"] == prefix.as_str())));
    assert_eq!(cli.json(&["keys", "pause", &prefix]).await["active"], false);
    assert!(cli.run(&["keys", "revoke", &prefix]).await.ok);
    let worker_key = cli
        .json(&["worker-keys", "create", "gpu-1", "--account", "acct_cli"])
        .await;
    assert!(worker_key.to_string().contains("wkr_"), "{worker_key}");
    assert_eq!(
        cli.json(&["worker-keys", "list", "gpu-1"]).await["keys"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let rotated = cli.json(&["agents", "rotate-key", "cli-agent"]).await;
    assert!(rotated.to_string().contains("key"), "{rotated}");

    // Links.
    let link = cli
        .json(&[
            "links",
            "create",
            "--account",
            "acct_cli",
            "--agent",
            "cli-agent",
            "--use-limit",
            "2",
        ])
        .await;
    let link_id = link["id"].as_str().expect("link id").to_owned();
    assert_eq!(
        cli.json(&["links", "list", "--account", "acct_cli"]).await["links"][0]["id"],
        link_id.as_str()
    );
    assert_eq!(
        cli.json(&["links", "deactivate", &link_id]).await["active"],
        false
    );

    // The audit log names what was done.
    let audit = cli.json(&["audit", "--account", "acct_cli"]).await;
    let events: Vec<&str> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();
    assert!(
        events.contains(&"createAccount") && events.contains(&"createAgent"),
        "{events:?}"
    );

    // Refusals in the API's words, and a failing exit status.
    let missing = cli.run(&["accounts", "show", "acct_nope"]).await;
    assert!(!missing.ok);
    assert!(
        missing.stderr.contains("404") && missing.stderr.contains("account_not_found"),
        "{}",
        missing.stderr
    );
    let bad = cli
        .run(&[
            "accounts",
            "create",
            "--name",
            "x",
            "--max-concurrency",
            "0",
        ])
        .await;
    assert!(!bad.ok && bad.stderr.contains("400"), "{}", bad.stderr);
    let both = cli.run(&["worker-keys", "create", "gpu-2"]).await;
    assert!(
        !both.ok && both.stderr.contains("--account"),
        "{}",
        both.stderr
    );

    // The token from a config file; none at all is a clear error.
    let dir = lobby_tests::scratch_dir("cli-config");
    let config = dir.join("cli.json");
    std::fs::write(
        &config,
        json!({ "url": lobby.gateway(), "token": lobby_tests::lobby::ADMIN_TOKEN }).to_string(),
    )
    .expect("config");
    let from_file = cli
        .run_with(
            &["accounts", "show", "acct_cli", "-o", "json"],
            &[("LOBBY_CLI_CONFIG", config.to_str().expect("path"))],
        )
        .await;
    assert!(from_file.ok, "{}", from_file.stderr);
    assert_eq!(from_file.json()["id"], "acct_cli");
    let none = cli
        .run_with(
            &["accounts", "list"],
            &[("LOBBY_ADMIN_URL", lobby.gateway())],
        )
        .await;
    assert!(
        !none.ok && none.stderr.contains("no admin token"),
        "{}",
        none.stderr
    );
    let wrong = cli
        .run_with(
            &["accounts", "list"],
            &[
                ("LOBBY_ADMIN_URL", lobby.gateway()),
                ("LOBBY_ADMIN_TOKEN", "not-the-token-at-all"),
            ],
        )
        .await;
    assert!(
        !wrong.ok && wrong.stderr.contains("401"),
        "{}",
        wrong.stderr
    );
    let away = cli
        .run_with(
            &["accounts", "list"],
            &[
                ("LOBBY_ADMIN_URL", "http://127.0.0.1:9"),
                ("LOBBY_ADMIN_TOKEN", "x"),
            ],
        )
        .await;
    assert!(
        !away.ok && away.stderr.contains("cannot reach"),
        "{}",
        away.stderr
    );
}
