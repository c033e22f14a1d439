//! Seed 004's records in Redis: the session record hash (with its sealed
//! personal fields), its sealed messages, and the indexes the records
//! contract reads: per account by creation time, per agent by creation and
//! update time, ids in lexical order, and one set per blind-index token.
//! Everything of an account shares its slot, so each write is one script.

use crate::{error::SessionError, store::Keys};
use lobby_kit::redis_conn::RedisConn;
use redis::{AsyncCommands, Script};
use std::{collections::HashMap, sync::Arc};

/// A record as stored: its hash fields and its sealed messages.
#[derive(Debug, Clone, Default)]
pub struct StoredRecord {
    pub fields: HashMap<String, String>,
    pub messages: Vec<String>,
}

impl StoredRecord {
    pub fn text(&self, field: &str) -> &str {
        self.fields.get(field).map_or("", String::as_str)
    }

    pub fn number(&self, field: &str) -> i64 {
        self.fields
            .get(field)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    pub fn agent_id(&self) -> &str {
        self.text("agent_id")
    }

    pub fn accept_terms(&self) -> Option<String> {
        self.fields.get("accept_terms").cloned()
    }

    /// Prompt and completion tokens, when the worker reported them.
    pub fn tokens_used(&self) -> (Option<i64>, Option<i64>) {
        let optional = |field: &str| self.fields.get(field).and_then(|v| v.parse().ok());
        (optional("prompt_tokens"), optional("completion_tokens"))
    }

    pub fn created_at_ms(&self) -> i64 {
        self.number("created_at_ms")
    }

    /// When it ended; 0 while it runs.
    pub fn ended_at_ms(&self) -> i64 {
        self.number("ended_at_ms")
    }

    /// The latest of its creation, start, end and last update.
    pub fn last_change_ms(&self) -> i64 {
        self.number("updated_at_ms")
            .max(self.created_at_ms())
            .max(self.number("started_at_ms"))
            .max(self.ended_at_ms())
    }

    /// A session (not a seed-004 record) that still holds a room and a slot.
    pub fn is_running_session(&self) -> bool {
        use lobby_proto::session::{SessionKind, SessionStatus};
        let status = crate::records::parse_status(self.text("status"));
        matches!(status, SessionStatus::Active | SessionStatus::Starting)
            && crate::records::parse_kind(self.text("kind")) != SessionKind::Record
    }

    /// The blind-index tokens the record was indexed under.
    pub fn tokens(&self) -> Vec<String> {
        self.text(BLIND_TOKENS_FIELD)
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }
}

/// The record field listing its blind-index tokens, space-separated.
pub const BLIND_TOKENS_FIELD: &str = "bidx";

/// A record to create: its hash fields (personal ones sealed), its sealed
/// messages and its blind-index tokens.
pub struct NewRecord<'a> {
    pub account_id: &'a str,
    pub agent_id: &'a str,
    pub id: &'a str,
    pub now_ms: i64,
    pub fields: &'a [(&'a str, String)],
    pub sealed_messages: &'a [String],
    pub tokens: &'a [String],
}

/// Which time index orders a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeIndex {
    Created,
    Updated,
}

impl TimeIndex {
    fn name(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
        }
    }
}

/// What a delete found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    Now,
    Missing,
    /// The record changed between the read and the delete: read again.
    Changed,
}

#[derive(Clone)]
pub struct RecordStore {
    redis: RedisConn,
    create: Arc<Script>,
    delete: Arc<Script>,
    append_messages: Arc<Script>,
    drop_lookup: Arc<Script>,
}

/// Who adds messages to a session: it must be theirs.
#[derive(Debug, Clone, Copy)]
pub enum MessagesWriter<'a> {
    /// The agent that owns it (a seed-001 run's token).
    Agent(&'a str),
    /// The GPU worker that accepted it; a pool's worker key may serve any
    /// account (`None`), an account's only that one.
    Worker(&'a str, Option<&'a str>),
}

