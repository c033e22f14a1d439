//! The summary job queue and each session's run state, in Redis.
//!
//! Keys (all under one hash tag, so each script touches one Cluster slot;
//! summaries are rare next to starts, so one slot holds them all):
//! - `{summaries}:jobs`: the job stream, consumer group `summarizers`;
//! - `{summaries}:dead`: jobs that ran out of attempts, with their last error;
//! - `{summaries}:run:<acct>:<sid>`: the session's current run (ids, state
//!   `running|done|failed`, attempts, last error).
//!
//! `workflowId` is stable per session; `runId` names one run.

use crate::error::ArtifactsError;
use lobby_kit::redis_conn::RedisConn;
use redis::{
    streams::{
        StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamReadOptions, StreamReadReply,
    },
    AsyncCommands, Script,
};
use sha2::{Digest, Sha256};
use std::time::Duration;

pub const STREAM: &str = "{summaries}:jobs";
pub const DEAD: &str = "{summaries}:dead";
pub const GROUP: &str = "summarizers";

pub fn run_key(account_id: &str, session_id: &str) -> String {
    format!("{{summaries}}:run:{account_id}:{session_id}")
}

/// Stable for a session: every run of its summary shares it.
pub fn workflow_id(account_id: &str, session_id: &str) -> String {
    let digest = Sha256::digest(format!("{account_id}|{session_id}"));
    format!("wf_{}", &hex::encode(digest)[..24])
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new run was queued.
    Started,
    /// A run is in flight; these are its ids.
    Running,
    /// The stored summary stands; no run was started.
    Ready,
    /// The last run was dead-lettered.
    Failed,
}

#[derive(Debug, Clone)]
pub struct RunView {
    pub outcome: Outcome,
    pub run_id: String,
    pub workflow_id: String,
    pub attempts: u32,
    pub last_error: String,
}

/// A job as a consumer received it.
#[derive(Debug, Clone)]
pub struct Job {
    pub entry_id: String,
    pub account_id: String,
    pub session_id: String,
    pub run_id: String,
    pub duration_seconds: u64,
}

