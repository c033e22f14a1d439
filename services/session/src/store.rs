//! The session service's Redis: typed methods over its keys and scripts.
//! Nothing outside this file spells a key or a hash field.
//!
//! Every key of an account carries the account's bucket tag
//! (`lobby_kit::keys`), so each script touches one slot of a Redis Cluster.
//! The id → account lookup (`T:session_account:<id>`) carries the bucket the
//! session id names (`lobby_kit::keys::session_id_bucket`): for the ids Lobby
//! mints, its account's, so admission writes it in its one script; for an id
//! a caller chose, some other bucket, written beside.

use crate::{
    error::SessionError,
    records::{self, EndedReason},
};
use lobby_kit::redis_conn::RedisConn;
use lobby_proto::{
    regions::HeldSession,
    session::{Session, SessionEvent},
};
use redis::{AsyncCommands, Script};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The status of a withdrawn start's tombstone (`finish.lua`).
pub(crate) const WITHDRAWN: &str = "withdrawn";

/// The keys of one session.
pub(crate) struct Keys {
    tag: String,
    account: String,
    agent: String,
    session: String,
}

impl Keys {
    pub(crate) fn new(account: &str, agent: &str, session: &str) -> Self {
        Self {
            tag: lobby_kit::keys::account_tag(account),
            account: account.to_owned(),
            agent: agent.to_owned(),
            session: session.to_owned(),
        }
    }
    pub(crate) fn record(&self) -> String {
        format!("{}:{}:session:{}", self.tag, self.account, self.session)
    }
    /// In the account's home region: the hold of a session another region runs.
    fn hold(&self) -> String {
        format!("{}:{}:hold:{}", self.tag, self.account, self.session)
    }
    pub(crate) fn events(&self) -> String {
        format!("{}:events", self.record())
    }
    /// Seed 004: the record's messages, each sealed.
    pub(crate) fn messages(&self) -> String {
        format!("{}:messages", self.record())
    }
    /// Seed 004's indexes of one agent's records: by creation and by update
    /// time, ids in lexical order (id prefix search), and a version bumped
    /// by every change (what cached orderings check).
    pub(crate) fn agent_records(&self, index: &str) -> String {
        format!(
            "{}:{}:agent:{}:records:{index}",
            self.tag, self.account, self.agent
        )
    }
    /// Seed 004: one blind-index token's set of record ids (per agent).
    pub(crate) fn blind_index(&self, token: &str) -> String {
        format!(
            "{}:{}:agent:{}:bidx:{token}",
            self.tag, self.account, self.agent
        )
    }
    /// Seed 004: every record of the account, by creation time.
    pub(crate) fn account_records(&self) -> String {
        format!("{}:{}:records", self.tag, self.account)
    }
    fn account_slots(&self) -> String {
        format!("{}:{}:slots", self.tag, self.account)
    }
    fn agent_slots(&self) -> String {
        format!("{}:{}:agent:{}:slots", self.tag, self.account, self.agent)
    }
    fn agent_runs(&self) -> String {
        format!("{}:{}:agent:{}:runs", self.tag, self.account, self.agent)
    }
    fn minutes(&self) -> String {
        format!("{}:{}:minutes", self.tag, self.account)
    }
    fn settings(&self) -> String {
        lobby_kit::keys::account_settings(&self.account)
    }
    fn link_uses(&self) -> String {
        lobby_kit::keys::link_uses(&self.account)
    }
    pub(crate) fn due(&self) -> String {
        due_key(&self.tag)
    }
    pub(crate) fn due_member(&self) -> String {
        format!("{}|{}", self.account, self.session)
    }
}

fn due_key(tag: &str) -> String {
    format!("{tag}:due")
}

pub(crate) fn lookup_key(session: &str) -> String {
    let tag = lobby_kit::keys::bucket_tag(lobby_kit::keys::session_id_bucket(session));
    format!("{tag}:session_account:{session}")
}