/// Messages (sealed) and token usage to add to a session's record.
pub struct NewMessages<'a> {
    pub account_id: &'a str,
    pub writer: MessagesWriter<'a>,
    /// The session's agent (its update index is the agent's).
    pub agent_id: &'a str,
    pub session_id: &'a str,
    pub now_ms: i64,
    pub sealed: &'a [String],
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub max_messages: u32,
}

/// What an append of messages did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessagesAppend {
    /// The record's totals after it: messages, prompt and completion tokens.
    Done(u64, u64, u64),
    NotFound,
    Ended,
    Full,
}

impl RecordStore {
    pub fn new(redis: RedisConn) -> Self {
        Self {
            redis,
            create: Arc::new(Script::new(include_str!("create_record.lua"))),
            delete: Arc::new(Script::new(include_str!("delete_record.lua"))),
            append_messages: Arc::new(Script::new(include_str!("append_messages.lua"))),
            drop_lookup: Arc::new(Script::new(
                "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
            )),
        }
    }

    fn conn(&self) -> RedisConn {
        self.redis.clone()
    }

    /// Creates the record unless the account has a session with its id;
    /// true when this call created it.
    pub async fn create(&self, r: &NewRecord<'_>) -> Result<bool, SessionError> {
        let NewRecord {
            account_id,
            agent_id,
            id,
            now_ms,
            fields,
            sealed_messages,
            tokens,
        } = r;
        let k = Keys::new(account_id, agent_id, id);
        let mut call = self.create.prepare_invoke();
        call.key(k.record())
            .key(k.messages())
            .key(k.account_records())
            .key(k.agent_records(TimeIndex::Created.name()))
            .key(k.agent_records(TimeIndex::Updated.name()))
            .key(k.agent_records("ids"))
            .key(k.agent_records("v"))
            .key(k.agent_records("named"));
        for token in tokens.iter() {
            call.key(k.blind_index(token));
        }
        call.arg(*id).arg(*now_ms).arg(fields.len());
        for (field, value) in fields.iter() {
            call.arg(*field).arg(value);
        }
        for m in sealed_messages.iter() {
            call.arg(m);
        }
        let created: i64 = call.invoke_async(&mut self.conn()).await?;
        Ok(created == 1)
    }

    /// Adds messages and token usage to a live session of the caller's agent.
    pub async fn append_messages(
        &self,
        m: &NewMessages<'_>,
    ) -> Result<MessagesAppend, SessionError> {
        let (caller, field, account) = match m.writer {
            MessagesWriter::Agent(agent) => (agent, "agent_id", ""),
            MessagesWriter::Worker(worker, account) => (worker, "worker_id", account.unwrap_or("")),
        };
        let k = Keys::new(m.account_id, m.agent_id, m.session_id);
        let mut call = self.append_messages.prepare_invoke();
        call.key(k.record())
            .key(k.messages())
            .key(k.agent_records(TimeIndex::Updated.name()))
            .arg(caller)
            .arg(m.now_ms)
            .arg(m.session_id)
            .arg(m.prompt_tokens)
            .arg(m.completion_tokens)
            .arg(m.max_messages)
            .arg(field)
            .arg(account);
        for sealed in m.sealed {
            call.arg(sealed);
        }
        let reply: Vec<redis::Value> = call.invoke_async(&mut self.conn()).await?;
        let number = |v: Option<&redis::Value>| match v {
            Some(redis::Value::Int(n)) => u64::try_from(*n).unwrap_or(0),
            _ => 0,
        };
        Ok(match reply.first() {
            Some(redis::Value::Int(1)) => MessagesAppend::Done(
                number(reply.get(1)),
                number(reply.get(2)),
                number(reply.get(3)),
            ),
            _ => match reply.get(1) {
                Some(redis::Value::BulkString(r)) if r == b"ended" => MessagesAppend::Ended,
                Some(redis::Value::BulkString(r)) if r == b"full" => MessagesAppend::Full,
                _ => MessagesAppend::NotFound,
            },
        })
    }

