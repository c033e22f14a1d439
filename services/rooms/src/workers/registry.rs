//! The worker registry: per worker, a hash (region, capacity, reserved, last
//! heartbeat, connected) and its jobs (session id → running or ended), both
//! under the worker's own hash tag `{w:<id>}`, so workers spread over a
//! Redis Cluster's slots and a start writes only its worker's keys; beside
//! them, the set of workers per region and of all workers (written when a
//! worker registers), and a feed of reported ends. The session service reads
//! jobs and ends through the Rooms API: that is how a worker's heartbeats
//! keep a session's lease alive, and how its end report ends the session,
//! without rooms calling anyone.

use lobby_kit::redis_conn::RedisConn;
use lobby_proto::rooms::{JobState, WorkerJob, WorkerJobRef};
use redis::{AsyncCommands, Script};
use std::collections::HashMap;

fn worker_key(id: &str) -> String {
    format!("{{w:{id}}}:worker")
}
fn jobs_key(id: &str) -> String {
    format!("{{w:{id}}}:jobs")
}
fn region_key(region: &str) -> String {
    format!("workers:region:{region}")
}
/// Every worker that ever registered: where a session whose worker is not
/// known is looked for.
const ALL_WORKERS: &str = "workers:all";

/// Reported ends, oldest first (a stream, capped at about this many).
const JOB_ENDS: &str = "workers:job_ends";
const JOB_ENDS_CAP: u32 = 100_000;
/// A reader without a cursor starts this far back.
const JOB_ENDS_LOOKBACK_MS: i64 = 60_000;
const JOB_ENDS_PAGE: usize = 1000;

/// Worker ids become Redis keys and log fields: a fixed alphabet.
pub use lobby_proto::valid_worker_id;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerState {
    pub id: String,
    pub capacity: u32,
    pub reserved: u32,
    pub last_seen_ms: i64,
    pub connected: bool,
    /// The account whose sessions it serves; empty for a pool worker,
    /// which serves every account (from its key, never from the worker).
    pub account_id: String,
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
            account_id: f.get("account_id").cloned().unwrap_or_default(),
            id,
        }
    }
}

/// What a region's live workers can run, and what they run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegionCapacity {
    pub workers: u64,
    pub capacity: u64,
    pub reserved: u64,
}