/// Where the lookup was kept before it moved into the id's bucket: read when
/// the lookup is not found there (sessions started by an older version).
/// Nothing writes it any more; it expires with its ended record.
pub(crate) fn legacy_lookup_key(session: &str) -> String {
    format!("session_account:{session}")
}

/// Whether `session`'s lookup shares its account's slot (a script of the
/// account can write it).
fn lookup_in_account_slot(session: &str, account: &str) -> bool {
    lobby_kit::keys::session_id_bucket(session) == lobby_kit::keys::account_bucket(account)
}

/// What one start asks of admission.
#[derive(Debug, Clone, Copy)]
pub struct AdmitRequest<'a> {
    pub session_id: &'a str,
    pub account_id: &'a str,
    pub agent_id: &'a str,
    pub account_limit: u32,
    pub agent_limit: u32,
    pub max_session_seconds: u32,
    pub quota_seconds: u64,
    /// (link id, use limit) for a link start.
    pub link: Option<(&'a str, u32)>,
    pub lease_ms: i64,
    pub retry_after_max_ms: i64,
    pub first_check_in_ms: i64,
    pub mode: AdmitMode<'a>,
}

/// Where a start is admitted, and what admission writes.
#[derive(Debug, Clone, Copy)]
pub enum AdmitMode<'a> {
    /// Here, against this region's slots and minutes; writes the new
    /// record (what it is and who it is for; admission sets its status,
    /// times and reservation).
    Local(&'a Session),
    /// The account's home region admitted it (and reserved
    /// `reserved_seconds`): writes the record, refuses nothing.
    Held {
        record: &'a Session,
        reserved_seconds: u64,
    },
    /// This is the account's home region, admitting a session that runs in
    /// `region`: writes its hold, no record.
    Hold { region: &'a str },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Account,
    Agent,
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

/// Which limit refused a start, and when a slot can free (0 for minutes:
/// waiting does not bring them back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub scope: Scope,
    /// Slots, or for minutes the quota in seconds.
    pub limit: u64,
    /// Slots taken, or for minutes the seconds used and reserved.
    pub in_use: u64,
    pub retry_after_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Admitted {
        deadline_ms: i64,
        reserved_seconds: u64,
        lease_deadline_ms: i64,
        started_at_ms: i64,
    },
    Refused(Refusal),
    LinkUsedUp,
    AgentUnpublished,
    /// A hold asked for after its release, or a start after it was
    /// withdrawn: its start was given up on.
    Released,
}

/// What renewing a hold did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldRenewal {
    Renewed,
    /// It had run out and was taken again.
    Retaken,
    /// Nothing to hold: it was released, or the session has no time left.
    Over,
}

impl Admission {
    /// The refusal named `name` (as `admit.lua` and another region's hold
    /// answer spell it), with its limit, what is in use and the retry hint
    /// in ms (unused by the two refusals that are no limit).
    pub fn refused(name: &str, limit: u64, in_use: u64, retry_after_ms: u64) -> Self {
        let scope = match name {
            "link_used_up" => return Self::LinkUsedUp,
            "agent_unpublished" => return Self::AgentUnpublished,
            "released" => return Self::Released,
            "agent" => Scope::Agent,
            "minutes" => Scope::Minutes,
            _ => Scope::Account,
        };
        Self::Refused(Refusal {
            scope,
            limit,
            in_use,
            retry_after_ms,
        })
    }

    /// The name [`Admission::refused`] reads back; `None` when admitted.
    pub fn refusal_name(&self) -> Option<&'static str> {
        match self {
            Self::Admitted { .. } => None,
            Self::Refused(r) => Some(r.scope.as_str()),
            Self::LinkUsedUp => Some("link_used_up"),
            Self::AgentUnpublished => Some("agent_unpublished"),
            Self::Released => Some("released"),
        }
    }
}

