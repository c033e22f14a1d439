//! Where the admin API is and how to call it: the URL and token from the
//! flags, the environment, or a config file, in that order; every answer
//! checked, every refusal reported in the API's own words.

use serde_json::Value;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("no admin token: pass --token, set LOBBY_ADMIN_TOKEN, or put \"token\" in {0}")]
    NoToken(String),
    #[error("the config file {path} is not a JSON object of \"url\" and \"token\": {reason}")]
    Config { path: String, reason: String },
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{status}: {code}: {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    #[error("{0}")]
    Usage(String),
}

/// Where the admin API is, and the token it takes.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub token: String,
}

/// The config file: `--config`, `LOBBY_CLI_CONFIG`, or
/// `$XDG_CONFIG_HOME/lobby/cli.json` (`~/.config/lobby/cli.json`).
pub fn config_path(explicit: Option<PathBuf>) -> PathBuf {
    explicit.unwrap_or_else(|| {
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
            .unwrap_or_else(|| PathBuf::from("."));
        base.join("lobby").join("cli.json")
    })
}

impl Target {
    /// Flags and environment (clap reads both) win over the file.
    pub fn resolve(
        url: Option<String>,
        token: Option<String>,
        config: PathBuf,
    ) -> Result<Self, CliError> {
        let shown = config.display().to_string();
        let file: Value = match std::fs::read_to_string(&config) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| CliError::Config {
                path: shown.clone(),
                reason: e.to_string(),
            })?,
            // No file is no settings; one that cannot be read is an error.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Value::Null,
            Err(e) => {
                return Err(CliError::Config {
                    path: shown,
                    reason: e.to_string(),
                })
            }
        };
        let from_file = |key: &str| file.get(key).and_then(Value::as_str).map(str::to_owned);
        let url = url
            .or_else(|| from_file("url"))
            .unwrap_or_else(|| "http://127.0.0.1:8080".to_owned());
        let token = token
            .or_else(|| from_file("token"))
            .filter(|t| !t.is_empty())
            .ok_or(CliError::NoToken(shown))?;
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            token,
        })
    }
}

pub struct Client {
    target: Target,
    http: reqwest::Client,
}

impl Client {
    pub fn new(target: Target) -> Self {
        Self {
            target,
            http: lobby_kit::https::client(std::time::Duration::from_secs(30)),
        }
    }

    /// `method` on `/admin/v1{path}` with an optional JSON body; the answer's
    /// JSON, or the refusal in the API's words.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, CliError> {
        let url = format!("{}/admin/v1{path}", self.target.url);
        let mut req = self
            .http
            .request(method, &url)
            .bearer_auth(&self.target.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let answer = req.send().await.map_err(|e| CliError::Unreachable {
            url: self.target.url.clone(),
            reason: e.without_url().to_string(),
        })?;
        let status = answer.status().as_u16();
        let text = answer.text().await.unwrap_or_default();
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if (200..300).contains(&status) {
            return Ok(json);
        }
        let field = |k: &str| json.get(k).and_then(Value::as_str).map(str::to_owned);
        Err(CliError::Refused {
            status,
            code: field("error_code").unwrap_or_else(|| "error".to_owned()),
            message: field("message").unwrap_or_else(|| json.to_string()),
        })
    }
}
