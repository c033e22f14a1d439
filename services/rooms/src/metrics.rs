//! What the rooms service counts, for `/metrics`.

use prometheus::{IntCounterVec, IntGauge, Opts, Registry};

#[derive(Clone)]
pub struct RoomsMetrics {
    pub registry: Registry,
    /// Worker answers to job offers: accepted, rejected, timed_out.
    pub worker_offers: IntCounterVec,
    /// Rooms opened for sessions, by provider.
    pub rooms_opened: IntCounterVec,
    /// The region's live GPU workers, their capacity and what jobs hold of
    /// it (read from Redis: every replica reports the region's figures).
    pub workers_live: IntGauge,
    pub worker_capacity: IntGauge,
    pub worker_capacity_reserved: IntGauge,
}

/// Reads the region's worker capacity into the gauges every `every`.
pub async fn watch_worker_capacity(
    metrics: RoomsMetrics,
    registry: crate::workers::Registry,
    region: String,
    ready: lobby_kit::Readiness,
    every: std::time::Duration,
) {
    let mut ticker = tokio::time::interval(every);
    loop {
        ticker.tick().await;
        ready.wait().await;
        let Ok(now) = registry
            .region_capacity(&region, lobby_kit::time::now_ms())
            .await
        else {
            continue;
        };
        let gauge = |g: &IntGauge, v: u64| g.set(i64::try_from(v).unwrap_or(i64::MAX));
        gauge(&metrics.workers_live, now.workers);
        gauge(&metrics.worker_capacity, now.capacity);
        gauge(&metrics.worker_capacity_reserved, now.reserved);
    }
}

impl RoomsMetrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let worker_offers = IntCounterVec::new(
            Opts::new(
                "lobby_rooms_worker_offers_total",
                "Job offers to GPU workers by answer",
            ),
            &["answer"],
        )?;
        let rooms_opened = IntCounterVec::new(
            Opts::new("lobby_rooms_rooms_opened_total", "Rooms opened by provider"),
            &["provider"],
        )?;
        let workers_live = IntGauge::new(
            "lobby_rooms_workers_live",
            "GPU workers of this region connected with a fresh heartbeat (the region's figure: take max across replicas)",
        )?;
        let worker_capacity = IntGauge::new(
            "lobby_rooms_worker_capacity",
            "Sessions the region's live GPU workers can run at once (the region's figure)",
        )?;
        let worker_capacity_reserved = IntGauge::new(
            "lobby_rooms_worker_capacity_reserved",
            "Of that capacity, what jobs hold now (the region's figure)",
        )?;
        registry.register(Box::new(worker_offers.clone()))?;
        registry.register(Box::new(rooms_opened.clone()))?;
        registry.register(Box::new(workers_live.clone()))?;
        registry.register(Box::new(worker_capacity.clone()))?;
        registry.register(Box::new(worker_capacity_reserved.clone()))?;
        Ok(Self {
            registry,
            rooms_opened,
            worker_offers,
            workers_live,
            worker_capacity,
            worker_capacity_reserved,
        })
    }
}
