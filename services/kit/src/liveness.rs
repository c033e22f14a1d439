//! Liveness: whether this process can still recover by itself. A service
//! waiting for Redis is alive (it follows Redis coming back); one whose
//! background task that follows Redis is gone is not, and only a restart
//! mends it. Each such task beats a [`Heartbeat`]; the process is alive while
//! every heartbeat still held beats within its allowance.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, OnceLock, Weak,
    },
    time::{Duration, Instant},
};

/// Beaten by a task that must keep running for the process to be whole.
#[derive(Debug)]
pub struct Heartbeat {
    what: String,
    allowance: Duration,
    /// Milliseconds since `epoch()` of the last beat.
    last_ms: AtomicU64,
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64
}

fn registry() -> &'static Mutex<Vec<Weak<Heartbeat>>> {
    static HEARTBEATS: OnceLock<Mutex<Vec<Weak<Heartbeat>>>> = OnceLock::new();
    HEARTBEATS.get_or_init(Mutex::default)
}

impl Heartbeat {
    /// A heartbeat of `what` that must beat at least every `allowance`; it
    /// counts for liveness while the returned handle is held.
    pub fn register(what: impl Into<String>, allowance: Duration) -> Arc<Self> {
        let beat = Arc::new(Self {
            what: what.into(),
            allowance,
            last_ms: AtomicU64::new(now_ms()),
        });
        if let Ok(mut all) = registry().lock() {
            all.retain(|w| w.strong_count() > 0);
            all.push(Arc::downgrade(&beat));
        }
        beat
    }

    pub fn beat(&self) {
        self.last_ms.store(now_ms(), Ordering::Relaxed);
    }

    fn silent_for(&self) -> Duration {
        Duration::from_millis(now_ms().saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// `None` while the process is alive; otherwise which task stopped beating.
pub fn failing() -> Option<String> {
    let all = registry().lock().ok()?;
    all.iter().filter_map(Weak::upgrade).find_map(|beat| {
        let silent = beat.silent_for();
        (silent > beat.allowance).then(|| {
            format!(
                "{} has not run for {} s (allowed {} s); a restart is needed",
                beat.what,
                silent.as_secs(),
                beat.allowance.as_secs()
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_that_stops_fails_liveness_until_dropped() {
        let beat = Heartbeat::register("a test task", Duration::from_millis(30));
        beat.beat();
        assert!(failing().is_none_or(|why| !why.contains("a test task")));
        std::thread::sleep(Duration::from_millis(60));
        assert!(failing().is_some_and(|why| why.contains("a test task")));
        beat.beat();
        assert!(failing().is_none_or(|why| !why.contains("a test task")));
        std::thread::sleep(Duration::from_millis(60));
        drop(beat);
        assert!(failing().is_none_or(|why| !why.contains("a test task")));
    }
}
