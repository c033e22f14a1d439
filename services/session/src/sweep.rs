//! The sweeper: every tick it ends the sessions whose worker reported their
//! end, then walks every bucket's index of due sessions. For each it takes
//! the step `schedule` decides: end it (deadline, join deadlines, solo
//! timeout, a lease that ran out), renew its lease when its holder is seen
//! alive (a worker's heartbeats, or the room on the provider), or look again
//! later. Several replicas may sweep at once: each claims what it works on,
//! and ending is idempotent anyway.

use crate::{
    error::SessionError,
    records::EndedReason,
    schedule::{self, Holder, RoomState, Step},
    service::{peer_failure, SessionService},
    store::DueEntry,
};
use futures::StreamExt;
use lobby_proto::{
    common::Provider,
    regions::HeldSession,
    rooms::{ExistingRoomsRequest, JobEndsRequest, JobState, WorkerJobRef, WorkerJobsRequest},
    session::Session,
};
use std::collections::HashMap;
use tonic::Request;

/// Entries claimed per bucket and tick; the rest wait for the next tick.
const CLAIM_LIMIT: usize = 200;
/// A claimed entry comes due again after this if its sweeper died meanwhile.
const CLAIM_MS: i64 = 10_000;
/// Buckets claimed at once.
const BUCKET_CONCURRENCY: usize = 16;
/// Due sessions handled at once.
const STEP_CONCURRENCY: usize = 32;

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    pub ended: usize,
    pub renewed: usize,
}

