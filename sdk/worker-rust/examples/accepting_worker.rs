//! A small worker: takes jobs while it has room, "runs" each session for a
//! while, then reports its end. A real worker joins `job.room_url` with
//! `job.agent_token` and runs the avatar there.
//!
//! LOBBY_ROOMS_URL, LOBBY_WORKER_TOKEN, WORKER_ID, WORKER_REGION,
//! WORKER_CAPACITY, SESSION_SECONDS.

use lobby_worker::{Worker, WorkerConfig};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().init();
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_owned());
    let capacity: u32 = env("WORKER_CAPACITY", "2").parse()?;
    let session_seconds: u64 = env("SESSION_SECONDS", "30").parse()?;
    let config = WorkerConfig::new(
        &env("LOBBY_ROOMS_URL", "http://127.0.0.1:50053"),
        &env("LOBBY_WORKER_TOKEN", ""),
        &env("WORKER_ID", "example-worker"),
        &env("WORKER_REGION", "local"),
        capacity,
    );
    let (worker, mut jobs) = Worker::attach(config).await?;
    while let Some(job) = jobs.recv().await {
        if worker.load() >= capacity {
            worker.reject(&job.job_id, "at capacity").await?;
            continue;
        }
        worker.accept(&job.job_id).await?;
        tracing::info!(session_id = %job.session_id, room = %job.room_url, identity = %job.agent_identity, "running a session");
        let worker = worker.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(session_seconds)).await;
            let _ = worker.session_ended(&job.session_id, "finished").await;
        });
    }
    Ok(())
}
