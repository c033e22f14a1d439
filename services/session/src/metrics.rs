//! What the session service counts, for `/metrics`.

use prometheus::{IntCounterVec, Opts, Registry};

#[derive(Clone)]
pub struct SessionMetrics {
    pub registry: Registry,
    /// Starts by outcome: active, or the failure's machine code.
    pub starts: IntCounterVec,
    /// Ended sessions by `ended_reason`.
    pub ended: IntCounterVec,
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
        registry.register(Box::new(starts.clone()))?;
        registry.register(Box::new(ended.clone()))?;
        Ok(Self {
            registry,
            starts,
            ended,
        })
    }
}
