//! What the rooms service counts, for `/metrics`.

use prometheus::{IntCounterVec, Opts, Registry};

#[derive(Clone)]
pub struct RoomsMetrics {
    pub registry: Registry,
    /// Worker answers to job offers: accepted, rejected, timed_out.
    pub worker_offers: IntCounterVec,
    /// Rooms opened for sessions, by provider.
    pub rooms_opened: IntCounterVec,
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
        registry.register(Box::new(worker_offers.clone()))?;
        registry.register(Box::new(rooms_opened.clone()))?;
        Ok(Self {
            registry,
            rooms_opened,
            worker_offers,
        })
    }
}
