//! A small worker: takes jobs while it has room, "runs" each session for a
//! while, then reports its end. A real worker joins `job.room_url` with
//! `job.agent_token` and runs the avatar there.
//!
//! LOBBY_WORKERS_URL, LOBBY_WORKER_CA_FILE (the door's CA, when private),
//! LOBBY_WORKER_KEY (this worker's wkr_ key), WORKER_ID (the id the key is for), WORKER_REGION, WORKER_CAPACITY,
//! SESSION_SECONDS, and LOBBY_SESSION_WORKERS_URL (the session service's
//! door: when set, each session's record gets a greeting and its token
//! usage, and at its end its transcript and audio are uploaded).

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
        let (worker, records) = (worker.clone(), records.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(session_seconds)).await;
            let _ = worker.session_ended(&job.session_id, "finished").await;
            // The session's artifacts, after its end: what was said, and
            // what it sounded like (here a tone as long as the session).
            if let Some(records) = records {
                let transcript = serde_json::json!({"messages": [
                    {"role": "assistant", "content": "Hello from the example worker. How can I help you today?"},
                ]});
                if let Err(e) = records
                    .upload_transcript(&job.session_id, &transcript)
                    .await
                {
                    tracing::warn!(session_id = %job.session_id, error = %e, "transcript not uploaded");
                }
                let audio = std::io::Cursor::new(tone_wav(session_seconds.min(600) as u32));
                if let Err(e) = records.upload_audio(&job.session_id, audio).await {
                    tracing::warn!(session_id = %job.session_id, error = %e, "audio not uploaded");
                }
            }
        });
    }
    Ok(())
}

/// A 16 kHz mono 16-bit PCM WAV of a 440 Hz tone, `seconds` long.
fn tone_wav(seconds: u32) -> Vec<u8> {
    let rate = 16_000u32;
    let samples = rate * seconds;
    let data_len = samples * 2;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes()); // fmt chunk size
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes()); // bytes per second
    out.extend_from_slice(&2u16.to_le_bytes()); // block align
    out.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..samples {
        let t = i as f32 / rate as f32;
        let v = (t * 440.0 * std::f32::consts::TAU).sin() * 8_000.0;
        out.extend_from_slice(&(v as i16).to_le_bytes());
    }
    out
}
