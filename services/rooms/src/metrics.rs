//! What the rooms service counts, for `/metrics`.

use prometheus::{IntCounterVec, Opts, Registry};

#[derive(Clone)]
pub struct RoomsMetrics {
    pub registry: Registry,
    /// Admission decisions: admitted, or refused by account, agent or minutes.
    pub admissions: IntCounterVec,
    /// Worker answers to job offers: accepted, rejected, timed_out.
    pub worker_offers: IntCounterVec,
}

impl RoomsMetrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let admissions = IntCounterVec::new(
            Opts::new(
                "lobby_rooms_admissions_total",
                "Admission decisions by outcome",
            ),
            &["outcome"],
        )?;
        let worker_offers = IntCounterVec::new(
            Opts::new(
                "lobby_rooms_worker_offers_total",
                "Job offers to GPU workers by answer",
            ),
            &["answer"],
        )?;
        registry.register(Box::new(admissions.clone()))?;
        registry.register(Box::new(worker_offers.clone()))?;
        Ok(Self {
            registry,
            admissions,
            worker_offers,
        })
    }
}
