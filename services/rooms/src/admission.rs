//! Admission: Redis-tracked semaphores per account and per agent.
//!
//! A slot is a member of a sorted set scored by its lease deadline, taken from
//! Redis `TIME` so that replicas with skewed clocks agree. Expired leases are
//! dropped by the admission script itself, so a crashed holder can never keep
//! a slot past its lease.

use redis::{aio::ConnectionManager, Script};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Account,
    Agent,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Account => "account",
            Self::Agent => "agent",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Admitted { lease_deadline_ms: i64 },
    Refused(Refusal),
}

/// Which limit refused a start and when its earliest lease runs out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub scope: Scope,
    pub limit: u32,
    pub in_use: u32,
    pub retry_after_ms: u64,
}

/// The slots one session takes.
#[derive(Debug, Clone, Copy)]
pub struct SlotRequest<'a> {
    pub session_id: &'a str,
    pub account_id: &'a str,
    pub agent_id: &'a str,
}

impl SlotRequest<'_> {
    fn keys(&self) -> [String; 2] {
        [
            account_slots_key(self.account_id),
            format!("{{{}}}:agent:{}:slots", self.account_id, self.agent_id),
        ]
    }
}

fn account_slots_key(account_id: &str) -> String {
    format!("{{{account_id}}}:slots")
}

#[derive(Clone)]
pub struct Semaphores {
    redis: ConnectionManager,
    admit: Script,
    release: Script,
    active: Script,
}

impl Semaphores {
    pub fn new(redis: ConnectionManager) -> Self {
        Self {
            redis,
            admit: Script::new(include_str!("admit.lua")),
            release: Script::new(include_str!("release.lua")),
            active: Script::new(include_str!("active_sessions.lua")),
        }
    }

    /// The SHA1 of the admission script, for benchmarks that call it raw.
    pub fn admit_script_hash(&self) -> &str {
        self.admit.get_hash()
    }

    pub async fn admit(
        &self,
        slot: SlotRequest<'_>,
        lease_ms: u64,
        account_limit: u32,
        agent_limit: u32,
    ) -> Result<Admission, redis::RedisError> {
        let mut conn = self.redis.clone();
        let [account_key, agent_key] = slot.keys();
        let reply: Vec<redis::Value> = self
            .admit
            .key(account_key)
            .key(agent_key)
            .arg(slot.session_id)
            .arg(lease_ms)
            .arg(account_limit)
            .arg(agent_limit)
            .invoke_async(&mut conn)
            .await?;
        parse_admission(&reply).ok_or_else(|| {
            redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "admission script returned an unexpected reply",
            ))
        })
    }

    /// Returns whether the session held a slot.
    pub async fn release(&self, slot: SlotRequest<'_>) -> Result<bool, redis::RedisError> {
        let mut conn = self.redis.clone();
        let [account_key, agent_key] = slot.keys();
        let held: i64 = self
            .release
            .key(account_key)
            .key(agent_key)
            .arg(slot.session_id)
            .invoke_async(&mut conn)
            .await?;
        Ok(held == 1)
    }

    pub async fn active_sessions(&self, account_id: &str) -> Result<u32, redis::RedisError> {
        let mut conn = self.redis.clone();
        self.active
            .key(account_slots_key(account_id))
            .invoke_async(&mut conn)
            .await
    }
}

fn parse_admission(reply: &[redis::Value]) -> Option<Admission> {
    use redis::Value;
    let int = |v: &Value| match v {
        Value::Int(i) => Some(*i),
        _ => None,
    };
    match reply {
        [first, deadline] if int(first) == Some(1) => Some(Admission::Admitted {
            lease_deadline_ms: int(deadline)?,
        }),
        [first, scope, limit, in_use, retry] if int(first) == Some(0) => {
            let scope = match scope {
                Value::BulkString(b) if b == b"agent" => Scope::Agent,
                _ => Scope::Account,
            };
            Some(Admission::Refused(Refusal {
                scope,
                limit: u32::try_from(int(limit)?).ok()?,
                in_use: u32::try_from(int(in_use)?).ok()?,
                retry_after_ms: u64::try_from(int(retry)?).ok()?,
            }))
        }
        _ => None,
    }
}
