//! What the sweeper does with a live session that came due: pure decisions
//! over the record and the clocks, tested without a network.
//!
//! Two clocks: `now` is the sweeper's clock for calendar deadlines (the
//! session's maximum, join deadlines; tests move it forward), `real_now` is
//! wall time for leases, which Redis `TIME` stamps.

use crate::{presence, records::EndedReason};
use lobby_proto::session::{Session, SessionKind, SessionStatus};

#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub lease_ms: i64,
    pub join: presence::JoinDeadlines,
}

impl Timing {
    /// A lease is renewed once less than two thirds of it remains, so a
    /// holder gets two more chances before it runs out.
    fn renew_at(&self, lease_deadline_ms: i64) -> i64 {
        lease_deadline_ms - self.lease_ms * 2 / 3
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Not live (ended or failed) and kept for good: drop its sweep entry.
    Forget,
    /// Finished and past its retention: delete it with its index entries.
    Purge,
    /// A failed start whose room and worker are still to be given back.
    CloseRoom,
    End(EndedReason),
    /// The lease is due for renewal: ask whether its holder is alive.
    CheckHolder,
    /// Nothing to do before this time (the sweeper's clock).
    WaitUntil(i64),
}

/// The next step for a session that came due.
pub fn next_step(s: &Session, now: i64, real_now: i64, t: Timing) -> Step {
    if s.status() != SessionStatus::Active {
        return if s.room_close_pending {
            Step::CloseRoom
        } else if s.purge_at_ms > 0 && now >= s.purge_at_ms {
            Step::Purge
        } else if s.purge_at_ms > 0 {
            Step::WaitUntil(s.purge_at_ms)
        } else {
            Step::Forget
        };
    }
    if s.kind() == SessionKind::AgentRun {
        // A run's lease is its idle deadline, which each event pushes on.
        return if real_now >= s.lease_deadline_ms {
            Step::End(EndedReason::IdleTimeout)
        } else {
            Step::WaitUntil(s.lease_deadline_ms + (now - real_now))
        };
    }
    if s.deadline_ms > 0 && now >= s.deadline_ms {
        return Step::End(if s.reserved_seconds < u64::from(s.max_session_seconds) {
            EndedReason::MinutesExhausted
        } else {
            EndedReason::MaxDuration
        });
    }
    if let Some(reason) = presence::verdict(s, t.join, now) {
        return Step::End(reason);
    }
    if real_now >= s.lease_deadline_ms {
        return Step::End(EndedReason::LeaseExpired);
    }
    if real_now >= t.renew_at(s.lease_deadline_ms) {
        return Step::CheckHolder;
    }
    Step::WaitUntil(next_check(s, now, real_now, t))
}

/// When to look at the session next, on the sweeper's clock: the earliest of
/// its deadline, its presence check and its lease's renewal time.
pub fn next_check(s: &Session, now: i64, real_now: i64, t: Timing) -> i64 {
    let renew = t.renew_at(s.lease_deadline_ms) + (now - real_now);
    let mut at = renew.min(s.deadline_ms.max(now));
    if let Some(presence) = presence::next_check(s, t.join) {
        at = at.min(presence);
    }
    at.max(now)
}

/// What a holder check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    Alive,
    /// Nothing vouches for the session: its lease is left to run out.
    Silent,
    /// The worker reported the end at this time.
    WorkerEnded(i64),
    /// The provider no longer has a room that people joined.
    RoomGone,
}

/// What the provider says of a session's room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomState {
    Exists,
    Missing,
    /// Missing, but rooms are created on the first join: maybe nobody has.
    NotYetCreated,
    /// The provider cannot say (token-only mode creates no rooms).
    Unknown,
}

