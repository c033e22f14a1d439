//! A small worker: takes jobs while it has room, "runs" each session for a
//! while, then reports its end. A real worker joins `job.room_url` with
//! `job.agent_token` and runs the avatar there.
//!
//! LOBBY_WORKERS_URL, LOBBY_WORKER_CA_FILE (the door's CA, when private),
//! LOBBY_WORKER_KEY (this worker's wkr_ key), WORKER_ID (the id the key is for), WORKER_REGION, WORKER_CAPACITY,
//! SESSION_SECONDS, and LOBBY_SESSION_WORKERS_URL (the session service's
//! records door: when set, each session's record gets a greeting and its
//! token usage).

use lobby_worker::{RecordsClient, Worker, WorkerConfig};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().init();
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_owned());
    let capacity: u32 = env("WORKER_CAPACITY", "2").parse()?;
    let session_seconds: u64 = env("SESSION_SECONDS", "30").parse()?;
    let mut config = WorkerConfig::new(
        &env("LOBBY_WORKERS_URL", "https://127.0.0.1:50055"),
        &env("LOBBY_WORKER_KEY", ""),
        &env("WORKER_ID", "example-worker"),
        &env("WORKER_REGION", "local"),
        capacity,
    );
    if let Ok(path) = std::env::var("LOBBY_WORKER_CA_FILE") {
        config.ca_pem = Some(std::fs::read_to_string(path)?);
    }
    let records = match std::env::var("LOBBY_SESSION_WORKERS_URL") {
        Ok(url) => Some(RecordsClient::connect(&url, config.ca_pem.as_deref(), &config.key).await?),
        Err(_) => None,
    };
    let (worker, mut jobs) = Worker::attach(config).await?;
    while let Some(job) = jobs.recv().await {
        if worker.load() >= capacity {
            worker.reject(&job.job_id, "at capacity").await?;
            continue;
        }
        worker.accept(&job.job_id).await?;
        tracing::info!(session_id = %job.session_id, room = %job.room_url, identity = %job.agent_identity, "running a session");
        if let Some(records) = &records {
            let greeting = r#"[{"role":"assistant","content":"Hello from the example worker."}]"#;
            if let Err(e) = records
                .append_messages(&job.session_id, greeting, 0, 5)
                .await
            {
                tracing::warn!(session_id = %job.session_id, error = %e, "greeting not recorded");
            }
        }
        let worker = worker.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(session_seconds)).await;
            let _ = worker.session_ended(&job.session_id, "finished").await;
        });
    }
    Ok(())
}
