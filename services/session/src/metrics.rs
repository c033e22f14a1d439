//! What the session service counts, for `/metrics`.

use prometheus::{IntCounterVec, IntGauge, Opts, Registry};

#[derive(Clone)]
pub struct SessionMetrics {
    pub registry: Registry,
    /// Starts by outcome: active, or the failure's machine code.
    pub starts: IntCounterVec,
    /// Ended sessions by `ended_reason`.
    pub ended: IntCounterVec,
    /// Redis memory in use and its ceiling (`maxmemory`, 0 for none): with
    /// `noeviction`, writes fail once the one reaches the other.
    pub redis_used_memory: IntGauge,
    pub redis_max_memory: IntGauge,
    /// Slots held in this region's store: every running session's, and
    /// every hold for a session another region runs.
    pub slots_in_use: IntGauge,
    /// Admissions, give-backs and ends whose answer Redis lost, waiting to
    /// be settled once it answers.
    pub give_backs_owed: IntGauge,
}

/// Reads Redis's memory figures and the slots held into the gauges every
/// `every`, while Redis answers.
pub async fn watch_redis(
    metrics: SessionMetrics,
    store: crate::store::SessionStore,
    redis: lobby_kit::redis_conn::RedisConn,
    ready: lobby_kit::Readiness,
    every: std::time::Duration,
) {
    let mut ticker = tokio::time::interval(every);
    loop {
        ticker.tick().await;
        ready.wait().await;
        if let Ok(slots) = store.slots_in_use().await {
            metrics.slots_in_use.set(slots);
        }
        let info: Result<String, _> = redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut redis.clone())
            .await;
        let Ok(info) = info else { continue };
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.trim().parse::<i64>().ok())
        };
        if let Some(used) = field("used_memory") {
            metrics.redis_used_memory.set(used);
        }
        if let Some(max) = field("maxmemory") {
            metrics.redis_max_memory.set(max);
        }
    }
}

impl SessionMetrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let starts = IntCounterVec::new(
            Opts::new("lobby_session_starts_total", "Session starts by outcome"),
            &["outcome"],
        )?;
        let ended = IntCounterVec::new(
            Opts::new("lobby_session_ended_total", "Ended sessions by reason"),
            &["reason"],
        )?;
        let redis_used_memory = IntGauge::new(
            "lobby_redis_used_memory_bytes",
            "Memory Redis reports in use (INFO memory used_memory)",
        )?;
        let redis_max_memory = IntGauge::new(
            "lobby_redis_maxmemory_bytes",
            "Redis's maxmemory (0: no limit)",
        )?;
        let slots_in_use = IntGauge::new(
            "lobby_session_slots_in_use",
            "Concurrency slots held in this region's store (running sessions, and holds for sessions other regions run)",
        )?;
        let give_backs_owed = IntGauge::new(
            "lobby_session_give_backs_owed",
            "Admissions, give-backs and ends whose answer Redis lost, to be settled once it answers",
        )?;
        registry.register(Box::new(give_backs_owed.clone()))?;
        registry.register(Box::new(slots_in_use.clone()))?;
        registry.register(Box::new(starts.clone()))?;
        registry.register(Box::new(ended.clone()))?;
        registry.register(Box::new(redis_used_memory.clone()))?;
        registry.register(Box::new(redis_max_memory.clone()))?;
        Ok(Self {
            registry,
            starts,
            ended,
            redis_used_memory,
            redis_max_memory,
            slots_in_use,
            give_backs_owed,
        })
    }
}
