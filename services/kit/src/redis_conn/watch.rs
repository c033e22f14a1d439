//! The watcher: pings Redis (on a cluster, every master) for as long as
//! anyone follows its readiness; `/healthz` asks the same round of pings.

use super::{RedisConn, RedisSettings, FIRST_RETRY, HEALTHY_PING_INTERVAL, PING_TIMEOUT};
use crate::{backoff::Backoff, liveness::Heartbeat, readiness};
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

/// What one round of pings found: per master (one, for a single Redis),
/// whether it answered.
#[derive(Debug)]
pub(super) struct Shards {
    pub(super) answers: Vec<(String, Result<(), String>)>,
}

impl Shards {
    pub(super) fn summary(&self) -> Result<Option<String>, String> {
        let failing: Vec<String> = self
            .answers
            .iter()
            .filter_map(|(node, a)| a.as_ref().err().map(|e| format!("{node}: {e}")))
            .collect();
        if self.answers.is_empty() {
            return Err("not reached yet".into());
        }
        if failing.is_empty() {
            return Ok(None);
        }
        if failing.len() == self.answers.len() {
            return Err(failing.join("; "));
        }
        Ok(Some(format!(
            "degraded: {} of {} masters answer, the accounts of the others wait for their failover ({})",
            self.answers.len() - failing.len(),
            self.answers.len(),
            failing.join("; ")
        )))
    }
}

/// What one round of the watcher found: every master's answer to `PING`
/// (one Redis's, when not a cluster).
pub(super) async fn ping_round(
    conn: &mut RedisConn,
    url: &str,
    within: Duration,
) -> Vec<(String, Result<(), String>)> {
    match conn {
        RedisConn::Cluster(router) => {
            let answers = router.ping_masters(within).await;
            if answers.is_empty() {
                return vec![(url.to_owned(), Err("no master known yet".into()))];
            }
            answers
                .into_iter()
                .map(|(addr, a)| (addr.to_string(), a))
                .collect()
        }
        RedisConn::Single(_) => {
            let ping =
                tokio::time::timeout(within, redis::cmd("PING").query_async::<String>(conn)).await;
            let answer = match ping {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no answer to PING within {within:?}")),
            };
            vec![(url.to_owned(), answer)]
        }
    }
}

/// Pings Redis for as long as anyone follows its readiness: ready while
/// Redis (on a cluster: any master) answers. A failed ping also makes the
/// connection replace a dead link before a request needs it.
pub(super) async fn watch_redis(
    mut conn: RedisConn,
    settings: RedisSettings,
    flag: readiness::ReadyFlag,
    heartbeat: Arc<Heartbeat>,
) {
    let url = settings.url.as_str();
    let mut backoff = Backoff::new(FIRST_RETRY, settings.retry_max);
    let mut down_since: Option<Instant> = Some(Instant::now());
    let mut reported_at: Option<Instant> = None;
    let mut announced = false;
    let mut ever_answered = false;
    let mut degraded_before: Option<String> = None;
    while flag.is_observed() {
        heartbeat.beat();
        let summary = Shards {
            answers: ping_round(&mut conn, url, PING_TIMEOUT).await,
        }
        .summary();
        let failure = summary.clone().err();
        let degraded = summary.ok().flatten();
        if degraded != degraded_before {
            match &degraded {
                Some(what) => tracing::warn!(redis = url, "{what}"),
                None if degraded_before.is_some() => {
                    tracing::info!(redis = url, "every Redis master answers again")
                }
                None => {}
            }
            degraded_before = degraded;
        }
        match failure {
            None => {
                if let Some(since) = down_since.take() {
                    if ever_answered {
                        tracing::info!(
                            redis = url,
                            after_ms = since.elapsed().as_millis() as u64,
                            "Redis answers again"
                        );
                    } else {
                        tracing::info!(redis = url, "Redis answers");
                    }
                }
                ever_answered = true;
                announced = false;
                reported_at = None;
                flag.set(true);
                backoff.reset();
                tokio::time::sleep(HEALTHY_PING_INTERVAL).await;
            }
            Some(reason) => {
                flag.set(false);
                let since = *down_since.get_or_insert_with(Instant::now);
                let waited = since.elapsed();
                let report_due = waited >= settings.report_after
                    && reported_at.is_none_or(|at| at.elapsed() >= settings.report_after);
                if report_due {
                    tracing::error!(
                        redis = url,
                        waited_s = waited.as_secs(),
                        error = %reason,
                        "Redis has not answered; this service stays unready and keeps retrying (at most every {:?})",
                        settings.retry_max
                    );
                    reported_at = Some(Instant::now());
                    announced = true;
                } else if !announced {
                    tracing::warn!(redis = url, error = %reason, "waiting for Redis");
                    announced = true;
                } else {
                    tracing::debug!(redis = url, error = %reason, "still waiting for Redis");
                }
                backoff.wait().await;
            }
        }
    }
}