/// Whether the room's state vouches for a session without a worker.
pub fn room_holder(s: &Session, room: RoomState, now: i64, grace_ms: i64) -> Holder {
    match room {
        RoomState::Exists | RoomState::Unknown => Holder::Alive,
        // A fresh room may not be listed yet.
        RoomState::Missing if now < s.started_at_ms + grace_ms => Holder::Alive,
        RoomState::Missing => Holder::RoomGone,
        // Until a user has joined, the join deadline, not the room, decides.
        RoomState::NotYetCreated if s.user_joined_at_ms == 0 => Holder::Alive,
        RoomState::NotYetCreated => Holder::RoomGone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timing = Timing {
        lease_ms: 15_000,
        join: presence::JoinDeadlines {
            user_ms: 120_000,
            agent_ms: 60_000,
        },
    };

    fn live() -> Session {
        Session {
            status: SessionStatus::Active as i32,
            kind: SessionKind::Connect as i32,
            started_at_ms: 1_000,
            deadline_ms: 601_000,
            lease_deadline_ms: 16_000,
            reserved_seconds: 600,
            max_session_seconds: 600,
            user_joined_at_ms: 2_000,
            ..Default::default()
        }
    }

    #[test]
    fn a_fresh_lease_waits_until_a_third_of_it_has_passed() {
        assert_eq!(next_step(&live(), 2_000, 2_000, T), Step::WaitUntil(6_000));
        assert_eq!(next_step(&live(), 6_000, 6_000, T), Step::CheckHolder);
    }

    #[test]
    fn a_lease_that_ran_out_ends_the_session() {
        assert_eq!(
            next_step(&live(), 16_000, 16_000, T),
            Step::End(EndedReason::LeaseExpired)
        );
    }

    #[test]
    fn the_deadline_comes_before_anything_else() {
        let s = live();
        assert_eq!(
            next_step(&s, 601_000, 20_000, T),
            Step::End(EndedReason::MaxDuration)
        );
        let short = Session {
            reserved_seconds: 300,
            ..live()
        };
        assert_eq!(
            next_step(&short, 601_000, 2_000, T),
            Step::End(EndedReason::MinutesExhausted)
        );
    }

    #[test]
    fn a_moved_sweeper_clock_shifts_the_renewal_check() {
        // The sweeper's clock runs a minute ahead of wall time (a test clock).
        let ahead = 60_000;
        assert_eq!(next_check(&live(), 2_000 + ahead, 2_000, T), 6_000 + ahead);
    }

    #[test]
    fn presence_verdicts_end_sessions() {
        let nobody = Session {
            user_joined_at_ms: 0,
            ..live()
        };
        assert_eq!(
            next_step(&nobody, 121_000, 3_000, T),
            Step::End(EndedReason::UserJoinTimeout)
        );
    }

    #[test]
    fn over_sessions_are_forgotten() {
        let ended = Session {
            status: SessionStatus::Ended as i32,
            ..live()
        };
        assert_eq!(next_step(&ended, 0, 0, T), Step::Forget);
        let ended_run = Session {
            kind: SessionKind::AgentRun as i32,
            ..ended.clone()
        };
        assert_eq!(next_step(&ended_run, 0, 0, T), Step::Forget);
        let failed_with_room = Session {
            status: SessionStatus::Failed as i32,
            room_close_pending: true,
            ..live()
        };
        assert_eq!(next_step(&failed_with_room, 0, 0, T), Step::CloseRoom);
        let kept = Session {
            purge_at_ms: 90_000,
            ..ended
        };
        assert_eq!(next_step(&kept, 50_000, 0, T), Step::WaitUntil(90_000));
        assert_eq!(next_step(&kept, 90_000, 0, T), Step::Purge);
    }

    #[test]
    fn a_run_ends_once_idle_past_its_lease_and_not_before() {
        let run = Session {
            kind: SessionKind::AgentRun as i32,
            deadline_ms: 0,
            lease_deadline_ms: 50_000,
            ..live()
        };
        // Not its join deadlines nor a missing deadline: only idleness.
        assert_eq!(
            next_step(&run, 49_000 + 500, 49_000, T),
            Step::WaitUntil(50_500)
        );
        assert_eq!(
            next_step(&run, 50_000, 50_000, T),
            Step::End(EndedReason::IdleTimeout)
        );
    }

    #[test]
    fn a_missing_room_counts_after_the_grace() {
        let s = live();
        assert_eq!(
            room_holder(&s, RoomState::Unknown, 50_000, 10_000),
            Holder::Alive
        );
        assert_eq!(
            room_holder(&s, RoomState::Exists, 50_000, 10_000),
            Holder::Alive
        );
        assert_eq!(
            room_holder(&s, RoomState::Missing, 5_000, 10_000),
            Holder::Alive
        );
        assert_eq!(
            room_holder(&s, RoomState::Missing, 50_000, 10_000),
            Holder::RoomGone
        );
    }

    #[test]
    fn a_lazy_room_nobody_joined_is_not_missing() {
        let unjoined = Session {
            user_joined_at_ms: 0,
            ..live()
        };
        assert_eq!(
            room_holder(&unjoined, RoomState::NotYetCreated, 50_000, 10_000),
            Holder::Alive
        );
        assert_eq!(
            room_holder(&live(), RoomState::NotYetCreated, 50_000, 10_000),
            Holder::RoomGone
        );
    }
}
