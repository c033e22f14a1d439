//! `GET /healthz` (readiness): 200 when every service answers its gRPC
//! health check and Redis answers PING; 503 naming what failed otherwise.
//! During a shutdown's drain delay, 503 `draining`.
//! `GET /livez` (liveness): 200 whenever the process serves HTTP, so a
//! gateway waiting for Redis or a service is kept out of traffic, not restarted.

use crate::AppState;
use axum::{extract::State, http::StatusCode, response::IntoResponse, Json};
use std::{collections::BTreeMap, time::Duration};

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

/// The gateway's health.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`, `unavailable` or `draining`.
    status: String,
    /// Each service's and Redis's check: `ok`, or what failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    checks: Option<BTreeMap<String, String>>,
}

/// Liveness: the process serves HTTP.
#[utoipa::path(
    get,
    operation_id = "livez",
    path = "/livez",
    tag = "operations",
    responses((status = 200, description = "Alive", body = Health))
)]
pub async fn livez() -> impl IntoResponse {
    Json(Health {
        status: "ok".to_owned(),
        checks: None,
    })
}

/// Readiness: every service and Redis answer.
#[utoipa::path(
    get,
    operation_id = "healthz",
    path = "/healthz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "A check failed, or the gateway is draining", body = Health),
    )
)]
pub async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    // Shutting down: out of rotation at once, whatever else holds.
    if lobby_kit::shutdown::is_draining() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "draining".to_owned(),
                checks: None,
            }),
        );
    }
    let mut checks = BTreeMap::new();
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
        checks.insert(name.to_owned(), value);
    }
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let health = Health {
        status: if healthy { "ok" } else { "unavailable" }.to_owned(),
        checks: Some(checks),
    };
    (status, Json(health))
}
