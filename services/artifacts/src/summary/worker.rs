//! The summary consumer every artifacts replica runs: take a job, read the
//! transcript, summarize, store `summary.json`, settle the attempt.

use crate::{
    error::ArtifactsError,
    store::{object_key, ArtifactStore},
    summary::{
        jobs::{Job, Phase, SummaryJobs},
        summarizer::Summarizer,
    },
};
use bytes::Bytes;
use lobby_proto::artifacts::ArtifactKind;
use std::{sync::Arc, time::Duration};

/// Jobs one replica runs at once.
const BATCH: usize = 4;

pub async fn run(
    jobs: Arc<SummaryJobs>,
    store: ArtifactStore,
    summarizer: Arc<Summarizer>,
    poll: Duration,
) {
    let mut group_ready = false;
    let mut last_cleanup = tokio::time::Instant::now();
    loop {
        if group_ready && last_cleanup.elapsed() >= jobs.settings().forget_consumers_after / 2 {
            last_cleanup = tokio::time::Instant::now();
            match jobs.forget_stopped_consumers().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(consumers = n, "consumers of stopped processes removed"),
                Err(e) => tracing::warn!(error = %e, "removing stopped consumers failed"),
            }
        }
        if !group_ready {
            match jobs.ensure_group().await {
                Ok(()) => group_ready = true,
                Err(e) => {
                    tracing::warn!(error = %e, "summary job group not ready; retrying");
                    tokio::time::sleep(poll.max(Duration::from_secs(1))).await;
                    continue;
                }
            }
        }
        let batch = match jobs.next_batch(BATCH).await {
            Ok(batch) => batch,
            Err(e) => {
                // The group is gone after a Redis flush or restart: recreate it.
                group_ready = false;
                tracing::warn!(error = %e, "reading summary jobs failed; retrying");
                tokio::time::sleep(poll.max(Duration::from_secs(1))).await;
                continue;
            }
        };
        if batch.is_empty() {
            tokio::time::sleep(poll).await;
            continue;
        }
        futures::future::join_all(
            batch
                .iter()
                .map(|job| process(&jobs, &store, &summarizer, job)),
        )
        .await;
    }
}

async fn process(jobs: &SummaryJobs, store: &ArtifactStore, summarizer: &Summarizer, job: &Job) {
    match jobs.attempt(Phase::Take, job, "").await {
        Ok(go) if go == "go" => {}
        Ok(settled) => {
            if settled == "dead" {
                tracing::warn!(
                    session = job.session_id,
                    run = job.run_id,
                    "summary job dead-lettered"
                );
            }
            return;
        }
        Err(e) => {
            // Left pending: claimed again once idle.
            tracing::warn!(error = %e, "summary job not taken");
            return;
        }
    }
    let result = summarize(store, summarizer, job).await;
    let (phase, error) = match &result {
        Ok(()) => (Phase::Ok, String::new()),
        Err(e) => (Phase::Fail, e.clone()),
    };
    match jobs.attempt(phase, job, &error).await {
        Ok(outcome) => tracing::info!(
            session = job.session_id,
            run = job.run_id,
            outcome,
            error,
            "summary attempt settled"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "summary attempt not settled; it will be claimed again")
        }
    }
}

async fn summarize(
    store: &ArtifactStore,
    summarizer: &Summarizer,
    job: &Job,
) -> Result<(), String> {
    let transcript_key = object_key(
        &job.account_id,
        &job.session_id,
        ArtifactKind::ConversationJson,
    )
    .map_err(|e| e.to_string())?;
    let raw = match store.get(&transcript_key).await {
        Ok(raw) => raw,
        Err(ArtifactsError::NotFound(_)) => {
            return Err(format!(
                "conversation.json not found for session {}",
                job.session_id
            ))
        }
        Err(e) => return Err(e.to_string()),
    };
    let transcript: serde_json::Value =
        serde_json::from_slice(&raw).map_err(|e| format!("conversation.json is not JSON: {e}"))?;
    let duration = (job.duration_seconds > 0).then_some(job.duration_seconds);
    let summary = summarizer
        .summarize(&job.session_id, &transcript, duration)
        .await
        .map_err(|e| e.to_string())?;
    let body = serde_json::to_vec(&summary).map_err(|e| e.to_string())?;
    let key = object_key(&job.account_id, &job.session_id, ArtifactKind::SummaryJson)
        .map_err(|e| e.to_string())?;
    store
        .put(&key, Bytes::from(body))
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}