/// How a session is finished.
#[derive(Debug, Clone, Copy)]
pub enum Finish<'a> {
    Ended(EndedReason),
    /// A start that failed after admission, with the failure's machine code.
    Failed(&'a str),
    /// A start whose admission's answer was lost: failed if it ran, and
    /// kept from running if it has not yet.
    Withdrawn(&'a str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// This call finished it.
    Now,
    /// It was already over.
    Already,
    /// No such session (or not the caller's).
    Missing,
    /// Withdrawn before its admission ran: it never will.
    Withdrawn,
}

/// A change of who is in a session's room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceChange {
    UserJoined,
    AgentJoined,
    /// The last user left; the agent waits alone.
    AgentAlone,
}

/// What the sweeper is asked to look at: (account, session).
pub type DueEntry = (String, String);

/// An account's usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub active_sessions: u32,
    pub used_seconds: u64,
    pub reserved_seconds: u64,
}

/// One stored event; its sequence number is its position in the log.
#[derive(Debug, Serialize, Deserialize)]
struct StoredEvent {
    kind: String,
    /// The payload's JSON text, sealed under the account's data key.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    sealed: String,
    /// Events written before payloads were sealed hold them in the clear.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    payload: Option<serde_json::Value>,
    timestamp_ms: i64,
    recorded_at_ms: i64,
}

/// What bounds one agent's runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunLimits {
    /// Most runs one agent may have open at once.
    pub max_open: u32,
    /// A run with no event for this long is ended by the sweeper.
    pub idle_ms: i64,
}

/// Why an event was not appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendRefusal {
    NotFound,
    Ended,
    Full,
}

/// Cheap to clone: the scripts are shared.
#[derive(Clone)]
pub struct SessionStore {
    redis: RedisConn,
    scripts: std::sync::Arc<Scripts>,
}

struct Scripts {
    admit: Script,
    finish: Script,
    renew: Script,
    claim: Script,
    usage: Script,
    append: Script,
    start_run: Script,
    set_present: Script,
    release_hold: Script,
    renew_hold: Script,
}

impl SessionStore {
    pub fn new(redis: RedisConn) -> Self {
        Self {
            redis,
            scripts: std::sync::Arc::new(Scripts {
                admit: Script::new(include_str!("admit.lua")),
                finish: Script::new(include_str!("finish.lua")),
                renew: Script::new(include_str!("renew.lua")),
                claim: Script::new(include_str!("claim_due.lua")),
                usage: Script::new(include_str!("account_usage.lua")),
                append: Script::new(include_str!("append_event.lua")),
                start_run: Script::new(include_str!("start_run.lua")),
                set_present: Script::new(include_str!("set_present.lua")),
                release_hold: Script::new(include_str!("release_hold.lua")),
                renew_hold: Script::new(include_str!("renew_hold.lua")),
            }),
        }
    }

    /// Slots held in this region's store (holds for sessions running in
    /// other regions included): each bucket keeps its count in the scripts
    /// that take and free slots; this sums them.
    pub async fn slots_in_use(&self) -> Result<i64, redis::RedisError> {
        let counts = (0..lobby_kit::keys::BUCKETS).map(|bucket| {
            let mut conn = self.redis.clone();
            let key = format!("{}:slots_in_use", lobby_kit::keys::bucket_tag(bucket));
            async move { conn.get::<_, Option<i64>>(key).await }
        });
        let counts = futures::future::try_join_all(counts).await?;
        Ok(counts.into_iter().flatten().sum())
    }

    fn conn(&self) -> RedisConn {
        self.redis.clone()
    }

    /// Whether admission writes `session`'s id → account lookup itself: it
    /// does when the lookup shares the account's slot (every id Lobby mints)
    /// or on a single Redis (any key may share a script); otherwise
    /// [`SessionStore::index_account`] writes it beside.
    pub fn admission_writes_lookup(&self, session: &str, account: &str) -> bool {
        matches!(self.redis, RedisConn::Single(_)) || lookup_in_account_slot(session, account)
    }

