//! Seed 004, the records contract, as the session service serves it: one
//! account's session records created (or got), listed, ordered, searched,
//! paginated and deleted, with their personal fields sealed at rest.
//!
//! `userName`, `userEmail` and each message are sealed under the account's
//! data key (`lobby_vault`), bound to the record and the field. Search goes
//! through blind indexes: the account's index key turns each normalised
//! trigram (and each whole value) of a name or an email into a token, and
//! one set per token holds the ids of the records that have it. A query's
//! tokens give candidates, which are opened and checked, so a false
//! positive is never returned. Ordering by a name opens the agent's names
//! once and keeps the order in memory until the agent's records change.

use crate::{
    error::SessionError,
    record_store::{
        Deleted, MessagesAppend, MessagesWriter, NewMessages, NewRecord, StoredRecord, TimeIndex,
        BLIND_TOKENS_FIELD,
    },
    service::SessionService,
};
use lobby_proto::session::{self as pb, SessionRecord};
use lobby_vault::normalise;
use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
};

pub const MAX_ID_CHARS: usize = 128;
const MAX_NAME_CHARS: usize = 256;
const MAX_EMAIL_CHARS: usize = 320;
const MAX_ACCEPT_TERMS_CHARS: usize = 16;
const MAX_MESSAGES_BYTES: usize = 256 * 1024;
pub const DEFAULT_PAGE: u32 = 10;
pub const MAX_PAGE: u32 = 100;
/// Ids a prefix query considers at most.
const MAX_PREFIX_CANDIDATES: usize = 10_000;
/// Names held in memory for orderings, over all agents; past it the held
/// orderings start over.
const MAX_HELD_NAMES: usize = 2_000_000;

/// The sealed fields: record field, the contract's name (the associated
/// data it is sealed under).
const USER_NAME: (&str, &str) = ("user_name", "userName");
const USER_EMAIL: (&str, &str) = ("user_email", "userEmail");
const MESSAGE: &str = "message";

/// What a writer adds to a session besides who it is.
struct Usage<'a> {
    /// A JSON array of messages, as text.
    messages_json: &'a str,
    prompt_tokens: u32,
    completion_tokens: u32,
}

/// Seed 004's caller-chosen ids: `[A-Za-z0-9._-]{1,128}`.
pub fn valid_record_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_CHARS
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Order {
    UserName,
    UserEmail,
    CreatedAt,
    UpdatedAt,
}

impl Order {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "" | "updatedAt" => Some(Self::UpdatedAt),
            "createdAt" => Some(Self::CreatedAt),
            "userName" => Some(Self::UserName),
            "userEmail" => Some(Self::UserEmail),
            _ => None,
        }
    }

    fn sealed_field(self) -> Option<(&'static str, &'static str)> {
        match self {
            Self::UserName => Some(USER_NAME),
            Self::UserEmail => Some(USER_EMAIL),
            Self::CreatedAt | Self::UpdatedAt => None,
        }
    }
}

/// An agent's record ids ordered by a name, with the version of its
/// records they were read at.
type HeldOrder = (i64, Arc<Vec<String>>);

/// Orderings by name, per (account, agent, order).
#[derive(Default)]
pub struct NameOrders {
    held: Mutex<HashMap<(String, String, Order), HeldOrder>>,
}

impl NameOrders {
    fn get(&self, key: &(String, String, Order), version: i64) -> Option<Arc<Vec<String>>> {
        let held = self.held.lock().ok()?;
        held.get(key)
            .filter(|(v, _)| *v == version)
            .map(|(_, ids)| ids.clone())
    }

    fn put(&self, key: (String, String, Order), version: i64, ids: Arc<Vec<String>>) {
        if let Ok(mut held) = self.held.lock() {
            let size: usize = held.values().map(|(_, ids)| ids.len()).sum();
            if size + ids.len() > MAX_HELD_NAMES {
                held.clear();
            }
            held.insert(key, (version, ids));
        }
    }
}

fn bounded(
    field: &'static str,
    value: Option<&String>,
    max_chars: usize,
) -> Result<(), SessionError> {
    match value {
        Some(v) if v.chars().count() > max_chars => Err(SessionError::invalid(
            field,
            format!("must be at most {max_chars} characters"),
        )),
        _ => Ok(()),
    }
}

