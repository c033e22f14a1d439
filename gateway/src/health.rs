//! `GET /healthz` (readiness): 200 when every service answers its gRPC
//! health check and Redis answers; 503 naming what failed otherwise. On a
//! Redis Cluster, Redis answers while any master does: the accounts of the
//! others are still served, so one shard failing over takes no gateway out
//! of traffic; the body says which masters do not answer. During a
//! shutdown's drain delay, 503 `draining`.
//! `GET /livez` (liveness): 200 while the process can recover by itself, so
//! a gateway waiting for Redis or a service is kept out of traffic, not
//! restarted; 503 once a task it cannot do without has stopped
//! (`lobby_kit::liveness`), which only a restart mends.

use crate::AppState;
use axum::{extract::State, http::StatusCode, response::IntoResponse, Json};
use std::{collections::BTreeMap, time::Duration};

/// How long each Redis master has to answer a readiness check's `PING`.
const REDIS_CHECK_WITHIN: Duration = Duration::from_millis(500);

/// The gateway's health.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`, `unavailable` or `draining`.
    status: String,
    /// Each service's and Redis's check: `ok`, or what failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    checks: Option<BTreeMap<String, String>>,
}

/// Liveness: the process serves HTTP and every task it cannot do without
/// still runs.
#[utoipa::path(
    get,
    operation_id = "livez",
    path = "/livez",
    tag = "operations",
    responses(
        (status = 200, description = "Alive", body = Health),
        (status = 503, description = "Stuck: a restart is needed", body = Health),
    )
)]
pub async fn livez() -> impl IntoResponse {
    match lobby_kit::liveness::failing() {
        None => (
            StatusCode::OK,
            Json(Health {
                status: "ok".to_owned(),
                checks: None,
            }),
        ),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "stuck".to_owned(),
                checks: Some(BTreeMap::from([("liveness".to_owned(), why)])),
            }),
        ),
    }
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
        .map(|(name, probe)| async move { (*name, probe.check().await.map(|()| "ok".to_owned())) });
    let mut results = futures::future::join_all(services).await;
    // A degraded cluster is ready, and says so. A frozen master answers
    // nothing: the check gives each master a moment, well inside a probe's
    // one-second timeout.
    let redis = state.redis.check(REDIS_CHECK_WITHIN).await;
    results.push((
        "redis",
        redis.map(|degraded| degraded.unwrap_or_else(|| "ok".to_owned())),
    ));
    for (name, result) in results {
        let value = match result {
            Ok(detail) => detail,
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