    /// The one round trip of an admitted start.
    pub async fn admit(&self, req: &AdmitRequest<'_>) -> Result<Admission, SessionError> {
        let k = Keys::new(req.account_id, req.agent_id, req.session_id);
        let (mode, record, quota_seconds) = match req.mode {
            AdmitMode::Local(record) => ("local", Some(record), req.quota_seconds),
            AdmitMode::Held {
                record,
                reserved_seconds,
            } => ("held", Some(record), reserved_seconds),
            AdmitMode::Hold { .. } => ("hold", None, req.quota_seconds),
        };
        let mut call = self.scripts.admit.prepare_invoke();
        call.key(if record.is_some() {
            k.record()
        } else {
            k.hold()
        })
        .key(k.account_slots())
        .key(k.agent_slots())
        .key(k.minutes())
        .key(k.settings())
        .key(k.link_uses())
        .key(k.due());
        if self.admission_writes_lookup(req.session_id, req.account_id) && record.is_some() {
            call.key(lookup_key(req.session_id));
        }
        call.arg(req.session_id)
            .arg(req.account_id)
            .arg(req.agent_id)
            .arg(req.account_limit)
            .arg(req.agent_limit)
            .arg(req.max_session_seconds)
            .arg(quota_seconds)
            .arg(req.link.map(|l| l.0).unwrap_or(""))
            .arg(req.link.map(|l| l.1).unwrap_or(0))
            .arg(req.lease_ms)
            .arg(req.retry_after_max_ms)
            .arg(req.first_check_in_ms)
            .arg(mode);
        match (record, req.mode) {
            (Some(record), _) => {
                for (field, value) in records::new_record_fields(record) {
                    call.arg(field).arg(value);
                }
            }
            (None, AdmitMode::Hold { region }) => {
                call.arg("region").arg(region);
            }
            (None, _) => {}
        }
        let reply: Vec<redis::Value> = call.invoke_async(&mut self.conn()).await?;
        parse_admission(&reply).ok_or_else(|| {
            SessionError::Corrupt("admission script returned an unexpected reply".into())
        })
    }

    /// In the home region: gives back the hold of a session another region
    /// ran (see `release_hold.lua`), leaving a tombstone for `tombstone_ms`
    /// so a renewal already on its way cannot take it again; false when
    /// nothing was held.
    pub async fn release_hold(
        &self,
        account_id: &str,
        agent_id: &str,
        session_id: &str,
        (failed, ran_seconds): (bool, u64),
        tombstone_ms: i64,
    ) -> Result<bool, SessionError> {
        let k = Keys::new(account_id, agent_id, session_id);
        let released: i64 = self
            .scripts
            .release_hold
            .key(k.hold())
            .key(k.account_slots())
            .key(k.agent_slots())
            .key(k.minutes())
            .key(k.link_uses())
            .arg(session_id)
            .arg(if failed { "1" } else { "0" })
            .arg(ran_seconds)
            .arg(tombstone_ms)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(released == 1)
    }

    /// In the home region: renews a hold's lease, or takes it again for
    /// `seconds_left` when it ran out (see `renew_hold.lua`).
    pub async fn renew_hold(
        &self,
        held: &HeldSession,
        lease_ms: i64,
        region: &str,
    ) -> Result<HoldRenewal, SessionError> {
        let k = Keys::new(&held.account_id, &held.agent_id, &held.session_id);
        let renewed: i64 = self
            .scripts
            .renew_hold
            .key(k.hold())
            .key(k.account_slots())
            .key(k.agent_slots())
            .key(k.minutes())
            .arg(&held.session_id)
            .arg(lease_ms)
            .arg(held.reserved_seconds_left)
            .arg(&held.agent_id)
            .arg(region)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(match renewed {
            1 => HoldRenewal::Renewed,
            2 => HoldRenewal::Retaken,
            _ => HoldRenewal::Over,
        })
    }