/// The messages as one JSON array text → each message's JSON text.
fn split_messages(messages: Option<&str>) -> Result<Vec<String>, SessionError> {
    let Some(text) = messages.filter(|m| !m.trim().is_empty()) else {
        return Ok(Vec::new());
    };
    if text.len() > MAX_MESSAGES_BYTES {
        return Err(SessionError::invalid(
            "messages",
            "must be at most 262144 bytes",
        ));
    }
    // Raw: each message comes back exactly as it was sent.
    match serde_json::from_str::<Vec<Box<serde_json::value::RawValue>>>(text) {
        Ok(items) => Ok(items.iter().map(|m| m.get().to_owned()).collect()),
        Err(_) => Err(SessionError::invalid(
            "messages",
            "must be a JSON array, as text",
        )),
    }
}

impl SessionService {
    /// Creates the record, or finds one with its id; true when created.
    pub async fn create_record(&self, req: pb::CreateRecordRequest) -> Result<bool, SessionError> {
        if req.account_id.is_empty() || req.agent_id.is_empty() {
            return Err(SessionError::invalid(
                "agentId",
                "account and agent are required",
            ));
        }
        if !valid_record_id(&req.id) {
            return Err(SessionError::invalid(
                "id",
                "must be 1-128 characters of letters, digits, '.', '_' or '-'",
            ));
        }
        bounded("userName", req.user_name.as_ref(), MAX_NAME_CHARS)?;
        bounded("userEmail", req.user_email.as_ref(), MAX_EMAIL_CHARS)?;
        bounded(
            "acceptTerms",
            req.accept_terms.as_ref(),
            MAX_ACCEPT_TERMS_CHARS,
        )?;
        let messages = split_messages(req.messages.as_deref())?;
        let keys = self.vault.keys(&req.account_id).await?;
        let now = lobby_kit::time::now_ms();
        let mut fields =
            crate::records::contract_record_fields(&req.id, &req.account_id, &req.agent_id, now);
        let mut tokens = BTreeSet::new();
        for ((field, name), value) in [(USER_NAME, &req.user_name), (USER_EMAIL, &req.user_email)] {
            if let Some(value) = value {
                fields.push((field, keys.seal_str(&req.id, name, value)));
                tokens.extend(keys.trigram_tokens(name, value));
                tokens.insert(keys.exact_token(name, value));
            }
        }
        if let Some(terms) = &req.accept_terms {
            fields.push(("accept_terms", terms.clone()));
        }
        let tokens: Vec<String> = tokens.into_iter().collect();
        fields.push((BLIND_TOKENS_FIELD, tokens.join(" ")));
        let sealed_messages: Vec<String> = messages
            .iter()
            .map(|m| keys.seal_str(&req.id, MESSAGE, m))
            .collect();
        let created = self
            .records
            .create(&NewRecord {
                account_id: &req.account_id,
                agent_id: &req.agent_id,
                id: &req.id,
                now_ms: now,
                fields: &fields,
                sealed_messages: &sealed_messages,
                tokens: &tokens,
            })
            .await?;
        if created {
            tracing::info!(account_id = %req.account_id, agent_id = %req.agent_id, "session record created");
        }
        Ok(created)
    }

    /// Adds messages and token usage to a live session of the caller's
    /// agent (a seed-001 run, through its token); returns the totals.
    pub async fn append_messages(
        &self,
        req: pb::AppendMessagesRequest,
    ) -> Result<pb::MessagesAppended, SessionError> {
        if req.account_id.is_empty() || req.agent_id.is_empty() || req.session_id.is_empty() {
            return Err(SessionError::invalid(
                "session_id",
                "account, agent and session are required",
            ));
        }
        let (messages, prompt_tokens, completion_tokens) = self
            .add_messages(
                &req.account_id,
                &req.agent_id,
                &req.session_id,
                MessagesWriter::Agent(&req.agent_id),
                &Usage {
                    messages_json: &req.messages_json,
                    prompt_tokens: req.prompt_tokens,
                    completion_tokens: req.completion_tokens,
                },
            )
            .await?;
        Ok(pb::MessagesAppended {
            messages,
            prompt_tokens,
            completion_tokens,
        })
    }

