//! The worker registry: one hash per worker (region, capacity, reserved,
//! last heartbeat, connected) under the `{workers}` hash tag, a set of
//! workers per region, per worker the sessions holding its capacity, per
//! session its job (the worker, running or ended), and a feed of reported
//! ends. The session service reads jobs and ends through the Rooms API:
//! that is how a worker's heartbeats keep a session's lease alive, and how
//! its end report ends the session, without rooms calling anyone.

use lobby_kit::redis_conn::RedisConn;
use lobby_proto::rooms::{JobState, WorkerJob};
use redis::{AsyncCommands, Script};
use std::collections::HashMap;

fn worker_key(id: &str) -> String {
    format!("{{workers}}:worker:{id}")
}
fn sessions_key(id: &str) -> String {
    format!("{{workers}}:worker:{id}:sessions")
}
fn session_worker_key(session_id: &str) -> String {
    format!("{{workers}}:session:{session_id}")
}
fn region_key(region: &str) -> String {
    format!("{{workers}}:region:{region}")
}

/// Reported ends, oldest first (a stream, capped at about this many).
const JOB_ENDS: &str = "{workers}:job_ends";
const JOB_ENDS_CAP: u32 = 100_000;
/// A reader without a cursor starts this far back.
const JOB_ENDS_LOOKBACK_MS: i64 = 60_000;
const JOB_ENDS_PAGE: usize = 1000;

/// Worker ids become Redis keys and log fields: a fixed alphabet.
pub fn valid_worker_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerState {
    pub id: String,
    pub capacity: u32,
    pub reserved: u32,
    pub last_seen_ms: i64,
    pub connected: bool,
}

impl WorkerState {
    pub fn free(&self) -> u32 {
        self.capacity.saturating_sub(self.reserved)
    }

    fn from_fields(id: String, f: &HashMap<String, String>) -> Self {
        let num = |k: &str| f.get(k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
        Self {
            capacity: u32::try_from(num("capacity")).unwrap_or(0),
            reserved: u32::try_from(num("reserved")).unwrap_or(0),
            last_seen_ms: num("last_seen_ms"),
            connected: f.get("connected").is_some_and(|c| c == "1"),
            id,
        }
    }
}

#[derive(Clone)]
pub struct Registry {
    redis: RedisConn,
    reserve: Script,
    release: Script,
    disconnect: Script,
    job_ended: Script,
    /// A worker that has not heartbeated for this long gets no new jobs.
    pub heartbeat_expiry_ms: i64,
}

impl Registry {
    pub fn new(redis: RedisConn, heartbeat_expiry_ms: i64) -> Self {
        Self {
            redis,
            reserve: Script::new(include_str!("reserve_worker.lua")),
            release: Script::new(include_str!("release_worker.lua")),
            disconnect: Script::new(include_str!("mark_disconnected.lua")),
            job_ended: Script::new(include_str!("job_ended.lua")),
            heartbeat_expiry_ms,
        }
    }

