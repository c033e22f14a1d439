//! Peers' health, from probes of their `/healthz`, with hysteresis: a peer
//! goes down after `down_after` failed probes in a row and comes back after
//! `up_after` good ones, so one slow answer does not move traffic.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

#[derive(Debug, Clone, Copy)]
pub struct Hysteresis {
    pub down_after: u32,
    pub up_after: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PeerState {
    healthy: bool,
    /// Probes in a row that disagree with `healthy`.
    streak: u32,
}

impl PeerState {
    /// The state after one probe.
    fn after(self, ok: bool, h: Hysteresis) -> Self {
        if ok == self.healthy {
            return Self { streak: 0, ..self };
        }
        let streak = self.streak + 1;
        let needed = if self.healthy {
            h.down_after
        } else {
            h.up_after
        };
        if streak >= needed {
            Self {
                healthy: ok,
                streak: 0,
            }
        } else {
            Self { streak, ..self }
        }
    }
}

/// Each peer's health (by region name); a peer starts healthy.
#[derive(Clone, Default)]
pub struct PeerHealth(Arc<Mutex<HashMap<String, PeerState>>>);

impl PeerHealth {
    pub fn new(peers: impl IntoIterator<Item = String>) -> Self {
        let states = peers
            .into_iter()
            .map(|p| {
                (
                    p,
                    PeerState {
                        healthy: true,
                        streak: 0,
                    },
                )
            })
            .collect();
        Self(Arc::new(Mutex::new(states)))
    }

    pub fn is_healthy(&self, peer: &str) -> bool {
        self.0
            .lock()
            .map(|s| s.get(peer).is_none_or(|p| p.healthy))
            .unwrap_or(true)
    }

    pub fn record(&self, peer: &str, ok: bool, h: Hysteresis) {
        if let Ok(mut states) = self.0.lock() {
            if let Some(state) = states.get_mut(peer) {
                let next = state.after(ok, h);
                if next.healthy != state.healthy {
                    if next.healthy {
                        tracing::info!(region = peer, "region is back");
                    } else {
                        tracing::warn!(region = peer, "region is down: routed around");
                    }
                }
                *state = next;
            }
        }
    }
}

/// Probes every peer's `/healthz` each `interval`, forever.
pub async fn probe_forever(
    health: PeerHealth,
    peers: Vec<(String, String)>,
    interval: Duration,
    timeout: Duration,
    hysteresis: Hysteresis,
) {
    let http = lobby_kit::https::client(timeout);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let probes = peers.iter().map(|(name, url)| {
            let http = http.clone();
            async move {
                let ok = http
                    .get(format!("{}/healthz", url.trim_end_matches('/')))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                (name, ok)
            }
        });
        for (name, ok) in futures::future::join_all(probes).await {
            health.record(name, ok, hysteresis);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_changes_state_only_after_enough_probes_in_a_row() {
        let h = Hysteresis {
            down_after: 3,
            up_after: 2,
        };
        let health = PeerHealth::new(["eu".to_owned()]);
        for ok in [false, false, true, false, false] {
            health.record("eu", ok, h);
        }
        assert!(health.is_healthy("eu"), "never three failures in a row");
        health.record("eu", false, h);
        assert!(!health.is_healthy("eu"));
        health.record("eu", true, h);
        assert!(!health.is_healthy("eu"), "one good probe is not enough");
        health.record("eu", true, h);
        assert!(health.is_healthy("eu"));
        assert!(health.is_healthy("unknown-peer"));
    }
}