    /// The same, for the GPU worker that runs the session: `worker_id`,
    /// and the account its key serves (`None` for a pool's key).
    pub async fn worker_append_messages(
        &self,
        worker_id: &str,
        account: Option<&str>,
        req: &lobby_proto::workers::WorkerMessages,
    ) -> Result<(u64, u64, u64), SessionError> {
        if req.session_id.is_empty() {
            return Err(SessionError::invalid("session_id", "is required"));
        }
        let session = self.store.get(&req.session_id).await?;
        self.add_messages(
            &session.account_id,
            &session.agent_id,
            &session.id,
            MessagesWriter::Worker(worker_id, account),
            &Usage {
                messages_json: &req.messages_json,
                prompt_tokens: req.prompt_tokens,
                completion_tokens: req.completion_tokens,
            },
        )
        .await
    }

    async fn add_messages(
        &self,
        account_id: &str,
        agent_id: &str,
        session_id: &str,
        writer: MessagesWriter<'_>,
        usage: &Usage<'_>,
    ) -> Result<(u64, u64, u64), SessionError> {
        let messages = split_messages(Some(usage.messages_json))?;
        if messages.is_empty() && usage.prompt_tokens == 0 && usage.completion_tokens == 0 {
            return Err(SessionError::invalid(
                "messages",
                "nothing to add: give messages or token counts",
            ));
        }
        let keys = self.vault.keys(account_id).await?;
        let sealed: Vec<String> = messages
            .iter()
            .map(|m| keys.seal_str(session_id, MESSAGE, m))
            .collect();
        let max = self.policy.max_messages_per_session;
        let appended = self
            .records
            .append_messages(&NewMessages {
                account_id,
                writer,
                agent_id,
                session_id,
                now_ms: lobby_kit::time::now_ms(),
                sealed: &sealed,
                prompt_tokens: usage.prompt_tokens,
                completion_tokens: usage.completion_tokens,
                max_messages: max,
            })
            .await?;
        match appended {
            MessagesAppend::Done(messages, prompt, completion) => {
                Ok((messages, prompt, completion))
            }
            MessagesAppend::NotFound => Err(SessionError::NotFound(session_id.to_owned())),
            MessagesAppend::Ended => Err(SessionError::Ended),
            MessagesAppend::Full => Err(SessionError::MessagesFull(max)),
        }
    }

    /// The account's records, newest first (at most the configured list
    /// size), optionally only `id` or only `agent_id`'s.
    pub async fn list_records(
        &self,
        req: pb::ListRecordsRequest,
    ) -> Result<Vec<SessionRecord>, SessionError> {
        let ids = if !req.id.is_empty() {
            vec![req.id.clone()]
        } else if !req.agent_id.is_empty() {
            self.records
                .page(
                    &req.account_id,
                    &req.agent_id,
                    TimeIndex::Created,
                    0,
                    self.policy.records_list_max,
                )
                .await?
                .1
        } else {
            self.records
                .newest(&req.account_id, self.policy.records_list_max)
                .await?
        };
        let records = self.open_records(&req.account_id, &ids).await?;
        Ok(records
            .into_iter()
            .filter(|r| req.agent_id.is_empty() || r.agent_id == req.agent_id)
            .collect())
    }

    /// One agent's records: a page in `order_by`, of those matching `query`.
    pub async fn query_records(
        &self,
        req: pb::QueryRecordsRequest,
    ) -> Result<(Vec<SessionRecord>, u64), SessionError> {
        let order = Order::parse(&req.order_by).ok_or_else(|| {
            SessionError::invalid(
                "orderBy",
                "must be one of userName, userEmail, createdAt, updatedAt",
            )
        })?;
        if req.limit > MAX_PAGE {
            return Err(SessionError::invalid("limit", "must be at most 100"));
        }
        let (account, agent) = (req.account_id.as_str(), req.agent_id.as_str());
        let (offset, limit) = (u64::from(req.offset), u64::from(req.limit));
        let query = req.query.trim();
        if !query.is_empty() {
            return self
                .search(account, agent, query, order, offset, limit)
                .await;
        }
        let (total, ids) = match order {
            Order::CreatedAt => {
                self.records
                    .page(account, agent, TimeIndex::Created, offset, limit)
                    .await?
            }
            Order::UpdatedAt => {
                self.records
                    .page(account, agent, TimeIndex::Updated, offset, limit)
                    .await?
            }
            Order::UserName | Order::UserEmail => {
                // The named records in order, then the sessions started
                // without names (seeds 000-002) by id.
                let ordered = self.name_order(account, agent, order).await?;
                let named = ordered.len() as u64;
                let mut page: Vec<String> = ordered
                    .iter()
                    .skip(usize::try_from(offset).unwrap_or(usize::MAX))
                    .take(usize::try_from(limit).unwrap_or(usize::MAX))
                    .cloned()
                    .collect();
                let room = limit - page.len() as u64;
                let (unnamed, rest) = self
                    .records
                    .unnamed_ids(account, agent, offset.saturating_sub(named), room)
                    .await?;
                page.extend(rest);
                (named + unnamed, page)
            }
        };
        Ok((self.open_records(account, &ids).await?, total))
    }