    /// Records a (re)connected worker. Capacity held by its sessions stays
    /// held: they may still be running on it.
    pub async fn register(
        &self,
        id: &str,
        region: &str,
        capacity: u32,
        labels: &HashMap<String, String>,
        connection: &str,
        now_ms: i64,
    ) -> Result<(), redis::RedisError> {
        let mut conn = self.redis.clone();
        let labels = serde_json::to_string(labels).unwrap_or_else(|_| "{}".into());
        let () = redis::pipe()
            .atomic()
            .hset_multiple(
                worker_key(id),
                &[
                    ("region", region.to_owned()),
                    ("capacity", capacity.to_string()),
                    ("labels", labels),
                    ("last_seen_ms", now_ms.to_string()),
                    ("connected", "1".to_owned()),
                    ("connection", connection.to_owned()),
                ],
            )
            .ignore()
            .sadd(region_key(region), id)
            .ignore()
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Records a heartbeat: while they come, the worker's sessions count as
    /// running and the session service renews their leases.
    pub async fn heartbeat(
        &self,
        id: &str,
        load: u32,
        now_ms: i64,
    ) -> Result<(), redis::RedisError> {
        let mut conn = self.redis.clone();
        let () = conn
            .hset_multiple(
                worker_key(id),
                &[
                    ("last_seen_ms", now_ms.to_string()),
                    ("load", load.to_string()),
                ],
            )
            .await?;
        Ok(())
    }

    /// The worker's report that it ended `session_id`: frees its capacity
    /// and feeds the end to the session service. Only the worker holding
    /// the session may report it; returns whether the report was taken.
    pub async fn job_ended(
        &self,
        worker_id: &str,
        session_id: &str,
        reason: &str,
        now_ms: i64,
    ) -> Result<bool, redis::RedisError> {
        let mut conn = self.redis.clone();
        let taken: i64 = self
            .job_ended
            .key(worker_key(worker_id))
            .key(sessions_key(worker_id))
            .key(session_worker_key(session_id))
            .key(JOB_ENDS)
            .arg(session_id)
            .arg(worker_id)
            .arg(now_ms)
            .arg(reason)
            .arg(JOB_ENDS_CAP)
            .invoke_async(&mut conn)
            .await?;
        Ok(taken == 1)
    }

    /// Each session's job: running on a worker that still heartbeats, ended
    /// by its worker's report, or gone (no job, or its worker went silent).
    pub async fn jobs(
        &self,
        session_ids: &[String],
        now_ms: i64,
    ) -> Result<Vec<WorkerJob>, redis::RedisError> {
        let mut conn = self.redis.clone();
        let mut jobs = Vec::with_capacity(session_ids.len());
        let mut workers: HashMap<String, WorkerState> = HashMap::new();
        for sid in session_ids {
            let f: HashMap<String, String> = conn.hgetall(session_worker_key(sid)).await?;
            let worker_id = f.get("worker").cloned().unwrap_or_default();
            let state = match f.get("state").map(String::as_str) {
                Some("ended") => JobState::Ended,
                Some("running") => {
                    if !workers.contains_key(&worker_id) {
                        if let Some(w) = self.state(&worker_id).await? {
                            workers.insert(worker_id.clone(), w);
                        }
                    }
                    let alive = workers.get(&worker_id).is_some_and(|w| {
                        w.connected && w.last_seen_ms + self.heartbeat_expiry_ms >= now_ms
                    });
                    if alive {
                        JobState::Running
                    } else {
                        JobState::Gone
                    }
                }
                _ => JobState::Gone,
            };
            jobs.push(WorkerJob {
                session_id: sid.clone(),
                state: state as i32,
                worker_id,
                ended_at_ms: f
                    .get("ended_at_ms")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
                reason: f.get("reason").cloned().unwrap_or_default(),
            });
        }
        Ok(jobs)
    }

    /// Ends reported after `cursor` (a stream id; empty: the last minute),
    /// and the cursor to ask from next.
    pub async fn job_ends(
        &self,
        cursor: &str,
        now_ms: i64,
    ) -> Result<(Vec<WorkerJob>, String), redis::RedisError> {
        let mut conn = self.redis.clone();
        let start = if cursor.is_empty() {
            format!("{}-0", (now_ms - JOB_ENDS_LOOKBACK_MS).max(0))
        } else {
            // Exclusive: what the previous page ended with is not repeated.
            format!("({cursor}")
        };
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(JOB_ENDS)
            .arg(&start)
            .arg("+")
            .arg("COUNT")
            .arg(JOB_ENDS_PAGE)
            .query_async(&mut conn)
            .await?;
        let mut next = if cursor.is_empty() {
            format!("{}-0", (now_ms - JOB_ENDS_LOOKBACK_MS).max(0))
        } else {
            cursor.to_owned()
        };
        let mut ended = Vec::with_capacity(reply.ids.len());
        for entry in reply.ids {
            let text = |k: &str| entry.get::<String>(k).unwrap_or_default();
            ended.push(WorkerJob {
                session_id: text("session_id"),
                state: JobState::Ended as i32,
                worker_id: text("worker_id"),
                ended_at_ms: text("ended_at_ms").parse().unwrap_or(0),
                reason: text("reason"),
            });
            next = entry.id;
        }
        Ok((ended, next))
    }

    /// Marks the worker gone if `connection` is still its current one;
    /// returns whether it did.
    pub async fn disconnected(
        &self,
        id: &str,
        connection: &str,
    ) -> Result<bool, redis::RedisError> {
        let mut conn = self.redis.clone();
        let marked: i64 = self
            .disconnect
            .key(worker_key(id))
            .arg(connection)
            .invoke_async(&mut conn)
            .await?;
        Ok(marked == 1)
    }

    /// The region's workers that can take a job now, least loaded first.
    pub async fn candidates(
        &self,
        region: &str,
        now_ms: i64,
    ) -> Result<Vec<WorkerState>, redis::RedisError> {
        let mut conn = self.redis.clone();
        let ids: Vec<String> = conn.smembers(region_key(region)).await?;
        let mut workers = Vec::with_capacity(ids.len());
        for id in ids {
            let f: HashMap<String, String> = conn.hgetall(worker_key(&id)).await?;
            let state = WorkerState::from_fields(id, &f);
            if state.connected
                && state.free() > 0
                && state.last_seen_ms + self.heartbeat_expiry_ms >= now_ms
            {
                workers.push(state);
            }
        }
        // Least loaded first: the smallest share of capacity in use.
        workers.sort_by(|a, b| {
            (u64::from(a.reserved) * u64::from(b.capacity))
                .cmp(&(u64::from(b.reserved) * u64::from(a.capacity)))
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(workers)
    }

    pub async fn reserve(
        &self,
        worker_id: &str,
        session_id: &str,
        now_ms: i64,
    ) -> Result<bool, redis::RedisError> {
        let mut conn = self.redis.clone();
        let ok: i64 = self
            .reserve
            .key(worker_key(worker_id))
            .key(sessions_key(worker_id))
            .key(session_worker_key(session_id))
            .arg(now_ms)
            .arg(self.heartbeat_expiry_ms)
            .arg(session_id)
            .arg(worker_id)
            .invoke_async(&mut conn)
            .await?;
        Ok(ok == 1)
    }

    /// Frees the capacity `session_id` holds. `worker_id` may be empty (a
    /// start that died before recording it): the session's entry says.
    pub async fn release(
        &self,
        worker_id: &str,
        session_id: &str,
    ) -> Result<bool, redis::RedisError> {
        let mut conn = self.redis.clone();
        let worker_id = if worker_id.is_empty() {
            let found: Option<String> = conn.hget(session_worker_key(session_id), "worker").await?;
            match found {
                Some(w) => w,
                None => return Ok(false),
            }
        } else {
            worker_id.to_owned()
        };
        let held: i64 = self
            .release
            .key(worker_key(&worker_id))
            .key(sessions_key(&worker_id))
            .key(session_worker_key(session_id))
            .arg(session_id)
            .invoke_async(&mut conn)
            .await?;
        Ok(held == 1)
    }

    pub async fn state(&self, worker_id: &str) -> Result<Option<WorkerState>, redis::RedisError> {
        let mut conn = self.redis.clone();
        let f: HashMap<String, String> = conn.hgetall(worker_key(worker_id)).await?;
        Ok((!f.is_empty()).then(|| WorkerState::from_fields(worker_id.to_owned(), &f)))
    }
}