/// Whose sessions a worker may run, from its key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerScope {
    /// One account's sessions only; empty for a pool worker.
    pub account_id: String,
    pub pool: String,
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

    /// Records a (re)connected worker: what it said (`worker`) and what its
    /// key says it serves. Capacity held by its sessions stays held: they
    /// may still be running on it.
    pub async fn register(
        &self,
        worker: &lobby_proto::workers::Register,
        serves: &WorkerScope,
        connection: &str,
        now_ms: i64,
    ) -> Result<(), redis::RedisError> {
        let (id, region) = (&worker.worker_id, &worker.region);
        let mut conn = self.redis.clone();
        let labels = serde_json::to_string(&worker.labels).unwrap_or_else(|_| "{}".into());
        // Three slots on a Cluster, so three commands. The sets first: a
        // worker listed before its hash is written is skipped as unknown,
        // never offered a job.
        let () = conn.sadd(ALL_WORKERS, id).await?;
        let () = conn.sadd(region_key(region), id).await?;
        let () = conn
            .hset_multiple(
                worker_key(id),
                &[
                    ("region", region.to_owned()),
                    ("capacity", worker.capacity.to_string()),
                    ("labels", labels),
                    ("last_seen_ms", now_ms.to_string()),
                    ("connected", "1".to_owned()),
                    ("connection", connection.to_owned()),
                    ("account_id", serves.account_id.clone()),
                    ("pool", serves.pool.clone()),
                ],
            )
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
    /// and feeds the end to the session service. Only the worker running
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
            .key(jobs_key(worker_id))
            .arg(session_id)
            .arg(now_ms)
            .arg(reason)
            .invoke_async(&mut conn)
            .await?;
        if taken == 1 {
            // If this is lost, the job still reads ended: the session's next
            // lease check ends it.
            let _: String = redis::cmd("XADD")
                .arg(JOB_ENDS)
                .arg("MAXLEN")
                .arg("~")
                .arg(JOB_ENDS_CAP)
                .arg("*")
                .arg("session_id")
                .arg(session_id)
                .arg("worker_id")
                .arg(worker_id)
                .arg("ended_at_ms")
                .arg(now_ms)
                .arg("reason")
                .arg(reason)
                .query_async(&mut conn)
                .await?;
        }
        Ok(taken == 1)
    }

    /// Which worker has `session_id` among its jobs, when the session's
    /// record does not say (a start that crashed before recording it).
    async fn find_worker(&self, session_id: &str) -> Result<Option<String>, redis::RedisError> {
        let mut conn = self.redis.clone();
        let workers: Vec<String> = conn.smembers(ALL_WORKERS).await?;
        for worker in workers {
            let held: bool = conn.hexists(jobs_key(&worker), session_id).await?;
            if held {
                return Ok(Some(worker));
            }
        }
        Ok(None)
    }

    /// Each session's job: running on a worker that still heartbeats, ended
    /// by its worker's report, or gone (no job, or its worker went silent).
    pub async fn jobs(
        &self,
        refs: &[WorkerJobRef],
        now_ms: i64,
    ) -> Result<Vec<WorkerJob>, redis::RedisError> {
        let mut conn = self.redis.clone();
        let mut jobs = Vec::with_capacity(refs.len());
        let mut workers: HashMap<String, Option<WorkerState>> = HashMap::new();
        for r in refs {
            let worker_id = if r.worker_id.is_empty() {
                self.find_worker(&r.session_id).await?.unwrap_or_default()
            } else {
                r.worker_id.clone()
            };
            let job: Option<String> = if worker_id.is_empty() {
                None
            } else {
                conn.hget(jobs_key(&worker_id), &r.session_id).await?
            };
            let mut out = WorkerJob {
                session_id: r.session_id.clone(),
                state: JobState::Gone as i32,
                worker_id: worker_id.clone(),
                ended_at_ms: 0,
                reason: String::new(),
            };
            match job.as_deref().map(parse_job) {
                Some(Job::Ended { at_ms, reason }) => {
                    out.state = JobState::Ended as i32;
                    out.ended_at_ms = at_ms;
                    out.reason = reason;
                }
                Some(Job::Running) => {
                    if !workers.contains_key(&worker_id) {
                        workers.insert(worker_id.clone(), self.state(&worker_id).await?);
                    }
                    let alive = workers
                        .get(&worker_id)
                        .and_then(Option::as_ref)
                        .is_some_and(|w| {
                            w.connected && w.last_seen_ms + self.heartbeat_expiry_ms >= now_ms
                        });
                    if alive {
                        out.state = JobState::Running as i32;
                    }
                }
                None => {}
            }
            jobs.push(out);
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
        let lookback = format!("{}-0", (now_ms - JOB_ENDS_LOOKBACK_MS).max(0));
        let start = if cursor.is_empty() {
            lookback.clone()
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
            lookback
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

    /// The region's live workers (connected, heartbeat fresh): how many,
    /// their capacity, and how much of it jobs hold.
    pub async fn region_capacity(
        &self,
        region: &str,
        now_ms: i64,
    ) -> Result<RegionCapacity, redis::RedisError> {
        let mut conn = self.redis.clone();
        let ids: Vec<String> = conn.smembers(region_key(region)).await?;
        let mut total = RegionCapacity::default();
        for id in ids {
            let f: HashMap<String, String> = conn.hgetall(worker_key(&id)).await?;
            let state = WorkerState::from_fields(id, &f);
            if state.connected && state.last_seen_ms + self.heartbeat_expiry_ms >= now_ms {
                total.workers += 1;
                total.capacity += u64::from(state.capacity);
                total.reserved += u64::from(state.reserved.min(state.capacity));
            }
        }
        Ok(total)
    }

    /// The region's workers that can take a job now, least loaded first.
    pub async fn candidates(
        &self,
        region: &str,
        account_id: &str,
        now_ms: i64,
    ) -> Result<Vec<WorkerState>, redis::RedisError> {
        let mut conn = self.redis.clone();
        let ids: Vec<String> = conn.smembers(region_key(region)).await?;
        let mut workers = Vec::with_capacity(ids.len());
        for id in ids {
            let f: HashMap<String, String> = conn.hgetall(worker_key(&id)).await?;
            let state = WorkerState::from_fields(id, &f);
            if state.connected
                && (state.account_id.is_empty() || state.account_id == account_id)
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
            .key(jobs_key(worker_id))
            .arg(now_ms)
            .arg(self.heartbeat_expiry_ms)
            .arg(session_id)
            .invoke_async(&mut conn)
            .await?;
        Ok(ok == 1)
    }

    /// Forgets the session's job, freeing the capacity it holds. `worker_id`
    /// may be empty (a start that died before recording it): it is looked for.
    pub async fn release(
        &self,
        worker_id: &str,
        session_id: &str,
    ) -> Result<bool, redis::RedisError> {
        let worker_id = if worker_id.is_empty() {
            match self.find_worker(session_id).await? {
                Some(w) => w,
                None => return Ok(false),
            }
        } else {
            worker_id.to_owned()
        };
        let held: i64 = self
            .release
            .key(worker_key(&worker_id))
            .key(jobs_key(&worker_id))
            .arg(session_id)
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(held == 1)
    }

    pub async fn state(&self, worker_id: &str) -> Result<Option<WorkerState>, redis::RedisError> {
        let mut conn = self.redis.clone();
        let f: HashMap<String, String> = conn.hgetall(worker_key(worker_id)).await?;
        Ok((!f.is_empty()).then(|| WorkerState::from_fields(worker_id.to_owned(), &f)))
    }
}

/// A job as stored in a worker's jobs hash.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Job {
    Running,
    Ended { at_ms: i64, reason: String },
}

fn parse_job(stored: &str) -> Job {
    match stored.strip_prefix("ended|") {
        None => Job::Running,
        Some(rest) => {
            let (at, reason) = rest.split_once('|').unwrap_or((rest, ""));
            Job::Ended {
                at_ms: at.parse().unwrap_or(0),
                reason: reason.to_owned(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_read_back_as_written_by_the_scripts() {
        assert_eq!(parse_job("running"), Job::Running);
        assert_eq!(
            parse_job("ended|1700|user hung up | twice"),
            Job::Ended {
                at_ms: 1700,
                reason: "user hung up | twice".into()
            }
        );
    }

    #[test]
    fn each_worker_has_its_own_slot() {
        assert_eq!(worker_key("a"), "{w:a}:worker");
        assert_eq!(jobs_key("a"), "{w:a}:jobs");
    }
}