    /// Ends or fails a session, idempotently (see `finish.lua`). `as_agent`
    /// makes the end conditional on the session being that agent's.
    pub async fn finish(
        &self,
        s: &Session,
        how: Finish<'_>,
        ended_at_ms: i64,
        as_agent: &str,
        keep_seconds: i64,
        purge_at_ms: i64,
    ) -> Result<Finished, SessionError> {
        let k = Keys::new(&s.account_id, &s.agent_id, &s.id);
        let (status, code, withdraw) = match how {
            Finish::Ended(reason) => ("ended", reason.as_str(), "0"),
            Finish::Failed(code) => ("failed", code, "0"),
            Finish::Withdrawn(code) => ("failed", code, "1"),
        };
        let moved: i64 = self
            .scripts
            .finish
            .key(k.record())
            .key(k.account_slots())
            .key(k.agent_slots())
            .key(k.minutes())
            .key(k.link_uses())
            .key(k.due())
            .key(k.events())
            .key(k.agent_runs())
            .arg(&s.id)
            .arg(&s.account_id)
            .arg(status)
            .arg(code)
            .arg(ended_at_ms)
            .arg(as_agent)
            .arg(keep_seconds)
            .arg(purge_at_ms)
            .arg(withdraw)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(match moved {
            1 => Finished::Now,
            0 => Finished::Already,
            -2 => Finished::Withdrawn,
            _ => Finished::Missing,
        })
    }

    /// Renews the session's lease; false when it cannot be (ended, or its
    /// slot expired and was freed).
    pub async fn renew(
        &self,
        s: &Session,
        lease_ms: i64,
        next_check_ms: i64,
    ) -> Result<bool, SessionError> {
        let k = Keys::new(&s.account_id, &s.agent_id, &s.id);
        let renewed: i64 = self
            .scripts
            .renew
            .key(k.record())
            .key(k.account_slots())
            .key(k.agent_slots())
            .key(k.due())
            .arg(&s.id)
            .arg(k.due_member())
            .arg(lease_ms)
            .arg(next_check_ms)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(renewed == 1)
    }

