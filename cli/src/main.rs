//! `lobby`: accounts, projects, agents, keys, worker keys, links, sessions,
//! usage and audit, over the admin API, as tables or JSON.
//!
//! The admin API's URL and token come from `--url`/`--token`, then
//! `LOBBY_ADMIN_URL`/`LOBBY_ADMIN_TOKEN`, then the config file
//! (`--config`, `LOBBY_CLI_CONFIG`, or `~/.config/lobby/cli.json`:
//! `{"url": "...", "token": "..."}`).

mod client;
mod output;

use clap::{Args, Parser, Subcommand};
use client::{CliError, Client, Target};
use output::Format;
use reqwest::Method;
use serde_json::{json, Map, Value};

#[derive(Parser)]
#[command(
    name = "lobby",
    version,
    about = "Lobby's admin API from the command line"
)]
struct Cli {
    /// The gateway's base URL.
    #[arg(long, global = true, env = "LOBBY_ADMIN_URL")]
    url: Option<String>,
    /// The admin token.
    #[arg(long, global = true, env = "LOBBY_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A JSON file of {"url", "token"}.
    #[arg(long, global = true, env = "LOBBY_CLI_CONFIG")]
    config: Option<std::path::PathBuf>,
    /// How to print answers.
    #[arg(long, short, global = true, value_enum, default_value = "table")]
    output: Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Accounts: their limits, minutes and home region.
    #[command(subcommand)]
    Accounts(Accounts),
    /// Projects: groups of an account's agents.
    #[command(subcommand)]
    Projects(Projects),
    /// Agents and their keys.
    #[command(subcommand)]
    Agents(Agents),
    /// An account's API keys, and any key by its prefix.
    #[command(subcommand)]
    Keys(Keys),
    /// GPU workers' keys.
    #[command(subcommand, name = "worker-keys")]
    WorkerKeys(WorkerKeys),
    /// Shareable links.
    #[command(subcommand)]
    Links(Links),
    /// Sessions.
    #[command(subcommand)]
    Sessions(Sessions),
    /// An account's sessions holding a slot, and its minutes.
    Usage { account: String },
    /// The audit log: one account's, or everything's.
    Audit {
        #[arg(long)]
        account: Option<String>,
    },
}

#[derive(Args)]
struct AccountFields {
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    max_concurrency: Option<u32>,
    /// Minutes a month.
    #[arg(long)]
    minutes_quota: Option<u64>,
    /// Where its limits are kept (several regions); "" for none.
    #[arg(long)]
    home_region: Option<String>,
}

#[derive(Subcommand)]
enum Accounts {
    List,
    Show {
        id: String,
    },
    Create {
        /// acct_…; generated when left out.
        #[arg(long)]
        id: Option<String>,
        #[command(flatten)]
        fields: AccountFields,
    },
    Update {
        id: String,
        #[command(flatten)]
        fields: AccountFields,
    },
}

#[derive(Subcommand)]
enum Projects {
    List {
        #[arg(long)]
        account: String,
    },
    Show {
        id: String,
    },
    Create {
        #[arg(long)]
        account: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        id: Option<String>,
    },
}

#[derive(Args)]
struct AgentFields {
    #[arg(long)]
    name: Option<String>,
    /// published or unpublished.
    #[arg(long)]
    status: Option<String>,
    /// An allowed browser origin's hostname (repeat; "*" allows any).
    #[arg(long = "allowed-hostname")]
    allowed_hostnames: Vec<String>,
    #[arg(long)]
    max_concurrency: Option<u32>,
    #[arg(long)]
    max_session_seconds: Option<u32>,
    #[arg(long)]
    avatar_image_url: Option<String>,
    /// livekit or daily.
    #[arg(long)]
    provider: Option<String>,
    #[arg(long)]
    requires_worker: Option<bool>,
    #[arg(long)]
    solo_timeout_seconds: Option<u32>,
    #[arg(long)]
    project: Option<String>,
}

#[derive(Subcommand)]
enum Agents {
    List {
        #[arg(long)]
        account: Option<String>,
    },
    Show {
        id: String,
    },
    Create {
        #[arg(long)]
        account: String,
        #[arg(long)]
        id: Option<String>,
        #[command(flatten)]
        fields: AgentFields,
    },
    Update {
        id: String,
        #[command(flatten)]
        fields: AgentFields,
    },
    /// Lists the agent's keys.
    Keys {
        id: String,
    },
    /// A new agent key; the previous one stays valid for the grace period.
    RotateKey {
        id: String,
        #[arg(long, default_value_t = 0)]
        previous_key_grace_seconds: u32,
    },
}

#[derive(Subcommand)]
enum Keys {
    List {
        #[arg(long)]
        account: String,
    },
    Create {
        #[arg(long)]
        account: String,
        #[arg(long)]
        name: String,
        /// A scope (repeat): sessions:read, sessions:write, …
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
    },
    Pause {
        prefix: String,
    },
    Resume {
        prefix: String,
    },
    Revoke {
        prefix: String,
    },
}