    /// The records with these ids (`None` for an id with none), in one
    /// round trip.
    pub async fn read(
        &self,
        account_id: &str,
        ids: &[String],
    ) -> Result<Vec<Option<StoredRecord>>, SessionError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            let k = Keys::new(account_id, "", id);
            pipe.hgetall(k.record()).lrange(k.messages(), 0, -1);
        }
        let replies: Vec<redis::Value> = pipe.query_async(&mut self.conn()).await?;
        let mut out = Vec::with_capacity(ids.len());
        for pair in replies.chunks(2) {
            let unreadable = |e: redis::ParsingError| SessionError::Corrupt(e.to_string());
            let fields: HashMap<String, String> =
                redis::from_redis_value(pair[0].clone()).map_err(unreadable)?;
            let messages: Vec<String> =
                redis::from_redis_value(pair[1].clone()).map_err(unreadable)?;
            // A withdrawn start's tombstone is no record.
            let withdrawn = fields
                .get("status")
                .is_some_and(|s| s == crate::store::WITHDRAWN);
            out.push(
                (!fields.is_empty() && !withdrawn).then_some(StoredRecord { fields, messages }),
            );
        }
        Ok(out)
    }

    /// One page of an agent's record ids, newest first by `index`, and how
    /// many there are.
    pub async fn page(
        &self,
        account_id: &str,
        agent_id: &str,
        index: TimeIndex,
        offset: u64,
        limit: u64,
    ) -> Result<(u64, Vec<String>), SessionError> {
        let key = Keys::new(account_id, agent_id, "").agent_records(index.name());
        self.slice(&key, "ZREVRANGE", offset, limit).await
    }

    /// How many members `key` has, and `limit` of them from `offset` in
    /// the order `range` reads (ZRANGE or ZREVRANGE), in one round trip.
    async fn slice(
        &self,
        key: &str,
        range: &str,
        offset: u64,
        limit: u64,
    ) -> Result<(u64, Vec<String>), SessionError> {
        if limit == 0 {
            return Ok((self.conn().zcard(key).await?, Vec::new()));
        }
        let start = isize::try_from(offset).unwrap_or(isize::MAX);
        let stop = isize::try_from(offset + limit - 1).unwrap_or(isize::MAX);
        Ok(redis::pipe()
            .zcard(key)
            .cmd(range)
            .arg(key)
            .arg(start)
            .arg(stop)
            .query_async(&mut self.conn())
            .await?)
    }

    /// The account's newest `limit` record ids.
    pub async fn newest(&self, account_id: &str, limit: u64) -> Result<Vec<String>, SessionError> {
        let key = Keys::new(account_id, "", "").account_records();
        let stop = isize::try_from(limit.max(1) - 1).unwrap_or(isize::MAX);
        Ok(self.conn().zrevrange(key, 0, stop).await?)
    }

    /// The ids of an agent's records with a name and an email (seed 004's),
    /// in lexical order.
    pub async fn named_ids(
        &self,
        account_id: &str,
        agent_id: &str,
    ) -> Result<Vec<String>, SessionError> {
        let key = Keys::new(account_id, agent_id, "").agent_records("named");
        Ok(self.conn().zrange(key, 0, -1).await?)
    }

    /// A slice of the ids of an agent's sessions without names (those
    /// started through seeds 000-002), in lexical order, and how many
    /// there are.
    pub async fn unnamed_ids(
        &self,
        account_id: &str,
        agent_id: &str,
        offset: u64,
        limit: u64,
    ) -> Result<(u64, Vec<String>), SessionError> {
        let key = Keys::new(account_id, agent_id, "").agent_records("unnamed");
        self.slice(&key, "ZRANGE", offset, limit).await
    }

    /// An agent's record ids starting with `prefix`, at most `cap`.
    pub async fn ids_with_prefix(
        &self,
        account_id: &str,
        agent_id: &str,
        prefix: &str,
        cap: usize,
    ) -> Result<Vec<String>, SessionError> {
        let key = Keys::new(account_id, agent_id, "").agent_records("ids");
        // Ids are ASCII (checked on create), so 0xff sorts after every
        // continuation of the prefix.
        let mut max = prefix.as_bytes().to_vec();
        max.push(0xff);
        let mut min = b"[".to_vec();
        min.extend_from_slice(prefix.as_bytes());
        let mut upper = b"[".to_vec();
        upper.extend_from_slice(&max);
        Ok(redis::cmd("ZRANGEBYLEX")
            .arg(key)
            .arg(min)
            .arg(upper)
            .arg("LIMIT")
            .arg(0)
            .arg(cap)
            .query_async(&mut self.conn())
            .await?)
    }

    /// The ids in every one of the blind-index sets `tokens` name.
    pub async fn blind_match(
        &self,
        account_id: &str,
        agent_id: &str,
        tokens: &[String],
    ) -> Result<Vec<String>, SessionError> {
        if tokens.is_empty() {
            return Ok(Vec::new());
        }
        let k = Keys::new(account_id, agent_id, "");
        let keys: Vec<String> = tokens.iter().map(|t| k.blind_index(t)).collect();
        Ok(self.conn().sinter(keys).await?)
    }

    /// The agent's records version: any change to its records moves it.
    pub async fn version(&self, account_id: &str, agent_id: &str) -> Result<i64, SessionError> {
        let key = Keys::new(account_id, agent_id, "").agent_records("v");
        Ok(self.conn().get::<_, Option<i64>>(key).await?.unwrap_or(0))
    }

    /// One sealed field of many records, in one round trip.
    pub async fn field_of(
        &self,
        account_id: &str,
        ids: &[String],
        field: &str,
    ) -> Result<Vec<Option<String>>, SessionError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.hget(Keys::new(account_id, "", id).record(), field);
        }
        Ok(pipe.query_async(&mut self.conn()).await?)
    }

    /// Deletes `record` (as read) with everything it is indexed under.
    pub async fn delete(
        &self,
        account_id: &str,
        id: &str,
        record: &StoredRecord,
    ) -> Result<Deleted, SessionError> {
        let k = Keys::new(account_id, record.agent_id(), id);
        let tokens = record.tokens();
        let mut call = self.delete.prepare_invoke();
        call.key(k.record())
            .key(k.events())
            .key(k.messages())
            .key(k.account_records())
            .key(k.agent_records(TimeIndex::Created.name()))
            .key(k.agent_records(TimeIndex::Updated.name()))
            .key(k.agent_records("ids"))
            .key(k.agent_records("v"))
            .key(k.agent_records("named"))
            .key(k.agent_records("unnamed"))
            .key(k.due());
        for token in &tokens {
            call.key(k.blind_index(token));
        }
        call.arg(id)
            .arg(record.text(BLIND_TOKENS_FIELD))
            .arg(k.due_member());
        let deleted: i64 = call.invoke_async(&mut self.conn()).await?;
        if deleted == 1 {
            // The id -> account lookup may live in another slot (on a
            // Cluster): dropped beside the script, after it, and only if it
            // is this account's (ids chosen by callers may equal another's);
            // so is one an older version kept outside every bucket.
            for lookup in [
                crate::store::lookup_key(id),
                crate::store::legacy_lookup_key(id),
            ] {
                let _: i64 = self
                    .drop_lookup
                    .key(lookup)
                    .arg(account_id)
                    .invoke_async(&mut self.conn())
                    .await?;
            }
        }
        Ok(match deleted {
            1 => Deleted::Now,
            0 => Deleted::Missing,
            _ => Deleted::Changed,
        })
    }
}
