//! Daily: rooms and meeting tokens through Daily's REST API
//! (`POST /rooms`, `POST /meeting-tokens`, `GET`/`DELETE /rooms/:name`),
//! authenticated with `Authorization: Bearer <api key>`.
//!
//! A room expires with the session's reserved minutes (`exp`, with
//! `eject_at_room_exp` so Daily removes everyone then); tokens are scoped to
//! that room and expire with it; the agent's token is an owner token.

use super::{OpenedRoom, ProviderError};
use serde::Deserialize;
use serde_json::json;
use std::{sync::Arc, time::Duration};

const NAME: &str = "daily";

#[derive(Debug, Clone)]
pub struct DailyConfig {
    /// `https://api.daily.co/v1` in production.
    pub api_url: String,
    /// Empty disables the provider.
    pub api_key: String,
    pub request_timeout: Duration,
}

pub struct Daily {
    config: DailyConfig,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct RoomResponse {
    url: String,
}

#[derive(Deserialize)]
struct TokenResponse {
    token: String,
}

fn unavailable(reason: impl Into<String>) -> ProviderError {
    ProviderError::Unavailable {
        provider: NAME,
        reason: reason.into(),
    }
}

impl Daily {
    pub fn new(
        config: DailyConfig,
        tls: Arc<rustls::ClientConfig>,
    ) -> Result<Option<Self>, reqwest::Error> {
        if config.api_key.is_empty() {
            return Ok(None);
        }
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured((*tls).clone())
            .timeout(config.request_timeout)
            .build()?;
        Ok(Some(Self { config, http }))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.api_url.trim_end_matches('/'))
    }

    async fn post<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> Result<T, ProviderError> {
        let response = self
            .http
            .post(self.url(path))
            .bearer_auth(&self.config.api_key)
            .json(&body)
            .send()
            .await
            .map_err(|e| unavailable(e.without_url().to_string()))?;
        let status = response.status();
        if !status.is_success() {
            let detail = response.text().await.unwrap_or_default();
            return Err(unavailable(format!(
                "{path}: HTTP {} {detail}",
                status.as_u16()
            )));
        }
        response
            .json()
            .await
            .map_err(|e| unavailable(format!("{path}: {}", e.without_url())))
    }

    /// A meeting token for `room` that expires with it.
    pub async fn token(
        &self,
        room: &str,
        user_name: &str,
        owner: bool,
        expires_at_s: i64,
    ) -> Result<String, ProviderError> {
        let token: TokenResponse = self
            .post(
                "/meeting-tokens",
                json!({ "properties": { "room_name": room, "exp": expires_at_s, "user_name": user_name, "is_owner": owner } }),
            )
            .await?;
        Ok(token.token)
    }

    pub async fn open_room(
        &self,
        room: &str,
        user_name: &str,
        expires_at_s: i64,
    ) -> Result<OpenedRoom, ProviderError> {
        let created: RoomResponse = self
            .post(
                "/rooms",
                json!({
                    "name": room,
                    "privacy": "private",
                    "properties": { "exp": expires_at_s, "eject_at_room_exp": true },
                }),
            )
            .await?;
        let token = self.token(room, user_name, false, expires_at_s).await?;
        Ok(OpenedRoom {
            room_url: created.url,
            token,
        })
    }

    /// A room that no longer exists counts as deleted.
    pub async fn delete_room(&self, room: &str) -> Result<(), ProviderError> {
        let response = self
            .http
            .delete(self.url(&format!("/rooms/{room}")))
            .bearer_auth(&self.config.api_key)
            .send()
            .await
            .map_err(|e| unavailable(e.without_url().to_string()))?;
        match response.status().as_u16() {
            200..=299 | 404 => Ok(()),
            other => Err(unavailable(format!("DELETE /rooms: HTTP {other}"))),
        }
    }

    /// Which of `names` Daily still has.
    pub async fn existing_rooms(&self, names: Vec<String>) -> Result<Vec<String>, ProviderError> {
        let mut existing = Vec::new();
        for name in names {
            let response = self
                .http
                .get(self.url(&format!("/rooms/{name}")))
                .bearer_auth(&self.config.api_key)
                .send()
                .await
                .map_err(|e| unavailable(e.without_url().to_string()))?;
            match response.status().as_u16() {
                200..=299 => existing.push(name),
                404 => {}
                other => return Err(unavailable(format!("GET /rooms: HTTP {other}"))),
            }
        }
        Ok(existing)
    }
}