#[derive(Subcommand)]
enum WorkerKeys {
    List {
        worker: String,
    },
    Create {
        worker: String,
        /// The account whose jobs it takes (or --pool).
        #[arg(long)]
        account: Option<String>,
        #[arg(long)]
        pool: Option<String>,
        #[arg(long, default_value = "")]
        name: String,
    },
}

#[derive(Subcommand)]
enum Links {
    List {
        #[arg(long)]
        account: String,
    },
    Show {
        id: String,
    },
    Create {
        #[arg(long)]
        account: String,
        #[arg(long)]
        agent: String,
        /// 0: unlimited.
        #[arg(long, default_value_t = 0)]
        use_limit: u32,
    },
    Deactivate {
        id: String,
    },
}

#[derive(Subcommand)]
enum Sessions {
    /// The account's sessions, newest first (at most --limit).
    List {
        #[arg(long)]
        account: String,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    Show {
        id: String,
    },
    End {
        id: String,
    },
}

/// An id as one path segment or query value: whatever it holds (`/`, `?`,
/// `..`), it cannot name another route.
fn enc(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

/// Only the fields given: a PATCH changes nothing else.
fn object(fields: Vec<(&str, Option<Value>)>) -> Value {
    Value::Object(
        fields
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
            .collect::<Map<_, _>>(),
    )
}

fn account_body(f: AccountFields) -> Vec<(&'static str, Option<Value>)> {
    vec![
        ("name", f.name.map(Value::from)),
        ("max_concurrency", f.max_concurrency.map(Value::from)),
        ("minutes_quota", f.minutes_quota.map(Value::from)),
        ("home_region", f.home_region.map(Value::from)),
    ]
}

fn agent_body(f: AgentFields) -> Vec<(&'static str, Option<Value>)> {
    vec![
        ("name", f.name.map(Value::from)),
        ("status", f.status.map(Value::from)),
        (
            "allowed_hostnames",
            (!f.allowed_hostnames.is_empty()).then(|| Value::from(f.allowed_hostnames)),
        ),
        ("max_concurrency", f.max_concurrency.map(Value::from)),
        (
            "max_session_seconds",
            f.max_session_seconds.map(Value::from),
        ),
        ("avatar_image_url", f.avatar_image_url.map(Value::from)),
        ("provider", f.provider.map(Value::from)),
        ("requires_worker", f.requires_worker.map(Value::from)),
        (
            "solo_timeout_seconds",
            f.solo_timeout_seconds.map(Value::from),
        ),
        ("project_id", f.project.map(Value::from)),
    ]
}

const ACCOUNT_COLUMNS: &[&str] = &[
    "id",
    "name",
    "max_concurrency",
    "minutes_quota",
    "home_region",
];
const AGENT_COLUMNS: &[&str] = &[
    "id",
    "account_id",
    "name",
    "status",
    "max_concurrency",
    "provider",
];
const KEY_COLUMNS: &[&str] = &["prefix", "kind", "name", "scopes", "active"];
const LINK_COLUMNS: &[&str] = &["id", "agent_id", "active", "uses", "use_limit"];
const SESSION_COLUMNS: &[&str] = &["id", "agent_id", "status", "created_at_ms", "ended_reason"];
const AUDIT_COLUMNS: &[&str] = &["at_ms", "who", "event", "target"];

/// (method, path under /admin/v1, body, list columns) of a command.
type Call = (Method, String, Option<Value>, &'static [&'static str]);

fn call_of(command: Command) -> Result<Call, CliError> {
    use Method as M;
    Ok(match command {
        Command::Accounts(a) => match a {
            Accounts::List => (M::GET, "/accounts".into(), None, ACCOUNT_COLUMNS),
            Accounts::Show { id } => (M::GET, format!("/accounts/{}", enc(&id)), None, &[]),
            Accounts::Create { id, fields } => {
                let mut body = account_body(fields);
                body.push(("id", id.map(Value::from)));
                (M::POST, "/accounts".into(), Some(object(body)), &[])
            }
            Accounts::Update { id, fields } => (
                M::PATCH,
                format!("/accounts/{}", enc(&id)),
                Some(object(account_body(fields))),
                &[],
            ),
        },
        Command::Projects(p) => match p {
            Projects::List { account } => (
                M::GET,
                format!("/accounts/{}/projects", enc(&account)),
                None,
                &["id", "account_id", "name"],
            ),
            Projects::Show { id } => (M::GET, format!("/projects/{}", enc(&id)), None, &[]),
            Projects::Create { account, name, id } => (
                M::POST,
                format!("/accounts/{}/projects", enc(&account)),
                Some(object(vec![
                    ("name", Some(Value::from(name))),
                    ("id", id.map(Value::from)),
                ])),
                &[],
            ),
        },
        Command::Agents(a) => match a {
            Agents::List { account } => (
                M::GET,
                match account {
                    Some(acct) => format!("/agents?account_id={}", enc(&acct)),
                    None => "/agents".into(),
                },
                None,
                AGENT_COLUMNS,
            ),
            Agents::Show { id } => (M::GET, format!("/agents/{}", enc(&id)), None, &[]),
            Agents::Create {
                account,
                id,
                fields,
            } => {
                let mut body = agent_body(fields);
                body.push(("account_id", Some(Value::from(account))));
                body.push(("id", id.map(Value::from)));
                (M::POST, "/agents".into(), Some(object(body)), &[])
            }
            Agents::Update { id, fields } => (
                M::PATCH,
                format!("/agents/{}", enc(&id)),
                Some(object(agent_body(fields))),
                &[],
            ),
            Agents::Keys { id } => (
                M::GET,
                format!("/agents/{}/keys", enc(&id)),
                None,
                KEY_COLUMNS,
            ),
            Agents::RotateKey {
                id,
                previous_key_grace_seconds,
            } => (
                M::POST,
                format!("/agents/{}/keys", enc(&id)),
                Some(json!({ "previous_key_grace_seconds": previous_key_grace_seconds })),
                &[],
            ),
        },
        Command::Keys(k) => match k {
            Keys::List { account } => (
                M::GET,
                format!("/accounts/{}/api-keys", enc(&account)),
                None,
                KEY_COLUMNS,
            ),
            Keys::Create {
                account,
                name,
                scopes,
            } => (
                M::POST,
                format!("/accounts/{}/api-keys", enc(&account)),
                Some(json!({ "name": name, "scopes": scopes })),
                &[],
            ),
            Keys::Pause { prefix } => (
                M::PATCH,
                format!("/keys/{}", enc(&prefix)),
                Some(json!({ "active": false })),
                &[],
            ),
            Keys::Resume { prefix } => (
                M::PATCH,
                format!("/keys/{}", enc(&prefix)),
                Some(json!({ "active": true })),
                &[],
            ),
            Keys::Revoke { prefix } => {
                (M::POST, format!("/keys/{}/revoke", enc(&prefix)), None, &[])
            }
        },
        Command::WorkerKeys(w) => match w {
            WorkerKeys::List { worker } => (
                M::GET,
                format!("/workers/{}/keys", enc(&worker)),
                None,
                KEY_COLUMNS,
            ),
            WorkerKeys::Create {
                worker,
                account,
                pool,
                name,
            } => {
                if account.is_some() == pool.is_some() {
                    return Err(CliError::Usage(
                        "a worker key serves one account (--account) or one pool (--pool)".into(),
                    ));
                }
                (
                    M::POST,
                    format!("/workers/{}/keys", enc(&worker)),
                    Some(object(vec![
                        ("account_id", account.map(Value::from)),
                        ("pool", pool.map(Value::from)),
                        ("name", Some(Value::from(name))),
                    ])),
                    &[],
                )
            }
        },
        Command::Links(l) => match l {
            Links::List { account } => (
                M::GET,
                format!("/accounts/{}/links", enc(&account)),
                None,
                LINK_COLUMNS,
            ),
            Links::Show { id } => (M::GET, format!("/links/{}", enc(&id)), None, &[]),
            Links::Create {
                account,
                agent,
                use_limit,
            } => (
                M::POST,
                format!("/accounts/{}/links", enc(&account)),
                Some(json!({ "agent_id": agent, "use_limit": use_limit })),
                &[],
            ),
            Links::Deactivate { id } => (
                M::POST,
                format!("/links/{}/deactivate", enc(&id)),
                None,
                &[],
            ),
        },
        Command::Sessions(s) => match s {
            Sessions::List { account, limit } => (
                M::GET,
                format!("/accounts/{}/sessions?limit={limit}", enc(&account)),
                None,
                SESSION_COLUMNS,
            ),
            Sessions::Show { id } => (M::GET, format!("/sessions/{}", enc(&id)), None, &[]),
            Sessions::End { id } => (M::POST, format!("/sessions/{}/end", enc(&id)), None, &[]),
        },
        Command::Usage { account } => (
            M::GET,
            format!("/accounts/{}/usage", enc(&account)),
            None,
            &[],
        ),
        Command::Audit { account } => (
            M::GET,
            match account {
                Some(acct) => format!("/accounts/{}/audit", enc(&acct)),
                None => "/audit".into(),
            },
            None,
            AUDIT_COLUMNS,
        ),
    })
}

async fn run(cli: Cli) -> Result<String, CliError> {
    let target = Target::resolve(cli.url, cli.token, client::config_path(cli.config))?;
    let (method, path, body, columns) = call_of(cli.command)?;
    let answer = Client::new(target).call(method, &path, body).await?;
    Ok(output::render(&answer, cli.output, columns))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    lobby_kit::grpc_tls::install_crypto_provider();
    match run(Cli::parse()).await {
        Ok(out) => {
            println!("{out}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lobby: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