    /// Deletes the record (ending it first if it is a live session, so
    /// that nothing it holds stays held); false when there was none.
    pub async fn delete_record(&self, req: pb::DeleteRecordRequest) -> Result<bool, SessionError> {
        for _ in 0..5 {
            let Some(Some(stored)) = self
                .records
                .read(&req.account_id, std::slice::from_ref(&req.id))
                .await?
                .pop()
            else {
                return Ok(false);
            };
            let live = stored.is_running_session();
            if live {
                self.end(
                    &req.id,
                    crate::records::EndedReason::ExplicitEnd,
                    None,
                    Some((&req.account_id, stored.agent_id())),
                )
                .await
                .map_err(|s| SessionError::Orchestrator(s.message().to_owned()))?;
                continue;
            }
            // Artifacts first: a failure here leaves the record, and the
            // delete can be asked again.
            self.delete_artifacts(&req.account_id, &req.id).await?;
            match self
                .records
                .delete(&req.account_id, &req.id, &stored)
                .await?
            {
                Deleted::Now => {
                    tracing::info!(account_id = %req.account_id, "session record deleted");
                    return Ok(true);
                }
                Deleted::Missing => return Ok(false),
                Deleted::Changed => continue,
            }
        }
        Err(SessionError::invalid(
            "id",
            "the record kept changing during the delete; retry",
        ))
    }

    async fn search(
        &self,
        account: &str,
        agent: &str,
        query: &str,
        order: Order,
        offset: u64,
        limit: u64,
    ) -> Result<(Vec<SessionRecord>, u64), SessionError> {
        let keys = self.vault.keys(account).await?;
        let wanted = normalise(query);
        // Shorter than a trigram: whole values only.
        let exact = wanted.chars().count() < 3;
        let mut candidates: BTreeSet<String> = BTreeSet::new();
        if exact {
            candidates.insert(query.to_owned());
        } else {
            candidates.extend(
                self.records
                    .ids_with_prefix(account, agent, query, MAX_PREFIX_CANDIDATES)
                    .await?,
            );
        }
        for (_, name) in [USER_NAME, USER_EMAIL] {
            let tokens: Vec<String> = if exact {
                vec![keys.exact_token(name, query)]
            } else {
                keys.trigram_tokens(name, query).into_iter().collect()
            };
            candidates.extend(self.records.blind_match(account, agent, &tokens).await?);
        }
        let ids: Vec<String> = candidates.into_iter().collect();
        let mut matches: Vec<SessionRecord> = self
            .open_records(account, &ids)
            .await?
            .into_iter()
            .filter(|r| r.agent_id == agent)
            .filter(|r| {
                let hit = |value: &Option<String>| {
                    value.as_deref().map(normalise).is_some_and(|v| {
                        if exact {
                            v == wanted
                        } else {
                            v.contains(&wanted)
                        }
                    })
                };
                let id_hit = if exact {
                    r.id == query
                } else {
                    r.id.starts_with(query)
                };
                id_hit || hit(&r.user_name) || hit(&r.user_email)
            })
            .collect();
        sort_records(&mut matches, order);
        let total = matches.len() as u64;
        let page = matches
            .into_iter()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .collect();
        Ok((page, total))
    }

    /// The agent's record ids in `order` (a name order), from memory while
    /// the agent's records are unchanged, else opened from Redis.
    async fn name_order(
        &self,
        account: &str,
        agent: &str,
        order: Order,
    ) -> Result<Arc<Vec<String>>, SessionError> {
        let Some((field, name)) = order.sealed_field() else {
            return Err(SessionError::invalid("orderBy", "not a name order"));
        };
        let version = self.records.version(account, agent).await?;
        let key = (account.to_owned(), agent.to_owned(), order);
        if let Some(held) = self.name_orders.get(&key, version) {
            return Ok(held);
        }
        let ids = self.records.named_ids(account, agent).await?;
        let sealed = self.records.field_of(account, &ids, field).await?;
        let mut named: Vec<(Option<String>, String)> = Vec::with_capacity(ids.len());
        for (id, sealed) in ids.into_iter().zip(sealed) {
            let plain = match sealed.filter(|s| !s.is_empty()) {
                Some(s) => Some(normalise(
                    &self.vault.open_str(account, &id, name, &s).await?,
                )),
                None => None,
            };
            named.push((plain, id));
        }
        // Records without the field last, then by the value, then by id.
        named.sort_by(|a, b| (a.0.is_none(), &a.0, &a.1).cmp(&(b.0.is_none(), &b.0, &b.1)));
        let ordered = Arc::new(named.into_iter().map(|(_, id)| id).collect::<Vec<_>>());
        self.name_orders.put(key, version, ordered.clone());
        Ok(ordered)
    }

