//! What a start or an end could not confirm, settled once Redis answers.
//!
//! A command whose answer is lost (a timeout, a connection dropped while a
//! master fails over) may or may not have run. The caller is told to retry
//! (503); what the command may have taken is owed here and settled by a task
//! that tries every sweep interval, so nothing stays held for a lease:
//! - an admission: withdrawn (`finish.lua` fails it if it ran, and leaves a
//!   tombstone that makes it take nothing if it arrives later);
//! - a failed start's give-back, and an end: applied (both idempotent, so
//!   a caller's own retry and this one apply it once between them).
//!
//! Owed work lives in this process: one that crashes leaves it to the
//! leases, as any crash does.

use crate::{
    records::EndedReason,
    service::SessionService,
    store::{Finish, Finished},
};
use futures::StreamExt;
use lobby_kit::ErrorCode;
use lobby_proto::session::Session;
use std::sync::{Arc, Mutex};

/// Owed settlements kept at most; past it a new one is logged and left to
/// its lease (Redis has been away long enough for leases to matter).
const MOST_OWED: usize = 100_000;
/// Settled at once.
const CONCURRENCY: usize = 32;

#[derive(Debug, Clone)]
pub(crate) enum Owed {
    /// Admission's answer was lost.
    Withdraw,
    /// A start that failed after admission; its machine code.
    Fail(ErrorCode),
    /// An end, as asked (`as_agent`: a run's own end, checked again).
    End {
        reason: EndedReason,
        ended_at_ms: i64,
        as_agent: String,
    },
}

#[derive(Debug, Clone)]
struct Debt {
    session: Session,
    owed: Owed,
}

/// What this process owes Redis.
#[derive(Clone, Default)]
pub(crate) struct GiveBacks {
    owed: Arc<Mutex<Vec<Debt>>>,
}

impl GiveBacks {
    fn push(&self, debt: Debt) {
        let Ok(mut owed) = self.owed.lock() else {
            return;
        };
        if owed.len() >= MOST_OWED {
            tracing::error!(session_id = %debt.session.id, "too much owed to Redis; this one is left to its lease");
            return;
        }
        owed.push(debt);
    }

    fn take(&self) -> Vec<Debt> {
        self.owed
            .lock()
            .map(|mut o| std::mem::take(&mut *o))
            .unwrap_or_default()
    }

    pub(crate) fn len(&self) -> usize {
        self.owed.lock().map(|o| o.len()).unwrap_or(0)
    }
}

/// Whether a Redis failure leaves a command's outcome unknown (it may have
/// run): then what it would have done is owed.
pub(crate) fn outcome_unknown(e: &crate::error::SessionError) -> bool {
    matches!(e, crate::error::SessionError::Store(e) if lobby_kit::redis_conn::is_transient(e))
}

impl SessionService {
    /// Owes `owed` for `session`, settled within a sweep interval of Redis
    /// answering again.
    pub(crate) fn owe(&self, session: &Session, owed: Owed) {
        tracing::info!(session_id = %session.id, ?owed, "outcome unknown; settled once Redis answers");
        self.give_backs.push(Debt {
            session: session.clone(),
            owed,
        });
        self.metrics
            .give_backs_owed
            .set(self.give_backs.len() as i64);
    }

    /// Tries everything owed once; what still cannot be settled stays owed.
    /// Returns how many were settled.
    pub async fn settle_owed(&self) -> usize {
        let debts = self.give_backs.take();
        if debts.is_empty() {
            return 0;
        }
        let outcomes: Vec<bool> = futures::stream::iter(debts)
            .map(|debt| async move {
                let settled = self.settle(&debt).await;
                if !settled {
                    self.give_backs.push(debt);
                }
                settled
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        self.metrics
            .give_backs_owed
            .set(self.give_backs.len() as i64);
        outcomes.into_iter().filter(|s| *s).count()
    }

    /// Settles one debt; false to try again later.
    async fn settle(&self, debt: &Debt) -> bool {
        let s = &debt.session;
        let policy = &self.policy;
        let now = lobby_kit::time::now_ms();
        let (how, ended_at, as_agent, keep) = match &debt.owed {
            Owed::Withdraw => (
                Finish::Withdrawn(ErrorCode::StoreUnavailable.as_str()),
                now,
                "",
                policy.failed_record_ttl_seconds,
            ),
            Owed::Fail(code) => (
                Finish::Failed(code.as_str()),
                now,
                "",
                policy.failed_record_ttl_seconds,
            ),
            Owed::End {
                reason,
                ended_at_ms,
                as_agent,
            } => (
                Finish::Ended(*reason),
                *ended_at_ms,
                as_agent.as_str(),
                policy.ended_record_ttl_seconds,
            ),
        };
        let purge_at = self.clock.now_ms() + keep * 1000;
        let finished = self
            .store
            .finish(s, how, ended_at, as_agent, keep, purge_at)
            .await;
        let finished = match finished {
            Ok(f) => f,
            Err(e) if outcome_unknown(&e) => return false,
            Err(e) => {
                tracing::error!(session_id = %s.id, error = %e, "owed settlement refused; left to the lease");
                return true;
            }
        };
        tracing::info!(session_id = %s.id, owed = ?debt.owed, ?finished, "owed settlement applied");
        match (&debt.owed, finished) {
            (Owed::End { reason, .. }, Finished::Now) => {
                self.after_end(s, *reason, ended_at).await;
            }
            (Owed::Withdraw | Owed::Fail(_), Finished::Now) => {
                self.after_failed_start(s).await;
            }
            _ => {}
        }
        true
    }
}

/// Settles what is owed every `every` while Redis answers (on a cluster:
/// any master), on its own so that a frozen shard slowing the sweep does
/// not hold the others' give-backs.
pub(crate) async fn settle_forever(
    service: SessionService,
    ready: lobby_kit::Readiness,
    every: std::time::Duration,
) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        ready.wait().await;
        service.settle_owed().await;
    }
}
