//! Summarizers, chosen by config (`LOBBY_SUMMARIZER`):
//! - `textrank` (the default) works offline: key sentences by TextRank;
//! - `openai` calls any OpenAI-compatible chat-completions endpoint
//!   (`LOBBY_SUMMARIZER_URL`, `…_MODEL`, `…_API_KEY`).
//!
//! Both state the same facts, computed here from the transcript.

use crate::summary::{
    textrank,
    transcript::{self, Facts, Turn},
};
use serde::Serialize;
use serde_json::{json, Value};
use std::time::Duration;

/// How many key sentences the offline summary keeps.
pub const KEY_SENTENCES: usize = 5;

#[derive(Debug, Clone)]
pub enum SummarizerConfig {
    TextRank,
    OpenAi {
        /// Base URL, e.g. `https://api.openai.com/v1`; `/chat/completions` is appended.
        url: String,
        model: String,
        api_key: String,
        timeout: Duration,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum SummarizeError {
    #[error("conversation.json holds no list of turns")]
    NoTurns,
    #[error("summarizer endpoint: {0}")]
    Endpoint(String),
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KeySentence {
    pub speaker: String,
    pub text: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub session_id: String,
    pub method: String,
    pub summary: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub key_sentences: Vec<KeySentence>,
    pub facts: Facts,
    pub generated_at: String,
}

pub struct Summarizer {
    config: SummarizerConfig,
    http: reqwest::Client,
}

impl Summarizer {
    pub fn new(config: SummarizerConfig) -> Self {
        let timeout = match &config {
            SummarizerConfig::OpenAi { timeout, .. } => *timeout,
            SummarizerConfig::TextRank => Duration::from_secs(30),
        };
        Self {
            config,
            http: lobby_kit::https::client(timeout),
        }
    }

    pub async fn summarize(
        &self,
        session_id: &str,
        transcript: &Value,
        session_duration_seconds: Option<u64>,
    ) -> Result<Summary, SummarizeError> {
        let turns = transcript::turns(transcript).ok_or(SummarizeError::NoTurns)?;
        let facts = transcript::facts(&turns, session_duration_seconds);
        let (method, summary, key_sentences) = match &self.config {
            SummarizerConfig::TextRank => {
                let key = text_rank(&turns);
                let text = key
                    .iter()
                    .map(|k| k.text.as_str())
                    .collect::<Vec<_>>()
                    .join(" ");
                ("textrank".to_owned(), text, key)
            }
            SummarizerConfig::OpenAi {
                url,
                model,
                api_key,
                ..
            } => {
                let text = self.chat(url, model, api_key, &turns).await?;
                (format!("openai:{model}"), text, Vec::new())
            }
        };
        Ok(Summary {
            session_id: session_id.to_owned(),
            method,
            summary,
            key_sentences,
            facts,
            generated_at: chrono::Utc::now()
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string(),
        })
    }

    async fn chat(
        &self,
        url: &str,
        model: &str,
        api_key: &str,
        turns: &[Turn],
    ) -> Result<String, SummarizeError> {
        let transcript: String = turns
            .iter()
            .map(|t| format!("{}: {}\n", t.speaker, t.text))
            .collect();
        let body = json!({
            "model": model,
            "temperature": 0.2,
            "messages": [
                {"role": "system", "content": "Summarize this conversation between a user and a voice AI agent in a few sentences: what the user wanted, what was resolved, and any follow-up."},
                {"role": "user", "content": transcript},
            ],
        });
        let mut request = self
            .http
            .post(format!("{}/chat/completions", url.trim_end_matches('/')))
            .json(&body);
        if !api_key.is_empty() {
            request = request.bearer_auth(api_key);
        }
        let response = request
            .send()
            .await
            .map_err(|e| SummarizeError::Endpoint(e.without_url().to_string()))?;
        let status = response.status();
        if !status.is_success() {
            return Err(SummarizeError::Endpoint(format!("answered {status}")));
        }
        let answer: Value = response
            .json()
            .await
            .map_err(|e| SummarizeError::Endpoint(format!("unreadable answer: {e}")))?;
        answer
            .pointer("/choices/0/message/content")
            .and_then(Value::as_str)
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                SummarizeError::Endpoint("answer has no choices[0].message.content".into())
            })
    }
}

/// The key sentences of the whole conversation, each with its speaker.
fn text_rank(turns: &[Turn]) -> Vec<KeySentence> {
    let said: Vec<(String, String)> = turns
        .iter()
        .flat_map(|t| {
            textrank::sentences(&t.text)
                .into_iter()
                .map(|s| (t.speaker.clone(), s))
        })
        .collect();
    let texts: Vec<String> = said.iter().map(|(_, s)| s.clone()).collect();
    textrank::key_sentences(&texts, KEY_SENTENCES)
        .into_iter()
        .map(|i| KeySentence {
            speaker: said[i].0.clone(),
            text: said[i].1.clone(),
        })
        .collect()
}
