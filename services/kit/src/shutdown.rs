//! Graceful shutdown: SIGTERM (what Kubernetes sends) or Ctrl-C.

use std::future::Future;
use tokio::sync::watch;

/// Resolves on the first SIGTERM or Ctrl-C.
pub async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown signal received, draining");
}

/// A shutdown signal that several servers in one process can wait on.
#[derive(Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

impl Shutdown {
    /// Fires when `trigger` resolves.
    pub fn on(trigger: impl Future<Output = ()> + Send + 'static) -> Self {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            trigger.await;
            let _ = tx.send(true);
        });
        Self { rx }
    }

    pub async fn wait(mut self) {
        let _ = self.rx.wait_for(|fired| *fired).await;
    }
}

/// Whether this process has begun to stop. Set once, at the shutdown
/// signal, before any listener closes: readiness reports false from then
/// on, and attached GPU workers are told to reconnect elsewhere.
fn draining_flag() -> &'static watch::Sender<bool> {
    static FLAG: std::sync::OnceLock<watch::Sender<bool>> = std::sync::OnceLock::new();
    FLAG.get_or_init(|| watch::channel(false).0)
}

pub fn is_draining() -> bool {
    *draining_flag().borrow()
}

/// Resolves once the process begins to drain (at once if it has).
pub async fn draining() {
    let mut rx = draining_flag().subscribe();
    let _ = rx.wait_for(|draining| *draining).await;
}

/// A process's stop in two steps: at `signal` it begins to drain (out of
/// rotation: readiness false, workers told to leave) while still serving;
/// `delay` later this resolves, and the listeners stop accepting and let
/// what is in flight finish. The delay covers the time a load balancer or
/// Kubernetes' endpoints take to stop sending new traffic.
pub async fn staged(signal: impl Future<Output = ()>, delay: std::time::Duration) {
    signal.await;
    draining_flag().send_replace(true);
    tracing::info!(
        delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
        "draining: unready, still serving until the delay ends"
    );
    tokio::time::sleep(delay).await;
}

/// Runs `serving` (a server given `shutdown` as its stop signal) until it
/// ends; once `shutdown` fires it has `grace` to drain, then is dropped.
pub async fn serve_with_grace<T, E>(
    serving: impl Future<Output = Result<T, E>>,
    shutdown: &Shutdown,
    grace: std::time::Duration,
) -> Result<Option<T>, E> {
    tokio::pin!(serving);
    tokio::select! {
        done = &mut serving => return done.map(Some),
        () = shutdown.clone().wait() => {}
    }
    match tokio::time::timeout(grace, serving).await {
        Ok(done) => done.map(Some),
        Err(_) => {
            tracing::warn!(
                grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
                "still draining after the grace period; stopping now"
            );
            Ok(None)
        }
    }
}

/// What a server is given to know when to stop accepting.
pub type StopSignal = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// The `main` of a service run as its own process: its settings and
/// logging, its config, then `serve` until SIGTERM or Ctrl-C, drained as
/// the config's [`crate::shared_settings::ShutdownSettings`] say.
pub async fn run_service<C, E, Served>(
    name: &str,
    config: impl FnOnce(&crate::Settings) -> Result<C, crate::ConfigError>,
    stopping: impl FnOnce(&C) -> crate::shared_settings::ShutdownSettings,
    serve: impl FnOnce(C, StopSignal) -> Served,
) -> Result<(), Box<dyn std::error::Error>>
where
    Served: Future<Output = Result<(), E>>,
    E: std::error::Error + 'static,
{
    let settings = crate::Settings::from_env()?;
    let _telemetry = crate::telemetry::init(
        name,
        &crate::telemetry::TelemetryConfig::from_settings(&settings)?,
    );
    let config = config(&settings)?;
    let stop = stopping(&config);
    let shutdown = Shutdown::on(staged(signal(), stop.drain_delay));
    let served = serve(config, Box::pin(shutdown.clone().wait()));
    serve_with_grace(served, &shutdown, stop.grace).await?;
    Ok(())
}
