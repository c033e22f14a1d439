//! Readiness: whether a service can do its work right now (Redis answers,
//! its start-up steps are done). Distinct from liveness: a service waiting
//! for Redis is alive and must not be restarted, only kept out of traffic.

use tokio::sync::watch;

/// A readiness signal many tasks can read and wait on.
#[derive(Debug, Clone)]
pub struct Readiness {
    rx: watch::Receiver<bool>,
}

/// The writing side of one [`Readiness`].
#[derive(Debug)]
pub struct ReadyFlag {
    tx: watch::Sender<bool>,
}

/// A flag that starts not ready.
pub fn flag() -> (ReadyFlag, Readiness) {
    let (tx, rx) = watch::channel(false);
    (ReadyFlag { tx }, Readiness { rx })
}

impl ReadyFlag {
    pub fn set(&self, ready: bool) {
        self.tx.send_if_modified(|current| {
            let changed = *current != ready;
            *current = ready;
            changed
        });
    }

    /// Whether anyone still follows this flag.
    pub fn is_observed(&self) -> bool {
        !self.tx.is_closed()
    }
}

impl Readiness {
    /// Always ready: for a service with nothing to wait for.
    pub fn always() -> Self {
        let (tx, rx) = watch::channel(true);
        // A dropped sender leaves the last value readable forever.
        drop(tx);
        Self { rx }
    }

    pub fn is_ready(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once ready (at once if it already is).
    pub async fn wait(&self) {
        let mut rx = self.rx.clone();
        let _ = rx.wait_for(|ready| *ready).await;
    }

    /// Resolves at the next change of state; never if nothing can change it.
    pub async fn changed(&mut self) {
        if self.rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Ready while every part is ready, followed as the parts change.
    pub fn all(parts: Vec<Readiness>) -> Readiness {
        let (flag, combined) = flag();
        let current = |parts: &[Readiness]| parts.iter().all(Readiness::is_ready);
        flag.set(current(&parts));
        tokio::spawn(async move {
            let mut parts = parts;
            while flag.is_observed() {
                let changes: Vec<_> = parts.iter_mut().map(|p| Box::pin(p.changed())).collect();
                futures::future::select_all(changes).await;
                flag.set(current(&parts));
            }
        });
        combined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn all_follows_every_part() {
        let (a, ra) = flag();
        let (b, rb) = flag();
        let both = Readiness::all(vec![ra, rb, Readiness::always()]);
        assert!(!both.is_ready());
        a.set(true);
        b.set(true);
        tokio::time::timeout(std::time::Duration::from_secs(1), both.wait())
            .await
            .expect("ready once both parts are");
        b.set(false);
        let mut watch = both.clone();
        tokio::time::timeout(std::time::Duration::from_secs(1), async {
            while watch.is_ready() {
                watch.changed().await;
            }
        })
        .await
        .expect("not ready once a part is not");
    }
}