    /// Moves the session's next sweep check (only if it still has one).
    pub async fn reschedule(&self, s: &Session, at_ms: i64) -> Result<(), SessionError> {
        let k = Keys::new(&s.account_id, &s.agent_id, &s.id);
        let _: Option<i64> = redis::cmd("ZADD")
            .arg(k.due())
            .arg("XX")
            .arg(at_ms)
            .arg(k.due_member())
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    /// Marks a finished session's room as still to be closed, and has the
    /// sweeper try at `at_ms`.
    pub async fn close_room_later(&self, s: &Session, at_ms: i64) -> Result<(), SessionError> {
        let k = Keys::new(&s.account_id, &s.agent_id, &s.id);
        let () = redis::pipe()
            .atomic()
            .hset(k.record(), "room_close_pending", "1")
            .ignore()
            .zadd(k.due(), k.due_member(), at_ms)
            .ignore()
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    /// The room was closed after all: nothing more to sweep.
    pub async fn room_closed(&self, s: &Session) -> Result<(), SessionError> {
        let k = Keys::new(&s.account_id, &s.agent_id, &s.id);
        let () = redis::pipe()
            .atomic()
            .hdel(k.record(), "room_close_pending")
            .ignore()
            .zrem(k.due(), k.due_member())
            .ignore()
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    /// Drops a sweep entry whose session is gone or over.
    pub async fn forget_due(&self, bucket: u32, entry: &DueEntry) -> Result<(), SessionError> {
        let () = self
            .conn()
            .zrem(
                due_key(&lobby_kit::keys::bucket_tag(bucket)),
                format!("{}|{}", entry.0, entry.1),
            )
            .await?;
        Ok(())
    }

    /// Claims up to `limit` due entries of one bucket until `claim_until_ms`.
    pub async fn claim_due(
        &self,
        bucket: u32,
        now_ms: i64,
        limit: usize,
        claim_until_ms: i64,
    ) -> Result<Vec<DueEntry>, SessionError> {
        let members: Vec<String> = self
            .scripts
            .claim
            .key(due_key(&lobby_kit::keys::bucket_tag(bucket)))
            .arg(now_ms)
            .arg(limit)
            .arg(claim_until_ms)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(members
            .into_iter()
            .filter_map(|m| m.split_once('|').map(|(a, s)| (a.to_owned(), s.to_owned())))
            .collect())
    }

    /// Writes the id → account lookup (outside the account's slot, so not in
    /// the admission script; the sweeper restores it if a crash lost it).
    pub async fn index_account(
        &self,
        session_id: &str,
        account_id: &str,
    ) -> Result<(), SessionError> {
        // NX: a failed start's expiring lookup (below) may have come first.
        let _: Option<String> = redis::cmd("SET")
            .arg(lookup_key(session_id))
            .arg(account_id)
            .arg("NX")
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    /// Lets a failed start's lookup expire with its record (written here
    /// if the start's own write has not landed yet).
    pub async fn expire_lookup(&self, s: &Session, ttl_seconds: i64) -> Result<(), SessionError> {
        let () = self
            .conn()
            .set_ex(
                lookup_key(&s.id),
                &s.account_id,
                u64::try_from(ttl_seconds).unwrap_or(1),
            )
            .await?;
        Ok(())
    }

    async fn account_of(&self, session_id: &str) -> Result<Option<String>, SessionError> {
        let found: Option<String> = self.conn().get(lookup_key(session_id)).await?;
        match found {
            Some(account) => Ok(Some(account)),
            None => Ok(self.conn().get(legacy_lookup_key(session_id)).await?),
        }
    }

    /// A session by id alone.
    pub async fn get(&self, session_id: &str) -> Result<Session, SessionError> {
        let account = self
            .account_of(session_id)
            .await?
            .ok_or_else(|| SessionError::NotFound(session_id.to_owned()))?;
        self.get_in(&account, session_id)
            .await?
            .ok_or_else(|| SessionError::NotFound(session_id.to_owned()))
    }

    /// A session of a known account, `None` when it has no such session.
    /// The ids of an account's newest `limit` sessions, newest first.
    pub async fn newest_ids(
        &self,
        account_id: &str,
        limit: u32,
    ) -> Result<Vec<String>, SessionError> {
        let k = Keys::new(account_id, "", "");
        let ids: Vec<String> = self
            .conn()
            .zrevrange(
                k.account_records(),
                0,
                isize::try_from(limit).unwrap_or(1000) - 1,
            )
            .await?;
        Ok(ids)
    }

    pub async fn get_in(
        &self,
        account_id: &str,
        session_id: &str,
    ) -> Result<Option<Session>, SessionError> {
        let k = Keys::new(account_id, "", session_id);
        let fields: HashMap<String, String> = self.conn().hgetall(k.record()).await?;
        // A withdrawn start's tombstone is no session.
        if fields.is_empty() || fields.get("status").is_some_and(|s| s == WITHDRAWN) {
            return Ok(None);
        }
        records::from_fields(&fields).map(Some)
    }

    /// Opens an agent run (no slot, no room) unless its agent already has
    /// `limits.max_open` open; then nothing is written and the count of open
    /// runs comes back as the refusal.
    pub async fn create_run(
        &self,
        s: &Session,
        limits: RunLimits,
        first_check_at_ms: i64,
    ) -> Result<Result<(), u32>, SessionError> {
        let k = Keys::new(&s.account_id, &s.agent_id, &s.id);
        let mut call = self.scripts.start_run.prepare_invoke();
        call.key(k.record())
            .key(k.agent_runs())
            .key(k.due())
            .key(k.account_records())
            .key(k.agent_records("created"))
            .key(k.agent_records("updated"))
            .key(k.agent_records("ids"))
            .key(k.agent_records("unnamed"));
        let writes_lookup = self.admission_writes_lookup(&s.id, &s.account_id);
        if writes_lookup {
            call.key(lookup_key(&s.id));
        }
        call.arg(&s.id)
            .arg(limits.max_open)
            .arg(limits.idle_ms)
            .arg(k.due_member())
            .arg(first_check_at_ms);
        for (field, value) in records::run_fields(s) {
            call.arg(field).arg(value);
        }
        let (opened, open): (i64, u32) = call.invoke_async(&mut self.conn()).await?;
        if opened != 1 {
            return Ok(Err(open));
        }
        if !writes_lookup {
            self.index_account(&s.id, &s.account_id).await?;
        }
        Ok(Ok(()))
    }

    /// The worker that accepted the session.
    pub async fn set_worker(&self, s: &Session, worker_id: &str) -> Result<(), SessionError> {
        self.set_fields(s, &[("worker_id", worker_id.to_owned())])
            .await
    }

    /// Who is in the room, as the provider's webhooks tell: a participant
    /// joined (the first join of each side is kept), or the agent was left
    /// alone at `at_ms` (a user joining clears that). Returns the record
    /// with the change applied.
    pub async fn record_presence(
        &self,
        s: &Session,
        change: PresenceChange,
        at_ms: i64,
    ) -> Result<Session, SessionError> {
        let mut after = s.clone();
        let mut fields: Vec<(&str, String)> = Vec::new();
        match change {
            PresenceChange::AgentJoined if s.agent_joined_at_ms == 0 => {
                after.agent_joined_at_ms = at_ms;
                fields.push(("agent_joined_at_ms", at_ms.to_string()))
            }
            PresenceChange::AgentJoined => {}
            PresenceChange::UserJoined => {
                if s.user_joined_at_ms == 0 {
                    after.user_joined_at_ms = at_ms;
                    fields.push(("user_joined_at_ms", at_ms.to_string()));
                }
                after.alone_since_ms = 0;
                fields.push(("alone_since_ms", "0".to_owned()));
            }
            PresenceChange::AgentAlone => {
                after.alone_since_ms = at_ms;
                fields.push(("alone_since_ms", at_ms.to_string()))
            }
        }
        if !fields.is_empty() {
            self.set_fields(s, &fields).await?;
        }
        Ok(after)
    }

    /// The URL clients join the session's room at (seed 003's `wsUrl`).
    pub async fn set_room_url(&self, s: &Session, room_url: &str) -> Result<(), SessionError> {
        self.set_fields(s, &[("room_url", room_url.to_owned())])
            .await
    }

    async fn set_fields(&self, s: &Session, fields: &[(&str, String)]) -> Result<(), SessionError> {
        let k = Keys::new(&s.account_id, &s.agent_id, &s.id);
        let mut call = self.scripts.set_present.key(k.record());
        for (field, value) in fields {
            call.arg(*field).arg(value);
        }
        let _: i64 = call.invoke_async(&mut self.conn()).await?;
        Ok(())
    }

    pub async fn usage(&self, account_id: &str) -> Result<Usage, SessionError> {
        let k = Keys::new(account_id, "", "");
        let (active, used, reserved): (u32, u64, u64) = self
            .scripts
            .usage
            .key(k.account_slots())
            .key(k.minutes())
            .invoke_async(&mut self.conn())
            .await?;
        Ok(Usage {
            active_sessions: active,
            used_seconds: used,
            reserved_seconds: reserved,
        })
    }

    /// Appends an event if `agent_id` owns the live session and its log has
    /// room. Its `payload_json` is the payload as sealed by the caller.
    pub async fn append_event(
        &self,
        account_id: &str,
        session_id: &str,
        agent_id: &str,
        max_events: u32,
        idle_ms: i64,
        event: &SessionEvent,
    ) -> Result<Result<u64, AppendRefusal>, SessionError> {
        let stored = StoredEvent {
            kind: event.kind.clone(),
            sealed: event.payload_json.clone(),
            payload: None,
            timestamp_ms: event.timestamp_ms,
            recorded_at_ms: event.recorded_at_ms,
        };
        let json =
            serde_json::to_string(&stored).map_err(|e| SessionError::Corrupt(e.to_string()))?;
        let k = Keys::new(account_id, agent_id, session_id);
        let reply: (i64, redis::Value) = self
            .scripts
            .append
            .key(k.record())
            .key(k.events())
            .arg(agent_id)
            .arg(max_events)
            .arg(json)
            .arg(idle_ms)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(match reply {
            (1, redis::Value::Int(seq)) => Ok(u64::try_from(seq).unwrap_or(0)),
            (_, redis::Value::BulkString(r)) if r == b"ended" => Err(AppendRefusal::Ended),
            (_, redis::Value::BulkString(r)) if r == b"full" => Err(AppendRefusal::Full),
            _ => Err(AppendRefusal::NotFound),
        })
    }

    /// The session's events in order, or `None` if `agent_id` does not own
    /// it; each `payload_json` as stored (sealed, or from before sealing,
    /// plain).
    pub async fn events(
        &self,
        account_id: &str,
        session_id: &str,
        agent_id: &str,
    ) -> Result<Option<Vec<SessionEvent>>, SessionError> {
        let k = Keys::new(account_id, agent_id, session_id);
        let mut conn = self.conn();
        let owner: Option<String> = conn.hget(k.record(), "agent_id").await?;
        if owner.as_deref() != Some(agent_id) {
            return Ok(None);
        }
        let raw: Vec<String> = conn.lrange(k.events(), 0, -1).await?;
        raw.iter()
            .enumerate()
            .map(|(i, r)| {
                let e: StoredEvent =
                    serde_json::from_str(r).map_err(|e| SessionError::Corrupt(e.to_string()))?;
                Ok(SessionEvent {
                    seq: i as u64 + 1,
                    kind: e.kind,
                    payload_json: if e.sealed.is_empty() {
                        e.payload.unwrap_or_default().to_string()
                    } else {
                        e.sealed
                    },
                    timestamp_ms: e.timestamp_ms,
                    recorded_at_ms: e.recorded_at_ms,
                })
            })
            .collect::<Result<Vec<_>, SessionError>>()
            .map(Some)
    }

    /// True the first time an event id is seen within `ttl_seconds`.
    pub async fn first_sighting(&self, key: &str, ttl_seconds: u64) -> Result<bool, SessionError> {
        let set: Option<String> = redis::cmd("SET")
            .arg(format!("webhook_seen:{key}"))
            .arg(1)
            .arg("NX")
            .arg("EX")
            .arg(ttl_seconds)
            .query_async(&mut self.conn())
            .await?;
        Ok(set.is_some())
    }

    /// Forgets a sighting, so a retry of an event that failed is acted on.
    pub async fn forget_sighting(&self, key: &str) -> Result<(), SessionError> {
        let () = self.conn().del(format!("webhook_seen:{key}")).await?;
        Ok(())
    }
}

fn parse_admission(reply: &[redis::Value]) -> Option<Admission> {
    use redis::Value;
    let int = |v: &Value| match v {
        Value::Int(i) => Some(*i),
        _ => None,
    };
    match reply {
        [first, deadline, reserved, lease, started] if int(first) == Some(1) => {
            Some(Admission::Admitted {
                deadline_ms: int(deadline)?,
                reserved_seconds: u64::try_from(int(reserved)?).ok()?,
                lease_deadline_ms: int(lease)?,
                started_at_ms: int(started)?,
            })
        }
        [first, scope, limit, in_use, retry] if int(first) == Some(0) => {
            let name = match scope {
                Value::BulkString(b) => std::str::from_utf8(b).unwrap_or(""),
                _ => "",
            };
            Some(Admission::refused(
                name,
                u64::try_from(int(limit)?).ok()?,
                u64::try_from(int(in_use)?).ok()?,
                u64::try_from(int(retry)?).ok()?,
            ))
        }
        _ => None,
    }
}
