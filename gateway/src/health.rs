//! `GET /healthz` (readiness): 200 when every service answers its gRPC
//! health check and Redis answers PING; 503 naming what failed otherwise.
//! During a shutdown's drain delay, 503 `draining`.
//! `GET /livez` (liveness): 200 whenever the process serves HTTP, so a
//! gateway waiting for Redis or a service is kept out of traffic, not restarted.

use crate::AppState;
use axum::{extract::State, http::StatusCode, response::IntoResponse, Json};
use std::time::Duration;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

async fn check_redis(redis: &lobby_kit::redis_conn::Redis) -> Result<(), String> {
    let mut conn = redis.connection();
    let ping = async { redis::cmd("PING").query_async::<String>(&mut conn).await };
    match tokio::time::timeout(CHECK_TIMEOUT, ping).await {
        Err(_) => Err("timed out".into()),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(_)) => Ok(()),
    }
}

pub async fn livez() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

pub async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    // Shutting down: out of rotation at once, whatever else holds.
    if lobby_kit::shutdown::is_draining() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": "draining" })),
        );
    }
    let mut checks = serde_json::Map::new();
    let mut healthy = true;
    // Concurrently, so one slow service does not add up with the others.
    let services = state
        .services
        .health
        .iter()
        .map(|(name, probe)| async move { (*name, probe.check().await) });
    let mut results = futures::future::join_all(services).await;
    results.push(("redis", check_redis(&state.redis).await));
    for (name, result) in results {
        let value = match result {
            Ok(()) => "ok".to_owned(),
            Err(e) => {
                healthy = false;
                e
            }
        };
        checks.insert(name.to_owned(), value.into());
    }
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(
            serde_json::json!({ "status": if healthy { "ok" } else { "unavailable" }, "checks": checks }),
        ),
    )
}