impl SessionService {
    /// One sweep over every bucket.
    pub async fn sweep(&self) -> Result<SweepReport, SessionError> {
        let mut report = SweepReport::default();
        report.ended += self.end_reported_jobs().await;
        let now = self.clock.now_ms();
        let claims = futures::stream::iter(0..lobby_kit::keys::BUCKETS)
            .map(|bucket| async move {
                (
                    bucket,
                    self.store
                        .claim_due(bucket, now, CLAIM_LIMIT, now + CLAIM_MS)
                        .await,
                )
            })
            .buffer_unordered(BUCKET_CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        // A bucket whose master does not answer (a Redis Cluster failing
        // over) waits for the next tick; the others are swept now.
        let mut claimed = Vec::new();
        let mut unswept: Vec<u32> = Vec::new();
        let mut last_failure = None;
        for (bucket, entries) in claims {
            match entries {
                Ok(entries) => claimed.extend(entries.into_iter().map(|e| (bucket, e))),
                Err(e) => {
                    unswept.push(bucket);
                    last_failure = Some(e);
                }
            }
        }
        if let Some(e) = &last_failure {
            tracing::warn!(buckets = unswept.len(), error = %e, "some buckets could not be swept this tick; the others were");
        }
        // Concurrently: a burst of sessions coming due (a deadline shared by
        // many) must not wait on each other's ends one by one.
        let checks: Vec<Session> = futures::stream::iter(claimed)
            .map(|(bucket, entry)| async move {
                match self.step(bucket, &entry).await {
                    Ok(check) => check,
                    Err(e) => {
                        tracing::warn!(session_id = %entry.1, error = %e, "sweep step failed; the entry comes due again");
                        None
                    }
                }
            })
            .buffer_unordered(STEP_CONCURRENCY)
            .filter_map(|check| async move { check })
            .collect()
            .await;
        let (ended, renewed) = self.check_holders(checks).await;
        report.ended += ended;
        report.renewed += renewed;
        match last_failure {
            // Nothing at all could be swept: say so to the caller.
            Some(e) if unswept.len() == lobby_kit::keys::BUCKETS as usize => Err(e),
            _ => Ok(report),
        }
    }

    /// Takes the step for one due entry; returns the session when its
    /// holder must be checked (batched across the sweep).
    async fn step(&self, bucket: u32, entry: &DueEntry) -> Result<Option<Session>, SessionError> {
        let Some(session) = self.store.get_in(&entry.0, &entry.1).await? else {
            self.store.forget_due(bucket, entry).await?;
            return Ok(None);
        };
        let (now, real_now) = (self.clock.now_ms(), lobby_kit::time::now_ms());
        match schedule::next_step(&session, now, real_now, self.policy.timing()) {
            Step::Forget => self.store.forget_due(bucket, entry).await?,
            Step::Purge => {
                // The records contract's delete, which drops the sweep entry too.
                let ids = [session.id.clone()];
                if let Some(Some(stored)) =
                    self.records.read(&session.account_id, &ids).await?.pop()
                {
                    // Artifacts first; a failure leaves the entry due, retried.
                    self.delete_artifacts(&session.account_id, &session.id)
                        .await?;
                    self.records
                        .delete(&session.account_id, &session.id, &stored)
                        .await?;
                }
                tracing::debug!(session_id = %session.id, "finished session purged at the end of its retention");
            }
            Step::CloseRoom => match self.close_room(&session).await {
                Ok(()) => self.store.room_closed(&session).await?,
                Err(status) => {
                    tracing::warn!(session_id = %session.id, error = %status.message(), "room still not closed; will retry");
                    let retry = self.clock.now_ms() + self.policy.recheck_ms();
                    self.store.reschedule(&session, retry).await?;
                }
            },
            Step::End(reason) => {
                self.end_swept(&session, reason, None).await;
            }
            Step::WaitUntil(at) => self.store.reschedule(&session, at).await?,
            Step::CheckHolder => return Ok(Some(session)),
        }
        Ok(None)
    }

    async fn end_swept(&self, s: &Session, reason: EndedReason, ended_at_ms: Option<i64>) -> bool {
        // The record is in hand (and its account): no id lookup needed.
        match self.end_session(s, reason, ended_at_ms, None).await {
            Ok(_) => true,
            Err(status) => {
                tracing::warn!(session_id = %s.id, error = %status.message(), "sweep could not end a session; will retry");
                // Soon (a third of a lease), not when the claim runs out: the
                // usual cause is a peer coming back up.
                let retry = self.clock.now_ms() + self.policy.recheck_ms().min(CLAIM_MS);
                if let Err(e) = self.store.reschedule(s, retry).await {
                    tracing::warn!(session_id = %s.id, error = %e, "could not reschedule the end");
                }
                false
            }
        }
    }

    /// Asks rooms about every session due for renewal, in one call per kind
    /// of holder, and renews, ends or leaves each as the answer says.
    async fn check_holders(&self, sessions: Vec<Session>) -> (usize, usize) {
        if sessions.is_empty() {
            return (0, 0);
        }
        let now = self.clock.now_ms();
        let mut verdicts: Vec<(Session, Holder)> = Vec::with_capacity(sessions.len());
        let (workers, rooms): (Vec<Session>, Vec<Session>) =
            sessions.into_iter().partition(|s| s.requires_worker);
        if !workers.is_empty() {
            let jobs = workers
                .iter()
                .map(|s| WorkerJobRef {
                    session_id: s.id.clone(),
                    worker_id: s.worker_id.clone(),
                })
                .collect();
            match self
                .rooms
                .worker_jobs(Request::new(WorkerJobsRequest { jobs }))
                .await
            {
                Ok(answer) => {
                    let jobs: HashMap<String, _> = answer
                        .into_inner()
                        .jobs
                        .into_iter()
                        .map(|j| (j.session_id.clone(), j))
                        .collect();
                    for s in workers {
                        let holder = match jobs.get(&s.id) {
                            Some(j) if j.state() == JobState::Running => Holder::Alive,
                            Some(j) if j.state() == JobState::Ended => {
                                Holder::WorkerEnded(j.ended_at_ms)
                            }
                            _ => Holder::Silent,
                        };
                        verdicts.push((s, holder));
                    }
                }
                Err(status) => {
                    // Rooms is unreachable: nobody can vouch, so nothing is
                    // renewed; leases run out only if this lasts a lease.
                    tracing::warn!(error = %peer_failure(status).message(), "worker jobs unknown; leases not renewed this round");
                    verdicts.extend(workers.into_iter().map(|s| (s, Holder::Silent)));
                }
            }
        }
        let mut by_provider: HashMap<i32, Vec<Session>> = HashMap::new();
        for s in rooms {
            by_provider.entry(s.provider).or_default().push(s);
        }
        for (provider, group) in by_provider {
            let names = group.iter().map(|s| s.room_name.clone()).collect();
            let answer = self
                .rooms
                .existing_rooms(Request::new(ExistingRoomsRequest {
                    provider: Provider::try_from(provider).unwrap_or(Provider::Livekit) as i32,
                    room_names: names,
                }))
                .await;
            match answer {
                Ok(a) => {
                    let a = a.into_inner();
                    for s in group {
                        let room =
                            match (a.authoritative, a.existing.contains(&s.room_name), a.lazy) {
                                (false, _, _) => RoomState::Unknown,
                                (true, true, _) => RoomState::Exists,
                                (true, false, true) => RoomState::NotYetCreated,
                                (true, false, false) => RoomState::Missing,
                            };
                        let holder =
                            schedule::room_holder(&s, room, now, self.policy.reconcile_grace_ms);
                        verdicts.push((s, holder));
                    }
                }
                Err(status) => {
                    tracing::warn!(error = %peer_failure(status).message(), "rooms unknown; leases not renewed this round");
                    verdicts.extend(group.into_iter().map(|s| (s, Holder::Silent)));
                }
            }
        }
        let outcomes: Vec<(Session, usize, usize)> = futures::stream::iter(verdicts)
            .map(|(s, holder)| async move {
                let (ended, renewed) = self.act_on_holder(&s, holder).await;
                (s, ended, renewed)
            })
            .buffer_unordered(STEP_CONCURRENCY)
            .collect()
            .await;
        let ended = outcomes.iter().map(|o| o.1).sum();
        let renewed = outcomes.iter().map(|o| o.2).sum();
        let renewed_here = outcomes
            .into_iter()
            .filter(|o| o.2 > 0 && !o.0.home_region.is_empty())
            .map(|o| o.0);
        self.renew_at_home(renewed_here.collect()).await;
        (ended, renewed)
    }

    /// Renews at their homes the holds of sessions whose lease was just
    /// renewed here: one call per home region (and per thousand holds).
    async fn renew_at_home(&self, sessions: Vec<Session>) {
        let now = lobby_kit::time::now_ms();
        let mut by_home: HashMap<String, Vec<HeldSession>> = HashMap::new();
        for s in sessions {
            by_home
                .entry(s.home_region.clone())
                .or_default()
                .push(HeldSession {
                    reserved_seconds_left: u64::try_from((s.deadline_ms - now) / 1000).unwrap_or(0),
                    session_id: s.id,
                    account_id: s.account_id,
                    agent_id: s.agent_id,
                });
        }
        let calls = by_home.into_iter().flat_map(|(home, holds)| {
            holds
                .chunks(crate::home::MAX_RENEWALS_PER_CALL)
                .map(|c| (home.clone(), c.to_vec()))
                .collect::<Vec<_>>()
        });
        futures::stream::iter(calls)
            .for_each_concurrent(BUCKET_CONCURRENCY, |(home, holds)| async move {
                let count = holds.len();
                if let Err(e) = self.home.renew(&home, holds).await {
                    // Its holds run out there; they are taken again when it answers.
                    tracing::warn!(%home, holds = count, error = %e, "holds not renewed at home this round");
                }
            })
            .await;
    }

    /// Renews, ends or leaves one session as its holder check found;
    /// returns (ended, renewed).
    async fn act_on_holder(&self, s: &Session, holder: Holder) -> (usize, usize) {
        match holder {
            Holder::Alive => match self.renew(s).await {
                Ok(true) => (0, 1),
                // Its slot ran out meanwhile and may be someone else's now.
                Ok(false) => (
                    usize::from(self.end_swept(s, EndedReason::LeaseExpired, None).await),
                    0,
                ),
                Err(e) => {
                    tracing::warn!(session_id = %s.id, error = %e, "lease not renewed; will retry");
                    (0, 0)
                }
            },
            Holder::WorkerEnded(at) => (
                usize::from(
                    self.end_swept(s, EndedReason::WorkerReported, Some(at))
                        .await,
                ),
                0,
            ),
            Holder::RoomGone => (
                usize::from(self.end_swept(s, EndedReason::RoomMissing, None).await),
                0,
            ),
            Holder::Silent => {
                // Look again when the lease runs out (or at the next
                // renewal chance, whichever is first).
                let (now, real_now) = (self.clock.now_ms(), lobby_kit::time::now_ms());
                let retry = now + self.policy.recheck_ms();
                let lease_end = s.lease_deadline_ms + (now - real_now);
                if let Err(e) = self.store.reschedule(s, retry.min(lease_end)).await {
                    tracing::warn!(session_id = %s.id, error = %e, "could not reschedule a silent session");
                }
                (0, 0)
            }
        }
    }

    async fn renew(&self, s: &Session) -> Result<bool, SessionError> {
        let (now, real_now) = (self.clock.now_ms(), lobby_kit::time::now_ms());
        let timing = self.policy.timing();
        let renewed = Session {
            lease_deadline_ms: real_now + self.policy.lease_ms,
            ..s.clone()
        };
        let next = schedule::next_check(&renewed, now, real_now, timing);
        self.store.renew(s, self.policy.lease_ms, next).await
    }

    /// Ends the sessions whose worker reported their end since the last
    /// sweep (a worker's report reaches rooms; rooms keeps a feed of them).
    async fn end_reported_jobs(&self) -> usize {
        let mut cursor = self.job_ends_cursor.lock().await;
        let answer = self
            .rooms
            .job_ends(Request::new(JobEndsRequest {
                after: cursor.clone(),
            }))
            .await;
        let answer = match answer {
            Ok(a) => a.into_inner(),
            Err(status) => {
                tracing::warn!(error = %peer_failure(status).message(), "worker end reports unread this round");
                return 0;
            }
        };
        let mut ended = 0;
        for job in answer.ended {
            let result = self
                .end(
                    &job.session_id,
                    EndedReason::WorkerReported,
                    Some(job.ended_at_ms),
                    None,
                )
                .await;
            match result {
                Ok(_) => ended += 1,
                Err(status) if status.code() == tonic::Code::NotFound => {}
                Err(status) => {
                    // Its lease check will find the job ended and retry.
                    tracing::warn!(session_id = %job.session_id, error = %status.message(), "reported end not applied yet");
                }
            }
        }
        *cursor = answer.cursor;
        ended
    }
}