impl Job {
    fn from_entry(e: &StreamId) -> Option<Self> {
        Some(Self {
            entry_id: e.id.clone(),
            account_id: e.get("account")?,
            session_id: e.get("session")?,
            run_id: e.get("run")?,
            duration_seconds: e.get("duration").unwrap_or(0),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Take,
    Ok,
    Fail,
}

#[derive(Debug, Clone)]
pub struct JobSettings {
    pub max_attempts: u32,
    /// A delivered job idle this long is claimed by another consumer: the
    /// retry delay after a failure, and how long a dead consumer's job waits.
    pub claim_idle: Duration,
    /// How long a session's run state is kept after its last change.
    pub state_ttl: Duration,
    /// A consumer idle this long with nothing pending is a process that
    /// stopped: it is removed from the group.
    pub forget_consumers_after: Duration,
}

pub struct SummaryJobs {
    conn: RedisConn,
    settings: JobSettings,
    consumer: String,
    start_run: Script,
    attempt: Script,
    forget_consumers: Script,
    /// Where the next XAUTOCLAIM scan starts.
    claim_cursor: tokio::sync::Mutex<String>,
}

impl SummaryJobs {
    pub fn new(conn: RedisConn, settings: JobSettings) -> Self {
        Self {
            conn,
            settings,
            // A restarted process is a new consumer: what the old one held
            // is claimed once idle, like any dead consumer's.
            consumer: format!("artifacts-{}", uuid::Uuid::new_v4().simple()),
            start_run: Script::new(include_str!("start_run.lua")),
            attempt: Script::new(include_str!("attempt.lua")),
            forget_consumers: Script::new(include_str!("forget_consumers.lua")),
            claim_cursor: tokio::sync::Mutex::new("0-0".to_owned()),
        }
    }

    pub fn settings(&self) -> &JobSettings {
        &self.settings
    }

    /// Creates the stream and its group if missing (from the stream's start,
    /// so jobs queued before the group existed still run).
    pub async fn ensure_group(&self) -> Result<(), ArtifactsError> {
        let mut conn = self.conn.clone();
        let created: Result<(), redis::RedisError> =
            conn.xgroup_create_mkstream(STREAM, GROUP, "0").await;
        match created {
            Ok(()) => Ok(()),
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Starts a run (`force`: always), or reports the one in flight, the
    /// stored summary, or the dead-lettered run.
    pub async fn start(
        &self,
        force: bool,
        account_id: &str,
        session_id: &str,
        duration_seconds: u64,
        summary_exists: bool,
    ) -> Result<RunView, ArtifactsError> {
        let run_id = format!("run_{}", uuid::Uuid::new_v4().simple());
        let reply: Vec<String> = self
            .start_run
            .key(run_key(account_id, session_id))
            .key(STREAM)
            .arg(if force { "1" } else { "0" })
            .arg(&run_id)
            .arg(workflow_id(account_id, session_id))
            .arg(account_id)
            .arg(session_id)
            .arg(duration_seconds)
            .arg(lobby_kit::time::now_ms())
            .arg(if summary_exists { "1" } else { "0" })
            .arg(self.settings.state_ttl.as_secs().max(1))
            .invoke_async(&mut self.conn.clone())
            .await?;
        let field = |i: usize| reply.get(i).cloned().unwrap_or_default();
        Ok(RunView {
            outcome: match field(0).as_str() {
                "started" => Outcome::Started,
                "running" => Outcome::Running,
                "ready" => Outcome::Ready,
                _ => Outcome::Failed,
            },
            run_id: field(1),
            workflow_id: field(2),
            attempts: field(3).parse().unwrap_or(0),
            last_error: field(4),
        })
    }

    /// Forgets a session's run (its queued job, if any, turns stale).
    pub async fn forget(&self, account_id: &str, session_id: &str) -> Result<(), ArtifactsError> {
        let _: () = self
            .conn
            .clone()
            .del(run_key(account_id, session_id))
            .await?;
        Ok(())
    }

    /// Jobs for this consumer: first those idle past `claim_idle` in any
    /// consumer's hands (dead or failed ones), then new ones.
    pub async fn next_batch(&self, count: usize) -> Result<Vec<Job>, ArtifactsError> {
        let mut conn = self.conn.clone();
        let mut cursor = self.claim_cursor.lock().await;
        let claimed: StreamAutoClaimReply = conn
            .xautoclaim_options(
                STREAM,
                GROUP,
                &self.consumer,
                self.settings.claim_idle.as_millis() as u64,
                cursor.as_str(),
                StreamAutoClaimOptions::default().count(count),
            )
            .await?;
        *cursor = claimed.next_stream_id.clone();
        drop(cursor);
        let mut jobs: Vec<Job> = claimed.claimed.iter().filter_map(Job::from_entry).collect();
        if jobs.len() < count {
            let fresh: StreamReadReply = conn
                .xread_options(
                    &[STREAM],
                    &[">"],
                    &StreamReadOptions::default()
                        .group(GROUP, &self.consumer)
                        .count(count - jobs.len()),
                )
                .await?;
            jobs.extend(
                fresh
                    .keys
                    .iter()
                    .flat_map(|k| k.ids.iter())
                    .filter_map(Job::from_entry),
            );
        }
        Ok(jobs)
    }

    /// Removes consumers of stopped processes (see `forget_consumers.lua`).
    pub async fn forget_stopped_consumers(&self) -> Result<u32, ArtifactsError> {
        Ok(self
            .forget_consumers
            .key(STREAM)
            .arg(GROUP)
            .arg(self.settings.forget_consumers_after.as_millis() as u64)
            .arg(&self.consumer)
            .invoke_async(&mut self.conn.clone())
            .await?)
    }

    /// One phase of an attempt (see `attempt.lua`): "go", "stale", "dead",
    /// "done" or "retry".
    pub async fn attempt(
        &self,
        phase: Phase,
        job: &Job,
        error: &str,
    ) -> Result<String, ArtifactsError> {
        Ok(self
            .attempt
            .key(run_key(&job.account_id, &job.session_id))
            .key(STREAM)
            .key(DEAD)
            .arg(match phase {
                Phase::Take => "take",
                Phase::Ok => "ok",
                Phase::Fail => "fail",
            })
            .arg(&job.entry_id)
            .arg(GROUP)
            .arg(&job.run_id)
            .arg(self.settings.max_attempts)
            .arg(lobby_kit::time::now_ms())
            .arg(error)
            .invoke_async(&mut self.conn.clone())
            .await?)
    }
}
