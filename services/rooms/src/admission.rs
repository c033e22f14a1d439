//! Admission: Redis-tracked semaphores per account and per agent, and the
//! account's minutes, taken in one atomic script.
//!
//! A slot is a member of a sorted set scored by its lease deadline, taken from
//! Redis `TIME` so that replicas with skewed clocks agree. A start reserves up
//! to its maximum length out of `quota - used - reserved`; ending turns the
//! reservation into the seconds used. Expired leases are settled by the
//! admission script itself, so a crashed holder can never keep a slot or a
//! reservation past its lease.

use redis::{aio::ConnectionManager, Script};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Account,
    Agent,
    /// The account's minutes quota is used up.
    Minutes,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Account => "account",
            Self::Agent => "agent",
            Self::Minutes => "minutes",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Admitted {
        lease_deadline_ms: i64,
        reserved_seconds: u64,
    },
    Refused(Refusal),
}

/// Which limit refused a start and when its earliest lease runs out (0 for
/// minutes: waiting does not bring them back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub scope: Scope,
    /// Slots, or for minutes the quota in seconds.
    pub limit: u64,
    /// Slots taken, or for minutes the seconds used and reserved.
    pub in_use: u64,
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
    fn keys(&self) -> [String; 4] {
        [
            account_slots_key(self.account_id),
            format!("{{{}}}:agent:{}:slots", self.account_id, self.agent_id),
            minutes_key(self.account_id),
            format!("{{{}}}:reservations", self.account_id),
        ]
    }
}

fn account_slots_key(account_id: &str) -> String {
    format!("{{{account_id}}}:slots")
}

fn minutes_key(account_id: &str) -> String {
    format!("{{{account_id}}}:minutes")
}

/// What an account holds right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub active_sessions: u32,
    pub used_seconds: u64,
    pub reserved_seconds: u64,
}

/// The limits one start is admitted under.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub wanted_seconds: u64,
    pub account_limit: u32,
    pub agent_limit: u32,
    pub quota_seconds: u64,
}

#[derive(Clone)]
pub struct Semaphores {
    redis: ConnectionManager,
    admit: Script,
    release: Script,
    usage: Script,
}

impl Semaphores {
    pub fn new(redis: ConnectionManager) -> Self {
        Self {
            redis,
            admit: Script::new(include_str!("admit.lua")),
            release: Script::new(include_str!("release.lua")),
            usage: Script::new(include_str!("account_usage.lua")),
        }
    }

    pub async fn admit(
        &self,
        slot: SlotRequest<'_>,
        limits: Limits,
    ) -> Result<Admission, redis::RedisError> {
        let mut conn = self.redis.clone();
        let mut call = self.admit.prepare_invoke();
        for key in slot.keys() {
            call.key(key);
        }
        let reply: Vec<redis::Value> = call
            .arg(slot.session_id)
            .arg(limits.wanted_seconds)
            .arg(limits.account_limit)
            .arg(limits.agent_limit)
            .arg(limits.quota_seconds)
            .invoke_async(&mut conn)
            .await?;
        parse_admission(&reply).ok_or_else(|| {
            redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "admission script returned an unexpected reply",
            ))
        })
    }

    /// Frees the slots and bills `used_seconds` (capped at the reservation).
    /// Returns whether the session held anything.
    pub async fn release(
        &self,
        slot: SlotRequest<'_>,
        used_seconds: u64,
    ) -> Result<bool, redis::RedisError> {
        let mut conn = self.redis.clone();
        let mut call = self.release.prepare_invoke();
        for key in slot.keys() {
            call.key(key);
        }
        let held: i64 = call
            .arg(slot.session_id)
            .arg(used_seconds)
            .invoke_async(&mut conn)
            .await?;
        Ok(held == 1)
    }

    pub async fn usage(&self, account_id: &str) -> Result<Usage, redis::RedisError> {
        let mut conn = self.redis.clone();
        let (active, used, reserved): (u32, u64, u64) = self
            .usage
            .key(account_slots_key(account_id))
            .key(minutes_key(account_id))
            .invoke_async(&mut conn)
            .await?;
        Ok(Usage {
            active_sessions: active,
            used_seconds: used,
            reserved_seconds: reserved,
        })
    }
}

fn parse_admission(reply: &[redis::Value]) -> Option<Admission> {
    use redis::Value;
    let int = |v: &Value| match v {
        Value::Int(i) => Some(*i),
        _ => None,
    };
    match reply {
        [first, deadline, reserved] if int(first) == Some(1) => Some(Admission::Admitted {
            lease_deadline_ms: int(deadline)?,
            reserved_seconds: u64::try_from(int(reserved)?).ok()?,
        }),
        [first, scope, limit, in_use, retry] if int(first) == Some(0) => {
            let scope = match scope {
                Value::BulkString(b) if b == b"agent" => Scope::Agent,
                Value::BulkString(b) if b == b"minutes" => Scope::Minutes,
                _ => Scope::Account,
            };
            Some(Admission::Refused(Refusal {
                scope,
                limit: u64::try_from(int(limit)?).ok()?,
                in_use: u64::try_from(int(in_use)?).ok()?,
                retry_after_ms: u64::try_from(int(retry)?).ok()?,
            }))
        }
        _ => None,
    }
}