    /// The records with these ids, opened, in the same order; ids with no
    /// record are skipped.
    async fn open_records(
        &self,
        account: &str,
        ids: &[String],
    ) -> Result<Vec<SessionRecord>, SessionError> {
        let stored = self.records.read(account, ids).await?;
        if stored.iter().all(Option::is_none) {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity(ids.len());
        for (id, record) in ids.iter().zip(stored) {
            if let Some(record) = record {
                out.push(self.open_record(account, id, &record).await?);
            }
        }
        Ok(out)
    }

    async fn open_record(
        &self,
        account: &str,
        id: &str,
        r: &StoredRecord,
    ) -> Result<SessionRecord, SessionError> {
        let mut personal = [None, None];
        for (slot, (field, name)) in personal.iter_mut().zip([USER_NAME, USER_EMAIL]) {
            let sealed = r.text(field);
            if !sealed.is_empty() {
                *slot = Some(self.vault.open_str(account, id, name, sealed).await?);
            }
        }
        let [user_name, user_email] = personal;
        let messages = if r.messages.is_empty() {
            None
        } else {
            let mut opened = Vec::with_capacity(r.messages.len());
            for m in &r.messages {
                opened.push(self.vault.open_str(account, id, MESSAGE, m).await?);
            }
            Some(format!("[{}]", opened.join(",")))
        };
        let (prompt_tokens, completion_tokens) = r.tokens_used();
        Ok(SessionRecord {
            id: id.to_owned(),
            agent_id: r.agent_id().to_owned(),
            user_name,
            user_email,
            accept_terms: r.accept_terms(),
            messages,
            prompt_tokens,
            completion_tokens,
            created_at_ms: r.created_at_ms(),
            updated_at_ms: r.last_change_ms(),
            finalized_at_ms: r.ended_at_ms(),
        })
    }
}

fn sort_records(records: &mut [SessionRecord], order: Order) {
    match order {
        Order::CreatedAt => {
            records.sort_by(|a, b| (b.created_at_ms, &b.id).cmp(&(a.created_at_ms, &a.id)))
        }
        Order::UpdatedAt => {
            records.sort_by(|a, b| (b.updated_at_ms, &b.id).cmp(&(a.updated_at_ms, &a.id)))
        }
        Order::UserName | Order::UserEmail => {
            let key = |r: &SessionRecord| {
                let v = if order == Order::UserName {
                    &r.user_name
                } else {
                    &r.user_email
                };
                v.as_deref().map(normalise)
            };
            records.sort_by(|a, b| {
                let (ka, kb) = (key(a), key(b));
                (ka.is_none(), ka, &a.id).cmp(&(kb.is_none(), kb, &b.id))
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_ids_are_short_and_plain() {
        assert!(valid_record_id("session-XYZ.1_a"));
        assert!(valid_record_id(&"a".repeat(128)));
        for bad in ["", "has space", "slash/y", "ünï", &"a".repeat(129)] {
            assert!(!valid_record_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn orders_parse_with_updated_at_as_the_default() {
        assert_eq!(Order::parse(""), Some(Order::UpdatedAt));
        assert_eq!(Order::parse("userEmail"), Some(Order::UserEmail));
        assert_eq!(Order::parse("username"), None);
    }

    #[test]
    fn messages_are_a_json_array_of_bounded_size() {
        assert_eq!(
            split_messages(Some(r#"[{"role":"user","content":"Hello"}]"#)).expect("array"),
            vec![r#"{"role":"user","content":"Hello"}"#.to_owned()]
        );
        assert!(split_messages(Some("{}")).is_err());
        assert!(split_messages(None).expect("none").is_empty());
    }
}
