//! The worker registry: one hash per worker (region, capacity, reserved,
//! last heartbeat, connected) under the `{workers}` hash tag, a set of
//! workers per region, per worker the sessions holding its capacity, and per
//! session the worker it holds (so a release after a crash finds it).

use redis::{aio::ConnectionManager, AsyncCommands, Script};
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

/// Leases of worker-run sessions, scored by when they run out. The session
/// service owns this index (and its reaper); heartbeats push it forward.
const SESSION_LEASES: &str = "sessions:leases";

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
    redis: ConnectionManager,
    reserve: Script,
    release: Script,
    disconnect: Script,
    /// A worker that has not heartbeated for this long gets no new jobs.
    pub heartbeat_expiry_ms: i64,
}

impl Registry {
    pub fn new(redis: ConnectionManager, heartbeat_expiry_ms: i64) -> Self {
        Self {
            redis,
            reserve: Script::new(include_str!("reserve_worker.lua")),
            release: Script::new(include_str!("release_worker.lua")),
            disconnect: Script::new(include_str!("mark_disconnected.lua")),
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

    /// Records a heartbeat and renews the leases of the worker's sessions
    /// (only those still indexed: `XX` never brings back an ended one).
    pub async fn heartbeat(
        &self,
        id: &str,
        load: u32,
        now_ms: i64,
        lease_ms: i64,
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
        let sessions: Vec<String> = conn.smembers(sessions_key(id)).await?;
        if !sessions.is_empty() {
            let mut renew = redis::pipe();
            for sid in &sessions {
                renew
                    .cmd("ZADD")
                    .arg(SESSION_LEASES)
                    .arg("XX")
                    .arg(now_ms + lease_ms)
                    .arg(sid)
                    .ignore();
            }
            let () = renew.query_async(&mut conn).await?;
        }
        Ok(())
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
            let found: Option<String> = conn.get(session_worker_key(session_id)).await?;
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
