//! Job dispatch across rooms replicas.
//!
//! A worker's stream lives on one replica; the start that needs a worker may
//! run on another. Jobs go out on the Redis channel `workers:jobs:<worker>`,
//! which every replica hears and the one holding that worker's stream
//! forwards; answers come back on `workers:replies`, matched to the waiting
//! start by job id and accepted only from the worker the job was offered to.
//!
//! One loop forwards every job this replica hears, so it never waits on a
//! worker: a worker whose stream is full (it stopped reading) is dropped.

use futures::StreamExt;
use lobby_kit::backoff::Backoff;
use lobby_kit::redis_conn::RedisConn;
use lobby_proto::workers::{server_message, JobAssignment, ServerMessage};
use prost::Message;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::sync::{mpsc, oneshot};
use tonic::Status;

const JOBS: &str = "workers:jobs:";
const REPLIES: &str = "workers:replies";

pub type WorkerSender = mpsc::Sender<Result<ServerMessage, Status>>;

/// A worker's answer to a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    Accepted,
    Rejected(String),
    /// No answer before the deadline (or the worker is gone).
    TimedOut,
}

#[derive(Serialize, Deserialize)]
struct ReplyMessage {
    job_id: String,
    /// Who answered: only the worker offered the job may.
    worker_id: String,
    answer: Answer,
}

/// A worker stream this replica holds.
struct LocalStream {
    connection: u64,
    sender: WorkerSender,
    /// Dropped with the entry: tells the stream's reader to stop.
    _dropped: oneshot::Sender<()>,
}

/// A start waiting for the answer of the worker it offered a job to.
struct Waiting {
    worker_id: String,
    deliver: oneshot::Sender<Answer>,
}

#[derive(Clone)]
pub struct Dispatcher {
    redis: RedisConn,
    /// Streams held by this replica: worker id → (connection id, sender).
    local: Arc<Mutex<HashMap<String, LocalStream>>>,
    /// Starts waiting for an answer: job id → who may answer, and where to.
    pending: Arc<Mutex<HashMap<String, Waiting>>>,
}

impl Dispatcher {
    /// Subscribes to the job and reply channels (again each time Redis
    /// comes back) and returns the dispatcher.
    pub fn start(redis: lobby_kit::redis_conn::Redis) -> Self {
        let dispatcher = Self {
            redis: redis.connection(),
            local: Arc::default(),
            pending: Arc::default(),
        };
        let listener = dispatcher.clone();
        tokio::spawn(async move {
            let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
            loop {
                redis.readiness().wait().await;
                match listener.listen(&redis).await {
                    Ok(()) => {
                        backoff.reset();
                        tracing::warn!("worker dispatch subscription ended; resubscribing");
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "worker dispatch subscription lost; resubscribing")
                    }
                }
                backoff.wait().await;
            }
        });
        dispatcher
    }

    async fn listen(&self, redis: &lobby_kit::redis_conn::Redis) -> Result<(), redis::RedisError> {
        let jobs = format!("{JOBS}*");
        let messages = redis.subscribe(&[REPLIES], &[&jobs]).await?;
        let mut messages = std::pin::pin!(messages);
        while let Some(msg) = messages.next().await {
            let channel = msg.get_channel_name().to_owned();
            if channel == REPLIES {
                if let Ok(reply) = serde_json::from_slice::<ReplyMessage>(msg.get_payload_bytes()) {
                    self.deliver(reply);
                }
            } else if let Some(worker_id) = channel.strip_prefix(JOBS) {
                let held = self
                    .local
                    .lock()
                    .ok()
                    .and_then(|l| l.get(worker_id).map(|s| (s.connection, s.sender.clone())));
                if let (Some((connection, sender)), Ok(job)) =
                    (held, JobAssignment::decode(msg.get_payload_bytes()))
                {
                    let job = Ok(ServerMessage {
                        message: Some(server_message::Message::Job(job)),
                    });
                    if let Err(e) = sender.try_send(job) {
                        // Full: it has not read its last jobs. Dropping its
                        // sender ends its stream; it can attach again.
                        tracing::warn!(worker_id, error = %e, "worker not reading its job stream; dropped");
                        self.detach(worker_id, connection);
                    }
                }
            }
        }
        Ok(())
    }

    /// This replica now holds `worker_id`'s stream (a reconnect replaces
    /// the old one). The receiver resolves once the stream is no longer
    /// held: replaced, detached, or dropped for not reading.
    pub fn attach(
        &self,
        worker_id: &str,
        connection: u64,
        sender: WorkerSender,
    ) -> oneshot::Receiver<()> {
        let (dropped, released) = oneshot::channel();
        if let Ok(mut local) = self.local.lock() {
            local.insert(
                worker_id.to_owned(),
                LocalStream {
                    connection,
                    sender,
                    _dropped: dropped,
                },
            );
        }
        released
    }

    /// Hands a reply to the start waiting for it, if it came from the
    /// worker that start offered the job to.
    fn deliver(&self, reply: ReplyMessage) {
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        let from_offered = pending
            .get(&reply.job_id)
            .is_some_and(|w| w.worker_id == reply.worker_id);
        if !from_offered {
            return;
        }
        if let Some(waiting) = pending.remove(&reply.job_id) {
            let _ = waiting.deliver.send(reply.answer);
        }
    }

    /// Forgets the stream, unless a newer connection of the worker replaced it.
    pub fn detach(&self, worker_id: &str, connection: u64) {
        if let Ok(mut local) = self.local.lock() {
            if local
                .get(worker_id)
                .is_some_and(|s| s.connection == connection)
            {
                local.remove(worker_id);
            }
        }
    }

    /// Sends `job` to `worker_id` and waits for its answer until `timeout`.
    pub async fn offer(
        &self,
        worker_id: &str,
        job: JobAssignment,
        timeout: Duration,
    ) -> Result<Answer, redis::RedisError> {
        let (tx, rx) = oneshot::channel();
        let job_id = job.job_id.clone();
        if let Ok(mut pending) = self.pending.lock() {
            pending.insert(
                job_id.clone(),
                Waiting {
                    worker_id: worker_id.to_owned(),
                    deliver: tx,
                },
            );
        }
        let mut conn = self.redis.clone();
        let published: Result<i64, _> = conn
            .publish(format!("{JOBS}{worker_id}"), job.encode_to_vec())
            .await;
        let answer = match published {
            Ok(_) => tokio::time::timeout(timeout, rx)
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or(Answer::TimedOut),
            Err(e) => {
                self.forget(&job_id);
                return Err(e);
            }
        };
        self.forget(&job_id);
        Ok(answer)
    }

    fn forget(&self, job_id: &str) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.remove(job_id);
        }
    }

    /// Delivers `worker_id`'s answer to whichever replica is waiting for it.
    pub async fn answer(
        &self,
        worker_id: &str,
        job_id: &str,
        answer: Answer,
    ) -> Result<(), redis::RedisError> {
        let reply = ReplyMessage {
            job_id: job_id.to_owned(),
            worker_id: worker_id.to_owned(),
            answer,
        };
        let mut conn = self.redis.clone();
        let payload = serde_json::to_vec(&reply).unwrap_or_default();
        let _: i64 = conn.publish(REPLIES, payload).await?;
        Ok(())
    }
}
